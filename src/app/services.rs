//! Building the storage services from their configuration: the backends, the blob store, the
//! key sealer. Shared by [`super::Pds`] and [`super::FirehoseTask`].

use std::path::Path;
use std::sync::Arc;

use base64::Engine;

use super::StartError;
use crate::mail::{EmailConfig, EmailTransport, Mailer, OutboxMailer, SesMailer, SmtpMailer};
use crate::storage::dynamo::DynamoConfig;
use crate::storage::{
    AwsContext, BlobStore, BlobstoreKind, BlockCache, DiskBlobStore, DiskStorage, DynamoStorage,
    KeySealer, S3BlobStore, Storage, StorageConfig, StorageKind,
};

/// The AWS configuration, when these backends need it: the one given, or the environment's
/// (loading it probes the network, so it is only done when needed).
pub(super) async fn aws_context(
    config: &StorageConfig,
    given: Option<AwsContext>,
) -> Option<AwsContext> {
    match given {
        Some(aws) => Some(aws),
        None if config.needs_aws() => Some(AwsContext::from_env().await),
        None => None,
    }
}

/// Opens the repo storage `config` names. Without `sealer` it cannot read or write account keys.
pub(super) fn open_storage(
    config: &StorageConfig,
    sealer: Option<KeySealer>,
    aws: Option<&AwsContext>,
    cache: &BlockCache,
) -> Result<Arc<dyn Storage>, StartError> {
    Ok(match (&config.kind, aws) {
        (StorageKind::Disk, _) => Arc::new(DiskStorage::open(
            &config.data_directory.join("store"),
            sealer,
        )?),
        (
            StorageKind::Dynamo {
                table_prefix,
                table_names,
            },
            Some(aws),
        ) => {
            let mut dynamo = DynamoConfig::new(table_prefix.clone(), sealer);
            dynamo.table_names = table_names.clone();
            dynamo.block_cache = cache.clone();
            Arc::new(DynamoStorage::new(aws, dynamo))
        }
        (StorageKind::Dynamo { .. }, None) => {
            unreachable!("aws_context loads a configuration whenever DynamoDB is configured")
        }
    })
}

/// Opens the blob store `config` names.
pub(super) fn open_blobs(config: &StorageConfig, aws: Option<&AwsContext>) -> Arc<dyn BlobStore> {
    match (&config.blobstore, aws) {
        (BlobstoreKind::S3 { bucket }, Some(aws)) => {
            Arc::new(S3BlobStore::new(aws.sdk_config(), bucket.clone()))
        }
        (BlobstoreKind::Disk(dir), _) => Arc::new(DiskBlobStore::new(dir.clone())),
        (BlobstoreKind::S3 { .. }, None) => {
            unreachable!("aws_context loads a configuration whenever S3 is configured")
        }
    }
}

/// Dev mode on the AWS backends (`make run-aws`, against the emulator): creates the tables and
/// the bucket if they are missing, so a fresh emulator works. Outside dev mode the deployment
/// creates them.
pub(super) async fn create_dev_backends(
    config: &StorageConfig,
    aws: Option<&AwsContext>,
) -> Result<(), StartError> {
    let Some(aws) = aws else {
        return Ok(());
    };
    if let StorageKind::Dynamo {
        table_prefix,
        table_names,
    } = &config.kind
    {
        let mut dynamo = DynamoConfig::new(table_prefix.clone(), None);
        dynamo.table_names = table_names.clone();
        DynamoStorage::new(aws, dynamo).create_tables().await?;
    }
    if let BlobstoreKind::S3 { bucket } = &config.blobstore {
        S3BlobStore::new(aws.sdk_config(), bucket.clone())
            .ensure_bucket()
            .await?;
    }
    Ok(())
}

/// Local runs without configured keys: a key file in the data directory, created on first
/// start with owner-only permissions.
pub(super) fn local_sealer(data_directory: &Path) -> Result<KeySealer, StartError> {
    let path = data_directory.join("key-encryption-key");
    let io = |what: &str| {
        let what = format!("{what} {}", path.display());
        move |source| StartError::Io { what, source }
    };
    if let Ok(spec) = std::fs::read_to_string(&path) {
        return Ok(KeySealer::from_config(spec.trim())?);
    }
    std::fs::create_dir_all(data_directory).map_err(io("creating the folder of"))?;
    let spec = format!(
        "local:{}",
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    );
    std::fs::write(&path, &spec).map_err(io("writing"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(io("restricting"))?;
    }
    Ok(KeySealer::from_config(&spec)?)
}

/// The mailer the e-mail settings name: SMTP, SES (on `aws`), or the data directory's outbox in
/// dev mode; None when this server sends no mail.
pub(super) fn open_mailer(
    config: Option<&EmailConfig>,
    data_directory: &Path,
    aws: Option<&AwsContext>,
) -> Result<Option<Arc<dyn Mailer>>, StartError> {
    let Some(config) = config else {
        return Ok(None);
    };
    let mailer: Arc<dyn Mailer> = match (&config.transport, aws) {
        (EmailTransport::Smtp(url), _) => Arc::new(
            SmtpMailer::new(url, &config.from).map_err(|e| StartError::Mail(e.to_string()))?,
        ),
        (EmailTransport::Ses, Some(aws)) => {
            Arc::new(SesMailer::new(aws.sdk_config(), &config.from))
        }
        (EmailTransport::Ses, None) => {
            unreachable!("the builder loads an AWS configuration whenever SES is configured")
        }
        (EmailTransport::Outbox, _) => {
            let outbox = OutboxMailer::new(data_directory.join("outbox"));
            tracing::info!(dir = %outbox.dir().display(), "mail goes to the outbox");
            Arc::new(outbox)
        }
    };
    Ok(Some(mailer))
}

/// The repo storage `config` names, without account keys, and a block cache for it: what a
/// maintenance command (`arroba collect-blocks`) works on.
pub async fn open_maintenance_storage(
    config: &StorageConfig,
) -> Result<(Arc<dyn Storage>, BlockCache), StartError> {
    let aws = aws_context(config, None).await;
    let cache = BlockCache::new(config.block_cache_bytes);
    let storage = open_storage(config, None, aws.as_ref(), &cache)?;
    Ok((storage, cache))
}
