//! A real PDS on a loopback socket for HTTP tests, built by the same root as `arroba serve`
//! (`arroba::app::Pds`): the embedded store (or any storage a test hands in), the in-process
//! PLC directory of dev mode, the firehose hub, and a reqwest client with helpers.

use std::sync::Arc;

use arroba::app::{Pds as App, PdsConfig};
use arroba::config::Env;
use arroba::storage::{BlobStore, Storage};
use arroba::xrpc::AppState;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub struct Pds {
    pub url: String,
    pub state: AppState,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    /// Cancelled when the test's PDS is dropped: stops the hub and the local PLC directory.
    pub shutdown: CancellationToken,
    /// The URL of its PLC directory.
    pub plc_url: String,
}

impl Drop for Pds {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub struct Session {
    pub did: String,
    pub handle: String,
    pub access: String,
    pub refresh: String,
}

pub const ADMIN_PASSWORD: &str = "admin-secret";
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef0123";

/// The environment of a test PDS in `dir`: dev mode, fixed secrets, small uploads, plus `extra`.
pub fn env(dir: &std::path::Path, extra: &[(&str, &str)]) -> Env {
    let mut env: Env = [
        ("PDS_DEV_MODE", "true"),
        ("PDS_HOSTNAME", "pds.test"),
        ("PDS_JWT_SECRET", JWT_SECRET),
        ("PDS_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("PDS_BLOB_UPLOAD_LIMIT", "100000"),
    ]
    .into_iter()
    .collect();
    env.set("PDS_DATA_DIRECTORY", dir.display().to_string());
    for (k, v) in extra {
        env.set(*k, *v);
    }
    env
}

/// The configuration of a test PDS in `dir`.
pub fn config(dir: &std::path::Path, extra: &[(&str, &str)]) -> PdsConfig {
    PdsConfig::from_env(&env(dir, extra)).unwrap()
}

impl Pds {
    /// A PDS on the embedded store in a fresh folder.
    pub async fn start(extra: &[(&str, &str)]) -> Pds {
        let dir = tempfile::tempdir().unwrap();
        let app = App::builder(config(dir.path(), extra));
        Pds::serve(dir, app).await
    }

    /// A PDS on the given storage and blob store.
    pub async fn start_with(
        dir: tempfile::TempDir,
        storage: Arc<dyn Storage>,
        blobs: Arc<dyn BlobStore>,
        extra: &[(&str, &str)],
    ) -> Pds {
        let app = App::builder(config(dir.path(), extra))
            .storage(storage)
            .blobs(blobs);
        Pds::serve(dir, app).await
    }

    /// Starts `app` and serves it on a loopback port.
    pub async fn serve(dir: tempfile::TempDir, app: arroba::app::PdsBuilder) -> Pds {
        let shutdown = CancellationToken::new();
        let app = app.shutdown(shutdown.clone()).start().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = app.state().clone();
        let plc_url = state.config().did_plc_url.clone().unwrap();
        tokio::spawn(app.serve(listener));
        Pds {
            url,
            state,
            client: reqwest::Client::new(),
            dir,
            shutdown,
            plc_url,
        }
    }

    pub fn xrpc(&self, nsid: &str) -> String {
        format!("{}/xrpc/{nsid}", self.url)
    }

    /// POSTs JSON with an optional bearer token; returns (status, JSON body).
    pub async fn post(&self, nsid: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.client.post(self.xrpc(nsid)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GETs with query params and an optional token; returns (status, JSON body).
    pub async fn get(
        &self,
        nsid: &str,
        token: Option<&str>,
        query: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self.client.get(self.xrpc(nsid)).query(query);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GETs raw bytes.
    pub async fn get_bytes(&self, nsid: &str, query: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .get(self.xrpc(nsid))
            .query(query)
            .send()
            .await
            .unwrap()
    }

    pub async fn admin_post(&self, nsid: &str, body: Value) -> (u16, Value) {
        let resp = self
            .client
            .post(self.xrpc(nsid))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn admin_get(&self, nsid: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .client
            .get(self.xrpc(nsid))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .query(query)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn create_account(&self, name: &str) -> Session {
        let (status, body) = self
            .post("com.atproto.server.createAccount", None, json!({"handle": format!("{name}.test"), "password": format!("{name}-pw"), "email": format!("{name}@example.com")}))
            .await;
        assert_eq!(status, 200, "{body}");
        Session {
            did: body["did"].as_str().unwrap().into(),
            handle: body["handle"].as_str().unwrap().into(),
            access: body["accessJwt"].as_str().unwrap().into(),
            refresh: body["refreshJwt"].as_str().unwrap().into(),
        }
    }

    pub async fn create_post(&self, s: &Session, text: &str) -> Value {
        let (status, body) = self
            .post("com.atproto.repo.createRecord", Some(&s.access), json!({"repo": s.did, "collection": "app.bsky.feed.post", "record": {"text": text, "createdAt": "2026-01-01T00:00:00.000Z"}}))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn head(&self, did: &str) -> String {
        let (_, body) = self
            .get("com.atproto.sync.getLatestCommit", None, &[("did", did)])
            .await;
        body["cid"].as_str().unwrap_or_default().to_owned()
    }

    /// Every message in the PDS's outbox (dev mode writes mail there), oldest first.
    pub fn mails(&self) -> Vec<arroba::mail::Mail> {
        let dir = self.dir.path().join("outbox");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    /// The code in the newest message to `to` (`XXXXX-XXXXX`).
    pub fn last_code_to(&self, to: &str) -> String {
        let mail = self
            .mails()
            .into_iter()
            .rev()
            .find(|m| m.to == to)
            .unwrap_or_else(|| panic!("no mail to {to}"));
        mail.text
            .split_whitespace()
            .find(|w| {
                w.len() == 11
                    && w.as_bytes()[5] == b'-'
                    && w.chars()
                        .all(|c| c == '-' || c.is_ascii_uppercase() || c.is_ascii_digit())
            })
            .unwrap_or_else(|| panic!("no code in {}", mail.text))
            .to_owned()
    }
}
