//! Storage: the [`Storage`] trait every backend implements, the backends, and the driver that
//! runs repo logic against a backend.
//!
//! The trait is small and each method documents what is atomic and which error means "lost a
//! race". Backends: [`MemoryStorage`] (tests and benchmarks), [`DiskStorage`] (local runs, on
//! redb) and [`DynamoStorage`] (production);
//! every backend passes the same conformance suite (`tests/storage_conformance.rs`).
//! [`Sequencer`] is the reader side of the event log: it yields events in sequence order and
//! resolves numbers that never became events. [`commit_writes`] and [`create_repo`] are the flows the
//! server uses: they build commits with [`crate::repo`] and retry on
//! [`StorageError::Conflict`]. Sequence numbers and event ordering are described in
//! `docs/storage.md`.

pub mod accounts;
mod blobstore;
pub mod codec;
mod disk;
mod driver;
pub mod dynamo;
mod error;
mod memory;
mod repo_cache;
mod sealed;
mod sequencer;
mod types;

use async_trait::async_trait;

pub use accounts::Accounts;
pub use blobstore::{BlobStore, DiskBlobStore, S3BlobStore};
pub use disk::DiskStorage;
pub use driver::{
    CommitPreconditions, MAX_COMMIT_ATTEMPTS, commit_writes, commit_writes_if, create_repo,
    fetch_tree, load_repo_state, with_blocks,
};
pub use dynamo::DynamoStorage;
pub use error::StorageError;
pub use memory::MemoryStorage;
pub use sealed::{KeySealer, SealError};
pub use sequencer::Sequencer;
pub use types::{
    CommitEvent, Event, EventBody, KvCondition, NewRepo, RemoteBlob, RepoRecord, RepoStatus, Seq,
};

use crate::block::BlockMap;
use crate::cid::Cid;
use crate::repo::{CommitData, RepoOp};
use crate::syntax::{Did, Handle};
use crate::tid::Tid;

/// A PDS's persistent state: repos, blocks and the event log.
///
/// Every method is atomic on its own: a reader sees all of a call's effects or none. Sequence
/// numbers are assigned by the backend, strictly increase, and a reader of
/// [`Storage::read_events`] never sees a number after it has seen a larger one.
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Creates a repo: its genesis blocks, its record, its handle claim and `events` (assigned
    /// consecutive sequence numbers in the given order), all or nothing. Fails with
    /// [`StorageError::RepoExists`] or [`StorageError::HandleTaken`] and writes nothing.
    async fn create_repo(
        &self,
        repo: NewRepo,
        blocks: &BlockMap,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError>;

    /// The repo record of `did`, whatever its status.
    async fn load_repo(&self, did: &Did) -> Result<Option<RepoRecord>, StorageError>;

    /// The DID that holds `handle` on this PDS.
    async fn resolve_handle(&self, handle: &Handle) -> Result<Option<Did>, StorageError>;

    /// Repos in DID order after `after` (exclusive), at most `limit`, any status.
    async fn list_repos(
        &self,
        after: Option<&Did>,
        limit: usize,
    ) -> Result<Vec<RepoRecord>, StorageError>;

    /// Stores a commit: its new blocks, the head moved from `data.prev` to `data.cid`, and a
    /// `#commit` event, atomically. If the head is no longer `data.prev` it fails with
    /// [`StorageError::Conflict`] (the caller rebuilds on the new head); if the repo is not
    /// active, with [`StorageError::InactiveRepo`]. Returns the event's sequence number.
    async fn apply_commit(&self, data: &CommitData) -> Result<Seq, StorageError>;

    /// Changes a repo's status and appends `events`, atomically.
    async fn set_status(
        &self,
        did: &Did,
        status: RepoStatus,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError>;

    /// Moves a repo to a new handle (or none), releasing the old one, and appends `events`,
    /// atomically. Fails with [`StorageError::HandleTaken`] if another repo holds it.
    async fn set_handle(
        &self,
        did: &Did,
        handle: Option<Handle>,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError>;

    /// The blocks among `cids` that exist (missing ones are simply absent from the result).
    async fn read_blocks(&self, cids: &[Cid]) -> Result<BlockMap, StorageError>;

    /// Stores blocks; existing blocks are left as they are (blocks are immutable).
    async fn write_blocks(&self, blocks: &BlockMap) -> Result<(), StorageError>;

    /// Events with a sequence number above `after` (all if None), ascending, at most `limit`,
    /// stopping before the first number that is neither an event nor marked skipped (it may
    /// still be committed). Skipped numbers are passed over.
    async fn read_events(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError>;

    /// Like [`Storage::read_events`], only the events of `did`.
    async fn read_repo_events(
        &self,
        did: &Did,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError>;

    /// The highest sequence number assigned so far, if any (it may not be readable yet: a
    /// writer may still be committing it).
    async fn last_seq(&self) -> Result<Option<Seq>, StorageError>;

    /// Claims `seq` for good as a number that is not an event, unless an event already holds
    /// it. Returns true if `seq` is now (or already was) marked skipped — a writer still holding
    /// it will fail and take a new number — and false if it is an event. Only [`Sequencer`] and writers that know
    /// their number never became an event call this.
    async fn mark_seq_skipped(&self, seq: Seq) -> Result<bool, StorageError>;

    /// Records a remote blob, adding `blob.repos` to the repos already recorded (atomic).
    /// Returns the stored record.
    async fn upsert_remote_blob(&self, blob: RemoteBlob) -> Result<RemoteBlob, StorageError>;

    /// The remote blob at `url`.
    async fn get_remote_blob(&self, url: &str) -> Result<Option<RemoteBlob>, StorageError>;

    /// Every remote blob with content `cid`.
    async fn remote_blobs_by_cid(&self, cid: &Cid) -> Result<Vec<RemoteBlob>, StorageError>;

    /// The value stored at `key` in namespace `ns` of the small key-value store that holds
    /// account data (accounts, sessions, invite codes, blob records; see `accounts`).
    async fn kv_get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Stores `value` at `ns`/`key` if `condition` holds, atomically; returns whether it did.
    async fn kv_put(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        condition: KvCondition<'_>,
    ) -> Result<bool, StorageError>;

    /// Deletes `ns`/`key` (only if its value is `expect`, when given) and returns the value it
    /// had; None if there was nothing to delete. Atomic, so a token can be taken exactly once.
    async fn kv_delete(
        &self,
        ns: &str,
        key: &str,
        expect: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, StorageError>;

    /// Entries of `ns` with keys after `after` (exclusive), in key order, at most `limit`.
    async fn kv_list(
        &self,
        ns: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError>;

    /// Like [`Storage::load_repo`], but a backend may answer from an in-process cache whose head
    /// can be stale. Only for writers: a stale head makes [`Storage::apply_commit`] fail with
    /// [`StorageError::Conflict`], after which the writer calls [`Storage::load_repo`].
    async fn load_repo_cached(&self, did: &Did) -> Result<Option<RepoRecord>, StorageError> {
        self.load_repo(did).await
    }

    /// One block, if it exists.
    async fn read_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .read_blocks(std::slice::from_ref(cid))
            .await?
            .remove(cid))
    }

    /// Whether a block exists.
    async fn has_block(&self, cid: &Cid) -> Result<bool, StorageError> {
        Ok(self.read_block(cid).await?.is_some())
    }

    /// The repo record of the DID that holds `handle`.
    async fn load_repo_by_handle(
        &self,
        handle: &Handle,
    ) -> Result<Option<RepoRecord>, StorageError> {
        match self.resolve_handle(handle).await? {
            Some(did) => self.load_repo(&did).await,
            None => Ok(None),
        }
    }

    /// The record operations of `did`'s commits with a rev after `since`, oldest first, from
    /// commits still in the event log; at most `limit` commits are read.
    async fn read_writes_since(
        &self,
        did: &Did,
        since: Tid,
        limit: usize,
    ) -> Result<Vec<(Tid, RepoOp)>, StorageError> {
        let mut out = Vec::new();
        let mut after = None;
        let mut commits = 0;
        loop {
            let page = self.read_repo_events(did, after, 100).await?;
            let Some(last) = page.last() else {
                return Ok(out);
            };
            after = Some(last.seq);
            for event in page {
                if let EventBody::Commit(c) = event.body {
                    if c.rev > since {
                        out.extend(c.ops.into_iter().map(|op| (c.rev, op)));
                        commits += 1;
                        if commits >= limit {
                            return Ok(out);
                        }
                    }
                }
            }
        }
    }
}
