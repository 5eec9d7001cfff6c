//! OAuth clients: what a `client_id` stands for. A `client_id` is either the URL of the client's
//! metadata document (fetched over HTTPS, with the resolver's guards against private addresses,
//! size and time limits, and cached), or `http://localhost…`, the development client the atproto
//! profile defines, whose redirect URIs and scope ride in the `client_id`'s query.

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
    /// The name shown on the consent page.
    #[serde(default)]
    pub client_name: Option<String>,
    /// The client's home page.
    #[serde(default)]
    pub client_uri: Option<String>,
}

impl ClientMetadata {
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
        let invalid = |why: &str| OAuthError::InvalidClient(format!("Client metadata: {why}"));
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
            Some(other) => {
                return Err(invalid(&format!(
                    "token_endpoint_auth_method {other} is not supported (public clients only)"
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
    let invalid = |why: &str| OAuthError::InvalidClient(format!("Loopback client_id: {why}"));
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
        client_name: None,
        client_uri: None,
    })
}

/// Finds clients' metadata, caching fetched documents.
#[derive(Debug)]
pub struct ClientResolver {
    http: Result<reqwest::Client, String>,
    cache: Mutex<HashMap<String, (Instant, ClientMetadata)>>,
}

impl ClientResolver {
    /// A resolver fetching with `resolver`'s guarded client.
    pub fn new(resolver: &Resolver) -> ClientResolver {
        ClientResolver {
            http: resolver.service_client().map_err(|e| e.to_string()),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The metadata of `client_id`.
    pub async fn resolve(
        &self,
        resolver: &Resolver,
        client_id: &str,
    ) -> Result<ClientMetadata, OAuthError> {
        if client_id == "http://localhost"
            || client_id.starts_with("http://localhost/")
            || client_id.starts_with("http://localhost?")
        {
            return loopback_client(client_id);
        }
        if let Some((at, found)) = self.cache_lock().get(client_id) {
            if at.elapsed() < CACHE_TTL {
                return Ok(found.clone());
            }
        }
        let url = url::Url::parse(client_id)
            .map_err(|_| OAuthError::InvalidClient("client_id is not a URL".into()))?;
        if url.scheme() != "https" || url.fragment().is_some() || !resolver.allows_service_url(&url)
        {
            return Err(OAuthError::InvalidClient(
                "client_id must be an https URL of a public host".into(),
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

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, ClientMetadata)>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn fetch(&self, url: url::Url) -> Result<ClientMetadata, OAuthError> {
        let unreachable =
            |why: String| OAuthError::InvalidClient(format!("Client metadata not fetched: {why}"));
        let http = self.http.as_ref().map_err(|e| unreachable(e.clone()))?;
        let fetch = async {
            let mut response = http
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
            serde_json::from_slice::<ClientMetadata>(&body)
                .map_err(|e| OAuthError::InvalidClient(format!("Client metadata: {e}")))
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
                matches!(checked(doc), Err(OAuthError::InvalidClient(_))),
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
