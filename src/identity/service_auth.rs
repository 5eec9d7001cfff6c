//! Inter-service JWTs (https://atproto.com/specs/xrpc#inter-service-authentication-jwt):
//! ES256K or ES256, signed by hand with the account's key (jsonwebtoken has no ES256K).
//!
//! Header `{alg, typ: "JWT"}`; claims `iss` (account DID), `aud` (service DID, optionally with a
//! `#service` fragment), `exp`, `iat`, `lxm` (the XRPC method) and `jti` (a random nonce). The
//! signature is the compact low-S ECDSA signature over `base64url(header).base64url(claims)`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::{IdentityError, Resolver};
use crate::crypto::{Keypair, PublicKey};
use crate::syntax::{Did, Nsid};

/// The claims of a service-auth token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account the token speaks for.
    pub iss: String,
    /// The service it is for.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issue time, seconds since the epoch.
    #[serde(default)]
    pub iat: i64,
    /// The XRPC method it allows, if bound to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lxm: Option<String>,
    /// A random nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
}

/// Creates a token for `iss` to call `aud` (and only method `lxm`, if given), valid for
/// `ttl_secs` from `now` (seconds since the epoch).
pub fn create(
    key: &Keypair,
    iss: &Did,
    aud: &str,
    lxm: Option<&Nsid>,
    now: i64,
    ttl_secs: i64,
) -> String {
    let header = Header {
        alg: key.algorithm().jwt_alg().to_owned(),
        typ: Some("JWT".into()),
    };
    let claims = Claims {
        iss: iss.to_string(),
        aud: aud.to_owned(),
        exp: now + ttl_secs,
        iat: now,
        lxm: lxm.map(ToString::to_string),
        jti: Some(hex::encode(rand::random::<[u8; 16]>())),
    };
    // Serialising these plain structs cannot fail.
    let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default());
    let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
    let signing_input = format!("{header}.{claims}");
    let sig = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Splits and decodes a token without checking its signature.
pub fn decode_unverified(token: &str) -> Result<(String, Claims, Vec<u8>, String), IdentityError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdentityError::InvalidJwt("not three dot-separated parts"));
    };
    let b64 = |p: &str| {
        URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| IdentityError::InvalidJwt("part is not base64url"))
    };
    let header: Header = serde_json::from_slice(&b64(h)?)
        .map_err(|_| IdentityError::InvalidJwt("header is not JSON"))?;
    let claims: Claims = serde_json::from_slice(&b64(c)?)
        .map_err(|_| IdentityError::InvalidJwt("claims are not valid"))?;
    if header.typ.as_deref().is_some_and(|t| t != "JWT") {
        return Err(IdentityError::InvalidJwt("typ is not JWT"));
    }
    Ok((header.alg, claims, b64(s)?, format!("{h}.{c}")))
}

/// Checks a token's signature with `key` and its claims: unexpired at `now`, for `aud` (with or
/// without a fragment), and for method `lxm` if one is required.
pub fn verify_with_key(
    token: &str,
    key: &PublicKey,
    aud: &str,
    lxm: Option<&Nsid>,
    now: i64,
) -> Result<Claims, IdentityError> {
    let (alg, claims, sig, signing_input) = decode_unverified(token)?;
    if alg != key.algorithm().jwt_alg() {
        return Err(IdentityError::InvalidJwt(
            "alg does not match the issuer's key",
        ));
    }
    key.verify(signing_input.as_bytes(), &sig)?;
    if claims.exp <= now {
        return Err(IdentityError::JwtExpired);
    }
    let bare = |a: &str| a.split('#').next().unwrap_or_default().to_owned();
    if claims.aud != aud && bare(&claims.aud) != aud && claims.aud != bare(aud) {
        return Err(IdentityError::JwtClaimMismatch {
            claim: "aud",
            expected: aud.to_owned(),
            got: claims.aud.clone(),
        });
    }
    if let Some(lxm) = lxm {
        if claims.lxm.as_deref() != Some(lxm.as_str()) {
            return Err(IdentityError::JwtClaimMismatch {
                claim: "lxm",
                expected: lxm.to_string(),
                got: claims.lxm.clone().unwrap_or_default(),
            });
        }
    }
    Ok(claims)
}

/// Like [`verify_with_key`], resolving the issuer's signing key from its DID document.
pub async fn verify(
    resolver: &Resolver,
    token: &str,
    aud: &str,
    lxm: Option<&Nsid>,
    now: i64,
) -> Result<Claims, IdentityError> {
    let (_, claims, _, _) = decode_unverified(token)?;
    let iss = Did::parse(claims.iss.split('#').next().unwrap_or_default())
        .map_err(|_| IdentityError::InvalidJwt("iss is not a DID"))?;
    let key = resolver.signing_key(&iss).await?;
    match verify_with_key(token, &key, aud, lxm, now) {
        // The cached document may predate a key change (an account that just moved): resolve
        // it afresh and try once more.
        Err(IdentityError::Signature(_)) => {
            resolver.invalidate(Some(&iss), None);
            let key = resolver.signing_key(&iss).await?;
            verify_with_key(token, &key, aud, lxm, now)
        }
        other => other,
    }
}
