//! The `arroba` command-line tool: argument parsing and the subcommands.
//!
//! This is the top layer: it may use every module below it, and it is the only library code
//! that uses `anyhow` and prints. Each subcommand lives in its own file; `src/bin/arroba.rs`
//! only calls [`main`]. Exit codes: 0 success, 1 the input is invalid or an operation failed
//! (one line on stderr says why), 2 bad usage.

mod account;
mod admin;
mod bench;
mod bulk;
mod client;
mod collect;
mod dynamodb;
mod firehose;
mod plc;
mod progress;
mod repo;
mod serve;
mod smoke;

use clap::{Parser, Subcommand};

/// arroba: an AT Protocol Personal Data Server and repo toolkit.
#[derive(Debug, Parser)]
#[command(name = "arroba", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect, verify, diff and build repo CAR files.
    #[command(subcommand)]
    Repo(repo::RepoCommand),
    /// Run a PLC directory (did:plc registry) for local use.
    #[command(subcommand)]
    Plc(plc::PlcCommand),
    /// The operator's verbs (pdsadmin's), over XRPC with the admin password, against any PDS.
    Admin(admin::AdminArgs),
    /// Load generators to point at a PDS (ours or another).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Move an account between PDSs (ours or any other).
    #[command(subcommand)]
    Account(account::AccountCommand),
    /// Run the PDS (configured by PDS_* variables; PDS_DEV_MODE=true for a local setup).
    Serve(serve::ServeArgs),
    /// Run the firehose alone (subscribeRepos), as the AWS ECS task does.
    Firehose(firehose::FirehoseArgs),
    /// Serve the methods whose bodies Lambda cannot carry (uploadBlob, getBlob), as the AWS
    /// ECS task's bulk container does.
    Bulk(bulk::BulkArgs),
    /// Check a running PDS from outside: describeServer, a handle subdomain, the firehose,
    /// blobs and CORS preflights (exit code 1 if any check fails).
    Smoke(smoke::SmokeArgs),
    /// Delete the blocks no repo and no event uses any more (the block collector, once; a
    /// running server also runs it daily).
    CollectBlocks(collect::CollectArgs),
    /// Manage the DynamoDB tables.
    #[command(subcommand)]
    Dynamodb(dynamodb::DynamoCommand),
}

/// Runs the CLI with the process arguments and returns the exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Repo(cmd) => repo::run(cmd),
        Command::Plc(cmd) => plc::run(cmd),
        Command::Account(cmd) => account::run(cmd),
        Command::Admin(args) => admin::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Dynamodb(cmd) => dynamodb::run(cmd),
        Command::Serve(args) => serve::run(args),
        Command::Firehose(args) => firehose::run(args),
        Command::Bulk(args) => bulk::run(args),
        Command::Smoke(args) => smoke::run(args),
        Command::CollectBlocks(args) => collect::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

/// Cancels `token` on Ctrl-C or SIGTERM (what ECS and systemd send to stop a task).
pub(crate) async fn cancel_on_signal(token: tokio_util::sync::CancellationToken) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    token.cancel();
}
