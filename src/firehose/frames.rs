//! Firehose frames: two DAG-CBOR values back to back, a header (`{op: 1, t: "#commit"}`, or
//! `{op: -1}` for errors) and a payload without `$type`.

use bytes::Bytes;

use crate::car::car_bytes;
use crate::cbor::{self, Value, map};
use crate::storage::{BlockStore, CommitEvent, Event, EventBody, StorageError};
use crate::syntax::format_datetime;

fn frame(header: Value, payload: Value) -> Bytes {
    let mut out = cbor::encode(&header);
    cbor::encode_into(&payload, &mut out);
    out.into()
}

/// An error frame (`{op: -1}` + `{error, message}`); the connection closes after it.
pub fn error_frame(error: &str, message: &str) -> Bytes {
    frame(
        map([("op", Value::Integer(-1))]),
        map([("error", error.into()), ("message", message.into())]),
    )
}

/// An `#info` frame (not persisted, no `seq`).
pub fn info_frame(name: &str, message: &str) -> Bytes {
    frame(
        map([("op", Value::Integer(1)), ("t", "#info".into())]),
        map([("name", name.into()), ("message", message.into())]),
    )
}

/// The frame for a stored event, reading the blocks a `#commit` or `#sync` carries.
pub async fn event_frame(storage: &dyn BlockStore, event: &Event) -> Result<Bytes, StorageError> {
    let common = |t: &str| map([("op", Value::Integer(1)), ("t", t.into())]);
    let time = format_datetime(event.time);
    Ok(match &event.body {
        EventBody::Commit(c) => frame(
            common("#commit"),
            commit_payload(storage, event, c, &time).await?,
        ),
        EventBody::Identity { handle } => {
            let mut fields = vec![
                ("seq", Value::Integer(event.seq as i64)),
                ("did", event.did.as_str().into()),
                ("time", time.into()),
            ];
            if let Some(h) = handle {
                fields.push(("handle", h.as_str().into()));
            }
            frame(common("#identity"), map(fields))
        }
        EventBody::Account { active, status } => {
            let mut fields = vec![
                ("seq", Value::Integer(event.seq as i64)),
                ("did", event.did.as_str().into()),
                ("time", time.into()),
                ("active", (*active).into()),
            ];
            if let Some(s) = status {
                fields.push(("status", s.as_str().into()));
            }
            frame(common("#account"), map(fields))
        }
        EventBody::Sync { commit, rev } => {
            let blocks = storage.read_blocks(std::slice::from_ref(commit)).await?;
            let bytes = blocks
                .get(commit)
                .ok_or(StorageError::MissingBlock(*commit))?;
            frame(
                common("#sync"),
                map([
                    ("seq", Value::Integer(event.seq as i64)),
                    ("did", event.did.as_str().into()),
                    (
                        "blocks",
                        Value::Bytes(car_bytes(&[*commit], [(commit, bytes)])),
                    ),
                    ("rev", rev.to_string().into()),
                    ("time", time.into()),
                ]),
            )
        }
    })
}

async fn commit_payload(
    storage: &dyn BlockStore,
    event: &Event,
    c: &CommitEvent,
    time: &str,
) -> Result<Value, StorageError> {
    let blocks = storage.read_blocks(&c.blocks).await?;
    if let Some(missing) = c.blocks.iter().find(|cid| !blocks.contains(cid)) {
        return Err(StorageError::MissingBlock(*missing));
    }
    // The commit block first, then the rest: readers find the root without a second pass.
    let commit = blocks
        .get(&c.commit)
        .ok_or(StorageError::MissingBlock(c.commit))?;
    let car = car_bytes(
        &[c.commit],
        std::iter::once((&c.commit, commit))
            .chain(blocks.iter().filter(|(cid, _)| **cid != c.commit)),
    );
    let ops: Vec<Value> = c
        .ops
        .iter()
        .map(|op| {
            let mut fields = vec![
                ("action", op.action.as_str().into()),
                ("path", op.path.as_str().into()),
                ("cid", op.cid.into()),
            ];
            // `prev` is present for updates and deletes and absent (not null) for creates.
            if let Some(prev) = op.prev {
                fields.push(("prev", Value::Link(prev)));
            }
            map(fields)
        })
        .collect();
    let mut fields = vec![
        ("seq", Value::Integer(event.seq as i64)),
        ("rebase", Value::Bool(false)),
        ("tooBig", Value::Bool(false)),
        ("repo", event.did.as_str().into()),
        ("commit", Value::Link(c.commit)),
        ("rev", c.rev.to_string().into()),
        // Required and nullable: null for an account's first commit.
        ("since", c.since.map(|s| s.to_string()).into()),
        ("blocks", Value::Bytes(car)),
        ("ops", Value::Array(ops)),
        ("blobs", Value::Array(vec![])),
        ("time", time.into()),
    ];
    if let Some(prev_data) = c.prev_data {
        fields.push(("prevData", Value::Link(prev_data)));
    }
    Ok(map(fields))
}
