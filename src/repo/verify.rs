//! Checking other people's commits: a whole repo CAR, and a firehose commit the way a relay
//! checks it (signature, then Sync 1.1 operation inversion back to `prevData`).

use std::sync::Arc;

use crate::block::BlockMap;
use crate::car::{Car, CarError, read_car};
use crate::cid::Cid;
use crate::crypto::PublicKey;
use crate::mst::{Mst, MstError};

use super::{Commit, RepoError, RepoOp, WriteAction};

/// What [`verify_repo_car`] found in a valid repo export.
#[derive(Debug, Clone)]
pub struct RepoReport {
    /// The head commit's CID.
    pub commit_cid: Cid,
    /// The head commit.
    pub commit: Commit,
    /// Number of records.
    pub records: usize,
    /// Number of blocks in the CAR.
    pub blocks: usize,
}

/// The CAR's first root and the commit it names.
fn root_commit(car: &Car) -> Result<(Cid, Commit), RepoError> {
    let cid = *car.roots.first().ok_or(CarError::Header("no root"))?;
    let bytes = car.blocks.get(&cid).ok_or(RepoError::MissingBlock(cid))?;
    Ok((cid, Commit::decode(cid, bytes)?))
}

/// Verifies a full repo export: every block matches its CID, the root commit decodes (and its
/// signature verifies if `key` is given), the MST is well formed, and every record is present.
pub fn verify_repo_car(bytes: &[u8], key: Option<&PublicKey>) -> Result<RepoReport, RepoError> {
    let car = read_car(bytes)?;
    let (commit_cid, commit) = root_commit(&car)?;
    if let Some(key) = key {
        commit.verify(key)?;
    }
    let blocks = Arc::new(car.blocks);
    let mst = Mst::load(commit.data, blocks.clone());
    let records = mst.verify_structure()?;
    for (_, cid) in mst.leaves()? {
        if !blocks.contains(&cid) {
            return Err(RepoError::MissingBlock(cid));
        }
    }
    Ok(RepoReport {
        commit_cid,
        commit,
        records,
        blocks: blocks.len(),
    })
}

/// Checks a firehose `#commit` the way a Sync 1.1 relay does: the CAR slice is rooted at the
/// commit, the commit verifies against `key`, and applying the inverse of each op to the
/// slice's partial tree (create → delete, update → restore `prev`, delete → re-insert `prev`)
/// gives `prev_data`. With no `prev_data` (a first commit) the inversion is skipped.
pub fn verify_commit_slice(
    car: &[u8],
    ops: &[RepoOp],
    prev_data: Option<Cid>,
    key: &PublicKey,
) -> Result<Commit, RepoError> {
    let car = read_car(car)?;
    let (_, commit) = root_commit(&car)?;
    commit.verify(key)?;
    if let Some(prev_data) = prev_data {
        let got = invert_ops(commit.data, car.blocks, ops)?;
        if got != prev_data {
            return Err(RepoError::InversionMismatch {
                expected: Some(prev_data),
                got,
            });
        }
    }
    Ok(commit)
}

/// Applies the inverse of `ops` to the tree at `root` built from `blocks` alone; returns the
/// resulting root. A block the slice lacks is an error (the proof is incomplete).
pub fn invert_ops(root: Cid, blocks: BlockMap, ops: &[RepoOp]) -> Result<Cid, RepoError> {
    let mut mst = Mst::load(root, Arc::new(blocks));
    for op in ops {
        let mismatch = || RepoError::OpMismatch(op.path.clone());
        let current = mst.get(&op.path)?;
        if current != op.cid {
            return Err(mismatch());
        }
        match (op.action, op.prev) {
            (WriteAction::Create, None) => mst.delete(&op.path)?,
            (WriteAction::Update, Some(prev)) => mst.update(&op.path, prev)?,
            (WriteAction::Delete, Some(prev)) => {
                mst.insert(&op.path, prev).map_err(|e| match e {
                    MstError::AlreadyExists(_) => mismatch(),
                    other => other.into(),
                })?
            }
            _ => return Err(mismatch()),
        }
    }
    Ok(mst.root_cid())
}
