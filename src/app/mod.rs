//! The composition root: turning configuration into running services, once, for every process.
//!
//! [`Pds`] is the whole PDS: storage, blob store, block cache, identity resolver, key sealer,
//! the XRPC router and, unless asked not to (the Lambda), the firehose hub on the same store,
//! plus in dev mode a local PLC directory. `arroba serve`, the Lambda entry point and the tests
//! all build it here. [`FirehoseTask`] is the firehose on its own (the ECS task): it is built
//! from [`FirehoseTaskConfig`], which holds no secret, on storage opened without
//! key-encryption keys, so it cannot read account keys. [`BulkTask`] serves the methods whose
//! bodies Lambda cannot carry, with the JWT secret and no other. Configuration is parsed by pure
//! functions ([`PdsConfig::from_env`], [`FirehoseTaskConfig::from_env`]); this module does the
//! I/O of building from it. The AWS SDK itself stays in the storage backends: what passes
//! through here is a [`crate::storage::AwsContext`].

mod bulk;
mod config;
mod error;
mod pds;
mod services;
mod task;

pub use bulk::BulkTask;
pub use config::{BulkConfig, FirehoseTaskConfig, PdsConfig};
pub use error::StartError;
pub use pds::{Pds, PdsBuilder};
pub use services::open_maintenance_storage;
pub use task::FirehoseTask;

/// How long a stopping server waits for its firehose subscribers' close frames to go out.
const CLOSE_FRAMES_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A listener whose connections send small writes at once (`TCP_NODELAY`). Without it the last
/// chunk of a streamed answer (a `getRepo` CAR's end) waits for the client's delayed
/// acknowledgement of the chunk before: about 40 ms added to one export in ten.
fn without_nagle(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    fn no_delay(stream: &mut tokio::net::TcpStream) {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
        }
    }
    listener.tap_io(no_delay as fn(&mut tokio::net::TcpStream))
}
