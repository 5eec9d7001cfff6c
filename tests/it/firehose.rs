//! The firehose end to end: XRPC writes on a real PDS, `subscribeRepos` on a real socket, and a
//! consumer that decodes every frame and checks each `#commit` the way a Sync 1.1 relay does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::common::pds::Pds;
use arroba::cbor::{self, Value};
use arroba::cid::Cid;
use arroba::firehose::{FirehoseConfig, Hub};
use arroba::repo::verify::verify_commit_slice;
use arroba::repo::{RepoOp, WriteAction};
use arroba::syntax::Did;
use arroba::tid::Tid;
use futures::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

struct Firehose {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn firehose(pds: &Pds, config: FirehoseConfig) -> Firehose {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let hub = Hub::start(pds.state.storage_arc(), config, async move {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "ws://{}/xrpc/com.atproto.sync.subscribeRepos",
        listener.local_addr().unwrap()
    );
    let closing = hub.clone();
    tokio::spawn(async move {
        axum::serve(listener, arroba::firehose::router(hub))
            .with_graceful_shutdown(async move { closing.closing().await })
            .await
            .unwrap();
    });
    Firehose {
        url,
        stop: Some(stop),
    }
}

fn test_config() -> FirehoseConfig {
    FirehoseConfig {
        poll_interval: Duration::from_millis(10),
        gap_grace: Duration::from_millis(500),
        ..FirehoseConfig::default()
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, cursor: Option<u64>) -> Ws {
    let url = match cursor {
        Some(c) => format!("{url}?cursor={c}"),
        None => url.to_owned(),
    };
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// One decoded frame: header and payload.
#[derive(Debug, Clone)]
struct Frame {
    header: Value,
    body: Value,
}

impl Frame {
    fn t(&self) -> &str {
        self.header
            .get("t")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    fn seq(&self) -> u64 {
        self.body.get("seq").and_then(Value::as_integer).unwrap() as u64
    }
}

async fn next_frame(ws: &mut Ws) -> Option<Frame> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .ok()??
            .ok()?
        {
            Message::Binary(b) => {
                let (header, rest) = cbor::decode_first(&b).unwrap();
                let body = cbor::decode(rest).unwrap();
                assert!(body.get("$type").is_none(), "payloads carry no $type");
                return Some(Frame { header, body });
            }
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

async fn frames(ws: &mut Ws, n: usize) -> Vec<Frame> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(next_frame(ws).await.expect("stream ended early"));
    }
    out
}

/// What a relay keeps per repo: the last rev and data root.
#[derive(Default)]
struct Relay {
    state: HashMap<String, (Tid, Cid)>,
}

impl Relay {
    /// Checks a `#commit` as a Sync 1.1 relay does, and returns the records it created.
    async fn check(&mut self, pds: &Pds, f: &Frame) -> Vec<(String, Value)> {
        let b = &f.body;
        for field in [
            "seq", "rebase", "tooBig", "repo", "commit", "rev", "since", "blocks", "ops", "blobs",
            "time",
        ] {
            assert!(b.get(field).is_some(), "#commit lacks {field}");
        }
        assert_eq!(b.get("rebase"), Some(&Value::Bool(false)));
        assert_eq!(b.get("tooBig"), Some(&Value::Bool(false)));
        assert_eq!(b.get("blobs"), Some(&Value::Array(vec![])));
        let repo = b.get("repo").and_then(Value::as_str).unwrap().to_owned();
        let key = pds
            .state
            .resolver()
            .signing_key(&Did::parse(&repo).unwrap())
            .await
            .unwrap();
        let ops: Vec<RepoOp> = b
            .get("ops")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|op| {
                let action =
                    WriteAction::parse(op.get("action").and_then(Value::as_str).unwrap()).unwrap();
                let prev = op.get("prev").map(|p| *p.as_link().unwrap());
                assert_eq!(
                    action == WriteAction::Create,
                    prev.is_none(),
                    "prev is absent exactly for creates"
                );
                RepoOp {
                    action,
                    path: op.get("path").and_then(Value::as_str).unwrap().into(),
                    cid: op.get("cid").and_then(Value::as_link).copied(),
                    prev,
                }
            })
            .collect();
        let prev_data = b.get("prevData").map(|p| *p.as_link().unwrap());
        let blocks = b.get("blocks").and_then(Value::as_bytes).unwrap();
        assert!(blocks.len() <= 2_000_000);
        let commit = verify_commit_slice(blocks, &ops, prev_data, &key).unwrap();
        let rev = Tid::parse(b.get("rev").and_then(Value::as_str).unwrap()).unwrap();
        assert_eq!(commit.rev, rev);
        assert_eq!(commit.did.as_str(), repo);
        assert_eq!(Some(&Value::Link(commit.cid())), b.get("commit"));
        let since = b
            .get("since")
            .and_then(Value::as_str)
            .map(|s| Tid::parse(s).unwrap());
        match self.state.get(&repo) {
            Some((last_rev, last_data)) => {
                assert!(rev > *last_rev, "rev strictly increases");
                assert_eq!(since, Some(*last_rev), "since is the previous rev");
                assert_eq!(
                    prev_data,
                    Some(*last_data),
                    "prevData is the previous data root"
                );
            }
            None => assert!(
                prev_data.is_none() && since.is_none(),
                "the first commit has no prevData or since"
            ),
        }
        self.state.insert(repo, (rev, commit.data));
        let car = arroba::car::read_car(blocks).unwrap();
        ops.iter()
            .filter(|op| op.action != WriteAction::Delete)
            .map(|op| {
                (
                    op.path.clone(),
                    cbor::decode(car.blocks.get(&op.cid.unwrap()).unwrap()).unwrap(),
                )
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_frames_are_exact_and_every_commit_verifies_like_a_relay() {
    let pds = Pds::start(&[]).await;
    let fh = firehose(&pds, test_config()).await;
    let mut ws = connect(&fh.url, None).await;
    let alice = pds.create_account("alice").await;
    let created = pds.create_post(&alice, "hello firehose").await;
    let rkey = created["uri"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let (status, _) = pds.post("com.atproto.repo.putRecord", Some(&alice.access), json!({"repo": alice.did, "collection": "app.bsky.feed.post", "rkey": rkey,
        "record": {"$type": "app.bsky.feed.post", "text": "edited", "createdAt": "2026-01-01T00:00:00.000Z"}})).await;
    assert_eq!(status, 200);
    pds.post(
        "com.atproto.repo.deleteRecord",
        Some(&alice.access),
        json!({"repo": alice.did, "collection": "app.bsky.feed.post", "rkey": rkey}),
    )
    .await;
    let got = frames(&mut ws, 7).await;
    let kinds: Vec<&str> = got.iter().map(Frame::t).collect();
    assert_eq!(
        kinds,
        [
            "#identity",
            "#account",
            "#commit",
            "#sync",
            "#commit",
            "#commit",
            "#commit"
        ]
    );
    assert!(
        got.windows(2).all(|w| w[1].seq() == w[0].seq() + 1),
        "consecutive seqs"
    );
    assert_eq!(
        got[0].header,
        cbor::map([("op", Value::Integer(1)), ("t", "#identity".into())])
    );
    assert_eq!(
        got[0].body.get("handle").and_then(Value::as_str),
        Some("alice.test")
    );
    assert_eq!(got[1].body.get("active"), Some(&Value::Bool(true)));
    let sync_car =
        arroba::car::read_car(got[3].body.get("blocks").and_then(Value::as_bytes).unwrap())
            .unwrap();
    assert_eq!(sync_car.blocks.len(), 1, "#sync carries only the commit");
    let mut relay = Relay::default();
    let mut records = Vec::new();
    for f in got.iter().filter(|f| f.t() == "#commit") {
        records.extend(relay.check(&pds, f).await);
    }
    let texts: Vec<&str> = records
        .iter()
        .map(|(_, v)| v.get("text").and_then(Value::as_str).unwrap())
        .collect();
    assert_eq!(
        texts,
        ["hello firehose", "edited"],
        "the records match what was written"
    );
    drop(fh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_with_the_last_cursor_gets_exactly_the_missed_events_then_live() {
    let pds = Pds::start(&[]).await;
    let fh = firehose(&pds, test_config()).await;
    let alice = pds.create_account("alice").await;
    let mut ws = connect(&fh.url, Some(0)).await;
    let first = frames(&mut ws, 4).await;
    let last = first.last().unwrap().seq();
    drop(ws);
    for i in 0..5 {
        pds.create_post(&alice, &format!("missed {i}")).await;
    }
    let mut ws = connect(&fh.url, Some(last)).await;
    let missed = frames(&mut ws, 5).await;
    assert_eq!(
        missed.iter().map(Frame::seq).collect::<Vec<_>>(),
        (last + 1..=last + 5).collect::<Vec<_>>(),
        "seq > cursor, no gap, no duplicate"
    );
    pds.create_post(&alice, "live").await;
    let live = next_frame(&mut ws).await.unwrap();
    assert_eq!(live.seq(), last + 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_during_a_reconnect_cause_no_gap_or_duplicate() {
    let pds = Arc::new(Pds::start(&[]).await);
    let fh = firehose(&pds, test_config()).await;
    let mut sessions = Vec::new();
    for n in 0..3 {
        sessions.push(pds.create_account(&format!("writer{n}")).await);
    }
    let mut ws = connect(&fh.url, Some(0)).await;
    let start = frames(&mut ws, 12).await.last().unwrap().seq();
    drop(ws);
    let writers: Vec<_> = sessions
        .into_iter()
        .map(|s| {
            let pds = pds.clone();
            tokio::spawn(async move {
                for i in 0..15 {
                    pds.create_post(&s, &format!("{i}")).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut ws = connect(&fh.url, Some(start)).await;
    for w in writers {
        w.await.unwrap();
    }
    let got = frames(&mut ws, 45).await;
    assert_eq!(
        got.iter().map(Frame::seq).collect::<Vec<_>>(),
        (start + 1..=start + 45).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_firehose_resumes_by_cursor_with_nothing_lost() {
    let pds = Pds::start(&[]).await;
    let mut fh = firehose(&pds, test_config()).await;
    let alice = pds.create_account("alice").await;
    let mut ws = connect(&fh.url, Some(0)).await;
    let seen = frames(&mut ws, 4).await;
    fh.stop.take().unwrap().send(()).unwrap();
    assert!(
        next_frame(&mut ws).await.is_none(),
        "shutdown sends a close frame"
    );
    for i in 0..3 {
        pds.create_post(&alice, &format!("while down {i}")).await;
    }
    let fh2 = firehose(&pds, test_config()).await;
    let mut ws = connect(&fh2.url, Some(seen.last().unwrap().seq())).await;
    let resumed = frames(&mut ws, 3).await;
    assert_eq!(resumed[0].seq(), seen.last().unwrap().seq() + 1);
    assert!(resumed.iter().all(|f| f.t() == "#commit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_in_the_future_or_before_the_window_and_bad_requests() {
    let pds = Pds::start(&[]).await;
    let config = FirehoseConfig {
        window_events: Some(3),
        ..test_config()
    };
    let fh = firehose(&pds, config).await;
    let alice = pds.create_account("alice").await;
    for i in 0..4 {
        pds.create_post(&alice, &format!("{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut ws = connect(&fh.url, Some(10_000)).await;
    let f = next_frame(&mut ws).await.unwrap();
    assert_eq!(f.header, cbor::map([("op", Value::Integer(-1))]));
    assert_eq!(
        f.body.get("error").and_then(Value::as_str),
        Some("FutureCursor")
    );
    assert!(
        next_frame(&mut ws).await.is_none(),
        "closed after the error"
    );
    // 8 events exist; the window holds the last 3: an older cursor gets #info, then the window.
    let mut ws = connect(&fh.url, Some(1)).await;
    let info = next_frame(&mut ws).await.unwrap();
    assert_eq!(
        (info.t(), info.body.get("name").and_then(Value::as_str)),
        ("#info", Some("OutdatedCursor"))
    );
    let window = frames(&mut ws, 3).await;
    assert_eq!(
        window.iter().map(Frame::seq).collect::<Vec<_>>(),
        vec![6, 7, 8]
    );
    let http = fh.url.replace("ws://", "http://");
    for cursor in ["-1", "abc", "1.5"] {
        let resp = reqwest::Client::new()
            .get(format!("{http}?cursor={cursor}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{cursor}");
        assert_eq!(
            resp.json::<serde_json::Value>().await.unwrap()["error"],
            "InvalidRequest"
        );
    }
    let resp = reqwest::Client::new().get(&http).send().await.unwrap();
    assert_eq!(resp.status(), 426, "a plain GET without Upgrade");
    let resp = reqwest::Client::new().post(&http).send().await.unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_never_reads_gets_consumer_too_slow_and_others_are_unaffected() {
    let pds = Pds::start(&[]).await;
    let config = FirehoseConfig {
        buffer: 8,
        ..test_config()
    };
    let fh = firehose(&pds, config).await;
    let alice = pds.create_account("alice").await;
    let mut slow = connect(&fh.url, None).await;
    let mut fast = connect(&fh.url, None).await;
    // Records big enough to fill socket buffers, so the slow consumer's queue grows.
    let text = "x".repeat(200_000);
    let big = json!({"$type": "com.example.big", "data": text});
    let reader = tokio::spawn(async move { frames(&mut fast, 60).await.len() });
    for i in 0..60 {
        let (status, _) = pds.post("com.atproto.repo.createRecord", Some(&alice.access), json!({"repo": alice.did, "collection": "com.example.big", "rkey": format!("r{i}"), "record": big})).await;
        assert_eq!(status, 200);
    }
    assert_eq!(
        reader.await.unwrap(),
        60,
        "the fast consumer got everything"
    );
    // Now read the slow one: its queued frames, then ConsumerTooSlow, then the close.
    let mut last = None;
    while let Some(f) = next_frame(&mut slow).await {
        last = Some(f);
    }
    let last = last.unwrap();
    assert_eq!(last.header, cbor::map([("op", Value::Integer(-1))]));
    assert_eq!(
        last.body.get("error").and_then(Value::as_str),
        Some("ConsumerTooSlow")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_dynamodb_the_stream_verifies_and_backfills_the_same() {
    let storage: Arc<dyn arroba::storage::Storage> = crate::common::dynamo_storage().await;
    let blobs: Arc<dyn arroba::storage::BlobStore> = Arc::new(arroba::storage::DiskBlobStore::new(
        std::env::temp_dir().join("arroba-fh-blobs"),
    ));
    let pds = Pds::start_with(tempfile::tempdir().unwrap(), storage, blobs, &[]).await;
    let fh = firehose(&pds, test_config()).await;
    let mut ws = connect(&fh.url, None).await;
    let alice = pds.create_account("alice").await;
    for i in 0..3 {
        pds.create_post(&alice, &format!("dynamo {i}")).await;
    }
    let got = frames(&mut ws, 7).await;
    let mut relay = Relay::default();
    for f in got.iter().filter(|f| f.t() == "#commit") {
        relay.check(&pds, f).await;
    }
    let first = got[0].seq();
    drop(ws);
    let mut ws = connect(&fh.url, Some(first)).await;
    let replayed = frames(&mut ws, 6).await;
    assert_eq!(
        replayed.iter().map(Frame::seq).collect::<Vec<_>>(),
        got[1..].iter().map(Frame::seq).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_events_notify_crawlers_at_most_once_per_interval() {
    let calls = Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/xrpc/com.atproto.sync.requestCrawl",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let pds = Pds::start(&[]).await;
    let config = FirehoseConfig {
        crawlers: vec![relay],
        hostname: "pds.test".into(),
        ..test_config()
    };
    let _fh = firehose(&pds, config).await;
    let alice = pds.create_account("alice").await;
    for i in 0..3 {
        pds.create_post(&alice, &format!("{i}")).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![json!({"hostname": "pds.test"})],
        "one requestCrawl within the 20-minute interval"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_dynamodb_a_cursor_into_expired_events_is_told_it_is_outdated() {
    let dynamo = crate::common::dynamo_storage().await;
    let prefix = format!("{dynamo:?}").split('"').nth(1).unwrap().to_owned();
    let storage: Arc<dyn arroba::storage::Storage> = dynamo;
    let blobs: Arc<dyn arroba::storage::BlobStore> = Arc::new(arroba::storage::DiskBlobStore::new(
        std::env::temp_dir().join("arroba-fh-blobs"),
    ));
    let pds = Pds::start_with(tempfile::tempdir().unwrap(), storage, blobs, &[]).await;
    let alice = pds.create_account("alice").await;
    for i in 0..3 {
        pds.create_post(&alice, &format!("kept {i}")).await;
    }
    let fh = firehose(&pds, test_config()).await;
    // Later, DynamoDB's TTL removes the oldest events: the account's first four go.
    let raw = aws_sdk_dynamodb::Client::new(&crate::common::sdk_config().await);
    for seq in 1..=4u64 {
        raw.delete_item()
            .table_name(format!("{prefix}events"))
            .key(
                "seq",
                aws_sdk_dynamodb::types::AttributeValue::N(seq.to_string()),
            )
            .send()
            .await
            .unwrap();
    }
    let mut ws = connect(&fh.url, Some(1)).await;
    let info = next_frame(&mut ws).await.unwrap();
    assert_eq!(info.t(), "#info");
    assert_eq!(
        info.body.get("name").and_then(Value::as_str),
        Some("OutdatedCursor")
    );
    let replayed = frames(&mut ws, 3).await;
    assert_eq!(
        replayed.iter().map(Frame::seq).collect::<Vec<_>>(),
        vec![5, 6, 7],
        "the stream goes on from the oldest event still kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_too_far_behind_in_bytes_gets_consumer_too_slow() {
    let pds = Pds::start(&[]).await;
    // Room for a thousand frames, but only a megabyte: big commits fill the bytes first.
    let config = FirehoseConfig {
        buffer: 1000,
        buffer_bytes: 1024 * 1024,
        ..test_config()
    };
    let fh = firehose(&pds, config).await;
    let alice = pds.create_account("alice").await;
    let mut slow = connect(&fh.url, None).await;
    let big = json!({"$type": "com.example.big", "data": "x".repeat(200_000)});
    for i in 0..60 {
        let (status, _) = pds.post("com.atproto.repo.createRecord", Some(&alice.access), json!({"repo": alice.did, "collection": "com.example.big", "rkey": format!("r{i}"), "record": big})).await;
        assert_eq!(status, 200);
    }
    let mut last = None;
    let mut count = 0;
    while let Some(f) = next_frame(&mut slow).await {
        count += 1;
        last = Some(f);
    }
    assert!(
        count < 60,
        "the stream was cut before the end ({count} frames)"
    );
    assert_eq!(
        last.unwrap().body.get("error").and_then(Value::as_str),
        Some("ConsumerTooSlow")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_past_the_cap_are_refused_and_oversized_client_messages_end_the_connection() {
    let pds = Pds::start(&[]).await;
    let config = FirehoseConfig {
        max_connections: 2,
        max_backfills: 1,
        ..test_config()
    };
    let fh = firehose(&pds, config).await;
    let alice = pds.create_account("alice").await;
    pds.create_post(&alice, "one").await;
    // Two subscribers replaying from the start, one backfill at a time: both get everything.
    let mut first = connect(&fh.url, Some(0)).await;
    let mut second = connect(&fh.url, Some(0)).await;
    let a: Vec<u64> = frames(&mut first, 5).await.iter().map(Frame::seq).collect();
    let b: Vec<u64> = frames(&mut second, 5)
        .await
        .iter()
        .map(Frame::seq)
        .collect();
    assert_eq!(a, b);
    // A third is refused before the upgrade.
    match tokio_tungstenite::connect_async(fh.url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    // A subscriber sending more than a control frame's worth is cut off, freeing its place.
    use futures::SinkExt;
    first
        .send(Message::Text("x".repeat(100_000).into()))
        .await
        .unwrap();
    while next_frame(&mut first).await.is_some() {}
    let mut admitted = false;
    for _ in 0..50 {
        if tokio_tungstenite::connect_async(fh.url.as_str())
            .await
            .is_ok()
        {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        admitted,
        "a place came free when the oversized subscriber was dropped"
    );
}
