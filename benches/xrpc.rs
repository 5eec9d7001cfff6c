//! HTTP load benchmark on a real socket (a load tool, not criterion: it measures throughput and
//! latency percentiles of concurrent clients). Run with `cargo bench --bench xrpc`.
//!
//! - createRecord on the embedded store, 1 client and 16 clients (each on its own account);
//! - getRepo of a 10,000-record repo: MB/s and the process's peak memory;
//! - the Lambda binary: size, and time from process start to its first response, against a
//!   local stand-in for the Lambda Runtime API.
#![allow(missing_docs, clippy::unwrap_used)]

// The tests' own helpers, shared by path (written with `pub` for the tests' `common` module):
// the PDS on a socket and the Lambda Runtime API stand-in.
#[path = "../tests/it/common/lambda_api.rs"]
#[allow(unreachable_pub, dead_code)]
mod lambda_api;
#[path = "../tests/it/common/pds.rs"]
#[allow(dead_code, unreachable_pub)]
mod pds;

use std::time::{Duration, Instant};

use pds::{Pds, Session};
use serde_json::json;

fn post_body(did: &str, i: usize) -> serde_json::Value {
    json!({"repo": did, "collection": "app.bsky.feed.post",
        "record": {"text": format!("load test post number {i}, a typical short post"), "createdAt": "2026-11-26T00:00:00.000Z"}})
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn create_records(server: &Pds, clients: usize, duration: Duration) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let mut sessions = Vec::new();
    for c in 0..clients {
        sessions.push(server.create_account(&format!("load{clients}x{c}")).await);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for Session {
        did, access: token, ..
    } in sessions
    {
        let (http, url) = (http.clone(), server.url.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0;
            while start.elapsed() < duration {
                let t = Instant::now();
                let resp = http
                    .post(format!("{url}/xrpc/com.atproto.repo.createRecord"))
                    .bearer_auth(&token)
                    .json(&post_body(&did, i))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                resp.bytes().await.unwrap();
                latencies.push(t.elapsed());
                i += 1;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    println!(
        "createRecord, {clients:>2} client(s): {:>7.0} records/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} records in {elapsed:.1} s)",
        all.len() as f64 / elapsed,
        percentile(&all, 0.5).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all.len(),
    );
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn get_repo(server: &Pds) {
    let http = reqwest::Client::new();
    let Session {
        did, access: token, ..
    } = server.create_account("big").await;
    for batch in 0..50 {
        let writes: Vec<serde_json::Value> = (0..200)
            .map(|i| json!({"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post",
                "value": {"text": format!("record {batch}-{i} with some ordinary text in it"), "createdAt": "2026-11-26T00:00:00.000Z"}}))
            .collect();
        let resp = http
            .post(format!("{}/xrpc/com.atproto.repo.applyWrites", server.url))
            .bearer_auth(&token)
            .json(&json!({"repo": did, "writes": writes}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
    let before = peak_rss_kb();
    let mut best = f64::MAX;
    let mut size = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let body = http
            .get(format!(
                "{}/xrpc/com.atproto.sync.getRepo?did={did}",
                server.url
            ))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        size = body.len();
    }
    println!(
        "getRepo of 10,000 records: {:.1} MB in {:.1} ms = {:.0} MB/s; peak RSS {} MB -> {} MB (whole process)",
        size as f64 / 1e6,
        best * 1e3,
        size as f64 / 1e6 / best,
        before / 1024,
        peak_rss_kb() / 1024,
    );
}

/// The built bootstrap against the stand-in Lambda Runtime API: one invocation (GET
/// /xrpc/_health as an API Gateway v2 event), timed from process start to its response.
async fn lambda_cold_start() {
    let bin = env!("CARGO_BIN_EXE_lambda");
    // The bench profile keeps symbols for profiling; what ships is the stripped release build.
    let stripped = std::env::temp_dir().join("arroba-bootstrap-stripped");
    let _ = std::process::Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(bin)
        .status();
    let size = std::fs::metadata(&stripped)
        .or_else(|_| std::fs::metadata(bin))
        .map(|m| m.len())
        .unwrap_or(0);
    let event = json!({"version": "2.0", "routeKey": "$default", "rawPath": "/xrpc/_health", "rawQueryString": "", "headers": {},
        "requestContext": {"accountId": "1", "apiId": "a", "domainName": "a.test", "domainPrefix": "a", "http": {"method": "GET", "path": "/xrpc/_health",
        "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"}, "requestId": "r", "routeKey": "$default", "stage": "$default",
        "time": "26/Nov/2026:00:00:00 +0000", "timeEpoch": 0}, "isBase64Encoded": false});
    let (api, mut reports) = lambda_api::runtime_api(event).await;
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "arroba")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        // Lambda always sets the region and the role's credentials; without them the SDK would
        // spend the start-up probing instance metadata.
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("PDS_DEV_MODE", "true")
        .env("PDS_DID_PLC_URL", "http://127.0.0.1:9")
        .env("PDS_DATA_DIRECTORY", dir.path())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (kind, _) = tokio::time::timeout(Duration::from_secs(20), reports.recv())
        .await
        .unwrap()
        .unwrap();
    let elapsed = start.elapsed();
    assert_eq!(kind, "response");
    let _ = child.kill().await;
    println!(
        "Lambda binary: {:.1} MB; process start to first response {:.1} ms",
        size as f64 / 1e6,
        elapsed.as_secs_f64() * 1e3
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Throughput without rate limits: the write budget (5,000 points an hour) would refuse it.
        let server = Pds::start(&[("PDS_RATE_LIMITS_ENABLED", "false")]).await;
        create_records(&server, 1, Duration::from_secs(5)).await;
        create_records(&server, 16, Duration::from_secs(5)).await;
        get_repo(&server).await;
        lambda_cold_start().await;
    });
}
