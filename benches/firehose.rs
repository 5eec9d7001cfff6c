//! Firehose benchmarks (a load tool; `cargo bench --bench firehose`):
//! - commit → delivery latency: a createRecord over HTTP until its `#commit` frame reaches a
//!   WebSocket consumer, on the embedded store (and on the DynamoDB emulator when
//!   `AWS_ENDPOINT_URL` is set);
//! - fan-out: events to 1,000 concurrent WebSocket subscribers (frames/s delivered), and the
//!   memory an idle subscriber costs.
#![allow(missing_docs, clippy::unwrap_used)]

// The tests' PDS on a socket, shared by path (written with `pub` for the tests' `common` module).
#[path = "../tests/it/common/pds.rs"]
#[allow(dead_code, unreachable_pub)]
mod pds;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arroba::firehose::{FirehoseConfig, Hub};
use arroba::storage::{
    BlobStore, BlockCache, DiskBlobStore, DiskStorage, KeySealer, MemoryStorage, RepoKeys, Storage,
    commit_writes, create_repo,
};
use futures::StreamExt;
use pds::{Pds, Session};
use serde_json::json;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn serve_firehose(storage: Arc<dyn Storage>, buffer: usize) -> String {
    let config = FirehoseConfig {
        buffer,
        ..FirehoseConfig::default()
    };
    let hub = Hub::start(storage, config, std::future::pending())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "ws://{}/xrpc/com.atproto.sync.subscribeRepos",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move {
        axum::serve(listener, arroba::firehose::router(hub))
            .await
            .unwrap()
    });
    url
}

async fn latency(label: &str, storage: Arc<dyn Storage>, samples: usize) {
    let dir = tempfile::tempdir().unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(DiskBlobStore::new(dir.path().join("blobs")));
    // The PDS's own firehose, on the same port as XRPC, as `arroba serve` runs it.
    // Throughput without rate limits: the write budget (5,000 points an hour) would refuse it.
    let server =
        Pds::start_with(dir, storage, blobs, &[("PDS_RATE_LIMITS_ENABLED", "false")]).await;
    let ws_url = format!(
        "{}/xrpc/com.atproto.sync.subscribeRepos",
        server.url.replacen("http", "ws", 1)
    );
    let http = reqwest::Client::new();
    let Session {
        did, access: token, ..
    } = server.create_account("lat").await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let mut times = Vec::new();
    for i in 0..samples {
        let start = Instant::now();
        let body = json!({"repo": did, "collection": "app.bsky.feed.post", "record": {"text": format!("{i}"), "createdAt": "2026-11-26T00:00:00.000Z"}});
        let resp: serde_json::Value = http
            .post(server.xrpc("com.atproto.repo.createRecord"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let commit = arroba::cid::parse_cid(resp["commit"]["cid"].as_str().unwrap()).unwrap();
        loop {
            let msg = ws.next().await.unwrap().unwrap();
            let bytes = msg.into_data();
            let (_, rest) = arroba::cbor::decode_first(&bytes).unwrap();
            let body = arroba::cbor::decode(rest).unwrap();
            if body.get("commit").and_then(|c| c.as_link()) == Some(&commit) {
                break;
            }
        }
        times.push(start.elapsed());
    }
    times.sort();
    let p = |q: f64| {
        times[((times.len() as f64 * q) as usize).min(times.len() - 1)].as_secs_f64() * 1e3
    };
    println!(
        "commit -> delivery, {label}: p50 {:.1} ms, p99 {:.1} ms ({samples} commits, 20 ms poll interval)",
        p(0.5),
        p(0.99)
    );
}

async fn fan_out(subscribers: usize, events: usize) {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let cache = BlockCache::default().view();
    let clock = arroba::tid::TidClock::new(1);
    let did = arroba::syntax::Did::parse("did:plc:fanoutfanoutfanoutfanout").unwrap();
    let key = arroba::crypto::Keypair::from_seed(arroba::crypto::Algorithm::K256, b"fan");
    let keys = RepoKeys {
        signing: key,
        rotation: None,
    };
    create_repo(&*storage, &cache, did.clone(), None, keys, &clock)
        .await
        .unwrap();
    let url = serve_firehose(storage.clone(), events + 100).await;
    let before = rss_kb();
    let received = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    // Small client buffers too, so the combined per-subscriber figure bounds the server's.
    let client_config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    for _ in 0..subscribers {
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(&url, Some(client_config), false)
                .await
                .unwrap();
        clients.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_kb();
    let expected = (subscribers * events) as u64;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
    for mut ws in clients {
        let (received, done_tx) = (received.clone(), done_tx.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while let Some(Ok(_)) = ws.next().await {
                n += 1;
                if received.fetch_add(1, Ordering::Relaxed) + 1 == expected {
                    if let Some(tx) = done_tx.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                }
                if n == events {
                    break;
                }
            }
        });
    }
    // Produce the events first (the hub picks them up as they land), then time delivery.
    let start = Instant::now();
    let collection = arroba::syntax::Nsid::parse("app.bsky.feed.post").unwrap();
    for i in 0..events {
        let record = arroba::cbor::map([
            ("$type", "app.bsky.feed.post".into()),
            ("text", format!("event {i}").into()),
        ]);
        let rkey = arroba::syntax::RecordKey::parse(&format!("r{i}")).unwrap();
        commit_writes(
            &*storage,
            &cache,
            &did,
            &[arroba::repo::Write::create(
                collection.clone(),
                rkey,
                record,
            )],
            &clock,
        )
        .await
        .unwrap();
    }
    let produced = start.elapsed();
    tokio::time::timeout(Duration::from_secs(600), done_rx)
        .await
        .unwrap()
        .unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "fan-out: {events} events to {subscribers} subscribers = {expected} frames in {elapsed:.1} s = {:.0} frames/s delivered (events produced in {:.1} s); idle subscriber ≈ {:.1} KB (client and server sides, RSS {} MB -> {} MB)",
        expected as f64 / elapsed,
        produced.as_secs_f64(),
        (idle.saturating_sub(before)) as f64 / subscribers as f64,
        before / 1024,
        idle / 1024,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let disk: Arc<dyn Storage> = Arc::new(DiskStorage::open(dir.path(), Some(KeySealer::ephemeral())).unwrap());
        latency("embedded store", disk, 300).await;
        if std::env::var("AWS_ENDPOINT_URL").is_ok() {
            let shared = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
            let prefix = format!("bench{}-", std::process::id());
            let dynamo = arroba::storage::DynamoStorage::with_sdk_config(&shared, arroba::storage::dynamo::DynamoConfig::new(prefix, Some(KeySealer::ephemeral())));
            dynamo.create_tables().await.unwrap();
            latency("DynamoDB emulator", Arc::new(dynamo), 100).await;
        } else {
            println!("commit -> delivery on the emulator: skipped (set AWS_ENDPOINT_URL, as `make bench` does)");
        }
        fan_out(1000, 10_000).await;
    });
}
