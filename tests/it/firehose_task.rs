//! `arroba firehose` as the ECS task runs it: the built binary on DynamoDB (the emulator), fed
//! by a PDS writing to the same tables, started with no secret at all. It streams the writes,
//! serves the whole-repo export byte for byte as the PDS does, logs its lag as JSON, and drains
//! on SIGTERM.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::common::pds::Pds;
use arroba::cbor::{self, Value};
use arroba::storage::dynamo::DynamoConfig;
use arroba::storage::{BlobStore, DiskBlobStore, DynamoStorage, KeySealer, Storage};
use base64::Engine;
use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::common::process::free_port;

struct Task(Child);

impl Drop for Task {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

#[tokio::test]
async fn the_task_streams_commits_serves_get_repo_and_drains_on_sigterm() {
    let started = std::time::Instant::now();
    let prefix = format!("t{}-", hex::encode(rand::random::<[u8; 6]>()));
    // Only the PDS holds the key-encryption key, as only the Lambda does in AWS.
    let kek = format!(
        "k1:{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    );
    let sdk = crate::common::sdk_config().await;
    let storage = DynamoStorage::with_sdk_config(
        &sdk,
        DynamoConfig::new(prefix.clone(), Some(KeySealer::from_config(&kek).unwrap())),
    );
    storage.create_tables().await.unwrap();
    let storage: Arc<dyn Storage> = Arc::new(storage);
    let dir = tempfile::tempdir().unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(DiskBlobStore::new(dir.path().join("blobs")));
    let pds = Pds::start_with(dir, storage, blobs, &[]).await;
    // A writer that crashed before the task starts: the task waits a grace period for its
    // numbers before it streams.
    crate::common::strand_seq_numbers(&prefix, 3).await;

    let port = free_port();
    let log_path = pds.dir.path().join("firehose.log");
    let child = Command::new(env!("CARGO_BIN_EXE_arroba"))
        .args([
            "firehose",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        // Exactly what the task definition gives it: storage settings and AWS's, no secret (no
        // JWT secret, admin password, key-encryption key or PLC directory).
        .env_clear()
        .env("PDS_STORAGE", "dynamodb")
        .env("ARROBA_TABLE_PREFIX", &prefix)
        .env("PDS_DATA_DIRECTORY", pds.dir.path())
        .env("AWS_ENDPOINT_URL", crate::common::dynamo_endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("ARROBA_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap();
    let mut task = Task(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut healthy = false;
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/xrpc/_health")).send().await {
            healthy = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "the task answers its health check");
    // It answered at once, while the hub was still starting; then the firehose is served.
    let subscribe = format!("{base}/xrpc/com.atproto.sync.subscribeRepos");
    let starting = client.get(&subscribe).send().await.unwrap();
    assert_eq!(
        starting.status(),
        503,
        "health answered before the hub was ready"
    );
    let body: serde_json::Value = starting.json().await.unwrap();
    assert_eq!(body["error"], "NotReady");
    let mut ready = false;
    for _ in 0..100 {
        if client.get(&subscribe).send().await.unwrap().status() == 426 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the firehose is served once the hub has started");

    let url = format!("ws://127.0.0.1:{port}/xrpc/com.atproto.sync.subscribeRepos");
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let alice = pds.create_account("alice").await;
    pds.create_post(&alice, "through the task").await;

    // The account's events then the commit arrive as binary frames from the task.
    let mut kinds = Vec::new();
    while !kinds.iter().any(|k: &String| k == "#commit") {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Binary(bytes) = msg {
            let (header, _) = cbor::decode_first(&bytes).unwrap();
            kinds.push(header.get("t").and_then(Value::as_str).unwrap().to_owned());
        }
    }
    assert!(kinds.contains(&"#identity".to_owned()), "{kinds:?}");

    // getRepo from the task is the PDS's own export, byte for byte.
    let from_task = client
        .get(format!("{base}/xrpc/com.atproto.sync.getRepo"))
        .query(&[("did", alice.did.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(from_task.status(), 200);
    let from_task = from_task.bytes().await.unwrap();
    let from_pds = pds
        .get_bytes("com.atproto.sync.getRepo", &[("did", alice.did.as_str())])
        .await
        .bytes()
        .await
        .unwrap();
    assert!(from_task.len() > 100);
    assert_eq!(from_task, from_pds);

    // SIGTERM (what ECS sends): the subscriber gets a close frame and the process exits cleanly.
    let pid = task.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(closed, "a close frame before the connection ends");
    let status = tokio::task::spawn_blocking(move || task.0.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");

    // The JSON log carries the lag field the deployment's FirehoseLag metric filter reads.
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lags: Vec<i64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["fields"]["lag"].as_i64())
        .collect();
    assert!(!lags.is_empty(), "a lag report in:\n{log}");
    // Every event was written during this test, so no lag can exceed its running time (a loaded
    // machine makes the lag itself vary, so that is the bound, not a fixed figure).
    let bound = i64::try_from(started.elapsed().as_millis()).unwrap();
    assert!(
        lags.iter().all(|&ms| (0..=bound).contains(&ms)),
        "{lags:?} within {bound} ms"
    );
}
