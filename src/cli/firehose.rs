//! `arroba firehose`: the firehose on its own (the ECS task): `subscribeRepos`, the whole-repo
//! exports Lambda cannot return (over 6 MB) and a health check. It reads storage settings and
//! `PDS_FIREHOSE_*` only: no secret is needed, and none is read.

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::app::{FirehoseTask, FirehoseTaskConfig};
use crate::config::Env;

/// Options for `firehose`.
#[derive(Debug, Args)]
pub(crate) struct FirehoseArgs {
    /// The address to bind.
    #[arg(long, default_value = "0.0.0.0")]
    host: String,
    /// The port (default `PDS_FIREHOSE_PORT`, else 2584).
    #[arg(long)]
    port: Option<u16>,
}

pub(crate) fn run(args: FirehoseArgs) -> anyhow::Result<()> {
    let config = FirehoseTaskConfig::from_env(&Env::from_process()).context("configuration")?;
    let port = args.port.unwrap_or(config.port);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(super::cancel_on_signal(shutdown.clone()));
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), port))
            .await
            .with_context(|| format!("binding port {port}"))?;
        tracing::info!(addr = %listener.local_addr()?, "firehose listening");
        // The health check answers at once, while the hub resolves the end of the log (up to a
        // grace period): the orchestrator never kills a task that is starting normally.
        let starting = listener.into_std().context("the listening socket")?;
        let while_starting = tokio::net::TcpListener::from_std(
            starting.try_clone().context("the listening socket")?,
        )
        .context("the listening socket")?;
        let started = CancellationToken::new();
        let until_started = started.clone();
        let health = tokio::spawn(async move {
            axum::serve(while_starting, FirehoseTask::starting_router())
                .with_graceful_shutdown(until_started.cancelled_owned())
                .await
        });
        let task = FirehoseTask::start(&config, None, shutdown).await;
        started.cancel();
        let _ = health.await;
        let task = task.context("starting the firehose")?;
        let listener =
            tokio::net::TcpListener::from_std(starting).context("the listening socket")?;
        task.serve(listener).await.context("serving")
    })
}
