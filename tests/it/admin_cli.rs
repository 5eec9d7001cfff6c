//! `arroba admin` as an operator runs it, against `arroba serve`: every verb, in human and JSON
//! output, and its errors; and the same verbs against the reference PDS (not in `make test`:
//! `make reference-pds`).

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::account_migrate::text;
use crate::common::process::{free_port, serve};

const ADMIN_PASSWORD: &str = "admin-password-0123456789";

/// Runs `arroba admin --url URL ARGS…` with the admin password in the environment.
fn admin(url: &str, password: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arroba"))
        .args(["admin", "--url", url])
        .args(args)
        .env("PDS_ADMIN_PASSWORD", password)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// `admin` with `--json`, which must succeed; its output.
fn admin_json(url: &str, password: &str, args: &[&str]) -> Value {
    let out = admin(url, password, &[args, &["--json"]].concat());
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&out)))
}

async fn status_of(url: &str, did: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{url}/xrpc/com.atproto.sync.getRepoStatus"))
        .query(&[("did", did)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null)
}

async fn signs_in(url: &str, identifier: &str, password: &str) -> bool {
    reqwest::Client::new()
        .post(format!("{url}/xrpc/com.atproto.server.createSession"))
        .json(&json!({"identifier": identifier, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .is_success()
}

/// A relay stand-in that records the hostnames asked to be crawled.
async fn relay() -> (String, Arc<Mutex<Vec<String>>>) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let kept = asked.clone();
    let app = axum::Router::new().route(
        "/xrpc/com.atproto.sync.requestCrawl",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                kept.lock()
                    .unwrap()
                    .push(body["hostname"].as_str().unwrap_or_default().to_owned());
                axum::Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, asked)
}

/// Every verb against the PDS at `url`, whose handles may end in `.test`.
pub async fn exercise_verbs(url: &str, password: &str) {
    // An invite code, and an account made with a generated password.
    let code = admin_json(url, password, &["create-invite-code"]);
    assert!(!code["code"].as_str().unwrap().is_empty(), "{code}");
    let created = admin_json(
        url,
        password,
        &["account", "create", "dora@example.com", "dora.test"],
    );
    let did = created["did"].as_str().unwrap().to_owned();
    let first_password = created["password"].as_str().unwrap().to_owned();
    assert!(signs_in(url, "dora.test", &first_password).await);
    let human = admin(
        url,
        password,
        &["account", "create", "eve@example.com", "eve.test"],
    );
    assert!(human.status.success(), "{}", text(&human));
    let printed = String::from_utf8_lossy(&human.stdout);
    assert!(
        printed.contains("did:plc:") && printed.contains("password"),
        "{printed}"
    );

    // Listed, and described by handle or DID.
    let listed = admin_json(url, password, &["account", "list"]);
    let handles: Vec<&str> = listed["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["handle"].as_str())
        .collect();
    assert!(
        handles.contains(&"dora.test") && handles.contains(&"eve.test"),
        "{listed}"
    );
    let table = admin(url, password, &["account", "list"]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("dora@example.com\t"),
        "{}",
        text(&table)
    );
    let info = admin_json(url, password, &["account", "info", "dora.test"]);
    assert_eq!(info["did"], did.as_str(), "{info}");
    assert_eq!(info["email"], "dora@example.com");
    assert_eq!(info["takedown"], false);

    // Taken down and restored.
    admin_json(url, password, &["account", "takedown", &did]);
    assert_eq!(status_of(url, &did).await["status"], "takendown");
    assert_eq!(
        admin_json(url, password, &["account", "info", &did])["takedown"],
        true
    );
    admin_json(url, password, &["account", "untakedown", &did]);
    assert_eq!(status_of(url, &did).await["active"], true);

    // A new password replaces the old one.
    let reset = admin_json(url, password, &["account", "reset-password", &did]);
    let new_password = reset["password"].as_str().unwrap();
    assert!(signs_in(url, &did, new_password).await);
    assert!(!signs_in(url, &did, &first_password).await);

    // Deleted for good.
    admin_json(url, password, &["account", "delete", &did]);
    assert!(!signs_in(url, &did, new_password).await);
    let gone = admin(url, password, &["account", "info", &did]);
    let listed = admin_json(url, password, &["account", "list"]);
    assert!(
        !gone.status.success()
            || listed["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["did"] != did.as_str()),
        "{}",
        text(&gone)
    );

    // The relays are asked to crawl this PDS's host.
    let (relay_url, asked) = relay().await;
    let crawl = admin_json(url, password, &["request-crawl", &relay_url]);
    assert_eq!(crawl["relays"], json!([relay_url]));
    let host = url::Url::parse(url).unwrap().host_str().unwrap().to_owned();
    assert_eq!(*asked.lock().unwrap(), vec![host]);

    // A wrong password is refused, with the server's words and exit code 1.
    let refused = admin(url, "not-the-password", &["account", "list"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{}",
        text(&refused)
    );
}

// Two workers: the relay stand-in answers while the test waits for the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_verb_works_against_our_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = serve(
        &dir.path().join("data"),
        port,
        &[
            ("PDS_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("PDS_INVITE_REQUIRED", "true"),
        ],
    )
    .await;
    exercise_verbs(&format!("http://127.0.0.1:{port}"), ADMIN_PASSWORD).await;
}

#[test]
fn admin_without_a_url_or_a_password_says_what_is_missing() {
    let no_url = Command::new(env!("CARGO_BIN_EXE_arroba"))
        .args(["admin", "account", "list"])
        .env_remove("ARROBA_PDS_URL")
        .output()
        .unwrap();
    assert_eq!(no_url.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&no_url.stderr).contains("--url"),
        "{}",
        text(&no_url)
    );
    let no_password = Command::new(env!("CARGO_BIN_EXE_arroba"))
        .args(["admin", "--url", "http://127.0.0.1:9", "account", "list"])
        .env_remove("PDS_ADMIN_PASSWORD")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(no_password.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&no_password.stderr).contains("PDS_ADMIN_PASSWORD"),
        "{}",
        text(&no_password)
    );
    let unknown = Command::new(env!("CARGO_BIN_EXE_arroba"))
        .args(["admin", "account", "explode"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2), "bad usage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the reference PDS installed (3 minutes on a fresh machine): make reference-pds"]
async fn every_admin_verb_works_against_the_reference_pds() {
    let (smtp_port, _) = crate::common::smtp::stand_in().await;
    let reference =
        crate::reference_migration::Reference::start(free_port(), free_port(), None, smtp_port);
    // The runner's dev-mode admin password.
    exercise_verbs(&reference.url(), "admin-pass").await;
}
