//! [`BlockStore`] on redb: blocks by CID bytes.

use async_trait::async_trait;

use redb::ReadableTable;

use super::store::{BLOCKS, DiskStorage, db_err, put_blocks, unstamp};
use crate::block::BlockMap;
use crate::cid::{self, Cid};
use crate::storage::{BlockStore, StorageError, StoredBlock};

#[async_trait]
impl BlockStore for DiskStorage {
    async fn read_blocks(&self, cids: &[Cid]) -> Result<BlockMap, StorageError> {
        let cids = cids.to_vec();
        self.read(move |txn| {
            let table = txn.open_table(BLOCKS).map_err(db_err)?;
            let mut out = BlockMap::new();
            for cid in cids {
                if let Some(v) = table.get(cid.to_bytes().as_slice()).map_err(db_err)? {
                    out.insert(cid, unstamp(v.value())?.1.to_vec());
                }
            }
            Ok(out)
        })
        .await
    }

    async fn write_blocks(&self, blocks: &BlockMap) -> Result<(), StorageError> {
        let blocks = blocks.clone();
        self.writer.write(move |txn| put_blocks(txn, &blocks)).await
    }

    async fn scan_blocks(
        &self,
        token: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<(Vec<StoredBlock>, Option<Vec<u8>>), StorageError> {
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
                let (written_ms, _) = unstamp(value.value())?;
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
        // Inside the single writer: no commit can touch a block between the check and the
        // removal.
        self.writer
            .write(move |txn| {
                let mut table = txn.open_table(BLOCKS).map_err(db_err)?;
                let mut deleted = 0;
                for key in &keys {
                    let stamp = match table.get(key.as_slice()).map_err(db_err)? {
                        Some(v) => unstamp(v.value())?.0,
                        None => continue,
                    };
                    if stamp >= written_before {
                        continue;
                    }
                    table.remove(key.as_slice()).map_err(db_err)?;
                    deleted += 1;
                }
                Ok(deleted)
            })
            .await
    }
}
