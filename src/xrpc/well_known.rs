//! Routes outside `/xrpc/<nsid>`: well-known files, health, the root page.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::syntax::Handle;

/// `/.well-known/atproto-did`: the DID of the handle named by the `Host` header, for handles on
/// this PDS's domains.
pub(super) async fn atproto_did(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let host = host.split(':').next().unwrap_or_default();
    let did = match Handle::parse(host) {
        Ok(handle) => state.storage().resolve_handle(&handle).await.ok().flatten(),
        Err(_) => None,
    };
    match did {
        Some(did) => ([(header::CONTENT_TYPE, "text/plain")], did.to_string()).into_response(),
        None => (StatusCode::NOT_FOUND, "no user by that name").into_response(),
    }
}

/// `/.well-known/did.json`: the service's did:web document.
pub(super) async fn did_json(State(state): State<AppState>) -> Response {
    let c = state.config();
    axum::Json(json!({
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": c.service_did,
        "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": c.public_url}],
    }))
    .into_response()
}

/// `/xrpc/_health`.
pub(super) async fn health() -> Response {
    axum::Json(json!({ "version": env!("CARGO_PKG_VERSION") })).into_response()
}

/// `/`: a banner for people who open the URL in a browser.
pub(super) async fn root() -> &'static str {
    "This is an AT Protocol Personal Data Server (arroba). Most API routes are under /xrpc/\n"
}
