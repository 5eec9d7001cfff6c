//! [`BlockStore`] on redb: blocks by CID bytes.

use async_trait::async_trait;

use super::store::{BLOCKS, DiskStorage, db_err, put_blocks};
use crate::block::BlockMap;
use crate::cid::Cid;
use crate::storage::{BlockStore, StorageError};

#[async_trait]
impl BlockStore for DiskStorage {
    async fn read_blocks(&self, cids: &[Cid]) -> Result<BlockMap, StorageError> {
        let cids = cids.to_vec();
        self.read(move |txn| {
            let table = txn.open_table(BLOCKS).map_err(db_err)?;
            let mut out = BlockMap::new();
            for cid in cids {
                if let Some(v) = table.get(cid.to_bytes().as_slice()).map_err(db_err)? {
                    out.insert(cid, v.value().to_vec());
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
}
