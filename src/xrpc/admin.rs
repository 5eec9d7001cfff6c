//! `com.atproto.admin.*` (HTTP Basic `admin:PDS_ADMIN_PASSWORD`): account info, takedowns,
//! handle and password changes, deletion. The flows are in `crate::accounts`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value as Json_, json};

use serde::Deserialize;

use super::auth::Admin;
use super::extract::{Body, Params, data_value};
use super::{AppState, XrpcError};
use crate::cbor::Value;
use crate::storage::{Accounts, RepoStatus};
use crate::syntax::{Did, Handle, format_datetime};

type Out = Result<Json<Json_>, XrpcError>;

fn account_not_found(did: &Did) -> XrpcError {
    XrpcError::named("AccountNotFound", format!("Account not found: {did}"))
}

async fn info(state: &AppState, did: &Did) -> Result<Option<Json_>, XrpcError> {
    let Some(record) = state.storage().load_repo(did).await? else {
        return Ok(None);
    };
    let account = Accounts(state.storage()).get(did).await?;
    let mut out = json!({
        "did": did, "handle": record.handle.map(|h| h.to_string()).unwrap_or_else(|| crate::syntax::INVALID_HANDLE.into()),
        "indexedAt": format_datetime(record.created_at),
    });
    if let Some(email) = account.and_then(|a| a.email) {
        out["email"] = json!(email);
    }
    if record.status == RepoStatus::Deactivated {
        out["deactivatedAt"] = json!(format_datetime(record.created_at));
    }
    Ok(Some(out))
}

pub(super) async fn get_account_info(
    State(state): State<AppState>,
    _admin: Admin,
    params: Params,
) -> Out {
    let did: Did = params.required("did")?;
    info(&state, &did)
        .await?
        .map(Json)
        .ok_or_else(|| account_not_found(&did))
}

pub(super) async fn get_account_infos(
    State(state): State<AppState>,
    _admin: Admin,
    params: Params,
) -> Out {
    let mut infos = Vec::new();
    for d in params.all("dids") {
        let did = Did::parse(d)?;
        if let Some(i) = info(&state, &did).await? {
            infos.push(i);
        }
    }
    Ok(Json(json!({ "infos": infos })))
}

/// The `updateSubjectStatus` input: only account (`repoRef`) subjects are acted on.
#[derive(Deserialize)]
pub(super) struct UpdateSubjectStatusInput {
    #[serde(deserialize_with = "data_value")]
    subject: Value,
    #[serde(default, deserialize_with = "optional_data_value")]
    takedown: Option<Value>,
}

fn optional_data_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    data_value(d).map(Some)
}

pub(super) async fn update_subject_status(
    State(state): State<AppState>,
    _admin: Admin,
    Body(input): Body<UpdateSubjectStatusInput>,
) -> Out {
    let did = input
        .subject
        .get("did")
        .and_then(Value::as_str)
        .ok_or_else(|| XrpcError::invalid("Only account (repoRef) subjects are supported"))?;
    let did = Did::parse(did)?;
    if state.storage().load_repo(&did).await?.is_none() {
        return Err(account_not_found(&did));
    }
    if let Some(takedown) = &input.takedown {
        let applied = matches!(takedown.get("applied"), Some(Value::Bool(true)));
        state.accounts().set_takedown(&did, applied).await?;
    }
    Ok(Json(json!({
        "subject": crate::cbor::to_json(&input.subject),
        "takedown": input.takedown.as_ref().map(crate::cbor::to_json),
    })))
}

/// The `updateAccountHandle` input.
#[derive(Deserialize)]
pub(super) struct UpdateAccountHandleInput {
    did: Did,
    handle: Handle,
}

pub(super) async fn update_account_handle(
    State(state): State<AppState>,
    _admin: Admin,
    Body(input): Body<UpdateAccountHandleInput>,
) -> Result<(), XrpcError> {
    state
        .accounts()
        .set_handle(&input.did, input.handle)
        .await?;
    Ok(())
}

/// The `updateAccountPassword` input.
#[derive(Deserialize)]
pub(super) struct UpdateAccountPasswordInput {
    did: Did,
    password: String,
}

pub(super) async fn update_account_password(
    State(state): State<AppState>,
    _admin: Admin,
    Body(input): Body<UpdateAccountPasswordInput>,
) -> Result<(), XrpcError> {
    state
        .accounts()
        .set_password(&input.did, &input.password)
        .await?;
    Ok(())
}

/// The admin `deleteAccount` input.
#[derive(Deserialize)]
pub(super) struct AdminDeleteAccountInput {
    did: Did,
}

pub(super) async fn delete_account(
    State(state): State<AppState>,
    _admin: Admin,
    Body(input): Body<AdminDeleteAccountInput>,
) -> Result<(), XrpcError> {
    if state.storage().load_repo(&input.did).await?.is_none() {
        return Err(account_not_found(&input.did));
    }
    state.accounts().delete(&input.did).await?;
    Ok(())
}
