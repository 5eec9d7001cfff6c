//! The stored (DAG-CBOR) form of events and repo keys, shared by the persistent backends.

use crate::cbor::{self, Value, map};
use crate::cid::Cid;
use crate::crypto::{Algorithm, Keypair};
use crate::repo::{RepoOp, WriteAction};
use crate::syntax::Handle;
use crate::tid::Tid;

use super::{CommitEvent, EventBody, RepoStatus};

/// Why stored bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored record is malformed: {0}")]
pub struct CodecError(pub &'static str);

fn cid_list(cids: &[Cid]) -> Value {
    Value::Array(cids.iter().map(|c| Value::Link(*c)).collect())
}

/// Encodes an event body.
pub fn encode_event(body: &EventBody) -> Vec<u8> {
    let value = match body {
        EventBody::Commit(c) => map([
            ("t", "commit".into()),
            ("commit", Value::Link(c.commit)),
            ("rev", c.rev.to_string().into()),
            ("since", c.since.map(|s| s.to_string()).into()),
            ("prevData", c.prev_data.into()),
            ("blocks", cid_list(&c.blocks)),
            (
                "ops",
                Value::Array(
                    c.ops
                        .iter()
                        .map(|op| {
                            map([
                                ("action", op.action.as_str().into()),
                                ("path", op.path.as_str().into()),
                                ("cid", op.cid.into()),
                                ("prev", op.prev.into()),
                            ])
                        })
                        .collect(),
                ),
            ),
        ]),
        EventBody::Identity { handle } => map([
            ("t", "identity".into()),
            ("handle", handle.as_ref().map(|h| h.to_string()).into()),
        ]),
        EventBody::Account { active, status } => map([
            ("t", "account".into()),
            ("active", (*active).into()),
            (
                "status",
                status
                    .map(|s| s.as_str())
                    .map(Value::from)
                    .unwrap_or(Value::Null),
            ),
        ]),
        EventBody::Sync { commit, rev } => map([
            ("t", "sync".into()),
            ("commit", Value::Link(*commit)),
            ("rev", rev.to_string().into()),
        ]),
    };
    cbor::encode(&value)
}

fn opt_cid(v: Option<&Value>) -> Result<Option<Cid>, CodecError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Link(c)) => Ok(Some(*c)),
        _ => Err(CodecError("expected a link or null")),
    }
}

fn tid(v: Option<&Value>) -> Result<Tid, CodecError> {
    v.and_then(Value::as_str)
        .and_then(|s| Tid::parse(s).ok())
        .ok_or(CodecError("expected a TID"))
}

/// Decodes an event body.
pub fn decode_event(bytes: &[u8]) -> Result<EventBody, CodecError> {
    let v = cbor::decode(bytes).map_err(|_| CodecError("not DAG-CBOR"))?;
    match v.get("t").and_then(Value::as_str) {
        Some("commit") => {
            let ops = v
                .get("ops")
                .and_then(Value::as_array)
                .ok_or(CodecError("ops"))?
                .iter()
                .map(|op| {
                    Ok(RepoOp {
                        action: op
                            .get("action")
                            .and_then(Value::as_str)
                            .and_then(WriteAction::parse)
                            .ok_or(CodecError("op action"))?,
                        path: op
                            .get("path")
                            .and_then(Value::as_str)
                            .ok_or(CodecError("op path"))?
                            .to_owned(),
                        cid: opt_cid(op.get("cid"))?,
                        prev: opt_cid(op.get("prev"))?,
                    })
                })
                .collect::<Result<Vec<_>, CodecError>>()?;
            let blocks = v
                .get("blocks")
                .and_then(Value::as_array)
                .ok_or(CodecError("blocks"))?
                .iter()
                .map(|b| b.as_link().copied().ok_or(CodecError("block cid")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(EventBody::Commit(CommitEvent {
                commit: opt_cid(v.get("commit"))?.ok_or(CodecError("commit"))?,
                rev: tid(v.get("rev"))?,
                since: match v.get("since") {
                    None | Some(Value::Null) => None,
                    s => Some(tid(s)?),
                },
                prev_data: opt_cid(v.get("prevData"))?,
                ops,
                blocks,
            }))
        }
        Some("identity") => Ok(EventBody::Identity {
            handle: match v.get("handle") {
                None | Some(Value::Null) => None,
                Some(h) => Some(
                    h.as_str()
                        .and_then(|s| Handle::parse(s).ok())
                        .ok_or(CodecError("handle"))?,
                ),
            },
        }),
        Some("account") => Ok(EventBody::Account {
            active: matches!(v.get("active"), Some(Value::Bool(true))),
            status: match v.get("status") {
                None | Some(Value::Null) => None,
                Some(s) => Some(
                    s.as_str()
                        .and_then(RepoStatus::parse)
                        .ok_or(CodecError("status"))?,
                ),
            },
        }),
        Some("sync") => Ok(EventBody::Sync {
            commit: opt_cid(v.get("commit"))?.ok_or(CodecError("commit"))?,
            rev: tid(v.get("rev"))?,
        }),
        _ => Err(CodecError("unknown event type")),
    }
}

/// Encodes an account's keys (secret bytes and curves) for sealing.
pub fn encode_keys(signing: &Keypair, rotation: Option<&Keypair>) -> Vec<u8> {
    let key = |k: &Keypair| {
        map([
            ("alg", k.algorithm().jwt_alg().into()),
            ("secret", Value::Bytes(k.to_bytes().to_vec())),
        ])
    };
    cbor::encode(&map([
        ("signing", key(signing)),
        ("rotation", rotation.map(key).unwrap_or(Value::Null)),
    ]))
}

/// Decodes keys made by [`encode_keys`].
pub fn decode_keys(bytes: &[u8]) -> Result<(Keypair, Option<Keypair>), CodecError> {
    let v = cbor::decode(bytes).map_err(|_| CodecError("keys are not DAG-CBOR"))?;
    let key = |k: &Value| -> Result<Keypair, CodecError> {
        let alg = match k.get("alg").and_then(Value::as_str) {
            Some("ES256K") => Algorithm::K256,
            Some("ES256") => Algorithm::P256,
            _ => return Err(CodecError("key algorithm")),
        };
        let secret = k
            .get("secret")
            .and_then(Value::as_bytes)
            .ok_or(CodecError("key bytes"))?;
        Keypair::from_bytes(alg, secret).map_err(|_| CodecError("key bytes"))
    };
    let signing = key(v.get("signing").ok_or(CodecError("signing key"))?)?;
    let rotation = match v.get("rotation") {
        None | Some(Value::Null) => None,
        Some(r) => Some(key(r)?),
    };
    Ok((signing, rotation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::cid_for_cbor;

    #[test]
    fn every_event_kind_round_trips() {
        let c = cid_for_cbor(b"c");
        let bodies = [
            EventBody::Commit(CommitEvent {
                commit: c,
                rev: Tid::from_int(5).unwrap(),
                since: None,
                prev_data: Some(c),
                ops: vec![RepoOp {
                    action: WriteAction::Update,
                    path: "a.b.c/d".into(),
                    cid: Some(c),
                    prev: Some(c),
                }],
                blocks: vec![c, c],
            }),
            EventBody::Identity {
                handle: Some(Handle::parse("a.test").unwrap()),
            },
            EventBody::Identity { handle: None },
            EventBody::account(RepoStatus::Takendown),
            EventBody::account(RepoStatus::Active),
            EventBody::Sync {
                commit: c,
                rev: Tid::from_int(9).unwrap(),
            },
        ];
        for body in bodies {
            assert_eq!(decode_event(&encode_event(&body)).unwrap(), body);
        }
        assert!(decode_event(b"\xa0").is_err());
    }

    #[test]
    fn keys_round_trip() {
        let s = Keypair::from_seed(Algorithm::K256, b"s");
        let r = Keypair::from_seed(Algorithm::P256, b"r");
        let (s2, r2) = decode_keys(&encode_keys(&s, Some(&r))).unwrap();
        assert_eq!(
            (s2.to_bytes(), r2.unwrap().to_bytes()),
            (s.to_bytes(), r.to_bytes())
        );
    }
}
