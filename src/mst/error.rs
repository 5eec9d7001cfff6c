//! MST errors.

use crate::cbor::CborError;
use crate::cid::Cid;

/// What went wrong reading or changing an MST.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MstError {
    /// A key that is not a valid repo path (`collection/rkey`).
    #[error("Invalid MST key: {0:?}")]
    InvalidKey(String),
    /// Adding a key that is already present (the text arroba users match on).
    #[error("There is already a value at key: {0}")]
    AlreadyExists(String),
    /// Updating or deleting a key that is not present.
    #[error("no value at key: {0}")]
    NotFound(String),
    /// A node the block source does not have.
    #[error("missing MST block {0}")]
    MissingBlock(Cid),
    /// A node block that is not valid DAG-CBOR.
    #[error("MST node {0} is not valid DAG-CBOR: {1}")]
    NodeCbor(Cid, CborError),
    /// A node block that decodes but breaks the MST rules.
    #[error("MST node {0} is invalid: {1}")]
    InvalidNode(Cid, &'static str),
}
