//! Blob bytes: [`BlobStore`], with a folder backend (local runs) and an S3 backend (AWS).
//!
//! Blobs are stored per repo (`<did>/<cid>`), like the reference PDS, so deleting one repo's
//! copy never affects another's. Which blobs exist, their MIME types and who references them
//! is account data (`accounts::BlobRecord`); this module only holds bytes.

use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;

use super::StorageError;
use crate::cid::Cid;
use crate::syntax::Did;

/// Where blob bytes live.
#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` as `did`'s blob `cid` (idempotent).
    async fn put(&self, did: &Did, cid: &Cid, bytes: Bytes) -> Result<(), StorageError>;
    /// The bytes of `did`'s blob `cid`.
    async fn get(&self, did: &Did, cid: &Cid) -> Result<Option<Bytes>, StorageError>;
    /// Removes `did`'s blob `cid` (absent is fine).
    async fn delete(&self, did: &Did, cid: &Cid) -> Result<(), StorageError>;
}

fn io(e: std::io::Error) -> StorageError {
    StorageError::Backend(Box::new(e))
}

/// Blobs as files under a folder (`PDS_BLOBSTORE_DISK_LOCATION`).
#[derive(Debug, Clone)]
pub struct DiskBlobStore {
    root: PathBuf,
}

impl DiskBlobStore {
    /// Blobs under `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> DiskBlobStore {
        DiskBlobStore { root: root.into() }
    }

    fn path(&self, did: &Did, cid: &Cid) -> PathBuf {
        // DIDs may contain ':' and '%', both fine in file names on the systems we run on.
        self.root.join(did.as_str()).join(cid.to_string())
    }
}

#[async_trait]
impl BlobStore for DiskBlobStore {
    async fn put(&self, did: &Did, cid: &Cid, bytes: Bytes) -> Result<(), StorageError> {
        let path = self.path(did, cid);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        // Write, flush to disk, then rename, so a reader never sees a partial blob and a crash
        // never leaves a renamed file whose bytes were not written.
        let tmp = path.with_extension(format!("tmp{}", rand::random::<u32>()));
        let mut file = tokio::fs::File::create(&tmp).await.map_err(io)?;
        tokio::io::AsyncWriteExt::write_all(&mut file, &bytes)
            .await
            .map_err(io)?;
        file.sync_all().await.map_err(io)?;
        drop(file);
        tokio::fs::rename(&tmp, &path).await.map_err(io)?;
        if let Some(dir) = path.parent() {
            // The rename itself is durable once the folder is.
            if let Ok(dir) = tokio::fs::File::open(dir).await {
                let _ = dir.sync_all().await;
            }
        }
        Ok(())
    }

    async fn get(&self, did: &Did, cid: &Cid) -> Result<Option<Bytes>, StorageError> {
        match tokio::fs::read(self.path(did, cid)).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn delete(&self, did: &Did, cid: &Cid) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.path(did, cid)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        }
    }
}

/// Blobs in an S3 bucket (`PDS_BLOBSTORE_S3_BUCKET`), under `blobs/<did>/<cid>`.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

fn s3_err(e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    let chain = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
    StorageError::Backend(
        chain
            .split(" (ServiceError(")
            .next()
            .unwrap_or(&chain)
            .to_owned()
            .into(),
    )
}

impl S3BlobStore {
    /// A store on `bucket` with the given SDK configuration. Path-style addressing is used, which
    /// every S3 endpoint (AWS, emulators) accepts.
    pub fn new(shared: &aws_config::SdkConfig, bucket: impl Into<String>) -> S3BlobStore {
        let config = aws_sdk_s3::config::Builder::from(shared)
            .force_path_style(true)
            .build();
        S3BlobStore {
            client: aws_sdk_s3::Client::from_conf(config),
            bucket: bucket.into(),
        }
    }

    fn key(did: &Did, cid: &Cid) -> String {
        format!("blobs/{did}/{cid}")
    }

    /// Creates the bucket if it does not exist (for tests and local emulators; production
    /// buckets come from the infrastructure code).
    pub async fn ensure_bucket(&self) -> Result<(), StorageError> {
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&e)
                    .unwrap_or_default()
                    .to_owned();
                if code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
                    Ok(())
                } else {
                    Err(s3_err(e))
                }
            }
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, did: &Did, cid: &Cid, bytes: Bytes) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(Self::key(did, cid))
            .body(aws_sdk_s3::primitives::ByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(s3_err)
    }

    async fn get(&self, did: &Did, cid: &Cid) -> Result<Option<Bytes>, StorageError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(Self::key(did, cid))
            .send()
            .await
        {
            Ok(out) => {
                let data = out.body.collect().await.map_err(s3_err)?;
                Ok(Some(data.into_bytes()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(s3_err(e)),
        }
    }

    async fn delete(&self, did: &Did, cid: &Cid) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(Self::key(did, cid))
            .send()
            .await
            .map(|_| ())
            .map_err(s3_err)
    }
}
