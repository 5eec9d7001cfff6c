//! [`DynamoStorage`]: the storage roles on DynamoDB, correct with many writers at once.
//!
//! The AWS SDK appears only here and in the S3 blob store. Table layout, access patterns and
//! costs are in `docs/dynamodb.md`; the definitions in [`tables`] are the single source for
//! `arroba dynamodb create-tables` and the infrastructure code.
//!
//! Commits: blocks first (idempotent batch puts), then a sequence number from an atomic
//! counter, then one `TransactWriteItems` that puts the event under that number
//! (`attribute_not_exists`) and moves the repo head (condition on the previous head). A writer
//! whose number was claimed by the sequencer's "skipped" marker takes a new number; a writer
//! that lost the head race marks its number skipped itself, so readers never wait for it.
//! A repo item holds the account's sealed keys beside the record; reads of the record project
//! them away, so a process without key-encryption keys (the firehose task) never fetches them.
//!
//! Files: `store` (the client), `requests` (batching, paging, the event transaction), one file
//! per role (`repos`, `blocks`, `events`, `kv`), `items` (our records as items), `setup`
//! (creating the tables).

mod blocks;
mod client;
mod events;
mod items;
mod kv;
mod repos;
mod requests;
mod setup;
mod store;
pub mod tables;

pub use client::{DynamoConfig, DynamoMetrics};
pub use store::DynamoStorage;
