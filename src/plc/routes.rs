//! The directory's HTTP routes.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use serde_json::json;

use super::{PlcStore, PlcStoreError};
use crate::identity::plc::{PlcLog, PlcOperation};
use crate::syntax::Did;

/// Largest operation body accepted.
const MAX_OPERATION_BYTES: usize = 64 * 1024;

/// The directory's router.
pub fn router(store: PlcStore) -> Router {
    Router::new()
        .route(
            "/_health",
            get(|| async { axum::Json(json!({ "version": env!("CARGO_PKG_VERSION") })) }),
        )
        .route("/{did}", get(document).post(submit))
        .route("/{did}/data", get(data))
        .route("/{did}/log", get(log))
        .route("/{did}/log/audit", get(audit))
        .route("/{did}/log/last", get(last))
        .layer(DefaultBodyLimit::max(MAX_OPERATION_BYTES))
        .with_state(store)
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        axum::Json(json!({ "message": message.to_string() })),
    )
        .into_response()
}

fn parse_did(did: &str) -> Result<Did, Response> {
    Did::parse(did)
        .ok()
        .filter(|d| d.method() == "plc")
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, format!("invalid did:plc: {did}")))
}

fn store_error(e: PlcStoreError) -> Response {
    match e {
        PlcStoreError::Invalid(e) => error(StatusCode::BAD_REQUEST, e),
        other => {
            tracing::error!(error = %other, "PLC store failure");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// The verified log of `did`, or a 404.
fn load(store: &PlcStore, did: &str) -> Result<PlcLog, Response> {
    let did = parse_did(did)?;
    let ops = store
        .operations(&did)
        .map_err(store_error)?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("DID not registered: {did}")))?;
    PlcLog::verify(&did, ops).map_err(|e| store_error(PlcStoreError::Invalid(e)))
}

async fn submit(State(store): State<PlcStore>, Path(did): Path<String>, body: Bytes) -> Response {
    let did = match parse_did(&did) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let json: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(j) => j,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")),
    };
    let op = match PlcOperation::from_json(&json) {
        Ok(op) => op,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let store2 = store.clone();
    match tokio::task::spawn_blocking(move || store2.append(&did, op, Utc::now())).await {
        Ok(Ok(_)) => StatusCode::OK.into_response(),
        Ok(Err(e)) => store_error(e),
        Err(e) => store_error(PlcStoreError::Database(e.to_string())),
    }
}

async fn document(State(store): State<PlcStore>, Path(did): Path<String>) -> Response {
    let log = match load(&store, &did) {
        Ok(l) => l,
        Err(r) => return r,
    };
    match log.state() {
        Some(state) => axum::Json(state.to_did_doc(&log.did)).into_response(),
        None => error(StatusCode::GONE, format!("DID not available: {}", log.did)),
    }
}

async fn data(State(store): State<PlcStore>, Path(did): Path<String>) -> Response {
    let log = match load(&store, &did) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let Some(state) = log.state() else {
        return error(StatusCode::GONE, format!("DID not available: {}", log.did));
    };
    let services: serde_json::Map<String, serde_json::Value> = state
        .services
        .iter()
        .map(|(k, s)| (k.clone(), json!({ "type": s.kind, "endpoint": s.endpoint })))
        .collect();
    axum::Json(json!({
        "did": log.did.as_str(),
        "verificationMethods": state.verification_methods,
        "rotationKeys": state.rotation_keys,
        "alsoKnownAs": state.also_known_as,
        "services": services,
    }))
    .into_response()
}

async fn log(State(store): State<PlcStore>, Path(did): Path<String>) -> Response {
    match load(&store, &did) {
        Ok(l) => {
            axum::Json(l.ops.iter().map(PlcOperation::to_json).collect::<Vec<_>>()).into_response()
        }
        Err(r) => r,
    }
}

async fn audit(State(store): State<PlcStore>, Path(did): Path<String>) -> Response {
    let did = match parse_did(&did) {
        Ok(d) => d,
        Err(r) => return r,
    };
    match store.audit_log(&did) {
        Ok(Some(entries)) => axum::Json(entries).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("DID not registered: {did}")),
        Err(e) => store_error(e),
    }
}

async fn last(State(store): State<PlcStore>, Path(did): Path<String>) -> Response {
    match load(&store, &did) {
        Ok(l) => axum::Json(l.last().to_json()).into_response(),
        Err(r) => r,
    }
}
