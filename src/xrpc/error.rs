//! [`XrpcError`]: the one place that picks HTTP statuses and `{"error","message"}` bodies.
//!
//! Every lower-layer error converts into it. A client's mistake is logged at `debug`; an
//! internal failure answers 500 with a generic message and logs the detail at `error`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::accounts::AccountError;
use crate::cbor::JsonError;
use crate::identity::IdentityError;
use crate::lexicon::LexiconError;
use crate::mst::MstError;
use crate::oauth::OAuthError;
use crate::repo::RepoError;
use crate::storage::import::ImportError;
use crate::storage::{RepoStatus, StorageError};
use crate::syntax::SyntaxError;

/// The header a server's DPoP nonce travels in (RFC 9449 §8).
pub(super) const DPOP_NONCE: header::HeaderName = header::HeaderName::from_static("dpop-nonce");

/// An XRPC error response.
#[derive(Debug)]
pub struct XrpcError {
    status: StatusCode,
    name: String,
    message: String,
    /// Logged, never sent: the detail behind a 500.
    internal: Option<String>,
    /// The OAuth endpoints' body shape, `{"error","error_description"}`, instead of XRPC's.
    oauth_body: bool,
    /// Headers the refusal carries besides the body (`DPoP-Nonce`, `WWW-Authenticate`).
    headers: Vec<(header::HeaderName, String)>,
}

impl XrpcError {
    /// An error with a status, a name (no spaces) and a message.
    pub fn new(
        status: StatusCode,
        name: impl Into<String>,
        message: impl Into<String>,
    ) -> XrpcError {
        XrpcError {
            status,
            name: name.into(),
            message: message.into(),
            internal: None,
            oauth_body: false,
            headers: Vec::new(),
        }
    }

    /// 400 `InvalidRequest`.
    pub fn invalid(message: impl Into<String>) -> XrpcError {
        XrpcError::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }

    /// 400 with a named error from the method's lexicon.
    pub fn named(name: &str, message: impl Into<String>) -> XrpcError {
        XrpcError::new(StatusCode::BAD_REQUEST, name, message)
    }

    /// 401 `AuthenticationRequired` (no or unusable credentials).
    pub fn auth_required(message: impl Into<String>) -> XrpcError {
        XrpcError::new(StatusCode::UNAUTHORIZED, "AuthenticationRequired", message)
    }

    /// 401 `InvalidToken`.
    pub fn invalid_token(message: impl Into<String>) -> XrpcError {
        XrpcError::new(StatusCode::UNAUTHORIZED, "InvalidToken", message)
    }

    /// 403 with a name.
    pub fn forbidden(name: &str, message: impl Into<String>) -> XrpcError {
        XrpcError::new(StatusCode::FORBIDDEN, name, message)
    }

    /// 413 `PayloadTooLarge`.
    pub fn too_large(message: impl Into<String>) -> XrpcError {
        XrpcError::new(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge", message)
    }

    /// 429 `RateLimitExceeded` (the `RateLimit-*` headers are added by `limits::headers`).
    pub fn rate_limited() -> XrpcError {
        XrpcError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RateLimitExceeded",
            "Rate Limit Exceeded",
        )
    }

    /// 500 with a generic message; `detail` is logged.
    pub fn internal(detail: impl std::fmt::Display) -> XrpcError {
        XrpcError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            name: "InternalServerError".into(),
            message: "Internal Server Error".into(),
            internal: Some(detail.to_string()),
            oauth_body: false,
            headers: Vec::new(),
        }
    }

    /// An OAuth endpoint's refusal (RFC 6749 §5.2 body), with the current DPoP `nonce` so the
    /// client can retry.
    pub fn oauth(e: OAuthError, nonce: String) -> XrpcError {
        let status = match &e {
            OAuthError::Storage(_) => return XrpcError::internal(e),
            OAuthError::AccessDenied(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut error = XrpcError::new(status, e.code(), e.to_string());
        error.oauth_body = true;
        error.headers.push((DPOP_NONCE, nonce));
        error
    }

    /// 403 `ScopeMissingError` (the reference PDS's name and message) for an OAuth token whose
    /// scopes lack `scope`, with RFC 6750 §3.1's `insufficient_scope` challenge.
    pub fn insufficient_scope(scope: &str) -> XrpcError {
        let message = format!("Missing required scope \"{scope}\"");
        let challenge = dpop_challenge("insufficient_scope", &message);
        let mut error = XrpcError::new(StatusCode::FORBIDDEN, "ScopeMissingError", message);
        error.headers.push((header::WWW_AUTHENTICATE, challenge));
        error
    }

    /// A resource request's refusal of its DPoP-bound token: 401 with the challenge RFC 9449
    /// §7.1 defines (`WWW-Authenticate: DPoP error=…`) and the current `nonce`.
    pub fn dpop_refused(e: OAuthError, nonce: String) -> XrpcError {
        let code = match &e {
            OAuthError::Storage(_) => return XrpcError::internal(e),
            OAuthError::UseDpopNonce => "use_dpop_nonce",
            OAuthError::InvalidDpopProof(_) => "invalid_dpop_proof",
            _ => "invalid_token",
        };
        let message = e.to_string();
        let challenge = dpop_challenge(code, &message);
        let mut error = XrpcError::new(StatusCode::UNAUTHORIZED, code, message);
        error.headers.push((header::WWW_AUTHENTICATE, challenge));
        error.headers.push((DPOP_NONCE, nonce));
        error
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The error for reading a repo that is not active (`RepoDeactivated`, `RepoTakendown`, …).
    pub fn inactive_repo(did: &crate::syntax::Did, status: RepoStatus) -> XrpcError {
        let name = match status {
            RepoStatus::Takendown => "RepoTakendown",
            RepoStatus::Suspended => "RepoSuspended",
            _ => "RepoDeactivated",
        };
        XrpcError::named(name, format!("Repo {did} is {}", status.as_str()))
    }
}

/// A `WWW-Authenticate: DPoP` challenge (RFC 9449 §7.1) naming `error`, its description quoted.
fn dpop_challenge(error: &str, description: &str) -> String {
    let description = description.replace(['"', '\\'], "");
    format!("DPoP algs=\"ES256\", error=\"{error}\", error_description=\"{description}\"")
}

impl std::fmt::Display for XrpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.name,
            self.message
        )
    }
}

impl IntoResponse for XrpcError {
    fn into_response(self) -> Response {
        match &self.internal {
            Some(detail) => {
                tracing::error!(status = self.status.as_u16(), error = %detail, "internal error")
            }
            None => {
                tracing::debug!(status = self.status.as_u16(), error = %self.name, message = %self.message, "client error")
            }
        }
        let body = if self.oauth_body {
            serde_json::json!({ "error": self.name, "error_description": self.message })
        } else {
            serde_json::json!({ "error": self.name, "message": self.message })
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

impl From<AccountError> for XrpcError {
    fn from(e: AccountError) -> Self {
        let message = e.to_string();
        match e {
            AccountError::UnsupportedDomain(_) => XrpcError::named("UnsupportedDomain", message),
            AccountError::InvalidHandle { .. } => XrpcError::named("InvalidHandle", message),
            AccountError::HandleNotAvailable(_) => XrpcError::named("HandleNotAvailable", message),
            AccountError::InvalidPassword(_) => XrpcError::named("InvalidPassword", message),
            AccountError::InvalidInviteCode(_) => XrpcError::named("InvalidInviteCode", message),
            AccountError::InvalidToken => XrpcError::named("InvalidToken", message),
            AccountError::Refused(_) => XrpcError::invalid(message),
            AccountError::ExpiredToken => XrpcError::named("ExpiredToken", message),
            AccountError::TokenRequired => XrpcError::named("TokenRequired", message),
            AccountError::AuthFactorTokenRequired => {
                XrpcError::new(StatusCode::UNAUTHORIZED, "AuthFactorTokenRequired", message)
            }
            AccountError::DidCreation(_) => XrpcError::named("UnresolvableDid", message),
            AccountError::HandleDoesNotResolve(..)
            | AccountError::InvalidEmail(_)
            | AccountError::EmailTaken(_)
            | AccountError::InvalidRecoveryKey(_)
            | AccountError::AlreadyExists(_)
            | AccountError::BadPlcOperation(_)
            | AccountError::InvalidAppPasswordName(_)
            | AccountError::OutOfRange(_) => XrpcError::invalid(message),
            AccountError::WrongCredentials => XrpcError::auth_required(message),
            AccountError::Takendown(_) => {
                XrpcError::new(StatusCode::UNAUTHORIZED, "AccountTakedown", message)
            }
            // Flows look an account up by a token's subject: gone means the token is stale.
            AccountError::NotFound(_) => XrpcError::invalid_token("Account not found"),
            AccountError::StatusChangeRefused { .. } => {
                XrpcError::forbidden("AccountTakedown", message)
            }
            AccountError::Storage(e) => e.into(),
            AccountError::Identity(e) => e.into(),
            AccountError::Hashing(detail) => XrpcError::internal(detail),
        }
    }
}

impl From<StorageError> for XrpcError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::RepoNotFound(did) => {
                XrpcError::named("RepoNotFound", format!("Could not find repo: {did}"))
            }
            StorageError::RepoExists(did) => {
                XrpcError::invalid(format!("Repo already exists: {did}"))
            }
            StorageError::HandleTaken(h) => {
                XrpcError::named("HandleNotAvailable", format!("Handle already taken: {h}"))
            }
            StorageError::InactiveRepo(did, status) => {
                let name = if status == RepoStatus::Takendown {
                    "AccountTakedown"
                } else {
                    "AccountDeactivated"
                };
                XrpcError::forbidden(name, format!("Account {did} is {}", status.as_str()))
            }
            StorageError::Repo(r) => r.into(),
            StorageError::SwapMismatch { .. } => XrpcError::named("InvalidSwap", e.to_string()),
            StorageError::Conflict(did) | StorageError::TooManyConflicts(did, _) => XrpcError::new(
                StatusCode::CONFLICT,
                "ConcurrentModification",
                format!("repo {did} was changed concurrently; retry"),
            ),
            other => XrpcError::internal(other),
        }
    }
}

impl From<ImportError> for XrpcError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Storage(e) => e.into(),
            ImportError::Spool(detail) => XrpcError::internal(detail),
            // The CAR, the commit or the tree is wrong: the client's to fix, and named.
            other => XrpcError::invalid(other.to_string()),
        }
    }
}

impl From<RepoError> for XrpcError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::TooManyWrites(_)
            | RepoError::DuplicatePath(_)
            | RepoError::RecordNotAnObject(_) => XrpcError::invalid(e.to_string()),
            RepoError::RecordExists(p) => XrpcError::invalid(format!("Record already exists: {p}")),
            RepoError::RecordNotFound(p) => {
                XrpcError::invalid(format!("Could not find record: {p}"))
            }
            RepoError::RecordTooLarge { .. } | RepoError::CommitTooLarge(_) => {
                XrpcError::too_large(e.to_string())
            }
            RepoError::Mst(MstError::InvalidKey(k)) => {
                XrpcError::invalid(format!("Invalid record path: {k}"))
            }
            other => XrpcError::internal(other),
        }
    }
}

impl From<SyntaxError> for XrpcError {
    fn from(e: SyntaxError) -> Self {
        XrpcError::invalid(e.to_string())
    }
}

impl From<LexiconError> for XrpcError {
    fn from(e: LexiconError) -> Self {
        XrpcError::invalid(format!("Invalid {}", e))
    }
}

impl From<JsonError> for XrpcError {
    fn from(e: JsonError) -> Self {
        XrpcError::invalid(e.to_string())
    }
}

impl From<IdentityError> for XrpcError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::HandleNotFound(h) => {
                XrpcError::named("HandleNotFound", format!("Unable to resolve handle: {h}"))
            }
            IdentityError::DidNotFound(d) => {
                XrpcError::named("DidNotFound", format!("Could not resolve {d}"))
            }
            IdentityError::PlcRejected { .. }
            | IdentityError::Http { .. }
            | IdentityError::HttpStatus { .. } => XrpcError::internal(e),
            other => XrpcError::invalid(other.to_string()),
        }
    }
}
