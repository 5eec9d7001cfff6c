//! [`ServerConfig`]: the PDS's `PDS_*` settings, parsed and checked by a pure function over a
//! map (easy to test). Building clients and storage from it happens in `state`.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::crypto::{Algorithm, Keypair};

/// Where repos and account data live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageKind {
    /// The embedded redb file in the data directory (the default).
    Disk,
    /// DynamoDB, with this table prefix (`PDS_STORAGE=dynamodb`, `ARROBA_TABLE_PREFIX`).
    Dynamo {
        /// Table name prefix.
        table_prefix: String,
    },
}

/// Where blob bytes live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobstoreKind {
    /// A folder.
    Disk(PathBuf),
    /// An S3 bucket.
    S3 {
        /// Bucket name.
        bucket: String,
    },
}

/// A configuration problem found at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is missing (only dev mode has defaults for secrets).
    #[error("{0} is required (set it, or PDS_DEV_MODE=true for local development)")]
    Missing(&'static str),
    /// A setting has an unusable value.
    #[error("{name} is invalid: {why}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        why: String,
    },
}

/// Everything the server needs to know about itself.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Public hostname (`PDS_HOSTNAME`).
    pub hostname: String,
    /// Listening port (`PDS_PORT`, default 2583).
    pub port: u16,
    /// The public base URL: `http://localhost:<port>` in dev mode, else `https://<hostname>`.
    pub public_url: String,
    /// The service DID (`PDS_SERVICE_DID`, default `did:web:<hostname>`).
    pub service_did: String,
    /// HS256 secret for session tokens (`PDS_JWT_SECRET`).
    pub jwt_secret: String,
    /// Password for `admin` Basic auth (`PDS_ADMIN_PASSWORD`).
    pub admin_password: String,
    /// Local data: the embedded store, blobs, the local PLC directory (`PDS_DATA_DIRECTORY`).
    pub data_directory: PathBuf,
    /// The PLC directory (`PDS_DID_PLC_URL`; None = run one in-process, dev mode only).
    pub did_plc_url: Option<String>,
    /// Whether createAccount needs an invite code (`PDS_INVITE_REQUIRED`).
    pub invite_required: bool,
    /// Domains under which handles may be created (`PDS_SERVICE_HANDLE_DOMAINS`, comma separated,
    /// each starting with a dot).
    pub handle_domains: Vec<String>,
    /// Blob storage.
    pub blobstore: BlobstoreKind,
    /// Largest blob upload in bytes (`PDS_BLOB_UPLOAD_LIMIT`, default 5 MiB).
    pub blob_upload_limit: usize,
    /// Relays to notify with requestCrawl (`PDS_CRAWLERS`, comma separated URLs).
    pub crawlers: Vec<String>,
    /// Development mode (`PDS_DEV_MODE`).
    pub dev_mode: bool,
    /// Repo storage.
    pub storage: StorageKind,
    /// Key-encryption keys for account keys at rest (`ARROBA_KEY_ENCRYPTION_KEYS`).
    pub key_encryption_keys: Option<String>,
    /// The operator's PLC rotation key (`PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX`, the reference
    /// PDS's name): listed in the `rotationKeys` of every DID this PDS creates, after the account's
    /// own rotation key, so the operator can still update those DIDs if account keys are lost.
    pub plc_rotation_key: Option<Keypair>,
}

fn flag(env: &HashMap<String, String>, name: &str) -> bool {
    env.get(name)
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

fn list(env: &HashMap<String, String>, name: &str) -> Vec<String> {
    env.get(name)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl ServerConfig {
    /// Parses the environment. In production mode (`PDS_DEV_MODE` unset) `PDS_HOSTNAME`,
    /// `PDS_JWT_SECRET`, `PDS_ADMIN_PASSWORD` and `PDS_DID_PLC_URL` are required.
    pub fn from_env(env: &HashMap<String, String>) -> Result<ServerConfig, ConfigError> {
        let dev_mode = flag(env, "PDS_DEV_MODE");
        let get = |name: &'static str, dev_default: &str| -> Result<String, ConfigError> {
            match env.get(name).filter(|v| !v.is_empty()) {
                Some(v) => Ok(v.clone()),
                None if dev_mode => Ok(dev_default.to_owned()),
                None => Err(ConfigError::Missing(name)),
            }
        };
        let hostname = get("PDS_HOSTNAME", "localhost")?;
        let port = match env.get("PDS_PORT") {
            Some(p) => p.parse().map_err(|_| ConfigError::Invalid {
                name: "PDS_PORT",
                why: format!("{p:?} is not a port"),
            })?,
            None => 2583,
        };
        let jwt_secret = get("PDS_JWT_SECRET", "insecure-development-jwt-secret")?;
        if !dev_mode && jwt_secret.len() < 32 {
            return Err(ConfigError::Invalid {
                name: "PDS_JWT_SECRET",
                why: "use at least 32 characters".into(),
            });
        }
        let admin_password = get("PDS_ADMIN_PASSWORD", "admin")?;
        let did_plc_url = match env.get("PDS_DID_PLC_URL").or_else(|| env.get("PLC_HOST")) {
            Some(url) if url.starts_with("http") => Some(url.trim_end_matches('/').to_owned()),
            Some(host) => Some(format!("https://{host}")),
            None if dev_mode => None,
            None => return Err(ConfigError::Missing("PDS_DID_PLC_URL")),
        };
        let mut handle_domains = list(env, "PDS_SERVICE_HANDLE_DOMAINS");
        if handle_domains.is_empty() {
            handle_domains.push(if dev_mode {
                ".test".to_owned()
            } else {
                format!(".{hostname}")
            });
        }
        for d in &mut handle_domains {
            if !d.starts_with('.') {
                d.insert(0, '.');
            }
        }
        let data_directory = PathBuf::from(
            env.get("PDS_DATA_DIRECTORY")
                .cloned()
                .unwrap_or_else(|| "./.local/pds".into()),
        );
        let blobstore = match (
            env.get("PDS_BLOBSTORE_S3_BUCKET"),
            env.get("PDS_BLOBSTORE_DISK_LOCATION"),
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: "PDS_BLOBSTORE_S3_BUCKET",
                    why: "set either it or PDS_BLOBSTORE_DISK_LOCATION, not both".into(),
                });
            }
            (Some(bucket), None) => BlobstoreKind::S3 {
                bucket: bucket.clone(),
            },
            (None, Some(dir)) => BlobstoreKind::Disk(PathBuf::from(dir)),
            (None, None) => BlobstoreKind::Disk(data_directory.join("blobs")),
        };
        let blob_upload_limit = match env.get("PDS_BLOB_UPLOAD_LIMIT") {
            Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
                name: "PDS_BLOB_UPLOAD_LIMIT",
                why: format!("{v:?} is not a byte count"),
            })?,
            None => 5 * 1024 * 1024,
        };
        let storage = match env.get("PDS_STORAGE").map(String::as_str) {
            None | Some("disk") => StorageKind::Disk,
            Some("dynamodb") => StorageKind::Dynamo {
                table_prefix: env
                    .get("ARROBA_TABLE_PREFIX")
                    .cloned()
                    .unwrap_or_else(|| "arroba-".into()),
            },
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "PDS_STORAGE",
                    why: format!("{other:?} is not disk or dynamodb"),
                });
            }
        };
        let key_encryption_keys = env.get("ARROBA_KEY_ENCRYPTION_KEYS").cloned();
        if !dev_mode && storage != StorageKind::Disk && key_encryption_keys.is_none() {
            return Err(ConfigError::Missing("ARROBA_KEY_ENCRYPTION_KEYS"));
        }
        let plc_rotation_key = match env
            .get("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX")
            .filter(|v| !v.is_empty())
        {
            Some(text) => {
                let invalid = || ConfigError::Invalid {
                    name: "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX",
                    why: "expected a k256 private key as 64 hex digits".into(),
                };
                let bytes = hex::decode(text.trim()).map_err(|_| invalid())?;
                Some(Keypair::from_bytes(Algorithm::K256, &bytes).map_err(|_| invalid())?)
            }
            None => None,
        };
        let public_url = if dev_mode {
            format!("http://localhost:{port}")
        } else {
            format!("https://{hostname}")
        };
        let service_did = env
            .get("PDS_SERVICE_DID")
            .cloned()
            .unwrap_or_else(|| format!("did:web:{hostname}"));
        Ok(ServerConfig {
            hostname,
            port,
            public_url,
            service_did,
            jwt_secret,
            admin_password,
            data_directory,
            did_plc_url,
            invite_required: flag(env, "PDS_INVITE_REQUIRED"),
            handle_domains,
            blobstore,
            blob_upload_limit,
            crawlers: list(env, "PDS_CRAWLERS"),
            dev_mode,
            storage,
            key_encryption_keys,
            plc_rotation_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn production_needs_its_secrets_and_dev_mode_has_defaults() {
        assert_eq!(
            ServerConfig::from_env(&env(&[])).unwrap_err(),
            ConfigError::Missing("PDS_HOSTNAME")
        );
        let prod = [
            ("PDS_HOSTNAME", "pds.example.com"),
            ("PDS_ADMIN_PASSWORD", "a"),
            ("PDS_DID_PLC_URL", "https://plc.directory"),
        ];
        assert_eq!(
            ServerConfig::from_env(&env(&prod)).unwrap_err(),
            ConfigError::Missing("PDS_JWT_SECRET")
        );
        let mut full = prod.to_vec();
        full.push(("PDS_JWT_SECRET", "0123456789abcdef0123456789abcdef"));
        let c = ServerConfig::from_env(&env(&full)).unwrap();
        assert_eq!(c.public_url, "https://pds.example.com");
        assert_eq!(c.service_did, "did:web:pds.example.com");
        assert_eq!(c.handle_domains, [".pds.example.com"]);
        assert_eq!(c.blob_upload_limit, 5 * 1024 * 1024);
        let dev = ServerConfig::from_env(&env(&[("PDS_DEV_MODE", "true"), ("PDS_PORT", "3000")]))
            .unwrap();
        assert_eq!(dev.public_url, "http://localhost:3000");
        assert_eq!(dev.did_plc_url, None);
        assert_eq!(dev.handle_domains, [".test"]);
    }

    #[test]
    fn bad_values_are_start_up_errors() {
        let base = [("PDS_DEV_MODE", "1")];
        for (k, v) in [
            ("PDS_PORT", "x"),
            ("PDS_BLOB_UPLOAD_LIMIT", "lots"),
            ("PDS_STORAGE", "mongo"),
            ("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", "not hex"),
            ("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", "abcd"),
            // Zero is not a private key.
            ("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", &"0".repeat(64)),
        ] {
            let mut e = env(&base);
            e.insert(k.into(), v.into());
            assert!(
                matches!(ServerConfig::from_env(&e), Err(ConfigError::Invalid { .. })),
                "{k}"
            );
        }
        let both = env(&[
            ("PDS_DEV_MODE", "1"),
            ("PDS_BLOBSTORE_S3_BUCKET", "b"),
            ("PDS_BLOBSTORE_DISK_LOCATION", "/x"),
        ]);
        assert!(ServerConfig::from_env(&both).is_err());
    }

    #[test]
    fn the_operator_rotation_key_is_read_from_hex() {
        let secret = "4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d";
        let c = ServerConfig::from_env(&env(&[
            ("PDS_DEV_MODE", "1"),
            ("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", secret),
        ]))
        .unwrap();
        let key = c.plc_rotation_key.unwrap();
        assert_eq!(hex::encode(key.to_bytes()), secret);
        assert_eq!(key.algorithm(), Algorithm::K256);
        let none = ServerConfig::from_env(&env(&[("PDS_DEV_MODE", "1")])).unwrap();
        assert!(none.plc_rotation_key.is_none());
    }
}
