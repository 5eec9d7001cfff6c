//! [`BulkTask`]: the methods whose bodies Lambda cannot carry (`uploadBlob`, `getBlob`), served
//! by a long-lived process as the deployment's bulk container runs them: the JWT secret to check
//! sessions and no other secret; storage opened without key-encryption keys.

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{BulkConfig, Pds, PdsConfig, StartError};
use crate::firehose::FirehoseConfig;
use crate::storage::AwsContext;

/// A running bulk task.
#[derive(Debug)]
pub struct BulkTask {
    pds: Pds,
}

impl BulkTask {
    /// Opens storage (no account keys) and the blob store; stops when `shutdown` is cancelled.
    pub async fn start(
        config: &BulkConfig,
        aws: Option<AwsContext>,
        shutdown: CancellationToken,
    ) -> Result<BulkTask, StartError> {
        let config = PdsConfig {
            server: config.server.clone(),
            storage: config.storage.clone(),
            firehose: FirehoseConfig::default(),
            key_encryption_keys: None,
        };
        let mut builder = Pds::builder(config)
            .without_firehose()
            .without_account_keys()
            .shutdown(shutdown);
        if let Some(aws) = aws {
            builder = builder.aws(aws);
        }
        Ok(BulkTask {
            pds: builder.start().await?,
        })
    }

    /// The bulk methods and `/xrpc/_health`.
    pub fn router(&self) -> Router {
        crate::xrpc::bulk_router().with_state(self.pds.state().clone())
    }

    /// Serves [`BulkTask::router`] on `listener` until shut down.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        let router = self.router();
        let shutdown = self.pds.shutdown_token();
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    }
}
