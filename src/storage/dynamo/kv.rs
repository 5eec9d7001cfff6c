//! [`KvStore`] on DynamoDB: one table keyed by namespace and key, conditions as condition
//! expressions.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;

use super::client::backend;
use super::items::*;
use super::requests::{Fetch, is_condition_failure};
use super::store::DynamoStorage;
use super::tables;
use crate::storage::{KvCondition, KvStore, StorageError};

#[async_trait]
impl KvStore for DynamoStorage {
    async fn kv_get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let k = HashMap::from([("ns".to_owned(), s(ns)), ("item_key".to_owned(), s(key))]);
        Ok(self
            .get_item(&self.table(tables::KV), k, Fetch::All)
            .await?
            .and_then(|i| get_b(&i, "value").map(<[u8]>::to_vec)))
    }

    async fn kv_put(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        condition: KvCondition<'_>,
    ) -> Result<bool, StorageError> {
        self.put_kv(ns, key, value, condition, None).await
    }

    async fn kv_put_expiring(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        condition: KvCondition<'_>,
        expires_at: i64,
    ) -> Result<bool, StorageError> {
        self.put_kv(ns, key, value, condition, Some(expires_at))
            .await
    }

    async fn kv_delete(
        &self,
        ns: &str,
        key: &str,
        expect: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let mut delete = self
            .client
            .delete_item()
            .table_name(self.table(tables::KV))
            .key("ns", s(ns))
            .key("item_key", s(key))
            .return_values(ReturnValue::AllOld);
        if let Some(old) = expect {
            delete = delete
                .condition_expression("#v = :old")
                .expression_attribute_names("#v", "value")
                .expression_attribute_values(":old", b(old.to_vec()));
        }
        self.metrics.wrote([64], false);
        match delete.send().await {
            Ok(out) => Ok(out
                .attributes()
                .and_then(|a| get_b(a, "value"))
                .map(<[u8]>::to_vec)),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    async fn kv_add(
        &self,
        ns: &str,
        key: &str,
        points: u64,
        limit: u64,
        expires_at: i64,
    ) -> Result<Option<u64>, StorageError> {
        if points > limit {
            return Ok(None);
        }
        self.metrics.wrote([64], false);
        let update = self
            .client
            .update_item()
            .table_name(self.table(tables::KV))
            .key("ns", s(ns))
            .key("item_key", s(key))
            .update_expression("ADD #c :p SET #exp = if_not_exists(#exp, :exp)")
            .condition_expression("attribute_not_exists(#c) OR #c <= :room")
            .expression_attribute_names("#c", "count")
            .expression_attribute_names("#exp", tables::KV_TTL)
            .expression_attribute_values(":p", n(points))
            .expression_attribute_values(":room", n(limit - points))
            .expression_attribute_values(":exp", n(expires_at))
            .return_values(ReturnValue::UpdatedNew);
        match update.send().await {
            Ok(out) => Ok(Some(
                out.attributes()
                    .and_then(|a| get_n(a, "count"))
                    .unwrap_or(points),
            )),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    async fn kv_list(
        &self,
        ns: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let items = self
            .query_all(
                || {
                    let query = self
                        .client
                        .query()
                        .table_name(self.table(tables::KV))
                        .expression_attribute_values(":ns", s(ns))
                        .consistent_read(true);
                    match after {
                        Some(a) => query
                            .key_condition_expression("ns = :ns AND item_key > :after")
                            .expression_attribute_values(":after", s(a)),
                        None => query.key_condition_expression("ns = :ns"),
                    }
                },
                limit,
            )
            .await?;
        Ok(items
            .iter()
            .filter_map(|i| {
                Some((
                    get_s(i, "item_key")?.to_owned(),
                    get_b(i, "value")?.to_vec(),
                ))
            })
            .collect())
    }
}

impl DynamoStorage {
    /// One KV item, with the TTL attribute when it expires.
    async fn put_kv(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        condition: KvCondition<'_>,
        expires_at: Option<i64>,
    ) -> Result<bool, StorageError> {
        let mut item = HashMap::from([
            ("ns".to_owned(), s(ns)),
            ("item_key".to_owned(), s(key)),
            ("value".to_owned(), b(value.to_vec())),
        ]);
        if let Some(at) = expires_at {
            item.insert(tables::KV_TTL.to_owned(), n(at));
        }
        self.metrics.wrote([item_size(&item)], false);
        let mut put = self
            .client
            .put_item()
            .table_name(self.table(tables::KV))
            .set_item(Some(item));
        put = match condition {
            KvCondition::Always => put,
            KvCondition::IfAbsent => put.condition_expression("attribute_not_exists(ns)"),
            KvCondition::IfEquals(old) => put
                .condition_expression("#v = :old")
                .expression_attribute_names("#v", "value")
                .expression_attribute_values(":old", b(old.to_vec())),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }
}
