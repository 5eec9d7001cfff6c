//! arroba: a cloud-native AT Protocol (Bluesky) Personal Data Server.
//!
//! # Layout
//! Each layer is a module and uses only the layers below it, bottom first.
//! - Data model (no I/O): [`cbor`] (values, DAG-CBOR, JSON form), [`cid`], [`syntax`]
//!   (identifier newtypes), [`tid`], [`crypto`] (keys, signatures, did:key), [`car`] (CAR v1),
//!   [`block`] (block maps and sources), and [`config`] (reading `PDS_*` settings, a pure map).
//! - Repository: [`mst`] (the Merkle Search Tree) and [`repo`] (signed commits, writes,
//!   verification and Sync 1.1 operation inversion); [`lexicon`] validates records and bodies.
//! - [`storage`] (the storage roles, their backends, the block cache, and the commit driver)
//!   and [`identity`] (DIDs, handles, PLC operations, service-auth JWTs): the first to do I/O.
//!   [`plc`] is a PLC directory server built on [`identity`]; [`mail`] sends e-mail.
//! - [`accounts`]: account flows (creation, login, app passwords, status, handles, invites);
//!   [`oauth`]: the OAuth authorization server's flow and DPoP checks, over the key-value store.
//! - [`xrpc`] (the one router for every method) and [`firehose`] (`subscribeRepos`).
//! - [`app`]: the composition root that builds every process's services from configuration.
//! - [`cli`]: the `arroba` command line; the binaries in `src/bin/` only call into it or
//!   [`app`].
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
pub mod mail;
pub mod mst;
pub mod oauth;
pub mod plc;
pub mod repo;
pub mod storage;
pub mod syntax;
pub mod tid;
pub mod xrpc;
