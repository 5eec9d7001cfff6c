//! Reading a tree in order: ranges of leaves, all leaves, and every node for export.

use std::ops::ControlFlow;
use std::sync::Arc;

use super::node::Node;
use super::{Mst, MstError};
use crate::cid::Cid;

/// One block of a repo export, in [`Mst::walk_export`] order.
#[derive(Debug, Clone)]
pub enum ExportBlock {
    /// An MST node and its bytes.
    Node {
        /// The node's CID.
        cid: Cid,
        /// The node's bytes.
        bytes: Vec<u8>,
    },
    /// A record, known here only by CID (records live in the block source).
    Record {
        /// The record's path.
        key: String,
        /// The record's CID.
        cid: Cid,
    },
}

/// One node met by [`Mst::walk_nodes`]: its CID, its canonical bytes and its records' CIDs in
/// key order.
#[derive(Debug, Clone)]
pub struct NodeVisit {
    /// The node's CID.
    pub cid: Cid,
    /// The node's DAG-CBOR bytes.
    pub bytes: Vec<u8>,
    /// The layer of the node.
    pub layer: u32,
    /// `(key, record CID)` of the node's entries, in order.
    pub leaves: Vec<(String, Cid)>,
}

impl Mst {
    /// Visits leaves in key order (or reverse order) starting at `start` (inclusive) until `visit`
    /// breaks. With `reverse`, `start` is an inclusive upper bound.
    pub fn walk_leaves(
        &self,
        start: Option<&str>,
        reverse: bool,
        visit: &mut dyn FnMut(&str, Cid) -> ControlFlow<()>,
    ) -> Result<(), MstError> {
        let root = self.root_node()?;
        self.walk_node(&root, start, reverse, visit).map(|_| ())
    }

    fn walk_node(
        &self,
        node: &Arc<Node>,
        start: Option<&str>,
        reverse: bool,
        visit: &mut dyn FnMut(&str, Cid) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, MstError> {
        let child_layer = node.layer.checked_sub(1);
        let n = node.entries.len();
        if !reverse {
            // First entry ≥ start; the subtree before it may hold keys ≥ start too.
            let first = start.map_or(0, |s| node.entries.partition_point(|e| e.key.as_str() < s));
            for i in first..=n {
                if let Some(link) = node.slot(i) {
                    let child = self.resolve(link, child_layer)?;
                    let bound = if i == first { start } else { None };
                    if self.walk_node(&child, bound, reverse, visit)?.is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
                if i < n && visit(&node.entries[i].key, node.entries[i].value).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
        } else {
            // Last entry ≤ start; the subtree after it may hold keys ≤ start too.
            let end = start.map_or(n, |s| node.entries.partition_point(|e| e.key.as_str() <= s));
            for i in (0..=end).rev() {
                if i < end && visit(&node.entries[i].key, node.entries[i].value).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
                if let Some(link) = node.slot(i) {
                    let child = self.resolve(link, child_layer)?;
                    let bound = if i == end { start } else { None };
                    if self.walk_node(&child, bound, reverse, visit)?.is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Leaves strictly between `after` and `before` (both exclusive, either optional), in order
    /// (descending with `reverse`), at most `limit`.
    pub fn list(
        &self,
        after: Option<&str>,
        before: Option<&str>,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<(String, Cid)>, MstError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let (start, stop) = if reverse {
            (before, after)
        } else {
            (after, before)
        };
        self.walk_leaves(start, reverse, &mut |key, cid| {
            if Some(key) == start {
                return ControlFlow::Continue(());
            }
            let past_stop = stop.is_some_and(|s| if reverse { key <= s } else { key >= s });
            if past_stop {
                return ControlFlow::Break(());
            }
            out.push((key.to_owned(), cid));
            if out.len() >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(out)
    }

    /// Leaves whose key starts with `prefix`, in order.
    pub fn list_with_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, Cid)>, MstError> {
        let mut out = Vec::new();
        self.walk_leaves(Some(prefix), false, &mut |key, cid| {
            if !key.starts_with(prefix) || out.len() >= limit {
                return ControlFlow::Break(());
            }
            out.push((key.to_owned(), cid));
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// Every leaf in key order.
    pub fn leaves(&self) -> Result<Vec<(String, Cid)>, MstError> {
        let mut out = Vec::new();
        self.walk_leaves(None, false, &mut |key, cid| {
            out.push((key.to_owned(), cid));
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// Number of leaves.
    pub fn leaf_count(&self) -> Result<usize, MstError> {
        let mut n = 0;
        self.walk_leaves(None, false, &mut |_, _| {
            n += 1;
            ControlFlow::Continue(())
        })?;
        Ok(n)
    }

    /// The CIDs of nodes this tree references that its block source lacks, found by walking
    /// every node it can load. Empty means the whole tree is available. Storage-backed callers
    /// fetch these in one batch and ask again, one round per tree level.
    pub fn missing_blocks(&self) -> Result<Vec<Cid>, MstError> {
        let mut missing = Vec::new();
        let root = match self.root_node() {
            Ok(root) => root,
            Err(MstError::MissingBlock(cid)) => return Ok(vec![cid]),
            Err(e) => return Err(e),
        };
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            let child_layer = node.layer.checked_sub(1);
            for i in 0..=node.entries.len() {
                let Some(link) = node.slot(i) else { continue };
                match self.resolve(link, child_layer) {
                    Ok(child) => stack.push(child),
                    Err(MstError::MissingBlock(cid)) => missing.push(cid),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(missing)
    }

    /// The nodes of this tree that `stored` lacks, with their bytes, not descending into
    /// subtrees `stored` already has (arroba's `get_unstored_blocks`): what must be written
    /// after changing a tree that came from `stored`.
    pub fn unstored_blocks(
        &self,
        stored: &dyn crate::block::BlockSource,
    ) -> Result<crate::block::BlockMap, MstError> {
        let mut out = crate::block::BlockMap::new();
        let mut stack = vec![(self.root.clone(), None)];
        while let Some((link, layer)) = stack.pop() {
            if stored.read_block(&link.cid()).is_some() {
                continue;
            }
            let node = self.resolve(&link, layer)?;
            out.insert(node.cid(), node.encode());
            let child_layer = node.layer.checked_sub(1);
            for i in 0..=node.entries.len() {
                if let Some(child) = node.slot(i) {
                    stack.push((child.clone(), child_layer));
                }
            }
        }
        Ok(out)
    }

    /// Visits the tree in the streaming export order proposed for repo CARs: each node, then its
    /// left subtree, then for each entry its record and the subtree after it.
    pub fn walk_export(
        &self,
        visit: &mut dyn FnMut(ExportBlock) -> ControlFlow<()>,
    ) -> Result<(), MstError> {
        let root = self.root_node()?;
        self.walk_export_from(&root, visit).map(|_| ())
    }

    fn walk_export_from(
        &self,
        node: &Arc<Node>,
        visit: &mut dyn FnMut(ExportBlock) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, MstError> {
        if visit(ExportBlock::Node {
            cid: node.cid(),
            bytes: node.encode(),
        })
        .is_break()
        {
            return Ok(ControlFlow::Break(()));
        }
        let child_layer = node.layer.checked_sub(1);
        for i in 0..=node.entries.len() {
            if i > 0 {
                let entry = &node.entries[i - 1];
                let record = ExportBlock::Record {
                    key: entry.key.clone(),
                    cid: entry.value,
                };
                if visit(record).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
            if let Some(link) = node.slot(i) {
                let child = self.resolve(link, child_layer)?;
                if self.walk_export_from(&child, visit)?.is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Visits every node in pre-order (node, left subtree, then each entry's subtree), the order
    /// proposed for streaming repo exports. A node's records come with the node, in key order,
    /// so a caller can emit each record just before the entry's subtree.
    pub fn walk_nodes(
        &self,
        visit: &mut dyn FnMut(NodeVisit) -> ControlFlow<()>,
    ) -> Result<(), MstError> {
        let root = self.root_node()?;
        self.walk_nodes_from(&root, visit).map(|_| ())
    }

    fn walk_nodes_from(
        &self,
        node: &Arc<Node>,
        visit: &mut dyn FnMut(NodeVisit) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, MstError> {
        let bytes = node.encode();
        let visit_item = NodeVisit {
            cid: node.cid(),
            bytes,
            layer: node.layer,
            leaves: node
                .entries
                .iter()
                .map(|e| (e.key.clone(), e.value))
                .collect(),
        };
        if visit(visit_item).is_break() {
            return Ok(ControlFlow::Break(()));
        }
        let child_layer = node.layer.checked_sub(1);
        for i in 0..=node.entries.len() {
            if let Some(link) = node.slot(i) {
                let child = self.resolve(link, child_layer)?;
                if self.walk_nodes_from(&child, visit)?.is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }
}
