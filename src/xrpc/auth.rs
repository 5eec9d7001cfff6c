//! Sessions: HS256 access and refresh tokens (`typ` `at+jwt` / `refresh+jwt`,
//! https://atproto.com/specs/xrpc#authentication), single-use refresh tokens, and the extractors
//! handlers use ([`Access`], [`Refresh`], [`Admin`]). Checking passwords is `crate::accounts`.
//!
//! [`Access`] also takes OAuth's DPoP-bound access tokens (`Authorization: DPoP`, checked by
//! `crate::oauth`).
//!
//! Every token's header is checked: the algorithm must be HS256 (so `none` and any asymmetric
//! confusion are refused) and `typ` must match the use, so a refresh token never works as an
//! access token.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, HOST};
use axum::http::request::Parts;
use base64::Engine;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::{AppState, XrpcError};
use crate::oauth::{Permission, Permissions};
use crate::storage::Accounts;
use crate::storage::accounts::RefreshSession;
use crate::syntax::Did;

/// Access tokens last two hours, as the reference PDS's.
pub const ACCESS_TTL_SECS: i64 = 2 * 3600;
/// Refresh tokens last 90 days.
pub const REFRESH_TTL_SECS: i64 = 90 * 24 * 3600;

const TYP_ACCESS: &str = "at+jwt";
const TYP_REFRESH: &str = "refresh+jwt";

/// What a session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Signed in with the account password: everything.
    Full,
    /// Signed in with an app password: no account management.
    AppPassword,
    /// An app password marked privileged.
    AppPasswordPrivileged,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Full => "com.atproto.access",
            Scope::AppPassword => "com.atproto.appPass",
            Scope::AppPasswordPrivileged => "com.atproto.appPassPrivileged",
        }
    }

    fn parse(s: &str) -> Option<Scope> {
        [
            Scope::Full,
            Scope::AppPassword,
            Scope::AppPasswordPrivileged,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    scope: String,
    sub: String,
    aud: String,
    iat: i64,
    exp: i64,
    jti: String,
}

fn random_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>())
}

/// Issues an access and a refresh token for `did` and records the refresh session.
pub async fn create_session(
    state: &AppState,
    did: &Did,
    app_password: Option<(&str, bool)>,
) -> Result<(String, String), XrpcError> {
    let now = Utc::now().timestamp();
    let scope = match app_password {
        None => Scope::Full,
        Some((_, true)) => Scope::AppPasswordPrivileged,
        Some((_, false)) => Scope::AppPassword,
    };
    let key = EncodingKey::from_secret(state.config().jwt_secret.as_bytes());
    let sign = |typ: &str, scope: &str, ttl: i64, jti: String| {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(typ.to_owned());
        let claims = Claims {
            scope: scope.to_owned(),
            sub: did.to_string(),
            aud: state.config().service_did.clone(),
            iat: now,
            exp: now + ttl,
            jti,
        };
        jsonwebtoken::encode(&header, &claims, &key).map_err(XrpcError::internal)
    };
    let refresh_id = random_id();
    let access = sign(TYP_ACCESS, scope.as_str(), ACCESS_TTL_SECS, random_id())?;
    let refresh = sign(
        TYP_REFRESH,
        "com.atproto.refresh",
        REFRESH_TTL_SECS,
        refresh_id.clone(),
    )?;
    let session = RefreshSession {
        app_password: app_password.map(|(n, _)| n.to_owned()),
        privileged: app_password.is_some_and(|(_, p)| p),
        expires_at: Utc::now() + chrono::Duration::seconds(REFRESH_TTL_SECS),
    };
    Accounts(state.storage())
        .put_session(did, &refresh_id, &session)
        .await?;
    Ok((access, refresh))
}

fn decode(state: &AppState, token: &str, typ: &str) -> Result<Claims, XrpcError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| XrpcError::invalid_token("Malformed token"))?;
    if header.alg != Algorithm::HS256 {
        return Err(XrpcError::invalid_token("Unsupported token algorithm"));
    }
    if header.typ.as_deref() != Some(typ) {
        return Err(XrpcError::invalid_token("Wrong token type"));
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[state.config().service_did.as_str()]);
    validation.leeway = 5;
    let key = DecodingKey::from_secret(state.config().jwt_secret.as_bytes());
    match jsonwebtoken::decode::<Claims>(token, &key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
            Err(XrpcError::named("ExpiredToken", "Token has expired"))
        }
        Err(_) => Err(XrpcError::invalid_token("Token could not be verified")),
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, XrpcError> {
    let header = headers
        .get(AUTHORIZATION)
        .ok_or_else(|| XrpcError::auth_required("Authentication Required"))?;
    let value = header
        .to_str()
        .map_err(|_| XrpcError::auth_required("Malformed Authorization header"))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .ok_or_else(|| XrpcError::auth_required("Expected a Bearer token"))
}

/// A request authenticated with an access token.
#[derive(Debug, Clone)]
pub struct Access {
    /// The account.
    pub did: Did,
    /// What the session may do. An OAuth token counts as an app password (privileged with
    /// `transition:chat.bsky`), so whatever app passwords are refused, it is refused too.
    pub scope: Scope,
    /// An OAuth token's permissions, which every method also asks; None for a session token.
    pub permissions: Option<Arc<Permissions>>,
}

impl Access {
    /// Refuses app-password sessions (and OAuth tokens) for account management.
    pub fn require_full(&self) -> Result<(), XrpcError> {
        match self.scope {
            Scope::Full => Ok(()),
            _ => Err(XrpcError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "InvalidToken",
                "This method is not available to app passwords",
            )),
        }
    }

    /// Refuses an OAuth token whose scopes do not grant `wanted` (session tokens pass: what
    /// they may do is their [`Scope`]'s business).
    pub fn require(&self, wanted: Permission<'_>) -> Result<(), XrpcError> {
        match &self.permissions {
            Some(granted) if !granted.allows(&wanted) => {
                Err(XrpcError::insufficient_scope(&wanted.scope()))
            }
            _ => Ok(()),
        }
    }

    /// Refuses any OAuth token, for what only the account's own sign-in may do (the reference
    /// PDS's refusals, `message` included).
    pub fn refuse_oauth(&self, message: &str) -> Result<(), XrpcError> {
        match &self.permissions {
            Some(_) => Err(XrpcError::forbidden("Forbidden", message)),
            None => Ok(()),
        }
    }

    /// Account management: a full session, or an OAuth token granted `wanted` (an `account:`
    /// or `identity:` permission).
    pub fn require_full_or(&self, wanted: Permission<'_>) -> Result<(), XrpcError> {
        match &self.permissions {
            Some(_) => self.require(wanted),
            None => self.require_full(),
        }
    }

    /// Whether the account's e-mail may be shown: to a session token, or an OAuth token granted
    /// `account:email` (or `transition:email`).
    pub fn may_read_email(&self) -> bool {
        self.permissions.as_ref().is_none_or(|p| {
            p.allows(&Permission::Account {
                attr: "email",
                manage: false,
            })
        })
    }

    /// Refuses a write to someone else's repo.
    pub fn require_owner(&self, did: &Did) -> Result<(), XrpcError> {
        if &self.did == did {
            Ok(())
        } else {
            Err(XrpcError::forbidden(
                "Forbidden",
                "The token's account does not own this repo",
            ))
        }
    }
}

impl FromRequestParts<AppState> for Access {
    type Rejection = XrpcError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(token) = dpop_token(&parts.headers) {
            let access = oauth_access(parts, state, token).await?;
            tracing::Span::current().record("did", access.did.as_str());
            return Ok(access);
        }
        let claims = decode(state, bearer(&parts.headers)?, TYP_ACCESS)?;
        let scope = Scope::parse(&claims.scope)
            .ok_or_else(|| XrpcError::invalid_token("Bad token scope"))?;
        let did =
            Did::parse(&claims.sub).map_err(|_| XrpcError::invalid_token("Bad token subject"))?;
        tracing::Span::current().record("did", did.as_str());
        Ok(Access {
            did,
            scope,
            permissions: None,
        })
    }
}

/// The token of an `Authorization: DPoP <token>` header (RFC 9449 §7.1), if that is the scheme.
fn dpop_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("DPoP ").map(str::trim)
}

/// The URLs a DPoP proof for this request may name: the public URL's origin, and the origin the
/// client reached (its `Host`) over either scheme, since TLS may end before this process.
fn request_urls(state: &AppState, parts: &Parts) -> Vec<String> {
    let path = parts.uri.path();
    let mut urls = vec![state.oauth().url_of(path)];
    if let Some(host) = parts.headers.get(HOST).and_then(|h| h.to_str().ok()) {
        urls.push(format!("https://{host}{path}"));
        urls.push(format!("http://{host}{path}"));
    }
    urls
}

/// An OAuth request: the DPoP proof checked against the request and the token, the token
/// against its session; its scopes become the [`Permissions`] each method asks.
async fn oauth_access(parts: &Parts, state: &AppState, token: &str) -> Result<Access, XrpcError> {
    let oauth = state.oauth();
    let now = Utc::now().timestamp();
    let refused = |e| XrpcError::dpop_refused(e, oauth.nonces().current(now));
    let proof = parts.headers.get("dpop").and_then(|v| v.to_str().ok());
    let urls = request_urls(state, parts);
    let method = parts.method.as_str();
    let proof = oauth
        .check_proof(state.storage(), proof, method, &urls, Some(token), now)
        .await
        .map_err(refused)?;
    let claims = oauth
        .check_access(state.storage(), token, &proof)
        .await
        .map_err(refused)?;
    let did = Did::parse(&claims.sub).map_err(|_| XrpcError::invalid_token("Bad token subject"))?;
    let permissions = claims.permissions();
    let scope = if permissions.has_chat() {
        Scope::AppPasswordPrivileged
    } else {
        Scope::AppPassword
    };
    Ok(Access {
        did,
        scope,
        permissions: Some(Arc::new(permissions)),
    })
}

/// Who uploads a blob: an account's own session, or a service-auth token the account issued to
/// this PDS for `com.atproto.repo.uploadBlob` (how the video service hands back a processed
/// video), checked against the account's current signing key from its DID document.
#[derive(Debug, Clone)]
pub struct Uploader {
    /// The account the blob is for.
    pub did: Did,
    /// An OAuth token's permissions (`blob:` scopes), asked once the blob's type is known.
    pub permissions: Option<Arc<Permissions>>,
}

impl FromRequestParts<AppState> for Uploader {
    type Rejection = XrpcError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = dpop_token(&parts.headers).is_some()
            || jsonwebtoken::decode_header(bearer(&parts.headers)?)
                .is_ok_and(|h| h.alg == Algorithm::HS256);
        if session {
            let access = Access::from_request_parts(parts, state).await?;
            return Ok(Uploader {
                did: access.did,
                permissions: access.permissions,
            });
        }
        let token = bearer(&parts.headers)?;
        let did = service_caller(state, token, "com.atproto.repo.uploadBlob").await?;
        tracing::Span::current().record("did", did.as_str());
        Ok(Uploader {
            did,
            permissions: None,
        })
    }
}

/// The account a service-auth `token` speaks for: issued by it for this PDS (`aud`) and the
/// method `lxm`, checked against its DID document's current key.
async fn service_caller(state: &AppState, token: &str, lxm: &str) -> Result<Did, XrpcError> {
    let lxm = crate::syntax::Nsid::parse(lxm).map_err(XrpcError::internal)?;
    let claims = crate::identity::service_auth::verify(
        state.resolver(),
        token,
        &state.config().service_did,
        Some(&lxm),
        Utc::now().timestamp(),
    )
    .await
    .map_err(|e| XrpcError::invalid_token(format!("Bad service token: {e}")))?;
    Did::parse(&claims.iss)
        .map_err(|_| XrpcError::invalid_token("Bad service token: iss is not a DID"))
}

/// The account the service-auth token in `headers` speaks for, for the method `lxm` (an
/// account moving in calls `createAccount` this way).
pub(super) async fn service_token_caller(
    state: &AppState,
    headers: &HeaderMap,
    lxm: &str,
) -> Result<Did, XrpcError> {
    service_caller(state, bearer(headers)?, lxm).await
}

/// A request authenticated with a refresh token (refreshSession, deleteSession).
#[derive(Debug, Clone)]
pub struct Refresh {
    /// The account.
    pub did: Did,
    /// The refresh session's id.
    pub id: String,
}

impl FromRequestParts<AppState> for Refresh {
    type Rejection = XrpcError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let claims = decode(state, bearer(&parts.headers)?, TYP_REFRESH)?;
        if claims.scope != "com.atproto.refresh" {
            return Err(XrpcError::invalid_token("Bad token scope"));
        }
        let did =
            Did::parse(&claims.sub).map_err(|_| XrpcError::invalid_token("Bad token subject"))?;
        tracing::Span::current().record("did", did.as_str());
        Ok(Refresh {
            did,
            id: claims.jti,
        })
    }
}

/// A request with `admin` HTTP Basic credentials.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = XrpcError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let decoded = header
            .strip_prefix("Basic ")
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let Some(password) = &state.config().admin_password else {
            return Err(XrpcError::auth_required(
                "Admin methods are not served here",
            ));
        };
        let expected = format!("admin:{password}");
        // Compare digests in constant time: the time taken says nothing about the password,
        // not even its length.
        let digest = |s: &str| -> [u8; 32] { sha2::Sha256::digest(s.as_bytes()).into() };
        let same: bool =
            subtle::ConstantTimeEq::ct_eq(&digest(&decoded)[..], &digest(&expected)[..]).into();
        if same {
            Ok(Admin)
        } else {
            Err(XrpcError::auth_required("Admin credentials required"))
        }
    }
}
