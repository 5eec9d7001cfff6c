//! The process's block cache ([`BlockCache`]: one byte-bounded LRU shared by the backend and
//! every request) and one operation's view of it ([`BlockView`]).
//!
//! Blocks are immutable, so a cached block is never wrong and processes never disagree about
//! one. A block the collector deleted may linger in another process's cache; that is harmless,
//! since only blocks nothing names are deleted, and a commit that names one again writes it
//! again (a commit writes every block its tree did not have, whatever the cache holds). The bound keeps a long-running `serve` or a warm Lambda from growing with every repo it
//! reads. Eviction could starve an operation whose working set is larger than the cache (a
//! tree walk would fetch, lose and re-fetch the same node), so each operation reads through a
//! [`BlockView`] that also holds every block it fetched until the operation ends.

use std::sync::{Arc, Mutex, RwLock};

use crate::block::{BlockMap, BlockSource};
use crate::cid::Cid;

/// What one entry costs besides its bytes (the CID, the map slot, the `Arc` header): counted
/// against the bound so that many tiny blocks cannot exceed it.
const ENTRY_OVERHEAD: usize = 128;

struct Lru {
    entries: lru::LruCache<Cid, Arc<[u8]>>,
    /// Block bytes plus [`ENTRY_OVERHEAD`] per entry.
    bytes: usize,
    capacity: usize,
}

/// A byte-bounded LRU of blocks, shared by clones. Only blocks that are stored (read from or
/// committed to the backend) are put in it.
#[derive(Clone)]
pub struct BlockCache(Arc<Mutex<Lru>>);

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lru = self.lock();
        f.debug_struct("BlockCache")
            .field("bytes", &lru.bytes)
            .field("capacity", &lru.capacity)
            .finish()
    }
}

impl BlockCache {
    /// The default bound, 64 MiB (`PDS_BLOCK_CACHE_BYTES`).
    pub const DEFAULT_CAPACITY: usize = 64 * 1024 * 1024;

    /// An empty cache holding at most `capacity` bytes (block bytes plus a small per-entry
    /// overhead).
    pub fn new(capacity: usize) -> BlockCache {
        BlockCache(Arc::new(Mutex::new(Lru {
            entries: lru::LruCache::unbounded(),
            bytes: 0,
            capacity,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        // Every critical section leaves the map and the byte count consistent before it could
        // panic, so a poisoned lock still guards a usable cache.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bytes of `cid`, marking it recently used.
    pub fn get(&self, cid: &Cid) -> Option<Arc<[u8]>> {
        self.lock().entries.get(cid).cloned()
    }

    /// Whether the cache holds `cid` (without touching its recency).
    pub fn contains(&self, cid: &Cid) -> bool {
        self.lock().entries.contains(cid)
    }

    /// Adds a stored block, evicting the least recently used ones past the bound. A block
    /// larger than an eighth of the bound is not cached (it would flush everything else).
    pub fn insert(&self, cid: Cid, bytes: Arc<[u8]>) {
        let mut lru = self.lock();
        let cost = bytes.len() + ENTRY_OVERHEAD;
        if cost > lru.capacity / 8 {
            return;
        }
        if let Some(old) = lru.entries.put(cid, bytes) {
            lru.bytes -= old.len() + ENTRY_OVERHEAD;
        }
        lru.bytes += cost;
        while lru.bytes > lru.capacity {
            match lru.entries.pop_lru() {
                Some((_, evicted)) => lru.bytes -= evicted.len() + ENTRY_OVERHEAD,
                None => break,
            }
        }
    }

    /// Forgets `cid` (a block the collector deleted).
    pub fn remove(&self, cid: &Cid) {
        let mut lru = self.lock();
        if let Some(old) = lru.entries.pop(cid) {
            lru.bytes -= old.len() + ENTRY_OVERHEAD;
        }
    }

    /// Adds every block of `blocks` (all stored).
    pub fn extend(&self, blocks: &BlockMap) {
        for (cid, bytes) in blocks.iter() {
            self.insert(*cid, Arc::from(bytes));
        }
    }

    /// The bytes the cache holds now, counted as the bound counts them.
    pub fn resident_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.lock().capacity
    }

    /// Number of cached blocks.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every block (for cold-start measurements).
    pub fn clear(&self) {
        let mut lru = self.lock();
        lru.entries.clear();
        lru.bytes = 0;
    }

    /// A view for one operation (see [`BlockView`]).
    pub fn view(&self) -> BlockView {
        BlockView {
            shared: self.clone(),
            held: Arc::default(),
        }
    }
}

impl Default for BlockCache {
    fn default() -> Self {
        BlockCache::new(BlockCache::DEFAULT_CAPACITY)
    }
}

impl BlockSource for BlockCache {
    fn read_block(&self, cid: &Cid) -> Option<Vec<u8>> {
        self.get(cid).map(|b| b.to_vec())
    }
}

/// One operation's blocks: the shared cache plus the blocks this operation fetched, which it
/// holds until it is dropped, so eviction never makes it fetch the same block twice. Clones
/// share the held set. A repo loaded for the operation reads its nodes through it.
#[derive(Clone, Debug)]
pub struct BlockView {
    shared: BlockCache,
    held: Arc<RwLock<BlockMap>>,
}

impl BlockView {
    /// Adds stored blocks to the shared cache and holds them for this operation.
    pub fn hold(&self, blocks: BlockMap) {
        self.shared.extend(&blocks);
        self.held
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(blocks);
    }

    /// The shared cache behind this view.
    pub fn cache(&self) -> &BlockCache {
        &self.shared
    }

    /// Bytes held by this operation alone.
    pub fn held_bytes(&self) -> usize {
        self.held
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .byte_len()
    }
}

impl BlockSource for BlockView {
    fn read_block(&self, cid: &Cid) -> Option<Vec<u8>> {
        let held = self
            .held
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .read_block(cid);
        held.or_else(|| self.shared.read_block(cid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::cid_for_cbor;

    fn block(n: u32, len: usize) -> (Cid, Arc<[u8]>) {
        let bytes = vec![n as u8; len];
        (cid_for_cbor(&n.to_be_bytes()), Arc::from(bytes))
    }

    #[test]
    fn the_cache_never_holds_more_than_its_bound_and_evicts_least_recent_first() {
        let cache = BlockCache::new(10 * (1000 + ENTRY_OVERHEAD));
        for n in 0..10 {
            let (cid, bytes) = block(n, 1000);
            cache.insert(cid, bytes);
        }
        // Block 0 is the oldest, but using it makes block 1 the first to go.
        assert!(cache.get(&block(0, 0).0).is_some());
        cache.insert(block(10, 0).0, block(10, 1000).1);
        assert!(cache.contains(&block(0, 0).0));
        assert!(!cache.contains(&block(1, 0).0));
        for n in 11..100 {
            let (cid, bytes) = block(n, 1000);
            cache.insert(cid, bytes);
            assert!(cache.resident_bytes() <= cache.capacity());
        }
        assert_eq!(cache.len(), 10);
        assert!(cache.contains(&block(99, 0).0));
    }

    #[test]
    fn a_view_keeps_what_its_operation_fetched_after_the_cache_evicts_it() {
        let cache = BlockCache::new(4 * (1000 + ENTRY_OVERHEAD));
        let view = cache.view();
        let (cid, bytes) = block(1, 100);
        view.hold(BlockMap::from_iter([(cid, bytes.to_vec())]));
        for n in 2..50 {
            let (c, b) = block(n, 400);
            cache.insert(c, b);
        }
        assert!(!cache.contains(&cid));
        assert_eq!(view.read_block(&cid), Some(bytes.to_vec()));
        drop(view);
        assert!(cache.read_block(&cid).is_none());
    }
}
