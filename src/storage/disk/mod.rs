//! [`DiskStorage`]: the storage roles on an embedded redb file, the default for running a PDS
//! locally (`arroba serve`).
//!
//! Every write is a closure run by one writer thread inside a redb write transaction; the
//! writer takes every job waiting in its queue, runs them in order in one transaction, and
//! commits (one fsync) before answering any of them: group commit. Jobs check their conditions
//! before writing anything, so a job that fails leaves nothing in the shared transaction.
//! Sequence numbers are assigned inside that transaction, so the log has no gaps. Readers use
//! redb's snapshot isolation and never wait for the writer. One file per role: `repos`,
//! `blocks`, `events`, `kv`; the tables and shared helpers are in `store`, the block index's
//! newest entries in `recent`.

mod blocks;
mod events;
mod kv;
mod recent;
mod records;
mod repos;
mod store;
mod writer;

pub use store::DiskStorage;
