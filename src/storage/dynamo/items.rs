//! Items: our records as DynamoDB attribute maps and back.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::tables::REPO_LIST_PK;
use crate::cid::{Cid, cid_from_bytes};
use crate::storage::codec::{decode_event, decode_keys, encode_event, encode_keys};
use crate::storage::{
    Event, EventBody, KeySealer, RepoKeys, RepoRecord, RepoStatus, Seq, StorageError,
};
use crate::syntax::{Did, Handle, format_datetime};
use crate::tid::Tid;

/// One item's attributes.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// Largest block part stored in one item; DynamoDB items are capped at 400 KB including keys.
pub(crate) const BLOCK_PART_BYTES: usize = 350_000;

fn corrupt(what: impl Into<String>, why: &'static str) -> StorageError {
    StorageError::Corrupt {
        what: what.into(),
        why,
    }
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn b(v: impl Into<Vec<u8>>) -> AttributeValue {
    AttributeValue::B(Blob::new(v))
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub(crate) fn get_n(item: &Item, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

pub(crate) fn get_b<'a>(item: &'a Item, name: &str) -> Option<&'a [u8]> {
    item.get(name).and_then(|v| v.as_b().ok()).map(Blob::as_ref)
}

/// The approximate stored size of an item (names plus values), for capacity accounting.
pub(crate) fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
                    AttributeValue::B(b) => b.as_ref().len(),
                    AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
                    _ => 1,
                }
        })
        .sum()
}

pub(crate) fn cid_key(cid: &Cid) -> AttributeValue {
    b(cid.to_bytes())
}

pub(crate) fn repo_key(did: &Did) -> Item {
    HashMap::from([("did".to_owned(), s(did.as_str()))])
}

/// The attributes of a repo item other than its sealed keys: what readers of heads fetch
/// (`status` is a reserved word, hence the name placeholder `#st`).
pub(crate) const REPO_RECORD_PROJECTION: &str = "did, handle, head, rev, #st, created_at";

/// A repo item: the record and the account's sealed keys.
pub(crate) fn repo_item(record: &RepoRecord, keys: &RepoKeys, sealer: &KeySealer) -> Item {
    let mut item = HashMap::from([
        ("did".to_owned(), s(record.did.as_str())),
        ("list_pk".to_owned(), s(REPO_LIST_PK)),
        ("head".to_owned(), cid_key(&record.head)),
        ("rev".to_owned(), s(record.rev.to_string())),
        ("status".to_owned(), s(record.status.as_str())),
        (
            "keys".to_owned(),
            b(sealer.seal(&encode_keys(&keys.signing, keys.rotation.as_ref()))),
        ),
        (
            "created_at".to_owned(),
            s(format_datetime(record.created_at)),
        ),
    ]);
    if let Some(h) = &record.handle {
        item.insert("handle".to_owned(), s(h.as_str()));
    }
    item
}

fn item_did(item: &Item) -> Result<Did, StorageError> {
    let text = get_s(item, "did").unwrap_or_default();
    Did::parse(text).map_err(|_| corrupt(format!("repo {text}"), "did"))
}

/// The record in a repo item (fetched with [`REPO_RECORD_PROJECTION`] or whole).
pub(crate) fn repo_from_item(item: &Item) -> Result<RepoRecord, StorageError> {
    let did = item_did(item)?;
    let what = || format!("repo {did}");
    let head = get_b(item, "head")
        .and_then(|h| cid_from_bytes(h).ok())
        .ok_or_else(|| corrupt(what(), "head"))?;
    let rev = get_s(item, "rev")
        .and_then(|r| Tid::parse(r).ok())
        .ok_or_else(|| corrupt(what(), "rev"))?;
    let status = get_s(item, "status")
        .and_then(RepoStatus::parse)
        .ok_or_else(|| corrupt(what(), "status"))?;
    let handle = match get_s(item, "handle") {
        Some(h) => Some(Handle::parse(h).map_err(|_| corrupt(what(), "handle"))?),
        None => None,
    };
    let created_at = get_s(item, "created_at")
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| corrupt(what(), "created_at"))?;
    Ok(RepoRecord {
        did,
        handle,
        head,
        rev,
        status,
        created_at,
    })
}

/// The account keys in a whole repo item, unsealed.
pub(crate) fn keys_from_item(item: &Item, sealer: &KeySealer) -> Result<RepoKeys, StorageError> {
    let did = item_did(item)?;
    let what = || format!("repo {did}");
    let sealed = get_b(item, "keys").ok_or_else(|| corrupt(what(), "keys"))?;
    let opened = sealer.open(sealed).map_err(|_| {
        corrupt(
            what(),
            "keys do not decrypt with the configured key-encryption keys",
        )
    })?;
    let (signing, rotation) = decode_keys(&opened).map_err(|_| corrupt(what(), "keys"))?;
    Ok(RepoKeys { signing, rotation })
}

pub(crate) fn event_key(seq: Seq) -> Item {
    HashMap::from([("seq".to_owned(), n(seq))])
}

pub(crate) fn event_item(
    seq: Seq,
    did: &Did,
    time: DateTime<Utc>,
    body: &EventBody,
    expires_at: i64,
) -> Item {
    HashMap::from([
        ("seq".to_owned(), n(seq)),
        ("did".to_owned(), s(did.as_str())),
        ("time".to_owned(), s(format_datetime(time))),
        ("body".to_owned(), b(encode_event(body))),
        ("expires_at".to_owned(), n(expires_at)),
    ])
}

pub(crate) fn skipped_item(seq: Seq, expires_at: i64) -> Item {
    HashMap::from([
        ("seq".to_owned(), n(seq)),
        ("skipped".to_owned(), AttributeValue::Bool(true)),
        ("expires_at".to_owned(), n(expires_at)),
    ])
}

/// The event in an events-table item, or None for a skipped marker.
pub(crate) fn event_from_item(item: &Item) -> Result<Option<Event>, StorageError> {
    let seq = get_n(item, "seq").ok_or_else(|| corrupt("event", "seq"))?;
    if item.contains_key("skipped") {
        return Ok(None);
    }
    let what = || format!("event {seq}");
    let did = get_s(item, "did")
        .and_then(|d| Did::parse(d).ok())
        .ok_or_else(|| corrupt(what(), "did"))?;
    let time = get_s(item, "time")
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| corrupt(what(), "time"))?;
    let body = get_b(item, "body").ok_or_else(|| corrupt(what(), "body"))?;
    let body = decode_event(body).map_err(|e| corrupt(what(), e.0))?;
    Ok(Some(Event {
        seq,
        did,
        time,
        body,
    }))
}

/// A block as one or more items: part 0 carries the part count.
pub(crate) fn block_items(cid: &Cid, bytes: &[u8]) -> Vec<Item> {
    let chunks: Vec<&[u8]> = if bytes.is_empty() {
        vec![bytes]
    } else {
        bytes.chunks(BLOCK_PART_BYTES).collect()
    };
    let parts = chunks.len();
    // Every part carries the write time, so the collector's conditional deletes spare each part
    // a racing commit rewrote.
    let written = Utc::now().timestamp_millis();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut item = HashMap::from([
                ("cid".to_owned(), cid_key(cid)),
                ("part".to_owned(), n(i)),
                ("data".to_owned(), b(chunk.to_vec())),
                ("written".to_owned(), n(written)),
            ]);
            if i == 0 {
                item.insert("parts".to_owned(), n(parts));
            }
            item
        })
        .collect()
}

pub(crate) fn block_key(cid: &Cid, part: usize) -> Item {
    HashMap::from([
        ("cid".to_owned(), cid_key(cid)),
        ("part".to_owned(), n(part)),
    ])
}
