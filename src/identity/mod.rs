//! Identity: DIDs, DID documents, handles, did:plc operations and service-auth JWTs.
//!
//! This is the first layer that does I/O: [`Resolver`] resolves did:plc (from a PLC directory at
//! a configurable URL), did:web and handles (DNS TXT `_atproto.<handle>` first, then HTTPS
//! `/.well-known/atproto-did`), with timeouts, a response size cap, a TTL cache and a DNS
//! resolver that refuses private addresses (SSRF) unless configured for tests. [`plc`] builds,
//! signs and verifies PLC operations (pure), [`PlcClient`] submits them, and [`service_auth`]
//! makes and checks inter-service JWTs. The PLC directory *server* is in [`crate::plc`].
//! Account creation flows that use all this live in the XRPC layer. See `docs/identity.md`.

mod config;
mod did_doc;
mod error;
pub mod plc;
mod plc_client;
mod resolver;
pub mod service_auth;

pub use config::{DEFAULT_PLC_URL, IdentityConfig};
pub use did_doc::{DidDocument, Service, VerificationMethod};
pub use error::IdentityError;
pub use plc_client::PlcClient;
pub use resolver::Resolver;
