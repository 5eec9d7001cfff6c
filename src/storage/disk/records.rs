//! The on-disk encodings of repo records, sealed keys and events (DAG-CBOR maps).

use chrono::{DateTime, Utc};

use crate::cbor::{self, Value, map};
use crate::storage::codec::{decode_event, decode_keys, encode_keys};
use crate::storage::{Event, KeySealer, RepoKeys, RepoRecord, RepoStatus, Seq, StorageError};
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

pub(super) fn encode_meta(r: &RepoRecord) -> Vec<u8> {
    cbor::encode(&map([
        ("did", r.did.as_str().into()),
        ("handle", r.handle.as_ref().map(|h| h.to_string()).into()),
        ("head", Value::Link(r.head)),
        ("rev", r.rev.to_string().into()),
        ("status", r.status.as_str().into()),
        ("createdAt", format_datetime(r.created_at).into()),
    ]))
}

pub(super) fn decode_meta(bytes: &[u8]) -> Result<RepoRecord, StorageError> {
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
    Ok(RepoRecord {
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

pub(super) fn seal_keys(keys: &RepoKeys, sealer: &KeySealer) -> Vec<u8> {
    sealer.seal(&encode_keys(&keys.signing, keys.rotation.as_ref()))
}

/// Opens the sealed keys of `did`.
pub(super) fn open_keys(
    did: &Did,
    sealed_keys: &[u8],
    sealer: &KeySealer,
) -> Result<RepoKeys, StorageError> {
    let what = || format!("repo {did}");
    let opened = sealer
        .open(sealed_keys)
        .map_err(|_| corrupt(what(), "keys do not decrypt with the configured key"))?;
    let (signing, rotation) = decode_keys(&opened).map_err(|_| corrupt(what(), "keys"))?;
    Ok(RepoKeys { signing, rotation })
}

/// An event as stored: its DID and time around its body, already encoded.
pub(super) fn encode_event_record(did: &Did, time: DateTime<Utc>, body: Vec<u8>) -> Vec<u8> {
    cbor::encode(&map([
        ("did", did.as_str().into()),
        ("time", format_datetime(time).into()),
        ("body", Value::Bytes(body)),
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
