//! A stand-in for a service the PDS proxies to (an AppView, a chat service), on a real socket.
//! It checks each call's service-auth token the way a real service does: the issuer's DID
//! document fetched from the PLC directory over HTTP, the signature against its `#atproto` key,
//! `aud` its own DID, `lxm` the method called, `exp` in the future. Calls it accepts are recorded
//! and answered with canned, lexicon-valid views; a bad token gets 401.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arroba::crypto::PublicKey;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// One call the service accepted.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub nsid: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The verified token's claims.
    pub claims: Value,
}

#[derive(Clone)]
struct Shared {
    did: Arc<Mutex<String>>,
    plc_url: Arc<Mutex<String>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// What `Atproto-Repo-Rev` says (None: no header).
    rev: Arc<Mutex<Option<String>>>,
    /// Canned answers by NSID (else an echo).
    answers: Arc<Mutex<BTreeMap<String, Value>>>,
}

pub struct Service {
    pub url: String,
    shared: Shared,
}

impl Service {
    /// A service with DID `did`, resolving callers through the PLC directory at `plc_url`
    /// (either may be set later, once known: a DID can depend on the service's URL).
    pub async fn start(did: &str, plc_url: &str) -> Service {
        let shared = Shared {
            did: Arc::new(Mutex::new(did.to_owned())),
            plc_url: Arc::new(Mutex::new(plc_url.to_owned())),
            seen: Arc::default(),
            rev: Arc::default(),
            answers: Arc::default(),
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Service { url, shared }
    }

    /// The service's DID (the `aud` it accepts).
    pub fn did(&self) -> String {
        self.shared.did.lock().unwrap().clone()
    }

    pub fn set_did(&self, did: &str) {
        *self.shared.did.lock().unwrap() = did.to_owned();
    }

    pub fn set_plc_url(&self, url: &str) {
        *self.shared.plc_url.lock().unwrap() = url.to_owned();
    }

    /// The calls accepted so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The `Atproto-Repo-Rev` the service reports (the newest rev it has indexed).
    pub fn set_rev(&self, rev: Option<&str>) {
        *self.shared.rev.lock().unwrap() = rev.map(str::to_owned);
    }

    /// Answers `nsid` with `body`.
    pub fn answer(&self, nsid: &str, body: Value) {
        self.shared
            .answers
            .lock()
            .unwrap()
            .insert(nsid.to_owned(), body);
    }
}

fn refuse(why: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": "BadJwt", "message": why})),
    )
        .into_response()
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let nsid = parts
        .uri
        .path()
        .strip_prefix("/xrpc/")
        .unwrap_or_default()
        .to_owned();
    let body = axum::body::to_bytes(body, 10 << 20).await.unwrap();
    let Some(token) = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return refuse("no token");
    };
    let claims = match verify(&shared, token, &nsid).await {
        Ok(claims) => claims,
        Err(why) => return refuse(&why),
    };
    shared.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        nsid: nsid.clone(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers.clone(),
        body: body.clone(),
        claims,
    });
    match nsid.as_str() {
        "app.bsky.test.refuse" => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "NotAllowed", "message": "nope"})),
            )
                .into_response();
        }
        "app.bsky.test.crash" => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"error": "InternalServerError", "message": "boom"})),
            )
                .into_response();
        }
        _ => {}
    }
    let answer = shared.answers.lock().unwrap().get(&nsid).cloned();
    let body = answer.unwrap_or_else(|| {
        json!({
            "nsid": nsid,
            "query": parts.uri.query().unwrap_or_default(),
            "body": String::from_utf8_lossy(&body),
            "contentType": parts.headers.get("content-type").and_then(|v| v.to_str().ok()),
        })
    });
    let mut response = axum::Json(body).into_response();
    if let Some(rev) = shared.rev.lock().unwrap().clone() {
        response
            .headers_mut()
            .insert("atproto-repo-rev", rev.parse().unwrap());
    }
    response.headers_mut().insert(
        "atproto-content-labelers",
        "did:plc:labeler".parse().unwrap(),
    );
    response
}

/// Checks a service-auth token as a service does; the claims, or why not.
async fn verify(shared: &Shared, token: &str, nsid: &str) -> Result<Value, String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, sig] = parts[..] else {
        return Err("not a JWT".into());
    };
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).map_err(|e| e.to_string());
    let header: Value = serde_json::from_slice(&decode(header)?).map_err(|e| e.to_string())?;
    let claims_json: Value = serde_json::from_slice(&decode(claims)?).map_err(|e| e.to_string())?;
    let iss = claims_json["iss"].as_str().ok_or("no iss")?;
    let plc_url = shared.plc_url.lock().unwrap().clone();
    let doc: Value = reqwest::get(format!("{plc_url}/{iss}"))
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let multibase = doc["verificationMethod"]
        .as_array()
        .and_then(|methods| {
            methods
                .iter()
                .find(|m| m["id"].as_str().is_some_and(|id| id.ends_with("#atproto")))
        })
        .and_then(|m| m["publicKeyMultibase"].as_str())
        .ok_or("no #atproto key in the issuer's DID document")?;
    let key =
        PublicKey::from_did_key(&format!("did:key:{multibase}")).map_err(|e| e.to_string())?;
    if header["alg"] != key.algorithm().jwt_alg() {
        return Err(format!("alg {} does not fit the key", header["alg"]));
    }
    let signing_input = format!("{}.{}", parts[0], parts[1]);
    key.verify(signing_input.as_bytes(), &decode(sig)?)
        .map_err(|e| format!("signature: {e}"))?;
    let did = shared.did.lock().unwrap().clone();
    if claims_json["aud"] != did {
        return Err(format!("aud {} is not {did}", claims_json["aud"]));
    }
    if claims_json["lxm"] != nsid {
        return Err(format!("lxm {} is not {nsid}", claims_json["lxm"]));
    }
    let now = chrono::Utc::now().timestamp();
    if claims_json["exp"].as_i64().is_none_or(|exp| exp <= now) {
        return Err("expired".into());
    }
    Ok(claims_json)
}
