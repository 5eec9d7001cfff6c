//! Proof block sets: the nodes a reader needs to check a key's presence or absence, and the
//! covering set a relay needs to invert a commit's operations (Sync 1.1).

use std::sync::Arc;

use super::node::{Link, Node};
use super::{Mst, MstError};
use crate::block::BlockMap;
use crate::cid::Cid;

impl Mst {
    /// The CIDs of the nodes on the search path of `key`, root first, followed by the record
    /// CID if the key is present (arroba's `cids_for_path`). For an absent key the path runs to
    /// the bottom, which is what a proof of absence needs.
    pub fn cids_for_path(&self, key: &str) -> Result<Vec<Cid>, MstError> {
        let mut out = Vec::new();
        let mut node = self.root_node()?;
        loop {
            out.push(node.cid());
            let i = match node.search(key) {
                Ok(i) => {
                    out.push(node.entries[i].value);
                    return Ok(out);
                }
                Err(i) => i,
            };
            let Some(child) = node.slot(i) else {
                return Ok(out);
            };
            node = self.resolve(child, node.layer.checked_sub(1))?;
        }
    }

    /// The node CIDs needed to add or remove `key` from this tree without any other block: the
    /// search path of `key`, and where the key is present, the rightmost spine of the subtree
    /// before it and the leftmost spine of the subtree after it (a delete merges those two).
    /// The union over a commit's operations, taken on the new tree, is the commit's covering
    /// proof: with it a relay inverts every operation and arrives at `prevData`.
    pub fn covering_cids(&self, key: &str) -> Result<Vec<Cid>, MstError> {
        Ok(self.covering_nodes(key)?.iter().map(|n| n.cid()).collect())
    }

    /// Like [`Mst::covering_cids`], with each node's bytes.
    pub fn covering_blocks(&self, key: &str, out: &mut BlockMap) -> Result<(), MstError> {
        for node in self.covering_nodes(key)? {
            if !out.contains(&node.cid()) {
                out.insert(node.cid(), node.encode());
            }
        }
        Ok(())
    }

    fn covering_nodes(&self, key: &str) -> Result<Vec<Arc<Node>>, MstError> {
        let mut out = Vec::new();
        let mut node = self.root_node()?;
        loop {
            out.push(node.clone());
            let child_layer = node.layer.checked_sub(1);
            match node.search(key) {
                Ok(i) => {
                    self.spine(node.slot(i), child_layer, true, &mut out)?;
                    self.spine(&node.entries[i].right, child_layer, false, &mut out)?;
                    return Ok(out);
                }
                Err(i) => {
                    let Some(child) = node.slot(i) else {
                        return Ok(out);
                    };
                    node = self.resolve(child, child_layer)?;
                }
            }
        }
    }

    /// Collects the rightmost (`rightmost`) or leftmost spine under `link`.
    fn spine(
        &self,
        link: &Option<Link>,
        layer: Option<u32>,
        rightmost: bool,
        out: &mut Vec<Arc<Node>>,
    ) -> Result<(), MstError> {
        let mut link = link.clone();
        let mut layer = layer;
        while let Some(l) = link {
            let node: Arc<Node> = self.resolve(&l, layer)?;
            link = if rightmost {
                node.slot(node.entries.len()).clone()
            } else {
                node.left.clone()
            };
            layer = node.layer.checked_sub(1);
            out.push(node);
        }
        Ok(())
    }

    /// Loads every node and checks the tree's shape: each node decodes, keys are valid, sorted
    /// across the whole tree and sit at their height's layer, no node except an empty root is
    /// empty, and the root is not an empty node above a subtree. Returns the number of leaves.
    pub fn verify_structure(&self) -> Result<usize, MstError> {
        let root = self.root_node()?;
        let root_cid = root.cid();
        if root.entries.is_empty() && root.left.is_some() {
            return Err(MstError::InvalidNode(
                root_cid,
                "root has no keys but a subtree",
            ));
        }
        let mut previous: Option<String> = None;
        let mut count = 0;
        self.verify_node(&root, &mut previous, &mut count)?;
        Ok(count)
    }

    fn verify_node(
        &self,
        node: &Arc<Node>,
        previous: &mut Option<String>,
        count: &mut usize,
    ) -> Result<(), MstError> {
        let child_layer = node.layer.checked_sub(1);
        for i in 0..=node.entries.len() {
            if let Some(link) = node.slot(i) {
                let child = self.resolve(link, child_layer)?;
                if child.is_empty() {
                    return Err(MstError::InvalidNode(
                        child.cid(),
                        "empty node below the root",
                    ));
                }
                self.verify_node(&child, previous, count)?;
            }
            if let Some(entry) = node.entries.get(i) {
                if previous.as_deref().is_some_and(|p| p >= entry.key.as_str()) {
                    return Err(MstError::InvalidNode(
                        node.cid(),
                        "keys out of order across nodes",
                    ));
                }
                *previous = Some(entry.key.clone());
                *count += 1;
            }
        }
        Ok(())
    }
}
