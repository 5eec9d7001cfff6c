//! Writes (what a client asks for) and ops (what a commit records).

use std::collections::BTreeSet;

use crate::cbor::Value;
use crate::cid::Cid;
use crate::syntax::{Nsid, RecordKey};

/// Most writes in one commit (sync spec, lexicon, reference PDS).
pub const MAX_WRITES: usize = 200;
/// Largest record block, in bytes (sync spec: "one million bytes").
pub const MAX_RECORD_BYTES: usize = 1_000_000;
/// Largest total of a commit's firehose blocks, in bytes (the relay's limit).
pub const MAX_COMMIT_BLOCKS_BYTES: usize = 2_000_000;

/// The three kinds of write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteAction {
    /// Add a record at a new path.
    Create,
    /// Replace the record at an existing path.
    Update,
    /// Remove the record at an existing path.
    Delete,
}

impl WriteAction {
    /// The firehose name: `create`, `update` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteAction::Create => "create",
            WriteAction::Update => "update",
            WriteAction::Delete => "delete",
        }
    }

    /// Parses a firehose action name.
    pub fn parse(s: &str) -> Option<WriteAction> {
        match s {
            "create" => Some(WriteAction::Create),
            "update" => Some(WriteAction::Update),
            "delete" => Some(WriteAction::Delete),
            _ => None,
        }
    }
}

/// One requested change to a repo.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// What to do.
    pub action: WriteAction,
    /// The record's collection.
    pub collection: Nsid,
    /// The record's key.
    pub rkey: RecordKey,
    /// The record, for creates and updates.
    pub record: Option<Value>,
}

impl Write {
    /// A create.
    pub fn create(collection: Nsid, rkey: RecordKey, record: Value) -> Write {
        Write {
            action: WriteAction::Create,
            collection,
            rkey,
            record: Some(record),
        }
    }

    /// An update.
    pub fn update(collection: Nsid, rkey: RecordKey, record: Value) -> Write {
        Write {
            action: WriteAction::Update,
            collection,
            rkey,
            record: Some(record),
        }
    }

    /// A delete.
    pub fn delete(collection: Nsid, rkey: RecordKey) -> Write {
        Write {
            action: WriteAction::Delete,
            collection,
            rkey,
            record: None,
        }
    }

    /// The MST key: `collection/rkey`.
    pub fn path(&self) -> String {
        format!("{}/{}", self.collection, self.rkey)
    }
}

/// One change a commit made, as the firehose reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoOp {
    /// What happened.
    pub action: WriteAction,
    /// `collection/rkey`.
    pub path: String,
    /// The new record CID (None for deletes).
    pub cid: Option<Cid>,
    /// The previous record CID (None for creates).
    pub prev: Option<Cid>,
}

/// The blob CIDs a record references (`{"$type": "blob", "ref": …}` anywhere in it).
pub fn blob_refs(value: &Value) -> BTreeSet<Cid> {
    fn walk(v: &Value, out: &mut BTreeSet<Cid>) {
        match v {
            Value::Map(m) => {
                if m.get("$type").and_then(Value::as_str) == Some("blob") {
                    if let Some(c) = m.get("ref").and_then(Value::as_link) {
                        out.insert(*c);
                    }
                }
                m.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(value, &mut out);
    out
}
