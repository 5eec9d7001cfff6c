//! The Merkle Search Tree (https://atproto.com/specs/repository#mst-structure): the sorted,
//! content-addressed map from record paths to record CIDs at the heart of every repo.
//!
//! [`Mst`] is persistent: nodes are shared behind `Arc`s and copied only on the path a mutation
//! touches, so cloning a tree is O(1) and a failed multi-write commit simply drops its copy.
//! Nodes load lazily from a [`crate::block::BlockSource`]; a node the source lacks surfaces as
//! [`MstError::MissingBlock`] before anything is changed, so storage-backed callers can fetch it
//! and retry. Node CIDs are computed lazily and cached.
//!
//! Also here: [`diff`] of two trees (records and nodes created and deleted), the covering-proof
//! block sets Sync 1.1 needs for operation inversion, and structural verification. Commits and
//! signatures are in [`crate::repo`].

mod diff;
mod error;
mod key;
mod links;
mod node;
mod proof;
mod tree;
mod walk;

pub use diff::{MstDiff, RecordChange, diff};
pub use error::MstError;
pub use key::{MAX_KEY_LEN, common_prefix_len, height_for_key, validate_key};
pub use links::{LinkEntry, NodeLinks};
pub use tree::Mst;
pub use walk::{ExportBlock, NodeVisit};
