//! [`BlockStore`] on redb: blocks found by CID bytes in an index, their bytes in a table of
//! their own (`store::BLOCKS`, `store::BLOCK_DATA`; the index's newest entries in `recent`).

use async_trait::async_trait;

use redb::ReadableTable;

use super::recent::{RecentRows, SLICES, fold_rows};
use super::store::{
    BLOCK_DATA, BLOCKS, DiskStorage, IndexEntry, REPO_RECORDS, db_err, push_stored, put_blocks,
    repo_record_key, repo_record_path, split_repo_record,
};
use crate::block::BlockMap;
use crate::cid::{self, Cid};
use crate::storage::{BlockStore, PackedBlocks, StorageError, StoredBlock};
use crate::syntax::Did;

#[async_trait]
impl BlockStore for DiskStorage {
    async fn read_blocks(&self, cids: &[Cid]) -> Result<BlockMap, StorageError> {
        let cids = cids.to_vec();
        self.read_with_blocks(move |_, blocks| {
            let mut out = BlockMap::new();
            for cid in cids {
                let key = cid.to_bytes();
                if let Some(bytes) = blocks.with_block(&key, <[u8]>::to_vec)? {
                    out.insert(cid, bytes);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn read_blocks_in_order(&self, cids: &[Cid]) -> Result<PackedBlocks, StorageError> {
        let cids = cids.to_vec();
        self.read_with_blocks(move |_, blocks| {
            let mut packed = PackedBlocks::default();
            let mut key = Vec::with_capacity(64);
            for cid in cids {
                key.clear();
                // Writing into a Vec cannot fail.
                let _ = cid.write_bytes(&mut key);
                push_stored(blocks, &key, &cid, &mut packed)?;
            }
            Ok(packed)
        })
        .await
    }

    async fn read_repo_records(
        &self,
        did: &Did,
        records: &[(String, Cid)],
    ) -> Result<PackedBlocks, StorageError> {
        let (Some((first, _)), Some((last, _))) = (records.first(), records.last()) else {
            return Ok(PackedBlocks::default());
        };
        let (first, last) = (repo_record_key(did, first), repo_record_key(did, last));
        let (did, records) = (did.clone(), records.to_vec());
        self.read_with_blocks(move |txn, blocks| {
            let together = txn.open_table(REPO_RECORDS).map_err(db_err)?;
            // One pass over the repo's records from the first path to the last, beside the
            // paths asked for (both in path order).
            let mut run = together
                .range::<&[u8]>(first.as_slice()..=last.as_slice())
                .map_err(db_err)?;
            let mut current = run.next().transpose().map_err(db_err)?;
            let mut packed = PackedBlocks::default();
            let mut cid_bytes = Vec::with_capacity(64);
            for (path, cid) in &records {
                while current
                    .as_ref()
                    .is_some_and(|(k, _)| repo_record_path(&did, k.value()) < path.as_bytes())
                {
                    current = run.next().transpose().map_err(db_err)?;
                }
                cid_bytes.clear();
                // Writing into a Vec cannot fail.
                let _ = cid.write_bytes(&mut cid_bytes);
                let beside = current
                    .as_ref()
                    .filter(|(k, _)| repo_record_path(&did, k.value()) == path.as_bytes())
                    .and_then(|(_, v)| split_repo_record(v.value()))
                    .filter(|(stored_cid, _)| *stored_cid == cid_bytes.as_slice());
                match beside {
                    Some((_, block)) => packed.push(block),
                    None => push_stored(blocks, &cid_bytes, cid, &mut packed)?,
                }
            }
            Ok(packed)
        })
        .await
    }

    async fn write_blocks(&self, blocks: &BlockMap) -> Result<(), StorageError> {
        let (blocks, recent) = (blocks.clone(), self.recent.clone());
        self.writer
            .write(move |txn| put_blocks(txn, &recent, &blocks))
            .await
    }

    async fn scan_blocks(
        &self,
        token: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<(Vec<StoredBlock>, Option<Vec<u8>>), StorageError> {
        if token.is_none() {
            // The scan lists the folded index only: fold first, so it sees every block written
            // before it began.
            let folded = self
                .writer
                .write(|txn| fold_rows(txn, (0u8..).take(SLICES)))
                .await?;
            self.recent.forget_folded(&folded);
        }
        self.read(move |txn| {
            let table = txn.open_table(BLOCKS).map_err(db_err)?;
            let range = match &token {
                Some(after) => table.range::<&[u8]>((
                    std::ops::Bound::Excluded(after.as_slice()),
                    std::ops::Bound::Unbounded,
                )),
                None => table.range::<&[u8]>(..),
            }
            .map_err(db_err)?;
            let mut out = Vec::new();
            let mut last = None;
            for entry in range.take(limit) {
                let (key, value) = entry.map_err(db_err)?;
                let written_ms = IndexEntry::parse(value.value())?.written_ms;
                let key = key.value().to_vec();
                let cid = cid::cid_from_bytes(&key).map_err(|_| StorageError::Corrupt {
                    what: "block".into(),
                    why: "key is not a CID",
                })?;
                out.push(StoredBlock { cid, written_ms });
                last = Some(key);
            }
            let next = if out.len() < limit { None } else { last };
            Ok((out, next))
        })
        .await
    }

    async fn delete_blocks(
        &self,
        cids: &[Cid],
        written_before: u64,
    ) -> Result<usize, StorageError> {
        let keys: Vec<Vec<u8>> = cids.iter().map(|c| c.to_bytes()).collect();
        let recent = self.recent.clone();
        // Inside the single writer: no commit can touch a block between the check and the
        // removal.
        self.writer
            .write(move |txn| {
                let mut index = txn.open_table(BLOCKS).map_err(db_err)?;
                let mut data = txn.open_table(BLOCK_DATA).map_err(db_err)?;
                let mut rows = RecentRows::new(txn);
                let mut deleted = 0;
                for key in &keys {
                    // A recent entry is the newer stamp of a block that may be in both.
                    let (entry, is_recent) = match recent.get(key) {
                        Some(entry) => (entry, true),
                        None => match index.get(key.as_slice()).map_err(db_err)? {
                            Some(v) => (IndexEntry::parse(v.value())?, false),
                            None => continue,
                        },
                    };
                    if entry.written_ms >= written_before {
                        continue;
                    }
                    index.remove(key.as_slice()).map_err(db_err)?;
                    data.remove(entry.number).map_err(db_err)?;
                    if is_recent {
                        recent.remove(&mut rows, key, entry)?;
                    }
                    deleted += 1;
                }
                Ok(deleted)
            })
            .await
    }
}
