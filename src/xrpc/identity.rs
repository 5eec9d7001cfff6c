//! `com.atproto.identity.*`: resolveHandle and updateHandle.

use axum::Json;
use axum::extract::State;
use serde_json::{Value as Json_, json};

use serde::Deserialize;

use super::auth::Access;
use super::extract::{Body, Params};
use super::limits::{Budget, Caller};
use super::{AppState, XrpcError};
use crate::oauth::Permission;
use crate::syntax::Handle;

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

/// The `updateHandle` input.
#[derive(Deserialize)]
pub(super) struct UpdateHandleInput {
    handle: Handle,
}

pub(super) async fn update_handle(
    State(state): State<AppState>,
    caller: Caller,
    access: Access,
    Body(input): Body<UpdateHandleInput>,
) -> Result<(), XrpcError> {
    access.require(Permission::Identity { attr: "handle" })?;
    state
        .limits()
        .spend(&caller, Budget::UpdateHandle, access.did.as_str(), 1)
        .await?;
    state
        .accounts()
        .set_own_handle(&access.did, input.handle)
        .await?;
    Ok(())
}
