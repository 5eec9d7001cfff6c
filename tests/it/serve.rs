//! The built `arroba` binary as a user runs it: `arroba serve` is the whole PDS (XRPC and
//! `subscribeRepos` on one port), `make run` and `make run-aws` start it with working defaults,
//! and `arroba firehose` refuses bad settings by name.

use std::process::{Command, Stdio};
use std::time::Duration;

use arroba::cbor::{self, Value};
use futures::StreamExt;
use serde_json::{Value as Json, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::process::{Running, free_port, post_json, wait_for};

/// Creates an account and a post on `base`, with a WebSocket subscribed to `ws` first, and
/// returns the `#commit` frame carrying the post.
async fn post_and_receive_commit(base: &str, ws: &str, handle: &str) -> Value {
    let (mut socket, _) = tokio_tungstenite::connect_async(ws).await.unwrap();
    let client = reqwest::Client::new();
    let xrpc = |nsid: &str| format!("{base}/xrpc/{nsid}");
    let account = post_json(
        &client,
        xrpc("com.atproto.server.createAccount"),
        None,
        json!({"handle": handle, "password": "pw-0123456789"}),
    )
    .await;
    let token = account["accessJwt"].as_str().unwrap();
    let created = post_json(
        &client,
        xrpc("com.atproto.repo.createRecord"),
        Some(token),
        json!({"repo": account["did"], "collection": "app.bsky.feed.post",
               "record": {"text": "hello firehose", "createdAt": "2026-12-01T00:00:00.000Z"}}),
    )
    .await;
    let commit = created["commit"]["cid"].as_str().unwrap().to_owned();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .unwrap()
            .unwrap();
        let Message::Binary(bytes) = msg else {
            continue;
        };
        let (header, rest) = cbor::decode_first(&bytes).unwrap();
        let body = cbor::decode(rest).unwrap();
        let is_commit = header.get("t").and_then(Value::as_str) == Some("#commit");
        let cid = body
            .get("commit")
            .and_then(Value::as_link)
            .map(|c| c.to_string());
        if is_commit && cid.as_deref() == Some(commit.as_str()) {
            assert_eq!(
                body.get("repo").and_then(Value::as_str),
                account["did"].as_str()
            );
            return body;
        }
    }
}

#[tokio::test]
async fn arroba_serve_serves_xrpc_and_the_firehose_on_one_port() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("serve.log");
    let json_log = dir.path().join("serve.json");
    let child = Command::new(env!("CARGO_BIN_EXE_arroba"))
        .arg("serve")
        .env_clear()
        .env("PDS_DEV_MODE", "true")
        .env("PDS_PORT", port.to_string())
        .env("PDS_DATA_DIRECTORY", dir.path().join("data"))
        .env("ARROBA_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&json_log).unwrap()))
        .spawn()
        .unwrap();
    let _server = Running {
        child,
        group: false,
    };
    let base = format!("http://127.0.0.1:{port}");
    wait_for(&format!("{base}/xrpc/_health"), &log).await;
    let ws = format!("ws://127.0.0.1:{port}/xrpc/com.atproto.sync.subscribeRepos");
    let commit = post_and_receive_commit(&base, &ws, "alice.test").await;
    let ops = commit.get("ops").and_then(Value::as_array).unwrap();
    assert_eq!(ops.len(), 1);
    // Every request is a span: the line logged when it is answered names the method, the
    // token's DID, the status and the latency.
    let did = commit.get("repo").and_then(Value::as_str).unwrap();
    let lines = std::fs::read_to_string(&json_log).unwrap();
    let answered = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .find(|l| {
            l["fields"]["message"] == "answered"
                && l["span"]["method"] == "com.atproto.repo.createRecord"
        })
        .unwrap_or_else(|| panic!("no createRecord line in:\n{lines}"));
    assert_eq!(answered["span"]["did"], did, "{answered}");
    assert_eq!(answered["fields"]["status"], 200, "{answered}");
    assert!(answered["fields"]["latency_ms"].as_f64().unwrap() > 0.0);
    let printed = std::fs::read_to_string(&log).unwrap();
    assert!(
        printed.contains("/xrpc/com.atproto.sync.subscribeRepos"),
        "serve says where its firehose is:\n{printed}"
    );
}

/// Runs `make <target>` as a developer types it, the recipe's own defaults intact, only with
/// the built binary standing in for `cargo run` and `env` added (the recipes let the data
/// directory, port and table prefix be overridden). Output goes to `<dir>/<target>.log`.
pub(crate) fn make(target: &str, dir: &std::path::Path, env: &[(&str, String)]) -> Running {
    // `$(CARGO) run --release --bin arroba -- serve`: drop the five cargo words, run the binary.
    let cargo = fake_cargo(dir);
    let log = dir.join(format!("{target}.log"));
    let mut make = Command::new("make");
    make.args(["-s", "-C", env!("CARGO_MANIFEST_DIR"), target])
        .arg(format!("CARGO=sh {}", cargo.display()))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("PDS_DATA_DIRECTORY", dir.join("data"))
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut make, 0);
    Running {
        child: make.spawn().unwrap(),
        group: true,
    }
}

/// `make run`: dev mode, an in-process PLC directory, port 2583, the embedded store.
#[tokio::test]
async fn make_run_starts_a_working_pds_with_its_defaults_on_port_2583() {
    let dir = tempfile::tempdir().unwrap();
    let _server = make("run", dir.path(), &[]);
    let log = dir.path().join("run.log");
    let base = "http://localhost:2583";
    wait_for(&format!("{base}/xrpc/_health"), &log).await;
    let described: Json = reqwest::get(format!("{base}/xrpc/com.atproto.server.describeServer"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(described["did"], "did:web:localhost");
    assert_eq!(described["availableUserDomains"], json!([".test"]));
    let printed = std::fs::read_to_string(&log).unwrap();
    assert!(
        printed.contains("local PLC directory on http://127.0.0.1:"),
        "{printed}"
    );
    let ws = "ws://localhost:2583/xrpc/com.atproto.sync.subscribeRepos";
    post_and_receive_commit(base, ws, "bob.test").await;
    assert!(dir.path().join("data/store/pds.redb").is_file());
}

/// `make run-aws`: the same PDS on DynamoDB and S3 (the emulator `make test` runs), tables and
/// bucket created on start.
#[tokio::test]
async fn make_run_aws_serves_from_dynamodb_and_s3_on_the_emulator() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let prefix = format!("runaws{}-", hex::encode(rand::random::<[u8; 4]>()));
    let endpoint = crate::common::dynamo_endpoint();
    let emulator_port = endpoint.rsplit(':').next().unwrap().to_owned();
    let _server = make(
        "run-aws",
        dir.path(),
        &[
            ("PDS_PORT", port.to_string()),
            ("ARROBA_TABLE_PREFIX", prefix.clone()),
            ("EMULATOR_PORT", emulator_port),
        ],
    );
    let base = format!("http://localhost:{port}");
    wait_for(
        &format!("{base}/xrpc/_health"),
        &dir.path().join("run-aws.log"),
    )
    .await;
    let ws = format!("ws://localhost:{port}/xrpc/com.atproto.sync.subscribeRepos");
    let commit = post_and_receive_commit(&base, &ws, "erin.test").await;
    // The repo is in the DynamoDB tables under the prefix, not in a local store.
    let did =
        arroba::syntax::Did::parse(commit.get("repo").and_then(Value::as_str).unwrap()).unwrap();
    let storage = arroba::storage::DynamoStorage::with_sdk_config(
        &crate::common::sdk_config().await,
        arroba::storage::dynamo::DynamoConfig::new(prefix, None),
    );
    let record = arroba::storage::RepoStore::load_repo(&storage, &did)
        .await
        .unwrap()
        .expect("the repo is in DynamoDB");
    assert_eq!(
        Some(record.head),
        commit.get("commit").and_then(Value::as_link).copied()
    );
    assert!(!dir.path().join("data/store").exists());
}

#[test]
fn the_firehose_task_names_a_bad_setting_and_exits() {
    for (name, value) in [
        ("PDS_FIREHOSE_BUFFER", "lots"),
        ("PDS_FIREHOSE_WINDOW_HOURS", "0"),
        ("PDS_FIREHOSE_BUFER", "10"),
        ("PDS_FIREHOSE_PORT", "http"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_arroba"))
            .arg("firehose")
            .env_clear()
            .env(name, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
    }
}

/// Writes the stand-in for `cargo run --release --bin arroba --` into `dir`.
fn fake_cargo(dir: &std::path::Path) -> std::path::PathBuf {
    let cargo = dir.join("cargo");
    std::fs::write(
        &cargo,
        format!(
            "#!/bin/sh\nshift 5\nexec {} \"$@\"\n",
            env!("CARGO_BIN_EXE_arroba")
        ),
    )
    .unwrap();
    cargo
}

/// `make smoke` as an operator runs it after a deploy: every check passes against a running
/// PDS (here with a real blob for getBlob's headers), and against nothing it fails, naming each
/// check.
#[tokio::test]
async fn make_smoke_passes_against_a_running_pds_and_names_what_fails() {
    let pds = crate::common::pds::Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let uploaded: Json = pds
        .client
        .post(pds.xrpc("com.atproto.repo.uploadBlob"))
        .bearer_auth(&alice.access)
        .header("content-type", "image/png")
        .body(vec![7u8; 4096])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (status, body) = pds
        .post(
            "com.atproto.repo.createRecord",
            Some(&alice.access),
            json!({"repo": alice.did, "collection": "com.example.smoke", "validate": false,
                   "record": {"file": uploaded["blob"]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let blob = format!(
        "{}/{}",
        alice.did,
        uploaded["blob"]["ref"]["$link"].as_str().unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let cargo = fake_cargo(dir.path());
    let make = move |url: &str, blob: Option<&str>| {
        let mut cmd = Command::new("make");
        cmd.args(["-s", "-C", env!("CARGO_MANIFEST_DIR"), "smoke"])
            .arg(format!("URL={url}"))
            .arg(format!("CARGO=sh {}", cargo.display()))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap());
        if let Some(b) = blob {
            cmd.arg(format!("BLOB={b}"));
        }
        cmd.output().unwrap()
    };
    let url = pds.url.clone();
    let out = tokio::task::spawn_blocking(move || make(&url, Some(&blob)))
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 8, "{printed}");
    assert!(lines.iter().all(|l| l.starts_with("ok")), "{printed}");
    for check in [
        "describeServer",
        "handle subdomain",
        "firehose websocket",
        "getBlob",
        "cors preflight",
    ] {
        assert!(printed.contains(check), "{check}: {printed}");
    }
    // Nothing listening: each check fails and says so, and the exit code is 1.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_arroba"))
        .args(["smoke", &closed, "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let results: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        results.as_array().unwrap().iter().all(|r| r["ok"] == false),
        "{results}"
    );
}

/// `arroba collect-blocks` run on `data` with `args`.
/// Writes `car` to `file` and checks it with `arroba repo verify`, as a user would.
fn assert_car_verifies(file: &std::path::Path, car: &[u8]) {
    std::fs::write(file, car).unwrap();
    let verified = Command::new(env!("CARGO_BIN_EXE_arroba"))
        .args(["repo", "verify"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
}

fn collect_blocks(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_arroba"))
        .arg("collect-blocks")
        .args(args)
        .env_clear()
        .env("PDS_DATA_DIRECTORY", data)
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_deleted_account_s_blocks_are_collected_and_the_other_repos_stay_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let json_log = data.with_extension("json");
    let settings = [
        ("PDS_ADMIN_PASSWORD", "admin-password-0123456789"),
        ("PDS_BLOCK_COLLECT_INTERVAL_SECONDS", "1"),
    ];
    let port = free_port();
    let mut server = crate::common::process::serve(&data, port, &settings).await;
    let base = format!("http://127.0.0.1:{port}");
    let xrpc = |nsid: &str| format!("{base}/xrpc/{nsid}");
    let client = reqwest::Client::new();
    let mut accounts = Vec::new();
    for (handle, posts) in [("alice.test", 20), ("bob.test", 1)] {
        let account = post_json(
            &client,
            xrpc("com.atproto.server.createAccount"),
            None,
            json!({"handle": handle, "password": "pw-0123456789"}),
        )
        .await;
        for i in 0..posts {
            post_json(
                &client,
                xrpc("com.atproto.repo.createRecord"),
                account["accessJwt"].as_str(),
                json!({"repo": account["did"], "collection": "app.bsky.feed.post",
                       "record": {"text": format!("{handle} {i}"),
                                  "createdAt": "2026-12-01T00:00:00.000Z"}}),
            )
            .await;
        }
        accounts.push(account);
    }
    let deleted = client
        .post(xrpc("com.atproto.admin.deleteAccount"))
        .basic_auth("admin", Some("admin-password-0123456789"))
        .json(&json!({"did": accounts[0]["did"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    // The server runs the collector on its interval; with the default hour-long window it
    // leaves the just-deleted blocks for later.
    let mut report = None;
    for _ in 0..100 {
        let lines = std::fs::read_to_string(&json_log).unwrap_or_default();
        report = lines
            .lines()
            .filter_map(|l| serde_json::from_str::<Json>(l).ok())
            .find(|l| l["fields"]["message"] == "block collection finished");
        if report.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = report.expect("the server ran the block collector");
    assert_eq!(report["fields"]["deleted"], 0, "{report}");
    server.terminate();

    // A window under an hour is refused unless the store is quiescent.
    let refused = collect_blocks(&data, &["--window-seconds", "0"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--quiescent"));
    let run = |args: &[&str]| {
        let out = collect_blocks(&data, args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Json>(&out.stdout).unwrap()
    };
    let quiet = ["--window-seconds", "0", "--quiescent", "--json"];
    let first = run(&quiet);
    // Alice's 20 posts, her commits and tree nodes.
    assert!(first["deleted"].as_u64().unwrap() > 40, "{first}");
    assert_eq!(first["repos"], 1, "{first}");
    assert_eq!(run(&quiet)["deleted"], 0);

    // Bob's repo is whole: the server exports it and lists his post.
    let port = free_port();
    let _server = crate::common::process::serve(&data, port, &settings).await;
    let base = format!("http://127.0.0.1:{port}");
    let bob = accounts[1]["did"].as_str().unwrap();
    let repo = client
        .get(format!("{base}/xrpc/com.atproto.sync.getRepo?did={bob}"))
        .send()
        .await
        .unwrap();
    assert_eq!(repo.status(), 200);
    let car = repo.bytes().await.unwrap();
    let listed: Json = client
        .get(format!(
            "{base}/xrpc/com.atproto.repo.listRecords?repo={bob}&collection=app.bsky.feed.post"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["records"].as_array().unwrap().len(), 1, "{listed}");
    assert_car_verifies(&dir.path().join("bob.car"), &car);
}

/// `arroba serve` in a temporary directory with rate limits off, for the load tools: the
/// directory, the port and the running server.
async fn server_without_rate_limits() -> (tempfile::TempDir, u16, crate::common::process::Running) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = crate::common::process::serve(
        &dir.path().join("data"),
        port,
        &[("PDS_RATE_LIMITS_ENABLED", "false")],
    )
    .await;
    (dir, port, server)
}

#[tokio::test]
async fn arroba_bench_createrecord_loads_a_running_server_and_reports_what_it_measured() {
    let (_dir, port, _server) = server_without_rate_limits().await;
    let out = Command::new(env!("CARGO_BIN_EXE_arroba"))
        .args([
            "bench",
            "createrecord",
            "--url",
            &format!("http://127.0.0.1:{port}"),
        ])
        .args([
            "--repos",
            "2",
            "--connections",
            "3",
            "--seconds",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Json = serde_json::from_slice(&out.stdout).unwrap();
    let records = report["records"].as_u64().unwrap();
    assert!(records > 0, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(
        (report["repos"].clone(), report["connections"].clone()),
        (json!(2), json!(3))
    );
    let (p50, p99) = (
        report["p50Ms"].as_f64().unwrap(),
        report["p99Ms"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p99 >= p50, "{report}");
    // It made its two accounts on the server.
    let listed: Json = reqwest::get(format!(
        "http://127.0.0.1:{port}/xrpc/com.atproto.sync.listRepos"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(listed["repos"].as_array().unwrap().len(), 2, "{listed}");
}

#[tokio::test]
async fn arroba_bench_getrepo_fills_an_account_and_times_its_export() {
    let (_dir, port, _server) = server_without_rate_limits().await;
    let url = format!("http://127.0.0.1:{port}");
    let out = Command::new(env!("CARGO_BIN_EXE_arroba"))
        .args(["bench", "getrepo", "--url", &url])
        .args(["--records", "450", "--requests", "3", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["requests"], 3, "{report}");
    let (min, p50) = (
        report["minMs"].as_f64().unwrap(),
        report["p50Ms"].as_f64().unwrap(),
    );
    assert!(min > 0.0 && p50 >= min, "{report}");
    // The size it reports is the export's, and the repo holds the 450 posts it wrote.
    let did = report["did"].as_str().unwrap();
    let car = reqwest::get(format!("{url}/xrpc/com.atproto.sync.getRepo?did={did}"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(report["bytes"], car.len(), "{report}");
    let car = arroba::car::read_car(&car).unwrap();
    let records = car
        .blocks
        .iter()
        .filter(|(_, bytes)| {
            arroba::cbor::decode(bytes).is_ok_and(|v| {
                v.get("$type").and_then(|t| t.as_str()) == Some("app.bsky.feed.post")
            })
        })
        .count();
    assert_eq!(records, 450);

    // Pointed at a repo that does not exist, it fails and says why.
    let out = Command::new(env!("CARGO_BIN_EXE_arroba"))
        .args(["bench", "getrepo", "--url", &url])
        .args([
            "--did",
            "did:plc:nobodynobodynobodynobody",
            "--requests",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("RepoNotFound"), "{stderr}");
}

/// Each repo on the server at `base`: its DID, head and whole CAR.
async fn repos_with_cars(base: &str) -> Vec<(String, String, Vec<u8>)> {
    let listed: Json = reqwest::get(format!("{base}/xrpc/com.atproto.sync.listRepos"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut out = Vec::new();
    for repo in listed["repos"].as_array().unwrap() {
        let did = repo["did"].as_str().unwrap().to_owned();
        let car = reqwest::get(format!("{base}/xrpc/com.atproto.sync.getRepo?did={did}"))
            .await
            .unwrap();
        assert_eq!(car.status(), 200);
        let car = car.bytes().await.unwrap().to_vec();
        out.push((did, repo["head"].as_str().unwrap().to_owned(), car));
    }
    out
}

#[tokio::test]
async fn a_server_killed_under_load_comes_back_with_every_answered_commit() {
    let (dir, port, mut server) = server_without_rate_limits().await;
    let base = format!("http://127.0.0.1:{port}");
    let load = Command::new(env!("CARGO_BIN_EXE_arroba"))
        .args(["bench", "createrecord", "--url", &base, "--json"])
        .args(["--repos", "2", "--connections", "4", "--seconds", "2"])
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let before = repos_with_cars(&base).await;
    assert_eq!(before.len(), 2);
    // No shutdown: the block index entries written since the last fold are only in their own
    // tables and in the killed process's memory.
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let port = free_port();
    let _server = crate::common::process::serve(
        &dir.path().join("data"),
        port,
        &[("PDS_RATE_LIMITS_ENABLED", "false")],
    )
    .await;
    let after = repos_with_cars(&format!("http://127.0.0.1:{port}")).await;
    for ((did, head, car), (did_after, head_after, car_after)) in before.iter().zip(&after) {
        assert_eq!((did, head), (did_after, head_after));
        assert!(
            car == car_after,
            "{did}'s export changed across the restart"
        );
        assert_car_verifies(&dir.path().join("repo.car"), car_after);
    }
}
