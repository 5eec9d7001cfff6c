//! [`KvStore`] on redb: one table keyed by (namespace, key); conditions are checked inside the
//! write transaction, so they hold against every other writer.

use async_trait::async_trait;
use redb::ReadableTable;

use super::store::{DiskStorage, KV, db_err};
use crate::storage::{KvCondition, KvStore, StorageError};

#[async_trait]
impl KvStore for DiskStorage {
    async fn kv_get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let (ns, key) = (ns.to_owned(), key.to_owned());
        self.read(move |txn| {
            let table = txn.open_table(KV).map_err(db_err)?;
            Ok(table
                .get((ns.as_str(), key.as_str()))
                .map_err(db_err)?
                .map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn kv_put(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        condition: KvCondition<'_>,
    ) -> Result<bool, StorageError> {
        let (ns, key, value) = (ns.to_owned(), key.to_owned(), value.to_vec());
        let expected: Option<Option<Vec<u8>>> = match condition {
            KvCondition::Always => None,
            KvCondition::IfAbsent => Some(None),
            KvCondition::IfEquals(old) => Some(Some(old.to_vec())),
        };
        self.writer
            .write(move |txn| {
                let mut table = txn.open_table(KV).map_err(db_err)?;
                if let Some(expected) = expected {
                    let current = table
                        .get((ns.as_str(), key.as_str()))
                        .map_err(db_err)?
                        .map(|v| v.value().to_vec());
                    if current != expected {
                        return Ok(false);
                    }
                }
                table
                    .insert((ns.as_str(), key.as_str()), value.as_slice())
                    .map_err(db_err)?;
                Ok(true)
            })
            .await
    }

    async fn kv_delete(
        &self,
        ns: &str,
        key: &str,
        expect: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let (ns, key, expect) = (ns.to_owned(), key.to_owned(), expect.map(<[u8]>::to_vec));
        self.writer
            .write(move |txn| {
                let mut table = txn.open_table(KV).map_err(db_err)?;
                let current = table
                    .get((ns.as_str(), key.as_str()))
                    .map_err(db_err)?
                    .map(|v| v.value().to_vec());
                match (&current, &expect) {
                    (None, _) => return Ok(None),
                    (Some(c), Some(e)) if c != e => return Ok(None),
                    _ => {}
                }
                table.remove((ns.as_str(), key.as_str())).map_err(db_err)?;
                Ok(current)
            })
            .await
    }

    async fn kv_list(
        &self,
        ns: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let (ns, after) = (ns.to_owned(), after.map(str::to_owned));
        self.read(move |txn| {
            let table = txn.open_table(KV).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in table
                .range((ns.as_str(), after.as_deref().unwrap_or(""))..)
                .map_err(db_err)?
            {
                let (k, v) = entry.map_err(db_err)?;
                let (n, key) = k.value();
                if n != ns {
                    break;
                }
                if after.as_deref().is_some_and(|a| key <= a) {
                    continue;
                }
                out.push((key.to_owned(), v.value().to_vec()));
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }
}
