//! [`DiskStorage`]: the database, its tables, and the helpers every role's file shares.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use redb::{Database, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

use super::recent::{BlockReader, FOLD_AT, RECENT_BLOCKS, RecentIndex, RecentRows};
use super::records::{decode_meta, encode_event_record, encode_meta};
use super::writer::Writer;
use crate::block::BlockMap;
use crate::cid::Cid;
use crate::storage::codec::encode_event;
use crate::storage::repo_cache::RepoRecordCache;
use crate::storage::{EventBody, KeySealer, PackedBlocks, RepoRecord, Seq, StorageError};
use crate::syntax::Did;

/// DID → the repo record (head, rev, status, handle), which changes on every commit.
pub(super) const REPOS: TableDefinition<&str, &[u8]> = TableDefinition::new("repos");
/// DID → the account's sealed keys (written once, read only by signers).
pub(super) const REPO_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("repo_keys");
pub(super) const HANDLES: TableDefinition<&str, &str> = TableDefinition::new("handles");
/// CID bytes → when the block was last written (ms since the epoch, for the block collector)
/// and where its bytes are in [`BLOCK_DATA`], 8 bytes big-endian each (an [`IndexEntry`]).
/// Entries are small, so the random page a CID lands on is shared with many others. Entries
/// written since the last fold are in [`RECENT_BLOCKS`] instead (`recent`).
pub(super) const BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("block_index");
/// Block number → the block's bytes. Numbers are given in order, so a commit's blocks are
/// appended to the last pages rather than scattered over the pages their CIDs would pick; with
/// the bytes beside the CIDs, each block of a commit was a page written (`docs/storage.md`).
pub(super) const BLOCK_DATA: TableDefinition<u64, &[u8]> = TableDefinition::new("block_data");
/// Earlier layouts, moved to [`BLOCKS`] and [`BLOCK_DATA`] when [`DiskStorage::open`] finds them:
/// CID bytes → write time followed by the block; before that, CID bytes → block with CID bytes →
/// write time beside.
const STAMPED_BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("stamped_blocks");
const UNSTAMPED_BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blocks");
const BLOCK_WRITTEN: TableDefinition<&[u8], u64> = TableDefinition::new("block_written");
/// DID, a zero byte, record path → the record's CID (its length in one byte, then the CID) and
/// the record block: each repo's current records side by side in path order, the order an
/// export sends them, so `getRepo` reads them in one pass rather than one lookup by CID each. A
/// copy kept beside [`BLOCKS`], which stays the store of record: an export reads any record
/// missing here, or here under another CID, from there (`docs/storage.md`, "Records side by
/// side"). Keys are bytes, not strings, so a scan does not check UTF-8 again.
pub(super) const REPO_RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("repo_records");
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
    /// The block index entries not folded into [`BLOCKS`] yet.
    pub(super) recent: Arc<RecentIndex>,
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
        DiskStorage::open_folding_at(dir, sealer, FOLD_AT)
    }

    /// [`DiskStorage::open`], folding recent block index entries once `fold_at` are held.
    pub(super) fn open_folding_at(
        dir: &Path,
        sealer: Option<KeySealer>,
        fold_at: usize,
    ) -> Result<DiskStorage, StorageError> {
        std::fs::create_dir_all(dir).map_err(db_err)?;
        let path = dir.join("pds.redb");
        let db = Arc::new(Database::create(&path).map_err(db_err)?);
        let txn = db.begin_write().map_err(db_err)?;
        {
            txn.open_table(REPOS).map_err(db_err)?;
            txn.open_table(REPO_KEYS).map_err(db_err)?;
            txn.open_table(HANDLES).map_err(db_err)?;
            txn.open_table(BLOCKS).map_err(db_err)?;
            txn.open_table(BLOCK_DATA).map_err(db_err)?;
            for slice in RECENT_BLOCKS {
                txn.open_table(slice).map_err(db_err)?;
            }
            txn.open_table(REPO_RECORDS).map_err(db_err)?;
            txn.open_table(EVENTS).map_err(db_err)?;
            txn.open_table(EVENTS_BY_DID).map_err(db_err)?;
            txn.open_table(KV).map_err(db_err)?;
        }
        move_blocks_of_earlier_layouts(&txn)?;
        txn.commit().map_err(db_err)?;
        let recent = Arc::new(RecentIndex::load(&db, fold_at)?);
        Ok(DiskStorage {
            writer: Writer::start(db.clone(), recent.clone()),
            db,
            sealer,
            path,
            records: Default::default(),
            recent,
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

    /// Runs a read on a blocking thread with a snapshot and a [`BlockReader`] on it.
    pub(super) async fn read_with_blocks<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTransaction, &mut BlockReader<'_>) -> Result<T, StorageError>
        + Send
        + 'static,
    ) -> Result<T, StorageError> {
        let (db, recent) = (self.db.clone(), self.recent.clone());
        tokio::task::spawn_blocking(move || {
            let folds = recent.folds();
            let txn = db.begin_read().map_err(db_err)?;
            let mut blocks = BlockReader::at(&db, &recent, folds, &txn)?;
            f(&txn, &mut blocks)
        })
        .await
        .map_err(db_err)?
    }

    pub(super) fn sealer(&self) -> Result<&KeySealer, StorageError> {
        self.sealer.as_ref().ok_or(StorageError::NoKeySealer)
    }
}

/// Event bodies encoded for [`append`], before the write: the single writer only stores them.
pub(super) fn encode_bodies(bodies: &[EventBody]) -> Vec<Vec<u8>> {
    bodies.iter().map(encode_event).collect()
}

/// Appends events (bodies from [`encode_bodies`]) after the last one; numbers are consecutive
/// (nothing here can fail after).
pub(super) fn append(
    txn: &WriteTransaction,
    did: &Did,
    bodies: Vec<Vec<u8>>,
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
            .insert(seq, encode_event_record(did, time, body).as_slice())
            .map_err(db_err)?;
        by_did.insert((did.as_str(), seq), ()).map_err(db_err)?;
        seqs.push(seq);
    }
    Ok(seqs)
}

/// Writes `blocks`, each stamped with the time now (a block already stored is stamped anew and
/// its bytes left where they are). Their index entries go to `recent`.
pub(super) fn put_blocks(
    txn: &WriteTransaction,
    recent: &RecentIndex,
    blocks: &BlockMap,
) -> Result<(), StorageError> {
    let index = txn.open_table(BLOCKS).map_err(db_err)?;
    let mut data = txn.open_table(BLOCK_DATA).map_err(db_err)?;
    let mut rows = RecentRows::new(txn);
    let mut next = next_block_number(&data)?;
    let written_ms = now_ms();
    let mut key = Vec::with_capacity(64);
    for (cid, bytes) in blocks.iter() {
        key.clear();
        // Writing into a Vec cannot fail.
        let _ = cid.write_bytes(&mut key);
        let stored = match recent.get(&key) {
            Some(entry) => Some(entry.number),
            None => index
                .get(key.as_slice())
                .map_err(db_err)?
                .map(|v| IndexEntry::parse(v.value()).map(|e| e.number))
                .transpose()?,
        };
        let number = match stored {
            Some(number) => number,
            None => {
                data.insert(next, bytes).map_err(db_err)?;
                next += 1;
                next - 1
            }
        };
        recent.put(&mut rows, &key, IndexEntry { written_ms, number })?;
    }
    Ok(())
}

/// The number the next block stored in [`BLOCK_DATA`] gets.
fn next_block_number(data: &redb::Table<u64, &'static [u8]>) -> Result<u64, StorageError> {
    Ok(data
        .last()
        .map_err(db_err)?
        .map_or(1, |(number, _)| number.value() + 1))
}

/// Writes one block stamped `written_ms`: its bytes as block number `next` (then advanced),
/// unless its CID is stored already.
fn put_block(
    index: &mut redb::Table<&'static [u8], &'static [u8]>,
    data: &mut redb::Table<u64, &'static [u8]>,
    next: &mut u64,
    key: &[u8],
    written_ms: u64,
    bytes: &[u8],
) -> Result<(), StorageError> {
    // Most blocks are new: the entry goes in at once, and only a block stored before (whose
    // old entry comes back) has it put right, on the page the first insert just wrote.
    let fresh = IndexEntry {
        written_ms,
        number: *next,
    };
    let replaced = index
        .insert(key, fresh.bytes().as_slice())
        .map_err(db_err)?
        .map(|old| IndexEntry::parse(old.value()))
        .transpose()?;
    match replaced {
        Some(old) => {
            let kept = IndexEntry {
                written_ms,
                number: old.number,
            };
            index.insert(key, kept.bytes().as_slice()).map_err(db_err)?;
        }
        None => {
            data.insert(*next, bytes).map_err(db_err)?;
            *next += 1;
        }
    }
    Ok(())
}

/// A [`BLOCKS`] value: when the block was written and its number in [`BLOCK_DATA`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IndexEntry {
    pub(super) written_ms: u64,
    pub(super) number: u64,
}

impl IndexEntry {
    pub(super) fn parse(value: &[u8]) -> Result<IndexEntry, StorageError> {
        let corrupt = || StorageError::Corrupt {
            what: "block index entry".into(),
            why: "not a write time and a block number",
        };
        let (written, number) = value.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let number: [u8; 8] = number.try_into().map_err(|_| corrupt())?;
        Ok(IndexEntry {
            written_ms: u64::from_be_bytes(*written),
            number: u64::from_be_bytes(number),
        })
    }

    pub(super) fn bytes(self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.written_ms.to_be_bytes());
        out[8..].copy_from_slice(&self.number.to_be_bytes());
        out
    }
}

/// A [`REPO_RECORDS`] value: the CID's length, the CID, the block.
pub(super) fn encode_repo_record(cid: &Cid, block: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + cid.encoded_len() + block.len());
    out.push(u8::try_from(cid.encoded_len()).unwrap_or(u8::MAX));
    // Writing into a Vec cannot fail.
    let _ = cid.write_bytes(&mut out);
    out.extend_from_slice(block);
    out
}

/// A [`REPO_RECORDS`] value split into the CID's bytes and the block.
pub(super) fn split_repo_record(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = value.split_first()?;
    rest.split_at_checked(usize::from(*len))
}

/// The [`REPO_RECORDS`] key of `path` in `did`'s repo.
pub(super) fn repo_record_key(did: &Did, path: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(did.as_str().len() + 1 + path.len());
    key.extend_from_slice(did.as_str().as_bytes());
    key.push(0);
    key.extend_from_slice(path.as_bytes());
    key
}

/// The path part of `did`'s [`REPO_RECORDS`] key `key`.
pub(super) fn repo_record_path<'k>(did: &Did, key: &'k [u8]) -> &'k [u8] {
    key.get(did.as_str().len() + 1..).unwrap_or_default()
}

/// The bounds of `did`'s keys in [`REPO_RECORDS`]: from the DID and a zero byte, up to (not
/// including) the DID and a one byte. No DID or path holds a zero byte.
pub(super) fn repo_records_range(did: &Did) -> (Vec<u8>, Vec<u8>) {
    let start = repo_record_key(did, "");
    let mut end = start.clone();
    if let Some(last) = end.last_mut() {
        *last = 1;
    }
    (start, end)
}

/// Sets or removes `did`'s entries in [`REPO_RECORDS`]: `(path, Some(value))` sets one (a value
/// from [`encode_repo_record`]), `(path, None)` removes it.
pub(super) fn put_repo_records(
    txn: &WriteTransaction,
    did: &Did,
    records: &[(String, Option<Vec<u8>>)],
) -> Result<(), StorageError> {
    let mut table = txn.open_table(REPO_RECORDS).map_err(db_err)?;
    for (path, value) in records {
        let key = repo_record_key(did, path);
        match value {
            Some(value) => table.insert(key.as_slice(), value.as_slice()).map(drop),
            None => table.remove(key.as_slice()).map(drop),
        }
        .map_err(db_err)?;
    }
    Ok(())
}

/// Removes every [`REPO_RECORDS`] entry of `did`.
pub(super) fn clear_repo_records(txn: &WriteTransaction, did: &Did) -> Result<(), StorageError> {
    let mut table = txn.open_table(REPO_RECORDS).map_err(db_err)?;
    let (start, end) = repo_records_range(did);
    table
        .retain_in::<&[u8], _>(start.as_slice()..end.as_slice(), |_, _| false)
        .map_err(db_err)
}

/// Test access to [`REPO_RECORDS`] for the other files' tests.
#[cfg(test)]
pub(super) mod repo_records_for_tests {
    use super::*;

    /// `did`'s entries: each path with the CID its entry names.
    pub(crate) fn repo_records_of(s: &DiskStorage, did: &Did) -> Vec<(String, Cid)> {
        let txn = s.db.begin_read().expect("read");
        let table = txn.open_table(REPO_RECORDS).expect("table");
        let (start, end) = repo_records_range(did);
        table
            .range::<&[u8]>(start.as_slice()..end.as_slice())
            .expect("range")
            .map(|entry| {
                let (key, value) = entry.expect("entry");
                let path = repo_record_path(did, key.value());
                let (cid, _) = split_repo_record(value.value()).expect("value");
                (
                    String::from_utf8(path.to_vec()).expect("path"),
                    crate::cid::cid_from_bytes(cid).expect("cid"),
                )
            })
            .collect()
    }

    /// Sets `did`'s entry for `path` to `cid` and `block`, whatever the tree says.
    pub(crate) fn set_repo_record(s: &DiskStorage, did: &Did, path: &str, cid: &Cid, block: &[u8]) {
        let txn = s.db.begin_write().expect("write");
        put_repo_records(
            &txn,
            did,
            &[(path.to_owned(), Some(encode_repo_record(cid, block)))],
        )
        .expect("put");
        txn.commit().expect("commit");
    }
}

/// Appends block `cid` (whose CID bytes are `key`) to `packed`.
pub(super) fn push_stored(
    blocks: &mut BlockReader<'_>,
    key: &[u8],
    cid: &Cid,
    packed: &mut PackedBlocks,
) -> Result<(), StorageError> {
    blocks
        .with_block(key, |bytes| packed.push(bytes))?
        .ok_or(StorageError::MissingBlock(*cid))
}

/// Moves the blocks of a store written in an earlier layout (see [`STAMPED_BLOCKS`]) to
/// [`BLOCKS`] and [`BLOCK_DATA`], once (a block that had no write time gets 0: the collector may
/// take it if nothing names it).
fn move_blocks_of_earlier_layouts(txn: &WriteTransaction) -> Result<(), StorageError> {
    let present: Vec<String> = txn
        .list_tables()
        .map_err(db_err)?
        .map(|t| redb::TableHandle::name(&t).to_owned())
        .collect();
    let has = |table: &str| present.iter().any(|n| n == table);
    let (unstamped, stamped) = (
        has(redb::TableHandle::name(&UNSTAMPED_BLOCKS)),
        has(redb::TableHandle::name(&STAMPED_BLOCKS)),
    );
    if !unstamped && !stamped {
        return Ok(());
    }
    {
        let mut index = txn.open_table(BLOCKS).map_err(db_err)?;
        let mut data = txn.open_table(BLOCK_DATA).map_err(db_err)?;
        let mut next = next_block_number(&data)?;
        let mut put = |key: &[u8], written_ms: u64, block: &[u8]| {
            put_block(&mut index, &mut data, &mut next, key, written_ms, block)
        };
        if unstamped {
            let old = txn.open_table(UNSTAMPED_BLOCKS).map_err(db_err)?;
            let written = txn.open_table(BLOCK_WRITTEN).map_err(db_err)?;
            for entry in old.iter().map_err(db_err)? {
                let (key, block) = entry.map_err(db_err)?;
                let written_ms = written
                    .get(key.value())
                    .map_err(db_err)?
                    .map_or(0, |v| v.value());
                put(key.value(), written_ms, block.value())?;
            }
        }
        if stamped {
            let old = txn.open_table(STAMPED_BLOCKS).map_err(db_err)?;
            for entry in old.iter().map_err(db_err)? {
                let (key, value) = entry.map_err(db_err)?;
                let (written, block) =
                    value
                        .value()
                        .split_first_chunk::<8>()
                        .ok_or(StorageError::Corrupt {
                            what: "block".into(),
                            why: "shorter than its write stamp",
                        })?;
                put(key.value(), u64::from_be_bytes(*written), block)?;
            }
        }
    }
    if unstamped {
        txn.delete_table(UNSTAMPED_BLOCKS).map_err(db_err)?;
        txn.delete_table(BLOCK_WRITTEN).map_err(db_err)?;
    }
    if stamped {
        txn.delete_table(STAMPED_BLOCKS).map_err(db_err)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::{Cid, cid_for_cbor};
    use crate::storage::BlockStore;
    use redb::ReadableTableMetadata;

    /// Each stored block's write time, as the collector's scan lists it.
    async fn write_times(storage: &DiskStorage) -> std::collections::HashMap<Cid, u64> {
        let (scanned, _) = storage.scan_blocks(None, 10).await.expect("scan");
        scanned.iter().map(|b| (b.cid, b.written_ms)).collect()
    }

    /// The names of the store's tables.
    fn table_names(storage: &DiskStorage) -> Vec<String> {
        let txn = storage.db.begin_read().expect("read txn");
        txn.list_tables()
            .expect("tables")
            .map(|t| redb::TableHandle::name(&t).to_owned())
            .collect()
    }

    /// How many blocks' bytes [`BLOCK_DATA`] holds.
    fn stored_block_bytes(storage: &DiskStorage) -> u64 {
        let txn = storage.db.begin_read().expect("read txn");
        let data = txn.open_table(BLOCK_DATA).expect("data");
        data.len().expect("len")
    }

    #[tokio::test]
    async fn a_store_from_before_the_stamps_keeps_its_blocks_and_their_write_times() {
        let dir = tempfile::tempdir().expect("temp dir");
        let stamped = cid_for_cbor(b"\xa1ax\x01");
        let unstamped = cid_for_cbor(b"\xa1ax\x02");
        {
            let db = Database::create(dir.path().join("pds.redb")).expect("db");
            let txn = db.begin_write().expect("txn");
            {
                let mut blocks = txn.open_table(UNSTAMPED_BLOCKS).expect("blocks");
                let mut written = txn.open_table(BLOCK_WRITTEN).expect("written");
                blocks
                    .insert(stamped.to_bytes().as_slice(), b"\xa1ax\x01".as_slice())
                    .expect("put");
                blocks
                    .insert(unstamped.to_bytes().as_slice(), b"\xa1ax\x02".as_slice())
                    .expect("put");
                written
                    .insert(stamped.to_bytes().as_slice(), 1_234)
                    .expect("put");
            }
            txn.commit().expect("commit");
        }
        let storage = DiskStorage::open(dir.path(), None).expect("open");
        let found = storage
            .read_blocks(&[stamped, unstamped])
            .await
            .expect("read");
        assert_eq!(found.get(&stamped), Some(b"\xa1ax\x01".as_slice()));
        assert_eq!(found.get(&unstamped), Some(b"\xa1ax\x02".as_slice()));
        let times = write_times(&storage).await;
        assert_eq!(times.get(&stamped), Some(&1_234));
        assert_eq!(times.get(&unstamped), Some(&0));
        let names = table_names(&storage);
        assert!(
            !names.iter().any(|n| n == "blocks" || n == "block_written"),
            "{names:?}"
        );
    }

    #[tokio::test]
    async fn a_store_with_the_stamps_beside_the_bytes_keeps_its_blocks_and_their_write_times() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (one, two) = (cid_for_cbor(b"\xa1ax\x01"), cid_for_cbor(b"\xa1ax\x02"));
        {
            let db = Database::create(dir.path().join("pds.redb")).expect("db");
            let txn = db.begin_write().expect("txn");
            {
                let mut blocks = txn.open_table(STAMPED_BLOCKS).expect("blocks");
                for (cid, written, block) in [
                    (one, 1_234u64, b"\xa1ax\x01".as_slice()),
                    (two, 5_678, b"\xa1ax\x02".as_slice()),
                ] {
                    let value = [written.to_be_bytes().as_slice(), block].concat();
                    blocks
                        .insert(cid.to_bytes().as_slice(), value.as_slice())
                        .expect("put");
                }
            }
            txn.commit().expect("commit");
        }
        let storage = DiskStorage::open(dir.path(), None).expect("open");
        let found = storage.read_blocks(&[one, two]).await.expect("read");
        assert_eq!(found.get(&one), Some(b"\xa1ax\x01".as_slice()));
        assert_eq!(found.get(&two), Some(b"\xa1ax\x02".as_slice()));
        let times = write_times(&storage).await;
        assert_eq!(times.get(&one), Some(&1_234));
        assert_eq!(times.get(&two), Some(&5_678));
        // Collected blocks take their bytes with them.
        assert_eq!(
            storage.delete_blocks(&[one], 2_000).await.expect("delete"),
            1
        );
        assert_eq!(stored_block_bytes(&storage), 1);
        let names = table_names(&storage);
        assert!(!names.iter().any(|n| n == "stamped_blocks"), "{names:?}");
    }

    #[tokio::test]
    async fn a_block_written_again_keeps_its_bytes_once_with_a_new_stamp() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = DiskStorage::open(dir.path(), None).expect("open");
        let cid = cid_for_cbor(b"\xa1ax\x03");
        let mut blocks = BlockMap::new();
        blocks.insert(cid, b"\xa1ax\x03".to_vec());
        storage.write_blocks(&blocks).await.expect("write");
        let (first, _) = storage.scan_blocks(None, 10).await.expect("scan");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        storage.write_blocks(&blocks).await.expect("write again");
        let (second, _) = storage.scan_blocks(None, 10).await.expect("scan");
        assert!(second[0].written_ms > first[0].written_ms);
        assert_eq!(stored_block_bytes(&storage), 1);
    }
}
