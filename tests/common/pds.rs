//! A real PDS on a loopback socket for HTTP tests: the XRPC router on the embedded store (or
//! DynamoDB + S3), a real PLC directory, and a reqwest client with helpers.

use std::collections::HashMap;
use std::sync::Arc;

use arroba::identity::{IdentityConfig, Resolver};
use arroba::storage::{BlobStore, DiskBlobStore, DiskStorage, KeySealer, Storage};
use arroba::xrpc::{AppState, ServerConfig, router};
use serde_json::{Value, json};

pub struct Pds {
    pub url: String,
    pub state: AppState,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub struct Session {
    pub did: String,
    pub handle: String,
    pub access: String,
    pub refresh: String,
}

pub const ADMIN_PASSWORD: &str = "admin-secret";
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef0123";

pub fn config(dir: &std::path::Path, extra: &[(&str, &str)]) -> ServerConfig {
    let mut env: HashMap<String, String> = HashMap::from([
        ("PDS_DEV_MODE".into(), "true".into()),
        ("PDS_HOSTNAME".into(), "pds.test".into()),
        ("PDS_JWT_SECRET".into(), JWT_SECRET.into()),
        ("PDS_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
        ("PDS_DATA_DIRECTORY".into(), dir.display().to_string()),
        ("PDS_BLOB_UPLOAD_LIMIT".into(), "100000".into()),
    ]);
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    ServerConfig::from_env(&env).unwrap()
}

async fn plc_directory(dir: &std::path::Path) -> String {
    let store = arroba::plc::PlcStore::open(&dir.join("plc")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(arroba::plc::serve(listener, store, std::future::pending()));
    url
}

impl Pds {
    /// A PDS on the embedded store.
    pub async fn start(extra: &[(&str, &str)]) -> Pds {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> =
            Arc::new(DiskStorage::open(&dir.path().join("store"), KeySealer::ephemeral()).unwrap());
        let blobs: Arc<dyn BlobStore> = Arc::new(DiskBlobStore::new(dir.path().join("blobs")));
        Pds::start_with(dir, storage, blobs, extra).await
    }

    /// A PDS on the given storage and blob store.
    pub async fn start_with(
        dir: tempfile::TempDir,
        storage: Arc<dyn Storage>,
        blobs: Arc<dyn BlobStore>,
        extra: &[(&str, &str)],
    ) -> Pds {
        let plc_url = plc_directory(dir.path()).await;
        let mut config = config(dir.path(), extra);
        config.did_plc_url = Some(plc_url.clone());
        let resolver = Arc::new(
            Resolver::new(IdentityConfig {
                plc_url,
                allow_private_addresses: true,
                ..IdentityConfig::default()
            })
            .unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState::new(config, storage, blobs, resolver);
        let app = router().with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Pds {
            url,
            state,
            client: reqwest::Client::new(),
            dir,
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
}
