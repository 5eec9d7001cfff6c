//! Syntax errors, one variant per identifier kind, each carrying the rejected text.

/// An identifier that does not match its atproto syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    /// Not a valid DID.
    #[error("invalid DID: {0:?}")]
    Did(String),
    /// Not a valid handle.
    #[error("invalid handle: {0:?}")]
    Handle(String),
    /// Not a valid NSID.
    #[error("invalid NSID: {0:?}")]
    Nsid(String),
    /// Not a valid record key.
    #[error("invalid record key: {0:?}")]
    RecordKey(String),
    /// Not a valid AT-URI.
    #[error("invalid AT-URI: {0:?}")]
    AtUri(String),
    /// Neither a handle nor a DID.
    #[error("invalid at-identifier (neither handle nor DID): {0:?}")]
    AtIdentifier(String),
    /// Not a valid TID.
    #[error("invalid TID: {0:?}")]
    Tid(String),
}
