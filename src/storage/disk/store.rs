//! [`DiskStorage`]: the database, its tables, and the helpers every role's file shares.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use redb::{Database, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

use super::records::{decode_meta, encode_event_record, encode_meta};
use super::writer::Writer;
use crate::block::BlockMap;
use crate::storage::repo_cache::RepoRecordCache;
use crate::storage::{EventBody, KeySealer, RepoRecord, Seq, StorageError};
use crate::syntax::Did;

/// DID → the repo record (head, rev, status, handle), which changes on every commit.
pub(super) const REPOS: TableDefinition<&str, &[u8]> = TableDefinition::new("repos");
/// DID → the account's sealed keys (written once, read only by signers).
pub(super) const REPO_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("repo_keys");
pub(super) const HANDLES: TableDefinition<&str, &str> = TableDefinition::new("handles");
pub(super) const BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blocks");
/// CID bytes → when the block was last written (ms since the epoch), for the block collector.
pub(super) const BLOCK_WRITTEN: TableDefinition<&[u8], u64> = TableDefinition::new("block_written");
pub(super) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
pub(super) const EVENTS_BY_DID: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("events_by_did");
pub(super) const KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");

pub(super) fn db_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(e.to_string().into())
}

/// Storage in one redb file.
#[derive(Clone)]
pub struct DiskStorage {
    pub(super) db: Arc<Database>,
    pub(super) writer: Writer,
    /// Opens account keys; None in processes that never sign.
    pub(super) sealer: Option<KeySealer>,
    path: PathBuf,
    /// Decoded records and keys for writers (`load_for_write_cached`).
    pub(super) records: Arc<RepoRecordCache>,
}

impl std::fmt::Debug for DiskStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStorage")
            .field("path", &self.path)
            .finish()
    }
}

impl DiskStorage {
    /// Opens (or creates) `pds.redb` in `dir`. Account keys are sealed with `sealer`; without
    /// one, reading or writing keys fails with [`StorageError::NoKeySealer`].
    pub fn open(dir: &Path, sealer: Option<KeySealer>) -> Result<DiskStorage, StorageError> {
        std::fs::create_dir_all(dir).map_err(db_err)?;
        let path = dir.join("pds.redb");
        let db = Arc::new(Database::create(&path).map_err(db_err)?);
        let txn = db.begin_write().map_err(db_err)?;
        {
            txn.open_table(REPOS).map_err(db_err)?;
            txn.open_table(REPO_KEYS).map_err(db_err)?;
            txn.open_table(HANDLES).map_err(db_err)?;
            txn.open_table(BLOCKS).map_err(db_err)?;
            txn.open_table(BLOCK_WRITTEN).map_err(db_err)?;
            txn.open_table(EVENTS).map_err(db_err)?;
            txn.open_table(EVENTS_BY_DID).map_err(db_err)?;
            txn.open_table(KV).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(DiskStorage {
            writer: Writer::start(db.clone()),
            db,
            sealer,
            path,
            records: Default::default(),
        })
    }

    /// Runs a read on a blocking thread with a snapshot.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(db_err)?;
            f(&txn)
        })
        .await
        .map_err(db_err)?
    }

    pub(super) fn sealer(&self) -> Result<&KeySealer, StorageError> {
        self.sealer.as_ref().ok_or(StorageError::NoKeySealer)
    }
}

/// Appends events after the last one; numbers are consecutive (nothing here can fail after).
pub(super) fn append(
    txn: &WriteTransaction,
    did: &Did,
    bodies: Vec<EventBody>,
) -> Result<Vec<Seq>, StorageError> {
    let mut events = txn.open_table(EVENTS).map_err(db_err)?;
    let mut by_did = txn.open_table(EVENTS_BY_DID).map_err(db_err)?;
    let first = events
        .last()
        .map_err(db_err)?
        .map_or(1, |(k, _)| k.value() + 1);
    let time = Utc::now();
    let mut seqs = Vec::new();
    for (seq, body) in (first..).zip(bodies) {
        events
            .insert(seq, encode_event_record(did, time, &body).as_slice())
            .map_err(db_err)?;
        by_did.insert((did.as_str(), seq), ()).map_err(db_err)?;
        seqs.push(seq);
    }
    Ok(seqs)
}

pub(super) fn put_blocks(txn: &WriteTransaction, blocks: &BlockMap) -> Result<(), StorageError> {
    let mut table = txn.open_table(BLOCKS).map_err(db_err)?;
    let mut written = txn.open_table(BLOCK_WRITTEN).map_err(db_err)?;
    let now = now_ms();
    for (cid, bytes) in blocks.iter() {
        let key = cid.to_bytes();
        if table.get(key.as_slice()).map_err(db_err)?.is_none() {
            table.insert(key.as_slice(), bytes).map_err(db_err)?;
        }
        written.insert(key.as_slice(), now).map_err(db_err)?;
    }
    Ok(())
}

/// Now, in milliseconds since the Unix epoch.
pub(super) fn now_ms() -> u64 {
    u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0)
}

/// The record of `did` inside a write transaction.
pub(super) fn load(txn: &WriteTransaction, did: &Did) -> Result<Option<RepoRecord>, StorageError> {
    let table = txn.open_table(REPOS).map_err(db_err)?;
    let found = table.get(did.as_str()).map_err(db_err)?;
    found.map(|v| decode_meta(v.value())).transpose()
}

pub(super) fn store(txn: &WriteTransaction, record: &RepoRecord) -> Result<(), StorageError> {
    let mut table = txn.open_table(REPOS).map_err(db_err)?;
    table
        .insert(record.did.as_str(), encode_meta(record).as_slice())
        .map_err(db_err)?;
    Ok(())
}
