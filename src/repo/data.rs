//! [`CommitData`]: everything a store and the firehose need from one commit.

use crate::block::BlockMap;
use crate::car::car_bytes;
use crate::cid::Cid;
use crate::syntax::Did;
use crate::tid::Tid;

use super::{Commit, RepoOp};

/// The result of making a commit.
#[derive(Debug, Clone)]
pub struct CommitData {
    /// The account.
    pub did: Did,
    /// The CID of the new commit block.
    pub cid: Cid,
    /// The new commit.
    pub commit: Commit,
    /// The previous commit's CID (None for the genesis commit).
    pub prev: Option<Cid>,
    /// The previous commit's rev (`since` on the firehose).
    pub since: Option<Tid>,
    /// The previous commit's MST root (`prevData` on the firehose).
    pub prev_data: Option<Cid>,
    /// The operations, in the order the writes were given.
    pub ops: Vec<RepoOp>,
    /// Blocks the store does not have yet: the commit, new MST nodes, new records.
    pub new_blocks: BlockMap,
    /// Blocks the firehose needs beside the new ones: covering-proof nodes that already existed
    /// (and created or updated records whose blocks already existed).
    pub relevant_blocks: BlockMap,
}

impl CommitData {
    /// The commit's rev.
    pub fn rev(&self) -> Tid {
        self.commit.rev
    }

    /// The firehose `blocks` CAR: rooted at the commit, holding the new and relevant blocks.
    pub fn car_slice(&self) -> Vec<u8> {
        car_bytes(
            &[self.cid],
            self.new_blocks.iter().chain(self.relevant_blocks.iter()),
        )
    }

    /// The CIDs that make up the firehose slice.
    pub fn slice_cids(&self) -> Vec<Cid> {
        self.new_blocks
            .cids()
            .chain(self.relevant_blocks.cids())
            .copied()
            .collect()
    }

    /// Total bytes of the firehose slice's blocks.
    pub fn slice_bytes(&self) -> usize {
        self.new_blocks.byte_len() + self.relevant_blocks.byte_len()
    }
}
