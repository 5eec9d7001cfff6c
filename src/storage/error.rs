//! Storage errors.

use crate::repo::RepoError;
use crate::syntax::{Did, Handle};

use super::{RepoStatus, Seq};

/// What went wrong in a storage call.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The repo head moved since it was read: another writer committed first. Retryable.
    #[error("repo {0} changed concurrently")]
    Conflict(Did),
    /// No repo with this DID.
    #[error("repo not found: {0}")]
    RepoNotFound(Did),
    /// A repo with this DID already exists.
    #[error("repo already exists: {0}")]
    RepoExists(Did),
    /// Another repo holds the handle.
    #[error("handle already taken: {0}")]
    HandleTaken(Handle),
    /// The repo cannot be written in its current status.
    #[error("repo {0} is {status}", status = .1.as_str())]
    InactiveRepo(Did, RepoStatus),
    /// Building the commit failed (bad writes, limits, a corrupt stored block).
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A block the store should have (a head commit, an MST node) is missing.
    #[error("stored block {0} is missing")]
    MissingBlock(crate::cid::Cid),
    /// Stored data that does not decode.
    #[error("stored {what} is corrupt: {why}")]
    Corrupt {
        /// What was being read (e.g. "event 42").
        what: String,
        /// Why it could not be used.
        why: &'static str,
    },
    /// A sequence number that cannot be used (outside 1..2^53).
    #[error("sequence number {0} out of range")]
    SeqOutOfRange(Seq),
    /// The backend failed (network, service error). Not retryable by the repo layer.
    #[error("storage backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A compare-and-swap precondition (`swapCommit`, `swapRecord`) did not hold.
    #[error("swap failed on {what}: expected {expected}, found {actual}")]
    SwapMismatch {
        /// What was compared (`commit` or a record path).
        what: String,
        /// The expected CID (or `none`).
        expected: String,
        /// The current CID (or `none`).
        actual: String,
    },
    /// Account keys were needed from a backend opened without key-encryption keys (the
    /// firehose task never holds them).
    #[error("no key-encryption keys configured: account keys cannot be read or written")]
    NoKeySealer,
    /// A status change found the status changed since it was read (see `set_status`).
    #[error("the status of repo {0} changed concurrently")]
    StatusChanged(Did),
    /// The commit kept losing races.
    #[error("gave up on repo {0} after {1} conflicting attempts")]
    TooManyConflicts(Did, usize),
}
