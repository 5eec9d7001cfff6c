//! `arroba firehose`: the firehose on its own (the ECS task): `subscribeRepos`, the whole-repo
//! exports Lambda cannot return (over 6 MB) and a health check, configured by the same `PDS_*`
//! variables as the server.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::firehose::{FirehoseConfig, Hub};
use crate::xrpc::{AppState, ServerConfig};

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

/// The firehose settings a server configuration implies.
pub(crate) fn firehose_config(
    config: &ServerConfig,
    env: &HashMap<String, String>,
) -> FirehoseConfig {
    let mut fc = FirehoseConfig {
        crawlers: config.crawlers.clone(),
        hostname: config.hostname.clone(),
        ..FirehoseConfig::default()
    };
    if let Some(hours) = env
        .get("PDS_FIREHOSE_WINDOW_HOURS")
        .and_then(|h| h.parse::<u64>().ok())
    {
        fc.window = std::time::Duration::from_secs(hours * 3600);
    }
    fc.window_events = env
        .get("PDS_FIREHOSE_WINDOW_EVENTS")
        .and_then(|n| n.parse().ok());
    if let Some(n) = env.get("PDS_FIREHOSE_BUFFER").and_then(|n| n.parse().ok()) {
        fc.buffer = n;
    }
    fc
}

pub(crate) fn run(args: FirehoseArgs) -> anyhow::Result<()> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = ServerConfig::from_env(&env).context("configuration")?;
    let port = args
        .port
        .or_else(|| env.get("PDS_FIREHOSE_PORT").and_then(|p| p.parse().ok()))
        .unwrap_or(2584);
    let fc = firehose_config(&config, &env);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let state = AppState::from_config(config, None)
            .await
            .context("opening storage")?;
        let hub: Arc<Hub> = Hub::start(state.storage_arc(), fc, super::shutdown_signal())
            .await
            .context("starting the tailer")?;
        let app = crate::firehose::router(hub.clone())
            .merge(crate::xrpc::repo_export_routes().with_state(state))
            .route(
                "/xrpc/_health",
                axum::routing::get(|| async {
                    axum::Json(serde_json::json!({"version": env!("CARGO_PKG_VERSION")}))
                }),
            );
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), port))
            .await
            .with_context(|| format!("binding port {port}"))?;
        tracing::info!(addr = %listener.local_addr()?, "firehose listening");
        let closing = hub.clone();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { closing.closing().await })
            .await
            .context("serving")
    })
}
