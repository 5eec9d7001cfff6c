//! `com.atproto.identity.*`: resolveHandle and updateHandle.

use axum::Json;
use axum::extract::State;
use serde_json::{Value as Json_, json};

use super::auth::Access;
use super::extract::{Input, Params};
use super::{AppState, XrpcError};
use crate::storage::EventBody;
use crate::syntax::{Did, Handle};

pub(super) async fn resolve_handle(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<Json_>, XrpcError> {
    let handle: Handle = params.required("handle")?;
    if let Some(did) = state.storage().resolve_handle(&handle).await? {
        return Ok(Json(json!({ "did": did })));
    }
    let did = state.resolver().resolve_handle(&handle).await?;
    Ok(Json(json!({ "did": did })))
}

/// Moves `did` to `handle`: a handle under a service domain must be free; any other must
/// already resolve to `did` (DNS or well-known). The DID document is updated first for
/// did:plc accounts whose rotation key this PDS holds; then storage and `#identity`.
pub(super) async fn set_handle(
    state: &AppState,
    did: &Did,
    handle: Handle,
) -> Result<(), XrpcError> {
    let ours = state
        .config()
        .handle_domains
        .iter()
        .any(|d| handle.as_str().ends_with(d.as_str()));
    if ours {
        if let Some(owner) = state.storage().resolve_handle(&handle).await? {
            if &owner != did {
                return Err(XrpcError::named(
                    "HandleNotAvailable",
                    "Handle already taken",
                ));
            }
        }
    } else {
        let resolved = state
            .resolver()
            .resolve_handle(&handle)
            .await
            .map_err(|_| {
                XrpcError::invalid(format!("Handle {handle} does not resolve to {did}"))
            })?;
        if &resolved != did {
            return Err(XrpcError::invalid(format!(
                "Handle {handle} resolves to another DID"
            )));
        }
    }
    let keys =
        state.storage().load_keys(did).await?.ok_or_else(|| {
            XrpcError::named("RepoNotFound", format!("Could not find repo: {did}"))
        })?;
    if did.method() == "plc" {
        if let Some(rotation) = &keys.rotation {
            let aka = format!("at://{handle}");
            state
                .plc()
                .update(did, rotation, |data| {
                    data.also_known_as.retain(|a| !a.starts_with("at://"));
                    data.also_known_as.insert(0, aka);
                })
                .await?;
        }
    }
    state
        .storage()
        .set_handle(
            did,
            Some(handle.clone()),
            vec![EventBody::Identity {
                handle: Some(handle),
            }],
        )
        .await?;
    state.resolver().invalidate(Some(did), None);
    Ok(())
}

pub(super) async fn update_handle(
    State(state): State<AppState>,
    access: Access,
    input: Input,
) -> Result<(), XrpcError> {
    let handle: Handle = input.parse("handle")?;
    set_handle(&state, &access.did, handle).await
}
