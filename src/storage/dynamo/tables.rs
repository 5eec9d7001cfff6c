//! The DynamoDB tables: names, keys, indexes and TTL, as data.
//!
//! `create_tables` builds them from these definitions, and the infrastructure tests compare
//! the CDK and Terraform code against [`definitions`] so the two never drift.

use serde::Serialize;

/// An attribute type used in a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KeyType {
    /// String.
    S,
    /// Number.
    N,
    /// Binary.
    B,
}

/// A key attribute: name and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KeyAttr {
    /// Attribute name.
    pub name: &'static str,
    /// Attribute type.
    #[serde(rename = "type")]
    pub kind: KeyType,
}

const fn key(name: &'static str, kind: KeyType) -> KeyAttr {
    KeyAttr { name, kind }
}

/// A global secondary index (always `KEYS_ONLY`: readers fetch items from the table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexDef {
    /// Index name.
    pub name: &'static str,
    /// Partition key.
    pub partition: KeyAttr,
    /// Sort key.
    pub sort: Option<KeyAttr>,
}

/// One table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableDef {
    /// Suffix after the configured prefix (e.g. `repos`).
    pub suffix: &'static str,
    /// Partition key.
    pub partition: KeyAttr,
    /// Sort key.
    pub sort: Option<KeyAttr>,
    /// Global secondary indexes.
    pub indexes: Vec<IndexDef>,
    /// The TTL attribute, if items expire.
    pub ttl: Option<&'static str>,
}

/// The partition value every repo item carries in `list_pk`, so one index lists repos in DID
/// order.
pub(crate) const REPO_LIST_PK: &str = "repo";

/// Table suffixes.
pub(crate) const REPOS: &str = "repos";
pub(crate) const HANDLES: &str = "handles";
pub(crate) const BLOCKS: &str = "blocks";
pub(crate) const EVENTS: &str = "events";
pub(crate) const COUNTERS: &str = "counters";
pub(crate) const KV: &str = "kv";
/// The KV table's TTL attribute: counters (`kv_add`) and expiring values carry it.
pub(crate) const KV_TTL: &str = "expires_at";
/// Index names.
pub(crate) const REPOS_BY_DID: &str = "by-did";
pub(crate) const EVENTS_BY_DID: &str = "by-did";

/// Every table the PDS uses. All are on-demand; point-in-time recovery and deletion protection
/// are set by the infrastructure code.
pub fn definitions() -> Vec<TableDef> {
    use KeyType::{B, N, S};
    vec![
        TableDef {
            suffix: REPOS,
            partition: key("did", S),
            sort: None,
            indexes: vec![IndexDef {
                name: REPOS_BY_DID,
                partition: key("list_pk", S),
                sort: Some(key("did", S)),
            }],
            ttl: None,
        },
        TableDef {
            suffix: HANDLES,
            partition: key("handle", S),
            sort: None,
            indexes: vec![],
            ttl: None,
        },
        TableDef {
            suffix: BLOCKS,
            partition: key("cid", B),
            sort: Some(key("part", N)),
            indexes: vec![],
            ttl: None,
        },
        TableDef {
            suffix: EVENTS,
            partition: key("seq", N),
            sort: None,
            indexes: vec![IndexDef {
                name: EVENTS_BY_DID,
                partition: key("did", S),
                sort: Some(key("seq", N)),
            }],
            ttl: Some("expires_at"),
        },
        TableDef {
            suffix: COUNTERS,
            partition: key("name", S),
            sort: None,
            indexes: vec![],
            ttl: None,
        },
        TableDef {
            suffix: KV,
            partition: key("ns", S),
            sort: Some(key("item_key", S)),
            indexes: vec![],
            ttl: Some(KV_TTL),
        },
    ]
}
