//! `arroba bulk`: the methods whose bodies Lambda cannot carry (`uploadBlob`, `getBlob`), as
//! the deployment's bulk container runs them. It reads the JWT secret and no other secret.

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::app::{BulkConfig, BulkTask};
use crate::config::Env;

/// Options for `bulk`.
#[derive(Debug, Args)]
pub(crate) struct BulkArgs {
    /// The address to bind.
    #[arg(long, default_value = "0.0.0.0")]
    host: String,
    /// The port (default `PDS_BULK_PORT`, else 2585).
    #[arg(long)]
    port: Option<u16>,
}

pub(crate) fn run(args: BulkArgs) -> anyhow::Result<()> {
    let config = BulkConfig::from_env(&Env::from_process()).context("configuration")?;
    let port = args.port.unwrap_or(config.port);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(super::cancel_on_signal(shutdown.clone()));
        let task = BulkTask::start(&config, None, shutdown)
            .await
            .context("starting the bulk task")?;
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), port))
            .await
            .with_context(|| format!("binding port {port}"))?;
        tracing::info!(addr = %listener.local_addr()?, "bulk task listening");
        task.serve(listener).await.context("serving")
    })
}
