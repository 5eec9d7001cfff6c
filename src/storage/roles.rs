//! The storage roles: [`RepoStore`], [`BlockStore`], [`EventLog`] and [`KvStore`], and
//! [`Storage`], a backend that plays all four.
//!
//! Each method is atomic on its own: a reader sees all of a call's effects or none. Each method's
//! doc says what it writes together and which error means "lost a race". Conveniences built on
//! the required methods are default methods; flows that span roles (committing writes, creating
//! a repo) are in `driver`. The design behind sequence numbers is in `docs/storage.md`.

use async_trait::async_trait;

use super::StorageError;
use super::{
    Event, EventBody, KvCondition, NewRepo, PackedBlocks, RepoKeys, RepoRecord, RepoStatus, Seq,
    StoredBlock,
};
use crate::block::BlockMap;
use crate::cid::Cid;
use crate::repo::CommitData;
use crate::syntax::{Did, Handle};
use crate::tid::Tid;

/// Repo records, handle claims and the writes that move a repo: creation, commits, status and
/// handle changes. Every write also appends its events to the log, in the same atomic unit.
#[async_trait]
pub trait RepoStore: Send + Sync + std::fmt::Debug {
    /// Creates a repo: its genesis blocks, its record and sealed keys, its handle claim and
    /// `events` (given consecutive sequence numbers in order), all or nothing. Fails with
    /// [`StorageError::RepoExists`] or [`StorageError::HandleTaken`] and writes nothing (its
    /// blocks may remain: they are content-addressed and harmless).
    async fn create_repo(
        &self,
        repo: NewRepo,
        blocks: &BlockMap,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError>;

    /// The record of `did`, whatever its status. Never reads the account's keys.
    async fn load_repo(&self, did: &Did) -> Result<Option<RepoRecord>, StorageError>;

    /// The account keys of `did`, unsealed. Fails with [`StorageError::NoKeySealer`] on a
    /// backend opened without key-encryption keys (the firehose task).
    async fn load_keys(&self, did: &Did) -> Result<Option<RepoKeys>, StorageError>;

    /// The record and keys a writer needs, read now (and remembered for
    /// [`RepoStore::load_for_write_cached`]).
    async fn load_for_write(
        &self,
        did: &Did,
    ) -> Result<Option<(RepoRecord, RepoKeys)>, StorageError> {
        let Some(record) = self.load_repo(did).await? else {
            return Ok(None);
        };
        Ok(self.load_keys(did).await?.map(|keys| (record, keys)))
    }

    /// Like [`RepoStore::load_for_write`], but a backend may answer from an in-process cache
    /// whose head can be stale. Only for writers: a stale head makes
    /// [`RepoStore::apply_commit`] fail with [`StorageError::Conflict`], after which the writer
    /// calls [`RepoStore::load_for_write`].
    async fn load_for_write_cached(
        &self,
        did: &Did,
    ) -> Result<Option<(RepoRecord, RepoKeys)>, StorageError> {
        self.load_for_write(did).await
    }

    /// The DID that holds `handle` on this PDS.
    async fn resolve_handle(&self, handle: &Handle) -> Result<Option<Did>, StorageError>;

    /// Repo records in DID order after `after` (exclusive), at most `limit`, any status.
    async fn list_repos(
        &self,
        after: Option<&Did>,
        limit: usize,
    ) -> Result<Vec<RepoRecord>, StorageError>;

    /// Stores a commit: its new blocks, the head moved from `data.prev` to `data.cid`, and a
    /// `#commit` event, atomically (blocks may be written first: they are content-addressed, and
    /// orphans of a failed commit are harmless). If the head is no longer `data.prev` it fails
    /// with [`StorageError::Conflict`] (the caller rebuilds on the new head); if the repo is
    /// not active, with [`StorageError::InactiveRepo`]. Returns the event's sequence number.
    async fn apply_commit(&self, data: &CommitData) -> Result<Seq, StorageError>;

    /// Moves `did`'s head from `from` to `to`, a commit with rev `rev` whose blocks are already
    /// stored (an imported repo), and appends `events` (none, or a `#sync`), atomically, whatever
    /// the repo's status. Fails with [`StorageError::Conflict`] if the head is no longer `from`.
    async fn replace_head(
        &self,
        did: &Did,
        from: Cid,
        to: Cid,
        rev: Tid,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError>;

    /// Changes a repo's status from `from` to `to` and appends `events`, atomically; fails with
    /// [`StorageError::StatusChanged`] (changing nothing) if the status is no longer `from`, so a
    /// racing change (a takedown) is never overwritten by one decided on an older status.
    async fn set_status(
        &self,
        did: &Did,
        from: RepoStatus,
        to: RepoStatus,
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

    /// `secret` sealed as account keys are at rest, for a secret kept in the key-value store
    /// (a reserved signing key). Fails with [`StorageError::NoKeySealer`] on a backend opened
    /// without key-encryption keys.
    fn seal_secret(&self, secret: &[u8]) -> Result<Vec<u8>, StorageError>;

    /// Opens what [`RepoStore::seal_secret`] sealed.
    fn open_secret(&self, sealed: &[u8]) -> Result<Vec<u8>, StorageError>;
}

/// Content-addressed blocks: commits, MST nodes and records of every repo. Blocks are
/// immutable, so any copy of one is as good as another; the block collector
/// (`super::collect_blocks`) deletes those nothing names any more.
#[async_trait]
pub trait BlockStore: Send + Sync + std::fmt::Debug {
    /// The blocks among `cids` that exist (missing ones are simply absent from the result).
    async fn read_blocks(&self, cids: &[Cid]) -> Result<BlockMap, StorageError>;

    /// Stores blocks; existing blocks keep their bytes. Idempotent. Every block written gets
    /// the time of this write (an existing one too), which protects it from
    /// [`BlockStore::delete_blocks`] with an earlier cutoff: the collector's safety window.
    async fn write_blocks(&self, blocks: &BlockMap) -> Result<(), StorageError>;

    /// Every stored block with the time it was last written, a page of about `limit` at a
    /// time, in no particular order. Start with `None`; continue with the token a page returns
    /// until it returns `None`. For the block collector (`super::collect_blocks`).
    async fn scan_blocks(
        &self,
        token: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<(Vec<StoredBlock>, Option<Vec<u8>>), StorageError>;

    /// Deletes each block of `cids` last written before `written_before` (milliseconds since
    /// the Unix epoch); a block written at or after it — by a commit racing the collector —
    /// stays, whole. Returns how many blocks it deleted.
    async fn delete_blocks(&self, cids: &[Cid], written_before: u64)
    -> Result<usize, StorageError>;

    /// Each of `cids`, in the order given (a CID given twice comes twice), packed end to end;
    /// fails with [`StorageError::MissingBlock`] naming the first one missing. For streaming
    /// many blocks (a repo export) without building a map of each batch.
    async fn read_blocks_in_order(&self, cids: &[Cid]) -> Result<PackedBlocks, StorageError> {
        let found = self.read_blocks(cids).await?;
        let mut packed = PackedBlocks::default();
        for cid in cids {
            packed.push(found.get(cid).ok_or(StorageError::MissingBlock(*cid))?);
        }
        Ok(packed)
    }

    /// The record blocks of `did`'s repo, given as `(path, CID)` in path order (a run of a
    /// repo export), packed in that order; fails like [`BlockStore::read_blocks_in_order`]. A
    /// backend that keeps each repo's records together reads the run in one pass; any record
    /// it does not hold there (or holds under another CID) it reads by CID.
    async fn read_repo_records(
        &self,
        _did: &Did,
        records: &[(String, Cid)],
    ) -> Result<PackedBlocks, StorageError> {
        let cids: Vec<Cid> = records.iter().map(|(_, cid)| *cid).collect();
        self.read_blocks_in_order(&cids).await
    }

    /// One block, if it exists.
    async fn read_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .read_blocks(std::slice::from_ref(cid))
            .await?
            .remove(cid))
    }
}

/// The event log behind the firehose: events by sequence number. Numbers are assigned by the
/// backend when a [`RepoStore`] write appends events; they strictly increase, and a reader
/// never sees a number after it has seen a larger one.
#[async_trait]
pub trait EventLog: Send + Sync + std::fmt::Debug {
    /// Events with a sequence number above `after` (all if None), ascending, at most `limit`,
    /// stopping before the first number that is neither an event nor marked skipped (it may
    /// still be committed). Skipped numbers are passed over.
    async fn read_events(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError>;

    /// Like [`EventLog::read_events`], only the events of `did` (in seq order).
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
    /// it will fail and take a new number — and false if it is an event. Only
    /// [`super::Sequencer`] and writers that know their number never became an event call this.
    async fn mark_seq_skipped(&self, seq: Seq) -> Result<bool, StorageError>;

    /// Every stored event, a page of about `limit` at a time, in no particular order (gaps and
    /// expired numbers are no obstacle). Start with `None`; continue with the returned token
    /// until it is `None`. For the block collector, which keeps every block an event names.
    async fn scan_events(
        &self,
        token: Option<Seq>,
        limit: usize,
    ) -> Result<(Vec<Event>, Option<Seq>), StorageError>;

    /// Removes the events `seqs` of `did` (a deleted account's history, as the reference PDS
    /// drops it): readers pass over their numbers as they pass over skipped ones. Numbers that
    /// are not `did`'s events are left alone, and so is the log's last event on a backend that
    /// counts from it (the embedded store). Idempotent.
    async fn forget_events(&self, did: &Did, seqs: &[Seq]) -> Result<(), StorageError>;
}

/// A small key-value store in namespaces, for account data (see `accounts`) and remote blobs.
/// Conditional writes make claims, compare-and-swap and single-use takes safe across processes.
#[async_trait]
pub trait KvStore: Send + Sync + std::fmt::Debug {
    /// The value stored at `key` in namespace `ns`.
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

    /// [`KvStore::kv_put`] for a value worthless after `expires_at` (Unix seconds). A backend
    /// with expiry removes it then (DynamoDB's TTL); the others keep it, so callers that want it
    /// gone sweep their namespace (put the expiry first in the key and the oldest list first).
    async fn kv_put_expiring(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        condition: KvCondition<'_>,
        expires_at: i64,
    ) -> Result<bool, StorageError> {
        let _ = expires_at;
        self.kv_put(ns, key, value, condition).await
    }

    /// Adds `points` to the counter at `ns`/`key` (absent = 0) unless the total would pass
    /// `limit`, atomically; returns the new total, or None (and changes nothing) if it would
    /// pass. A backend with expiry removes the counter after `expires_at` (Unix seconds); the
    /// others keep it, so callers put the window in the key. Counters are only ever touched
    /// through this method.
    ///
    /// The provided version is a compare-and-swap loop over [`KvStore::kv_get`] and
    /// [`KvStore::kv_put`]; DynamoDB does it in one conditional update.
    async fn kv_add(
        &self,
        ns: &str,
        key: &str,
        points: u64,
        limit: u64,
        expires_at: i64,
    ) -> Result<Option<u64>, StorageError> {
        let _ = expires_at;
        loop {
            let old = self.kv_get(ns, key).await?;
            let used = match &old {
                Some(v) => std::str::from_utf8(v)
                    .ok()
                    .and_then(|t| t.parse::<u64>().ok())
                    .ok_or_else(|| StorageError::Corrupt {
                        what: format!("counter {ns}/{key}"),
                        why: "not a decimal count",
                    })?,
                None => 0,
            };
            let total = used.saturating_add(points);
            if total > limit {
                return Ok(None);
            }
            let condition = match &old {
                Some(v) => KvCondition::IfEquals(v),
                None => KvCondition::IfAbsent,
            };
            if self
                .kv_put(ns, key, total.to_string().as_bytes(), condition)
                .await?
            {
                return Ok(Some(total));
            }
        }
    }
}

/// A backend that plays every role: what the server holds as `Arc<dyn Storage>`. Implemented
/// for every type that implements the four role traits.
pub trait Storage: RepoStore + BlockStore + EventLog + KvStore {}

impl<T: RepoStore + BlockStore + EventLog + KvStore + ?Sized> Storage for T {}
