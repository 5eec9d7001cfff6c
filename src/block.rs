//! Blocks: content-addressed byte strings, and the map and source traits that hold them.
//!
//! [`BlockMap`] is an in-memory set of blocks keyed by CID (a commit's new blocks, a CAR file's
//! contents). [`BlockSource`] is how the MST reads nodes it has not loaded yet; it is synchronous
//! because the data layers do no I/O: storage-backed callers fill a cache and retry on
//! [`crate::mst::MstError::MissingBlock`] (the process's bounded cache is
//! `crate::storage::BlockCache`).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::cid::Cid;

/// Blocks by CID, iterated in CID order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockMap(BTreeMap<Cid, Vec<u8>>);

impl BlockMap {
    /// An empty map.
    pub fn new() -> BlockMap {
        BlockMap::default()
    }

    /// Adds a block (replacing identical content is harmless: blocks are immutable).
    pub fn insert(&mut self, cid: Cid, bytes: Vec<u8>) {
        self.0.insert(cid, bytes);
    }

    /// The bytes of `cid`.
    pub fn get(&self, cid: &Cid) -> Option<&[u8]> {
        self.0.get(cid).map(Vec::as_slice)
    }

    /// Whether the map holds `cid`.
    pub fn contains(&self, cid: &Cid) -> bool {
        self.0.contains_key(cid)
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no blocks.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Total bytes of all blocks.
    pub fn byte_len(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    /// Iterates over `(cid, bytes)` in CID order.
    pub fn iter(&self) -> impl Iterator<Item = (&Cid, &[u8])> {
        self.0.iter().map(|(c, b)| (c, b.as_slice()))
    }

    /// The CIDs, in order.
    pub fn cids(&self) -> impl Iterator<Item = &Cid> {
        self.0.keys()
    }

    /// Moves every block of `other` into this map.
    pub fn extend(&mut self, other: BlockMap) {
        self.0.extend(other.0);
    }

    /// Removes and returns a block.
    pub fn remove(&mut self, cid: &Cid) -> Option<Vec<u8>> {
        self.0.remove(cid)
    }
}

impl IntoIterator for BlockMap {
    type Item = (Cid, Vec<u8>);
    type IntoIter = std::collections::btree_map::IntoIter<Cid, Vec<u8>>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl FromIterator<(Cid, Vec<u8>)> for BlockMap {
    fn from_iter<I: IntoIterator<Item = (Cid, Vec<u8>)>>(iter: I) -> Self {
        BlockMap(iter.into_iter().collect())
    }
}

/// Somewhere the MST can read blocks from synchronously.
pub trait BlockSource: Send + Sync + std::fmt::Debug {
    /// The bytes of `cid`, if this source has them.
    fn read_block(&self, cid: &Cid) -> Option<Vec<u8>>;
}

impl BlockSource for BlockMap {
    fn read_block(&self, cid: &Cid) -> Option<Vec<u8>> {
        self.get(cid).map(<[u8]>::to_vec)
    }
}

/// A [`BlockSource`] that records which CIDs were read: used to find the blocks a reader (a
/// relay inverting a commit, a proof verifier) will need.
#[derive(Debug)]
pub struct RecordingSource<S> {
    inner: S,
    read: RwLock<Vec<Cid>>,
}

impl<S: BlockSource> RecordingSource<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        RecordingSource {
            inner,
            read: RwLock::new(Vec::new()),
        }
    }

    /// The CIDs read so far, in order, with repeats.
    pub fn reads(&self) -> Vec<Cid> {
        self.read.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl<S: BlockSource> BlockSource for RecordingSource<S> {
    fn read_block(&self, cid: &Cid) -> Option<Vec<u8>> {
        let found = self.inner.read_block(cid);
        if found.is_some() {
            self.read
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .push(*cid);
        }
        found
    }
}

impl<T: BlockSource + ?Sized> BlockSource for Arc<T> {
    fn read_block(&self, cid: &Cid) -> Option<Vec<u8>> {
        (**self).read_block(cid)
    }
}
