//! Repo errors.

use crate::car::CarError;
use crate::cbor::CborError;
use crate::cid::Cid;
use crate::crypto::CryptoError;
use crate::mst::MstError;
use crate::tid::Tid;

/// What went wrong building, reading or verifying a commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoError {
    /// An MST failure (bad key, missing node, malformed node).
    #[error(transparent)]
    Mst(#[from] MstError),
    /// A CAR that could not be read.
    #[error(transparent)]
    Car(#[from] CarError),
    /// A block the source does not have (a commit or record).
    #[error("missing block {0}")]
    MissingBlock(Cid),
    /// A block that is not valid DAG-CBOR.
    #[error("block {0} is not valid DAG-CBOR: {1}")]
    Cbor(Cid, CborError),
    /// A commit object with missing or malformed fields.
    #[error("invalid commit {0}: {1}")]
    InvalidCommit(Cid, &'static str),
    /// A signature that does not verify, or a bad key.
    #[error("commit signature: {0}")]
    Signature(#[from] CryptoError),
    /// More writes than one commit may carry.
    #[error("Too many writes. Max: {max}, got {0}", max = super::MAX_WRITES)]
    TooManyWrites(usize),
    /// A record larger than the limit.
    #[error("record {path} is {size} bytes; the limit is {max}", max = super::MAX_RECORD_BYTES)]
    RecordTooLarge {
        /// The record's path.
        path: String,
        /// Its encoded size.
        size: usize,
    },
    /// A record that is not a map (every record is an object).
    #[error("record {0} is not an object")]
    RecordNotAnObject(String),
    /// A commit whose blocks exceed the relay limit.
    #[error("commit blocks total {0} bytes; the limit is {max}", max = super::MAX_COMMIT_BLOCKS_BYTES)]
    CommitTooLarge(usize),
    /// Creating a record that exists.
    #[error("record already exists: {0}")]
    RecordExists(String),
    /// Updating or deleting a record that does not exist.
    #[error("record not found: {0}")]
    RecordNotFound(String),
    /// Two writes to one path in the same commit.
    #[error("more than one write to {0} in one commit")]
    DuplicatePath(String),
    /// A rev not greater than the previous commit's.
    #[error("rev {new} is not after the previous rev {prev}")]
    RevNotIncreasing {
        /// The previous rev.
        prev: Tid,
        /// The rejected rev.
        new: Tid,
    },
    /// An op that does not match the tree it claims to have changed.
    #[error("operation on {0} does not match the commit's tree")]
    OpMismatch(String),
    /// Inverting the ops did not give `prevData`.
    #[error("inverted operations give {got}, expected prevData {expected:?}")]
    InversionMismatch {
        /// The `prevData` claimed.
        expected: Option<Cid>,
        /// The root the inversion produced.
        got: Cid,
    },
}

impl RepoError {
    /// Maps a block-source miss inside the MST to the same variant as other misses.
    pub fn missing_block(&self) -> Option<Cid> {
        match self {
            RepoError::MissingBlock(c) | RepoError::Mst(MstError::MissingBlock(c)) => Some(*c),
            _ => None,
        }
    }
}
