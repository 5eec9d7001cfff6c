//! Building the SDK client, counting what it sends, and the retry loops DynamoDB batch APIs
//! need.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use rand::Rng;

use crate::storage::{BlockCache, KeySealer, StorageError};

/// How a [`super::DynamoStorage`] is set up.
#[derive(Debug, Clone)]
pub struct DynamoConfig {
    /// Prefix of every table name (`ARROBA_TABLE_PREFIX`, default `arroba-`).
    pub table_prefix: String,
    /// Names by table suffix that replace `<prefix><suffix>` (`ARROBA_TABLE_NAMES`).
    pub table_names: std::collections::BTreeMap<String, String>,
    /// Seals account keys at rest (`ARROBA_KEY_ENCRYPTION_KEYS`); None in processes that never
    /// sign (the firehose task), which then never read the `keys` attribute.
    pub sealer: Option<KeySealer>,
    /// How long events are kept before DynamoDB's TTL removes them.
    pub event_retention: Duration,
    /// The process's block cache: blocks read are kept there (blocks are immutable, so a warm
    /// Lambda reuses them).
    pub block_cache: BlockCache,
    /// Attempts per request for throttling and transient errors (SDK standard retry).
    pub max_attempts: u32,
    /// The first retry's backoff; later ones double (with jitter) up to 5 s. DynamoDB answers
    /// in milliseconds, so the SDK's general 1 s default only adds latency.
    pub initial_backoff: Duration,
    /// The longest a commit may take from writing its blocks to landing its head
    /// ([`crate::storage::BLOCK_LANDING_LIMIT`]; tests shorten it).
    pub block_landing_limit: Duration,
}

impl DynamoConfig {
    /// Defaults with the given prefix and sealer, and a block cache of its own.
    pub fn new(table_prefix: impl Into<String>, sealer: Option<KeySealer>) -> DynamoConfig {
        DynamoConfig {
            table_prefix: table_prefix.into(),
            table_names: Default::default(),
            sealer,
            event_retention: Duration::from_secs(7 * 24 * 3600),
            block_cache: BlockCache::default(),
            max_attempts: 6,
            initial_backoff: Duration::from_millis(50),
            block_landing_limit: crate::storage::BLOCK_LANDING_LIMIT,
        }
    }
}

/// Requests sent (every attempt, counted by the SDK interceptor) and capacity units consumed
/// (computed from item sizes by DynamoDB's rules: 1 WCU per started KB written, 1 RCU per
/// started 4 KB read strongly consistent, transactions double).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DynamoMetrics {
    /// Attempts per operation name (`TransactWriteItems`, …).
    pub requests: BTreeMap<String, u64>,
    /// Write capacity units.
    pub write_units: f64,
    /// Read capacity units.
    pub read_units: f64,
    /// Sequential round trips: how many times a request went out with none in flight (requests
    /// sent while another is in flight share its round trip).
    pub round_trips: u64,
    /// Requests in flight now (for counting round trips).
    in_flight: u64,
}

impl DynamoMetrics {
    /// Total requests of every kind.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }
}

#[derive(Debug, Default)]
pub(crate) struct MetricsCell(Mutex<DynamoMetrics>);

impl MetricsCell {
    fn with(&self, f: impl FnOnce(&mut DynamoMetrics)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub(crate) fn snapshot(&self) -> DynamoMetrics {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn reset(&self) {
        self.with(|m| {
            *m = DynamoMetrics {
                in_flight: m.in_flight,
                ..DynamoMetrics::default()
            }
        });
    }

    /// Records writing items of these sizes (`transactional` doubles the cost).
    pub(crate) fn wrote(&self, sizes: impl IntoIterator<Item = usize>, transactional: bool) {
        let factor = if transactional { 2.0 } else { 1.0 };
        let units: f64 = sizes
            .into_iter()
            .map(|s| s.div_ceil(1024).max(1) as f64)
            .sum();
        self.with(|m| m.write_units += units * factor);
    }

    /// Records reading items of these sizes, strongly consistent.
    pub(crate) fn read(&self, sizes: impl IntoIterator<Item = usize>) {
        let units: f64 = sizes
            .into_iter()
            .map(|s| s.div_ceil(4096).max(1) as f64)
            .sum();
        self.with(|m| m.read_units += units);
    }
}

/// Counts every attempt the SDK transmits, by operation.
#[derive(Debug)]
pub(crate) struct CountingInterceptor(pub(crate) Arc<MetricsCell>);

impl Intercept for CountingInterceptor {
    fn name(&self) -> &'static str {
        "arroba-request-counter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg
            .load::<Metadata>()
            .map_or("unknown", |m| m.name())
            .to_owned();
        self.0.with(|m| {
            *m.requests.entry(op).or_default() += 1;
            if m.in_flight == 0 {
                m.round_trips += 1;
            }
            m.in_flight += 1;
        });
        Ok(())
    }

    fn read_after_attempt(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.with(|m| m.in_flight = m.in_flight.saturating_sub(1));
        Ok(())
    }
}

/// Wraps an SDK error as a backend error, keeping the error chain but not the raw HTTP
/// response (a service error renders as `…(Code): Error { code, message, … } (ServiceError(…))`,
/// and the part in parentheses adds nothing a reader needs).
pub(crate) fn backend<E: std::error::Error + Send + Sync + 'static>(e: E) -> StorageError {
    let chain = aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string();
    let short = chain.split(" (ServiceError(").next().unwrap_or(&chain);
    StorageError::Backend(short.to_owned().into())
}

/// Sleeps before retry `attempt` of a batch call's unprocessed items: exponential, jittered,
/// capped at about a second.
pub(crate) async fn backoff(attempt: u32) {
    let max = 10u64 << attempt.min(7);
    let ms = rand::thread_rng().gen_range(max / 2..=max);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// How many times a batch call is repeated for its unprocessed items before giving up.
pub(crate) const MAX_BATCH_ROUNDS: u32 = 10;
