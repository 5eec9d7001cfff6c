//! The integration tests, in one binary (each file a module) so that the AWS SDK and the rest
//! of the crate are linked once rather than once per file. `tests/dynamo_faults.rs` stays a
//! binary of its own: its faults affect the whole emulator, so nothing may run beside it.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

mod common;

mod account_deletion;
mod account_migrate;
mod account_state;
mod admin_cli;
mod admin_methods;
mod appview;
mod blob_integrity;
mod block_cache;
mod cli;
mod codecs;
mod dockerfile;
mod dynamo;
mod dynamo_costs;
mod email_flows;
mod firehose;
mod firehose_task;
mod fuzz;
mod hardening;
mod identity;
mod import_repo;
mod infra;
mod interop_crypto;
mod interop_data_model;
mod interop_lexicon;
mod interop_syntax;
mod lambda;
mod lambda_runtime;
mod lexicon_methods;
mod migration;
mod mst;
mod oauth;
mod oauth_client;
mod rate_limits;
mod readme;
mod reference_migration;
mod rehearsal;
mod repo;
mod serve;
mod storage_conformance;
mod xrpc_aws;
mod xrpc_bad_input;
mod xrpc_repo;
mod xrpc_server;
