//! OAuth clients: what a `client_id` stands for. A `client_id` is either the URL of the client's
//! metadata document (fetched over HTTPS, with the resolver's guards against private addresses,
//! size and time limits, and cached), or `http://localhost…`, the development client the atproto
//! profile defines, whose redirect URIs and scope ride in the `client_id`'s query. A
//! confidential client proves itself with a `private_key_jwt` assertion signed by one of the
//! keys its document lists.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::OAuthError;
use crate::identity::Resolver;

/// Largest metadata document read.
const MAX_METADATA_BYTES: usize = 64 * 1024;
/// How long one fetch may take, all of it.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a fetched document is used before it is fetched again.
const CACHE_TTL: Duration = Duration::from_secs(10 * 60);
/// Most documents cached at once (a `client_id` is the caller's to choose).
const CACHE_ENTRIES: usize = 1000;

/// A client's metadata, as far as this server uses it (the fields of
/// https://atproto.com/specs/oauth#client-id-metadata-document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMetadata {
    /// The client's identifier: the URL the document was fetched from.
    pub client_id: String,
    /// Where the person may be sent back with a code.
    pub redirect_uris: Vec<String>,
    /// The scopes the client may ask for, space-separated.
    #[serde(default)]
    pub scope: String,
    /// `authorization_code` (required) and `refresh_token`.
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// `code` (required).
    #[serde(default)]
    pub response_types: Vec<String>,
    /// `none` for public clients.
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    /// Must be true: every token is DPoP-bound.
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    /// `ES256` for `private_key_jwt` clients.
    #[serde(default)]
    pub token_endpoint_auth_signing_alg: Option<String>,
    /// A confidential client's public keys, inline.
    #[serde(default)]
    pub jwks: Option<Jwks>,
    /// Or where to fetch them.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The name shown on the consent page.
    #[serde(default)]
    pub client_name: Option<String>,
    /// The client's home page.
    #[serde(default)]
    pub client_uri: Option<String>,
}

impl ClientMetadata {
    /// Whether the client authenticates with a signed assertion (a confidential client).
    pub fn is_confidential(&self) -> bool {
        self.token_endpoint_auth_method.as_deref() == Some("private_key_jwt")
    }

    /// Whether the scope `wanted` is among those the client declared.
    pub fn declares_scope(&self, wanted: &str) -> bool {
        self.scope.split(' ').any(|s| s == wanted)
    }

    /// Whether `uri` is one of the client's redirect URIs. A loopback redirect matches whatever
    /// its port (RFC 8252 §7.3: native apps take an ephemeral port).
    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| {
            r == uri
                || (is_loopback_redirect(r)
                    && is_loopback_redirect(uri)
                    && without_port(r) == without_port(uri))
        })
    }

    /// Checks a document fetched from `client_id` against the atproto profile's rules.
    fn check(self, client_id: &str) -> Result<ClientMetadata, OAuthError> {
        let invalid =
            |why: &str| OAuthError::InvalidClientMetadata(format!("Client metadata: {why}"));
        if self.client_id != client_id {
            return Err(invalid("client_id does not match the document's URL"));
        }
        if self.redirect_uris.is_empty() {
            return Err(invalid("redirect_uris is empty"));
        }
        if !self.dpop_bound_access_tokens {
            return Err(invalid("dpop_bound_access_tokens must be true"));
        }
        if !self.declares_scope("atproto") {
            return Err(invalid("scope must include atproto"));
        }
        if !self.grant_types.iter().any(|g| g == "authorization_code") {
            return Err(invalid("grant_types must include authorization_code"));
        }
        if !self.response_types.iter().any(|r| r == "code") {
            return Err(invalid("response_types must include code"));
        }
        match self.token_endpoint_auth_method.as_deref() {
            None | Some("none") => {}
            Some("private_key_jwt") => {
                if self.token_endpoint_auth_signing_alg.as_deref() != Some("ES256") {
                    return Err(invalid("token_endpoint_auth_signing_alg must be ES256"));
                }
                if self.jwks.is_none() == self.jwks_uri.is_none() {
                    return Err(invalid("a private_key_jwt client gives jwks or jwks_uri"));
                }
            }
            Some(other) => {
                return Err(invalid(&format!(
                    "token_endpoint_auth_method {other} is not supported (none or private_key_jwt)"
                )));
            }
        }
        for uri in &self.redirect_uris {
            let parsed =
                url::Url::parse(uri).map_err(|_| invalid("a redirect URI is not a URL"))?;
            if parsed.fragment().is_some() {
                return Err(invalid("a redirect URI has a fragment"));
            }
        }
        Ok(self)
    }
}

/// A JSON Web Key Set (RFC 7517 §5), as far as client authentication reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// One public key of a client's set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type (`EC` for the keys used here).
    pub kty: String,
    /// Key id, which assertions name.
    #[serde(default)]
    pub kid: Option<String>,
    /// Curve.
    #[serde(default)]
    pub crv: Option<String>,
    /// X coordinate, base64url.
    #[serde(default)]
    pub x: Option<String>,
    /// Y coordinate, base64url.
    #[serde(default)]
    pub y: Option<String>,
    /// A key marked revoked is never used.
    #[serde(default)]
    pub revoked: Option<serde_json::Value>,
}

/// The `client_assertion_type` of `private_key_jwt` (RFC 7523).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest an assertion may be valid for, and oldest its `iat` may be.
const ASSERTION_MAX_AGE_SECS: i64 = 5 * 60;

/// A checked client assertion: the key that signed it and its `jti` (whose replay check needs
/// storage and is the caller's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAssertion {
    /// The `kid` of the client's key that signed it.
    pub kid: String,
    /// The assertion's unique id.
    pub jti: String,
    /// When it stops being valid (Unix seconds).
    pub exp: i64,
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: serde_json::Value,
    jti: String,
    exp: i64,
    iat: Option<i64>,
}

fn is_loopback_redirect(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| {
        u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1") | Some("[::1]"))
    })
}

fn without_port(uri: &str) -> Option<url::Url> {
    let mut parsed = url::Url::parse(uri).ok()?;
    parsed.set_port(None).ok()?;
    Some(parsed)
}

/// The development client `http://localhost[?redirect_uri=…&scope=…]`: no document, its
/// redirect URIs loopback addresses only (https://atproto.com/specs/oauth#localhost-client-development).
fn loopback_client(client_id: &str) -> Result<ClientMetadata, OAuthError> {
    let invalid =
        |why: &str| OAuthError::InvalidClientMetadata(format!("Loopback client_id: {why}"));
    let url = url::Url::parse(client_id).map_err(|_| invalid("not a URL"))?;
    if url.port().is_some() || !matches!(url.path(), "" | "/") || url.fragment().is_some() {
        return Err(invalid("must be http://localhost with no port or path"));
    }
    let mut redirect_uris = Vec::new();
    let mut scope = None;
    for (name, value) in url.query_pairs() {
        match &*name {
            "redirect_uri" => {
                if !is_loopback_redirect(&value) {
                    return Err(invalid(
                        "redirect_uri must be http://127.0.0.1 or http://[::1]",
                    ));
                }
                redirect_uris.push(value.into_owned());
            }
            "scope" if scope.is_none() => scope = Some(value.into_owned()),
            _ => return Err(invalid(&format!("unexpected parameter {name}"))),
        }
    }
    if redirect_uris.is_empty() {
        redirect_uris = vec!["http://127.0.0.1/".into(), "http://[::1]/".into()];
    }
    Ok(ClientMetadata {
        client_id: client_id.to_owned(),
        redirect_uris,
        scope: scope.unwrap_or_else(|| "atproto".into()),
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        response_types: vec!["code".into()],
        token_endpoint_auth_method: Some("none".into()),
        dpop_bound_access_tokens: true,
        token_endpoint_auth_signing_alg: None,
        jwks: None,
        jwks_uri: None,
        client_name: None,
        client_uri: None,
    })
}

/// Finds clients' metadata, caching fetched documents.
#[derive(Debug)]
pub struct ClientResolver {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, (Instant, ClientMetadata)>>,
}

impl ClientResolver {
    /// A resolver fetching with `http`: the server's client for other services, guarded against
    /// private addresses ([`Resolver::service_client`]).
    pub fn new(http: reqwest::Client) -> ClientResolver {
        ClientResolver {
            http,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The metadata of `client_id`.
    pub async fn resolve(
        &self,
        resolver: &Resolver,
        client_id: &str,
    ) -> Result<ClientMetadata, OAuthError> {
        let is_loopback = url::Url::parse(client_id)
            .is_ok_and(|u| u.scheme() == "http" && u.host_str() == Some("localhost"));
        if is_loopback {
            return loopback_client(client_id);
        }
        if let Some((at, found)) = self.cache_lock().get(client_id) {
            if at.elapsed() < CACHE_TTL {
                return Ok(found.clone());
            }
        }
        let url = url::Url::parse(client_id)
            .map_err(|_| OAuthError::InvalidClientMetadata("client_id is not a URL".into()))?;
        // Plain HTTP and private addresses only where the resolver allows them (dev mode), as
        // the client library's `allowHttp` does for development.
        if url.fragment().is_some() || url.path() == "/" || !resolver.allows_service_url(&url) {
            return Err(OAuthError::InvalidClientMetadata(
                "client_id must be an https URL of a public host, with a path".into(),
            ));
        }
        let metadata = self.fetch(url).await?.check(client_id)?;
        let mut cache = self.cache_lock();
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(client_id.to_owned(), (Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    /// Checks a confidential client's `assertion` (RFC 7523 §3): signed with ES256 by a key of
    /// its set named by `kid`, issued by and about the client, for this server (`audience`, the
    /// issuer), current at `now`.
    pub async fn check_assertion(
        &self,
        resolver: &Resolver,
        client: &ClientMetadata,
        assertion: &str,
        audience: &str,
        now: i64,
    ) -> Result<ClientAssertion, OAuthError> {
        let refused = |why: &str| OAuthError::InvalidClient(format!("Client assertion: {why}"));
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| refused("not a JWT"))?;
        if header.alg != jsonwebtoken::Algorithm::ES256 {
            return Err(refused("alg must be ES256"));
        }
        let kid = header.kid.ok_or_else(|| refused("no kid"))?;
        let jwks = match (&client.jwks, &client.jwks_uri) {
            (Some(jwks), _) => jwks.clone(),
            (None, Some(uri)) => self.fetch_jwks(resolver, uri).await?,
            (None, None) => return Err(refused("the client has no keys")),
        };
        let jwk = jwks
            .keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(&kid) && k.revoked.is_none())
            .ok_or_else(|| refused("kid is not one of the client's keys"))?;
        let (Some(x), Some(y)) = (&jwk.x, &jwk.y) else {
            return Err(refused("the client's key is not an EC key"));
        };
        if jwk.kty != "EC" || jwk.crv.as_deref() != Some("P-256") {
            return Err(refused("the client's key is not a P-256 key"));
        }
        let key = jsonwebtoken::DecodingKey::from_ec_components(x, y)
            .map_err(|_| refused("the client's key is malformed"))?;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        // Checked below, against our own clock and rules.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation)
            .map_err(|_| refused("signature or claims do not verify"))?
            .claims;
        if claims.iss != client.client_id || claims.sub != client.client_id {
            return Err(refused("iss and sub must be the client_id"));
        }
        let audiences: Vec<&str> = match &claims.aud {
            serde_json::Value::String(a) => vec![a.as_str()],
            serde_json::Value::Array(list) => list.iter().filter_map(|a| a.as_str()).collect(),
            _ => Vec::new(),
        };
        if !audiences.contains(&audience) {
            return Err(refused("aud must be this server's issuer"));
        }
        if claims.exp <= now || claims.exp > now + ASSERTION_MAX_AGE_SECS + 60 {
            return Err(refused("expired, or valid for too long"));
        }
        if claims
            .iat
            .is_some_and(|iat| iat < now - ASSERTION_MAX_AGE_SECS || iat > now + 60)
        {
            return Err(refused("iat is not current"));
        }
        if claims.jti.is_empty() || claims.jti.len() > 256 {
            return Err(refused("jti must be 1 to 256 characters"));
        }
        Ok(ClientAssertion {
            kid,
            jti: claims.jti,
            exp: claims.exp,
        })
    }

    async fn fetch_jwks(&self, resolver: &Resolver, uri: &str) -> Result<Jwks, OAuthError> {
        let url = url::Url::parse(uri)
            .ok()
            .filter(|u| resolver.allows_service_url(u))
            .ok_or_else(|| {
                OAuthError::InvalidClientMetadata("jwks_uri is not a public https URL".into())
            })?;
        let body = self.fetch_json(url).await?;
        serde_json::from_slice(&body)
            .map_err(|e| OAuthError::InvalidClientMetadata(format!("Client JWKS: {e}")))
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, ClientMetadata)>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn fetch(&self, url: url::Url) -> Result<ClientMetadata, OAuthError> {
        let body = self.fetch_json(url).await?;
        serde_json::from_slice::<ClientMetadata>(&body)
            .map_err(|e| OAuthError::InvalidClientMetadata(format!("Client metadata: {e}")))
    }

    /// A JSON document's bytes, within the size and time limits.
    async fn fetch_json(&self, url: url::Url) -> Result<Vec<u8>, OAuthError> {
        let unreachable = |why: String| {
            OAuthError::InvalidClientMetadata(format!("Client metadata not fetched: {why}"))
        };
        let fetch = async {
            let mut response = self
                .http
                .get(url)
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            if !response.status().is_success() {
                return Err(unreachable(format!("status {}", response.status())));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| unreachable(e.to_string()))?
            {
                if body.len() + chunk.len() > MAX_METADATA_BYTES {
                    return Err(unreachable("document larger than 64 KB".into()));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .map_err(|_| unreachable("timed out".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> serde_json::Value {
        serde_json::json!({
            "client_id": "https://app.example/client-metadata.json",
            "redirect_uris": ["https://app.example/callback"],
            "scope": "atproto transition:generic",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "dpop_bound_access_tokens": true,
        })
    }

    fn checked(doc: serde_json::Value) -> Result<ClientMetadata, OAuthError> {
        serde_json::from_value::<ClientMetadata>(doc)
            .unwrap()
            .check("https://app.example/client-metadata.json")
    }

    #[test]
    fn a_conforming_document_is_accepted_and_a_nonconforming_one_named() {
        let ok = checked(document()).unwrap();
        assert!(ok.declares_scope("transition:generic"));
        assert!(!ok.declares_scope("transition:chat.bsky"));
        for (field, value) in [
            (
                "client_id",
                serde_json::json!("https://other.example/c.json"),
            ),
            ("redirect_uris", serde_json::json!([])),
            ("dpop_bound_access_tokens", serde_json::json!(false)),
            ("scope", serde_json::json!("transition:generic")),
            ("grant_types", serde_json::json!(["refresh_token"])),
            ("response_types", serde_json::json!(["token"])),
            (
                "token_endpoint_auth_method",
                serde_json::json!("client_secret_basic"),
            ),
        ] {
            let mut doc = document();
            doc[field] = value;
            assert!(
                matches!(checked(doc), Err(OAuthError::InvalidClientMetadata(_))),
                "{field} checked"
            );
        }
    }

    #[test]
    fn the_loopback_client_takes_its_redirects_and_scope_from_the_query() {
        let c = loopback_client("http://localhost").unwrap();
        assert_eq!(c.scope, "atproto");
        assert!(c.allows_redirect("http://127.0.0.1:54321/"));
        assert!(c.allows_redirect("http://[::1]/"));
        assert!(!c.allows_redirect("http://localhost/"));
        let id = "http://localhost?redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&scope=atproto+transition%3Ageneric";
        let c = loopback_client(id).unwrap();
        assert!(c.declares_scope("transition:generic"));
        assert!(c.allows_redirect("http://127.0.0.1:8080/cb"));
        assert!(!c.allows_redirect("http://127.0.0.1:8080/elsewhere"));
        for bad in [
            "http://localhost:3000",
            "http://localhost/app",
            "http://localhost?redirect_uri=https%3A%2F%2Fevil.example%2F",
            "http://localhost?client_secret=x",
        ] {
            assert!(loopback_client(bad).is_err(), "{bad} refused");
        }
    }

    #[test]
    fn only_exact_redirect_uris_match_off_loopback() {
        let c = checked(document()).unwrap();
        assert!(c.allows_redirect("https://app.example/callback"));
        assert!(!c.allows_redirect("https://app.example:444/callback"));
        assert!(!c.allows_redirect("https://app.example/callback?x=1"));
    }
}
