//! `arroba collect-blocks`: one run of the block collector (`storage::collect_blocks`) on the
//! storage the `PDS_*` settings name, for an operator who wants it now rather than at the next
//! interval of a running server.

use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::app::open_maintenance_storage;
use crate::config::Env;
use crate::storage::{MIN_SAFE_WINDOW, StorageConfig, collect_blocks};

/// Options for `collect-blocks`.
#[derive(Debug, Args)]
pub(crate) struct CollectArgs {
    /// The safety window in seconds: unused blocks written more recently stay (default and
    /// minimum 3600).
    #[arg(long)]
    window_seconds: Option<u64>,
    /// Allow a window under an hour. Only safe when nothing writes to the store meanwhile (the
    /// server is stopped): a shorter window can delete the blocks of a commit in flight.
    #[arg(long)]
    quiescent: bool,
    /// Count what would be deleted without deleting it.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: CollectArgs) -> anyhow::Result<()> {
    let window = args
        .window_seconds
        .map_or(MIN_SAFE_WINDOW, Duration::from_secs);
    if window < MIN_SAFE_WINDOW && !args.quiescent {
        anyhow::bail!(
            "a window under {} seconds can delete the blocks of a commit in flight; pass \
             --quiescent if nothing writes to the store meanwhile",
            MIN_SAFE_WINDOW.as_secs()
        );
    }
    let config = StorageConfig::from_env(&Env::from_process()).context("configuration")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let report = runtime.block_on(async {
        let (storage, cache) = open_maintenance_storage(&config)
            .await
            .context("opening storage")?;
        collect_blocks(storage.as_ref(), &cache, window, args.dry_run)
            .await
            .context("collecting blocks")
    })?;
    if args.json {
        let json = serde_json::json!({
            "repos": report.repos,
            "events": report.events,
            "marked": report.marked,
            "scanned": report.scanned,
            "recent": report.recent,
            "deleted": report.deleted,
            "dryRun": args.dry_run,
        });
        println!("{json}");
    } else {
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        println!(
            "{} blocks scanned; {} in use by {} repos and {} events; {verb} {}; {} unused but \
             inside the window",
            report.scanned,
            report.marked,
            report.repos,
            report.events,
            report.deleted,
            report.recent
        );
    }
    Ok(())
}
