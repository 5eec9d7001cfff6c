//! [`Mst`]: lookups and the three mutations (insert, update, delete).

use std::sync::Arc;

use super::MstError;
use super::key::{height_for_key, validate_key};
use super::node::{Entry, Link, Node};
use crate::block::{BlockMap, BlockSource};
use crate::cid::Cid;

/// A Merkle Search Tree over a block source. Cloning is cheap (nodes are shared).
#[derive(Clone)]
pub struct Mst {
    pub(crate) root: Link,
    pub(crate) source: Arc<dyn BlockSource>,
}

impl std::fmt::Debug for Mst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mst")
            .field("root", &self.root.cid())
            .finish_non_exhaustive()
    }
}

impl Mst {
    /// An empty tree; `source` is where nodes of trees it is compared with may be loaded from.
    pub fn new(source: Arc<dyn BlockSource>) -> Mst {
        Mst {
            root: Link::Loaded(Arc::new(Node::empty(0))),
            source,
        }
    }

    /// An empty tree with no backing blocks.
    pub fn empty() -> Mst {
        Mst::new(Arc::new(BlockMap::new()))
    }

    /// The tree whose root node is `root`, loading nodes from `source` as they are needed.
    pub fn load(root: Cid, source: Arc<dyn BlockSource>) -> Mst {
        Mst {
            root: Link::Stub(root),
            source,
        }
    }

    /// The root CID (computing node CIDs that changed since the last call).
    pub fn root_cid(&self) -> Cid {
        self.root.cid()
    }

    /// The block source nodes load from.
    pub fn source(&self) -> &Arc<dyn BlockSource> {
        &self.source
    }

    /// Loads the node behind `link`, expecting `layer` (None for the root).
    pub(crate) fn resolve(&self, link: &Link, layer: Option<u32>) -> Result<Arc<Node>, MstError> {
        Loader(&*self.source).resolve(link, layer)
    }

    pub(crate) fn root_node(&self) -> Result<Arc<Node>, MstError> {
        self.resolve(&self.root, None)
    }

    /// Decodes every node the source holds into the tree, once, and returns the CIDs of the
    /// nodes it lacks (whose subtrees are not reached yet). Loading a whole stored tree is a loop:
    /// fetch what this returns into the source, call again, until it returns nothing; the nodes
    /// decoded on earlier rounds are not decoded again.
    pub fn load_from_source(&mut self) -> Result<Vec<Cid>, MstError> {
        let mut missing = Vec::new();
        let source = self.source.clone();
        load_link(&Loader(&*source), &mut self.root, None, &mut missing)?;
        Ok(missing)
    }

    /// Decodes into the tree the nodes on the path to `key`, so that reading or changing it,
    /// here or in a clone, and comparing the two, decode nothing again.
    pub fn load_path(&mut self, key: &str) -> Result<(), MstError> {
        let source = self.source.clone();
        let loader = Loader(&*source);
        let mut link = &mut self.root;
        let mut layer = None;
        loop {
            let node = Arc::make_mut(loader.loaded(link, layer)?);
            let Err(i) = node.search(key) else {
                return Ok(());
            };
            layer = node.layer.checked_sub(1);
            match node.slot_mut(i) {
                Some(child) => link = child,
                None => return Ok(()),
            }
        }
    }

    /// The record CID at `key`, if any.
    pub fn get(&self, key: &str) -> Result<Option<Cid>, MstError> {
        let mut node = self.root_node()?;
        loop {
            let i = match node.search(key) {
                Ok(i) => return Ok(Some(node.entries[i].value)),
                Err(i) => i,
            };
            let Some(child) = node.slot(i) else {
                return Ok(None);
            };
            node = self.resolve(child, node.layer.checked_sub(1))?;
        }
    }

    /// Adds `key` → `value`. Fails if the key is present or invalid.
    pub fn insert(&mut self, key: &str, value: Cid) -> Result<(), MstError> {
        validate_key(key)?;
        // The lookup walks exactly the nodes the insert will touch: it proves they load and
        // that the key is new before anything changes.
        if self.get(key)?.is_some() {
            return Err(MstError::AlreadyExists(key.to_owned()));
        }
        let height = height_for_key(key.as_bytes());
        let loader = Loader(&*self.source);
        let root = loader.loaded(&mut self.root, None)?;
        if root.is_empty() {
            let entry = Entry {
                key: key.to_owned(),
                value,
                right: None,
            };
            *root = Arc::new(Node::new(height, None, vec![entry]));
            return Ok(());
        }
        while root.layer < height {
            let old = std::mem::replace(root, Arc::new(Node::empty(0)));
            *root = Arc::new(Node::new(
                old.layer + 1,
                Some(Link::Loaded(old)),
                Vec::new(),
            ));
        }
        loader.insert_into(root, key, height, value)
    }

    /// Replaces the value at an existing `key`.
    pub fn update(&mut self, key: &str, value: Cid) -> Result<(), MstError> {
        if self.get(key)?.is_none() {
            return Err(MstError::NotFound(key.to_owned()));
        }
        let loader = Loader(&*self.source);
        let mut link = &mut self.root;
        let mut layer = None;
        loop {
            let node = Arc::make_mut(loader.loaded(link, layer)?);
            node.touch();
            match node.search(key) {
                Ok(i) => {
                    node.entries[i].value = value;
                    return Ok(());
                }
                Err(i) => {
                    layer = node.layer.checked_sub(1);
                    link = node
                        .slot_mut(i)
                        .as_mut()
                        .ok_or_else(|| MstError::NotFound(key.to_owned()))?;
                }
            }
        }
    }

    /// Removes `key`, merging the subtrees on either side of it and trimming empty top layers.
    pub fn delete(&mut self, key: &str) -> Result<(), MstError> {
        // Walk, read-only, every node the delete needs (the path and both neighbour spines), so
        // a missing block fails here and leaves the tree as it was.
        self.covering_cids(key)?;
        if self.get(key)?.is_none() {
            return Err(MstError::NotFound(key.to_owned()));
        }
        let loader = Loader(&*self.source);
        let root = loader.loaded(&mut self.root, None)?;
        loader.delete_from(root, key)?;
        // Trim the top: a root with no keys and one subtree is replaced by that subtree.
        while root.entries.is_empty() {
            match &root.left {
                Some(child) => *root = loader.resolve(child, root.layer.checked_sub(1))?,
                None => {
                    *root = Arc::new(Node::empty(0));
                    break;
                }
            }
        }
        Ok(())
    }
}

/// [`Mst::load_from_source`] below `link`, whose node sits in `layer` when known.
fn load_link(
    loader: &Loader<'_>,
    link: &mut Link,
    layer: Option<u32>,
    missing: &mut Vec<Cid>,
) -> Result<(), MstError> {
    let node = match loader.loaded(link, layer) {
        Ok(node) => node,
        Err(MstError::MissingBlock(cid)) => {
            missing.push(cid);
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    // Only the links change, from stubs to the nodes they name: the CID the node carries stays
    // right.
    let node = Arc::make_mut(node);
    let child_layer = node.layer.checked_sub(1);
    for i in 0..=node.entries.len() {
        if let Some(child) = node.slot_mut(i) {
            load_link(loader, child, child_layer, missing)?;
        }
    }
    Ok(())
}

/// Node loading and the recursive halves of the mutations over a borrowed block source, kept
/// apart from [`Mst`] so that changing the root does not also hold a second reference to it
/// (which would make every `Arc::make_mut` on the path copy).
struct Loader<'a>(&'a dyn BlockSource);

impl Loader<'_> {
    fn resolve(&self, link: &Link, layer: Option<u32>) -> Result<Arc<Node>, MstError> {
        match link {
            Link::Loaded(node) => Ok(node.clone()),
            Link::Stub(cid) => {
                let bytes = self.0.read_block(cid).ok_or(MstError::MissingBlock(*cid))?;
                let (mut node, known) = Node::decode(*cid, &bytes, layer)?;
                if !known {
                    // A node without keys knows its layer only from its parent or its subtree.
                    node.layer = match (&node.left, layer) {
                        (_, Some(l)) => l,
                        (Some(child), None) => self.resolve(child, None)?.layer + 1,
                        (None, None) => 0,
                    };
                }
                Ok(Arc::new(node))
            }
        }
    }

    /// Loads a stub in place and returns the node for changing.
    fn loaded<'l>(
        &self,
        link: &'l mut Link,
        layer: Option<u32>,
    ) -> Result<&'l mut Arc<Node>, MstError> {
        if let Link::Stub(_) = link {
            *link = Link::Loaded(self.resolve(link, layer)?);
        }
        match link {
            Link::Loaded(node) => Ok(node),
            Link::Stub(_) => unreachable!("replaced with a loaded node above"),
        }
    }

    fn insert_into(
        &self,
        node: &mut Arc<Node>,
        key: &str,
        height: u32,
        value: Cid,
    ) -> Result<(), MstError> {
        let node = Arc::make_mut(node);
        node.touch();
        let i = node
            .search(key)
            .err()
            .ok_or_else(|| MstError::AlreadyExists(key.to_owned()))?;
        if height == node.layer {
            let child = node.slot_mut(i).take();
            let (lo, hi) = self.split(child, key, node.layer.saturating_sub(1))?;
            *node.slot_mut(i) = lo;
            node.entries.insert(
                i,
                Entry {
                    key: key.to_owned(),
                    value,
                    right: hi,
                },
            );
            return Ok(());
        }
        let child_layer = node.layer - 1;
        let child = node
            .slot_mut(i)
            .get_or_insert_with(|| Link::Loaded(Arc::new(Node::empty(child_layer))));
        let child = self.loaded(child, Some(child_layer))?;
        self.insert_into(child, key, height, value)
    }

    /// Splits the subtree at `link` (of `layer`) around `key` into the parts below and above it.
    fn split(
        &self,
        link: Option<Link>,
        key: &str,
        layer: u32,
    ) -> Result<(Option<Link>, Option<Link>), MstError> {
        let Some(link) = link else {
            return Ok((None, None));
        };
        let node = self.resolve(&link, Some(layer))?;
        let i = node.search(key).unwrap_or_else(|i| i);
        let (lo, hi) = self.split(node.slot(i).clone(), key, layer.saturating_sub(1))?;
        let mut left_entries = node.entries[..i].to_vec();
        let left_left = match left_entries.last_mut() {
            Some(last) => {
                last.right = lo;
                node.left.clone()
            }
            None => lo,
        };
        let left = Node::new(layer, left_left, left_entries);
        let right = Node::new(layer, hi, node.entries[i..].to_vec());
        let wrap = |n: Node| (!n.is_empty()).then(|| Link::Loaded(Arc::new(n)));
        Ok((wrap(left), wrap(right)))
    }

    fn delete_from(&self, node: &mut Arc<Node>, key: &str) -> Result<(), MstError> {
        let node = Arc::make_mut(node);
        node.touch();
        match node.search(key) {
            Ok(i) => {
                let removed = node.entries.remove(i);
                let before = node.slot_mut(i).take();
                *node.slot_mut(i) =
                    self.merge(before, removed.right, node.layer.saturating_sub(1))?;
                Ok(())
            }
            Err(i) => {
                let child_layer = node.layer.checked_sub(1);
                let slot = node.slot_mut(i);
                let link = slot
                    .as_mut()
                    .ok_or_else(|| MstError::NotFound(key.to_owned()))?;
                let child = self.loaded(link, child_layer)?;
                self.delete_from(child, key)?;
                if child.is_empty() {
                    *slot = None;
                }
                Ok(())
            }
        }
    }

    /// Joins two adjacent subtrees of the same `layer` (every key of `a` below every key of `b`).
    fn merge(
        &self,
        a: Option<Link>,
        b: Option<Link>,
        layer: u32,
    ) -> Result<Option<Link>, MstError> {
        let (a, b) = match (a, b) {
            (None, x) | (x, None) => return Ok(x),
            (Some(a), Some(b)) => (a, b),
        };
        let a = self.resolve(&a, Some(layer))?;
        let b = self.resolve(&b, Some(layer))?;
        let mut merged = (*a).clone();
        merged.touch();
        let last = merged.entries.len();
        let a_last = merged.slot_mut(last).take();
        *merged.slot_mut(last) = self.merge(a_last, b.left.clone(), layer.saturating_sub(1))?;
        merged.entries.extend(b.entries.iter().cloned());
        Ok((!merged.is_empty()).then(|| Link::Loaded(Arc::new(merged))))
    }
}
