//! [`DynamoStorage`]: the [`Storage`] trait over the tables in [`super::tables`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, Delete, GlobalSecondaryIndex, KeySchemaElement,
    KeyType as DKeyType, KeysAndAttributes, Projection, ProjectionType, Put, PutRequest,
    ReturnValue, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TransactWriteItem,
    Update, WriteRequest,
};
use chrono::Utc;

use super::client::{
    CountingInterceptor, DynamoConfig, DynamoMetrics, MAX_BATCH_ROUNDS, MetricsCell, backend,
    backoff,
};
use super::items::*;
use super::tables::{self, KeyType, REPO_LIST_PK};
use crate::block::BlockMap;
use crate::cid::{self, Cid};
use crate::repo::CommitData;
use crate::storage::repo_cache::RepoRecordCache;
use crate::storage::{
    Event, EventBody, KvCondition, NewRepo, RemoteBlob, RepoRecord, RepoStatus, Seq, Storage,
    StorageError,
};
use crate::syntax::{Did, Handle, format_datetime};

/// How often a write retries after its sequence number was claimed by a skipped marker.
const MAX_SEQ_ATTEMPTS: usize = 10;
/// Largest sequence number (the spec's range is 1..2^53).
const MAX_SEQ: Seq = (1 << 53) - 1;

/// Storage on DynamoDB. See the module docs and `docs/dynamodb.md`.
pub struct DynamoStorage {
    client: Client,
    config: DynamoConfig,
    metrics: Arc<MetricsCell>,
    /// Repo records as this process last wrote or read them (heads may be stale).
    repos: RepoRecordCache,
    blocks: Mutex<BlockCacheLru>,
}

impl std::fmt::Debug for DynamoStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStorage")
            .field("table_prefix", &self.config.table_prefix)
            .finish()
    }
}

/// Blocks by CID, evicted oldest first past a byte budget.
#[derive(Default)]
struct BlockCacheLru {
    map: HashMap<Cid, Arc<Vec<u8>>>,
    order: VecDeque<Cid>,
    bytes: usize,
}

impl BlockCacheLru {
    fn insert(&mut self, cid: Cid, bytes: Arc<Vec<u8>>, max: usize) {
        if bytes.len() > max / 4 || self.map.contains_key(&cid) {
            return;
        }
        self.bytes += bytes.len();
        self.map.insert(cid, bytes);
        self.order.push_back(cid);
        while self.bytes > max {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(b) = self.map.remove(&old) {
                self.bytes -= b.len();
            }
        }
    }
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
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

fn build<T, E: std::error::Error + Send + Sync + 'static>(
    r: Result<T, E>,
) -> Result<T, StorageError> {
    r.map_err(backend)
}

impl DynamoStorage {
    /// Connects with the standard AWS configuration from the environment (`AWS_ENDPOINT_URL`,
    /// `AWS_REGION`, credentials).
    pub async fn connect(config: DynamoConfig) -> DynamoStorage {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        DynamoStorage::with_sdk_config(&shared, config)
    }

    /// Uses an already loaded SDK configuration.
    pub fn with_sdk_config(shared: &aws_config::SdkConfig, config: DynamoConfig) -> DynamoStorage {
        let metrics = Arc::new(MetricsCell::default());
        let conf = aws_sdk_dynamodb::config::Builder::from(shared)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(config.max_attempts)
                    .with_initial_backoff(config.initial_backoff)
                    .with_max_backoff(std::time::Duration::from_secs(5)),
            )
            .interceptor(CountingInterceptor(metrics.clone()))
            .build();
        DynamoStorage {
            client: Client::from_conf(conf),
            config,
            metrics,
            repos: RepoRecordCache::default(),
            blocks: Mutex::new(BlockCacheLru::default()),
        }
    }

    /// Requests and capacity units since creation or the last reset.
    pub fn metrics(&self) -> DynamoMetrics {
        self.metrics.snapshot()
    }

    /// Zeroes the metrics.
    pub fn reset_metrics(&self) {
        self.metrics.reset();
    }

    /// Forgets every cached block and repo record (for cold-start measurements and tests).
    pub fn clear_caches(&self) {
        *self.blocks.lock().unwrap_or_else(|e| e.into_inner()) = BlockCacheLru::default();
        self.repos.clear();
    }

    fn table(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.config.table_prefix)
    }

    fn expires_at(&self) -> i64 {
        Utc::now().timestamp() + self.config.event_retention.as_secs() as i64
    }

    fn cache_blocks(&self, blocks: &BlockMap) {
        let mut cache = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        for (cid, bytes) in blocks.iter() {
            cache.insert(
                *cid,
                Arc::new(bytes.to_vec()),
                self.config.block_cache_bytes,
            );
        }
    }

    /// Creates every table (on-demand, `KEYS_ONLY` indexes, TTL on events) if missing, and
    /// waits until they are active. Safe to run again.
    pub async fn create_tables(&self) -> Result<(), StorageError> {
        for def in tables::definitions() {
            let name = self.table(def.suffix);
            let attr_type = |k: KeyType| match k {
                KeyType::S => ScalarAttributeType::S,
                KeyType::N => ScalarAttributeType::N,
                KeyType::B => ScalarAttributeType::B,
            };
            let mut attrs: BTreeMap<&str, KeyType> = BTreeMap::new();
            let mut keys = vec![(def.partition, DKeyType::Hash)];
            if let Some(sort) = def.sort {
                keys.push((sort, DKeyType::Range));
            }
            let mut request = self
                .client
                .create_table()
                .table_name(&name)
                .billing_mode(BillingMode::PayPerRequest);
            for (k, kind) in &keys {
                attrs.insert(k.name, k.kind);
                request = request.key_schema(build(
                    KeySchemaElement::builder()
                        .attribute_name(k.name)
                        .key_type(kind.clone())
                        .build(),
                )?);
            }
            for index in &def.indexes {
                let mut gsi = GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    )
                    .key_schema(build(
                        KeySchemaElement::builder()
                            .attribute_name(index.partition.name)
                            .key_type(DKeyType::Hash)
                            .build(),
                    )?);
                attrs.insert(index.partition.name, index.partition.kind);
                if let Some(sort) = index.sort {
                    gsi = gsi.key_schema(build(
                        KeySchemaElement::builder()
                            .attribute_name(sort.name)
                            .key_type(DKeyType::Range)
                            .build(),
                    )?);
                    attrs.insert(sort.name, sort.kind);
                }
                request = request.global_secondary_indexes(build(gsi.build())?);
            }
            for (name, kind) in attrs {
                request = request.attribute_definitions(build(
                    AttributeDefinition::builder()
                        .attribute_name(name)
                        .attribute_type(attr_type(kind))
                        .build(),
                )?);
            }
            match request.send().await {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error().and_then(|s| s.code())
                        == Some("ResourceInUseException") => {}
                Err(e) => return Err(backend(e)),
            }
            for _ in 0..600 {
                let out = self
                    .client
                    .describe_table()
                    .table_name(&name)
                    .send()
                    .await
                    .map_err(backend)?;
                if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            if let Some(ttl) = def.ttl {
                let spec = build(
                    TimeToLiveSpecification::builder()
                        .attribute_name(ttl)
                        .enabled(true)
                        .build(),
                )?;
                match self
                    .client
                    .update_time_to_live()
                    .table_name(&name)
                    .time_to_live_specification(spec)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    // Enabling TTL twice is refused; it is already what we want.
                    Err(e)
                        if e.as_service_error().and_then(|s| s.code())
                            == Some("ValidationException") => {}
                    Err(e) => return Err(backend(e)),
                }
            }
        }
        Ok(())
    }

    /// `BatchGetItem` with retries for unprocessed keys, strongly consistent, 100 keys a call.
    async fn batch_get(&self, table: &str, keys: Vec<Item>) -> Result<Vec<Item>, StorageError> {
        let mut out = Vec::new();
        for chunk in keys.chunks(100) {
            let mut pending = build(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(true)
                    .build(),
            )?;
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
        }
        Ok(out)
    }

    /// `BatchWriteItem` puts with retries for unprocessed items, 25 items a call.
    async fn batch_put(&self, table: &str, items: Vec<Item>) -> Result<(), StorageError> {
        for chunk in items.chunks(25) {
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
        }
        Ok(())
    }

    async fn get_item(&self, table: &str, key: Item) -> Result<Option<Item>, StorageError> {
        let resp = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        let item = resp.item().cloned();
        self.metrics.read(item.iter().map(item_size));
        Ok(item)
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
    ) -> Result<(TransactWriteItem, usize), StorageError> {
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
    async fn transact_with_events(
        &self,
        did: &Did,
        head: Vec<(TransactWriteItem, usize)>,
        events: &[EventBody],
        head_error: &(dyn Fn(usize) -> StorageError + Send + Sync),
    ) -> Result<Vec<Seq>, StorageError> {
        for _ in 0..MAX_SEQ_ATTEMPTS {
            let count = events.len() as u64;
            let seqs: Vec<Seq> = if count == 0 {
                Vec::new()
            } else {
                let last = self.allocate_seqs(count).await?;
                (last + 1 - count..=last).collect()
            };
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

    fn repo_update(
        &self,
        did: &Did,
        expression: &str,
        condition: &str,
        values: Vec<(&str, aws_sdk_dynamodb::types::AttributeValue)>,
        names: Vec<(&str, &str)>,
    ) -> Result<(TransactWriteItem, usize), StorageError> {
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

    /// Why a conditional update of `did`'s record failed: gone, inactive, or moved on.
    async fn explain_repo_failure(&self, did: &Did) -> StorageError {
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

#[async_trait]
impl Storage for DynamoStorage {
    async fn create_repo(
        &self,
        repo: NewRepo,
        blocks: &BlockMap,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        self.write_blocks(blocks).await?;
        let repo_item = repo_item(&repo, &self.config.sealer);
        let size = item_size(&repo_item);
        let put = build(
            Put::builder()
                .table_name(self.table(tables::REPOS))
                .set_item(Some(repo_item))
                .condition_expression("attribute_not_exists(did)")
                .build(),
        )?;
        let mut head = vec![(TransactWriteItem::builder().put(put).build(), size)];
        if let Some(h) = &repo.handle {
            let item = HashMap::from([
                ("handle".to_owned(), s(h.as_str())),
                ("did".to_owned(), s(repo.did.as_str())),
            ]);
            let put = build(
                Put::builder()
                    .table_name(self.table(tables::HANDLES))
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(handle)")
                    .build(),
            )?;
            head.push((TransactWriteItem::builder().put(put).build(), 64));
        }
        let (did, handle) = (repo.did.clone(), repo.handle.clone());
        let seqs = self
            .transact_with_events(&repo.did, head, &events, &move |i| match (i, &handle) {
                (0, _) | (_, None) => StorageError::RepoExists(did.clone()),
                (_, Some(h)) => StorageError::HandleTaken(h.clone()),
            })
            .await?;
        self.repos.remember(&repo);
        Ok(seqs)
    }

    async fn load_repo(&self, did: &Did) -> Result<Option<RepoRecord>, StorageError> {
        let Some(item) = self
            .get_item(&self.table(tables::REPOS), repo_key(did))
            .await?
        else {
            return Ok(None);
        };
        let record = repo_from_item(&item, &self.config.sealer)?;
        self.repos.remember(&record);
        Ok(Some(record))
    }

    async fn load_repo_cached(&self, did: &Did) -> Result<Option<RepoRecord>, StorageError> {
        match self.repos.get(did) {
            Some(r) => Ok(Some(r)),
            None => self.load_repo(did).await,
        }
    }

    async fn resolve_handle(&self, handle: &Handle) -> Result<Option<Did>, StorageError> {
        let key = HashMap::from([("handle".to_owned(), s(handle.as_str()))]);
        let Some(item) = self.get_item(&self.table(tables::HANDLES), key).await? else {
            return Ok(None);
        };
        let did = get_s(&item, "did").and_then(|d| Did::parse(d).ok());
        did.map(Some).ok_or_else(|| StorageError::Corrupt {
            what: format!("handle {handle}"),
            why: "did",
        })
    }

    async fn list_repos(
        &self,
        after: Option<&Did>,
        limit: usize,
    ) -> Result<Vec<RepoRecord>, StorageError> {
        let mut dids: Vec<Did> = Vec::new();
        let mut start: Option<Item> = None;
        while dids.len() < limit {
            let mut query = self
                .client
                .query()
                .table_name(self.table(tables::REPOS))
                .index_name(tables::REPOS_BY_DID)
                .expression_attribute_values(":p", s(REPO_LIST_PK))
                .limit((limit - dids.len()).min(1000) as i32)
                .set_exclusive_start_key(start.take());
            query = match after {
                Some(a) => query
                    .key_condition_expression("list_pk = :p AND did > :after")
                    .expression_attribute_values(":after", s(a.as_str())),
                None => query.key_condition_expression("list_pk = :p"),
            };
            let resp = query.send().await.map_err(backend)?;
            for item in resp.items() {
                if let Some(d) = get_s(item, "did").and_then(|d| Did::parse(d).ok()) {
                    dids.push(d);
                }
            }
            match resp.last_evaluated_key() {
                Some(k) if !resp.items().is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        dids.truncate(limit);
        let items = self
            .batch_get(
                &self.table(tables::REPOS),
                dids.iter().map(repo_key).collect(),
            )
            .await?;
        let mut records = items
            .iter()
            .map(|i| repo_from_item(i, &self.config.sealer))
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| a.did.cmp(&b.did));
        Ok(records)
    }

    async fn apply_commit(&self, data: &CommitData) -> Result<Seq, StorageError> {
        self.write_blocks(&data.new_blocks).await?;
        let prev = data
            .prev
            .ok_or_else(|| StorageError::Conflict(data.did.clone()))?;
        let update = self.repo_update(
            &data.did,
            "SET head = :head, rev = :rev",
            "head = :prev AND #st IN (:active, :desync, :throttled)",
            vec![
                (":head", cid_key(&data.cid)),
                (":rev", s(data.rev().to_string())),
                (":prev", cid_key(&prev)),
                (":active", s(RepoStatus::Active.as_str())),
                (":desync", s(RepoStatus::Desynchronized.as_str())),
                (":throttled", s(RepoStatus::Throttled.as_str())),
            ],
            vec![("#st", "status")],
        )?;
        let events = [EventBody::Commit(data.into())];
        let result = self
            .transact_with_events(&data.did, vec![update], &events, &|_| {
                StorageError::Conflict(data.did.clone())
            })
            .await;
        match result {
            Ok(seqs) => {
                self.repos.advance(&data.did, data.cid, data.rev());
                Ok(seqs[0])
            }
            Err(StorageError::Conflict(did)) => Err(self.explain_repo_failure(&did).await),
            Err(e) => {
                self.repos.forget(&data.did);
                Err(e)
            }
        }
    }

    async fn set_status(
        &self,
        did: &Did,
        status: RepoStatus,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        let update = self.repo_update(
            did,
            "SET #st = :st",
            "attribute_exists(did)",
            vec![(":st", s(status.as_str()))],
            vec![("#st", "status")],
        )?;
        let seqs = self
            .transact_with_events(did, vec![update], &events, &|_| {
                StorageError::RepoNotFound(did.clone())
            })
            .await?;
        self.repos.forget(did);
        Ok(seqs)
    }

    async fn set_handle(
        &self,
        did: &Did,
        handle: Option<Handle>,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        for _ in 0..MAX_SEQ_ATTEMPTS {
            let record = self
                .load_repo(did)
                .await?
                .ok_or_else(|| StorageError::RepoNotFound(did.clone()))?;
            let old = record.handle.clone();
            let mut head = Vec::new();
            let (expr, cond, mut values) = match (&handle, &old) {
                (Some(h), Some(o)) => (
                    "SET handle = :h",
                    "handle = :old",
                    vec![(":h", s(h.as_str())), (":old", s(o.as_str()))],
                ),
                (Some(h), None) => (
                    "SET handle = :h",
                    "attribute_exists(did) AND attribute_not_exists(handle)",
                    vec![(":h", s(h.as_str()))],
                ),
                (None, Some(o)) => (
                    "REMOVE handle",
                    "handle = :old",
                    vec![(":old", s(o.as_str()))],
                ),
                (None, None) => (
                    "REMOVE handle",
                    "attribute_exists(did) AND attribute_not_exists(handle)",
                    vec![],
                ),
            };
            values.shrink_to_fit();
            head.push(self.repo_update(did, expr, cond, values, vec![])?);
            if let Some(h) = handle.as_ref().filter(|h| Some(*h) != old.as_ref()) {
                let item = HashMap::from([
                    ("handle".to_owned(), s(h.as_str())),
                    ("did".to_owned(), s(did.as_str())),
                ]);
                let put = build(
                    Put::builder()
                        .table_name(self.table(tables::HANDLES))
                        .set_item(Some(item))
                        .condition_expression("attribute_not_exists(handle) OR did = :did")
                        .expression_attribute_values(":did", s(did.as_str()))
                        .build(),
                )?;
                head.push((TransactWriteItem::builder().put(put).build(), 64));
            }
            if let Some(o) = old.as_ref().filter(|o| Some(*o) != handle.as_ref()) {
                let delete = build(
                    Delete::builder()
                        .table_name(self.table(tables::HANDLES))
                        .key("handle", s(o.as_str()))
                        .condition_expression("did = :did")
                        .expression_attribute_values(":did", s(did.as_str()))
                        .build(),
                )?;
                head.push((TransactWriteItem::builder().delete(delete).build(), 64));
            }
            let taken = handle.clone();
            let result = self
                .transact_with_events(did, head, &events, &move |i| match (i, &taken) {
                    (1, Some(h)) => StorageError::HandleTaken(h.clone()),
                    _ => StorageError::Conflict(did.clone()),
                })
                .await;
            self.repos.forget(did);
            match result {
                Err(StorageError::Conflict(_)) => continue,
                other => return other,
            }
        }
        Err(StorageError::TooManyConflicts(
            did.clone(),
            MAX_SEQ_ATTEMPTS,
        ))
    }

    async fn read_blocks(&self, cids: &[Cid]) -> Result<BlockMap, StorageError> {
        let mut out = BlockMap::new();
        let mut wanted: Vec<Cid> = Vec::new();
        {
            let cache = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
            for cid in cids {
                match cache.map.get(cid) {
                    Some(bytes) => out.insert(*cid, bytes.to_vec()),
                    None if !wanted.contains(cid) => wanted.push(*cid),
                    None => {}
                }
            }
        }
        if wanted.is_empty() {
            return Ok(out);
        }
        let table = self.table(tables::BLOCKS);
        let firsts = self
            .batch_get(&table, wanted.iter().map(|c| block_key(c, 0)).collect())
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
                .batch_get(&table, (1..parts).map(|p| block_key(&cid, p)).collect())
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
        }
        self.cache_blocks(&found);
        out.extend(found);
        Ok(out)
    }

    async fn write_blocks(&self, blocks: &BlockMap) -> Result<(), StorageError> {
        let items: Vec<Item> = {
            let cache = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
            // A cached block was read from or written to the table: it is stored.
            blocks
                .iter()
                .filter(|(c, _)| !cache.map.contains_key(c))
                .flat_map(|(c, b)| block_items(c, b))
                .collect()
        };
        if !items.is_empty() {
            self.batch_put(&self.table(tables::BLOCKS), items).await?;
        }
        self.cache_blocks(blocks);
        Ok(())
    }

    async fn read_events(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        let Some(last) = self.last_seq().await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut next = after.unwrap_or(0) + 1;
        let table = self.table(tables::EVENTS);
        while out.len() < limit && next <= last {
            let end = last.min(next + 99);
            let items = self
                .batch_get(&table, (next..=end).map(event_key).collect())
                .await?;
            let by_seq: HashMap<Seq, &Item> = items
                .iter()
                .filter_map(|i| Some((get_n(i, "seq")?, i)))
                .collect();
            for seq in next..=end {
                let Some(item) = by_seq.get(&seq) else {
                    return Ok(out);
                };
                if let Some(event) = event_from_item(item)? {
                    out.push(event);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            next = end + 1;
        }
        Ok(out)
    }

    async fn read_repo_events(
        &self,
        did: &Did,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        let mut seqs: Vec<Seq> = Vec::new();
        let mut start: Option<Item> = None;
        while seqs.len() < limit {
            let resp = self
                .client
                .query()
                .table_name(self.table(tables::EVENTS))
                .index_name(tables::EVENTS_BY_DID)
                .key_condition_expression("did = :d AND seq > :after")
                .expression_attribute_values(":d", s(did.as_str()))
                .expression_attribute_values(":after", n(after.unwrap_or(0)))
                .limit((limit - seqs.len()).min(1000) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend)?;
            seqs.extend(resp.items().iter().filter_map(|i| get_n(i, "seq")));
            match resp.last_evaluated_key() {
                Some(k) if !resp.items().is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        seqs.truncate(limit);
        let items = self
            .batch_get(
                &self.table(tables::EVENTS),
                seqs.into_iter().map(event_key).collect(),
            )
            .await?;
        let mut events: Vec<Event> = items
            .iter()
            .filter_map(|i| event_from_item(i).transpose())
            .collect::<Result<_, _>>()?;
        events.sort_by_key(|e| e.seq);
        Ok(events)
    }

    async fn last_seq(&self) -> Result<Option<Seq>, StorageError> {
        let key = HashMap::from([("name".to_owned(), s("seq"))]);
        Ok(self
            .get_item(&self.table(tables::COUNTERS), key)
            .await?
            .and_then(|i| get_n(&i, "value"))
            .filter(|&v| v > 0))
    }

    async fn mark_seq_skipped(&self, seq: Seq) -> Result<bool, StorageError> {
        let table = self.table(tables::EVENTS);
        let item = skipped_item(seq, self.expires_at());
        self.metrics.wrote([item_size(&item)], false);
        let result = self
            .client
            .put_item()
            .table_name(&table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(seq)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => {
                let existing = self.get_item(&table, event_key(seq)).await?;
                Ok(existing.is_some_and(|i| i.contains_key("skipped")))
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn upsert_remote_blob(&self, blob: RemoteBlob) -> Result<RemoteBlob, StorageError> {
        let mut sets = vec!["#url = :url", "mime_type = :mime", "#size = :size"];
        let mut removes = Vec::new();
        let mut update = self
            .client
            .update_item()
            .table_name(self.table(tables::REMOTE_BLOBS))
            .key("url_hash", s(url_hash(&blob.url)))
            .expression_attribute_names("#url", "url")
            .expression_attribute_names("#size", "size")
            .expression_attribute_values(":url", s(&blob.url))
            .expression_attribute_values(":mime", s(&blob.mime_type))
            .expression_attribute_values(":size", n(blob.size))
            .return_values(ReturnValue::AllNew);
        match &blob.cid {
            Some(c) => {
                sets.push("cid = :cid");
                update = update.expression_attribute_values(":cid", s(c.to_string()));
            }
            None => removes.push("cid"),
        }
        match &blob.last_fetched {
            Some(t) => {
                sets.push("last_fetched = :fetched");
                update = update.expression_attribute_values(":fetched", s(format_datetime(*t)));
            }
            None => removes.push("last_fetched"),
        }
        match &blob.status {
            Some(st) => {
                sets.push("#st = :st");
                update = update
                    .expression_attribute_names("#st", "status")
                    .expression_attribute_values(":st", s(st));
            }
            None => {
                removes.push("#st");
                update = update.expression_attribute_names("#st", "status");
            }
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !blob.repos.is_empty() {
            expression.push_str(" ADD repos :repos");
            update = update.expression_attribute_values(
                ":repos",
                aws_sdk_dynamodb::types::AttributeValue::Ss(
                    blob.repos.iter().map(|d| d.to_string()).collect(),
                ),
            );
        }
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let resp = update
            .update_expression(expression)
            .send()
            .await
            .map_err(backend)?;
        self.metrics.wrote([512], false);
        let item = resp
            .attributes()
            .cloned()
            .ok_or_else(|| StorageError::Corrupt {
                what: "remote blob".into(),
                why: "no attributes returned",
            })?;
        remote_blob_from_item(&item)
    }

    async fn get_remote_blob(&self, url: &str) -> Result<Option<RemoteBlob>, StorageError> {
        let key = HashMap::from([("url_hash".to_owned(), s(url_hash(url)))]);
        self.get_item(&self.table(tables::REMOTE_BLOBS), key)
            .await?
            .map(|i| remote_blob_from_item(&i))
            .transpose()
    }

    async fn remote_blobs_by_cid(&self, cid: &Cid) -> Result<Vec<RemoteBlob>, StorageError> {
        let resp = self
            .client
            .query()
            .table_name(self.table(tables::REMOTE_BLOBS))
            .index_name(tables::REMOTE_BLOBS_BY_CID)
            .key_condition_expression("cid = :c")
            .expression_attribute_values(":c", s(cid.to_string()))
            .send()
            .await
            .map_err(backend)?;
        let keys: Vec<Item> = resp
            .items()
            .iter()
            .filter_map(|i| {
                Some(HashMap::from([(
                    "url_hash".to_owned(),
                    i.get("url_hash")?.clone(),
                )]))
            })
            .collect();
        let items = self
            .batch_get(&self.table(tables::REMOTE_BLOBS), keys)
            .await?;
        items.iter().map(remote_blob_from_item).collect()
    }

    async fn kv_get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let k = HashMap::from([("ns".to_owned(), s(ns)), ("item_key".to_owned(), s(key))]);
        Ok(self
            .get_item(&self.table(tables::KV), k)
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
        let item = HashMap::from([
            ("ns".to_owned(), s(ns)),
            ("item_key".to_owned(), s(key)),
            ("value".to_owned(), b(value.to_vec())),
        ]);
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

    async fn kv_list(
        &self,
        ns: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        while out.len() < limit {
            let mut query = self
                .client
                .query()
                .table_name(self.table(tables::KV))
                .expression_attribute_values(":ns", s(ns))
                .consistent_read(true)
                .limit((limit - out.len()).min(1000) as i32)
                .set_exclusive_start_key(start.take());
            query = match after {
                Some(a) => query
                    .key_condition_expression("ns = :ns AND item_key > :after")
                    .expression_attribute_values(":after", s(a)),
                None => query.key_condition_expression("ns = :ns"),
            };
            let resp = query.send().await.map_err(backend)?;
            self.metrics.read(resp.items().iter().map(item_size));
            out.extend(resp.items().iter().filter_map(|i| {
                Some((
                    get_s(i, "item_key")?.to_owned(),
                    get_b(i, "value")?.to_vec(),
                ))
            }));
            match resp.last_evaluated_key() {
                Some(k) if !resp.items().is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }
}
