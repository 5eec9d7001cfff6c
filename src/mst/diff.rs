//! The difference between two trees: records created, updated and deleted, and nodes created
//! and removed.
//!
//! Identical subtrees have identical CIDs and sit at the same layer in both trees (a layer is a
//! function of the keys), so the diff walks both trees layer by layer from the top, drops every
//! node whose CID appears on both sides at that layer without loading it, and expands the rest.
//! Records found only under expanded nodes are then matched by key.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::node::{Link, Node};
use super::{Mst, MstError};
use crate::block::BlockMap;
use crate::cid::Cid;

/// One record that differs between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordChange {
    /// The record's path.
    pub key: String,
    /// Its CID in the old tree (None if created).
    pub prev: Option<Cid>,
    /// Its CID in the new tree (None if deleted).
    pub cid: Option<Cid>,
}

/// What changed from one tree to another.
#[derive(Debug, Clone, Default)]
pub struct MstDiff {
    /// Changed records in key order.
    pub records: Vec<RecordChange>,
    /// Nodes of the new tree that the old one lacks, with their bytes.
    pub new_nodes: BlockMap,
    /// Nodes of the old tree that the new one lacks.
    pub removed_nodes: Vec<Cid>,
}

impl MstDiff {
    /// The created records.
    pub fn creates(&self) -> impl Iterator<Item = &RecordChange> {
        self.records.iter().filter(|r| r.prev.is_none())
    }

    /// The updated records.
    pub fn updates(&self) -> impl Iterator<Item = &RecordChange> {
        self.records
            .iter()
            .filter(|r| r.prev.is_some() && r.cid.is_some())
    }

    /// The deleted records.
    pub fn deletes(&self) -> impl Iterator<Item = &RecordChange> {
        self.records.iter().filter(|r| r.cid.is_none())
    }
}

/// The nodes of one side waiting at each layer.
type Frontier = BTreeMap<u32, HashMap<Cid, Link>>;

/// Computes what changed from `old` to `new`.
pub fn diff(old: &Mst, new: &Mst) -> Result<MstDiff, MstError> {
    let mut out = MstDiff::default();
    if old.root_cid() == new.root_cid() {
        return Ok(out);
    }
    let old_root = old.root_node()?;
    let new_root = new.root_node()?;
    let mut old_frontier = Frontier::new();
    let mut new_frontier = Frontier::new();
    old_frontier
        .entry(old_root.layer)
        .or_default()
        .insert(old_root.cid(), Link::Loaded(old_root.clone()));
    new_frontier
        .entry(new_root.layer)
        .or_default()
        .insert(new_root.cid(), Link::Loaded(new_root.clone()));
    let mut old_leaves = BTreeMap::new();
    let mut new_leaves = BTreeMap::new();
    let top = old_root.layer.max(new_root.layer);
    for layer in (0..=top).rev() {
        let mut olds = old_frontier.remove(&layer).unwrap_or_default();
        let mut news = new_frontier.remove(&layer).unwrap_or_default();
        olds.retain(|cid, _| news.remove(cid).is_none());
        for (cid, link) in olds {
            let node = old.resolve(&link, Some(layer))?;
            out.removed_nodes.push(cid);
            expand(&node, &mut old_frontier, &mut old_leaves);
        }
        for (cid, link) in news {
            let node = new.resolve(&link, Some(layer))?;
            out.new_nodes.insert(cid, node.encode());
            expand(&node, &mut new_frontier, &mut new_leaves);
        }
    }
    let mut keys: Vec<&String> = old_leaves.keys().chain(new_leaves.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let prev = old_leaves.get(key).copied();
        let cid = new_leaves.get(key).copied();
        if prev != cid {
            out.records.push(RecordChange {
                key: key.clone(),
                prev,
                cid,
            });
        }
    }
    Ok(out)
}

fn expand(node: &Arc<Node>, frontier: &mut Frontier, leaves: &mut BTreeMap<String, Cid>) {
    for entry in &node.entries {
        leaves.insert(entry.key.clone(), entry.value);
    }
    if let Some(child_layer) = node.layer.checked_sub(1) {
        let children = std::iter::once(&node.left).chain(node.entries.iter().map(|e| &e.right));
        for link in children.flatten() {
            frontier
                .entry(child_layer)
                .or_default()
                .insert(link.cid(), link.clone());
        }
    }
}
