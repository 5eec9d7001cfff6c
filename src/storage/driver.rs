//! The flows that run repo logic against a [`Storage`]: create a repo, commit writes.
//!
//! Repo logic is synchronous and reads blocks through the operation's [`BlockView`]; when it
//! reports a missing block, the driver fetches it from storage into the view (and the shared
//! cache) and runs again. Blocks are immutable, so a warm cache stays valid across calls and
//! processes never disagree about a block. A commit that loses the race for the repo head is
//! rebuilt on the new head, with jittered backoff, up to [`MAX_COMMIT_ATTEMPTS`] times.
//!
//! Writers to one repo through one storage instance (one process) take turns ([`RepoTurns`])
//! rather than race: a race costs the loser a rebuild and a backoff, and under contention a
//! writer that kept losing waited seconds. Races remain only between processes (Lambda
//! instances), where the retry handles them.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use chrono::Utc;
use rand::Rng;

use super::{
    BlockStore, BlockView, EventBody, NewRepo, RepoKeys, RepoRecord, RepoStatus, Seq, Storage,
    StorageError,
};
use crate::repo::{CommitData, Repo, RepoError, Write};
use crate::syntax::{Did, Handle};
use crate::tid::{TidClock, micros_of};

/// How many times a commit is rebuilt after losing a race before giving up.
pub const MAX_COMMIT_ATTEMPTS: usize = 25;

/// One turn lock per storage instance and repo being written, dropped when no writer holds it.
/// The instance is known by its address: a process has one, and tests that stand for several
/// processes use several.
#[derive(Default)]
struct RepoTurns(Mutex<HashMap<(usize, Did), Weak<Turn>>>);

/// Held by the writer whose turn it is.
type Turn = tokio::sync::Mutex<()>;

static TURNS: LazyLock<RepoTurns> = LazyLock::new(RepoTurns::default);

impl RepoTurns {
    /// The turn lock of `did` in `storage`, shared by every writer to it there.
    fn of(&self, storage: &dyn Storage, did: &Did) -> Arc<Turn> {
        let key = (
            std::ptr::from_ref(storage).cast::<()>() as usize,
            did.clone(),
        );
        // Every critical section leaves the map consistent, so a poisoned lock is still usable.
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(turn) = map.get(&key).and_then(Weak::upgrade) {
            return turn;
        }
        // Forget repos nobody is writing to, now and then, so the map stays small.
        if map.len() >= 1024 {
            map.retain(|_, turn| turn.strong_count() > 0);
        }
        let turn = Arc::new(Turn::new(()));
        map.insert(key, Arc::downgrade(&turn));
        turn
    }
}

/// Runs `f` until it stops reporting missing blocks, fetching each missing one into `view`.
/// Any read of a storage-backed repo goes through this.
pub async fn with_blocks<T>(
    storage: &dyn BlockStore,
    view: &BlockView,
    mut f: impl FnMut() -> Result<T, RepoError>,
) -> Result<T, StorageError> {
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) => {
                let Some(cid) = e.missing_block() else {
                    return Err(e.into());
                };
                let found = storage.read_blocks(&[cid]).await?;
                if found.is_empty() {
                    return Err(StorageError::MissingBlock(cid));
                }
                view.hold(found);
            }
        }
    }
}

/// The stored record of `did` and the repo at its head, reading through `view`.
pub async fn load_repo_state(
    storage: &dyn Storage,
    view: &BlockView,
    did: &Did,
) -> Result<(RepoRecord, Repo), StorageError> {
    let record = storage
        .load_repo(did)
        .await?
        .ok_or_else(|| StorageError::RepoNotFound(did.clone()))?;
    let repo = load_head(storage, view, record.head).await?;
    Ok((record, repo))
}

/// The repo whose head commit is `head` (a head already known: from a listing, or replaced).
pub(crate) async fn load_head(
    storage: &dyn Storage,
    view: &BlockView,
    head: crate::cid::Cid,
) -> Result<Repo, StorageError> {
    let source = Arc::new(view.clone());
    with_blocks(storage, view, || Repo::load(head, source.clone())).await
}

/// Fetches every MST node of `repo` that `view` lacks, one batch per tree level, so the whole
/// tree can then be walked without storage (listing, export, verification). The view holds the
/// nodes for as long as it lives.
pub async fn fetch_tree(
    storage: &dyn BlockStore,
    view: &BlockView,
    repo: &mut Repo,
) -> Result<(), StorageError> {
    loop {
        let missing = repo.load_tree_from_source().map_err(RepoError::from)?;
        if missing.is_empty() {
            return Ok(());
        }
        let found = storage.read_blocks(&missing).await?;
        if let Some(cid) = missing.iter().find(|c| !found.contains(c)) {
            return Err(StorageError::MissingBlock(*cid));
        }
        view.hold(found);
    }
}

/// Creates an active repo for `did` with an empty genesis commit, and sequences, in the
/// reference PDS's order, `#identity`, `#account` (active), the genesis `#commit` and `#sync`.
pub async fn create_repo(
    storage: &dyn Storage,
    view: &BlockView,
    did: Did,
    handle: Option<Handle>,
    keys: RepoKeys,
    clock: &TidClock,
) -> Result<(RepoRecord, CommitData, Vec<Seq>), StorageError> {
    create_repo_with_status(storage, view, did, handle, keys, clock, RepoStatus::Active).await
}

/// Like [`create_repo`], in `status`. A repo that is not active (an account moving in, whose repo
/// lives on its old PDS until it is imported and activated) announces only `#identity` and
/// `#account`: relays must not take its empty genesis commit for the account's repo.
pub async fn create_repo_with_status(
    storage: &dyn Storage,
    view: &BlockView,
    did: Did,
    handle: Option<Handle>,
    keys: RepoKeys,
    clock: &TidClock,
    status: RepoStatus,
) -> Result<(RepoRecord, CommitData, Vec<Seq>), StorageError> {
    let rev = clock.next(micros_of(Utc::now()));
    let (_, genesis) = Repo::create(did.clone(), &keys.signing, rev, Arc::new(view.clone()));
    let record = RepoRecord {
        did,
        handle: handle.clone(),
        head: genesis.cid,
        rev,
        status,
        created_at: Utc::now(),
    };
    let mut events = vec![EventBody::Identity { handle }, EventBody::account(status)];
    if status.is_active() {
        events.push(EventBody::Commit((&genesis).into()));
        events.push(EventBody::Sync {
            commit: genesis.cid,
            rev,
        });
    }
    let repo = NewRepo {
        record: record.clone(),
        keys,
    };
    let seqs = storage
        .create_repo(repo, &genesis.new_blocks, events)
        .await?;
    view.hold(genesis.new_blocks.clone());
    Ok((record, genesis, seqs))
}

/// Compare-and-swap preconditions of a commit, checked against the head each attempt builds on.
#[derive(Debug, Clone, Default)]
pub struct CommitPreconditions {
    /// The head the commit must build on (`swapCommit`).
    pub swap_commit: Option<crate::cid::Cid>,
    /// Record paths and the CID each must have now (`None` = must not exist) (`swapRecord`).
    pub swap_records: Vec<(String, Option<crate::cid::Cid>)>,
}

/// Commits `writes` to `did`'s repo, rebuilding on the new head whenever another writer got
/// there first. Returns the commit and its sequence number.
pub async fn commit_writes(
    storage: &dyn Storage,
    view: &BlockView,
    did: &Did,
    writes: &[Write],
    clock: &TidClock,
) -> Result<(CommitData, Seq), StorageError> {
    commit_writes_if(
        storage,
        view,
        did,
        writes,
        clock,
        &CommitPreconditions::default(),
    )
    .await
}

/// Like [`commit_writes`], failing with [`StorageError::SwapMismatch`] unless `preconditions`
/// hold on the head the commit is built on (so a retry after a lost race re-checks them).
pub async fn commit_writes_if(
    storage: &dyn Storage,
    view: &BlockView,
    did: &Did,
    writes: &[Write],
    clock: &TidClock,
    preconditions: &CommitPreconditions,
) -> Result<(CommitData, Seq), StorageError> {
    let turn = TURNS.of(storage, did);
    let _turn = turn.lock().await;
    for attempt in 0..MAX_COMMIT_ATTEMPTS {
        // The first attempt may use a cached head; a stale one costs a conflict and a re-read.
        let loaded = if attempt == 0 {
            storage.load_for_write_cached(did).await?
        } else {
            storage.load_for_write(did).await?
        };
        let (record, keys) = loaded.ok_or_else(|| StorageError::RepoNotFound(did.clone()))?;
        if !record.status.is_active() {
            return Err(StorageError::InactiveRepo(did.clone(), record.status));
        }
        let repo = load_head(storage, view, record.head).await?;
        check_preconditions(storage, view, &repo, preconditions).await?;
        let rev = clock.next_after(micros_of(Utc::now()), Some(repo.rev()));
        let (_, data) = with_blocks(storage, view, || {
            repo.apply_writes(writes, &keys.signing, rev)
        })
        .await?;
        match storage.apply_commit(&data).await {
            Ok(seq) => {
                view.hold(data.new_blocks.clone());
                return Ok((data, seq));
            }
            Err(StorageError::Conflict(_)) => {
                // Contending writers spread out: 10 ms, 20 ms, … up to 2 s.
                let max_ms = (10u64 << attempt.min(8)).min(2_000);
                let wait = rand::thread_rng().gen_range(0..=max_ms);
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(StorageError::TooManyConflicts(
        did.clone(),
        MAX_COMMIT_ATTEMPTS,
    ))
}

async fn check_preconditions(
    storage: &dyn Storage,
    view: &BlockView,
    repo: &Repo,
    p: &CommitPreconditions,
) -> Result<(), StorageError> {
    let show = |c: Option<crate::cid::Cid>| c.map_or_else(|| "none".to_owned(), |c| c.to_string());
    if let Some(expected) = p.swap_commit {
        if repo.head() != expected {
            return Err(StorageError::SwapMismatch {
                what: "commit".into(),
                expected: expected.to_string(),
                actual: repo.head().to_string(),
            });
        }
    }
    for (path, expected) in &p.swap_records {
        let actual = with_blocks(storage, view, || Ok(repo.mst().get(path)?)).await?;
        if actual != *expected {
            return Err(StorageError::SwapMismatch {
                what: path.clone(),
                expected: show(*expected),
                actual: show(actual),
            });
        }
    }
    Ok(())
}
