//! Content identifiers: the blessed atproto CID formats and helpers to compute and check them.
//!
//! atproto data and MST nodes use CIDv1 with the dag-cbor codec (0x71) and sha2-256; blobs use
//! the raw codec (0x55). Links inside records are kept exactly as received, so [`Cid`] itself is
//! the general type from the `cid` crate; [`is_blessed`] says whether one is a format we write.

pub use ::cid::Cid;
use ::cid::multihash::Multihash;
use sha2::{Digest, Sha256};

/// Multicodec code of dag-cbor, for data objects.
pub const DAG_CBOR: u64 = 0x71;
/// Multicodec code of raw bytes, for blobs.
pub const RAW: u64 = 0x55;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;

/// Why a CID string or byte string is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidError {
    /// Not a parseable CID.
    #[error("invalid CID {0:?}: {1}")]
    Invalid(String, String),
    /// A CIDv0, which atproto does not allow.
    #[error("CIDv0 is not allowed: {0}")]
    Version0(String),
}

/// The CID of DAG-CBOR `bytes`: CIDv1, dag-cbor, sha2-256.
pub fn cid_for_cbor(bytes: &[u8]) -> Cid {
    cid_with_codec(DAG_CBOR, bytes)
}

/// The CID of blob `bytes`: CIDv1, raw, sha2-256.
pub fn cid_for_raw(bytes: &[u8]) -> Cid {
    cid_with_codec(RAW, bytes)
}

/// A CIDv1 with `codec` over the sha2-256 digest `digest`.
pub fn cid_from_sha256(codec: u64, digest: [u8; 32]) -> Cid {
    // A 32-byte digest always fits the 64-byte multihash.
    let hash = Multihash::wrap(SHA2_256, &digest).expect("32 bytes fit in a 64-byte multihash");
    Cid::new_v1(codec, hash)
}

fn cid_with_codec(codec: u64, bytes: &[u8]) -> Cid {
    cid_from_sha256(codec, Sha256::digest(bytes).into())
}

/// Parses a CID string (any multibase), rejecting CIDv0.
pub fn parse_cid(s: &str) -> Result<Cid, CidError> {
    let cid = Cid::try_from(s).map_err(|e| CidError::Invalid(s.to_owned(), e.to_string()))?;
    if cid.version() == ::cid::Version::V0 {
        return Err(CidError::Version0(s.to_owned()));
    }
    Ok(cid)
}

/// Parses a binary CID, rejecting CIDv0.
pub fn cid_from_bytes(bytes: &[u8]) -> Result<Cid, CidError> {
    let cid =
        Cid::try_from(bytes).map_err(|e| CidError::Invalid(hex::encode(bytes), e.to_string()))?;
    if cid.version() == ::cid::Version::V0 {
        return Err(CidError::Version0(cid.to_string()));
    }
    Ok(cid)
}

/// Whether `cid` is one of the formats atproto writes: CIDv1, dag-cbor or raw, sha2-256.
pub fn is_blessed(cid: &Cid) -> bool {
    cid.version() == ::cid::Version::V1
        && matches!(cid.codec(), DAG_CBOR | RAW)
        && cid.hash().code() == SHA2_256
        && cid.hash().size() == 32
}

/// Whether `bytes` hash to `cid`. Only sha2-256 CIDs can be checked; others are reported as
/// not matching.
pub fn matches(cid: &Cid, bytes: &[u8]) -> bool {
    cid.hash().code() == SHA2_256 && cid.hash().digest() == &Sha256::digest(bytes)[..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cid_of_foo_bar_matches_arroba() {
        let bytes = crate::cbor::encode(&crate::cbor::map([("foo", "bar".into())]));
        assert_eq!(bytes, b"\xa1cfoocbar");
        assert_eq!(
            cid_for_cbor(&bytes).to_string(),
            "bafyreiblaotetvwobe7cu2uqvnddr6ew2q3cu75qsoweulzku2egca4dxq"
        );
    }

    #[test]
    fn cidv0_is_rejected() {
        assert!(matches!(
            parse_cid("QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR"),
            Err(CidError::Version0(_))
        ));
    }
}
