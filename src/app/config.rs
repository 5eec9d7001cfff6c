//! The configurations of our two kinds of process, each the sum of the layers' own settings:
//! [`PdsConfig`] (the whole PDS: `serve`, the Lambda, tests) and [`FirehoseTaskConfig`] (the
//! firehose task, which gets no secret).

use crate::config::{ConfigError, Env};
use crate::firehose::FirehoseConfig;
use crate::storage::{KeySealer, StorageConfig, StorageKind};
use crate::xrpc::ServerConfig;

/// Everything `arroba serve` and the Lambda are configured with.
#[derive(Debug, Clone)]
pub struct PdsConfig {
    /// The XRPC server's settings.
    pub server: ServerConfig,
    /// Storage, blob store and block cache.
    pub storage: StorageConfig,
    /// The in-process firehose (`serve`; the Lambda runs none).
    pub firehose: FirehoseConfig,
    /// Key-encryption keys that seal account keys (`ARROBA_KEY_ENCRYPTION_KEYS`); None keeps a
    /// generated key in a file in the data directory, which only the embedded store may do.
    pub key_encryption_keys: Option<KeySealer>,
}

impl PdsConfig {
    /// Parses every setting of the whole PDS; the first problem found is the error.
    pub fn from_env(env: &Env) -> Result<PdsConfig, ConfigError> {
        let server = ServerConfig::from_env(env)?;
        let storage = StorageConfig::from_env(env)?;
        let firehose = FirehoseConfig::from_env(env)?;
        let key_encryption_keys = match env.get("ARROBA_KEY_ENCRYPTION_KEYS") {
            Some(spec) => Some(
                KeySealer::from_config(spec).map_err(|e| ConfigError::Invalid {
                    name: "ARROBA_KEY_ENCRYPTION_KEYS",
                    why: format!("{e} (expected id:base64key[,id:base64key…], 32-byte keys)"),
                })?,
            ),
            None if storage.kind != StorageKind::Disk && !server.dev_mode => {
                return Err(ConfigError::Missing("ARROBA_KEY_ENCRYPTION_KEYS"));
            }
            None => None,
        };
        Ok(PdsConfig {
            server,
            storage,
            firehose,
            key_encryption_keys,
        })
    }
}

/// What `arroba firehose` (the ECS task) is configured with: storage and the firehose's own
/// settings. No secret: the task never signs, so it never sees the JWT secret, the admin
/// password or the key-encryption keys, and its storage cannot open account keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirehoseTaskConfig {
    /// Storage (read only, in practice) and block cache.
    pub storage: StorageConfig,
    /// The hub's settings.
    pub firehose: FirehoseConfig,
    /// The listening port (`PDS_FIREHOSE_PORT`, default 2584).
    pub port: u16,
}

impl FirehoseTaskConfig {
    /// Parses the task's settings.
    pub fn from_env(env: &Env) -> Result<FirehoseTaskConfig, ConfigError> {
        Ok(FirehoseTaskConfig {
            storage: StorageConfig::from_env(env)?,
            firehose: FirehoseConfig::from_env(env)?,
            port: env
                .parse::<u16>("PDS_FIREHOSE_PORT", "a port")?
                .unwrap_or(2584),
        })
    }
}

/// What `arroba bulk` (the deployment's bulk container) is configured with: the server's
/// settings without the admin password, and storage. The JWT secret is its only secret.
#[derive(Debug, Clone)]
pub struct BulkConfig {
    /// The server's settings (session checks, upload limit, PLC directory).
    pub server: ServerConfig,
    /// Storage and blob store.
    pub storage: StorageConfig,
    /// The listening port (`PDS_BULK_PORT`, default 2585).
    pub port: u16,
}

impl BulkConfig {
    /// Parses the bulk task's settings.
    pub fn from_env(env: &Env) -> Result<BulkConfig, ConfigError> {
        Ok(BulkConfig {
            server: ServerConfig::without_admin_from_env(env)?,
            storage: StorageConfig::from_env(env)?,
            port: env.parse::<u16>("PDS_BULK_PORT", "a port")?.unwrap_or(2585),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().copied().collect()
    }

    #[test]
    fn dynamodb_outside_dev_mode_needs_well_formed_key_encryption_keys() {
        let prod = [
            ("PDS_HOSTNAME", "pds.example.com"),
            ("PDS_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("PDS_ADMIN_PASSWORD", "a-long-admin-password"),
            ("PDS_DID_PLC_URL", "https://plc.directory"),
            ("PDS_STORAGE", "dynamodb"),
        ];
        assert_eq!(
            PdsConfig::from_env(&env(&prod)).unwrap_err(),
            ConfigError::Missing("ARROBA_KEY_ENCRYPTION_KEYS")
        );
        let mut bad = env(&prod);
        // 44 letters and digits: a secret generated without the `id:` part.
        bad.set("ARROBA_KEY_ENCRYPTION_KEYS", "a".repeat(44));
        assert!(matches!(
            PdsConfig::from_env(&bad),
            Err(ConfigError::Invalid {
                name: "ARROBA_KEY_ENCRYPTION_KEYS",
                ..
            })
        ));
        let mut good = env(&prod);
        good.set(
            "ARROBA_KEY_ENCRYPTION_KEYS",
            "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        );
        assert!(
            PdsConfig::from_env(&good)
                .unwrap()
                .key_encryption_keys
                .is_some()
        );
    }

    #[test]
    fn the_firehose_task_starts_from_storage_settings_alone() {
        let task = FirehoseTaskConfig::from_env(&env(&[
            ("PDS_STORAGE", "dynamodb"),
            ("PDS_FIREHOSE_PORT", "9000"),
        ]))
        .unwrap();
        assert_eq!(task.port, 9000);
        assert!(matches!(task.storage.kind, StorageKind::Dynamo { .. }));
        let bad = FirehoseTaskConfig::from_env(&env(&[("PDS_FIREHOSE_PORT", "http")]));
        assert!(matches!(
            bad,
            Err(ConfigError::Invalid {
                name: "PDS_FIREHOSE_PORT",
                ..
            })
        ));
    }
}
