//! [`Faulty`]: a storage backend that wraps another and, at chosen points, fails or pauses a
//! call — before it reaches the backend (a crash before the write) or after the backend has
//! done it (a crash after the write, with the caller told it failed) — and counts every call by
//! method. The way redb tests its storage backend, at the trait level, for every backend.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use arroba::block::BlockMap;
use arroba::cid::Cid;
use arroba::repo::CommitData;
use arroba::storage::{
    BlockStore, Event, EventBody, EventLog, KvCondition, KvStore, NewRepo, RepoKeys, RepoRecord,
    RepoStatus, RepoStore, Seq, Storage, StorageError, StoredBlock,
};
use arroba::syntax::{Did, Handle};
use arroba::tid::Tid;
use async_trait::async_trait;
use tokio::sync::watch;

/// Where in a call a fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Before the backend sees the call: nothing was written.
    Before,
    /// After the backend finished it: whatever it wrote stays, but the caller gets an error
    /// (for `Fail`) or waits (for `Pause`).
    After,
}

/// A point a paused call waits at until the test opens it.
#[derive(Debug, Clone)]
pub struct Gate {
    reached: watch::Sender<bool>,
    opened: watch::Sender<bool>,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            reached: watch::channel(false).0,
            opened: watch::channel(false).0,
        }
    }

    /// Completes once a call is held at the gate.
    pub async fn reached(&self) {
        let mut rx = self.reached.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Lets the held call (and any later one) go on.
    pub fn open(&self) {
        self.opened.send_replace(true);
    }

    async fn hold(&self) {
        self.reached.send_replace(true);
        let mut rx = self.opened.subscribe();
        let _ = rx.wait_for(|o| *o).await;
    }
}

enum Action {
    Fail,
    Pause(Gate),
}

struct Rule {
    method: &'static str,
    /// Calls of `method` to let through before this one.
    skip: usize,
    point: Point,
    action: Action,
}

/// The wrapper. Each rule applies to the next call of its method, once.
pub struct Faulty {
    inner: Arc<dyn Storage>,
    rules: Mutex<Vec<Rule>>,
    calls: Mutex<BTreeMap<&'static str, u64>>,
}

impl std::fmt::Debug for Faulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Faulty").field(&self.inner).finish()
    }
}

impl Faulty {
    pub fn new(inner: Arc<dyn Storage>) -> Arc<Faulty> {
        Arc::new(Faulty {
            inner,
            rules: Mutex::new(Vec::new()),
            calls: Mutex::new(BTreeMap::new()),
        })
    }

    /// The next call of `method` fails at `point`.
    pub fn fail(&self, method: &'static str, point: Point) {
        self.fail_after(method, 0, point);
    }

    /// The call of `method` after the next `skip` ones fails at `point`.
    pub fn fail_after(&self, method: &'static str, skip: usize, point: Point) {
        self.rules.lock().unwrap().push(Rule {
            method,
            skip,
            point,
            action: Action::Fail,
        });
    }

    /// The next call of `method` waits at `point` until the returned gate is opened.
    pub fn pause(&self, method: &'static str, point: Point) -> Gate {
        let gate = Gate::new();
        self.rules.lock().unwrap().push(Rule {
            method,
            skip: 0,
            point,
            action: Action::Pause(gate.clone()),
        });
        gate
    }

    /// How many times `method` was called.
    pub fn calls(&self, method: &str) -> u64 {
        self.calls.lock().unwrap().get(method).copied().unwrap_or(0)
    }

    /// Every call count, by method.
    pub fn all_calls(&self) -> BTreeMap<&'static str, u64> {
        self.calls.lock().unwrap().clone()
    }

    /// Forgets the counts.
    pub fn reset_calls(&self) {
        self.calls.lock().unwrap().clear();
    }

    /// Counts the call and takes the rule for it, if any.
    fn enter(&self, method: &'static str) -> Option<Rule> {
        *self.calls.lock().unwrap().entry(method).or_default() += 1;
        let mut rules = self.rules.lock().unwrap();
        let i = rules.iter().position(|r| r.method == method)?;
        if rules[i].skip > 0 {
            rules[i].skip -= 1;
            return None;
        }
        Some(rules.remove(i))
    }

    async fn around<T>(
        &self,
        method: &'static str,
        call: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        let rule = self.enter(method);
        let strike = |point: Point| rule.as_ref().filter(|r| r.point == point);
        let injected = |point: Point| {
            StorageError::Backend(format!("injected fault: {method} ({point:?})").into())
        };
        match strike(Point::Before).map(|r| &r.action) {
            Some(Action::Fail) => return Err(injected(Point::Before)),
            Some(Action::Pause(gate)) => gate.hold().await,
            None => {}
        }
        let out = call.await;
        match strike(Point::After).map(|r| &r.action) {
            Some(Action::Fail) => Err(injected(Point::After)),
            Some(Action::Pause(gate)) => {
                gate.hold().await;
                out
            }
            None => out,
        }
    }
}

#[async_trait]
impl RepoStore for Faulty {
    async fn create_repo(
        &self,
        repo: NewRepo,
        blocks: &BlockMap,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        self.around("create_repo", self.inner.create_repo(repo, blocks, events))
            .await
    }

    async fn load_repo(&self, did: &Did) -> Result<Option<RepoRecord>, StorageError> {
        self.around("load_repo", self.inner.load_repo(did)).await
    }

    async fn load_keys(&self, did: &Did) -> Result<Option<RepoKeys>, StorageError> {
        self.around("load_keys", self.inner.load_keys(did)).await
    }

    async fn load_for_write(
        &self,
        did: &Did,
    ) -> Result<Option<(RepoRecord, RepoKeys)>, StorageError> {
        self.around("load_for_write", self.inner.load_for_write(did))
            .await
    }

    async fn load_for_write_cached(
        &self,
        did: &Did,
    ) -> Result<Option<(RepoRecord, RepoKeys)>, StorageError> {
        self.around(
            "load_for_write_cached",
            self.inner.load_for_write_cached(did),
        )
        .await
    }

    async fn resolve_handle(&self, handle: &Handle) -> Result<Option<Did>, StorageError> {
        self.around("resolve_handle", self.inner.resolve_handle(handle))
            .await
    }

    async fn list_repos(
        &self,
        after: Option<&Did>,
        limit: usize,
    ) -> Result<Vec<RepoRecord>, StorageError> {
        self.around("list_repos", self.inner.list_repos(after, limit))
            .await
    }

    async fn apply_commit(&self, data: &CommitData) -> Result<Seq, StorageError> {
        self.around("apply_commit", self.inner.apply_commit(data))
            .await
    }

    async fn replace_head(
        &self,
        did: &Did,
        from: Cid,
        to: Cid,
        rev: Tid,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        self.around(
            "replace_head",
            self.inner.replace_head(did, from, to, rev, events),
        )
        .await
    }

    async fn set_status(
        &self,
        did: &Did,
        from: RepoStatus,
        to: RepoStatus,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        self.around("set_status", self.inner.set_status(did, from, to, events))
            .await
    }

    async fn set_handle(
        &self,
        did: &Did,
        handle: Option<Handle>,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        self.around("set_handle", self.inner.set_handle(did, handle, events))
            .await
    }

    fn seal_secret(&self, secret: &[u8]) -> Result<Vec<u8>, StorageError> {
        self.inner.seal_secret(secret)
    }

    fn open_secret(&self, sealed: &[u8]) -> Result<Vec<u8>, StorageError> {
        self.inner.open_secret(sealed)
    }
}

#[async_trait]
impl BlockStore for Faulty {
    async fn read_blocks(&self, cids: &[Cid]) -> Result<BlockMap, StorageError> {
        self.around("read_blocks", self.inner.read_blocks(cids))
            .await
    }

    async fn write_blocks(&self, blocks: &BlockMap) -> Result<(), StorageError> {
        self.around("write_blocks", self.inner.write_blocks(blocks))
            .await
    }

    async fn read_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StorageError> {
        self.around("read_block", self.inner.read_block(cid)).await
    }

    async fn scan_blocks(
        &self,
        token: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<(Vec<StoredBlock>, Option<Vec<u8>>), StorageError> {
        self.around("scan_blocks", self.inner.scan_blocks(token, limit))
            .await
    }

    async fn delete_blocks(
        &self,
        cids: &[Cid],
        written_before: u64,
    ) -> Result<usize, StorageError> {
        self.around(
            "delete_blocks",
            self.inner.delete_blocks(cids, written_before),
        )
        .await
    }
}

#[async_trait]
impl EventLog for Faulty {
    async fn read_events(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        self.around("read_events", self.inner.read_events(after, limit))
            .await
    }

    async fn read_repo_events(
        &self,
        did: &Did,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        self.around(
            "read_repo_events",
            self.inner.read_repo_events(did, after, limit),
        )
        .await
    }

    async fn last_seq(&self) -> Result<Option<Seq>, StorageError> {
        self.around("last_seq", self.inner.last_seq()).await
    }

    async fn mark_seq_skipped(&self, seq: Seq) -> Result<bool, StorageError> {
        self.around("mark_seq_skipped", self.inner.mark_seq_skipped(seq))
            .await
    }

    async fn scan_events(
        &self,
        token: Option<Seq>,
        limit: usize,
    ) -> Result<(Vec<Event>, Option<Seq>), StorageError> {
        self.around("scan_events", self.inner.scan_events(token, limit))
            .await
    }

    async fn forget_events(&self, did: &Did, seqs: &[Seq]) -> Result<(), StorageError> {
        self.around("forget_events", self.inner.forget_events(did, seqs))
            .await
    }
}

#[async_trait]
impl KvStore for Faulty {
    async fn kv_get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.around("kv_get", self.inner.kv_get(ns, key)).await
    }

    async fn kv_put(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        condition: KvCondition<'_>,
    ) -> Result<bool, StorageError> {
        self.around("kv_put", self.inner.kv_put(ns, key, value, condition))
            .await
    }

    async fn kv_put_expiring(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        condition: KvCondition<'_>,
        expires_at: i64,
    ) -> Result<bool, StorageError> {
        self.around(
            "kv_put",
            self.inner
                .kv_put_expiring(ns, key, value, condition, expires_at),
        )
        .await
    }

    async fn kv_delete(
        &self,
        ns: &str,
        key: &str,
        expect: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        self.around("kv_delete", self.inner.kv_delete(ns, key, expect))
            .await
    }

    async fn kv_list(
        &self,
        ns: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.around("kv_list", self.inner.kv_list(ns, after, limit))
            .await
    }

    async fn kv_add(
        &self,
        ns: &str,
        key: &str,
        points: u64,
        limit: u64,
        expires_at: i64,
    ) -> Result<Option<u64>, StorageError> {
        self.around(
            "kv_add",
            self.inner.kv_add(ns, key, points, limit, expires_at),
        )
        .await
    }
}
