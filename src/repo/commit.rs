//! The signed commit object, repo format version 3.

use crate::cbor::{self, Value, map};
use crate::cid::{Cid, cid_for_cbor};
use crate::crypto::{Keypair, PublicKey};
use crate::syntax::Did;
use crate::tid::Tid;

use super::RepoError;

/// A v3 commit: `{did, version: 3, data, rev, prev, sig}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The account.
    pub did: Did,
    /// The MST root.
    pub data: Cid,
    /// The revision, a TID that increases with every commit.
    pub rev: Tid,
    /// The previous commit; written as an explicit null when absent, as the signature requires.
    pub prev: Option<Cid>,
    /// The 64-byte compact signature.
    pub sig: Vec<u8>,
}

impl Commit {
    /// Signs a new commit with `key`.
    pub fn sign(did: Did, data: Cid, rev: Tid, prev: Option<Cid>, key: &Keypair) -> Commit {
        let mut commit = Commit {
            did,
            data,
            rev,
            prev,
            sig: Vec::new(),
        };
        commit.sig = key.sign(&cbor::encode(&commit.unsigned())).to_vec();
        commit
    }

    /// The five fields that are signed (everything but `sig`).
    fn unsigned(&self) -> Value {
        map([
            ("did", Value::String(self.did.to_string())),
            ("version", Value::Integer(3)),
            ("data", Value::Link(self.data)),
            ("rev", Value::String(self.rev.to_string())),
            ("prev", self.prev.into()),
        ])
    }

    /// The signed commit's DAG-CBOR bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut value = self.unsigned();
        if let Value::Map(m) = &mut value {
            m.insert("sig".into(), Value::Bytes(self.sig.clone()));
        }
        cbor::encode(&value)
    }

    /// The commit's CID.
    pub fn cid(&self) -> Cid {
        cid_for_cbor(&self.encode())
    }

    /// Decodes commit `cid`. Accepts version 3, and version 2 (which may lack `rev` and `prev`;
    /// it is read with `prev` absent), rejects anything else.
    pub fn decode(cid: Cid, bytes: &[u8]) -> Result<Commit, RepoError> {
        let invalid = |why| RepoError::InvalidCommit(cid, why);
        let value = cbor::decode(bytes).map_err(|e| RepoError::Cbor(cid, e))?;
        let version = value.get("version").and_then(Value::as_integer);
        if !matches!(version, Some(2 | 3)) {
            return Err(invalid("version is not 3"));
        }
        let did = value
            .get("did")
            .and_then(Value::as_str)
            .ok_or(invalid("missing did"))?;
        let did = Did::parse(did).map_err(|_| invalid("did is not a valid DID"))?;
        let data = *value
            .get("data")
            .and_then(Value::as_link)
            .ok_or(invalid("missing data"))?;
        let rev = value
            .get("rev")
            .and_then(Value::as_str)
            .ok_or(invalid("missing rev"))?;
        let rev = Tid::parse(rev).map_err(|_| invalid("rev is not a TID"))?;
        let prev = match value.get("prev") {
            Some(Value::Link(c)) => Some(*c),
            Some(Value::Null) => None,
            None if version == Some(2) => None,
            _ => return Err(invalid("prev must be present, a link or null")),
        };
        let sig = value
            .get("sig")
            .and_then(Value::as_bytes)
            .ok_or(invalid("missing sig"))?;
        let commit = Commit {
            did,
            data,
            rev,
            prev,
            sig: sig.to_vec(),
        };
        if version == Some(3) && commit.encode() != bytes {
            return Err(invalid("unexpected fields"));
        }
        Ok(commit)
    }

    /// Checks the signature against `key`.
    pub fn verify(&self, key: &PublicKey) -> Result<(), RepoError> {
        Ok(key.verify(&cbor::encode(&self.unsigned()), &self.sig)?)
    }
}
