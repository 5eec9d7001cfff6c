//! `arroba serve`: the whole PDS in one process (XRPC and the firehose on one port) on the
//! embedded store by default, configured by `PDS_*` variables.

use std::collections::HashMap;

use anyhow::Context;
use clap::Args;

use crate::plc::PlcStore;
use crate::xrpc::{AppState, ServerConfig, router};

/// Options for `serve` (everything else comes from `PDS_*` variables; see the README).
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let mut config = ServerConfig::from_env(&env).context("configuration")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        if config.did_plc_url.is_none() {
            // Dev mode without a directory: run one in-process, so a machine with no internet can
            // create accounts.
            let store = PlcStore::open(&config.data_directory.join("plc"))
                .context("opening the local PLC store")?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", listener.local_addr()?);
            tokio::spawn(crate::plc::serve(listener, store, super::shutdown_signal()));
            println!("local PLC directory on {url}");
            config.did_plc_url = Some(url);
        }
        let port = config.port;
        let public_url = config.public_url.clone();
        let state = AppState::from_config(config, None)
            .await
            .context("opening storage")?;
        let app = router().with_state(state);
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), port))
            .await
            .with_context(|| format!("binding port {port}"))?;
        println!("PDS listening on {public_url} ({})", listener.local_addr()?);
        axum::serve(listener, app)
            .with_graceful_shutdown(super::shutdown_signal())
            .await
            .context("serving")
    })
}
