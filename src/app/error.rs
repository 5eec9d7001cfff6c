//! [`StartError`]: why a process could not be built from its configuration.

use crate::config::ConfigError;
use crate::identity::IdentityError;
use crate::plc::PlcStoreError;
use crate::storage::{SealError, StorageError};

/// Why the services could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Storage could not be opened.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The key-encryption keys are unusable.
    #[error("key-encryption keys: {0}")]
    Sealing(#[from] SealError),
    /// The identity resolver could not be built.
    #[error("identity: {0}")]
    Identity(#[from] IdentityError),
    /// The local PLC directory's store could not be opened.
    #[error("local PLC directory: {0}")]
    PlcStore(#[from] PlcStoreError),
    /// The e-mail transport could not be set up.
    #[error("e-mail: {0}")]
    Mail(String),
    /// A file or socket the process needs could not be used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The failure.
        source: std::io::Error,
    },
}
