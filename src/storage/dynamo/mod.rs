//! [`DynamoStorage`]: the storage trait on DynamoDB, correct with many writers at once.
//!
//! The AWS SDK appears only here. Table layout, access patterns and costs are in
//! `docs/dynamodb.md`; the definitions in [`tables`] are the single source for
//! `arroba dynamodb create-tables` and the infrastructure code.
//!
//! Commits: blocks first (idempotent batch puts), then a sequence number from an atomic
//! counter, then one `TransactWriteItems` that puts the event under that number
//! (`attribute_not_exists`) and moves the repo head (condition on the previous head). A writer
//! whose number was claimed by the sequencer's "skipped" marker takes a new number; a writer
//! that lost the head race marks its number skipped itself, so readers never wait for it.

mod client;
mod items;
mod store;
pub mod tables;

pub use client::{DynamoConfig, DynamoMetrics};
pub use store::DynamoStorage;
