//! did:key and Multikey encoding: multicodec-prefixed compressed points in base58btc.

use super::{Algorithm, CryptoError, PublicKey};

/// Varint of multicodec `secp256k1-pub` (0xe7).
const K256_PREFIX: [u8; 2] = [0xe7, 0x01];
/// Varint of multicodec `p256-pub` (0x1200).
const P256_PREFIX: [u8; 2] = [0x80, 0x24];

impl PublicKey {
    /// The Multikey string (`z…`), as in a DID document's `publicKeyMultibase`.
    pub fn to_multikey(&self) -> String {
        let prefix = match self.algorithm() {
            Algorithm::K256 => K256_PREFIX,
            Algorithm::P256 => P256_PREFIX,
        };
        let mut bytes = prefix.to_vec();
        bytes.extend(self.to_compressed());
        format!("z{}", bs58::encode(bytes).into_string())
    }

    /// The did:key string.
    pub fn to_did_key(&self) -> String {
        format!("did:key:{}", self.to_multikey())
    }

    /// Decodes a Multikey string.
    pub fn from_multikey(s: &str) -> Result<PublicKey, CryptoError> {
        let err = |why| CryptoError::InvalidDidKey(s.to_owned(), why);
        let b58 = s
            .strip_prefix('z')
            .ok_or_else(|| err("not base58btc (no 'z' prefix)"))?;
        let bytes = bs58::decode(b58)
            .into_vec()
            .map_err(|_| err("invalid base58"))?;
        let (alg, point) = match bytes.split_at_checked(2) {
            Some((p, rest)) if p == K256_PREFIX => (Algorithm::K256, rest),
            Some((p, rest)) if p == P256_PREFIX => (Algorithm::P256, rest),
            _ => return Err(err("unsupported key type")),
        };
        if point.len() != 33 {
            return Err(err("not a compressed point"));
        }
        PublicKey::from_sec1(alg, point)
    }

    /// Decodes a did:key string.
    pub fn from_did_key(s: &str) -> Result<PublicKey, CryptoError> {
        let multikey = s
            .strip_prefix("did:key:")
            .ok_or_else(|| CryptoError::InvalidDidKey(s.to_owned(), "missing did:key: prefix"))?;
        PublicKey::from_multikey(multikey)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Keypair;
    use super::*;

    #[test]
    fn did_keys_round_trip_on_both_curves() {
        for alg in [Algorithm::K256, Algorithm::P256] {
            let key = Keypair::from_seed(alg, b"seed").public_key();
            let did_key = key.to_did_key();
            assert!(did_key.starts_with(match alg {
                Algorithm::K256 => "did:key:zQ3s",
                Algorithm::P256 => "did:key:zDna",
            }));
            assert_eq!(PublicKey::from_did_key(&did_key), Ok(key));
        }
    }
}
