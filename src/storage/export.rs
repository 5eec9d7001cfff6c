//! [`ExportWalk`]: the blocks of a whole-repo export (`getRepo`) in the order it sends them, a
//! batch at a time, worked out from the stored node bytes. Only each node's links and keys are
//! parsed ([`NodeLinks`]); the tree is never decoded into an [`crate::mst::Mst`], and the walk
//! holds one root-to-leaf path of nodes, so its memory does not grow with the repo.

use std::sync::Arc;

use super::{BlockCache, BlockStore, StorageError};
use crate::cid::Cid;
use crate::mst::{LinkEntry, NodeLinks};
use crate::repo::RepoError;

/// One block of an export, in order: a node with its bytes, or a record to read.
#[derive(Debug, Clone)]
pub enum ExportItem {
    /// An MST node and its stored bytes.
    Node(Cid, Arc<[u8]>),
    /// A record block (and its path), read when its turn comes.
    Record(String, Cid),
}

/// A node on the walk's path: what is left of its entries and subtrees.
struct Frame {
    left_pending: bool,
    entries: std::vec::IntoIter<LinkEntry>,
    children: std::vec::IntoIter<Cid>,
}

/// The export order of the tree rooted at a commit's `data`: each node, then its left subtree,
/// then for each entry its record and the subtree after it (the streaming order the repository
/// spec proposes; the same as [`crate::mst::Mst::walk_export`]).
pub struct ExportWalk {
    root: Option<Cid>,
    path: Vec<Frame>,
}

impl ExportWalk {
    /// A walk of the tree whose root node is `root`.
    pub fn new(root: Cid) -> ExportWalk {
        ExportWalk {
            root: Some(root),
            path: Vec::new(),
        }
    }

    /// The next items, up to `records` records and the nodes before and between them; empty
    /// once the walk is done. Nodes come from `cache`, else from `storage` (a node's missing
    /// subtrees are read together when the node is reached, and added to the cache).
    pub async fn next_batch(
        &mut self,
        storage: &dyn BlockStore,
        cache: &BlockCache,
        records: usize,
    ) -> Result<Vec<ExportItem>, StorageError> {
        let mut batch = Vec::new();
        if let Some(root) = self.root.take() {
            self.enter(storage, cache, root, &mut batch).await?;
        }
        let mut taken = 0;
        while taken < records {
            let Some(frame) = self.path.last_mut() else {
                break;
            };
            let child = if frame.left_pending {
                frame.left_pending = false;
                frame.children.next()
            } else {
                match frame.entries.next() {
                    Some(entry) => {
                        let child = entry.has_right.then(|| frame.children.next());
                        batch.push(ExportItem::Record(entry.key, entry.record));
                        taken += 1;
                        match child {
                            Some(child) => child,
                            None => continue,
                        }
                    }
                    None => {
                        self.path.pop();
                        continue;
                    }
                }
            };
            // A node's links name as many subtrees as it has places for them (`NodeLinks`).
            let child = child.ok_or(StorageError::Corrupt {
                what: "MST node".into(),
                why: "fewer subtree links than places for them",
            })?;
            self.enter(storage, cache, child, &mut batch).await?;
        }
        Ok(batch)
    }

    /// Visits node `cid`: adds it to `batch` and to the path.
    async fn enter(
        &mut self,
        storage: &dyn BlockStore,
        cache: &BlockCache,
        cid: Cid,
        batch: &mut Vec<ExportItem>,
    ) -> Result<(), StorageError> {
        let bytes = match cache.get(&cid) {
            Some(bytes) => bytes,
            // Not cached, or evicted since its parent read it: read it alone.
            None => fetch(storage, cache, &[cid])
                .await?
                .pop()
                .ok_or(StorageError::MissingBlock(cid))?,
        };
        let links = NodeLinks::parse(cid, &bytes).map_err(RepoError::from)?;
        let missing: Vec<Cid> = links
            .children
            .iter()
            .filter(|c| !cache.contains(c))
            .copied()
            .collect();
        fetch(storage, cache, &missing).await?;
        batch.push(ExportItem::Node(cid, bytes));
        self.path.push(Frame {
            left_pending: links.has_left,
            entries: links.entries.into_iter(),
            children: links.children.into_iter(),
        });
        Ok(())
    }
}

/// Reads `cids` from `storage`, adds them to `cache` and returns them in order.
async fn fetch(
    storage: &dyn BlockStore,
    cache: &BlockCache,
    cids: &[Cid],
) -> Result<Vec<Arc<[u8]>>, StorageError> {
    if cids.is_empty() {
        return Ok(Vec::new());
    }
    let read = storage.read_blocks_in_order(cids).await?;
    let mut out = Vec::with_capacity(cids.len());
    for (i, cid) in cids.iter().enumerate() {
        let bytes: Arc<[u8]> = Arc::from(read.get(i).ok_or(StorageError::MissingBlock(*cid))?);
        cache.insert(*cid, bytes.clone());
        out.push(bytes);
    }
    Ok(out)
}
