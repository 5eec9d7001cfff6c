//! The records the storage trait reads and writes: repos, statuses and events.

use chrono::{DateTime, Utc};

use crate::cid::Cid;
use crate::crypto::Keypair;
use crate::repo::{CommitData, RepoOp};
use crate::syntax::{Did, Handle};
use crate::tid::Tid;

/// A firehose sequence number: positive, below 2^53.
pub type Seq = u64;

/// An account's hosting status (https://atproto.com/specs/account).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RepoStatus {
    /// Active: served and writable.
    Active,
    /// Deactivated by the user (or not yet activated after migration).
    Deactivated,
    /// Taken down by the operator.
    Takendown,
    /// Suspended for a time by the operator.
    Suspended,
    /// Deleted.
    Deleted,
    /// Out of sync with the network; served, but flagged.
    Desynchronized,
    /// Rate-limited.
    Throttled,
}

impl RepoStatus {
    /// The status string used in `#account` events and `getRepoStatus`.
    pub fn as_str(self) -> &'static str {
        match self {
            RepoStatus::Active => "active",
            RepoStatus::Deactivated => "deactivated",
            RepoStatus::Takendown => "takendown",
            RepoStatus::Suspended => "suspended",
            RepoStatus::Deleted => "deleted",
            RepoStatus::Desynchronized => "desynchronized",
            RepoStatus::Throttled => "throttled",
        }
    }

    /// Parses a status string.
    pub fn parse(s: &str) -> Option<RepoStatus> {
        [
            RepoStatus::Active,
            RepoStatus::Deactivated,
            RepoStatus::Takendown,
            RepoStatus::Suspended,
            RepoStatus::Deleted,
            RepoStatus::Desynchronized,
            RepoStatus::Throttled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Whether the account counts as active (`desynchronized` and `throttled` accounts are still
    /// active, per the spec).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            RepoStatus::Active | RepoStatus::Desynchronized | RepoStatus::Throttled
        )
    }
}

/// A repo as stored: identity, head and status. Keys are apart ([`RepoKeys`]), sealed, and read
/// only by the code paths that sign; a reader of heads (the firehose task) never touches them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRecord {
    /// The account DID.
    pub did: Did,
    /// The handle on this PDS, if any.
    pub handle: Option<Handle>,
    /// The head commit's CID.
    pub head: Cid,
    /// The head commit's rev.
    pub rev: Tid,
    /// Hosting status.
    pub status: RepoStatus,
    /// When the repo was created here.
    pub created_at: DateTime<Utc>,
}

/// An account's private keys, sealed at rest by the key-encryption keys.
#[derive(Debug, Clone)]
pub struct RepoKeys {
    /// The key that signs commits (and service-auth tokens).
    pub signing: Keypair,
    /// The PLC rotation key this PDS holds for the account, if any.
    pub rotation: Option<Keypair>,
}

/// What [`super::RepoStore::create_repo`] stores: the record (head = the genesis commit) and
/// the account's keys.
#[derive(Debug, Clone)]
pub struct NewRepo {
    /// The repo record.
    pub record: RepoRecord,
    /// Its keys.
    pub keys: RepoKeys,
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Sequence number.
    pub seq: Seq,
    /// The account.
    pub did: Did,
    /// When the event happened.
    pub time: DateTime<Utc>,
    /// What happened.
    pub body: EventBody,
}

/// The kinds of event (`subscribeRepos` message types).
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    /// `#commit`: a repo changed.
    Commit(CommitEvent),
    /// `#identity`: the account's identity (handle, DID document) may have changed.
    Identity {
        /// The current handle.
        handle: Option<Handle>,
    },
    /// `#account`: the hosting status changed.
    Account {
        /// Whether the account is active.
        active: bool,
        /// The status, when not active.
        status: Option<RepoStatus>,
    },
    /// `#sync`: the repo's current state is this commit.
    Sync {
        /// The commit's CID.
        commit: Cid,
        /// The commit's rev.
        rev: Tid,
    },
}

impl EventBody {
    /// The `#account` event for `status`.
    pub fn account(status: RepoStatus) -> EventBody {
        EventBody::Account {
            active: status.is_active(),
            status: (!status.is_active()).then_some(status),
        }
    }
}

/// A stored `#commit`: the fields of the firehose message, with the block slice kept as CIDs
/// (the blocks themselves are in the block store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitEvent {
    /// The commit's CID.
    pub commit: Cid,
    /// The commit's rev.
    pub rev: Tid,
    /// The previous commit's rev.
    pub since: Option<Tid>,
    /// The previous commit's MST root.
    pub prev_data: Option<Cid>,
    /// The record operations.
    pub ops: Vec<RepoOp>,
    /// The CIDs of the blocks in the firehose slice.
    pub blocks: Vec<Cid>,
}

impl From<&CommitData> for CommitEvent {
    fn from(data: &CommitData) -> Self {
        CommitEvent {
            commit: data.cid,
            rev: data.rev(),
            since: data.since,
            prev_data: data.prev_data,
            ops: data.ops.clone(),
            blocks: data.slice_cids(),
        }
    }
}

/// A stored block as [`super::BlockStore::scan_blocks`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBlock {
    /// The block's CID.
    pub cid: Cid,
    /// When it was last written, in milliseconds since the Unix epoch (0 for blocks written
    /// before the time was kept).
    pub written_ms: u64,
}

/// A blob that lives at a remote URL (arroba's `AtpRemoteBlob`): Bridgy-style repos reference
/// media hosted elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBlob {
    /// The URL (the key).
    pub url: String,
    /// The content's CID (raw codec), once fetched.
    pub cid: Option<Cid>,
    /// The MIME type.
    pub mime_type: String,
    /// Size in bytes.
    pub size: u64,
    /// The repos that reference it.
    pub repos: std::collections::BTreeSet<Did>,
    /// When it was last fetched.
    pub last_fetched: Option<DateTime<Utc>>,
    /// `inactive` once the URL stopped serving it.
    pub status: Option<String>,
}

/// When [`super::Storage::kv_put`] may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvCondition<'a> {
    /// Always (create or replace).
    Always,
    /// Only if the key is absent (claims: emails, invite codes).
    IfAbsent,
    /// Only if the current value is exactly this (compare-and-swap).
    IfEquals(&'a [u8]),
}

/// Blocks end to end in one buffer, in the order they were asked for
/// ([`super::BlockStore::read_blocks_in_order`]): a batch of a stream without a map or an
/// allocation per block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackedBlocks {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl PackedBlocks {
    /// Appends a block.
    pub fn push(&mut self, block: &[u8]) {
        self.bytes.extend_from_slice(block);
        self.ends.push(self.bytes.len());
    }

    /// The `i`th block.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1],
        };
        self.bytes.get(start..end)
    }

    /// How many blocks there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The blocks' total size in bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }
}
