//! [`ExportWalk`]: the blocks of a whole-repo export (`getRepo`) in the order it sends them, a
//! batch at a time, worked out from the stored node bytes. Only each node's links and keys are
//! parsed ([`NodeLinks`]); the tree is never decoded into an [`crate::mst::Mst`], and the walk
//! holds one root-to-leaf path of nodes, so its memory does not grow with the repo.
//!
//! Nodes are read ahead of the walk in export order, up to 512 in one storage read
//! for those the block cache misses: a relay's first export of a repo finds none of it cached,
//! and reading each node's children when the node is reached took a read per node.

use std::collections::{HashMap, VecDeque};
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

/// Most nodes taken in one step of the read-ahead (and so at most read in one storage read).
const READ_AHEAD: usize = 512;

/// The export order of the tree rooted at a commit's `data`: each node, then its left subtree,
/// then for each entry its record and the subtree after it (the streaming order the repository
/// spec proposes; the same as [`crate::mst::Mst::walk_export`]).
pub struct ExportWalk {
    root: Option<Cid>,
    path: Vec<Frame>,
    /// Nodes not read yet, each the root of a subtree none of which is read, in export order.
    /// Every node before the walk's next one has been read, so that one is here at the front
    /// unless it is in `ahead`.
    unread: VecDeque<Cid>,
    /// Nodes read but not yet reached by the walk, parsed. A step reads at most
    /// [`READ_AHEAD`] nodes, and a step's nodes wait here only while the walk is in the
    /// subtrees of the ones before them: a few steps' worth per tree level at most.
    ahead: HashMap<Cid, (Arc<[u8]>, NodeLinks)>,
}

impl ExportWalk {
    /// A walk of the tree whose root node is `root`.
    pub fn new(root: Cid) -> ExportWalk {
        ExportWalk {
            root: Some(root),
            path: Vec::new(),
            unread: VecDeque::from([root]),
            ahead: HashMap::new(),
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
        let read_ahead = match self.ahead.is_empty() {
            true => None,
            false => self.ahead.remove(&cid),
        };
        let (bytes, links) = match read_ahead {
            Some(node) => node,
            None => {
                if self.unread.front() != Some(&cid) {
                    // Only a tree whose links disagree with its shape gets here (a node linked
                    // twice, say): the walk and the read-ahead no longer meet.
                    return Err(StorageError::Corrupt {
                        what: "MST node".into(),
                        why: "a subtree reached out of order",
                    });
                }
                match cache.get(&cid) {
                    // Cached (the usual case once a repo has been read): stepped over without
                    // the read-ahead's bookkeeping.
                    Some(bytes) => {
                        self.unread.pop_front();
                        let links = NodeLinks::parse(cid, &bytes).map_err(RepoError::from)?;
                        for child in links.children.iter().rev() {
                            self.unread.push_front(*child);
                        }
                        (bytes, links)
                    }
                    None => {
                        self.read_ahead(storage, cache).await?;
                        self.ahead
                            .remove(&cid)
                            .ok_or(StorageError::MissingBlock(cid))?
                    }
                }
            }
        };
        batch.push(ExportItem::Node(cid, bytes));
        self.path.push(Frame {
            left_pending: links.has_left,
            entries: links.entries.into_iter(),
            children: links.children.into_iter(),
        });
        Ok(())
    }

    /// One step of the read-ahead: takes up to [`READ_AHEAD`] nodes from the front of
    /// `unread`, reads those `cache` misses in one storage read, parses them into `ahead`, and
    /// puts their children at the front of `unread` (they come before every node left there,
    /// in the order of their parents: export order).
    async fn read_ahead(
        &mut self,
        storage: &dyn BlockStore,
        cache: &BlockCache,
    ) -> Result<(), StorageError> {
        let n = self.unread.len().min(READ_AHEAD);
        let taken: Vec<(Cid, Option<Arc<[u8]>>)> = self
            .unread
            .drain(..n)
            .map(|cid| (cid, cache.get(&cid)))
            .collect();
        let missing: Vec<Cid> = taken
            .iter()
            .filter(|(_, cached)| cached.is_none())
            .map(|(cid, _)| *cid)
            .collect();
        let mut read = fetch(storage, cache, &missing).await?.into_iter();
        let mut children = Vec::new();
        for (cid, cached) in taken {
            let bytes = match cached {
                Some(bytes) => bytes,
                None => read.next().ok_or(StorageError::MissingBlock(cid))?,
            };
            let links = NodeLinks::parse(cid, &bytes).map_err(RepoError::from)?;
            children.extend_from_slice(&links.children);
            self.ahead.insert(cid, (bytes, links));
        }
        for child in children.into_iter().rev() {
            self.unread.push_front(child);
        }
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
