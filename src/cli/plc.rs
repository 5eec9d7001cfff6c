//! `arroba plc serve`: a PLC directory for local runs and tests.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::plc::{PlcStore, serve};

/// The `plc` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum PlcCommand {
    /// Run a PLC directory on 127.0.0.1:PORT, storing operations in DIR.
    Serve {
        /// The port to listen on.
        #[arg(long, default_value_t = 2582)]
        port: u16,
        /// Where the operation logs are kept.
        #[arg(long)]
        data_dir: PathBuf,
        /// The address to bind (default loopback only).
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
    },
}

pub(crate) fn run(cmd: PlcCommand) -> anyhow::Result<()> {
    let PlcCommand::Serve {
        port,
        data_dir,
        host,
    } = cmd;
    let store =
        PlcStore::open(&data_dir).with_context(|| format!("opening {}", data_dir.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((host.as_str(), port))
            .await
            .with_context(|| format!("binding {host}:{port}"))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, data_dir = %data_dir.display(), "PLC directory listening");
        println!("PLC directory listening on http://{addr}");
        let shutdown = tokio_util::sync::CancellationToken::new();
        tokio::spawn(super::cancel_on_signal(shutdown.clone()));
        serve(listener, store, shutdown.cancelled_owned())
            .await
            .context("serving")
    })
}
