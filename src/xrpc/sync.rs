//! `com.atproto.sync.*` reads: repo exports, proofs, blocks, repo and blob listings.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value as Json_, json};

use super::extract::Params;
use super::state::ExportState;
use super::writes::readable_repo;
use super::{AppState, XrpcError};
use crate::block::{BlockMap, BlockSource};
use crate::car::{car_bytes, encode_block_frame, encode_header};
use crate::cid::{Cid, parse_cid};
use crate::mst::ExportBlock;
use crate::repo::RepoError;
use crate::storage::{
    Accounts, EventBody, EventLog, ExportItem, ExportWalk, PackedBlocks, RepoRecord, Storage,
    StorageError, fetch_tree, load_repo_state, with_blocks,
};
use crate::syntax::{Did, Nsid, RecordKey};
use crate::tid::Tid;

type Out = Result<Json<Json_>, XrpcError>;

const CAR_TYPE: &str = "application/vnd.ipld.car";

fn car_response(body: impl Into<Body>) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CAR_TYPE))],
        body.into(),
    )
        .into_response()
}

/// How many records an export reads from storage at a time (the walk's batch).
const EXPORT_BATCH: usize = 2048;
/// How many of those reads an export has in flight.
const READS_IN_FLIGHT: usize = 2;

/// The record of a repo to export: it must exist and be active.
async fn exportable_repo(state: &ExportState, did: &Did) -> Result<RepoRecord, XrpcError> {
    let record =
        state.storage.load_repo(did).await?.ok_or_else(|| {
            XrpcError::named("RepoNotFound", format!("Could not find repo: {did}"))
        })?;
    if !record.status.is_active() {
        return Err(XrpcError::inactive_repo(did, record.status));
    }
    Ok(record)
}

pub(super) async fn get_repo(
    State(state): State<ExportState>,
    params: Params,
) -> Result<Response, XrpcError> {
    let did: Did = params.required("did")?;
    let record = exportable_repo(&state, &did).await?;
    let since: Option<Tid> = params.parse("since")?;
    let view = state.cache.view();
    let (_, repo) = load_repo_state(&*state.storage, &view, &record.did).await?;
    if let Some(since) = since {
        if let Some(blocks) = blocks_since(&*state.storage, &record.did, since).await? {
            let mut all = state.storage.read_blocks(&blocks).await?;
            all.insert(repo.head(), repo.commit().encode());
            let head = repo.head();
            let commit = all.remove(&head).unwrap_or_default();
            let body = car_bytes(
                &[head],
                std::iter::once((&head, commit.as_slice())).chain(all.iter()),
            );
            return Ok(car_response(body));
        }
    }
    // The first batch is read before answering, so a repo whose tree cannot be read gets an
    // error status rather than a cut-off CAR.
    let mut walk = ExportWalk::new(repo.commit().data);
    let first = walk
        .next_batch(&*state.storage, &state.cache, EXPORT_BATCH)
        .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let head = repo.head();
    let commit = repo.commit().encode();
    tokio::spawn(async move {
        let mut frame = encode_header(&[head]);
        encode_block_frame(&mut frame, &head, &commit);
        if let Err(error) = send_export(&state, &did, walk, first, frame, &tx).await {
            tracing::error!(%error, "getRepo export failed");
            // The client sees the CAR cut off.
            let _ = tx.send(Err(std::io::Error::other(error.to_string()))).await;
        }
    });
    Ok(car_response(Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    )))
}

/// Sends `header` (the CAR header and commit), then the walk's batches from `first` on,
/// framed; stops early, without error, when the client has gone.
async fn send_export(
    state: &ExportState,
    did: &Did,
    mut walk: ExportWalk,
    first: Vec<ExportItem>,
    header: Vec<u8>,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if tx.send(Ok(header.into())).await.is_err() {
        return Ok(());
    }
    // Up to two batches' records are being read at once (each on its own blocking thread), so
    // the next batch's reads overlap this one's framing and sending. `next` is None once the
    // walk is done.
    let mut reading = std::collections::VecDeque::new();
    let mut next = Some(first);
    loop {
        while reading.len() < READS_IN_FLIGHT {
            let Some(chunk) = next.take() else { break };
            reading.push_back(tokio::spawn(read_records(
                state.storage.clone(),
                did.clone(),
                chunk,
            )));
            let more = walk
                .next_batch(&*state.storage, &state.cache, EXPORT_BATCH)
                .await?;
            next = (!more.is_empty()).then_some(more);
        }
        let Some(read) = reading.pop_front() else {
            return Ok(());
        };
        let (chunk, records) = read.await??;
        if tx
            .send(Ok(frame_batch(&chunk, &records).into()))
            .await
            .is_err()
        {
            return Ok(());
        }
    }
}

/// The CAR frames of an export batch: its nodes' bytes and, in their places, `records`.
fn frame_batch(chunk: &[ExportItem], records: &PackedBlocks) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.byte_len() + 64 * chunk.len());
    let mut next_record = 0;
    for item in chunk {
        match item {
            ExportItem::Node(cid, bytes) => encode_block_frame(&mut out, cid, bytes),
            ExportItem::Record(_, cid) => {
                let bytes = records.get(next_record).unwrap_or_default();
                next_record += 1;
                encode_block_frame(&mut out, cid, bytes);
            }
        }
    }
    out
}

/// Reads the records of an export batch. The paths go to the read; framing needs only the CIDs.
async fn read_records(
    storage: Arc<dyn Storage>,
    did: Did,
    mut chunk: Vec<ExportItem>,
) -> Result<(Vec<ExportItem>, PackedBlocks), StorageError> {
    let records: Vec<(String, Cid)> = chunk
        .iter_mut()
        .filter_map(|item| match item {
            ExportItem::Record(path, cid) => Some((std::mem::take(path), *cid)),
            ExportItem::Node(..) => None,
        })
        .collect();
    let read = storage.read_repo_records(&did, &records).await?;
    Ok((chunk, read))
}

/// The blocks written by `did`'s commits after rev `since`, if the event log still covers that
/// whole span (else None, and the caller sends the whole repo).
async fn blocks_since(
    log: &dyn EventLog,
    did: &Did,
    since: Tid,
) -> Result<Option<Vec<Cid>>, XrpcError> {
    let mut after = None;
    let mut blocks = Vec::new();
    let mut covered = false;
    loop {
        let page = log.read_repo_events(did, after, 500).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        for event in page {
            if let EventBody::Commit(c) = event.body {
                if c.rev <= since {
                    covered = true;
                    continue;
                }
                if c.since.is_none_or(|s| s <= since) {
                    covered = true;
                }
                blocks.extend(c.blocks);
            }
        }
    }
    Ok(covered.then_some(blocks))
}

pub(super) async fn get_latest_commit(State(state): State<AppState>, params: Params) -> Out {
    let record = readable_repo(&state, params.required::<Did>("did")?.as_str()).await?;
    Ok(Json(
        json!({"cid": record.head.to_string(), "rev": record.rev.to_string()}),
    ))
}

pub(super) async fn get_head(State(state): State<AppState>, params: Params) -> Out {
    let record = readable_repo(&state, params.required::<Did>("did")?.as_str()).await?;
    Ok(Json(json!({"root": record.head.to_string()})))
}

pub(super) async fn get_record(
    State(state): State<AppState>,
    params: Params,
) -> Result<Response, XrpcError> {
    let record = readable_repo(&state, params.required::<Did>("did")?.as_str()).await?;
    let collection: Nsid = params.required("collection")?;
    let rkey: RecordKey = params.required("rkey")?;
    let view = state.blocks();
    let (_, repo) = load_repo_state(state.storage(), &view, &record.did).await?;
    let path = format!("{collection}/{rkey}");
    // The path's nodes prove presence (with the record) or absence (without it).
    let cids = with_blocks(state.storage(), &view, || {
        Ok(repo.mst().cids_for_path(&path)?)
    })
    .await?;
    let mut blocks = state.storage().read_blocks(&cids).await?;
    for cid in &cids {
        if !blocks.contains(cid) {
            if let Some(b) = view.read_block(cid) {
                blocks.insert(*cid, b);
            }
        }
    }
    let head = repo.head();
    let commit = repo.commit().encode();
    let body = car_bytes(
        &[head],
        std::iter::once((&head, commit.as_slice())).chain(blocks.iter()),
    );
    Ok(car_response(body))
}

pub(super) async fn get_blocks(
    State(state): State<AppState>,
    params: Params,
) -> Result<Response, XrpcError> {
    let record = readable_repo(&state, params.required::<Did>("did")?.as_str()).await?;
    let cids: Vec<Cid> = params
        .all("cids")
        .into_iter()
        .map(|c| parse_cid(c).map_err(|_| XrpcError::invalid(format!("Invalid cid: {c:?}"))))
        .collect::<Result<_, _>>()?;
    if cids.len() > 1000 {
        return Err(XrpcError::invalid("At most 1000 cids per request"));
    }
    // The block store is shared by every repo, so a CID alone could name another account's
    // record (a taken-down one's, say): only the head commit, its tree and its records are
    // this repo's to give.
    let view = state.blocks();
    let (_, mut repo) = load_repo_state(state.storage(), &view, &record.did).await?;
    fetch_tree(state.storage(), &view, &mut repo).await?;
    let mut ours: HashSet<Cid> = HashSet::from([record.head]);
    with_blocks(state.storage(), &view, || {
        repo.mst()
            .walk_export(&mut |block| {
                ours.insert(match block {
                    ExportBlock::Node { cid, .. } | ExportBlock::Record { cid, .. } => cid,
                });
                ControlFlow::Continue(())
            })
            .map_err(RepoError::from)
    })
    .await?;
    let found: BlockMap = state.storage().read_blocks(&cids).await?;
    if let Some(missing) = cids
        .iter()
        .find(|c| !found.contains(c) || !ours.contains(c))
    {
        return Err(XrpcError::named(
            "BlockNotFound",
            format!("Could not find block: {missing}"),
        ));
    }
    let body = car_bytes(
        &[record.head],
        cids.iter().filter_map(|c| found.get(c).map(|b| (c, b))),
    );
    Ok(car_response(body))
}

pub(super) async fn list_repos(State(state): State<AppState>, params: Params) -> Out {
    let limit = params.limit(500, 1000)?;
    let cursor: Option<Did> = params.parse("cursor")?;
    let repos = state.storage().list_repos(cursor.as_ref(), limit).await?;
    let next = (repos.len() == limit)
        .then(|| repos.last().map(|r| r.did.to_string()))
        .flatten();
    let items: Vec<Json_> = repos
        .iter()
        .map(|r| {
            let mut item = json!({"did": r.did, "head": r.head.to_string(), "rev": r.rev.to_string(), "active": r.status.is_active()});
            if !r.status.is_active() {
                item["status"] = json!(r.status.as_str());
            }
            item
        })
        .collect();
    let mut out = json!({ "repos": items });
    if let Some(c) = next {
        out["cursor"] = json!(c);
    }
    Ok(Json(out))
}

pub(super) async fn get_repo_status(State(state): State<AppState>, params: Params) -> Out {
    let did: Did = params.required("did")?;
    let record =
        state.storage().load_repo(&did).await?.ok_or_else(|| {
            XrpcError::named("RepoNotFound", format!("Could not find repo: {did}"))
        })?;
    let mut out = json!({"did": did, "active": record.status.is_active()});
    if record.status.is_active() {
        out["rev"] = json!(record.rev.to_string());
    } else {
        out["status"] = json!(record.status.as_str());
    }
    Ok(Json(out))
}

pub(super) async fn get_blob(
    State(state): State<AppState>,
    params: Params,
) -> Result<Response, XrpcError> {
    let record = readable_repo(&state, params.required::<Did>("did")?.as_str()).await?;
    let cid_text: String = params.required("cid")?;
    let cid = parse_cid(&cid_text)
        .map_err(|_| XrpcError::invalid(format!("Invalid cid: {cid_text:?}")))?;
    let not_found = || XrpcError::named("BlobNotFound", format!("Blob not found: {cid}"));
    let blob = Accounts(state.storage())
        .get_blob(&record.did, &cid.to_string())
        .await?
        .ok_or_else(not_found)?;
    // Uploaded but not yet referenced blobs are temporary and not served, nor taken-down ones.
    if blob.refs.is_empty() || blob.takedown.is_some() {
        return Err(not_found());
    }
    let bytes = state
        .blobs()
        .get(&record.did, &cid)
        .await?
        .ok_or_else(not_found)?;
    let mime = HeaderValue::from_str(&blob.mime_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, mime),
            (header::CONTENT_LENGTH, HeaderValue::from(bytes.len())),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        bytes,
    )
        .into_response())
}

pub(super) async fn list_blobs(State(state): State<AppState>, params: Params) -> Out {
    let record = readable_repo(&state, params.required::<Did>("did")?.as_str()).await?;
    let limit = params.limit(500, 1000)?;
    let since: Option<Tid> = params.parse("since")?;
    let mut cursor: Option<String> = params.get("cursor").map(str::to_owned);
    let mut cids = Vec::new();
    let accounts = Accounts(state.storage());
    loop {
        let page = accounts
            .list_blobs(&record.did, cursor.as_deref(), limit)
            .await?;
        let Some((last, _)) = page.last() else { break };
        cursor = Some(last.clone());
        for (cid, blob) in page {
            let recent = since.is_none_or(|s| blob.created_at > s.to_datetime());
            if !blob.refs.is_empty() && recent {
                cids.push(cid);
            }
        }
        if cids.len() >= limit {
            break;
        }
    }
    cids.truncate(limit);
    let mut out = json!({ "cids": cids });
    if cids.len() == limit {
        out["cursor"] = json!(cids.last());
    }
    Ok(Json(out))
}
