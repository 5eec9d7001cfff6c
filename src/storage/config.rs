//! [`StorageConfig`]: which backend and blob store to use and how big the block cache is,
//! parsed from `PDS_*` settings by a pure function. Secrets (the key-encryption keys) are not
//! here: only processes that sign get them (`crate::app`).

use std::path::PathBuf;
use std::time::Duration;

use super::{BlockCache, MIN_SAFE_WINDOW};
use crate::config::{ConfigError, Env};

/// Where repos and account data live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageKind {
    /// The embedded redb file under the data directory (the default).
    Disk,
    /// DynamoDB (`PDS_STORAGE=dynamodb`): tables named `<prefix><suffix>`
    /// (`ARROBA_TABLE_PREFIX`), or as `ARROBA_TABLE_NAMES` names them.
    Dynamo {
        /// Table name prefix.
        table_prefix: String,
        /// Names by table suffix that replace `<prefix><suffix>` (a stack that lets
        /// CloudFormation name its tables passes them all).
        table_names: std::collections::BTreeMap<String, String>,
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

/// The storage settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// Local data: the embedded store, blobs, the local PLC directory and key file
    /// (`PDS_DATA_DIRECTORY`, default `./.local/pds`).
    pub data_directory: PathBuf,
    /// Repo storage (`PDS_STORAGE`: `disk` or `dynamodb`).
    pub kind: StorageKind,
    /// Blob storage (`PDS_BLOBSTORE_S3_BUCKET` or `PDS_BLOBSTORE_DISK_LOCATION`, default
    /// `<data>/blobs`).
    pub blobstore: BlobstoreKind,
    /// Bound of the process's block cache in bytes (`PDS_BLOCK_CACHE_BYTES`, default 64 MiB).
    pub block_cache_bytes: usize,
    /// How often a long-lived process (`arroba serve`, the firehose task) runs the block
    /// collector (`PDS_BLOCK_COLLECT_INTERVAL_SECONDS`, default a day; `off` never).
    pub block_collect_every: Option<Duration>,
    /// The collector's safety window (`PDS_BLOCK_COLLECT_WINDOW_SECONDS`, default and minimum
    /// an hour: [`super::MIN_SAFE_WINDOW`]).
    pub block_collect_window: Duration,
}

impl StorageConfig {
    /// Parses the storage settings.
    pub fn from_env(env: &Env) -> Result<StorageConfig, ConfigError> {
        let data_directory = PathBuf::from(env.get("PDS_DATA_DIRECTORY").unwrap_or("./.local/pds"));
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
                bucket: bucket.to_owned(),
            },
            (None, Some(dir)) => BlobstoreKind::Disk(PathBuf::from(dir)),
            (None, None) => BlobstoreKind::Disk(data_directory.join("blobs")),
        };
        let kind = match env.get("PDS_STORAGE") {
            None | Some("disk") => StorageKind::Disk,
            Some("dynamodb") => StorageKind::Dynamo {
                table_prefix: env
                    .get("ARROBA_TABLE_PREFIX")
                    .unwrap_or("arroba-")
                    .to_owned(),
                table_names: table_names(env)?,
            },
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "PDS_STORAGE",
                    why: format!("{other:?} is not disk or dynamodb"),
                });
            }
        };
        let block_cache_bytes = env
            .positive("PDS_BLOCK_CACHE_BYTES")?
            .map_or(BlockCache::DEFAULT_CAPACITY, |n| n as usize);
        let block_collect_every = match env.get("PDS_BLOCK_COLLECT_INTERVAL_SECONDS") {
            Some("off") => None,
            _ => Some(Duration::from_secs(
                env.positive("PDS_BLOCK_COLLECT_INTERVAL_SECONDS")?
                    .unwrap_or(24 * 3600),
            )),
        };
        let block_collect_window = match env.positive("PDS_BLOCK_COLLECT_WINDOW_SECONDS")? {
            None => MIN_SAFE_WINDOW,
            Some(s) if Duration::from_secs(s) >= MIN_SAFE_WINDOW => Duration::from_secs(s),
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: "PDS_BLOCK_COLLECT_WINDOW_SECONDS",
                    why: format!(
                        "must be at least {} (a shorter window can delete the blocks of a \
                         commit in flight)",
                        MIN_SAFE_WINDOW.as_secs()
                    ),
                });
            }
        };
        Ok(StorageConfig {
            data_directory,
            kind,
            blobstore,
            block_cache_bytes,
            block_collect_every,
            block_collect_window,
        })
    }

    /// Whether building these backends needs the AWS SDK configuration.
    pub fn needs_aws(&self) -> bool {
        matches!(self.kind, StorageKind::Dynamo { .. })
            || matches!(self.blobstore, BlobstoreKind::S3 { .. })
    }
}

/// `ARROBA_TABLE_NAMES`: a JSON object from table suffix (`repos`, `events`, …) to table name.
fn table_names(env: &Env) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
    let Some(text) = env.get("ARROBA_TABLE_NAMES") else {
        return Ok(Default::default());
    };
    let invalid = |why: String| ConfigError::Invalid {
        name: "ARROBA_TABLE_NAMES",
        why,
    };
    let names: std::collections::BTreeMap<String, String> = serde_json::from_str(text)
        .map_err(|_| invalid("expected a JSON object of table suffix to table name".into()))?;
    let known: Vec<&str> = super::dynamo::tables::definitions()
        .iter()
        .map(|d| d.suffix)
        .collect();
    if let Some(unknown) = names.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(invalid(format!("{unknown:?} is not a table ({known:?})")));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_store_and_a_blob_folder_under_the_data_directory() {
        let c = StorageConfig::from_env(&Env::default()).unwrap();
        assert_eq!(c.kind, StorageKind::Disk);
        assert_eq!(
            c.blobstore,
            BlobstoreKind::Disk(PathBuf::from("./.local/pds/blobs"))
        );
        assert!(!c.needs_aws());
        assert_eq!(c.block_collect_every, Some(Duration::from_secs(86_400)));
        assert_eq!(c.block_collect_window, MIN_SAFE_WINDOW);
        let off: Env = [("PDS_BLOCK_COLLECT_INTERVAL_SECONDS", "off")]
            .into_iter()
            .collect();
        assert_eq!(
            StorageConfig::from_env(&off).unwrap().block_collect_every,
            None
        );
        let aws: Env = [
            ("PDS_STORAGE", "dynamodb"),
            ("PDS_BLOBSTORE_S3_BUCKET", "b"),
        ]
        .into_iter()
        .collect();
        let c = StorageConfig::from_env(&aws).unwrap();
        assert_eq!(
            c.kind,
            StorageKind::Dynamo {
                table_prefix: "arroba-".into(),
                table_names: Default::default(),
            }
        );
        assert!(c.needs_aws());
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (k, v) in [
            ("PDS_STORAGE", "mongo"),
            ("PDS_BLOCK_CACHE_BYTES", "lots"),
            ("PDS_BLOCK_CACHE_BYTES", "0"),
            ("PDS_BLOCK_COLLECT_INTERVAL_SECONDS", "never"),
            ("PDS_BLOCK_COLLECT_WINDOW_SECONDS", "60"),
            ("ARROBA_TABLE_NAMES", "repos=x"),
            ("ARROBA_TABLE_NAMES", r#"{"nope": "x"}"#),
        ] {
            let env: Env = [("PDS_STORAGE", "dynamodb"), (k, v)].into_iter().collect();
            match StorageConfig::from_env(&env) {
                Err(ConfigError::Invalid { name, .. }) => assert_eq!(name, k),
                other => panic!("{k}={v}: {other:?}"),
            }
        }
        let both: Env = [
            ("PDS_BLOBSTORE_S3_BUCKET", "b"),
            ("PDS_BLOBSTORE_DISK_LOCATION", "/x"),
        ]
        .into_iter()
        .collect();
        assert!(StorageConfig::from_env(&both).is_err());
    }
}
