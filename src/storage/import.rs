//! Importing a repo from a CAR (`com.atproto.repo.importRepo`): a repo arriving from another
//! PDS, or restored from an export.
//!
//! The CAR is never held in memory. [`SpooledCar::index`] reads a spooled copy (a temporary
//! file) once, checking every block against its CID and keeping only each block's digest and
//! position (under 100 bytes a block, whatever its size); [`SpooledCar::verify`] checks the commit (its DID, its signature)
//! and walks the tree from the file (structure, every record present and a DAG-CBOR map);
//! [`import_repo`] then writes the reachable blocks in bounded batches, records which blobs the
//! records reference, and moves the head last, in one atomic write. An import that fails or is
//! interrupted before that write leaves the repo as it was (orphan blocks are content-addressed
//! and harmless), and importing the same CAR again is a no-op.
//!
//! The imported commit becomes the head as it is, still signed by the key that signed it; so
//! into an active repo the import must be newer than the head (relays refuse a rev that goes
//! back), and is announced with a `#sync` event. Into a deactivated repo (an account arriving)
//! nothing is announced until the account is activated.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::accounts::Accounts;
use super::driver::load_head;
use super::fetch_tree;
use super::{BlobStore, BlockView, EventBody, RepoStatus, Storage, StorageError};
use crate::block::{BlockMap, BlockSource};
use crate::car::{CarError, CarStream};
use crate::cbor::{self, Value};
use crate::cid::{self, Cid};
use crate::crypto::PublicKey;
use crate::mst::{Mst, MstError};
use crate::repo::{Commit, RepoError, blob_refs};
use crate::syntax::Did;
use crate::tid::Tid;

/// The largest block an import accepts: records are at most 1,000,000 bytes (the sync spec), MST
/// nodes far smaller; the margin is for CID prefixes and generous writers.
pub const MAX_IMPORT_BLOCK: usize = 2 * 1024 * 1024;

/// Blocks written per storage request while importing.
const WRITE_BATCH_BLOCKS: usize = 256;
/// Bytes written per storage request while importing (whichever limit comes first).
const WRITE_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Why an import was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The CAR could not be read (framing, a CID that does not match its block, a read error).
    #[error("invalid CAR: {0}")]
    Car(#[from] CarError),
    /// A CAR whose header does not name exactly one root.
    #[error("expected one root, found {0}")]
    Roots(usize),
    /// A block whose CID is not a sha2-256 DAG-CBOR or raw CID, as repo blocks are.
    #[error("block {0} has a CID a repo block cannot have")]
    UnsupportedCid(Cid),
    /// The root is not a valid commit, or a block it needs is missing or malformed.
    #[error("invalid repo: {0}")]
    InvalidRepo(String),
    /// The commit is another account's.
    #[error("the repo is {found}'s, not {expected}'s")]
    WrongDid {
        /// The importing account.
        expected: Did,
        /// The commit's DID.
        found: Did,
    },
    /// The commit's signature does not verify against the account's signing key.
    #[error("the commit's signature does not verify against {0}'s signing key")]
    BadSignature(Did),
    /// Into an active repo, an import that is not newer than the head.
    #[error("the imported commit (rev {imported}) is not newer than the repo's head (rev {head})")]
    NotNewer {
        /// The imported commit's rev.
        imported: Tid,
        /// The current head's rev.
        head: Tid,
    },
    /// The spooled copy could not be read back.
    #[error("could not read the spooled CAR: {0}")]
    Spool(String),
    /// A storage failure.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<MstError> for ImportError {
    fn from(e: MstError) -> Self {
        ImportError::InvalidRepo(e.to_string())
    }
}

impl From<RepoError> for ImportError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Car(e) => ImportError::Car(e),
            other => ImportError::InvalidRepo(other.to_string()),
        }
    }
}

/// A block's identity in the index: codec and sha2-256 digest (40 bytes, where a [`Cid`] takes
/// about 100).
type BlockKey = (u64, [u8; 32]);

fn block_key(cid: &Cid) -> Option<BlockKey> {
    let codec = cid.codec();
    let digest: [u8; 32] = cid.hash().digest().try_into().ok()?;
    let supported = cid.version() == ::cid::Version::V1
        && cid.hash().code() == cid::SHA2_256
        && (codec == cid::DAG_CBOR || codec == cid::RAW);
    supported.then_some((codec, digest))
}

fn cid_of(key: &BlockKey) -> Cid {
    cid::cid_from_sha256(key.0, key.1)
}

/// Where a block's bytes are in the spooled file, and whether the repo needs it.
#[derive(Debug)]
struct Slot {
    offset: u64,
    len: u32,
    /// Set by [`SpooledCar::verify`] for the commit, every node and every record.
    reachable: AtomicBool,
}

/// A CAR spooled to a file, indexed: where each block's bytes are. A [`BlockSource`], so the
/// tree can be walked from the file.
#[derive(Debug)]
pub struct SpooledCar {
    file: File,
    roots: Vec<Cid>,
    index: BTreeMap<BlockKey, Slot>,
}

impl SpooledCar {
    /// Reads the CAR in `file` from the start, checking every block against its CID, and
    /// indexes it. Blocking: run it off the async runtime.
    pub fn index(file: File) -> Result<SpooledCar, ImportError> {
        let reader = BufReader::with_capacity(256 * 1024, &file);
        let mut stream = CarStream::new(reader, MAX_IMPORT_BLOCK)?;
        let roots = stream.roots().to_vec();
        let mut index = BTreeMap::new();
        for block in &mut stream {
            let block = block?;
            let key = block_key(&block.cid).ok_or(ImportError::UnsupportedCid(block.cid))?;
            // The frame limit keeps every length far below u32::MAX.
            let slot = Slot {
                offset: block.offset,
                len: block.data.len() as u32,
                reachable: AtomicBool::new(false),
            };
            index.insert(key, slot);
        }
        Ok(SpooledCar { file, roots, index })
    }

    /// Number of distinct blocks in the CAR.
    pub fn blocks(&self) -> usize {
        self.index.len()
    }

    fn read(&self, key: &BlockKey) -> Result<Option<Vec<u8>>, ImportError> {
        self.index
            .get(key)
            .map(|slot| self.read_slot(slot))
            .transpose()
    }

    fn read_slot(&self, slot: &Slot) -> Result<Vec<u8>, ImportError> {
        let mut bytes = vec![0u8; slot.len as usize];
        self.file
            .read_exact_at(&mut bytes, slot.offset)
            .map_err(|e| ImportError::Spool(e.to_string()))?;
        Ok(bytes)
    }

    /// Marks a block the repo needs (one the walk has just read from this CAR).
    fn mark(&self, key: &BlockKey) {
        if let Some(slot) = self.index.get(key) {
            slot.reachable.store(true, Ordering::Relaxed);
        }
    }

    fn read_cid(&self, cid: &Cid) -> Result<Option<Vec<u8>>, ImportError> {
        match block_key(cid) {
            Some(key) => self.read(&key),
            None => Ok(None),
        }
    }

    /// Checks the CAR is a repo of `did` signed by `key`: one root, a commit naming `did` whose
    /// signature verifies, a well-formed tree, and every record present as a DAG-CBOR map.
    /// Returns what [`import_repo`] needs. Blocking: run it off the async runtime.
    pub fn verify(
        self: &Arc<Self>,
        did: &Did,
        key: &PublicKey,
    ) -> Result<VerifiedRepo, ImportError> {
        let [root] = self.roots[..] else {
            return Err(ImportError::Roots(self.roots.len()));
        };
        let bytes = self.read_cid(&root)?.ok_or_else(|| {
            ImportError::InvalidRepo(format!("the root commit {root} is missing"))
        })?;
        let commit = Commit::decode(root, &bytes)?;
        if &commit.did != did {
            return Err(ImportError::WrongDid {
                expected: did.clone(),
                found: commit.did,
            });
        }
        commit
            .verify(key)
            .map_err(|_| ImportError::BadSignature(did.clone()))?;

        let source: Arc<dyn BlockSource> = self.clone();
        let tree = Mst::load(commit.data, source);
        let records = tree.verify_structure()?;
        self.mark(&block_key(&root).ok_or(ImportError::UnsupportedCid(root))?);
        let mut blobs: BTreeMap<Cid, Vec<String>> = BTreeMap::new();
        let mut failure = None;
        tree.walk_nodes(&mut |node| {
            let result = (|| {
                self.mark(&block_key(&node.cid).ok_or(ImportError::UnsupportedCid(node.cid))?);
                for (path, cid) in &node.leaves {
                    let key = block_key(cid).ok_or(ImportError::UnsupportedCid(*cid))?;
                    let bytes = self.read(&key)?.ok_or_else(|| {
                        ImportError::InvalidRepo(format!("record {path} ({cid}) is missing"))
                    })?;
                    let record = cbor::decode(&bytes).map_err(|e| {
                        ImportError::InvalidRepo(format!("record {path} is not DAG-CBOR: {e}"))
                    })?;
                    if !matches!(record, Value::Map(_)) {
                        return Err(ImportError::InvalidRepo(format!(
                            "record {path} is not an object"
                        )));
                    }
                    for blob in blob_refs(&record) {
                        blobs.entry(blob).or_default().push(path.clone());
                    }
                    self.mark(&key);
                }
                Ok(())
            })();
            match result {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failure = Some(e);
                    ControlFlow::Break(())
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        let blocks = self
            .index
            .values()
            .filter(|slot| slot.reachable.load(Ordering::Relaxed))
            .count();
        Ok(VerifiedRepo {
            commit_cid: root,
            commit,
            records,
            blocks,
            blobs,
        })
    }
}

impl BlockSource for SpooledCar {
    fn read_block(&self, cid: &Cid) -> Option<Vec<u8>> {
        // A read error looks like a missing block to the tree, which fails verification.
        self.read_cid(cid).ok().flatten()
    }
}

/// A CAR that [`SpooledCar::verify`] accepted.
#[derive(Debug)]
pub struct VerifiedRepo {
    /// The commit's CID.
    pub commit_cid: Cid,
    /// The commit.
    pub commit: Commit,
    /// Number of records.
    pub records: usize,
    /// Number of blocks the repo needs (commit, nodes, records; shared blocks once).
    pub blocks: usize,
    /// The blobs the records reference, with the paths of the records referencing each.
    blobs: BTreeMap<Cid, Vec<String>>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOutcome {
    /// The new head.
    pub commit: Cid,
    /// Its rev.
    pub rev: Tid,
    /// Number of records in the imported repo.
    pub records: usize,
    /// Number of blocks written.
    pub blocks: usize,
    /// Blobs the records reference that are not uploaded yet.
    pub missing_blobs: usize,
    /// False when the repo already had this head (a repeated import).
    pub moved: bool,
}

/// Imports `repo` (verified from `car`) into `did`'s repo; see the module documentation for the
/// order of writes. Refused for a repo that is taken down, suspended or deleted.
pub async fn import_repo(
    storage: &dyn Storage,
    blobs: &dyn BlobStore,
    view: &BlockView,
    did: &Did,
    car: Arc<SpooledCar>,
    repo: VerifiedRepo,
) -> Result<ImportOutcome, ImportError> {
    let record = storage
        .load_repo(did)
        .await?
        .ok_or_else(|| StorageError::RepoNotFound(did.clone()))?;
    let active = record.status.is_active();
    if !active && record.status != RepoStatus::Deactivated {
        return Err(StorageError::InactiveRepo(did.clone(), record.status).into());
    }
    let moved = record.head != repo.commit_cid;
    if moved && active && repo.commit.rev <= record.rev {
        return Err(ImportError::NotNewer {
            imported: repo.commit.rev,
            head: record.rev,
        });
    }

    let blocks_written = std::time::Instant::now();
    write_blocks(storage, &car).await?;
    let accounts = Accounts(storage);
    let mut missing_blobs = 0;
    for (blob, paths) in &repo.blobs {
        if !add_blob_refs(&accounts, did, blob, paths).await? {
            missing_blobs += 1;
        }
    }
    if moved {
        let events = match active {
            true => vec![EventBody::Sync {
                commit: repo.commit_cid,
                rev: repo.commit.rev,
            }],
            false => vec![],
        };
        let old_head = record.head;
        // Past the block collector's landing limit the oldest blocks may be collected before
        // the head names them (`super::collect`); importing again writes them anew.
        if blocks_written.elapsed() > super::BLOCK_LANDING_LIMIT {
            return Err(StorageError::Conflict(did.clone()).into());
        }
        storage
            .replace_head(did, old_head, repo.commit_cid, repo.commit.rev, events)
            .await?;
        drop_replaced_refs(storage, blobs, view, did, old_head, &car, &repo).await?;
    }
    Ok(ImportOutcome {
        commit: repo.commit_cid,
        rev: repo.commit.rev,
        records: repo.records,
        blocks: repo.blocks,
        missing_blobs,
        moved,
    })
}

/// Writes the blocks [`SpooledCar::verify`] marked, a bounded batch at a time, in key order (the
/// order the stores index blocks in): a blocking task reads the next batches from the file while
/// the current one is written.
async fn write_blocks(storage: &dyn Storage, car: &Arc<SpooledCar>) -> Result<(), ImportError> {
    let (batches, mut ready) = tokio::sync::mpsc::channel::<BlockMap>(2);
    let reader_car = car.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let mut batch = BlockMap::new();
        for (key, slot) in &reader_car.index {
            if !slot.reachable.load(Ordering::Relaxed) {
                continue;
            }
            batch.insert(cid_of(key), reader_car.read_slot(slot)?);
            let full = batch.len() >= WRITE_BATCH_BLOCKS || batch.byte_len() >= WRITE_BATCH_BYTES;
            if full && batches.blocking_send(std::mem::take(&mut batch)).is_err() {
                // The writer stopped on an error of its own, which it reports.
                return Ok(());
            }
        }
        if !batch.is_empty() {
            let _ = batches.blocking_send(batch);
        }
        Ok::<(), ImportError>(())
    });
    while let Some(batch) = ready.recv().await {
        storage.write_blocks(&batch).await?;
    }
    reader
        .await
        .map_err(|e| ImportError::Spool(e.to_string()))?
}

/// Adds `paths` to the references of `did`'s blob `blob`: to its record if it was uploaded
/// (returns true), else to the blob's expected entry (returns false), so an upload later
/// finds it already referenced and it is not swept as temporary.
async fn add_blob_refs(
    accounts: &Accounts<'_>,
    did: &Did,
    blob: &Cid,
    paths: &[String],
) -> Result<bool, StorageError> {
    let key = blob.to_string();
    let merge = |refs: &mut Vec<String>| {
        for p in paths {
            if !refs.contains(p) {
                refs.push(p.clone());
            }
        }
    };
    let uploaded = accounts
        .update_blob(did, &key, |record| {
            merge(&mut record.refs);
            Ok::<_, StorageError>(())
        })
        .await?;
    if uploaded.is_some() {
        return Ok(true);
    }
    let mut refs = accounts
        .get_expected_blob(did, &key)
        .await?
        .unwrap_or_default();
    merge(&mut refs);
    accounts.put_expected_blob(did, &key, &refs).await?;
    Ok(false)
}

/// After the head moved off `old_head`: the records of the old tree that the import replaced or
/// removed no longer reference their blobs. A blob left with no reference is deleted, as after
/// a record deletion. (Done after the move, so a failed import never drops a live reference.)
async fn drop_replaced_refs(
    storage: &dyn Storage,
    blobs: &dyn BlobStore,
    view: &BlockView,
    did: &Did,
    old_head: Cid,
    car: &Arc<SpooledCar>,
    repo: &VerifiedRepo,
) -> Result<(), ImportError> {
    let mut old = load_head(storage, view, old_head).await?;
    fetch_tree(storage, view, &mut old).await?;
    let old_leaves = old.mst().leaves().map_err(RepoError::from)?;
    if old_leaves.is_empty() {
        return Ok(());
    }
    let source: Arc<dyn BlockSource> = car.clone();
    let new_tree = Mst::load(repo.commit.data, source);
    let mut replaced = Vec::new();
    for (path, cid) in old_leaves {
        if new_tree.get(&path)? != Some(cid) {
            replaced.push((path, cid));
        }
    }
    let accounts = Accounts(storage);
    for chunk in replaced.chunks(WRITE_BATCH_BLOCKS) {
        let cids: Vec<Cid> = chunk.iter().map(|(_, c)| *c).collect();
        let found = storage.read_blocks(&cids).await?;
        for (path, cid) in chunk {
            let Some(bytes) = found.get(cid) else {
                continue;
            };
            let Ok(record) = cbor::decode(bytes) else {
                continue;
            };
            for blob in blob_refs(&record) {
                let still = repo.blobs.get(&blob).is_some_and(|p| p.contains(path));
                if !still {
                    drop_blob_ref(&accounts, blobs, did, &blob, path).await?;
                }
            }
        }
    }
    Ok(())
}

async fn drop_blob_ref(
    accounts: &Accounts<'_>,
    blobs: &dyn BlobStore,
    did: &Did,
    blob: &Cid,
    path: &str,
) -> Result<(), StorageError> {
    let key = blob.to_string();
    let updated = accounts
        .update_blob(did, &key, |record| {
            record.refs.retain(|p| p != path);
            Ok::<_, StorageError>(())
        })
        .await?;
    if let Some(record) = updated {
        // Record first, bytes after: a reference added meanwhile keeps both.
        if record.unreferenced()
            && accounts
                .delete_blob_if_unreferenced(did, &key, |_| true)
                .await?
        {
            blobs.delete(did, blob).await?;
        }
    } else if let Some(mut refs) = accounts.get_expected_blob(did, &key).await? {
        refs.retain(|p| p != path);
        if refs.is_empty() {
            accounts.delete_expected_blob(did, &key).await?;
        } else {
            accounts.put_expected_blob(did, &key, &refs).await?;
        }
    }
    Ok(())
}
