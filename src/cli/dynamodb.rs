//! `arroba dynamodb …`: managing the DynamoDB tables.

use anyhow::Context;
use clap::Subcommand;

use super::progress::Progress;
use crate::storage::dynamo::{DynamoConfig, tables};
use crate::storage::{AwsContext, DynamoStorage};

/// The `dynamodb` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DynamoCommand {
    /// Create every table the PDS needs (idempotent). Uses the standard AWS configuration
    /// (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials) and `ARROBA_TABLE_PREFIX`.
    CreateTables {
        /// Table name prefix (default: `ARROBA_TABLE_PREFIX`, else `arroba-`).
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Print the table definitions (keys, indexes, TTL), as the infrastructure code uses them.
    Tables {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The table prefix: the flag, else `ARROBA_TABLE_PREFIX`, else `arroba-`.
fn prefix(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var("ARROBA_TABLE_PREFIX").ok())
        .unwrap_or_else(|| "arroba-".to_owned())
}

pub(crate) fn run(cmd: DynamoCommand) -> anyhow::Result<()> {
    match cmd {
        DynamoCommand::CreateTables { prefix: flag } => {
            let prefix = prefix(flag);
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let progress = Progress::spinner("tables", false);
            runtime.block_on(async {
                // Creating tables touches no account keys: no sealer.
                let storage = DynamoStorage::new(
                    &AwsContext::from_env().await,
                    DynamoConfig::new(prefix.clone(), None),
                );
                storage.create_tables().await.context("creating tables")
            })?;
            progress.finish();
            for def in tables::definitions() {
                println!("{prefix}{}", def.suffix);
            }
            Ok(())
        }
        DynamoCommand::Tables { json } => {
            let defs = tables::definitions();
            if json {
                println!("{}", serde_json::to_string_pretty(&defs)?);
            } else {
                for d in defs {
                    let sort = d
                        .sort
                        .map(|s| format!(", sort {} ({:?})", s.name, s.kind))
                        .unwrap_or_default();
                    println!(
                        "{}: partition {} ({:?}){sort}",
                        d.suffix, d.partition.name, d.partition.kind
                    );
                    for i in d.indexes {
                        let sort = i
                            .sort
                            .map(|s| format!(", sort {}", s.name))
                            .unwrap_or_default();
                        println!(
                            "  index {}: partition {}{sort} (keys only)",
                            i.name, i.partition.name
                        );
                    }
                    if let Some(ttl) = d.ttl {
                        println!("  ttl {ttl}");
                    }
                }
            }
            Ok(())
        }
    }
}
