//! [`FirehoseTask`]: the firehose on its own, as the ECS task runs it — `subscribeRepos`, the
//! whole-repo exports Lambda cannot return, and a health check — built from a
//! [`FirehoseTaskConfig`] on storage opened without key-encryption keys.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::services::{aws_context, open_storage};
use super::{FirehoseTaskConfig, StartError};
use crate::firehose::Hub;
use crate::storage::{AwsContext, BlockCache};
use crate::xrpc::ExportState;

/// A running firehose task.
#[derive(Debug)]
pub struct FirehoseTask {
    hub: Arc<Hub>,
    exports: ExportState,
}

impl FirehoseTask {
    /// Opens storage (without key-encryption keys: the task never reads account keys) and
    /// starts the hub; it stops when `shutdown` is cancelled.
    pub async fn start(
        config: &FirehoseTaskConfig,
        aws: Option<AwsContext>,
        shutdown: CancellationToken,
    ) -> Result<FirehoseTask, StartError> {
        let aws = aws_context(&config.storage, aws).await;
        let cache = BlockCache::new(config.storage.block_cache_bytes);
        let storage = open_storage(&config.storage, None, aws.as_ref(), &cache)?;
        let hub = Hub::start(
            storage.clone(),
            config.firehose.clone(),
            shutdown.clone().cancelled_owned(),
        )
        .await?;
        if let Some(every) = config.storage.block_collect_every {
            tokio::spawn(crate::storage::run_block_collector(
                storage.clone(),
                cache.clone(),
                every,
                config.storage.block_collect_window,
                shutdown,
            ));
        }
        Ok(FirehoseTask {
            hub,
            exports: ExportState { storage, cache },
        })
    }

    /// What the task answers while it starts: `/xrpc/_health`, and 503 for everything else.
    pub fn starting_router() -> Router {
        Router::new()
            .route("/xrpc/_health", get(health))
            .fallback(|| async {
                crate::xrpc::XrpcError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "NotReady",
                    "The firehose is starting; retry in a moment",
                )
            })
    }

    /// The task's routes: `subscribeRepos`, `getRepo`/`getCheckout` and `/xrpc/_health`.
    pub fn router(&self) -> Router {
        let exports = crate::xrpc::repo_export_routes()
            .layer(crate::xrpc::cors())
            .with_state(self.exports.clone());
        crate::firehose::router(self.hub.clone())
            .merge(exports)
            .route("/xrpc/_health", get(health))
    }

    /// The hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Serves [`FirehoseTask::router`] on `listener` until the hub stops; connections get a
    /// close frame first.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        let router = self.router();
        let hub = self.hub.clone();
        let closing = hub.clone();
        axum::serve(super::without_nagle(listener), router)
            .with_graceful_shutdown(async move { closing.closing().await })
            .await?;
        hub.writers_finished(super::CLOSE_FRAMES_WAIT).await;
        Ok(())
    }
}

/// The task's health answer: its version.
async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"version": env!("CARGO_PKG_VERSION")}))
}
