//! [`AuthorizationServer`]: the authorization code flow of the atproto OAuth profile, over the
//! key-value store so that every process of a deployment shares it. Pushed requests, codes and
//! sessions each live in a namespace of their own, are taken with conditional writes (a code is
//! redeemed once, a refresh token rotates once), and carry their expiry.
//!
//! Access tokens are HS256 JWTs under a key derived from the deployment's JWT secret (the
//! reference PDS signs its OAuth tokens with that secret too), bound to the client's DPoP key
//! (`cnf.jkt`) and to their session (`sid`), so revoking the session ends them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::OAuthError;
use super::client::{ASSERTION_TYPE, ClientMetadata, ClientResolver};
use super::dpop::{self, DpopProof, Nonces};
use super::scope::Permissions;
use crate::identity::Resolver;
use crate::storage::{KvCondition, KvStore};
use crate::syntax::Did;

/// How long a pushed request may wait for the person's answer.
pub const REQUEST_TTL_SECS: i64 = 5 * 60;
/// How long a code may wait to be redeemed.
pub const CODE_TTL_SECS: i64 = 60;
/// How long an access token lasts (the reference PDS's figure).
pub const ACCESS_TTL_SECS: i64 = 60 * 60;
/// How long a session of a public client lasts, refreshes included (the profile's ceiling).
pub const SESSION_TTL_SECS: i64 = 14 * 24 * 3600;
/// How long a session of a confidential client lasts (the profile's ceiling).
pub const CONFIDENTIAL_SESSION_TTL_SECS: i64 = 180 * 24 * 3600;

/// The fixed scopes this server grants; the granular ones (`repo:`, `blob:`, `rpc:`,
/// `account:`, `identity:`) are parsed by [`Permissions`].
pub const SCOPES: [&str; 4] = [
    "atproto",
    "transition:generic",
    "transition:chat.bsky",
    "transition:email",
];

const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
const NS_REQUESTS: &str = "oauth_requests";
const NS_CODES: &str = "oauth_codes";
const NS_SESSIONS: &str = "oauth_sessions";
const NS_DPOP_JTIS: &str = "oauth_dpop_jti";
const NS_ASSERTION_JTIS: &str = "oauth_client_jti";
const NS_DEVICES: &str = "oauth_devices";
const NS_CONSENTS: &str = "oauth_consents";

/// How long a browser stays signed in to the sign-in page (its account chooser).
pub const DEVICE_TTL_SECS: i64 = 30 * 24 * 3600;
const TYP_ACCESS: &str = "at+jwt";

/// An authorization request a client pushed, waiting for the person's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushedRequest {
    /// The client that asked.
    pub client_id: String,
    /// Where the answer goes.
    pub redirect_uri: String,
    /// The scopes asked for, space-separated.
    pub scope: String,
    /// The client's opaque state, returned with the answer.
    pub state: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The account the client suggests (handle or DID).
    pub login_hint: Option<String>,
    /// `login`, `consent`, `select_account` or `none`.
    pub prompt: Option<String>,
    /// `query` (the default) or `fragment`.
    pub response_mode: String,
    /// The DPoP key the request was pushed with: the code is redeemed with it only.
    pub dpop_jkt: Option<String>,
    /// Whether the client authenticated (`private_key_jwt`): the code is redeemed the same way.
    #[serde(default)]
    pub confidential: bool,
    /// Unix seconds after which the request is gone.
    pub expires_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct IssuedCode {
    request: PushedRequest,
    sub: String,
    expires_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    client_id: String,
    sub: String,
    scope: String,
    jkt: String,
    /// Whether the client authenticates (every refresh must, too).
    #[serde(default)]
    confidential: bool,
    /// SHA-256 of the current refresh token's secret half, hex.
    refresh_hash: String,
    expires_at: i64,
}

/// The token endpoint's answer.
#[derive(Debug, Clone, Serialize)]
pub struct TokenSet {
    /// The DPoP-bound access token.
    pub access_token: String,
    /// Always `DPoP`.
    pub token_type: &'static str,
    /// Seconds the access token lasts.
    pub expires_in: i64,
    /// The single-use refresh token.
    pub refresh_token: String,
    /// The scopes granted.
    pub scope: String,
    /// The account's DID.
    pub sub: String,
}

/// What a checked access token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// This server.
    pub iss: String,
    /// The service DID.
    pub aud: String,
    /// The account.
    pub sub: String,
    /// Issued at.
    pub iat: i64,
    /// Expires at.
    pub exp: i64,
    /// The token's id.
    pub jti: String,
    /// The scopes granted, space-separated.
    pub scope: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The session it belongs to.
    pub sid: String,
    /// The DPoP key it is bound to.
    pub cnf: Confirmation,
}

/// RFC 9449's `cnf` claim.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Confirmation {
    /// The DPoP key's thumbprint.
    pub jkt: String,
}

impl AccessClaims {
    /// What the token's scopes permit.
    pub fn permissions(&self) -> Permissions {
        Permissions::granted(&self.scope)
    }
}

/// The authorization server of one deployment.
#[derive(Debug)]
pub struct AuthorizationServer {
    issuer: String,
    audience: String,
    token_key: [u8; 32],
    nonces: Nonces,
    clients: ClientResolver,
}

/// An identifier that says when it stops mattering: `<prefix>-<expiry, 10 digits>-<random>`, so
/// a namespace of them lists oldest first and [`AuthorizationServer::sweep`] finds the dead.
fn expiring_id(prefix: &str, expires_at: i64) -> String {
    format!("{prefix}-{expires_at:010}-{}", random_token(16))
}

/// A storage key for `name` (hashed) that lists by expiry, as [`expiring_id`].
fn expiring_key(expires_at: i64, name: &str) -> String {
    format!("x-{expires_at:010}-{}", sha256_hex(name))
}

/// The storage key of a browser's sign-in cookie `device`, unless it has expired.
fn device_key(device: &str, now: i64) -> Option<String> {
    let expires = expiry_of(device).filter(|at| *at >= now)?;
    device
        .starts_with("dev-")
        .then(|| expiring_key(expires, device))
}

/// The expiry an [`expiring_id`] or [`expiring_key`] carries.
fn expiry_of(key: &str) -> Option<i64> {
    key.split('-').nth(1)?.parse().ok()
}

/// Namespaces whose keys carry their expiry, swept by [`AuthorizationServer::sweep`].
const EXPIRING: [&str; 6] = [
    NS_REQUESTS,
    NS_CODES,
    NS_SESSIONS,
    NS_DPOP_JTIS,
    NS_ASSERTION_JTIS,
    NS_DEVICES,
];
/// Most entries one sweep looks at in each namespace.
const SWEEP_BATCH: usize = 50;

fn random_token(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(raw)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn invalid(why: impl Into<String>) -> OAuthError {
    OAuthError::InvalidRequest(why.into())
}

/// A parameter's value, or `invalid_request` naming it.
fn required<'a>(
    params: &'a std::collections::BTreeMap<String, String>,
    name: &str,
) -> Result<&'a str, OAuthError> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid(format!("Missing {name}")))
}

impl AuthorizationServer {
    /// The server at `issuer` (the PDS's public URL) for tokens whose audience is
    /// `service_did`, keyed by the deployment's `jwt_secret`, fetching client documents with
    /// `http` (the guarded client, [`Resolver::service_client`]).
    pub fn new(
        issuer: &str,
        service_did: &str,
        jwt_secret: &str,
        http: reqwest::Client,
    ) -> AuthorizationServer {
        let token_key = Sha256::new()
            .chain_update(b"arroba oauth access token\0")
            .chain_update(jwt_secret.as_bytes())
            .finalize()
            .into();
        AuthorizationServer {
            issuer: issuer.trim_end_matches('/').to_owned(),
            audience: service_did.to_owned(),
            token_key,
            nonces: Nonces::new(jwt_secret),
            clients: ClientResolver::new(http),
        }
    }

    /// The DPoP nonces.
    pub fn nonces(&self) -> &Nonces {
        &self.nonces
    }

    /// The authorization server metadata document (RFC 8414, with the atproto profile's fields).
    pub fn metadata(&self) -> serde_json::Value {
        let at = |path: &str| format!("{}{path}", self.issuer);
        serde_json::json!({
            "issuer": self.issuer,
            "authorization_endpoint": at("/oauth/authorize"),
            "token_endpoint": at("/oauth/token"),
            "pushed_authorization_request_endpoint": at("/oauth/par"),
            "revocation_endpoint": at("/oauth/revoke"),
            "require_pushed_authorization_requests": true,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "fragment"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": SCOPES,
            "subject_types_supported": ["public"],
            "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
            "dpop_signing_alg_values_supported": ["ES256"],
            "authorization_response_iss_parameter_supported": true,
            "client_id_metadata_document_supported": true,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": true,
            "require_request_uri_registration": true,
            "prompt_values_supported": ["none", "login", "consent", "select_account"],
            "protected_resources": [self.issuer],
        })
    }

    /// The protected resource metadata document (RFC 9728): this PDS is its own
    /// authorization server.
    pub fn resource_metadata(&self) -> serde_json::Value {
        serde_json::json!({
            "resource": self.issuer,
            "authorization_servers": [self.issuer],
            "scopes_supported": [],
            "bearer_methods_supported": ["header"],
            "resource_documentation": "https://atproto.com",
        })
    }

    /// The URL a proof for `path` on this server names.
    pub fn url_of(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Checks the DPoP `proof` for a `method` request to one of `urls` and records its `jti`,
    /// so the same proof is refused the second time.
    pub async fn check_proof(
        &self,
        kv: &dyn KvStore,
        proof: Option<&str>,
        method: &str,
        urls: &[String],
        access_token: Option<&str>,
        now: i64,
    ) -> Result<DpopProof, OAuthError> {
        let proof =
            proof.ok_or_else(|| OAuthError::InvalidDpopProof("DPoP proof required".into()))?;
        let checked = dpop::verify(proof, method, urls, access_token, &self.nonces, now)?;
        let expires = checked.iat + dpop::PROOF_MAX_AGE_SECS + 60;
        let key = expiring_key(expires, &format!("{}:{}", checked.jkt, checked.jti));
        if kv
            .kv_add(NS_DPOP_JTIS, &key, 1, 1, expires)
            .await?
            .is_none()
        {
            return Err(OAuthError::InvalidDpopProof(
                "DPoP proof replayed (jti already used)".into(),
            ));
        }
        Ok(checked)
    }

    /// The metadata of `client_id`.
    pub async fn client(
        &self,
        resolver: &Resolver,
        client_id: &str,
    ) -> Result<ClientMetadata, OAuthError> {
        self.clients.resolve(resolver, client_id).await
    }

    /// Accepts a pushed authorization request; returns its `request_uri` and lifetime.
    pub async fn push(
        &self,
        kv: &dyn KvStore,
        resolver: &Resolver,
        params: &std::collections::BTreeMap<String, String>,
        proof: Option<&DpopProof>,
        now: i64,
    ) -> Result<(String, i64), OAuthError> {
        if params.contains_key("request") {
            return Err(invalid("Request objects are not supported"));
        }
        let client = self
            .client(resolver, required(params, "client_id")?)
            .await?;
        self.authenticate(kv, resolver, &client, params, now)
            .await?;
        let response_type = required(params, "response_type")?;
        if response_type != "code" {
            return Err(OAuthError::UnsupportedResponseType(
                response_type.to_owned(),
            ));
        }
        let redirect_uri = match params.get("redirect_uri") {
            Some(uri) => uri.clone(),
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => return Err(invalid("Missing redirect_uri")),
        };
        if !client.allows_redirect(&redirect_uri) {
            return Err(invalid("redirect_uri is not one of the client's"));
        }
        let challenge = required(params, "code_challenge")?;
        if params.get("code_challenge_method").map(String::as_str) != Some("S256") {
            return Err(invalid("code_challenge_method must be S256"));
        }
        if challenge.len() != 43 || URL_SAFE_NO_PAD.decode(challenge).is_err() {
            return Err(invalid("code_challenge is not a base64url SHA-256 digest"));
        }
        let scope = required(params, "scope")?;
        let mut scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
        scopes.dedup();
        if !scopes.contains(&"atproto") {
            return Err(OAuthError::InvalidScope(
                "scope must include atproto".into(),
            ));
        }
        for s in &scopes {
            Permissions::parse(s).map_err(OAuthError::InvalidScope)?;
            if !client.declares_scope(s) {
                return Err(OAuthError::InvalidScope(format!(
                    "Scope {s} is not among the client's"
                )));
            }
        }
        let prompt = params.get("prompt").cloned();
        if let Some(p) = &prompt {
            if !["none", "login", "consent", "select_account"].contains(&p.as_str()) {
                return Err(invalid("Unknown prompt"));
            }
        }
        let response_mode = params
            .get("response_mode")
            .cloned()
            .unwrap_or_else(|| "query".into());
        if response_mode != "query" && response_mode != "fragment" {
            return Err(invalid("response_mode must be query or fragment"));
        }
        // The key the code will be redeemed with: the proof's, or the one `dpop_jkt` names
        // (RFC 9449 §10); a request with neither is bound when its code is redeemed.
        let dpop_jkt = match (proof, params.get("dpop_jkt")) {
            (Some(p), Some(jkt)) if jkt != &p.jkt => {
                return Err(invalid("dpop_jkt does not match the DPoP proof's key"));
            }
            (Some(p), _) => Some(p.jkt.clone()),
            (None, jkt) => jkt.cloned(),
        };
        let request = PushedRequest {
            client_id: client.client_id.clone(),
            redirect_uri,
            scope: scopes.join(" "),
            state: required(params, "state")?.to_owned(),
            code_challenge: challenge.to_owned(),
            login_hint: params.get("login_hint").cloned().filter(|h| !h.is_empty()),
            prompt,
            response_mode,
            dpop_jkt,
            confidential: client.is_confidential(),
            expires_at: now + REQUEST_TTL_SECS,
        };
        let id = expiring_id("req", request.expires_at);
        let value = serde_json::to_vec(&request).map_err(|e| invalid(e.to_string()))?;
        kv.kv_put_expiring(
            NS_REQUESTS,
            &id,
            &value,
            KvCondition::IfAbsent,
            request.expires_at,
        )
        .await?;
        // Each new request clears away some that expired, on the backends without expiry.
        self.sweep(kv, now).await?;
        Ok((format!("{REQUEST_URI_PREFIX}{id}"), REQUEST_TTL_SECS))
    }

    /// Authenticates a confidential client by its assertion (`private_key_jwt`, whose `jti` is
    /// recorded so it is used once); a public client must send none.
    async fn authenticate(
        &self,
        kv: &dyn KvStore,
        resolver: &Resolver,
        client: &ClientMetadata,
        params: &std::collections::BTreeMap<String, String>,
        now: i64,
    ) -> Result<(), OAuthError> {
        let assertion = params.get("client_assertion");
        if !client.is_confidential() {
            if assertion.is_some() || params.contains_key("client_assertion_type") {
                return Err(OAuthError::InvalidClient(
                    "This client is public: it sends no client assertion".into(),
                ));
            }
            return Ok(());
        }
        if params.get("client_assertion_type").map(String::as_str) != Some(ASSERTION_TYPE) {
            return Err(OAuthError::InvalidClient(format!(
                "client_assertion_type must be {ASSERTION_TYPE}"
            )));
        }
        let assertion = assertion
            .ok_or_else(|| OAuthError::InvalidClient("Missing client_assertion".into()))?;
        let checked = self
            .clients
            .check_assertion(resolver, client, assertion, &self.issuer, now)
            .await?;
        let expires = checked.exp + 60;
        let key = expiring_key(expires, &format!("{}:{}", client.client_id, checked.jti));
        let claimed = kv.kv_add(NS_ASSERTION_JTIS, &key, 1, 1, expires).await?;
        if claimed.is_none() {
            return Err(OAuthError::InvalidClient(
                "Client assertion replayed (jti already used)".into(),
            ));
        }
        Ok(())
    }

    /// The pending request `request_uri` of `client_id`, if it has not expired.
    pub async fn pending(
        &self,
        kv: &dyn KvStore,
        client_id: &str,
        request_uri: &str,
        now: i64,
    ) -> Result<PushedRequest, OAuthError> {
        let id = request_id(request_uri)?;
        let stored = kv
            .kv_get(NS_REQUESTS, id)
            .await?
            .ok_or_else(|| invalid("Unknown or used request_uri"))?;
        check_request(id, &stored, client_id, now)
    }

    /// Deletes what expired before `now` in the flow's namespaces, oldest first, a batch at a
    /// time (DynamoDB expires them itself; the embedded store keeps what nobody deletes).
    pub async fn sweep(&self, kv: &dyn KvStore, now: i64) -> Result<usize, OAuthError> {
        let mut swept = 0;
        for ns in EXPIRING {
            for (key, _) in kv.kv_list(ns, None, SWEEP_BATCH).await? {
                match expiry_of(&key) {
                    Some(at) if at < now => {
                        kv.kv_delete(ns, &key, None).await?;
                        swept += 1;
                    }
                    // Listed oldest first: the rest are alive.
                    Some(_) => break,
                    // Written before keys carried their expiry: not this sweep's to judge.
                    None => {}
                }
            }
        }
        Ok(swept)
    }

    /// The accounts signed in on the browser `device` (its cookie's value), most recent first;
    /// none once [`DEVICE_TTL_SECS`] have passed since the last password sign-in.
    pub async fn device_accounts(
        &self,
        kv: &dyn KvStore,
        device: &str,
        now: i64,
    ) -> Result<Vec<Did>, OAuthError> {
        let Some(key) = device_key(device, now) else {
            return Ok(Vec::new());
        };
        let Some(stored) = kv.kv_get(NS_DEVICES, &key).await? else {
            return Ok(Vec::new());
        };
        let signed_in: Vec<String> = serde_json::from_slice(&stored).unwrap_or_default();
        Ok(signed_in
            .iter()
            .filter_map(|d| Did::parse(d).ok())
            .collect())
    }

    /// Records that `did` signed in with its password on the browser whose cookie was `device`;
    /// returns the browser's new cookie value (each sign-in starts a new 30 days, under a new
    /// id, the old one deleted).
    pub async fn remember_sign_in(
        &self,
        kv: &dyn KvStore,
        device: Option<&str>,
        did: &Did,
        now: i64,
    ) -> Result<String, OAuthError> {
        let mut signed_in = match device {
            Some(old) => {
                let accounts = self.device_accounts(kv, old, now).await?;
                if let Some(key) = device_key(old, now) {
                    kv.kv_delete(NS_DEVICES, &key, None).await?;
                }
                accounts.into_iter().map(|d| d.to_string()).collect()
            }
            None => Vec::new(),
        };
        signed_in.retain(|d| d != did.as_str());
        signed_in.insert(0, did.to_string());
        signed_in.truncate(10);
        let expires = now + DEVICE_TTL_SECS;
        let device = expiring_id("dev", expires);
        let value = serde_json::to_vec(&signed_in).map_err(|e| invalid(e.to_string()))?;
        let key = expiring_key(expires, &device);
        kv.kv_put_expiring(NS_DEVICES, &key, &value, KvCondition::Always, expires)
            .await?;
        Ok(device)
    }

    /// Records that `did` granted `client_id` the scopes `scope`, so a later `prompt=none`
    /// request for no more than those may be answered without asking.
    pub async fn record_consent(
        &self,
        kv: &dyn KvStore,
        did: &Did,
        client_id: &str,
        scope: &str,
    ) -> Result<(), OAuthError> {
        let key = consent_key(did, client_id);
        kv.kv_put(NS_CONSENTS, &key, scope.as_bytes(), KvCondition::Always)
            .await?;
        Ok(())
    }

    /// Whether `did` has granted `client_id` every scope of `scope` before.
    pub async fn has_consent(
        &self,
        kv: &dyn KvStore,
        did: &Did,
        client_id: &str,
        scope: &str,
    ) -> Result<bool, OAuthError> {
        let Some(granted) = kv.kv_get(NS_CONSENTS, &consent_key(did, client_id)).await? else {
            return Ok(false);
        };
        let granted = String::from_utf8_lossy(&granted);
        let granted: Vec<&str> = granted.split(' ').collect();
        Ok(scope.split(' ').all(|s| granted.contains(&s)))
    }

    /// Ends the request `request_uri` with `answer` and returns the URL to send the browser to:
    /// the redirect URI with a code, or with the refusal. The request is taken in the same
    /// conditional delete that reads it, so it is answered once.
    pub async fn answer(
        &self,
        kv: &dyn KvStore,
        client_id: &str,
        request_uri: &str,
        answer: Answer<'_>,
        now: i64,
    ) -> Result<String, OAuthError> {
        let id = request_id(request_uri)?;
        let taken = kv
            .kv_delete(NS_REQUESTS, id, None)
            .await?
            .ok_or_else(|| invalid("Unknown, used or already answered request_uri"))?;
        let request = check_request(id, &taken, client_id, now)?;
        let mut params: Vec<(&str, String)> = vec![
            ("iss", self.issuer.clone()),
            ("state", request.state.clone()),
        ];
        match answer {
            Answer::Grant(did) => {
                let expires_at = now + CODE_TTL_SECS;
                let code = expiring_id("cod", expires_at);
                let issued = IssuedCode {
                    request: request.clone(),
                    sub: did.to_string(),
                    expires_at,
                };
                let value = serde_json::to_vec(&issued).map_err(|e| invalid(e.to_string()))?;
                kv.kv_put_expiring(NS_CODES, &code, &value, KvCondition::IfAbsent, expires_at)
                    .await?;
                params.push(("code", code));
            }
            Answer::Refuse(error) => {
                params.push(("error", error.code().to_owned()));
                params.push(("error_description", error.description().to_owned()));
            }
        }
        redirect_with(&request, &params)
    }

    /// The token endpoint: redeems a code or rotates a refresh token, for the key `proof` names.
    pub async fn token(
        &self,
        kv: &dyn KvStore,
        resolver: &Resolver,
        params: &std::collections::BTreeMap<String, String>,
        proof: &DpopProof,
        now: i64,
    ) -> Result<TokenSet, OAuthError> {
        let grant_type = required(params, "grant_type")?;
        if grant_type != "authorization_code" && grant_type != "refresh_token" {
            return Err(OAuthError::UnsupportedGrantType(grant_type.to_owned()));
        }
        let client = self
            .client(resolver, required(params, "client_id")?)
            .await?;
        self.authenticate(kv, resolver, &client, params, now)
            .await?;
        if grant_type == "authorization_code" {
            self.redeem_code(kv, params, &client, proof, now).await
        } else {
            self.refresh(kv, params, &client, proof, now).await
        }
    }

    async fn redeem_code(
        &self,
        kv: &dyn KvStore,
        params: &std::collections::BTreeMap<String, String>,
        client: &ClientMetadata,
        proof: &DpopProof,
        now: i64,
    ) -> Result<TokenSet, OAuthError> {
        let code = required(params, "code")?;
        let verifier = required(params, "code_verifier")?;
        let grant = |why: &str| OAuthError::InvalidGrant(why.to_owned());
        let taken = kv
            .kv_delete(NS_CODES, code, None)
            .await?
            .ok_or_else(|| grant("Unknown or used code"))?;
        let issued: IssuedCode =
            serde_json::from_slice(&taken).map_err(|_| grant("Unreadable code"))?;
        if issued.expires_at < now {
            return Err(grant("The code has expired"));
        }
        if issued.request.client_id != client.client_id {
            return Err(grant("The code was issued to another client"));
        }
        if issued.request.confidential != client.is_confidential() {
            return Err(grant(
                "The client authenticates differently than when it asked",
            ));
        }
        if params.get("redirect_uri") != Some(&issued.request.redirect_uri) {
            return Err(grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        if !(43..=128).contains(&verifier.len()) {
            return Err(grant("code_verifier must be 43 to 128 characters"));
        }
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let same: bool = subtle::ConstantTimeEq::ct_eq(
            computed.as_bytes(),
            issued.request.code_challenge.as_bytes(),
        )
        .into();
        if !same {
            return Err(grant("code_verifier does not match the code_challenge"));
        }
        if issued
            .request
            .dpop_jkt
            .as_deref()
            .is_some_and(|j| j != proof.jkt)
        {
            return Err(grant(
                "The DPoP key is not the one the request was made with",
            ));
        }
        let lifetime = if client.is_confidential() {
            CONFIDENTIAL_SESSION_TTL_SECS
        } else {
            SESSION_TTL_SECS
        };
        let sid = expiring_id("ses", now + lifetime);
        let session = Session {
            client_id: client.client_id.clone(),
            sub: issued.sub,
            scope: issued.request.scope,
            jkt: proof.jkt.clone(),
            confidential: client.is_confidential(),
            refresh_hash: String::new(),
            expires_at: now + lifetime,
        };
        self.issue(kv, &sid, session, None, now).await
    }

    async fn refresh(
        &self,
        kv: &dyn KvStore,
        params: &std::collections::BTreeMap<String, String>,
        client: &ClientMetadata,
        proof: &DpopProof,
        now: i64,
    ) -> Result<TokenSet, OAuthError> {
        let grant = |why: &str| OAuthError::InvalidGrant(why.to_owned());
        let token = required(params, "refresh_token")?;
        let (sid, secret) = token
            .split_once('.')
            .ok_or_else(|| grant("Malformed refresh token"))?;
        let stored = kv
            .kv_get(NS_SESSIONS, sid)
            .await?
            .ok_or_else(|| grant("Unknown or revoked refresh token"))?;
        let session: Session =
            serde_json::from_slice(&stored).map_err(|_| grant("Unreadable session"))?;
        let same: bool = subtle::ConstantTimeEq::ct_eq(
            sha256_hex(secret).as_bytes(),
            session.refresh_hash.as_bytes(),
        )
        .into();
        if !same {
            // A refresh token used twice means it leaked: end the session (RFC 9700 §4.14.2).
            kv.kv_delete(NS_SESSIONS, sid, Some(&stored)).await?;
            return Err(grant("Refresh token already used; the session is revoked"));
        }
        if session.expires_at < now {
            kv.kv_delete(NS_SESSIONS, sid, Some(&stored)).await?;
            return Err(grant("The session has expired"));
        }
        if session.client_id != client.client_id {
            return Err(grant("The refresh token was issued to another client"));
        }
        if session.confidential != client.is_confidential() {
            return Err(grant(
                "The client authenticates differently than when it signed in",
            ));
        }
        if session.jkt != proof.jkt {
            return Err(grant("The DPoP key is not the one the session is bound to"));
        }
        self.issue(kv, sid, session, Some(&stored), now).await
    }

    /// Stores `session` with a fresh refresh token (replacing `previous` atomically, so two
    /// concurrent refreshes cannot both win) and signs an access token for it.
    async fn issue(
        &self,
        kv: &dyn KvStore,
        sid: &str,
        mut session: Session,
        previous: Option<&[u8]>,
        now: i64,
    ) -> Result<TokenSet, OAuthError> {
        let secret = random_token(32);
        session.refresh_hash = sha256_hex(&secret);
        let value = serde_json::to_vec(&session).map_err(|e| invalid(e.to_string()))?;
        let condition = match previous {
            Some(old) => KvCondition::IfEquals(old),
            None => KvCondition::IfAbsent,
        };
        let stored = kv
            .kv_put_expiring(NS_SESSIONS, sid, &value, condition, session.expires_at)
            .await?;
        if !stored {
            return Err(OAuthError::InvalidGrant(
                "The refresh token was used concurrently".into(),
            ));
        }
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: session.sub.clone(),
            iat: now,
            exp: now + ACCESS_TTL_SECS,
            jti: random_token(16),
            scope: session.scope.clone(),
            client_id: session.client_id.clone(),
            sid: sid.to_owned(),
            cnf: Confirmation {
                jkt: session.jkt.clone(),
            },
        };
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(TYP_ACCESS.to_owned());
        let access_token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&self.token_key))
                .map_err(|e| invalid(e.to_string()))?;
        Ok(TokenSet {
            access_token,
            token_type: "DPoP",
            expires_in: ACCESS_TTL_SECS,
            refresh_token: format!("{sid}.{secret}"),
            scope: session.scope,
            sub: session.sub,
        })
    }

    /// Revokes the session a refresh or access `token` belongs to (RFC 7009: an unknown token
    /// is no error).
    pub async fn revoke(&self, kv: &dyn KvStore, token: &str) -> Result<(), OAuthError> {
        let sid = match token.split_once('.') {
            Some((sid, _)) if sid.starts_with("ses-") => Some(sid.to_owned()),
            _ => self.decode(token, false).ok().map(|c| c.sid),
        };
        if let Some(sid) = sid {
            kv.kv_delete(NS_SESSIONS, &sid, None).await?;
        }
        Ok(())
    }

    fn decode(&self, token: &str, check_exp: bool) -> Result<AccessClaims, OAuthError> {
        let bad = || OAuthError::InvalidGrant("Invalid access token".into());
        let header = jsonwebtoken::decode_header(token).map_err(|_| bad())?;
        if header.alg != Algorithm::HS256 || header.typ.as_deref() != Some(TYP_ACCESS) {
            return Err(bad());
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[self.audience.as_str()]);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.validate_exp = check_exp;
        validation.leeway = 5;
        jsonwebtoken::decode::<AccessClaims>(
            token,
            &DecodingKey::from_secret(&self.token_key),
            &validation,
        )
        .map(|d| d.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                OAuthError::InvalidGrant("Access token expired".into())
            }
            _ => bad(),
        })
    }

    /// Checks an access token presented with the proof `proof`: signature, audience, expiry,
    /// the key binding, and that its session still stands.
    pub async fn check_access(
        &self,
        kv: &dyn KvStore,
        token: &str,
        proof: &DpopProof,
    ) -> Result<AccessClaims, OAuthError> {
        let claims = self.decode(token, true)?;
        if claims.cnf.jkt != proof.jkt {
            return Err(OAuthError::InvalidDpopProof(
                "The DPoP key is not the one the token is bound to".into(),
            ));
        }
        if kv.kv_get(NS_SESSIONS, &claims.sid).await?.is_none() {
            return Err(OAuthError::InvalidGrant("The session was revoked".into()));
        }
        Ok(claims)
    }
}

/// The person's answer to a pushed request.
#[derive(Debug, Clone, Copy)]
pub enum Answer<'a> {
    /// A code for this account.
    Grant(&'a Did),
    /// The request goes back refused.
    Refuse(Refusal),
}

/// Why a request goes back without a code (OpenID Connect Core §3.1.2.6's codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The person said no.
    AccessDenied,
    /// `prompt=none`, and no account is signed in on the browser.
    LoginRequired,
    /// `prompt=none`, and the account never granted this app these scopes.
    ConsentRequired,
    /// `prompt=none`, and more than one account could answer.
    AccountSelectionRequired,
}

impl Refusal {
    fn code(self) -> &'static str {
        match self {
            Refusal::AccessDenied => "access_denied",
            Refusal::LoginRequired => "login_required",
            Refusal::ConsentRequired => "consent_required",
            Refusal::AccountSelectionRequired => "account_selection_required",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Refusal::AccessDenied => "The request was refused",
            Refusal::LoginRequired => "No account is signed in on this browser",
            Refusal::ConsentRequired => "The account has not granted these scopes to this app",
            Refusal::AccountSelectionRequired => "More than one account is signed in",
        }
    }
}

/// The storage key of what `did` granted `client_id`.
fn consent_key(did: &Did, client_id: &str) -> String {
    sha256_hex(&format!("{did} {client_id}"))
}

/// The storage key of a `request_uri`.
fn request_id(request_uri: &str) -> Result<&str, OAuthError> {
    request_uri
        .strip_prefix(REQUEST_URI_PREFIX)
        .ok_or_else(|| invalid("Unknown request_uri"))
}

/// A stored pushed request, if it is `client_id`'s and alive at `now`.
fn check_request(
    id: &str,
    stored: &[u8],
    client_id: &str,
    now: i64,
) -> Result<PushedRequest, OAuthError> {
    let request: PushedRequest = serde_json::from_slice(stored).map_err(|_| {
        OAuthError::Storage(crate::storage::StorageError::Corrupt {
            what: format!("OAuth request {id}"),
            why: "not a pushed request",
        })
    })?;
    if request.expires_at < now {
        return Err(invalid("This sign-in request has expired; start again"));
    }
    if request.client_id != client_id {
        return Err(invalid("request_uri is not this client's"));
    }
    Ok(request)
}

/// `request`'s redirect URI with `answer` in its query or fragment.
fn redirect_with(request: &PushedRequest, answer: &[(&str, String)]) -> Result<String, OAuthError> {
    let mut url = url::Url::parse(&request.redirect_uri)
        .map_err(|_| invalid("The client's redirect_uri is not a URL"))?;
    if request.response_mode == "fragment" {
        let encoded: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(answer.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        url.set_fragment(Some(&encoded));
    } else {
        url.query_pairs_mut()
            .extend_pairs(answer.iter().map(|(k, v)| (*k, v.as_str())));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityConfig;
    use crate::storage::MemoryStorage;

    const CLIENT: &str = "http://localhost";
    const NOW: i64 = 1_800_000_000;

    fn server() -> (AuthorizationServer, Resolver) {
        let resolver = Resolver::new(IdentityConfig::default()).unwrap();
        let server = AuthorizationServer::new(
            "https://pds.example",
            "did:web:pds.example",
            "s",
            reqwest::Client::new(),
        );
        (server, resolver)
    }

    fn proof() -> DpopProof {
        DpopProof {
            jkt: "key-1".into(),
            jti: "j".into(),
            iat: NOW,
        }
    }

    /// A pushed request answered with a code for alice at `NOW`; returns (code, verifier).
    async fn code(
        server: &AuthorizationServer,
        resolver: &Resolver,
        kv: &dyn KvStore,
    ) -> (String, String) {
        let verifier = "v".repeat(43);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let params: std::collections::BTreeMap<String, String> = [
            ("client_id", CLIENT),
            ("response_type", "code"),
            ("redirect_uri", "http://127.0.0.1/"),
            ("scope", "atproto"),
            ("state", "s"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let (uri, _) = server
            .push(kv, resolver, &params, Some(&proof()), NOW)
            .await
            .unwrap();
        let did = Did::parse("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa").unwrap();
        let url = server
            .answer(kv, CLIENT, &uri, Answer::Grant(&did), NOW)
            .await
            .unwrap();
        let code = url::Url::parse(&url)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        (code, verifier)
    }

    /// Tokens for alice, signed in through the whole flow at `now`.
    async fn signed_in(
        server: &AuthorizationServer,
        resolver: &Resolver,
        kv: &dyn KvStore,
        now: i64,
    ) -> TokenSet {
        let (code, verifier) = code(server, resolver, kv).await;
        let params = redeem_params(&code, &verifier);
        server
            .token(kv, resolver, &params, &proof(), now)
            .await
            .unwrap()
    }

    fn redeem_params(code: &str, verifier: &str) -> std::collections::BTreeMap<String, String> {
        [
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT),
            ("redirect_uri", "http://127.0.0.1/"),
            ("code", code),
            ("code_verifier", verifier),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[tokio::test]
    async fn an_expired_code_is_refused_and_a_fresh_one_redeemed() {
        let (server, resolver) = server();
        let kv = MemoryStorage::new();
        let (code, verifier) = code(&server, &resolver, &kv).await;
        let late = NOW + CODE_TTL_SECS + 1;
        let refused = server
            .token(
                &kv,
                &resolver,
                &redeem_params(&code, &verifier),
                &proof(),
                late,
            )
            .await;
        assert!(matches!(refused, Err(OAuthError::InvalidGrant(m)) if m.contains("expired")));
        let tokens = signed_in(&server, &resolver, &kv, NOW + 5).await;
        assert_eq!(tokens.sub, "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa");
    }

    #[tokio::test]
    async fn an_expired_request_or_session_is_refused() {
        let (server, resolver) = server();
        let kv = MemoryStorage::new();
        let tokens = signed_in(&server, &resolver, &kv, NOW).await;
        let params: std::collections::BTreeMap<String, String> = [
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT),
            ("refresh_token", tokens.refresh_token.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let late = NOW + SESSION_TTL_SECS + 1;
        let refused = server.token(&kv, &resolver, &params, &proof(), late).await;
        assert!(matches!(refused, Err(OAuthError::InvalidGrant(m)) if m.contains("expired")));

        let uri = "urn:ietf:params:oauth:request_uri:req-missing";
        assert!(server.pending(&kv, CLIENT, uri, NOW).await.is_err());
    }

    #[tokio::test]
    async fn expired_state_is_swept_oldest_first_and_live_state_kept() {
        let (server, resolver) = server();
        let kv = MemoryStorage::new();
        let (code, _) = code(&server, &resolver, &kv).await;
        let did = Did::parse("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa").unwrap();
        let device = server.remember_sign_in(&kv, None, &did, NOW).await.unwrap();
        assert_eq!(
            server.device_accounts(&kv, &device, NOW).await.unwrap(),
            std::slice::from_ref(&did)
        );
        // A minute on, the code is dead; the device is not.
        let later = NOW + CODE_TTL_SECS + 1;
        assert_eq!(server.sweep(&kv, later).await.unwrap(), 1);
        assert!(kv.kv_get(NS_CODES, &code).await.unwrap().is_none());
        assert_eq!(
            server
                .device_accounts(&kv, &device, later)
                .await
                .unwrap()
                .len(),
            1
        );
        // A month on, the browser's sign-in is over, and swept.
        let month = NOW + DEVICE_TTL_SECS + 1;
        assert!(
            server
                .device_accounts(&kv, &device, month)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(server.sweep(&kv, month).await.unwrap(), 1);
        assert!(kv.kv_list(NS_DEVICES, None, 10).await.unwrap().is_empty());
        // A new sign-in moves the browser to a new id and forgets the old one.
        let first = server.remember_sign_in(&kv, None, &did, NOW).await.unwrap();
        let second = server
            .remember_sign_in(&kv, Some(&first), &did, NOW + 5)
            .await
            .unwrap();
        assert_ne!(first, second);
        assert!(
            server
                .device_accounts(&kv, &first, NOW + 5)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            server
                .device_accounts(&kv, &second, NOW + 5)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn access_tokens_name_their_key_and_session() {
        let (server, resolver) = server();
        let kv = MemoryStorage::new();
        let tokens = signed_in(&server, &resolver, &kv, chrono::Utc::now().timestamp()).await;
        let claims = server
            .check_access(&kv, &tokens.access_token, &proof())
            .await
            .unwrap();
        assert_eq!(claims.cnf.jkt, "key-1");
        assert_eq!(claims.scope, "atproto");
        let other = DpopProof {
            jkt: "key-2".into(),
            ..proof()
        };
        assert!(
            server
                .check_access(&kv, &tokens.access_token, &other)
                .await
                .is_err()
        );
        server.revoke(&kv, &tokens.access_token).await.unwrap();
        assert!(
            server
                .check_access(&kv, &tokens.access_token, &proof())
                .await
                .is_err()
        );
    }
}
