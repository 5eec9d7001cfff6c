//! [`purge_account`]: what is left of a deleted account that only it could use — its blobs
//! (bytes and records), blobs its imported records were waiting for, its preferences and
//! outstanding e-mail codes — removed in bounded pages. Every step can run again, so a purge cut
//! off midway (a crash, a Lambda timeout) finishes when deletion is asked for again.
//!
//! Its history in the event log goes too, all but the `#account` event that announced the
//! deletion (as the reference PDS does it). Repo blocks are not removed here: they are
//! content-addressed and shared by every repo on the server, so a block of this account may be
//! another's too. Once neither the repo nor an event names them, the block collector
//! ([`super::collect_blocks`]) removes them (see `docs/storage.md`).

use super::{BlobStore, EventBody, RepoStatus, Storage, StorageError};
use crate::syntax::Did;

/// Keys removed per page.
const PAGE: usize = 500;

/// What a purge removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurgeReport {
    /// Blobs (bytes and record).
    pub blobs: usize,
    /// Other entries: waiting blobs, preferences, e-mail codes.
    pub entries: usize,
    /// Events of the account removed from the log.
    pub events: usize,
}

/// Removes `did`'s blobs and account data (see the module docs). Call only for a deleted account.
pub async fn purge_account(
    storage: &dyn Storage,
    blobs: &dyn BlobStore,
    did: &Did,
) -> Result<PurgeReport, StorageError> {
    let mut report = PurgeReport::default();
    // Bytes first, then the record: a purge cut off between the two finds the record again
    // next time and deletes the (already gone) bytes again, which is harmless.
    let namespace = format!("blobs:{did}");
    loop {
        let page = storage.kv_list(&namespace, None, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for (key, _) in page {
            if let Ok(cid) = crate::cid::parse_cid(&key) {
                blobs.delete(did, &cid).await?;
            }
            storage.kv_delete(&namespace, &key, None).await?;
            report.blobs += 1;
        }
    }
    let waiting = format!("expected-blobs:{did}");
    loop {
        let page = storage.kv_list(&waiting, None, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for (key, _) in page {
            storage.kv_delete(&waiting, &key, None).await?;
            report.entries += 1;
        }
    }
    if storage
        .kv_delete("preferences", did.as_str(), None)
        .await?
        .is_some()
    {
        report.entries += 1;
    }
    // Outstanding e-mail codes: the pointers are keyed `<did>:<purpose>`, in key order.
    let prefix = format!("{did}:");
    let mut after = prefix.clone();
    loop {
        let page = storage
            .kv_list("email-token-of", Some(&after), PAGE)
            .await?;
        let ours: Vec<(String, Vec<u8>)> = page
            .into_iter()
            .take_while(|(k, _)| k.starts_with(&prefix))
            .collect();
        let Some((last, _)) = ours.last() else {
            break;
        };
        after = last.clone();
        for (key, token) in &ours {
            if let Ok(token) = std::str::from_utf8(token) {
                storage.kv_delete("email-token", token, None).await?;
            }
            storage.kv_delete("email-token-of", key, None).await?;
            report.entries += 1;
        }
    }
    report.events = forget_history(storage, did).await?;
    Ok(report)
}

/// Removes `did`'s events from the log but the last `#account` deletion event; returns how many.
async fn forget_history(storage: &dyn Storage, did: &Did) -> Result<usize, StorageError> {
    let mut forgotten = 0;
    let mut after = None;
    loop {
        let page = storage.read_repo_events(did, after, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(forgotten);
        };
        after = Some(last.seq);
        let keep = |body: &EventBody| {
            matches!(
                body,
                EventBody::Account {
                    status: Some(RepoStatus::Deleted),
                    ..
                }
            )
        };
        let seqs: Vec<_> = page
            .iter()
            .filter(|e| !keep(&e.body))
            .map(|e| e.seq)
            .collect();
        storage.forget_events(did, &seqs).await?;
        forgotten += seqs.len();
    }
}
