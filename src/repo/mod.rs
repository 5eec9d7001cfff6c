//! Repositories: signed commits over an MST (https://atproto.com/specs/repository).
//!
//! [`Repo`] is a repo's state at one commit. [`Repo::create`] makes the genesis commit;
//! [`Repo::apply_writes`] turns a batch of [`Write`]s into the next signed [`Commit`] and the
//! [`CommitData`] a store persists and the firehose sends (new blocks, ops with `prev`, `since`,
//! `prevData`, covering-proof blocks). Everything here is pure: blocks come from a
//! [`crate::block::BlockSource`], time arrives as a [`crate::tid::Tid`], and nothing is written.
//! Storing commits atomically is [`crate::storage`]'s job; [`verify`] holds the checks a relay or
//! `arroba repo verify` runs on someone else's commit.

mod commit;
mod data;
mod error;
mod export;
mod state;
pub mod verify;
mod write;

pub use commit::Commit;
pub use data::CommitData;
pub use error::RepoError;
pub use export::ExportError;
pub use state::Repo;
pub use write::{
    MAX_COMMIT_BLOCKS_BYTES, MAX_RECORD_BYTES, MAX_WRITES, RepoOp, Write, WriteAction, blob_refs,
};
