//! `com.atproto.repo.*`: record writes and reads, describeRepo, uploadBlob.

use std::ops::ControlFlow;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use futures::StreamExt;
use serde_json::{Value as Json_, json};
use sha2::{Digest, Sha256};

use super::auth::{Access, Uploader};
use crate::oauth::{Permission, RepoAction};
use serde::Deserialize;

use super::extract::{Body, Params, data_value, present};
use super::limits::{Budget, Caller};
use super::writes::{self, prepare_record, readable_repo, writable_repo};
use super::{AppState, XrpcError};
use crate::cbor::{self, Value};
use crate::cid::{self, Cid, parse_cid};
use crate::repo::{CommitData, Repo, RepoError, Write, WriteAction};
use crate::storage::{
    Accounts, BlockView, CommitPreconditions, StorageError, load_repo_state, with_blocks,
};
use crate::syntax::{AtUri, Did, Nsid, RecordKey};

type Out = Result<Json<Json_>, XrpcError>;

fn commit_json(data: &CommitData) -> Json_ {
    json!({"cid": data.cid.to_string(), "rev": data.rev().to_string()})
}

fn uri(did: &Did, collection: &Nsid, rkey: &RecordKey) -> String {
    AtUri::for_record(did, collection, rkey).to_string()
}

/// A CID input field (`swapCommit`, `swapRecord`); the lexicon has checked its syntax.
fn cid_field(value: Option<&str>, name: &str) -> Result<Option<Cid>, XrpcError> {
    value
        .map(|s| parse_cid(s).map_err(|_| XrpcError::invalid(format!("Invalid {name}: {s:?}"))))
        .transpose()
}

/// A new TID record key from the server's clock.
fn new_rkey(state: &AppState) -> Result<RecordKey, XrpcError> {
    let tid = state
        .clock()
        .next(crate::tid::micros_of(chrono::Utc::now()));
    Ok(RecordKey::parse(&tid.to_string())?)
}

/// The `createRecord` input.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateRecordInput {
    repo: String,
    collection: Nsid,
    rkey: Option<RecordKey>,
    validate: Option<bool>,
    #[serde(deserialize_with = "data_value")]
    record: Value,
    swap_commit: Option<String>,
}

pub(super) async fn create_record(
    State(state): State<AppState>,
    caller: Caller,
    access: Access,
    Body(input): Body<CreateRecordInput>,
) -> Out {
    access.require(Permission::Repo {
        collection: input.collection.as_str(),
        action: RepoAction::Create,
    })?;
    spend_write_points(&state, &caller, &access, 3).await?;
    let record = writable_repo(&state, &access, &input.repo).await?;
    let collection = input.collection;
    let rkey = match input.rkey {
        Some(r) => r,
        None => new_rkey(&state)?,
    };
    let (value, cid, validation) =
        prepare_record(&state, &collection, &rkey, &input.record, input.validate)?;
    let pre = CommitPreconditions {
        swap_commit: cid_field(input.swap_commit.as_deref(), "swapCommit")?,
        swap_records: vec![],
    };
    let (data, _) = writes::commit(
        &state,
        &record.did,
        &[Write::create(collection.clone(), rkey.clone(), value)],
        &pre,
    )
    .await?;
    Ok(Json(json!({
        "uri": uri(&record.did, &collection, &rkey), "cid": cid.to_string(), "commit": commit_json(&data),
        "validationStatus": validation.as_str(),
    })))
}

/// The `putRecord` input. `swapRecord: null` means "the record must not exist yet".
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PutRecordInput {
    repo: String,
    collection: Nsid,
    rkey: RecordKey,
    validate: Option<bool>,
    #[serde(deserialize_with = "data_value")]
    record: Value,
    #[serde(default, deserialize_with = "present")]
    swap_record: Option<Option<String>>,
    swap_commit: Option<String>,
}

pub(super) async fn put_record(
    State(state): State<AppState>,
    caller: Caller,
    access: Access,
    Body(input): Body<PutRecordInput>,
) -> Out {
    // A put creates or updates, which only the commit knows: both are asked, as the reference
    // PDS asks.
    for action in [RepoAction::Create, RepoAction::Update] {
        access.require(Permission::Repo {
            collection: input.collection.as_str(),
            action,
        })?;
    }
    spend_write_points(&state, &caller, &access, 2).await?;
    let record = writable_repo(&state, &access, &input.repo).await?;
    let (collection, rkey) = (input.collection, input.rkey);
    let (value, cid, validation) =
        prepare_record(&state, &collection, &rkey, &input.record, input.validate)?;
    let path = format!("{collection}/{rkey}");
    let mut pre = CommitPreconditions {
        swap_commit: cid_field(input.swap_commit.as_deref(), "swapCommit")?,
        swap_records: vec![],
    };
    if let Some(swap) = &input.swap_record {
        pre.swap_records
            .push((path.clone(), cid_field(swap.as_deref(), "swapRecord")?));
    }
    let exists = current_cid(&state, &record.did, &path).await?.is_some();
    let write = if exists {
        Write::update(collection.clone(), rkey.clone(), value)
    } else {
        Write::create(collection.clone(), rkey.clone(), value)
    };
    let (data, _) = writes::commit(&state, &record.did, &[write], &pre).await?;
    Ok(Json(json!({
        "uri": uri(&record.did, &collection, &rkey), "cid": cid.to_string(), "commit": commit_json(&data),
        "validationStatus": validation.as_str(),
    })))
}

/// The current CID at `path` in `did`'s repo.
async fn current_cid(state: &AppState, did: &Did, path: &str) -> Result<Option<Cid>, XrpcError> {
    let view = state.blocks();
    let (_, repo) = load_repo_state(state.storage(), &view, did).await?;
    Ok(with_blocks(state.storage(), &view, || Ok(repo.mst().get(path)?)).await?)
}

/// The `deleteRecord` input.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeleteRecordInput {
    repo: String,
    collection: Nsid,
    rkey: RecordKey,
    swap_record: Option<String>,
    swap_commit: Option<String>,
}

pub(super) async fn delete_record(
    State(state): State<AppState>,
    caller: Caller,
    access: Access,
    Body(input): Body<DeleteRecordInput>,
) -> Out {
    access.require(Permission::Repo {
        collection: input.collection.as_str(),
        action: RepoAction::Delete,
    })?;
    spend_write_points(&state, &caller, &access, 1).await?;
    let record = writable_repo(&state, &access, &input.repo).await?;
    let (collection, rkey) = (input.collection, input.rkey);
    let path = format!("{collection}/{rkey}");
    let mut pre = CommitPreconditions {
        swap_commit: cid_field(input.swap_commit.as_deref(), "swapCommit")?,
        swap_records: vec![],
    };
    if let Some(swap) = cid_field(input.swap_record.as_deref(), "swapRecord")? {
        pre.swap_records.push((path.clone(), Some(swap)));
    }
    // Deleting a record that does not exist is a success with no commit ("or ensure it doesn't
    // exist", per the lexicon).
    if pre.swap_records.is_empty() && current_cid(&state, &record.did, &path).await?.is_none() {
        return Ok(Json(json!({})));
    }
    let (data, _) = writes::commit(
        &state,
        &record.did,
        &[Write::delete(collection, rkey)],
        &pre,
    )
    .await?;
    Ok(Json(json!({ "commit": commit_json(&data) })))
}

/// One write of `applyWrites`, by its `$type`.
#[derive(Deserialize)]
#[serde(tag = "$type")]
pub(super) enum WriteInput {
    #[serde(rename = "com.atproto.repo.applyWrites#create")]
    Create {
        collection: Nsid,
        rkey: Option<RecordKey>,
        #[serde(deserialize_with = "data_value")]
        value: Value,
    },
    #[serde(rename = "com.atproto.repo.applyWrites#update")]
    Update {
        collection: Nsid,
        rkey: RecordKey,
        #[serde(deserialize_with = "data_value")]
        value: Value,
    },
    #[serde(rename = "com.atproto.repo.applyWrites#delete")]
    Delete { collection: Nsid, rkey: RecordKey },
}

/// The `applyWrites` input.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ApplyWritesInput {
    repo: String,
    validate: Option<bool>,
    writes: Vec<WriteInput>,
    swap_commit: Option<String>,
}

pub(super) async fn apply_writes(
    State(state): State<AppState>,
    caller: Caller,
    access: Access,
    Body(input): Body<ApplyWritesInput>,
) -> Out {
    if input.writes.len() > crate::repo::MAX_WRITES {
        return Err(XrpcError::invalid(format!(
            "Too many writes. Max: {}",
            crate::repo::MAX_WRITES
        )));
    }
    // Every write is allowed, or nothing is written.
    for write in &input.writes {
        let (collection, action) = match write {
            WriteInput::Create { collection, .. } => (collection, RepoAction::Create),
            WriteInput::Update { collection, .. } => (collection, RepoAction::Update),
            WriteInput::Delete { collection, .. } => (collection, RepoAction::Delete),
        };
        access.require(Permission::Repo {
            collection: collection.as_str(),
            action,
        })?;
    }
    let points = input
        .writes
        .iter()
        .map(|w| match w {
            WriteInput::Create { .. } => 3,
            WriteInput::Update { .. } => 2,
            WriteInput::Delete { .. } => 1,
        })
        .sum();
    spend_write_points(&state, &caller, &access, points).await?;
    let record = writable_repo(&state, &access, &input.repo).await?;
    let mut writes = Vec::with_capacity(input.writes.len());
    let mut results = Vec::with_capacity(input.writes.len());
    for item in input.writes {
        let (action, collection, rkey, value) = match item {
            WriteInput::Create {
                collection,
                rkey,
                value,
            } => {
                let rkey = match rkey {
                    Some(r) => r,
                    None => new_rkey(&state)?,
                };
                (WriteAction::Create, collection, rkey, Some(value))
            }
            WriteInput::Update {
                collection,
                rkey,
                value,
            } => (WriteAction::Update, collection, rkey, Some(value)),
            WriteInput::Delete { collection, rkey } => {
                (WriteAction::Delete, collection, rkey, None)
            }
        };
        let Some(value) = value else {
            results.push(json!({"$type": "com.atproto.repo.applyWrites#deleteResult"}));
            writes.push(Write::delete(collection, rkey));
            continue;
        };
        let uri = uri(&record.did, &collection, &rkey);
        let (value, cid, validation) =
            prepare_record(&state, &collection, &rkey, &value, input.validate)?;
        let kind = if action == WriteAction::Create {
            "createResult"
        } else {
            "updateResult"
        };
        results.push(json!({"$type": format!("com.atproto.repo.applyWrites#{kind}"), "uri": uri, "cid": cid.to_string(), "validationStatus": validation.as_str()}));
        writes.push(Write {
            action,
            collection,
            rkey,
            record: Some(value),
        });
    }
    let pre = CommitPreconditions {
        swap_commit: cid_field(input.swap_commit.as_deref(), "swapCommit")?,
        swap_records: vec![],
    };
    let (data, _) = writes::commit(&state, &record.did, &writes, &pre).await?;
    Ok(Json(
        json!({ "commit": commit_json(&data), "results": results }),
    ))
}

/// The repo at its head for reading, and the view its blocks load through.
async fn head(state: &AppState, did: &Did) -> Result<(Repo, BlockView), XrpcError> {
    let view = state.blocks();
    let (_, repo) = load_repo_state(state.storage(), &view, did).await?;
    Ok((repo, view))
}

pub(super) async fn get_record(State(state): State<AppState>, params: Params) -> Out {
    let record = readable_repo(&state, &params.required::<String>("repo")?).await?;
    let collection: Nsid = params.required("collection")?;
    let rkey: RecordKey = params.required("rkey")?;
    let wanted: Option<Cid> = params
        .get("cid")
        .map(|c| parse_cid(c).map_err(|_| XrpcError::invalid("Invalid cid")))
        .transpose()?;
    let (repo, view) = head(&state, &record.did).await?;
    let found = with_blocks(state.storage(), &view, || {
        repo.get_record(&collection, &rkey)
    })
    .await?;
    // A record the operator took down is not served (the repo itself still holds it).
    let path = format!("{collection}/{rkey}");
    if Accounts(state.storage())
        .record_takedown(&record.did, &path)
        .await?
        .is_some()
    {
        return Err(XrpcError::named(
            "RecordNotFound",
            format!(
                "Could not locate record: {}",
                uri(&record.did, &collection, &rkey)
            ),
        ));
    }
    match found {
        Some((cid, value)) if wanted.is_none_or(|w| w == cid) => Ok(Json(json!({
            "uri": uri(&record.did, &collection, &rkey), "cid": cid.to_string(), "value": cbor::to_json(&value),
        }))),
        _ => Err(XrpcError::named(
            "RecordNotFound",
            format!(
                "Could not locate record: {}",
                uri(&record.did, &collection, &rkey)
            ),
        )),
    }
}

pub(super) async fn list_records(State(state): State<AppState>, params: Params) -> Out {
    let record = readable_repo(&state, &params.required::<String>("repo")?).await?;
    let collection: Nsid = params.required("collection")?;
    let limit = params.limit(50, 100)?;
    let reverse = params.flag("reverse")?;
    let cursor: Option<RecordKey> = params.parse("cursor")?;
    let low = format!("{collection}/");
    // '0' is the character after '/', so every key of the collection sorts below this.
    let high = format!("{collection}0");
    let cursor_key = cursor.map(|c| format!("{collection}/{c}"));
    let (repo, view) = head(&state, &record.did).await?;
    // Default order is newest first (rkeys descending); `reverse` gives ascending.
    let page = with_blocks(state.storage(), &view, || {
        let result = if reverse {
            repo.mst().list(
                Some(cursor_key.as_deref().unwrap_or(&low)),
                Some(&high),
                limit,
                false,
            )
        } else {
            repo.mst().list(
                Some(&low),
                Some(cursor_key.as_deref().unwrap_or(&high)),
                limit,
                true,
            )
        };
        result.map_err(RepoError::from)
    })
    .await?;
    let cids: Vec<Cid> = page.iter().map(|(_, c)| *c).collect();
    let blocks = state.storage().read_blocks(&cids).await?;
    // Records the operator took down are left out (the cursor still moves past them).
    let taken_down = Accounts(state.storage())
        .record_takedowns(&record.did)
        .await?;
    let mut records = Vec::with_capacity(page.len());
    for (key, cid) in &page {
        if taken_down.contains(key) {
            continue;
        }
        let bytes = blocks
            .get(cid)
            .ok_or_else(|| XrpcError::internal(format!("record block {cid} missing")))?;
        let value = cbor::decode(bytes).map_err(XrpcError::internal)?;
        records.push(json!({"uri": format!("at://{}/{key}", record.did), "cid": cid.to_string(), "value": cbor::to_json(&value)}));
    }
    let next = (page.len() == limit)
        .then(|| page.last().map(|(k, _)| k[low.len()..].to_owned()))
        .flatten();
    let mut out = json!({ "records": records });
    if let Some(c) = next {
        out["cursor"] = json!(c);
    }
    Ok(Json(out))
}

pub(super) async fn describe_repo(State(state): State<AppState>, params: Params) -> Out {
    let record = readable_repo(&state, &params.required::<String>("repo")?).await?;
    let (repo, view) = head(&state, &record.did).await?;
    let collections = with_blocks(state.storage(), &view, || {
        let mut found = Vec::new();
        let mut after = String::new();
        loop {
            let mut next: Option<String> = None;
            repo.mst().walk_leaves(Some(&after), false, &mut |key, _| {
                if key > after.as_str() {
                    next = Some(key.to_owned());
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
            let Some(key) = next else { return Ok(found) };
            let collection = key.split('/').next().unwrap_or_default().to_owned();
            // Skip past every key of this collection: '~' + 1 is above every rkey character.
            after = format!("{collection}/\u{7f}");
            found.push(collection);
        }
    })
    .await?;
    let handle_is_correct = record.handle.as_ref().is_some_and(|h| {
        state
            .config()
            .handle_domains
            .iter()
            .any(|d| h.as_str().ends_with(d.as_str()))
    });
    let doc = state.resolver().resolve_did(&record.did).await.ok();
    Ok(Json(json!({
        "handle": record.handle.map(|h| h.to_string()).unwrap_or_else(|| crate::syntax::INVALID_HANDLE.into()),
        "did": record.did, "didDoc": doc, "collections": collections, "handleIsCorrect": handle_is_correct,
    })))
}

pub(super) async fn upload_blob(
    State(state): State<AppState>,
    uploader: Uploader,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Out {
    // The record alone (not the keys, which a commit would need): the bulk task serves uploads
    // without key-encryption keys. A deactivated account may upload (an account moving in
    // uploads its blobs before it is activated).
    let record = state.storage().load_repo(&uploader.did).await?.ok_or(
        crate::accounts::AccountError::NotFound(uploader.did.clone()),
    )?;
    if !record.status.is_active() && record.status != crate::storage::RepoStatus::Deactivated {
        return Err(StorageError::InactiveRepo(record.did, record.status).into());
    }
    let limit = state.config().blob_upload_limit;
    let declared: Option<u64> = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if declared.is_some_and(|l| l > limit as u64) {
        return Err(XrpcError::too_large(format!(
            "Blob is larger than the {limit}-byte limit"
        )));
    }
    let declared_mime = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|m| {
            m.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|m| !writes::is_generic_mime(m));
    // Hash while reading; the CID is known the moment the body ends.
    let mut hasher = Sha256::new();
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| XrpcError::invalid(format!("Could not read the upload: {e}")))?;
        if bytes.len() + chunk.len() > limit {
            return Err(XrpcError::too_large(format!(
                "Blob is larger than the {limit}-byte limit"
            )));
        }
        hasher.update(&chunk);
        bytes.extend_from_slice(&chunk);
    }
    if declared.is_some_and(|l| l != bytes.len() as u64) {
        return Err(XrpcError::invalid(
            "Body length does not match Content-Length",
        ));
    }
    let cid = cid::cid_from_sha256(cid::RAW, hasher.finalize().into());
    let size = bytes.len() as u64;
    // What the bytes are beats what the client said, as in the reference PDS (SDKs send `*/*`).
    let mime = infer::get(&bytes)
        .map(|kind| kind.mime_type().to_owned())
        .or(declared_mime)
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    if let Some(permissions) = &uploader.permissions {
        let wanted = Permission::Blob { mime: &mime };
        if !permissions.allows(&wanted) {
            return Err(XrpcError::insufficient_scope(&wanted.scope()));
        }
    }
    state.blobs().put(&record.did, &cid, bytes.into()).await?;
    let mime = writes::record_upload(&state, &record.did, &cid, &mime, size).await?;
    writes::sweep_temporary_blobs(&state, &record.did).await?;
    Ok(Json(
        json!({"blob": {"$type": "blob", "ref": {"$link": cid.to_string()}, "mimeType": mime, "size": size}}),
    ))
}

/// Charges a write to the account's hourly and daily budgets (the reference PDS's points: a
/// create 3, an update 2, a delete 1), before anything is written.
async fn spend_write_points(
    state: &AppState,
    caller: &Caller,
    access: &Access,
    points: u64,
) -> Result<(), XrpcError> {
    state
        .limits()
        .spend(caller, Budget::RepoWrite, access.did.as_str(), points)
        .await
}
