//! Identity errors.

use crate::crypto::CryptoError;
use crate::syntax::{Did, Handle};

/// What went wrong resolving or checking an identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A DID method this PDS cannot resolve.
    #[error("unsupported DID method: {0}")]
    UnsupportedMethod(Did),
    /// A did:web whose identifier is not a bare hostname (with an optional localhost port).
    #[error("invalid did:web: {0}")]
    InvalidDidWeb(Did),
    /// The DID does not exist (404 from the directory or host).
    #[error("DID not found: {0}")]
    DidNotFound(Did),
    /// The DID has been tombstoned or deactivated.
    #[error("DID deactivated: {0}")]
    DidDeactivated(Did),
    /// The handle did not resolve by DNS or HTTPS.
    #[error("handle not found: {0}")]
    HandleNotFound(Handle),
    /// The handle resolved to a DID whose document does not claim it back.
    #[error("handle {handle} resolves to {did}, but the DID document does not list at://{handle}")]
    HandleMismatch {
        /// The handle.
        handle: Handle,
        /// The DID it resolved to.
        did: Did,
    },
    /// A DNS TXT lookup that returned more than one distinct DID.
    #[error("handle {0} has conflicting _atproto TXT records")]
    AmbiguousHandle(Handle),
    /// An HTTP request that failed (connection refused, TLS, timeout, redirect refused).
    #[error("request to {url} failed: {source}")]
    Http {
        /// The URL requested.
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// A non-success HTTP status.
    #[error("{url} answered HTTP {status}")]
    HttpStatus {
        /// The URL requested.
        url: String,
        /// The status code.
        status: u16,
    },
    /// A response larger than the configured cap.
    #[error("response from {0} exceeds the size limit")]
    TooLarge(String),
    /// A response that is not the expected JSON.
    #[error("response from {url} is not a valid {what}: {why}")]
    BadResponse {
        /// The URL requested.
        url: String,
        /// What was expected ("DID document", "PLC operation log").
        what: &'static str,
        /// Why it was rejected.
        why: String,
    },
    /// A DID document without a usable `#atproto` key.
    #[error("DID document of {0} has no valid #atproto signing key")]
    NoSigningKey(Did),
    /// A malformed or invalid PLC operation.
    #[error("invalid PLC operation: {0}")]
    InvalidOperation(String),
    /// A signature that does not verify.
    #[error("signature: {0}")]
    Signature(#[from] CryptoError),
    /// A malformed service-auth JWT.
    #[error("invalid JWT: {0}")]
    InvalidJwt(&'static str),
    /// A JWT past its `exp`.
    #[error("JWT expired")]
    JwtExpired,
    /// A JWT for another audience or method.
    #[error("JWT {claim} mismatch: expected {expected}, got {got}")]
    JwtClaimMismatch {
        /// The claim (`aud`, `lxm`).
        claim: &'static str,
        /// What this service expects.
        expected: String,
        /// What the token says.
        got: String,
    },
    /// The PLC directory refused an operation.
    #[error("PLC directory refused the operation (HTTP {status}): {message}")]
    PlcRejected {
        /// The HTTP status.
        status: u16,
        /// The directory's message.
        message: String,
    },
    /// The DNS resolver could not be built from the configuration.
    #[error("DNS configuration: {0}")]
    DnsConfig(String),
}
