//! The process-local cache of repo records and unsealed keys that the disk and DynamoDB
//! backends keep for writers (`load_for_write_cached`). Opening the sealed keys and deriving a
//! public key would otherwise dominate a small commit. An entry's head may be stale; a stale
//! head only costs the writer a conflict and a fresh read.

use std::collections::HashMap;
use std::sync::Mutex;

use super::types::{RepoKeys, RepoRecord};
use crate::cid::Cid;
use crate::syntax::Did;
use crate::tid::Tid;

/// Past this many entries the cache starts over rather than tracking recency.
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub(crate) struct RepoRecordCache {
    records: Mutex<HashMap<Did, (RepoRecord, RepoKeys)>>,
}

impl RepoRecordCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Did, (RepoRecord, RepoKeys)>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, did: &Did) -> Option<(RepoRecord, RepoKeys)> {
        self.lock().get(did).cloned()
    }

    pub(crate) fn remember(&self, record: &RepoRecord, keys: &RepoKeys) {
        let mut records = self.lock();
        if records.len() >= CAPACITY {
            records.clear();
        }
        records.insert(record.did.clone(), (record.clone(), keys.clone()));
    }

    /// Moves a cached record to the head and rev its commit just wrote.
    pub(crate) fn advance(&self, did: &Did, head: Cid, rev: Tid) {
        if let Some((record, _)) = self.lock().get_mut(did) {
            record.head = head;
            record.rev = rev;
        }
    }

    pub(crate) fn forget(&self, did: &Did) {
        self.lock().remove(did);
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}
