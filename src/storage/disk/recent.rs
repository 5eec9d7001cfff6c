//! The recent part of the block index: the [`IndexEntry`]s of blocks written since they were
//! last folded into [`BLOCKS`], in memory for lookups and in [`RECENT_BLOCKS`] so a restart
//! finds them, folded in by the writer thread a thousand or so at a time.
//!
//! [`BLOCKS`] is keyed by CID, a hash, so each block a commit writes lands on a random page of
//! it, and redb copies and writes every page a transaction touches: about one page per block
//! written. Recent entries are kept in [`RECENT_BLOCKS`], a table per slice keyed by block
//! number, so a commit's entries are appended to the last page of a few tables; a fold inserts
//! one slice's entries in key order, so they share the pages they land on, then drops the
//! slice's table whole (`docs/storage.md`, "Blocks on disk"). A slice is a sixteenth of the CID
//! space: folding one at a time bounds the writer's pause, and each still finds many of its
//! entries on each page.
//!
//! A reader looks a CID up here first, then in [`BLOCKS`] ([`BlockReader`]). Entries are
//! published before their transaction commits, so a reader that has seen a new repo head
//! always finds its blocks; a reader whose snapshot is older than an entry finds no bytes under
//! its number and takes the block as absent. A fold removes its entries only after its commit,
//! and a reader that misses after a fold looks again in a newer snapshot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use redb::{Database, ReadOnlyTable, ReadableTable, TableDefinition, WriteTransaction};

use super::store::{BLOCK_DATA, BLOCKS, IndexEntry, db_err};
use crate::storage::StorageError;

/// Per slice, block number → the block's write time (8 bytes, big-endian) then its CID bytes:
/// the entries of [`BLOCKS`] not folded into it yet. Dropping a table is far cheaper for redb
/// than removing its rows one by one.
pub(super) const RECENT_BLOCKS: [TableDefinition<u64, &[u8]>; SLICES] = [
    TableDefinition::new("recent_block_index_0"),
    TableDefinition::new("recent_block_index_1"),
    TableDefinition::new("recent_block_index_2"),
    TableDefinition::new("recent_block_index_3"),
    TableDefinition::new("recent_block_index_4"),
    TableDefinition::new("recent_block_index_5"),
    TableDefinition::new("recent_block_index_6"),
    TableDefinition::new("recent_block_index_7"),
    TableDefinition::new("recent_block_index_8"),
    TableDefinition::new("recent_block_index_9"),
    TableDefinition::new("recent_block_index_10"),
    TableDefinition::new("recent_block_index_11"),
    TableDefinition::new("recent_block_index_12"),
    TableDefinition::new("recent_block_index_13"),
    TableDefinition::new("recent_block_index_14"),
    TableDefinition::new("recent_block_index_15"),
];

/// Entries held over all slices when each is due to be folded (a slice is due at a sixteenth
/// of this, 1,024): ~100 bytes of memory each, and a slice takes the writer a few milliseconds
/// to fold (`docs/storage.md`).
pub(super) const FOLD_AT: usize = 16_384;

/// Slices of the CID space, each with its own table, folded one at a time.
pub(super) const SLICES: usize = 16;

/// The slice of the CID space `key` (CID bytes) is in: contiguous in key order among CIDs of
/// one version, codec and hash (the first four bytes), by the hash's top four bits.
fn slice_of(key: &[u8]) -> u8 {
    key.get(4).map_or(0, |b| b >> 4)
}

/// The entries not yet in [`BLOCKS`].
#[derive(Debug)]
pub(super) struct RecentIndex {
    entries: RwLock<Entries>,
    /// Folds committed so far: a reader that misses after one looks again.
    folds: AtomicU64,
    /// Entries a slice holds before it is due to be folded.
    slice_fold_at: usize,
}

#[derive(Debug, Default)]
struct Entries {
    by_cid: HashMap<Vec<u8>, IndexEntry>,
    per_slice: [usize; SLICES],
}

impl Entries {
    fn insert(&mut self, key: &[u8], entry: IndexEntry) {
        if self.by_cid.insert(key.to_vec(), entry).is_none() {
            self.per_slice[usize::from(slice_of(key))] += 1;
        }
    }

    fn remove(&mut self, key: &[u8]) {
        if self.by_cid.remove(key).is_some() {
            self.per_slice[usize::from(slice_of(key))] -= 1;
        }
    }
}

impl RecentIndex {
    /// The entries [`RECENT_BLOCKS`] holds in `db`; slices are folded once `fold_at` entries
    /// are held over all of them.
    pub(super) fn load(db: &Database, fold_at: usize) -> Result<RecentIndex, StorageError> {
        let recent = RecentIndex {
            entries: RwLock::default(),
            folds: AtomicU64::new(0),
            slice_fold_at: (fold_at / SLICES).max(1),
        };
        recent.reload(db)?;
        Ok(recent)
    }

    fn read(&self) -> RwLockReadGuard<'_, Entries> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Entries> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the entries in memory with those committed in `db` (after a failed commit,
    /// whose entries were published but not stored).
    pub(super) fn reload(&self, db: &Database) -> Result<(), StorageError> {
        let txn = db.begin_read().map_err(db_err)?;
        let mut loaded = Entries::default();
        for slice in RECENT_BLOCKS {
            let rows = txn.open_table(slice).map_err(db_err)?;
            for row in rows.iter().map_err(db_err)? {
                let (number, value) = row.map_err(db_err)?;
                let (key, entry) = parse_row(number.value(), value.value())?;
                loaded.insert(key, entry);
            }
        }
        *self.write() = loaded;
        self.folds.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<IndexEntry> {
        self.read().by_cid.get(key).copied()
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.read().by_cid.len()
    }

    pub(super) fn folds(&self) -> u64 {
        self.folds.load(Ordering::SeqCst)
    }

    /// Records in `txn` (and at once in memory) that the block whose CID bytes are `key` is
    /// block `entry.number`, written at `entry.written_ms`.
    pub(super) fn put(
        &self,
        rows: &mut RecentRows<'_>,
        key: &[u8],
        entry: IndexEntry,
    ) -> Result<(), StorageError> {
        let mut row = Vec::with_capacity(8 + key.len());
        row.extend_from_slice(&entry.written_ms.to_be_bytes());
        row.extend_from_slice(key);
        rows.of(slice_of(key))?
            .insert(entry.number, row.as_slice())
            .map_err(db_err)?;
        self.write().insert(key, entry);
        Ok(())
    }

    /// Removes the entry of a block deleted in `txn`.
    pub(super) fn remove(
        &self,
        rows: &mut RecentRows<'_>,
        key: &[u8],
        entry: IndexEntry,
    ) -> Result<(), StorageError> {
        rows.of(slice_of(key))?
            .remove(entry.number)
            .map_err(db_err)?;
        self.write().remove(key);
        Ok(())
    }

    /// The fullest slice, if it is due to be folded.
    pub(super) fn due_slice(&self) -> Option<u8> {
        let entries = self.read();
        let (slice, held) = (0u8..)
            .zip(entries.per_slice)
            .max_by_key(|(_, held)| *held)?;
        (held >= self.slice_fold_at).then_some(slice)
    }

    /// Folds `slice`'s entries into [`BLOCKS`] in a transaction of its own.
    pub(super) fn fold_slice(&self, db: &Database, slice: u8) -> Result<(), StorageError> {
        let started = std::time::Instant::now();
        let txn = db.begin_write().map_err(db_err)?;
        let folded = fold_rows(&txn, [slice])?;
        txn.commit().map_err(db_err)?;
        self.forget_folded(&folded);
        tracing::debug!(
            slice,
            entries = folded.len(),
            took_us = started.elapsed().as_micros(),
            "folded a slice of the recent block index"
        );
        Ok(())
    }

    /// Drops the entries a committed fold wrote to [`BLOCKS`], except those written again
    /// since. The count of folds moves first, under the same lock, so a reader that no longer
    /// finds an entry here sees that it must look in a newer snapshot.
    pub(super) fn forget_folded(&self, folded: &[(Vec<u8>, IndexEntry)]) {
        let mut entries = self.write();
        self.folds.fetch_add(1, Ordering::SeqCst);
        for (key, entry) in folded {
            if entries.by_cid.get(key) == Some(entry) {
                entries.remove(key);
            }
        }
    }
}

/// The tables of [`RECENT_BLOCKS`] in a write transaction, each opened when first used.
pub(super) struct RecentRows<'txn> {
    txn: &'txn WriteTransaction,
    open: [Option<redb::Table<'txn, u64, &'static [u8]>>; SLICES],
}

impl<'txn> RecentRows<'txn> {
    pub(super) fn new(txn: &'txn WriteTransaction) -> Self {
        RecentRows {
            txn,
            open: Default::default(),
        }
    }

    fn of(
        &mut self,
        slice: u8,
    ) -> Result<&mut redb::Table<'txn, u64, &'static [u8]>, StorageError> {
        let index = usize::from(slice);
        let table = match self.open.get_mut(index) {
            Some(Some(table)) => table,
            Some(place) => place.insert(self.txn.open_table(RECENT_BLOCKS[index]).map_err(db_err)?),
            None => {
                return Err(StorageError::Corrupt {
                    what: "recent block index".into(),
                    why: "no such slice",
                });
            }
        };
        Ok(table)
    }
}

/// Moves the rows of `slices` from [`RECENT_BLOCKS`] into [`BLOCKS`] in `txn`, in CID order;
/// returns what it moved, for [`RecentIndex::forget_folded`] once `txn` has committed.
pub(super) fn fold_rows(
    txn: &WriteTransaction,
    slices: impl IntoIterator<Item = u8>,
) -> Result<Vec<(Vec<u8>, IndexEntry)>, StorageError> {
    let mut folded = Vec::new();
    for slice in slices {
        let Some(&table) = RECENT_BLOCKS.get(usize::from(slice)) else {
            continue;
        };
        {
            let rows = txn.open_table(table).map_err(db_err)?;
            for row in rows.iter().map_err(db_err)? {
                let (number, value) = row.map_err(db_err)?;
                let (key, entry) = parse_row(number.value(), value.value())?;
                folded.push((key.to_vec(), entry));
            }
        }
        txn.delete_table(table).map_err(db_err)?;
        txn.open_table(table).map_err(db_err)?;
    }
    folded.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut index = txn.open_table(BLOCKS).map_err(db_err)?;
    for (key, entry) in &folded {
        index
            .insert(key.as_slice(), entry.bytes().as_slice())
            .map_err(db_err)?;
    }
    Ok(folded)
}

fn parse_row(number: u64, value: &[u8]) -> Result<(&[u8], IndexEntry), StorageError> {
    let (written, key) = value
        .split_first_chunk::<8>()
        .ok_or(StorageError::Corrupt {
            what: "recent block index entry".into(),
            why: "shorter than its write time",
        })?;
    Ok((
        key,
        IndexEntry {
            written_ms: u64::from_be_bytes(*written),
            number,
        },
    ))
}

/// Finds blocks by CID in one snapshot, through the recent entries and then [`BLOCKS`].
pub(super) struct BlockReader<'r> {
    db: &'r Database,
    recent: &'r RecentIndex,
    /// [`RecentIndex::folds`] when the snapshot was taken.
    folds: u64,
    index: ReadOnlyTable<&'static [u8], &'static [u8]>,
    data: ReadOnlyTable<u64, &'static [u8]>,
}

impl<'r> BlockReader<'r> {
    /// A reader on a snapshot of its own.
    pub(super) fn open(db: &'r Database, recent: &'r RecentIndex) -> Result<Self, StorageError> {
        let folds = recent.folds();
        let txn = db.begin_read().map_err(db_err)?;
        BlockReader::at(db, recent, folds, &txn)
    }

    /// A reader on `txn`'s snapshot; `folds` is [`RecentIndex::folds`] read before `txn` began,
    /// so a fold it does not count is in the snapshot.
    pub(super) fn at(
        db: &'r Database,
        recent: &'r RecentIndex,
        folds: u64,
        txn: &redb::ReadTransaction,
    ) -> Result<Self, StorageError> {
        Ok(BlockReader {
            db,
            recent,
            folds,
            index: txn.open_table(BLOCKS).map_err(db_err)?,
            data: txn.open_table(BLOCK_DATA).map_err(db_err)?,
        })
    }

    /// Calls `f` with the bytes of the block whose CID bytes are `key`, if it is stored.
    pub(super) fn with_block<T>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, StorageError> {
        if let Some(bytes) = self.find(key)? {
            return Ok(Some(f(bytes.value())));
        }
        if self.recent.folds() == self.folds {
            return Ok(None);
        }
        // A fold since the snapshot may have moved the entry out of memory into a BLOCKS the
        // snapshot predates. Blocks never change under their CID, so a newer snapshot serves.
        *self = BlockReader::open(self.db, self.recent)?;
        Ok(self.find(key)?.map(|bytes| f(bytes.value())))
    }

    fn find(
        &self,
        key: &[u8],
    ) -> Result<Option<redb::AccessGuard<'_, &'static [u8]>>, StorageError> {
        if let Some(entry) = self.recent.get(key) {
            // Absent from the snapshot if the entry's transaction committed after it was taken.
            if let Some(bytes) = self.data.get(entry.number).map_err(db_err)? {
                return Ok(Some(bytes));
            }
        }
        let Some(entry) = self.index.get(key).map_err(db_err)? else {
            return Ok(None);
        };
        let number = IndexEntry::parse(entry.value())?.number;
        self.data
            .get(number)
            .map_err(db_err)?
            .map(Some)
            .ok_or(StorageError::Corrupt {
                what: "block".into(),
                why: "indexed but its bytes are missing",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockMap;
    use crate::cid::{Cid, cid_for_cbor};
    use crate::storage::BlockStore;
    use crate::storage::disk::DiskStorage;
    use redb::ReadableTableMetadata;

    fn block(n: u8) -> (Cid, Vec<u8>) {
        let bytes = vec![0xa1, 0x61, 0x78, n];
        (cid_for_cbor(&bytes), bytes)
    }

    fn blocks(ns: impl IntoIterator<Item = u8>) -> BlockMap {
        let mut map = BlockMap::new();
        for n in ns {
            let (cid, bytes) = block(n);
            map.insert(cid, bytes);
        }
        map
    }

    /// Rows in (recent index, folded index, block bytes).
    fn counts(storage: &DiskStorage) -> (u64, u64, u64) {
        let txn = storage.db.begin_read().expect("read");
        let len = |n: Result<u64, redb::StorageError>| n.expect("len");
        let recent = RECENT_BLOCKS
            .iter()
            .map(|&t| len(txn.open_table(t).expect("recent").len()))
            .sum();
        (
            recent,
            len(txn.open_table(BLOCKS).expect("index").len()),
            len(txn.open_table(BLOCK_DATA).expect("data").len()),
        )
    }

    /// Block `cid` as `reader` finds it.
    fn read(reader: &mut BlockReader<'_>, cid: &Cid) -> Option<Vec<u8>> {
        reader
            .with_block(&cid.to_bytes(), <[u8]>::to_vec)
            .expect("read")
    }

    /// Opens the store in `dir` again once the last one's writer thread has let the file go.
    async fn reopen(dir: &std::path::Path, fold_at: usize) -> DiskStorage {
        for _ in 0..200 {
            if let Ok(storage) = DiskStorage::open_folding_at(dir, None, fold_at) {
                return storage;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the store in {} stayed open", dir.display());
    }

    /// How many of blocks `ns` read back with their bytes.
    async fn found(storage: &DiskStorage, ns: impl IntoIterator<Item = u8>) -> usize {
        let wanted: Vec<(Cid, Vec<u8>)> = ns.into_iter().map(block).collect();
        let cids: Vec<Cid> = wanted.iter().map(|(cid, _)| *cid).collect();
        let read = storage.read_blocks(&cids).await.expect("read");
        wanted
            .iter()
            .filter(|(cid, bytes)| read.get(cid) == Some(bytes.as_slice()))
            .count()
    }

    #[tokio::test]
    async fn recent_blocks_are_found_before_a_fold_after_a_restart_and_after_the_fold() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Never due: no slice reaches this many entries.
        let never = usize::MAX;
        {
            let storage = DiskStorage::open_folding_at(dir.path(), None, never).expect("open");
            storage.write_blocks(&blocks(0..3)).await.expect("write");
            // Written again before a fold: stamped anew, its bytes kept once.
            storage.write_blocks(&blocks(2..4)).await.expect("write");
            assert_eq!(counts(&storage), (4, 0, 4));
            assert_eq!(found(&storage, 0..4).await, 4);
        }
        // A restart before the fold finds the entries in their table.
        // Each slice due as soon as it holds an entry.
        let storage = reopen(dir.path(), 1).await;
        assert_eq!(storage.recent.len(), 4);
        assert_eq!(found(&storage, 0..4).await, 4);
        // The writer folds due slices after answering, while no write waits.
        storage.write_blocks(&blocks(4..6)).await.expect("write");
        for _ in 0..200 {
            if counts(&storage).0 == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(counts(&storage), (0, 6, 6));
        assert_eq!(storage.recent.len(), 0);
        assert_eq!(found(&storage, 0..6).await, 6);
        assert_eq!(found(&storage, 6..8).await, 0);
    }

    #[tokio::test]
    async fn a_reader_whose_snapshot_predates_a_fold_still_finds_the_folded_blocks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = DiskStorage::open(dir.path(), None).expect("open");
        storage.write_blocks(&blocks(0..2)).await.expect("write");
        let mut reader = BlockReader::open(&storage.db, &storage.recent).expect("reader");
        // The fold empties the entries in memory; the reader's snapshot has no folded index.
        for slice in (0u8..).take(SLICES) {
            storage.recent.fold_slice(&storage.db, slice).expect("fold");
        }
        assert_eq!(storage.recent.len(), 0);
        let (cid, bytes) = block(1);
        assert_eq!(read(&mut reader, &cid), Some(bytes));
        let (absent, _) = block(9);
        assert_eq!(read(&mut reader, &absent), None);
    }

    #[tokio::test]
    async fn a_reader_does_not_see_a_recent_block_its_snapshot_predates() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = DiskStorage::open(dir.path(), None).expect("open");
        let mut reader = BlockReader::open(&storage.db, &storage.recent).expect("reader");
        storage.write_blocks(&blocks(0..1)).await.expect("write");
        let (cid, _) = block(0);
        assert_eq!(read(&mut reader, &cid), None);
        assert_eq!(found(&storage, 0..1).await, 1);
    }

    #[tokio::test]
    async fn a_scan_of_the_blocks_folds_every_slice_first_and_lists_every_block() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = DiskStorage::open_folding_at(dir.path(), None, usize::MAX).expect("open");
        storage.write_blocks(&blocks(0..40)).await.expect("write");
        assert_eq!(counts(&storage), (40, 0, 40));
        let (listed, _) = storage.scan_blocks(None, 100).await.expect("scan");
        assert_eq!(listed.len(), 40);
        assert_eq!(counts(&storage), (0, 40, 40));
        assert_eq!(storage.recent.len(), 0);
        assert_eq!(found(&storage, 0..40).await, 40);
    }

    #[tokio::test]
    async fn a_recent_block_deleted_is_gone_from_memory_and_from_disk() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let storage = DiskStorage::open(dir.path(), None).expect("open");
            storage.write_blocks(&blocks(0..2)).await.expect("write");
            let (cid, _) = block(0);
            let deleted = storage
                .delete_blocks(&[cid], u64::MAX)
                .await
                .expect("delete");
            assert_eq!(deleted, 1);
            assert_eq!(found(&storage, 0..2).await, 1);
            assert_eq!(counts(&storage), (1, 0, 1));
        }
        let storage = reopen(dir.path(), FOLD_AT).await;
        assert_eq!(found(&storage, 0..2).await, 1);
        assert_eq!(storage.recent.len(), 1);
    }
}
