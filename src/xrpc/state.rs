//! [`AppState`]: what every handler shares, and building it from a [`ServerConfig`].

use std::sync::Arc;

use super::config::{BlobstoreKind, ServerConfig, StorageKind};
use crate::block::BlockCache;
use crate::identity::{IdentityConfig, IdentityError, PlcClient, Resolver};
use crate::lexicon::Lexicons;
use crate::storage::dynamo::DynamoConfig;
use crate::storage::{
    BlobStore, DiskBlobStore, DiskStorage, DynamoStorage, KeySealer, S3BlobStore, SealError,
    Storage, StorageError,
};
use crate::tid::TidClock;

/// Shared server state; cloning is cheap.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    config: ServerConfig,
    storage: Arc<dyn Storage>,
    blobs: Arc<dyn BlobStore>,
    cache: BlockCache,
    clock: TidClock,
    resolver: Arc<Resolver>,
    plc: PlcClient,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("storage", &self.0.storage)
            .field("hostname", &self.0.config.hostname)
            .finish()
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Storage could not be opened.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The key-encryption keys are unusable.
    #[error("key-encryption keys: {0}")]
    Sealing(#[from] SealError),
    /// The identity resolver could not be built.
    #[error("identity: {0}")]
    Identity(#[from] IdentityError),
    /// No PLC directory is configured.
    #[error("no PLC directory configured (PDS_DID_PLC_URL)")]
    NoPlcDirectory,
}

impl AppState {
    /// State from parts (tests supply their own storage and resolver).
    pub fn new(
        config: ServerConfig,
        storage: Arc<dyn Storage>,
        blobs: Arc<dyn BlobStore>,
        resolver: Arc<Resolver>,
    ) -> AppState {
        let plc = PlcClient::new(resolver.clone());
        AppState(Arc::new(Inner {
            config,
            storage,
            blobs,
            cache: BlockCache::new(),
            clock: TidClock::random(),
            resolver,
            plc,
        }))
    }

    /// Opens the storage and blob store `config` names and builds the state. `sdk` is the AWS
    /// configuration, needed only for DynamoDB or S3.
    pub async fn from_config(
        config: ServerConfig,
        sdk: Option<&aws_config::SdkConfig>,
    ) -> Result<AppState, StartupError> {
        let sealer = match &config.key_encryption_keys {
            Some(spec) => KeySealer::from_config(spec)?,
            None => local_sealer(&config)?,
        };
        // Only AWS-backed storage needs the SDK configuration (loading it probes the network).
        let needs_aws = !matches!(config.storage, StorageKind::Disk)
            || matches!(config.blobstore, BlobstoreKind::S3 { .. });
        let loaded;
        let sdk = match sdk {
            Some(s) => s,
            None if needs_aws => {
                loaded = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .load()
                    .await;
                &loaded
            }
            None => {
                loaded = aws_config::SdkConfig::builder()
                    .behavior_version(aws_config::BehaviorVersion::latest())
                    .build();
                &loaded
            }
        };
        let storage: Arc<dyn Storage> = match &config.storage {
            StorageKind::Disk => Arc::new(DiskStorage::open(
                &config.data_directory.join("store"),
                sealer,
            )?),
            StorageKind::Dynamo { table_prefix } => Arc::new(DynamoStorage::with_sdk_config(
                sdk,
                DynamoConfig::new(table_prefix.clone(), sealer),
            )),
        };
        let blobs: Arc<dyn BlobStore> = match &config.blobstore {
            BlobstoreKind::Disk(dir) => Arc::new(DiskBlobStore::new(dir.clone())),
            BlobstoreKind::S3 { bucket } => Arc::new(S3BlobStore::new(sdk, bucket.clone())),
        };
        let plc_url = config
            .did_plc_url
            .clone()
            .ok_or(StartupError::NoPlcDirectory)?;
        let identity = IdentityConfig {
            plc_url,
            allow_private_addresses: config.dev_mode,
            ..IdentityConfig::default()
        };
        let resolver = Arc::new(Resolver::new(identity)?);
        Ok(AppState::new(config, storage, blobs, resolver))
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    /// The storage backend.
    pub fn storage(&self) -> &dyn Storage {
        &*self.0.storage
    }

    /// The storage backend, shared.
    pub fn storage_arc(&self) -> Arc<dyn Storage> {
        self.0.storage.clone()
    }

    /// The blob store.
    pub fn blobs(&self) -> &dyn BlobStore {
        &*self.0.blobs
    }

    /// The in-process block cache (blocks are immutable, so it never goes stale).
    pub fn cache(&self) -> &BlockCache {
        &self.0.cache
    }

    /// The TID clock for record keys and revs.
    pub fn clock(&self) -> &TidClock {
        &self.0.clock
    }

    /// The identity resolver.
    pub fn resolver(&self) -> &Resolver {
        &self.0.resolver
    }

    /// The PLC directory client.
    pub fn plc(&self) -> &PlcClient {
        &self.0.plc
    }

    /// The bundled lexicons.
    pub fn lexicons(&self) -> &'static Lexicons {
        Lexicons::bundled()
    }
}

/// Local runs without configured keys: a key file in the data directory, created on first
/// start with owner-only permissions.
fn local_sealer(config: &ServerConfig) -> Result<KeySealer, StartupError> {
    use base64::Engine;
    let path = config.data_directory.join("key-encryption-key");
    let io = |e: std::io::Error| StartupError::Storage(StorageError::Backend(Box::new(e)));
    if let Ok(spec) = std::fs::read_to_string(&path) {
        return Ok(KeySealer::from_config(spec.trim())?);
    }
    std::fs::create_dir_all(&config.data_directory).map_err(io)?;
    let spec = format!(
        "local:{}",
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    );
    std::fs::write(&path, &spec).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(KeySealer::from_config(&spec)?)
}
