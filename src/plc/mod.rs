//! A PLC directory server (the did:plc registry), for local runs and tests: `arroba plc serve`.
//!
//! It accepts operations at `POST /:did` after checking them exactly as the real directory
//! does for ordinary updates (syntax of every field, signature by a rotation key of the
//! previous state, `prev` naming the latest operation, DID derivation for genesis, nothing after
//! a tombstone) and serves `GET /:did` (DID document), `/:did/data`, `/:did/log`,
//! `/:did/log/audit` and `/:did/log/last`. The 72-hour recovery window, in which a
//! higher-priority rotation key may fork the log, is not implemented: a local directory has
//! no adversaries to recover from. Operations persist in a redb file in the data directory.
//! Operation logic lives in [`crate::identity::plc`]; this module is storage and HTTP.

mod routes;
mod store;

pub use routes::router;
pub use store::{AuditEntry, PlcStore, PlcStoreError};

use std::future::Future;

use tokio::net::TcpListener;

/// Serves the directory on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    store: PlcStore,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(store))
        .with_graceful_shutdown(shutdown)
        .await
}
