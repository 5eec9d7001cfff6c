//! [`RemoteBlobs`]: blobs that live at a remote URL (arroba's `AtpRemoteBlob`), kept on the
//! [`KvStore`] role so every backend has them without code of its own.
//!
//! Namespaces: `remote_blob` (SHA-256 of the URL → the record; URLs can exceed a key's length
//! limit) and `remote_blob_cid:<cid>` (URL hash → nothing), an index that is written before the
//! record and checked against it on every lookup, so a crash between the two writes leaves at
//! worst a stale index entry that lookups skip, never a blob they cannot find.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::{KvCondition, KvStore, RemoteBlob, StorageError};
use crate::cid::{Cid, parse_cid};
use crate::syntax::Did;

const NS: &str = "remote_blob";

/// How many times an upsert re-reads after losing a compare-and-swap before giving up.
const MAX_ATTEMPTS: usize = 20;

fn key(url: &str) -> String {
    hex::encode(sha2::Sha256::digest(url.as_bytes()))
}

fn index_ns(cid: &Cid) -> String {
    format!("remote_blob_cid:{cid}")
}

/// The stored form (JSON).
#[derive(Serialize, Deserialize)]
struct Stored {
    url: String,
    cid: Option<String>,
    mime_type: String,
    size: u64,
    repos: Vec<String>,
    last_fetched: Option<DateTime<Utc>>,
    status: Option<String>,
}

fn corrupt(url: &str) -> StorageError {
    StorageError::Corrupt {
        what: format!("remote blob {url}"),
        why: "stored record does not parse",
    }
}

fn encode(blob: &RemoteBlob) -> Vec<u8> {
    let stored = Stored {
        url: blob.url.clone(),
        cid: blob.cid.map(|c| c.to_string()),
        mime_type: blob.mime_type.clone(),
        size: blob.size,
        repos: blob.repos.iter().map(|d| d.to_string()).collect(),
        last_fetched: blob.last_fetched,
        status: blob.status.clone(),
    };
    // A plain struct of strings and numbers always serialises.
    serde_json::to_vec(&stored).unwrap_or_default()
}

fn decode(bytes: &[u8], url: &str) -> Result<RemoteBlob, StorageError> {
    let s: Stored = serde_json::from_slice(bytes).map_err(|_| corrupt(url))?;
    Ok(RemoteBlob {
        cid: s
            .cid
            .map(|c| parse_cid(&c).map_err(|_| corrupt(url)))
            .transpose()?,
        repos: s
            .repos
            .iter()
            .map(|d| Did::parse(d).map_err(|_| corrupt(url)))
            .collect::<Result<_, _>>()?,
        url: s.url,
        mime_type: s.mime_type,
        size: s.size,
        last_fetched: s.last_fetched,
        status: s.status,
    })
}

/// Remote blob operations over any [`KvStore`].
#[derive(Debug, Clone, Copy)]
pub struct RemoteBlobs<'a>(pub &'a dyn KvStore);

impl RemoteBlobs<'_> {
    /// Records a remote blob, adding `blob.repos` to the repos already recorded; the other
    /// fields replace the stored ones. Atomic against concurrent upserts of the same URL.
    /// Returns the stored record.
    pub async fn upsert(&self, blob: RemoteBlob) -> Result<RemoteBlob, StorageError> {
        let k = key(&blob.url);
        if let Some(cid) = &blob.cid {
            self.0
                .kv_put(&index_ns(cid), &k, b"", KvCondition::Always)
                .await?;
        }
        for _ in 0..MAX_ATTEMPTS {
            let current = self.0.kv_get(NS, &k).await?;
            let old = current
                .as_deref()
                .map(|b| decode(b, &blob.url))
                .transpose()?;
            let mut stored = blob.clone();
            if let Some(old) = &old {
                stored.repos.extend(old.repos.iter().cloned());
            }
            let condition = match &current {
                Some(bytes) => KvCondition::IfEquals(bytes),
                None => KvCondition::IfAbsent,
            };
            if self.0.kv_put(NS, &k, &encode(&stored), condition).await? {
                if let Some(old_cid) = old.and_then(|o| o.cid) {
                    if Some(old_cid) != stored.cid {
                        self.0.kv_delete(&index_ns(&old_cid), &k, None).await?;
                    }
                }
                return Ok(stored);
            }
        }
        Err(StorageError::Backend(
            format!("remote blob {} kept changing concurrently", blob.url).into(),
        ))
    }

    /// The remote blob at `url`.
    pub async fn get(&self, url: &str) -> Result<Option<RemoteBlob>, StorageError> {
        self.0
            .kv_get(NS, &key(url))
            .await?
            .map(|b| decode(&b, url))
            .transpose()
    }

    /// Every remote blob with content `cid`.
    pub async fn by_cid(&self, cid: &Cid) -> Result<Vec<RemoteBlob>, StorageError> {
        let ns = index_ns(cid);
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.0.kv_list(&ns, after.as_deref(), 500).await?;
            let Some((last, _)) = page.last() else {
                return Ok(out);
            };
            after = Some(last.clone());
            for (k, _) in page {
                if let Some(bytes) = self.0.kv_get(NS, &k).await? {
                    let blob = decode(&bytes, &k)?;
                    // The index is written first and may outlive a change of content.
                    if blob.cid.as_ref() == Some(cid) {
                        out.push(blob);
                    }
                }
            }
        }
    }
}
