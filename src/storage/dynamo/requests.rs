//! The requests every role shares: batched reads and writes with their retry loops, paged
//! queries, and the transaction that appends events under freshly allocated sequence numbers.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, PutRequest, ReturnValue, TransactWriteItem, Update,
    WriteRequest,
};
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};

use super::client::{MAX_BATCH_ROUNDS, backend, backoff};
use super::items::*;
use super::store::DynamoStorage;
use super::tables;
use crate::storage::{EventBody, EventLog, RepoStatus, RepoStore, Seq, StorageError};
use crate::syntax::Did;

/// How often a write retries after its sequence number was claimed by a skipped marker.
pub(super) const MAX_SEQ_ATTEMPTS: usize = 10;
/// `BatchWriteItem` calls one `batch_put` keeps in flight.
const BATCH_PUT_CONCURRENCY: usize = 8;
/// `BatchGetItem` calls one `batch_get` keeps in flight.
const BATCH_GET_CONCURRENCY: usize = 8;
/// Largest sequence number (the spec's range is 1..2^53).
const MAX_SEQ: Seq = (1 << 53) - 1;

/// One item of a transaction, with its size for capacity accounting.
pub(super) type TxItem = (TransactWriteItem, usize);

pub(super) fn build<T, E: std::error::Error + Send + Sync + 'static>(
    r: Result<T, E>,
) -> Result<T, StorageError> {
    r.map_err(backend)
}

pub(super) fn is_condition_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException")
}

/// The per-item cancellation codes of a cancelled transaction (`ConditionalCheckFailed`,
/// `TransactionConflict`, `None`…), or None if it failed otherwise.
fn cancellation_codes<R>(e: &SdkError<TransactWriteItemsError, R>) -> Option<Vec<String>> {
    match e.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(c) => Some(
            c.cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_owned())
                .collect(),
        ),
        _ => None,
    }
}

/// Which attributes a read fetches: all, or a projection with its name placeholders.
#[derive(Clone, Copy)]
pub(super) enum Fetch<'a> {
    All,
    Only(&'a str, &'a [(&'a str, &'a str)]),
}

impl DynamoStorage {
    /// `BatchGetItem` with retries for unprocessed keys, strongly consistent, 100 keys a call,
    /// up to [`BATCH_GET_CONCURRENCY`] calls in flight (an export's run of 2,048 records is
    /// three waits, not twenty-one).
    pub(super) async fn batch_get(
        &self,
        table: &str,
        keys: Vec<Item>,
        fetch: Fetch<'_>,
    ) -> Result<Vec<Item>, StorageError> {
        let calls: Vec<_> = keys
            .chunks(100)
            .map(|chunk| self.batch_get_chunk(table, chunk, fetch))
            .collect();
        let found: Vec<Vec<Item>> = futures::stream::iter(calls)
            .buffer_unordered(BATCH_GET_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn batch_get_chunk(
        &self,
        table: &str,
        chunk: &[Item],
        fetch: Fetch<'_>,
    ) -> Result<Vec<Item>, StorageError> {
        let mut request = KeysAndAttributes::builder()
            .set_keys(Some(chunk.to_vec()))
            .consistent_read(true);
        if let Fetch::Only(projection, names) = fetch {
            request = request.projection_expression(projection);
            for (k, v) in names {
                request = request.expression_attribute_names(*k, *v);
            }
        }
        let mut pending = build(request.build())?;
        let mut out = Vec::new();
        for round in 0..=MAX_BATCH_ROUNDS {
            let resp = self
                .client
                .batch_get_item()
                .request_items(table, pending.clone())
                .send()
                .await
                .map_err(backend)?;
            let items = resp
                .responses()
                .and_then(|r| r.get(table))
                .cloned()
                .unwrap_or_default();
            self.metrics.read(items.iter().map(item_size));
            out.extend(items);
            match resp.unprocessed_keys().and_then(|u| u.get(table)) {
                Some(rest) if !rest.keys().is_empty() => {
                    if round == MAX_BATCH_ROUNDS {
                        return Err(StorageError::Backend(
                            "BatchGetItem kept returning unprocessed keys".into(),
                        ));
                    }
                    pending = rest.clone();
                    backoff(round).await;
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// `BatchWriteItem` puts with retries for unprocessed items, 25 items a call.
    pub(super) async fn batch_put(
        &self,
        table: &str,
        items: Vec<Item>,
    ) -> Result<(), StorageError> {
        // Chunks go out concurrently: a large write (an imported repo) is bound by round trips.
        let calls: Vec<_> = items
            .chunks(25)
            .map(|chunk| self.batch_put_chunk(table, chunk))
            .collect();
        futures::stream::iter(calls)
            .buffer_unordered(BATCH_PUT_CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    async fn batch_put_chunk(&self, table: &str, chunk: &[Item]) -> Result<(), StorageError> {
        self.metrics.wrote(chunk.iter().map(item_size), false);
        let mut pending: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                Ok(WriteRequest::builder()
                    .put_request(build(
                        PutRequest::builder().set_item(Some(item.clone())).build(),
                    )?)
                    .build())
            })
            .collect::<Result<_, StorageError>>()?;
        for round in 0..=MAX_BATCH_ROUNDS {
            let resp = self
                .client
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .map_err(backend)?;
            match resp.unprocessed_items().and_then(|u| u.get(table)) {
                Some(rest) if !rest.is_empty() => {
                    if round == MAX_BATCH_ROUNDS {
                        return Err(StorageError::Backend(
                            "BatchWriteItem kept returning unprocessed items".into(),
                        ));
                    }
                    pending = rest.clone();
                    backoff(round).await;
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// `GetItem`, strongly consistent.
    pub(super) async fn get_item(
        &self,
        table: &str,
        key: Item,
        fetch: Fetch<'_>,
    ) -> Result<Option<Item>, StorageError> {
        let mut request = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true);
        if let Fetch::Only(projection, names) = fetch {
            request = request.projection_expression(projection);
            for (k, v) in names {
                request = request.expression_attribute_names(*k, *v);
            }
        }
        let resp = request.send().await.map_err(backend)?;
        let item = resp.item().cloned();
        self.metrics.read(item.iter().map(item_size));
        Ok(item)
    }

    /// Runs the query `make` builds, page after page, until `limit` items or the end. `make`
    /// sets the table, index, key condition and values; this sets the page size and the
    /// continuation key.
    pub(super) async fn query_all(
        &self,
        make: impl Fn() -> QueryFluentBuilder,
        limit: usize,
    ) -> Result<Vec<Item>, StorageError> {
        let mut out: Vec<Item> = Vec::new();
        let mut start: Option<Item> = None;
        while out.len() < limit {
            let resp = make()
                .limit((limit - out.len()).min(1000) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend)?;
            self.metrics.read(resp.items().iter().map(item_size));
            out.extend(resp.items().iter().cloned());
            match resp.last_evaluated_key() {
                Some(k) if !resp.items().is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Takes `count` consecutive sequence numbers from the atomic counter; returns the last.
    async fn allocate_seqs(&self, count: u64) -> Result<Seq, StorageError> {
        let resp = self
            .client
            .update_item()
            .table_name(self.table(tables::COUNTERS))
            .key("name", s("seq"))
            .update_expression("ADD #v :n")
            .expression_attribute_names("#v", "value")
            .expression_attribute_values(":n", n(count))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(backend)?;
        self.metrics.wrote([32], false);
        let last = resp
            .attributes()
            .and_then(|a| get_n(a, "value"))
            .ok_or_else(|| StorageError::Corrupt {
                what: "sequence counter".into(),
                why: "value",
            })?;
        if last > MAX_SEQ {
            return Err(StorageError::SeqOutOfRange(last));
        }
        Ok(last)
    }

    fn event_put(
        &self,
        seq: Seq,
        did: &Did,
        body: &EventBody,
        expires_at: i64,
    ) -> Result<TxItem, StorageError> {
        let item = event_item(seq, did, Utc::now(), body, expires_at);
        let size = item_size(&item);
        let put = build(
            Put::builder()
                .table_name(self.table(tables::EVENTS))
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(seq)")
                .build(),
        )?;
        Ok((TransactWriteItem::builder().put(put).build(), size))
    }

    /// Marks numbers that provably never became events (their transaction failed).
    async fn release_seqs(&self, seqs: impl IntoIterator<Item = Seq>) -> Result<(), StorageError> {
        for seq in seqs {
            self.mark_seq_skipped(seq).await?;
        }
        Ok(())
    }

    /// Runs a transaction of `head` items followed by `events`, allocating their sequence
    /// numbers; retries with new numbers when the sequencer claimed one. `head_error` maps a
    /// failed condition on head item `i` to the caller's error.
    pub(super) async fn transact_with_events(
        &self,
        did: &Did,
        head: Vec<TxItem>,
        events: &[EventBody],
        head_error: &(dyn Fn(usize) -> StorageError + Send + Sync),
    ) -> Result<Vec<Seq>, StorageError> {
        self.transact_with_events_after(did, head, events, head_error, async { Ok(()) }, None)
            .await
    }

    /// Like [`DynamoStorage::transact_with_events`], running `first` (a commit's block write)
    /// alongside the first number allocation, so the two cost one round trip, not two; the
    /// transaction goes only once `first` succeeded. If `deadline` has passed when the
    /// transaction would go, the numbers are released and it fails with a conflict.
    pub(super) async fn transact_with_events_after(
        &self,
        did: &Did,
        head: Vec<TxItem>,
        events: &[EventBody],
        head_error: &(dyn Fn(usize) -> StorageError + Send + Sync),
        first: impl std::future::Future<Output = Result<(), StorageError>>,
        deadline: Option<std::time::Instant>,
    ) -> Result<Vec<Seq>, StorageError> {
        let mut first = Some(first);
        for _ in 0..MAX_SEQ_ATTEMPTS {
            let count = events.len() as u64;
            let allocate = async {
                match count {
                    0 => Ok(Vec::new()),
                    _ => {
                        let last = self.allocate_seqs(count).await?;
                        Ok::<_, StorageError>((last + 1 - count..=last).collect())
                    }
                }
            };
            let seqs: Vec<Seq> = match first.take() {
                None => allocate.await?,
                Some(first) => {
                    let (done, seqs) = tokio::join!(first, allocate);
                    let seqs = seqs?;
                    if let Err(e) = done {
                        // The numbers never become events: say so now rather than leave
                        // readers to wait for them.
                        self.release_seqs(seqs).await?;
                        return Err(e);
                    }
                    seqs
                }
            };
            if deadline.is_some_and(|d| std::time::Instant::now() > d) {
                self.release_seqs(seqs).await?;
                return Err(StorageError::Conflict(did.clone()));
            }
            let expires = self.expires_at();
            let mut items = head.clone();
            for (seq, body) in seqs.iter().zip(events) {
                items.push(self.event_put(*seq, did, body, expires)?);
            }
            let sizes: Vec<usize> = items.iter().map(|(_, s)| *s).collect();
            let token = {
                use sha2::Digest;
                let digest = sha2::Sha256::digest(format!("{did}|{seqs:?}|{sizes:?}"));
                hex::encode(&digest[..16])
            };
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.into_iter().map(|(i, _)| i).collect()))
                .client_request_token(token)
                .send()
                .await;
            match result {
                Ok(_) => {
                    self.metrics.wrote(sizes, true);
                    return Ok(seqs);
                }
                Err(e) => {
                    let Some(codes) = cancellation_codes(&e) else {
                        return Err(backend(e));
                    };
                    let failed =
                        |i: usize| codes.get(i).is_some_and(|c| c == "ConditionalCheckFailed");
                    if let Some(i) = (0..head.len()).find(|&i| failed(i)) {
                        self.release_seqs(seqs).await?;
                        return Err(head_error(i));
                    }
                    if codes.iter().any(|c| c == "TransactionConflict") {
                        self.release_seqs(seqs).await?;
                        return Err(StorageError::Conflict(did.clone()));
                    }
                    if (head.len()..codes.len()).any(failed) {
                        // The sequencer claimed a number we held; the others never became
                        // events either. Take new numbers.
                        let claimed: Vec<Seq> = seqs
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| !failed(head.len() + i))
                            .map(|(_, s)| *s)
                            .collect();
                        self.release_seqs(claimed).await?;
                        continue;
                    }
                    return Err(backend(e));
                }
            }
        }
        Err(StorageError::Backend(
            "sequence numbers kept being claimed".into(),
        ))
    }

    /// A conditional update of `did`'s repo item, for a transaction.
    pub(super) fn repo_update(
        &self,
        did: &Did,
        expression: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
        names: Vec<(&str, &str)>,
    ) -> Result<TxItem, StorageError> {
        let mut update = Update::builder()
            .table_name(self.table(tables::REPOS))
            .set_key(Some(repo_key(did)))
            .update_expression(expression)
            .condition_expression(condition);
        for (k, v) in values {
            update = update.expression_attribute_values(k, v);
        }
        for (k, v) in names {
            update = update.expression_attribute_names(k, v);
        }
        Ok((
            TransactWriteItem::builder()
                .update(build(update.build())?)
                .build(),
            256,
        ))
    }

    /// A conditional put, for a transaction.
    pub(super) fn conditional_put(
        &self,
        table: &str,
        item: Item,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<TxItem, StorageError> {
        let size = item_size(&item);
        let mut put = Put::builder()
            .table_name(self.table(table))
            .set_item(Some(item))
            .condition_expression(condition);
        for (k, v) in values {
            put = put.expression_attribute_values(k, v);
        }
        Ok((
            TransactWriteItem::builder()
                .put(build(put.build())?)
                .build(),
            size,
        ))
    }

    /// Why a conditional update of `did`'s record failed: gone, inactive, or moved on.
    pub(super) async fn explain_repo_failure(&self, did: &Did) -> StorageError {
        self.repos.forget(did);
        match self.load_repo(did).await {
            Ok(None) => StorageError::RepoNotFound(did.clone()),
            Ok(Some(r)) if !r.status.is_active() => {
                StorageError::InactiveRepo(did.clone(), r.status)
            }
            Ok(Some(_)) => StorageError::Conflict(did.clone()),
            Err(e) => e,
        }
    }
}

/// The statuses a repo accepts commits in, as the values a condition compares against.
pub(super) fn active_statuses() -> Vec<(&'static str, AttributeValue)> {
    vec![
        (":active", s(RepoStatus::Active.as_str())),
        (":desync", s(RepoStatus::Desynchronized.as_str())),
        (":throttled", s(RepoStatus::Throttled.as_str())),
    ]
}

/// The key of a handle's item in the `handles` table.
pub(super) fn handle_key(handle: &str) -> Item {
    HashMap::from([("handle".to_owned(), s(handle))])
}
