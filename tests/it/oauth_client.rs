//! A third-party OAuth client against `make run`: the official `@atproto/oauth-client-node`
//! library, run under Node, resolves the account's handle and DID, pushes its request, and opens
//! the sign-in page in a real headless browser (Debian's chromium, driven by playwright-core),
//! which fills in the password and allows; the library redeems the code and creates a record
//! with its DPoP-bound token. `make test` installs both into `.local/oauth-client`
//! (`make oauth-client`).

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::common::process::{free_port, post_json, wait_for};

fn install_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".local/oauth-client")
}

#[tokio::test]
async fn the_official_client_library_signs_in_through_the_browser_and_writes() {
    let installed = install_dir();
    assert!(
        installed
            .join("node_modules/@atproto/oauth-client-node")
            .is_dir()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "the OAuth client and chromium are not installed: run `make oauth-client`"
    );
    // The script beside its dependencies, as the checkout has it now.
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oauth-client/client.mjs");
    std::fs::copy(&source, installed.join("client.mjs")).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = crate::serve::make("run", dir.path(), &[("PDS_PORT", port.to_string())]);
    let log = dir.path().join("run.log");
    let base = format!("http://localhost:{port}");
    wait_for(&format!("{base}/xrpc/_health"), &log).await;
    let printed = std::fs::read_to_string(&log).unwrap();
    let plc = printed
        .split("local PLC directory on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no PLC directory in:\n{printed}"))
        .to_owned();
    let http = reqwest::Client::new();
    let account = post_json(
        &http,
        format!("{base}/xrpc/com.atproto.server.createAccount"),
        None,
        json!({"handle": "carol.test", "password": "carol-pw-0123", "email": "carol@example.com"}),
    )
    .await;

    let run = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .current_dir(&installed)
            .args(["client.mjs", &base, &plc, "carol.test", "carol-pw-0123"])
            .output()
            .unwrap()
    });
    let out = tokio::time::timeout(std::time::Duration::from_secs(90), run)
        .await
        .expect("the client finishes within 90 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
    assert_eq!(result["did"], account["did"]);
    assert_eq!(result["scope"], "atproto transition:generic");
    assert_eq!(result["status"], 200, "{result}");
    // The record is in the repo, as the account's.
    let uri = result["uri"].as_str().unwrap();
    let rkey = uri.rsplit('/').next().unwrap();
    let got: Value = http
        .get(format!(
            "http://localhost:{port}/xrpc/com.atproto.repo.getRecord"
        ))
        .query(&[
            ("repo", account["did"].as_str().unwrap()),
            ("collection", "app.bsky.feed.post"),
            ("rkey", rkey),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["value"]["text"], "signed in with OAuth");
}
