//! The on-disk encodings of repo records, events and remote blobs (DAG-CBOR maps).

use chrono::{DateTime, Utc};

use crate::cbor::{self, Value, map};
use crate::storage::codec::{decode_event, decode_keys, encode_event, encode_keys};
use crate::storage::{
    Event, EventBody, KeySealer, RemoteBlob, RepoRecord, RepoStatus, Seq, StorageError,
};
use crate::syntax::{Did, Handle, format_datetime};
use crate::tid::Tid;

fn corrupt(what: impl Into<String>, why: &'static str) -> StorageError {
    StorageError::Corrupt {
        what: what.into(),
        why,
    }
}

fn time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v.and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The part of a repo record that changes (head, rev, status, handle). Keys are stored apart,
/// sealed, so the writer never unseals or re-seals them on a commit.
#[derive(Debug, Clone)]
pub(super) struct RepoMeta {
    pub(super) did: Did,
    pub(super) handle: Option<Handle>,
    pub(super) head: crate::cid::Cid,
    pub(super) rev: Tid,
    pub(super) status: RepoStatus,
    pub(super) created_at: DateTime<Utc>,
}

impl RepoMeta {
    pub(super) fn of(r: &RepoRecord) -> RepoMeta {
        RepoMeta {
            did: r.did.clone(),
            handle: r.handle.clone(),
            head: r.head,
            rev: r.rev,
            status: r.status,
            created_at: r.created_at,
        }
    }
}

pub(super) fn encode_meta(r: &RepoMeta) -> Vec<u8> {
    cbor::encode(&map([
        ("did", r.did.as_str().into()),
        ("handle", r.handle.as_ref().map(|h| h.to_string()).into()),
        ("head", Value::Link(r.head)),
        ("rev", r.rev.to_string().into()),
        ("status", r.status.as_str().into()),
        ("createdAt", format_datetime(r.created_at).into()),
    ]))
}

pub(super) fn decode_meta(bytes: &[u8]) -> Result<RepoMeta, StorageError> {
    let v = cbor::decode(bytes).map_err(|_| corrupt("repo record", "not DAG-CBOR"))?;
    let did = v
        .get("did")
        .and_then(Value::as_str)
        .and_then(|d| Did::parse(d).ok())
        .ok_or_else(|| corrupt("repo record", "did"))?;
    let what = || format!("repo {did}");
    let handle = match v.get("handle") {
        Some(Value::String(h)) => Some(Handle::parse(h).map_err(|_| corrupt(what(), "handle"))?),
        _ => None,
    };
    Ok(RepoMeta {
        head: *v
            .get("head")
            .and_then(Value::as_link)
            .ok_or_else(|| corrupt(what(), "head"))?,
        rev: v
            .get("rev")
            .and_then(Value::as_str)
            .and_then(|r| Tid::parse(r).ok())
            .ok_or_else(|| corrupt(what(), "rev"))?,
        status: v
            .get("status")
            .and_then(Value::as_str)
            .and_then(RepoStatus::parse)
            .ok_or_else(|| corrupt(what(), "status"))?,
        created_at: time(v.get("createdAt")).ok_or_else(|| corrupt(what(), "createdAt"))?,
        did,
        handle,
    })
}

pub(super) fn seal_keys(r: &RepoRecord, sealer: &KeySealer) -> Vec<u8> {
    sealer.seal(&encode_keys(&r.signing_key, r.rotation_key.as_ref()))
}

/// The full record from its two stored parts.
pub(super) fn join_repo(
    meta: RepoMeta,
    sealed_keys: &[u8],
    sealer: &KeySealer,
) -> Result<RepoRecord, StorageError> {
    let what = || format!("repo {}", meta.did);
    let opened = sealer
        .open(sealed_keys)
        .map_err(|_| corrupt(what(), "keys do not decrypt with the configured key"))?;
    let (signing_key, rotation_key) = decode_keys(&opened).map_err(|_| corrupt(what(), "keys"))?;
    Ok(RepoRecord {
        did: meta.did,
        handle: meta.handle,
        head: meta.head,
        rev: meta.rev,
        status: meta.status,
        signing_key,
        rotation_key,
        created_at: meta.created_at,
    })
}

pub(super) fn encode_event_record(did: &Did, time: DateTime<Utc>, body: &EventBody) -> Vec<u8> {
    cbor::encode(&map([
        ("did", did.as_str().into()),
        ("time", format_datetime(time).into()),
        ("body", Value::Bytes(encode_event(body))),
    ]))
}

pub(super) fn decode_event_record(seq: Seq, bytes: &[u8]) -> Result<Event, StorageError> {
    let what = || format!("event {seq}");
    let v = cbor::decode(bytes).map_err(|_| corrupt(what(), "not DAG-CBOR"))?;
    let did = v
        .get("did")
        .and_then(Value::as_str)
        .and_then(|d| Did::parse(d).ok())
        .ok_or_else(|| corrupt(what(), "did"))?;
    let body = v
        .get("body")
        .and_then(Value::as_bytes)
        .ok_or_else(|| corrupt(what(), "body"))?;
    Ok(Event {
        seq,
        did,
        time: time(v.get("time")).ok_or_else(|| corrupt(what(), "time"))?,
        body: decode_event(body).map_err(|e| corrupt(what(), e.0))?,
    })
}

pub(super) fn encode_remote_blob(b: &RemoteBlob) -> Vec<u8> {
    cbor::encode(&map([
        ("url", b.url.as_str().into()),
        ("cid", b.cid.into()),
        ("mimeType", b.mime_type.as_str().into()),
        ("size", Value::Integer(b.size as i64)),
        (
            "repos",
            Value::Array(b.repos.iter().map(|d| d.as_str().into()).collect()),
        ),
        ("lastFetched", b.last_fetched.map(format_datetime).into()),
        ("status", b.status.clone().into()),
    ]))
}

pub(super) fn decode_remote_blob(bytes: &[u8]) -> Result<RemoteBlob, StorageError> {
    let v = cbor::decode(bytes).map_err(|_| corrupt("remote blob", "not DAG-CBOR"))?;
    let url = v
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt("remote blob", "url"))?
        .to_owned();
    let repos = v
        .get("repos")
        .and_then(Value::as_array)
        .unwrap_or_default()
        .iter()
        .map(|d| {
            d.as_str()
                .and_then(|d| Did::parse(d).ok())
                .ok_or_else(|| corrupt(url.clone(), "repos"))
        })
        .collect::<Result<_, _>>()?;
    Ok(RemoteBlob {
        cid: v.get("cid").and_then(Value::as_link).copied(),
        mime_type: v
            .get("mimeType")
            .and_then(Value::as_str)
            .unwrap_or("application/octet-stream")
            .to_owned(),
        size: v
            .get("size")
            .and_then(Value::as_integer)
            .unwrap_or(0)
            .max(0) as u64,
        repos,
        last_fetched: time(v.get("lastFetched")),
        status: v.get("status").and_then(Value::as_str).map(str::to_owned),
        url,
    })
}
