//! `arroba serve`: the whole PDS in one process (XRPC and the firehose on one port) on the
//! embedded store by default, configured by `PDS_*` variables.

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::app::{Pds, PdsConfig};
use crate::config::Env;

/// Options for `serve` (everything else comes from `PDS_*` variables; see the README).
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = PdsConfig::from_env(&Env::from_process()).context("configuration")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(super::cancel_on_signal(shutdown.clone()));
        let port = config.server.port;
        let public_url = config.server.public_url.clone();
        let pds = Pds::builder(config)
            .shutdown(shutdown)
            .start()
            .await
            .context("starting the PDS")?;
        if let Some(url) = pds.local_plc_url() {
            println!("local PLC directory on {url}");
        }
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), port))
            .await
            .with_context(|| format!("binding port {port}"))?;
        let ws = public_url.replacen("http", "ws", 1);
        println!("PDS listening on {public_url} ({})", listener.local_addr()?);
        println!("firehose on {ws}/xrpc/com.atproto.sync.subscribeRepos");
        pds.serve(listener).await.context("serving")
    })
}
