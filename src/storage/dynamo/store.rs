//! [`DynamoStorage`]: the client, its configuration and caches. The roles are implemented in
//! `repos`, `blocks`, `events` and `kv`; the requests they share in `requests`.

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use chrono::Utc;

use super::client::{CountingInterceptor, DynamoConfig, DynamoMetrics, MetricsCell};
use crate::storage::repo_cache::RepoRecordCache;
use crate::storage::{AwsContext, KeySealer, StorageError};

/// Storage on DynamoDB. See the module docs and `docs/dynamodb.md`.
pub struct DynamoStorage {
    pub(super) client: Client,
    pub(super) config: DynamoConfig,
    pub(super) metrics: Arc<MetricsCell>,
    /// Repo records and keys as this process last wrote or read them (heads may be stale).
    pub(super) repos: RepoRecordCache,
}

impl std::fmt::Debug for DynamoStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStorage")
            .field("table_prefix", &self.config.table_prefix)
            .finish()
    }
}

impl DynamoStorage {
    /// Storage on the tables `config` names, through the AWS configuration in `aws`.
    pub fn new(aws: &AwsContext, config: DynamoConfig) -> DynamoStorage {
        DynamoStorage::with_sdk_config(aws.sdk_config(), config)
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
        self.config.block_cache.clear();
        self.repos.clear();
    }

    pub(super) fn table(&self, suffix: &str) -> String {
        match self.config.table_names.get(suffix) {
            Some(name) => name.clone(),
            None => format!("{}{suffix}", self.config.table_prefix),
        }
    }

    pub(super) fn expires_at(&self) -> i64 {
        Utc::now().timestamp() + self.config.event_retention.as_secs() as i64
    }

    pub(super) fn sealer(&self) -> Result<&KeySealer, StorageError> {
        self.config.sealer.as_ref().ok_or(StorageError::NoKeySealer)
    }
}
