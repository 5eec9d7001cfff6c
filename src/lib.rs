//! arroba: a cloud-native AT Protocol (Bluesky) Personal Data Server.
//!
//! # Layout
//! Each layer is a module and uses only the layers below it.
//! - Data model (no I/O): [`cbor`] (values, DAG-CBOR, JSON form), [`cid`], [`syntax`]
//!   (identifier newtypes), [`tid`], [`crypto`] (keys, signatures, did:key), [`car`] (CAR v1).
//! - Repository: [`mst`] (the Merkle Search Tree) and [`repo`] (signed commits, writes,
//!   verification and Sync 1.1 operation inversion).
//! - [`storage`]: the `Storage` trait, its backends, and the commit driver that runs repo
//!   logic against a backend with retries.
//! - [`cli`]: the `arroba` command-line tool; the binaries in `src/bin/` only call into it.
//!
//! # Example
//! ```
//! use arroba::cbor::{encode, map};
//! use arroba::cid::cid_for_cbor;
//!
//! let bytes = encode(&map([("foo", "bar".into())]));
//! assert_eq!(
//!     cid_for_cbor(&bytes).to_string(),
//!     "bafyreiblaotetvwobe7cu2uqvnddr6ew2q3cu75qsoweulzku2egca4dxq"
//! );
//! ```

pub mod accounts;
pub mod app;
pub mod block;
pub mod car;
pub mod cbor;
pub mod cid;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod firehose;
pub mod identity;
pub mod lexicon;
pub mod mst;
pub mod plc;
pub mod repo;
pub mod storage;
pub mod syntax;
pub mod tid;
pub mod xrpc;
