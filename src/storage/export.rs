//! The blocks of a whole-repo export (`getRepo`) in the order it sends them, worked out from the
//! stored node bytes: each node read once (from the block cache, else one storage batch per tree
//! level) and only its links parsed ([`NodeLinks`]), never decoded into an [`crate::mst::Mst`].

use std::sync::Arc;

use super::{BlockCache, BlockStore, StorageError};
use crate::cid::Cid;
use crate::mst::NodeLinks;
use crate::repo::RepoError;

/// One block of an export, in order: a node with its bytes, or a record to read.
#[derive(Debug, Clone)]
pub enum ExportItem {
    /// An MST node and its stored bytes.
    Node(Cid, Arc<[u8]>),
    /// A record block (and its path), read when its turn comes.
    Record(String, Cid),
}

/// A node read for the export: its bytes, its links, and where its children are in the next
/// level (a level lists the children of the level above in order, so each node's are a run).
struct ReadNode {
    cid: Cid,
    bytes: Arc<[u8]>,
    links: NodeLinks,
    first_child: usize,
}

/// The export order of the tree rooted at `root` (a commit's `data`): each node, then its left
/// subtree, then for each entry its record and the subtree after it (the streaming order the
/// repository spec proposes; the same as [`crate::mst::Mst::walk_export`]). Nodes missing from
/// `cache` are read from `storage` and added to it.
pub async fn export_order(
    storage: &dyn BlockStore,
    cache: &BlockCache,
    root: Cid,
) -> Result<Vec<ExportItem>, StorageError> {
    let mut levels: Vec<Vec<ReadNode>> = Vec::new();
    let mut level = vec![root];
    while !level.is_empty() {
        let mut found: Vec<Option<Arc<[u8]>>> = level.iter().map(|cid| cache.get(cid)).collect();
        let missing: Vec<Cid> = level
            .iter()
            .zip(&found)
            .filter(|(_, bytes)| bytes.is_none())
            .map(|(cid, _)| *cid)
            .collect();
        if !missing.is_empty() {
            let read = storage.read_blocks_in_order(&missing).await?;
            let slots = found.iter_mut().filter(|bytes| bytes.is_none());
            for (i, (cid, slot)) in missing.iter().zip(slots).enumerate() {
                let bytes: Arc<[u8]> =
                    Arc::from(read.get(i).ok_or(StorageError::MissingBlock(*cid))?);
                cache.insert(*cid, bytes.clone());
                *slot = Some(bytes);
            }
        }
        let mut nodes = Vec::with_capacity(level.len());
        let mut next = Vec::new();
        for (cid, bytes) in level.into_iter().zip(found) {
            let bytes = bytes.ok_or(StorageError::MissingBlock(cid))?;
            let links = NodeLinks::parse(cid, &bytes).map_err(RepoError::from)?;
            let first_child = next.len();
            next.extend_from_slice(&links.children);
            nodes.push(ReadNode {
                cid,
                bytes,
                links,
                first_child,
            });
        }
        levels.push(nodes);
        level = next;
    }
    let records: usize = levels.iter().flatten().map(|n| n.links.entries.len()).sum();
    let mut order = Vec::with_capacity(records + levels.iter().map(Vec::len).sum::<usize>());
    push_subtree(&mut levels, 0, 0, &mut order);
    Ok(order)
}

/// Appends node `index` of `depth` and its subtrees to `order`, moving its keys out.
fn push_subtree(
    levels: &mut [Vec<ReadNode>],
    depth: usize,
    index: usize,
    order: &mut Vec<ExportItem>,
) {
    let Some(node) = levels.get_mut(depth).and_then(|l| l.get_mut(index)) else {
        return;
    };
    order.push(ExportItem::Node(node.cid, node.bytes.clone()));
    let entries = std::mem::take(&mut node.links.entries);
    let mut child = node.first_child;
    if node.links.has_left {
        push_subtree(levels, depth + 1, child, order);
        child += 1;
    }
    for entry in entries {
        order.push(ExportItem::Record(entry.key, entry.record));
        if entry.has_right {
            push_subtree(levels, depth + 1, child, order);
            child += 1;
        }
    }
}
