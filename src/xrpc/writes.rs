//! The record write path shared by createRecord, putRecord, deleteRecord and applyWrites:
//! whose repo, record checks (`$type`, lexicon, key type), the commit, and blob references.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::auth::Access;
use super::{AppState, XrpcError};
use crate::cbor::Value;
use crate::cid::Cid;
use crate::lexicon::Validation;
use crate::repo::{CommitData, Write, WriteAction, blob_refs};
use crate::storage::accounts::{BlobRecord, PendingRef};
use crate::storage::{
    Accounts, CommitPreconditions, RepoRecord, Seq, StorageError, commit_writes_if,
    load_repo_state, with_blocks,
};
use crate::syntax::{AtIdentifier, Did, Nsid, RecordKey};
use crate::tid::Tid;

/// The DID a `repo` parameter names (a DID or a handle on this PDS).
pub(super) async fn resolve_repo(state: &AppState, repo: &str) -> Result<Did, XrpcError> {
    match AtIdentifier::parse(repo)
        .map_err(|_| XrpcError::invalid(format!("Invalid repo: {repo:?}")))?
    {
        AtIdentifier::Did(did) => Ok(did),
        AtIdentifier::Handle(h) => state.storage().resolve_handle(&h).await?.ok_or_else(|| {
            XrpcError::named("RepoNotFound", format!("Could not find repo: {repo}"))
        }),
    }
}

/// The repo record for a read: it must exist and be active.
pub(super) async fn readable_repo(state: &AppState, repo: &str) -> Result<RepoRecord, XrpcError> {
    let did = resolve_repo(state, repo).await?;
    let record =
        state.storage().load_repo(&did).await?.ok_or_else(|| {
            XrpcError::named("RepoNotFound", format!("Could not find repo: {repo}"))
        })?;
    if !record.status.is_active() {
        return Err(XrpcError::inactive_repo(&did, record.status));
    }
    Ok(record)
}

/// The repo record for a write: it must be the caller's and active.
pub(super) async fn writable_repo(
    state: &AppState,
    access: &Access,
    repo: &str,
) -> Result<RepoRecord, XrpcError> {
    let did = resolve_repo(state, repo).await?;
    access.require_owner(&did)?;
    let (record, _) = state
        .storage()
        .load_for_write_cached(&did)
        .await?
        .ok_or_else(|| XrpcError::named("RepoNotFound", format!("Could not find repo: {repo}")))?;
    if !record.status.is_active() {
        return Err(StorageError::InactiveRepo(did, record.status).into());
    }
    Ok(record)
}

/// Checks a record for `collection`: an object whose `$type` is the collection (added if
/// missing), valid against its lexicon as `validate` asks, with a key of the lexicon's key type.
/// Returns the record as it will be stored, its CID and the validation outcome.
pub(super) fn prepare_record(
    state: &AppState,
    collection: &Nsid,
    rkey: &RecordKey,
    record: &Value,
    validate: Option<bool>,
) -> Result<(Value, Cid, Validation), XrpcError> {
    let Value::Map(mut map) = record.clone() else {
        return Err(XrpcError::invalid("record must be an object"));
    };
    match map.get("$type") {
        None => {
            map.insert("$type".into(), collection.as_str().into());
        }
        Some(Value::String(t)) if t == collection.as_str() => {}
        Some(_) => {
            return Err(XrpcError::invalid(format!(
                "Invalid $type: expected {collection}"
            )));
        }
    }
    let record = Value::Map(map);
    let validation = state
        .lexicons()
        .validate_record(collection, &record, validate)
        .map_err(|e| XrpcError::invalid(format!("Invalid {collection} record: {e}")))?;
    if validation == Validation::Valid {
        let key_type = state
            .lexicons()
            .main_def(collection.as_str())
            .and_then(|d| d.get("key"))
            .and_then(|k| k.as_str())
            .unwrap_or("any");
        let ok = match key_type {
            "tid" => Tid::parse(rkey.as_str()).is_ok(),
            "nsid" => Nsid::parse(rkey.as_str()).is_ok(),
            literal if literal.starts_with("literal:") => {
                rkey.as_str() == &literal["literal:".len()..]
            }
            _ => true,
        };
        if !ok {
            return Err(XrpcError::invalid(format!(
                "Invalid record key {rkey} for {collection} (key type {key_type})"
            )));
        }
    }
    let cid = crate::cid::cid_for_cbor(&crate::cbor::encode(&record));
    Ok((record, cid, validation))
}

/// What a record says of a blob it references: its media type and size.
#[derive(Debug, Default)]
struct BlobClaim {
    mime_type: Option<String>,
    size: Option<i64>,
}

/// Every `{"$type": "blob", "ref", "mimeType", "size"}` in a record.
fn blob_ref_claims(value: &Value) -> Vec<(Cid, BlobClaim)> {
    fn walk(v: &Value, out: &mut Vec<(Cid, BlobClaim)>) {
        match v {
            Value::Map(m) => {
                if m.get("$type").and_then(Value::as_str) == Some("blob") {
                    if let Some(c) = m.get("ref").and_then(Value::as_link) {
                        let claim = BlobClaim {
                            mime_type: m.get("mimeType").and_then(Value::as_str).map(str::to_owned),
                            size: m.get("size").and_then(Value::as_integer),
                        };
                        out.push((*c, claim));
                    }
                }
                m.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out);
    out
}

/// A record must describe a blob as it was stored (type from the bytes, real size), as the
/// reference PDS requires, so a record cannot pass a video off as an image.
fn check_blob_claim(stored: &BlobRecord, claim: &BlobClaim) -> Result<(), XrpcError> {
    if let Some(mime) = &claim.mime_type {
        if mime != &stored.mime_type {
            return Err(XrpcError::named(
                "InvalidMimeType",
                format!(
                    "Referenced Mimetype does not match stored blob. Expected: {}, Got: {mime}",
                    stored.mime_type
                ),
            ));
        }
    }
    if let Some(size) = claim.size {
        if size != stored.size as i64 {
            return Err(XrpcError::named(
                "InvalidSize",
                format!(
                    "Referenced Size does not match stored blob. Expected: {}, Got: {size}",
                    stored.size
                ),
            ));
        }
    }
    Ok(())
}

/// Commits `writes` for `did` under `preconditions`, keeping blob references safe at every
/// step: each referenced blob must be this repo's and described as stored; it is marked as
/// pending for the new paths before the commit (so nothing deletes it while the commit is in
/// flight), and the marks become references after it. Blobs no record references any more are
/// deleted. A crash between the steps leaves a pending mark, which the sweep resolves against
/// the repo, so it never costs a referenced blob (docs/xrpc.md, "Blobs").
pub(super) async fn commit(
    state: &AppState,
    did: &Did,
    writes: &[Write],
    preconditions: &CommitPreconditions,
) -> Result<(CommitData, Seq), XrpcError> {
    let accounts = Accounts(state.storage());
    let mut new_refs: BTreeMap<String, BTreeSet<Cid>> = BTreeMap::new();
    let mut claims: BTreeMap<Cid, Vec<(String, BlobClaim)>> = BTreeMap::new();
    for w in writes {
        if let Some(record) = &w.record {
            for (cid, claim) in blob_ref_claims(record) {
                claims.entry(cid).or_default().push((w.path(), claim));
            }
            new_refs.insert(w.path(), blob_refs(record));
        }
    }
    let since = Utc::now();
    let mut marked = Vec::new();
    for (cid, uses) in &claims {
        let mark = accounts
            .update_blob(did, &cid.to_string(), |stored| {
                for (path, claim) in uses {
                    check_blob_claim(stored, claim)?;
                    stored.pending.push(PendingRef {
                        path: path.clone(),
                        since,
                    });
                }
                Ok::<_, XrpcError>(())
            })
            .await;
        let missing = match mark {
            Ok(Some(_)) => None,
            Ok(None) => Some(XrpcError::named(
                "BlobNotFound",
                format!("Could not find blob: {cid}"),
            )),
            Err(e) => Some(e),
        };
        if let Some(e) = missing {
            unmark(&accounts, did, &marked, since).await;
            return Err(e);
        }
        marked.push(*cid);
    }
    let committed = commit_writes_if(
        state.storage(),
        &state.blocks(),
        did,
        writes,
        state.clock(),
        preconditions,
    )
    .await;
    let (data, seq) = match committed {
        Ok(done) => done,
        Err(e) => {
            unmark(&accounts, did, &marked, since).await;
            return Err(e.into());
        }
    };
    track_blob_refs(state, did, &data, &new_refs, since).await?;
    Ok((data, seq))
}

/// Takes back the pending marks a commit that did not happen made (best effort: a mark left
/// behind is resolved by the sweep).
async fn unmark(accounts: &Accounts<'_>, did: &Did, marked: &[Cid], since: DateTime<Utc>) {
    for cid in marked {
        let undone = accounts
            .update_blob(did, &cid.to_string(), |stored| {
                stored.pending.retain(|p| p.since != since);
                Ok::<_, StorageError>(())
            })
            .await;
        if let Err(e) = undone {
            tracing::warn!(%did, %cid, error = %e, "could not clear a pending blob mark");
        }
    }
}

/// After a commit: the paths it wrote become references of their blobs (their pending marks
/// cleared), and the records it replaced or deleted stop referencing theirs. A blob left with
/// no reference and no commit in flight is deleted (record first, bytes after).
async fn track_blob_refs(
    state: &AppState,
    did: &Did,
    data: &CommitData,
    new_refs: &BTreeMap<String, BTreeSet<Cid>>,
    since: DateTime<Utc>,
) -> Result<(), XrpcError> {
    let accounts = Accounts(state.storage());
    let mut changes: BTreeMap<Cid, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for op in &data.ops {
        if let Some(prev) = op.prev {
            if let Some(bytes) = state.storage().read_block(&prev).await? {
                let old = crate::cbor::decode(&bytes).map_err(XrpcError::internal)?;
                for cid in blob_refs(&old) {
                    changes.entry(cid).or_default().1.push(op.path.clone());
                }
            }
        }
        if op.action != WriteAction::Delete {
            for cid in new_refs.get(&op.path).into_iter().flatten() {
                changes.entry(*cid).or_default().0.push(op.path.clone());
            }
        }
    }
    // A write that changed nothing (no op) still marked its blobs pending: clear those too.
    for cid in new_refs.values().flatten() {
        changes.entry(*cid).or_default();
    }
    for (cid, (added, removed)) in changes {
        let key = cid.to_string();
        let updated = accounts
            .update_blob(did, &key, |record| {
                record.pending.retain(|p| p.since != since);
                record
                    .refs
                    .retain(|p| !removed.contains(p) || added.contains(p));
                for p in &added {
                    if !record.refs.contains(p) {
                        record.refs.push(p.clone());
                    }
                }
                Ok::<_, StorageError>(())
            })
            .await?;
        let Some(record) = updated else {
            // Not uploaded yet (a blob an imported record references): forget the removed paths.
            if let Some(mut refs) = accounts.get_expected_blob(did, &key).await? {
                refs.retain(|p| !removed.contains(p));
                match refs.is_empty() {
                    true => accounts.delete_expected_blob(did, &key).await?,
                    false => accounts.put_expected_blob(did, &key, &refs).await?,
                }
            }
            continue;
        };
        if record.unreferenced()
            && !removed.is_empty()
            && accounts
                .delete_blob_if_unreferenced(did, &key, |_| true)
                .await?
        {
            state.blobs().delete(did, &cid).await?;
        }
    }
    Ok(())
}

/// How long a pending mark may stand before the sweep resolves it against the repo: far longer
/// than any commit takes.
const PENDING_RESOLVE_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Tidies `did`'s blobs: a pending mark older than [`PENDING_RESOLVE_AFTER`] (its commit
/// crashed or failed) becomes a reference if the record at its path references the blob, and is
/// dropped otherwise; then blobs uploaded more than six hours ago that nothing references are
/// deleted (the spec asks for at least one hour).
pub(super) async fn sweep_temporary_blobs(state: &AppState, did: &Did) -> Result<(), XrpcError> {
    let accounts = Accounts(state.storage());
    let now = Utc::now();
    let cutoff = now - chrono::Duration::hours(6);
    for (cid, record) in accounts.list_blobs(did, None, 1000).await? {
        let Ok(blob) = crate::cid::parse_cid(&cid) else {
            continue;
        };
        let stale: Vec<String> = record
            .pending
            .iter()
            .filter(|p| p.since < now - PENDING_RESOLVE_AFTER)
            .map(|p| p.path.clone())
            .collect();
        let mut referenced = Vec::new();
        for path in &stale {
            if record_references(state, did, path, &blob).await? {
                referenced.push(path.clone());
            }
        }
        if !stale.is_empty() {
            accounts
                .update_blob(did, &cid, |record| {
                    record.pending.retain(|p| !stale.contains(&p.path));
                    for path in &referenced {
                        if !record.refs.contains(path) {
                            record.refs.push(path.clone());
                        }
                    }
                    Ok::<_, StorageError>(())
                })
                .await?;
        }
        if accounts
            .delete_blob_if_unreferenced(did, &cid, |r| r.created_at < cutoff)
            .await?
        {
            state.blobs().delete(did, &blob).await?;
        }
    }
    Ok(())
}

/// Whether the record at `path` in `did`'s current repo references `blob`.
async fn record_references(
    state: &AppState,
    did: &Did,
    path: &str,
    blob: &Cid,
) -> Result<bool, XrpcError> {
    let view = state.blocks();
    let (_, repo) = load_repo_state(state.storage(), &view, did).await?;
    let Some((collection, rkey)) = path.split_once('/') else {
        return Ok(false);
    };
    let (Ok(collection), Ok(rkey)) = (collection.parse::<Nsid>(), rkey.parse::<RecordKey>()) else {
        return Ok(false);
    };
    let found = with_blocks(state.storage(), &view, || {
        repo.get_record(&collection, &rkey)
    })
    .await?;
    Ok(found.is_some_and(|(_, value)| blob_refs(&value).contains(blob)))
}

/// Whether a declared media type says nothing about the bytes.
pub(super) fn is_generic_mime(mime: &str) -> bool {
    matches!(
        mime,
        "" | "*/*" | "application/octet-stream" | "binary/octet-stream"
    )
}

/// Stores an uploaded blob's record (keeping references if it was already there, taking over
/// those of imported records that were waiting for it) and returns its media type: `mime`,
/// unless an earlier upload of the same bytes already gave a specific one; a specific `mime`
/// corrects a generic one stored before.
pub(super) async fn record_upload(
    state: &AppState,
    did: &Did,
    cid: &Cid,
    mime_type: &str,
    size: u64,
) -> Result<String, XrpcError> {
    let accounts = Accounts(state.storage());
    let key = cid.to_string();
    loop {
        // An earlier upload of the same bytes: correct a generic type; an unused one starts its
        // six hours again.
        let existing = accounts
            .update_blob(did, &key, |existing| {
                if is_generic_mime(&existing.mime_type) && !is_generic_mime(mime_type) {
                    existing.mime_type = mime_type.to_owned();
                }
                if existing.unreferenced() {
                    existing.created_at = Utc::now();
                }
                Ok::<_, StorageError>(())
            })
            .await?;
        if let Some(existing) = existing {
            return Ok(existing.mime_type);
        }
        // Records imported before the upload may already reference it.
        let refs = accounts
            .get_expected_blob(did, &key)
            .await?
            .unwrap_or_default();
        let record = BlobRecord {
            mime_type: mime_type.to_owned(),
            size,
            refs,
            pending: Vec::new(),
            takedown: None,
            created_at: Utc::now(),
        };
        if accounts.create_blob(did, &key, &record).await? {
            accounts.delete_expected_blob(did, &key).await?;
            return Ok(mime_type.to_owned());
        }
        // A concurrent upload of the same bytes created it first: update that one.
    }
}
