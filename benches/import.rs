//! importRepo of 100 MB CARs against a real `arroba serve` process (embedded store, release
//! build): time, and the server process's peak memory. A load tool, not criterion: the figure
//! that matters is the server's peak RSS (`VmHWM` in `/proc/<pid>/status`), read from outside.
//! Run with `cargo bench --bench import`.
//!
//! Two CARs of about 100 MB each, streamed to the server from a file: 300,000 ordinary posts
//! (the shape of a real account: many small records), and 5,000 records of 20 KB.
#![allow(missing_docs, clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arroba::cbor::{Value, map};
use arroba::crypto::{Algorithm, Keypair};
use arroba::identity::{IdentityConfig, PlcClient, Resolver};
use arroba::repo::Repo;
use arroba::syntax::Did;
use arroba::tid::{TidClock, micros_of};
use serde_json::json;

const OPERATOR_KEY: &str = "4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap()
}

async fn wait_for(url: &str) {
    for _ in 0..400 {
        if reqwest::get(url).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{url} never answered");
}

async fn import(name: &str, records: Vec<(String, Value)>) {
    let dir = tempfile::tempdir().unwrap();
    let (plc_port, pds_port) = (free_port(), free_port());
    let plc_url = format!("http://127.0.0.1:{plc_port}");
    let _plc = Killed(
        Command::new(env!("CARGO_BIN_EXE_arroba"))
            .args([
                "plc",
                "serve",
                "--port",
                &plc_port.to_string(),
                "--data-dir",
            ])
            .arg(dir.path().join("plc"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&format!("{plc_url}/_health")).await;
    let pds = Killed(
        Command::new(env!("CARGO_BIN_EXE_arroba"))
            .arg("serve")
            .env("PDS_DEV_MODE", "true")
            .env("PDS_PORT", pds_port.to_string())
            .env("PDS_DATA_DIRECTORY", dir.path().join("pds"))
            .env("PDS_DID_PLC_URL", &plc_url)
            .env("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", OPERATOR_KEY)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{pds_port}");
    wait_for(&format!("{url}/xrpc/_health")).await;
    let http = reqwest::Client::new();
    let account: serde_json::Value = http
        .post(format!("{url}/xrpc/com.atproto.server.createAccount"))
        .json(&json!({"handle": "mover.test", "password": "mover-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let did = Did::parse(account["did"].as_str().unwrap()).unwrap();
    let token = account["accessJwt"].as_str().unwrap().to_owned();

    // The repo arrives signed by the account's old key, which its DID document names.
    let key = Keypair::from_seed(Algorithm::K256, b"the old PDS's key");
    let operator =
        Keypair::from_bytes(Algorithm::K256, &hex::decode(OPERATOR_KEY).unwrap()).unwrap();
    let resolver = Resolver::new(IdentityConfig {
        plc_url,
        allow_private_addresses: true,
        ..IdentityConfig::default()
    })
    .unwrap();
    let did_key = key.public_key().to_did_key();
    PlcClient::new(Arc::new(resolver))
        .update(&did, &operator, |d| {
            d.verification_methods.insert("atproto".into(), did_key);
        })
        .await
        .unwrap();
    let count = records.len();
    let rev = TidClock::new(1).next(micros_of(chrono::Utc::now()) + 60_000_000);
    let car_path = dir.path().join("repo.car");
    {
        let repo = Repo::create_with_records(did.clone(), &key, rev, records).unwrap();
        let file = std::io::BufWriter::new(std::fs::File::create(&car_path).unwrap());
        repo.export_car(file).unwrap();
    }
    let size = std::fs::metadata(&car_path).unwrap().len();

    let pid = pds.0.id();
    let before = status_kb(pid, "VmHWM:");
    let body = tokio::fs::File::open(&car_path).await.unwrap();
    let started = Instant::now();
    let resp = http
        .post(format!("{url}/xrpc/com.atproto.repo.importRepo"))
        .bearer_auth(&token)
        .header("content-type", "application/vnd.ipld.car")
        .header("content-length", size)
        .body(reqwest::Body::wrap_stream(
            tokio_util::io::ReaderStream::new(body),
        ))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let after = status_kb(pid, "VmHWM:");
    println!(
        "importRepo {name}: {count} records, {:.1} MB CAR in {:.2} s ({:.0} MB/s); server peak RSS {} MB before, {} MB after",
        size as f64 / 1e6,
        took.as_secs_f64(),
        size as f64 / 1e6 / took.as_secs_f64(),
        before / 1024,
        after / 1024,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let posts = (0..300_000).map(|n| {
            (
                format!("app.bsky.feed.post/3kimp{n:08}"),
                map([
                    ("$type", "app.bsky.feed.post".into()),
                    (
                        "text",
                        format!("post {n}: an ordinary post, of the length people write, with a few words more to make it so, and then some more words to be typical").into(),
                    ),
                    ("createdAt", "2026-12-01T00:00:00.000Z".into()),
                    ("langs", Value::Array(vec!["en".into()])),
                ]),
            )
        });
        import("of 300,000 posts", posts.collect()).await;
        let filler = "x".repeat(20_000);
        let large = (0..5_000).map(|n| {
            (
                format!("com.example.big/{n:06}"),
                map([
                    ("$type", "com.example.big".into()),
                    ("text", format!("{n:06}{filler}").into()),
                ]),
            )
        });
        import("of 5,000 records of 20 KB", large.collect()).await;
    });
}
