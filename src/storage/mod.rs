//! Storage: the roles a backend plays ([`RepoStore`], [`BlockStore`], [`EventLog`],
//! [`KvStore`], together [`Storage`]), the backends, and the flows that run repo logic against
//! them.
//!
//! Each role method documents what is atomic and which error means "lost a race" (a
//! [`StorageError::Conflict`] the commit driver retries; every other error surfaces). Backends:
//! [`MemoryStorage`] (tests and benchmarks), [`DiskStorage`] (local runs, on redb) and
//! [`DynamoStorage`] (production); each passes the same conformance suite
//! (`tests/it/storage_conformance.rs`), also through a wrapper that injects failures. Account
//! data ([`Accounts`]) and remote blobs ([`RemoteBlobs`]) are written once, over [`KvStore`].
//! [`Sequencer`] is the reader side of the event log; [`commit_writes`] and [`create_repo`]
//! build commits with [`crate::repo`] and retry on conflicts. Blob bytes are in [`BlobStore`]s.
//! Sequence numbers and event order: `docs/storage.md`; the DynamoDB layout: `docs/dynamodb.md`.
//! Building a backend from configuration is `crate::app`'s job, not this module's.

pub mod accounts;
mod aws;
mod blobstore;
mod cache;
pub mod codec;
mod collect;
mod config;
mod disk;
mod driver;
pub mod dynamo;
mod error;
mod export;
mod history;
pub mod import;
mod memory;
mod purge;
mod remote_blobs;
mod repo_cache;
mod roles;
mod sealed;
mod sequencer;
mod types;

pub use accounts::Accounts;
pub use aws::AwsContext;
pub use blobstore::{BlobStore, DiskBlobStore, S3BlobStore};
pub use cache::{BlockCache, BlockView};
pub use collect::{
    BLOCK_LANDING_LIMIT, CollectReport, MIN_SAFE_WINDOW, collect_blocks, run_block_collector,
};
pub use config::{BlobstoreKind, StorageConfig, StorageKind};
pub use disk::DiskStorage;
pub use driver::{
    CommitPreconditions, MAX_COMMIT_ATTEMPTS, commit_writes, commit_writes_if, create_repo,
    create_repo_with_status, fetch_tree, load_repo_state, with_blocks,
};
pub use dynamo::DynamoStorage;
pub use error::StorageError;
pub use export::{ExportItem, ExportWalk};
pub use history::writes_since;
pub use memory::MemoryStorage;
pub use purge::{PurgeReport, purge_account};
pub use remote_blobs::RemoteBlobs;
pub use roles::{BlockStore, EventLog, KvStore, RepoStore, Storage};
pub use sealed::{KeySealer, SealError};
pub use sequencer::Sequencer;
pub use types::{
    CommitEvent, Event, EventBody, KvCondition, NewRepo, PackedBlocks, RemoteBlob, RepoKeys,
    RepoRecord, RepoStatus, Seq, StoredBlock,
};
