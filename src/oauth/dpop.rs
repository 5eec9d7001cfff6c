//! DPoP (RFC 9449): checking a proof JWT against the request it came with, the key thumbprint
//! (RFC 7638) tokens are bound to, and the server nonces proofs must carry.
//!
//! Only ES256 keys are accepted, as the atproto profile requires of every implementation.
//! Nonces are derived, not stored: an HMAC of the time window under a server secret, so every
//! process of a deployment (each Lambda instance) issues and accepts the same ones.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::OAuthError;

/// How long a proof is accepted after its `iat`, and how far ahead of our clock it may be.
pub const PROOF_MAX_AGE_SECS: i64 = 60;
const PROOF_FUTURE_SECS: i64 = 10;
/// How long one nonce is issued; the one before and the one after are accepted too.
const NONCE_WINDOW_SECS: i64 = 180;
/// Longest `jti` accepted (they are stored for replay checks).
const MAX_JTI_LEN: usize = 256;

/// A checked proof: the key's thumbprint and the proof's `jti` (for the replay check, which
/// needs storage and is the caller's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopProof {
    /// The RFC 7638 thumbprint of the proof's key, base64url.
    pub jkt: String,
    /// The proof's unique id.
    pub jti: String,
    /// When the proof was made (Unix seconds).
    pub iat: i64,
}

#[derive(Deserialize)]
struct Header {
    typ: Option<String>,
    alg: String,
    jwk: Option<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    d: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<i64>,
    nonce: Option<String>,
    ath: Option<String>,
}

fn bad(why: impl Into<String>) -> OAuthError {
    OAuthError::InvalidDpopProof(why.into())
}

/// The server's DPoP nonces.
#[derive(Clone)]
pub struct Nonces {
    key: [u8; 32],
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nonces(..)")
    }
}

impl Nonces {
    /// Nonces keyed by `secret` (the deployment's JWT secret; a digest of it is the key, so a
    /// nonce reveals nothing about the secret).
    pub fn new(secret: &str) -> Nonces {
        let key = Sha256::new()
            .chain_update(b"arroba dpop nonce\0")
            .chain_update(secret.as_bytes())
            .finalize()
            .into();
        Nonces { key }
    }

    fn for_window(&self, window: i64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(&window.to_be_bytes());
        URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..16])
    }

    /// The nonce to hand out at `now` (Unix seconds).
    pub fn current(&self, now: i64) -> String {
        self.for_window(now.div_euclid(NONCE_WINDOW_SECS))
    }

    /// Whether `nonce` is the current one or its neighbour on either side.
    pub fn accepts(&self, nonce: &str, now: i64) -> bool {
        let window = now.div_euclid(NONCE_WINDOW_SECS);
        (window - 1..=window + 1).any(|w| {
            let expected = self.for_window(w);
            subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), nonce.as_bytes()).into()
        })
    }
}

/// The RFC 7638 thumbprint of a P-256 public key given by its coordinates (base64url).
pub fn thumbprint(x: &str, y: &str) -> String {
    // The required members in lexicographic order, no spaces: the canonical form RFC 7638 hashes.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The `ath` a proof sent with `access_token` must carry.
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// `url` as `htu` compares it: without query and fragment (RFC 9449 §4.3).
fn without_query(url: &str) -> Result<url::Url, OAuthError> {
    let mut parsed = url::Url::parse(url).map_err(|_| bad("htu is not a URL"))?;
    parsed.set_query(None);
    parsed.set_fragment(None);
    Ok(parsed)
}

/// Checks `proof` for a `method` request to one of `urls` (the request's URL as each accepted
/// origin would spell it) at `now`: signature, `typ`, `htm`, `htu`, `iat`, the nonce and, for a
/// resource request, `ath`. The `jti` replay check is left to the caller.
pub fn verify(
    proof: &str,
    method: &str,
    urls: &[String],
    access_token: Option<&str>,
    nonces: &Nonces,
    now: i64,
) -> Result<DpopProof, OAuthError> {
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(claims_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("DPoP proof is not a JWT"));
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| bad("Malformed DPoP proof"))
    };
    let header: Header =
        serde_json::from_slice(&decode(header_b64)?).map_err(|_| bad("Malformed DPoP header"))?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err(bad("DPoP proof typ must be dpop+jwt"));
    }
    if header.alg != "ES256" {
        return Err(bad("Unsupported DPoP algorithm (ES256 only)"));
    }
    let jwk = header.jwk.ok_or_else(|| bad("DPoP proof has no jwk"))?;
    if jwk.d.is_some() {
        return Err(bad("DPoP jwk must be a public key"));
    }
    let (Some(x), Some(y)) = (jwk.x.as_deref(), jwk.y.as_deref()) else {
        return Err(bad("DPoP jwk lacks x or y"));
    };
    if jwk.kty != "EC" || jwk.crv.as_deref() != Some("P-256") {
        return Err(bad("DPoP jwk must be an EC P-256 key"));
    }
    let (xb, yb) = (decode(x)?, decode(y)?);
    if xb.len() != 32 || yb.len() != 32 {
        return Err(bad("DPoP jwk coordinates must be 32 bytes"));
    }
    let mut point = Vec::with_capacity(65);
    point.push(0x04);
    point.extend_from_slice(&xb);
    point.extend_from_slice(&yb);
    let key = VerifyingKey::from_sec1_bytes(&point).map_err(|_| bad("DPoP jwk is not on P-256"))?;
    let signature =
        Signature::from_slice(&decode(sig_b64)?).map_err(|_| bad("Malformed DPoP signature"))?;
    let signed = &proof[..header_b64.len() + 1 + claims_b64.len()];
    key.verify(signed.as_bytes(), &signature)
        .map_err(|_| bad("DPoP proof signature does not verify"))?;

    let claims: Claims =
        serde_json::from_slice(&decode(claims_b64)?).map_err(|_| bad("Malformed DPoP claims"))?;
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN);
    let jti = jti.ok_or_else(|| bad("DPoP proof needs a jti of at most 256 characters"))?;
    if claims.htm.as_deref() != Some(method) {
        return Err(bad("DPoP htm does not match the request method"));
    }
    let htu = without_query(
        claims
            .htu
            .as_deref()
            .ok_or_else(|| bad("DPoP proof has no htu"))?,
    )?;
    let mut matched = false;
    for url in urls {
        matched |= without_query(url)? == htu;
    }
    if !matched {
        return Err(bad("DPoP htu does not match the request URL"));
    }
    let iat = claims.iat.ok_or_else(|| bad("DPoP proof has no iat"))?;
    if iat > now + PROOF_FUTURE_SECS || iat < now - PROOF_MAX_AGE_SECS {
        return Err(bad("DPoP proof iat is out of range"));
    }
    match claims.nonce.as_deref() {
        Some(nonce) if nonces.accepts(nonce, now) => {}
        _ => return Err(OAuthError::UseDpopNonce),
    }
    if let Some(token) = access_token
        && claims.ath.as_deref() != Some(access_token_hash(token).as_str())
    {
        return Err(bad("DPoP ath does not match the access token"));
    }
    Ok(DpopProof {
        jkt: thumbprint(x, y),
        jti,
        iat,
    })
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;
    use serde_json::json;

    use super::*;

    const URL: &str = "https://pds.example/oauth/token";

    fn proof(key: &SigningKey, claims: serde_json::Value) -> String {
        let point = key.verifying_key().to_encoded_point(false);
        let jwk = json!({
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        });
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature: Signature = key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    fn claims(nonce: &str, now: i64) -> serde_json::Value {
        json!({"jti": "j1", "htm": "POST", "htu": URL, "iat": now, "nonce": nonce})
    }

    #[test]
    fn a_proof_for_this_request_verifies_and_names_its_key() {
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let nonces = Nonces::new("secret");
        let now = 1_800_000_000;
        let urls = [format!("{URL}?x=1")];
        let p = verify(
            &proof(&key, claims(&nonces.current(now), now)),
            "POST",
            &urls,
            None,
            &nonces,
            now,
        )
        .unwrap();
        let point = key.verifying_key().to_encoded_point(false);
        let x = URL_SAFE_NO_PAD.encode(point.x().unwrap());
        let y = URL_SAFE_NO_PAD.encode(point.y().unwrap());
        assert_eq!(p.jkt, thumbprint(&x, &y));
        assert_eq!(p.jti, "j1");
    }

    #[test]
    fn the_rfc_7638_example_thumbprint_is_reproduced_for_an_ec_key() {
        // RFC 7638 gives an RSA example only; this pins the canonical EC form instead: the
        // digest of exactly the four members, sorted, without whitespace.
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(
            br#"{"crv":"P-256","kty":"EC","x":"AA","y":"BB"}"#,
        ));
        assert_eq!(thumbprint("AA", "BB"), expected);
    }

    #[test]
    fn proofs_for_another_request_or_time_or_without_the_nonce_are_refused() {
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let nonces = Nonces::new("secret");
        let now = 1_800_000_000;
        let nonce = nonces.current(now);
        let urls = [URL.to_owned()];
        let check = |c: serde_json::Value, token: Option<&str>| {
            verify(&proof(&key, c), "POST", &urls, token, &nonces, now)
        };
        let mut c = claims(&nonce, now);
        c["htm"] = json!("GET");
        assert!(matches!(
            check(c, None),
            Err(OAuthError::InvalidDpopProof(_))
        ));
        let mut c = claims(&nonce, now);
        c["htu"] = json!("https://elsewhere.example/oauth/token");
        assert!(matches!(
            check(c, None),
            Err(OAuthError::InvalidDpopProof(_))
        ));
        let c = claims(&nonce, now - PROOF_MAX_AGE_SECS - 1);
        assert!(matches!(
            check(c, None),
            Err(OAuthError::InvalidDpopProof(_))
        ));
        let c = claims("stale", now);
        assert!(matches!(check(c, None), Err(OAuthError::UseDpopNonce)));
        let other = Nonces::new("another deployment").current(now);
        assert!(matches!(
            check(claims(&other, now), None),
            Err(OAuthError::UseDpopNonce)
        ));
        // A resource request's proof must hash the token it comes with.
        let c = claims(&nonce, now);
        assert!(matches!(
            check(c, Some("token")),
            Err(OAuthError::InvalidDpopProof(_))
        ));
        let mut c = claims(&nonce, now);
        c["ath"] = json!(access_token_hash("token"));
        assert!(check(c, Some("token")).is_ok());
        // A proof whose signature is another key's.
        let good = proof(&key, claims(&nonce, now));
        let other_key = SigningKey::random(&mut rand::rngs::OsRng);
        let forged = proof(&other_key, claims(&nonce, now));
        let spliced = format!(
            "{}.{}",
            good.rsplit_once('.').unwrap().0,
            forged.rsplit_once('.').unwrap().1
        );
        assert!(matches!(
            verify(&spliced, "POST", &urls, None, &nonces, now),
            Err(OAuthError::InvalidDpopProof(_))
        ));
        assert!(verify("not.a.jwt", "POST", &urls, None, &nonces, now).is_err());
    }

    #[test]
    fn a_nonce_is_accepted_for_one_window_either_side_then_refused() {
        let nonces = Nonces::new("secret");
        let now = 1_800_000_000;
        let nonce = nonces.current(now);
        assert!(nonces.accepts(&nonce, now + NONCE_WINDOW_SECS));
        assert!(nonces.accepts(&nonce, now - NONCE_WINDOW_SECS));
        assert!(!nonces.accepts(&nonce, now + 3 * NONCE_WINDOW_SECS));
    }
}
