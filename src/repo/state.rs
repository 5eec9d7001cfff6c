//! [`Repo`]: a repo at one commit, and making the next commit.

use std::collections::HashSet;
use std::sync::Arc;

use crate::block::{BlockMap, BlockSource};
use crate::cbor::{self, Value};
use crate::cid::{Cid, cid_for_cbor};
use crate::crypto::Keypair;
use crate::mst::{Mst, diff};
use crate::syntax::{Did, Nsid, RecordKey};
use crate::tid::Tid;

use super::{
    Commit, CommitData, MAX_COMMIT_BLOCKS_BYTES, MAX_RECORD_BYTES, MAX_WRITES, RepoError, RepoOp,
    Write, WriteAction,
};

/// A repo at one commit.
#[derive(Debug, Clone)]
pub struct Repo {
    commit: Commit,
    cid: Cid,
    mst: Mst,
}

impl Repo {
    /// The genesis commit of a new, empty repo for `did`, signed with `key` at `rev`.
    pub fn create(
        did: Did,
        key: &Keypair,
        rev: Tid,
        source: Arc<dyn BlockSource>,
    ) -> (Repo, CommitData) {
        let mst = Mst::new(source);
        let mut new_blocks = BlockMap::new();
        let root = mst.root_cid();
        new_blocks.insert(
            root,
            cbor::encode(&cbor::map([
                ("e", Value::Array(Vec::new())),
                ("l", Value::Null),
            ])),
        );
        let commit = Commit::sign(did.clone(), root, rev, None, key);
        let cid = commit.cid();
        new_blocks.insert(cid, commit.encode());
        let data = CommitData {
            did,
            cid,
            commit: commit.clone(),
            prev: None,
            since: None,
            prev_data: None,
            ops: Vec::new(),
            new_blocks,
            relevant_blocks: BlockMap::new(),
        };
        (Repo { commit, cid, mst }, data)
    }

    /// A repo whose single (genesis) commit already holds `records` (`(path, record)` pairs):
    /// for building repos offline, e.g. `arroba repo create`. Paths must be unique and valid;
    /// records obey the usual size limit. No write-count limit applies, as nothing is broadcast.
    pub fn create_with_records(
        did: Did,
        key: &Keypair,
        rev: Tid,
        records: impl IntoIterator<Item = (String, Value)>,
    ) -> Result<Repo, RepoError> {
        let mut blocks = BlockMap::new();
        let mut entries = Vec::new();
        for (path, record) in records {
            let (cid, bytes) = encode_record(&path, &record)?;
            blocks.insert(cid, bytes);
            entries.push((path, cid));
        }
        let mut mst = Mst::new(Arc::new(blocks));
        for (path, cid) in entries {
            mst.insert(&path, cid).map_err(|e| match e {
                crate::mst::MstError::AlreadyExists(p) => RepoError::DuplicatePath(p),
                other => other.into(),
            })?;
        }
        let commit = Commit::sign(did, mst.root_cid(), rev, None, key);
        let cid = commit.cid();
        Ok(Repo { commit, cid, mst })
    }

    /// The repo whose head is commit `cid`, reading blocks from `source` lazily.
    pub fn load(cid: Cid, source: Arc<dyn BlockSource>) -> Result<Repo, RepoError> {
        let bytes = source
            .read_block(&cid)
            .ok_or(RepoError::MissingBlock(cid))?;
        let commit = Commit::decode(cid, &bytes)?;
        let mst = Mst::load(commit.data, source);
        Ok(Repo { commit, cid, mst })
    }

    /// The account DID.
    pub fn did(&self) -> &Did {
        &self.commit.did
    }

    /// The head commit.
    pub fn commit(&self) -> &Commit {
        &self.commit
    }

    /// The head commit's CID.
    pub fn head(&self) -> Cid {
        self.cid
    }

    /// The head commit's rev.
    pub fn rev(&self) -> Tid {
        self.commit.rev
    }

    /// The record tree.
    pub fn mst(&self) -> &Mst {
        &self.mst
    }

    /// [`Mst::load_from_source`] on this repo's tree (which keeps its root).
    pub fn load_tree_from_source(&mut self) -> Result<Vec<Cid>, crate::mst::MstError> {
        self.mst.load_from_source()
    }

    /// The CID of the record at `collection/rkey`, if any.
    pub fn record_cid(
        &self,
        collection: &Nsid,
        rkey: &RecordKey,
    ) -> Result<Option<Cid>, RepoError> {
        Ok(self.mst.get(&format!("{collection}/{rkey}"))?)
    }

    /// The record at `collection/rkey` and its CID, if any.
    pub fn get_record(
        &self,
        collection: &Nsid,
        rkey: &RecordKey,
    ) -> Result<Option<(Cid, Value)>, RepoError> {
        let Some(cid) = self.record_cid(collection, rkey)? else {
            return Ok(None);
        };
        Ok(Some((cid, self.read_record(&cid)?)))
    }

    /// Reads and decodes record block `cid`.
    pub fn read_record(&self, cid: &Cid) -> Result<Value, RepoError> {
        let bytes = self
            .mst
            .source()
            .read_block(cid)
            .ok_or(RepoError::MissingBlock(*cid))?;
        cbor::decode(&bytes).map_err(|e| RepoError::Cbor(*cid, e))
    }

    /// Applies `writes` as one commit signed with `key` at `rev`, returning the repo at the new
    /// commit and what to store and broadcast. Nothing changes on error: `self` is untouched.
    ///
    /// Rules: at most [`MAX_WRITES`] writes, one per path; creates need a new path, updates
    /// and deletes an existing one; records are maps of at most [`MAX_RECORD_BYTES`]; an update
    /// to identical content produces no op; the firehose slice stays within
    /// [`MAX_COMMIT_BLOCKS_BYTES`]; `rev` must be after the current rev.
    pub fn apply_writes(
        &self,
        writes: &[Write],
        key: &Keypair,
        rev: Tid,
    ) -> Result<(Repo, CommitData), RepoError> {
        if writes.len() > MAX_WRITES {
            return Err(RepoError::TooManyWrites(writes.len()));
        }
        if rev <= self.commit.rev {
            return Err(RepoError::RevNotIncreasing {
                prev: self.commit.rev,
                new: rev,
            });
        }
        // The paths are decoded once, into a base both trees share: the writes below and the
        // diff against the base then find the nodes loaded.
        let mut base = self.mst.clone();
        for write in writes {
            base.load_path(&write.path())?;
        }
        let mut mst = base.clone();
        let mut ops = Vec::with_capacity(writes.len());
        let mut records = BlockMap::new();
        let mut seen = HashSet::with_capacity(writes.len());
        for write in writes {
            let path = write.path();
            if !seen.insert(path.clone()) {
                return Err(RepoError::DuplicatePath(path));
            }
            let prev = mst.get(&path)?;
            let cid = match write.action {
                WriteAction::Delete => None,
                WriteAction::Create | WriteAction::Update => {
                    let record = write
                        .record
                        .as_ref()
                        .ok_or_else(|| RepoError::RecordNotAnObject(path.clone()))?;
                    let (cid, bytes) = encode_record(&path, record)?;
                    records.insert(cid, bytes);
                    Some(cid)
                }
            };
            match (write.action, prev, cid) {
                (WriteAction::Create, Some(_), _) => return Err(RepoError::RecordExists(path)),
                (WriteAction::Create, None, Some(cid)) => mst.insert(&path, cid)?,
                (WriteAction::Update | WriteAction::Delete, None, _) => {
                    return Err(RepoError::RecordNotFound(path));
                }
                // Rewriting identical content changes nothing, so it is not an op.
                (WriteAction::Update, Some(p), Some(cid)) if p == cid => continue,
                (WriteAction::Update, Some(_), Some(cid)) => mst.update(&path, cid)?,
                (WriteAction::Delete, Some(_), _) => mst.delete(&path)?,
                (WriteAction::Create | WriteAction::Update, _, None) => {
                    unreachable!("records have CIDs")
                }
            }
            ops.push(RepoOp {
                action: write.action,
                path,
                cid,
                prev,
            });
        }
        let changes = diff(&base, &mst)?;
        let mut new_blocks = changes.new_nodes;
        let mut relevant_blocks = BlockMap::new();
        for op in &ops {
            mst.covering_blocks(&op.path, &mut relevant_blocks)?;
        }
        for (cid, bytes) in records {
            new_blocks.insert(cid, bytes);
        }
        let commit = Commit::sign(
            self.commit.did.clone(),
            mst.root_cid(),
            rev,
            Some(self.cid),
            key,
        );
        let cid = commit.cid();
        new_blocks.insert(cid, commit.encode());
        let new_cids: Vec<Cid> = new_blocks.cids().copied().collect();
        for c in &new_cids {
            relevant_blocks.remove(c);
        }
        let data = CommitData {
            did: self.commit.did.clone(),
            cid,
            commit: commit.clone(),
            prev: Some(self.cid),
            since: Some(self.commit.rev),
            prev_data: Some(self.commit.data),
            ops,
            new_blocks,
            relevant_blocks,
        };
        if data.slice_bytes() > MAX_COMMIT_BLOCKS_BYTES {
            return Err(RepoError::CommitTooLarge(data.slice_bytes()));
        }
        Ok((Repo { commit, cid, mst }, data))
    }

    /// Re-signs the current tree in a new, empty commit (after a key rotation or reactivation).
    pub fn resign(&self, key: &Keypair, rev: Tid) -> Result<(Repo, CommitData), RepoError> {
        self.apply_writes(&[], key, rev)
    }
}

fn encode_record(path: &str, record: &Value) -> Result<(Cid, Vec<u8>), RepoError> {
    if record.as_map().is_none() {
        return Err(RepoError::RecordNotAnObject(path.to_owned()));
    }
    let bytes = cbor::encode(record);
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(RepoError::RecordTooLarge {
            path: path.to_owned(),
            size: bytes.len(),
        });
    }
    Ok((cid_for_cbor(&bytes), bytes))
}
