//! The XRPC server: one axum [`Router`](axum::Router) for every method ([`router`]), used as-is
//! by the Lambda entry point, the local server (`arroba serve`) and the tests; the composition
//! root (`crate::app`) supplies its [`AppState`].
//!
//! Handlers are thin and grouped by NSID namespace (`server`, `repo`, `sync`, `identity`,
//! `admin`) and the OAuth endpoints (`oauth`); the table in `methods` names each method's NSID, kind and handler. Handlers read
//! typed inputs checked against the method's lexicon ([`extract`]), authenticate with [`auth`],
//! call `accounts`/`repo`/`storage`/`identity`, and map errors through [`XrpcError`], the one
//! place statuses and `{"error","message"}` bodies are chosen. The firehose's WebSocket route
//! is added by `crate::firehose`.

mod admin;
pub mod auth;
mod bsky;
pub mod config;
mod email;
mod error;
pub mod extract;
mod identity;
mod import;
pub mod limits;
mod methods;
mod migration;
mod oauth;
mod proxy;
mod repo;
mod router;
mod server;
mod state;
mod sync;
mod well_known;
mod writes;

pub use config::ServerConfig;
pub use error::XrpcError;
pub use methods::{BULK_METHODS, MethodKind, method_list};
pub use router::{bulk_router, cors, repo_export_routes, router};
pub use state::{AppState, ExportState, Services};
