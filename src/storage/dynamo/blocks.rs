//! [`BlockStore`] on DynamoDB: blocks keyed by CID, split into parts when larger than an item
//! may be, checked against their CID on every read, and kept in the process's block cache.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;

use aws_sdk_dynamodb::types::ReturnValue;
use futures::{StreamExt, TryStreamExt};

use super::client::backend;
use super::items::*;
use super::requests::{Fetch, is_condition_failure};
use super::store::DynamoStorage;
use super::tables;
use crate::block::BlockMap;
use crate::cid::{self, Cid};
use crate::storage::{BlockStore, StorageError, StoredBlock};

/// Conditional deletes the collector keeps in flight at once.
const DELETE_CONCURRENCY: usize = 16;

#[async_trait]
impl BlockStore for DynamoStorage {
    async fn read_blocks(&self, cids: &[Cid]) -> Result<BlockMap, StorageError> {
        let cache = &self.config.block_cache;
        let mut out = BlockMap::new();
        let mut wanted: Vec<Cid> = Vec::new();
        let mut seen = HashSet::with_capacity(cids.len());
        for cid in cids {
            match cache.get(cid) {
                Some(bytes) => out.insert(*cid, bytes.to_vec()),
                None if seen.insert(*cid) => wanted.push(*cid),
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

    async fn scan_blocks(
        &self,
        token: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<(Vec<StoredBlock>, Option<Vec<u8>>), StorageError> {
        let start = token.map(|t| scan_token_key(&t)).transpose()?;
        let resp = self
            .client
            .scan()
            .table_name(self.table(tables::BLOCKS))
            .filter_expression("#p = :zero")
            .projection_expression("#c, #w")
            .expression_attribute_names("#p", "part")
            .expression_attribute_names("#c", "cid")
            .expression_attribute_names("#w", "written")
            .expression_attribute_values(":zero", n(0))
            .limit(limit.clamp(1, 1000) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(backend)?;
        self.metrics.read(resp.items().iter().map(item_size));
        let blocks = resp
            .items()
            .iter()
            .map(|item| {
                let cid = get_b(item, "cid")
                    .and_then(|c| cid::cid_from_bytes(c).ok())
                    .ok_or_else(|| StorageError::Corrupt {
                        what: "block".into(),
                        why: "cid",
                    })?;
                let written_ms = get_n(item, "written").unwrap_or(0);
                Ok(StoredBlock { cid, written_ms })
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        let next = resp.last_evaluated_key().map(scan_token);
        Ok((blocks, next))
    }

    async fn delete_blocks(
        &self,
        cids: &[Cid],
        written_before: u64,
    ) -> Result<usize, StorageError> {
        let deletes: Vec<_> = cids
            .iter()
            .map(|cid| self.delete_block(cid, written_before))
            .collect();
        let deleted: Vec<bool> = futures::stream::iter(deletes)
            .buffer_unordered(DELETE_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(deleted.into_iter().filter(|d| *d).count())
    }
}

impl DynamoStorage {
    /// Deletes `cid`'s parts, each only if last written before `written_before`: part 0 first
    /// (a reader then finds no block rather than a partial one), then the rest. True if part 0
    /// was deleted.
    async fn delete_block(&self, cid: &Cid, written_before: u64) -> Result<bool, StorageError> {
        let table = self.table(tables::BLOCKS);
        let mut parts = 1;
        let mut part = 0;
        while part < parts {
            let result = self
                .client
                .delete_item()
                .table_name(&table)
                .set_key(Some(block_key(cid, part)))
                .condition_expression("attribute_not_exists(#w) OR #w < :before")
                .expression_attribute_names("#w", "written")
                .expression_attribute_values(":before", n(written_before))
                .return_values(ReturnValue::AllOld)
                .send()
                .await;
            self.metrics.wrote([64], false);
            match result {
                Ok(resp) => {
                    if part == 0 {
                        self.config.block_cache.remove(cid);
                        let Some(old) = resp.attributes() else {
                            return Ok(false);
                        };
                        parts = get_n(old, "parts").unwrap_or(1) as usize;
                    }
                }
                // Rewritten since the mark: a commit uses it again.
                Err(e) if is_condition_failure(&e) => return Ok(part > 0),
                Err(e) => return Err(backend(e)),
            }
            part += 1;
        }
        Ok(true)
    }
}

/// A scan's continuation key as an opaque token: the part number, then the CID bytes.
fn scan_token(key: &Item) -> Vec<u8> {
    let part = get_n(key, "part").unwrap_or(0);
    let mut token = part.to_be_bytes().to_vec();
    token.extend_from_slice(get_b(key, "cid").unwrap_or_default());
    token
}

fn scan_token_key(token: &[u8]) -> Result<Item, StorageError> {
    let bad = || StorageError::Corrupt {
        what: "block scan token".into(),
        why: "malformed",
    };
    let (part, cid) = token.split_at_checked(8).ok_or_else(bad)?;
    let part = u64::from_be_bytes(part.try_into().map_err(|_| bad())?);
    let cid = cid::cid_from_bytes(cid).map_err(|_| bad())?;
    Ok(block_key(&cid, part as usize))
}
