//! [`OAuthError`]: the OAuth error codes (RFC 6749 §5.2, RFC 9449 §7.1) this layer's checks end
//! in; `crate::xrpc` turns them into `{"error","error_description"}` bodies.

use crate::storage::StorageError;

/// Why an OAuth request was refused.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// A parameter is missing, repeated or malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// The client could not be identified or authenticated.
    #[error("{0}")]
    InvalidClient(String),
    /// The code or refresh token is unknown, used, expired, or not this client's.
    #[error("{0}")]
    InvalidGrant(String),
    /// A scope the client did not declare or the server does not serve.
    #[error("{0}")]
    InvalidScope(String),
    /// A response type other than `code`.
    #[error("Unsupported response_type {0}")]
    UnsupportedResponseType(String),
    /// The client's `client_id` or metadata document breaks the profile's rules, or could not
    /// be fetched.
    #[error("{0}")]
    InvalidClientMetadata(String),
    /// A grant type other than `authorization_code` and `refresh_token`.
    #[error("Unsupported grant type: {0}")]
    UnsupportedGrantType(String),
    /// The DPoP proof lacks this server's current nonce: retry with the one sent back.
    #[error("Authorization server requires nonce in DPoP proof")]
    UseDpopNonce,
    /// The DPoP proof is malformed, badly signed, replayed or for another request.
    #[error("{0}")]
    InvalidDpopProof(String),
    /// The person refused, or the request may not go on.
    #[error("{0}")]
    AccessDenied(String),
    /// The key-value store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl OAuthError {
    /// The `error` code of the response body.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::UnsupportedResponseType(_) => "unsupported_response_type",
            OAuthError::InvalidClientMetadata(_) => "invalid_client_metadata",
            OAuthError::UseDpopNonce => "use_dpop_nonce",
            OAuthError::InvalidDpopProof(_) => "invalid_dpop_proof",
            OAuthError::AccessDenied(_) => "access_denied",
            OAuthError::Storage(_) => "server_error",
        }
    }
}
