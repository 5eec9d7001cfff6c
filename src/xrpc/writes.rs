//! The record write path shared by createRecord, putRecord, deleteRecord and applyWrites:
//! whose repo, record checks (`$type`, lexicon, key type), the commit, and blob references.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;

use super::auth::Access;
use super::{AppState, XrpcError};
use crate::cbor::Value;
use crate::cid::Cid;
use crate::lexicon::Validation;
use crate::repo::{CommitData, Write, WriteAction, blob_refs};
use crate::storage::accounts::BlobRecord;
use crate::storage::{
    Accounts, CommitPreconditions, RepoRecord, Seq, StorageError, commit_writes_if,
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

/// Commits `writes` for `did` under `preconditions`, after checking every referenced blob was
/// uploaded to this repo; then records which records reference which blobs, deleting blobs no
/// record references any more.
pub(super) async fn commit(
    state: &AppState,
    did: &Did,
    writes: &[Write],
    preconditions: &CommitPreconditions,
) -> Result<(CommitData, Seq), XrpcError> {
    let accounts = Accounts(state.storage());
    let mut new_refs: BTreeMap<String, BTreeSet<Cid>> = BTreeMap::new();
    for w in writes {
        if let Some(record) = &w.record {
            for (cid, declared) in blob_ref_claims(record) {
                let Some(stored) = accounts.get_blob(did, &cid.to_string()).await? else {
                    return Err(XrpcError::named(
                        "BlobNotFound",
                        format!("Could not find blob: {cid}"),
                    ));
                };
                check_blob_claim(&stored, &declared)?;
            }
            new_refs.insert(w.path(), blob_refs(record));
        }
    }
    let (data, seq) = commit_writes_if(
        state.storage(),
        &state.blocks(),
        did,
        writes,
        state.clock(),
        preconditions,
    )
    .await?;
    track_blob_refs(state, did, &data, &new_refs).await?;
    Ok((data, seq))
}

async fn track_blob_refs(
    state: &AppState,
    did: &Did,
    data: &CommitData,
    new_refs: &BTreeMap<String, BTreeSet<Cid>>,
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
    for (cid, (added, removed)) in changes {
        let key = cid.to_string();
        let Some(mut record) = accounts.get_blob(did, &key).await? else {
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
        record
            .refs
            .retain(|p| !removed.contains(p) || added.contains(p));
        for p in added {
            if !record.refs.contains(&p) {
                record.refs.push(p);
            }
        }
        if record.refs.is_empty() && !removed.is_empty() {
            state.blobs().delete(did, &cid).await?;
            accounts.delete_blob(did, &key).await?;
        } else {
            accounts.put_blob(did, &key, &record).await?;
        }
    }
    Ok(())
}

/// Removes blobs uploaded more than six hours ago that no record took up (the spec asks for
/// at least one hour).
pub(super) async fn sweep_temporary_blobs(state: &AppState, did: &Did) -> Result<(), XrpcError> {
    let accounts = Accounts(state.storage());
    let cutoff = Utc::now() - chrono::Duration::hours(6);
    for (cid, record) in accounts.list_blobs(did, None, 1000).await? {
        if record.refs.is_empty() && record.created_at < cutoff {
            if let Ok(c) = crate::cid::parse_cid(&cid) {
                state.blobs().delete(did, &c).await?;
            }
            accounts.delete_blob(did, &cid).await?;
        }
    }
    Ok(())
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
    match accounts.get_blob(did, &key).await? {
        Some(mut existing) => {
            if is_generic_mime(&existing.mime_type) && !is_generic_mime(mime_type) {
                existing.mime_type = mime_type.to_owned();
                accounts.put_blob(did, &key, &existing).await?;
            }
            Ok(existing.mime_type)
        }
        None => {
            // Records imported before the upload may already reference it.
            let refs = accounts
                .get_expected_blob(did, &key)
                .await?
                .unwrap_or_default();
            accounts
                .put_blob(
                    did,
                    &key,
                    &BlobRecord {
                        mime_type: mime_type.to_owned(),
                        size,
                        refs,
                        created_at: Utc::now(),
                    },
                )
                .await?;
            accounts.delete_expected_blob(did, &key).await?;
            Ok(mime_type.to_owned())
        }
    }
}
