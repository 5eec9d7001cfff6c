//! [`BlockStore`] on DynamoDB: blocks keyed by CID, split into parts when larger than an item
//! may be, checked against their CID on every read, and kept in the process's block cache.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::items::*;
use super::requests::Fetch;
use super::store::DynamoStorage;
use super::tables;
use crate::block::BlockMap;
use crate::cid::{self, Cid};
use crate::storage::{BlockStore, StorageError};

#[async_trait]
impl BlockStore for DynamoStorage {
    async fn read_blocks(&self, cids: &[Cid]) -> Result<BlockMap, StorageError> {
        let cache = &self.config.block_cache;
        let mut out = BlockMap::new();
        let mut wanted: Vec<Cid> = Vec::new();
        for cid in cids {
            match cache.get(cid) {
                Some(bytes) => out.insert(*cid, bytes.to_vec()),
                None if !wanted.contains(cid) => wanted.push(*cid),
                None => {}
            }
        }
        if wanted.is_empty() {
            return Ok(out);
        }
        let table = self.table(tables::BLOCKS);
        let firsts = self
            .batch_get(
                &table,
                wanted.iter().map(|c| block_key(c, 0)).collect(),
                Fetch::All,
            )
            .await?;
        let mut found = BlockMap::new();
        let mut multipart: Vec<(Cid, Vec<u8>, usize)> = Vec::new();
        for item in &firsts {
            let cid = get_b(item, "cid")
                .and_then(|c| cid::cid_from_bytes(c).ok())
                .ok_or_else(|| StorageError::Corrupt {
                    what: "block".into(),
                    why: "cid",
                })?;
            let data = get_b(item, "data").unwrap_or_default().to_vec();
            match get_n(item, "parts").unwrap_or(1) as usize {
                1 => found.insert(cid, data),
                parts => multipart.push((cid, data, parts)),
            }
        }
        for (cid, mut data, parts) in multipart {
            let rest = self
                .batch_get(
                    &table,
                    (1..parts).map(|p| block_key(&cid, p)).collect(),
                    Fetch::All,
                )
                .await?;
            let mut by_part: BTreeMap<u64, Vec<u8>> = rest
                .iter()
                .filter_map(|i| Some((get_n(i, "part")?, get_b(i, "data")?.to_vec())))
                .collect();
            for p in 1..parts as u64 {
                data.extend(by_part.remove(&p).ok_or_else(|| StorageError::Corrupt {
                    what: format!("block {cid}"),
                    why: "missing part",
                })?);
            }
            found.insert(cid, data);
        }
        for (cid, bytes) in found.iter() {
            if !cid::matches(cid, bytes) {
                return Err(StorageError::Corrupt {
                    what: format!("block {cid}"),
                    why: "bytes do not match the CID",
                });
            }
            cache.insert(*cid, Arc::from(bytes));
        }
        out.extend(found);
        Ok(out)
    }

    async fn write_blocks(&self, blocks: &BlockMap) -> Result<(), StorageError> {
        // Every block is put, even one this process has seen: puts are idempotent, and a cache
        // entry is no proof the block reached this table.
        let items: Vec<Item> = blocks.iter().flat_map(|(c, b)| block_items(c, b)).collect();
        if !items.is_empty() {
            self.batch_put(&self.table(tables::BLOCKS), items).await?;
        }
        self.config.block_cache.extend(blocks);
        Ok(())
    }
}
