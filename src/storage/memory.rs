//! [`MemoryStorage`]: every storage role in process memory behind one lock. For tests,
//! benchmarks and the CLI; nothing survives the process, and keys are kept unsealed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::Utc;

use super::{
    BlockStore, Event, EventBody, EventLog, KvCondition, KvStore, NewRepo, RepoKeys, RepoRecord,
    RepoStatus, RepoStore, Seq, StorageError, StoredBlock,
};
use crate::block::BlockMap;
use crate::cid::Cid;
use crate::repo::CommitData;
use crate::syntax::{Did, Handle};
use crate::tid::Tid;

/// In-memory storage. One mutex makes every call atomic; it is never held across an await.
#[derive(Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    repos: BTreeMap<Did, RepoRecord>,
    keys: HashMap<Did, RepoKeys>,
    handles: HashMap<Handle, Did>,
    blocks: HashMap<Cid, Vec<u8>>,
    /// When each block was last written (ms since the epoch).
    block_written: HashMap<Cid, u64>,
    /// Events in seq order; `events[i].seq == i + 1` since nothing here can fail half way.
    events: Vec<Event>,
    /// Numbers of events removed by `forget_events`, which readers pass over.
    forgotten: HashSet<Seq>,
    kv: BTreeMap<(String, String), Vec<u8>>,
}

impl std::fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryStorage")
    }
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock means a panic mid-call; the state is only changed after all checks, so
        // it is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn append(&mut self, did: &Did, bodies: Vec<EventBody>) -> Vec<Seq> {
        let time = Utc::now();
        bodies
            .into_iter()
            .map(|body| {
                let seq = self.events.len() as Seq + 1;
                self.events.push(Event {
                    seq,
                    did: did.clone(),
                    time,
                    body,
                });
                seq
            })
            .collect()
    }

    fn write_blocks(&mut self, blocks: &BlockMap) {
        let now = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
        for (cid, bytes) in blocks.iter() {
            self.blocks.entry(*cid).or_insert_with(|| bytes.to_vec());
            self.block_written.insert(*cid, now);
        }
    }

    /// The stored events after `after`, in order, forgotten ones passed over.
    fn events_after(&self, after: Option<Seq>) -> impl Iterator<Item = &Event> {
        let start = after.unwrap_or(0).min(self.events.len() as Seq) as usize;
        self.events[start..]
            .iter()
            .filter(|e| !self.forgotten.contains(&e.seq))
    }
}

#[async_trait]
impl RepoStore for MemoryStorage {
    async fn create_repo(
        &self,
        repo: NewRepo,
        blocks: &BlockMap,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        let mut state = self.state();
        let NewRepo { record, keys } = repo;
        if state.repos.contains_key(&record.did) {
            return Err(StorageError::RepoExists(record.did));
        }
        if let Some(handle) = &record.handle {
            if state.handles.contains_key(handle) {
                return Err(StorageError::HandleTaken(handle.clone()));
            }
            state.handles.insert(handle.clone(), record.did.clone());
        }
        state.write_blocks(blocks);
        let seqs = state.append(&record.did, events);
        state.keys.insert(record.did.clone(), keys);
        state.repos.insert(record.did.clone(), record);
        Ok(seqs)
    }

    async fn load_repo(&self, did: &Did) -> Result<Option<RepoRecord>, StorageError> {
        Ok(self.state().repos.get(did).cloned())
    }

    async fn load_keys(&self, did: &Did) -> Result<Option<RepoKeys>, StorageError> {
        Ok(self.state().keys.get(did).cloned())
    }

    async fn resolve_handle(&self, handle: &Handle) -> Result<Option<Did>, StorageError> {
        Ok(self.state().handles.get(handle).cloned())
    }

    async fn list_repos(
        &self,
        after: Option<&Did>,
        limit: usize,
    ) -> Result<Vec<RepoRecord>, StorageError> {
        let state = self.state();
        let range = match after {
            Some(a) => state
                .repos
                .range::<Did, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => state.repos.range::<Did, _>(..),
        };
        Ok(range.take(limit).map(|(_, r)| r.clone()).collect())
    }

    async fn apply_commit(&self, data: &CommitData) -> Result<Seq, StorageError> {
        let mut state = self.state();
        let repo = state
            .repos
            .get(&data.did)
            .ok_or_else(|| StorageError::RepoNotFound(data.did.clone()))?;
        if !repo.status.is_active() {
            return Err(StorageError::InactiveRepo(data.did.clone(), repo.status));
        }
        if Some(repo.head) != data.prev {
            return Err(StorageError::Conflict(data.did.clone()));
        }
        state.write_blocks(&data.new_blocks);
        let seq = state.append(&data.did, vec![EventBody::Commit(data.into())])[0];
        let repo = state
            .repos
            .get_mut(&data.did)
            .ok_or_else(|| StorageError::RepoNotFound(data.did.clone()))?;
        repo.head = data.cid;
        repo.rev = data.rev();
        Ok(seq)
    }

    async fn replace_head(
        &self,
        did: &Did,
        from: Cid,
        to: Cid,
        rev: Tid,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        let mut state = self.state();
        let repo = state
            .repos
            .get_mut(did)
            .ok_or_else(|| StorageError::RepoNotFound(did.clone()))?;
        if repo.head != from {
            return Err(StorageError::Conflict(did.clone()));
        }
        repo.head = to;
        repo.rev = rev;
        Ok(state.append(did, events))
    }

    async fn set_status(
        &self,
        did: &Did,
        from: RepoStatus,
        to: RepoStatus,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        let mut state = self.state();
        let repo = state
            .repos
            .get_mut(did)
            .ok_or_else(|| StorageError::RepoNotFound(did.clone()))?;
        if repo.status != from {
            return Err(StorageError::StatusChanged(did.clone()));
        }
        repo.status = to;
        Ok(state.append(did, events))
    }

    async fn set_handle(
        &self,
        did: &Did,
        handle: Option<Handle>,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        let mut state = self.state();
        let old = state
            .repos
            .get(did)
            .ok_or_else(|| StorageError::RepoNotFound(did.clone()))?
            .handle
            .clone();
        if let Some(h) = &handle {
            if state.handles.get(h).is_some_and(|owner| owner != did) {
                return Err(StorageError::HandleTaken(h.clone()));
            }
        }
        if let Some(old) = old {
            state.handles.remove(&old);
        }
        if let Some(h) = &handle {
            state.handles.insert(h.clone(), did.clone());
        }
        if let Some(repo) = state.repos.get_mut(did) {
            repo.handle = handle;
        }
        Ok(state.append(did, events))
    }

    // Memory storage keeps account keys unsealed too: it is for tests and benchmarks.
    fn seal_secret(&self, secret: &[u8]) -> Result<Vec<u8>, StorageError> {
        Ok(secret.to_vec())
    }

    fn open_secret(&self, sealed: &[u8]) -> Result<Vec<u8>, StorageError> {
        Ok(sealed.to_vec())
    }
}

#[async_trait]
impl BlockStore for MemoryStorage {
    async fn read_blocks(&self, cids: &[Cid]) -> Result<BlockMap, StorageError> {
        let state = self.state();
        Ok(cids
            .iter()
            .filter_map(|c| state.blocks.get(c).map(|b| (*c, b.clone())))
            .collect())
    }

    async fn write_blocks(&self, blocks: &BlockMap) -> Result<(), StorageError> {
        self.state().write_blocks(blocks);
        Ok(())
    }

    async fn scan_blocks(
        &self,
        token: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<(Vec<StoredBlock>, Option<Vec<u8>>), StorageError> {
        let state = self.state();
        let mut all: Vec<(Vec<u8>, StoredBlock)> = state
            .blocks
            .keys()
            .map(|cid| {
                let written_ms = state.block_written.get(cid).copied().unwrap_or(0);
                (
                    cid.to_bytes(),
                    StoredBlock {
                        cid: *cid,
                        written_ms,
                    },
                )
            })
            .filter(|(key, _)| token.as_ref().is_none_or(|t| key > t))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.truncate(limit);
        let next = (all.len() >= limit)
            .then(|| all.last().map(|(k, _)| k.clone()))
            .flatten();
        Ok((all.into_iter().map(|(_, b)| b).collect(), next))
    }

    async fn delete_blocks(
        &self,
        cids: &[Cid],
        written_before: u64,
    ) -> Result<usize, StorageError> {
        let mut state = self.state();
        let mut deleted = 0;
        for cid in cids {
            if state
                .block_written
                .get(cid)
                .is_some_and(|&t| t >= written_before)
            {
                continue;
            }
            state.block_written.remove(cid);
            if state.blocks.remove(cid).is_some() {
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

#[async_trait]
impl EventLog for MemoryStorage {
    async fn read_events(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        let state = self.state();
        Ok(state.events_after(after).take(limit).cloned().collect())
    }

    async fn read_repo_events(
        &self,
        did: &Did,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        let state = self.state();
        Ok(state
            .events_after(after)
            .filter(|e| &e.did == did)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn last_seq(&self) -> Result<Option<Seq>, StorageError> {
        Ok(self.state().events.last().map(|e| e.seq))
    }

    async fn mark_seq_skipped(&self, _seq: Seq) -> Result<bool, StorageError> {
        // Numbers are assigned and stored under one lock, so every assigned number is an event.
        Ok(false)
    }

    async fn scan_events(
        &self,
        token: Option<Seq>,
        limit: usize,
    ) -> Result<(Vec<Event>, Option<Seq>), StorageError> {
        let events = self.read_events(token, limit).await?;
        let next = (events.len() >= limit)
            .then(|| events.last().map(|e| e.seq))
            .flatten();
        Ok((events, next))
    }

    async fn forget_events(&self, did: &Did, seqs: &[Seq]) -> Result<(), StorageError> {
        let mut state = self.state();
        let last = state.events.last().map(|e| e.seq);
        for &seq in seqs {
            let owned = state
                .events
                .get((seq as usize).wrapping_sub(1))
                .is_some_and(|e| &e.did == did);
            if owned && Some(seq) != last {
                state.forgotten.insert(seq);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl KvStore for MemoryStorage {
    async fn kv_get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .state()
            .kv
            .get(&(ns.to_owned(), key.to_owned()))
            .cloned())
    }

    async fn kv_put(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        condition: KvCondition<'_>,
    ) -> Result<bool, StorageError> {
        let mut state = self.state();
        let k = (ns.to_owned(), key.to_owned());
        let allowed = match condition {
            KvCondition::Always => true,
            KvCondition::IfAbsent => !state.kv.contains_key(&k),
            KvCondition::IfEquals(old) => state.kv.get(&k).is_some_and(|v| v == old),
        };
        if allowed {
            state.kv.insert(k, value.to_vec());
        }
        Ok(allowed)
    }

    async fn kv_delete(
        &self,
        ns: &str,
        key: &str,
        expect: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let mut state = self.state();
        let k = (ns.to_owned(), key.to_owned());
        if expect.is_some_and(|e| state.kv.get(&k).is_some_and(|v| v != e)) {
            return Ok(None);
        }
        Ok(state.kv.remove(&k))
    }

    async fn kv_list(
        &self,
        ns: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let state = self.state();
        let start = (ns.to_owned(), after.unwrap_or_default().to_owned());
        Ok(state
            .kv
            .range(start..)
            .take_while(|((n, _), _)| n == ns)
            .filter(|((_, k), _)| after.is_none_or(|a| k.as_str() > a))
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }
}
