//! The process-local cache of decoded repo records the disk and DynamoDB backends share.
//! Decoding a record unseals its keys and derives a public key, which would otherwise dominate a
//! small commit. An entry may be stale; a stale head only costs the writer a conflict and a fresh
//! read.

use std::collections::HashMap;
use std::sync::Mutex;

use super::types::RepoRecord;
use crate::cid::Cid;
use crate::syntax::Did;
use crate::tid::Tid;

/// Past this many entries the cache starts over rather than tracking recency.
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub(crate) struct RepoRecordCache {
    records: Mutex<HashMap<Did, RepoRecord>>,
}

impl RepoRecordCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Did, RepoRecord>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, did: &Did) -> Option<RepoRecord> {
        self.lock().get(did).cloned()
    }

    pub(crate) fn remember(&self, record: &RepoRecord) {
        let mut records = self.lock();
        if records.len() >= CAPACITY {
            records.clear();
        }
        records.insert(record.did.clone(), record.clone());
    }

    /// Moves a cached record to the head and rev its commit just wrote.
    pub(crate) fn advance(&self, did: &Did, head: Cid, rev: Tid) {
        if let Some(record) = self.lock().get_mut(did) {
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
