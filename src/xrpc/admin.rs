//! `com.atproto.admin.*` (HTTP Basic `admin:PDS_ADMIN_PASSWORD`): account info, takedowns,
//! handle and password changes, deletion.

use axum::Json;
use axum::extract::State;
use serde_json::{Value as Json_, json};

use super::auth::{Admin, hash_password};
use super::extract::{Input, Params};
use super::{AppState, XrpcError};
use crate::storage::{Accounts, EventBody, RepoStatus};
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

pub(super) async fn update_subject_status(
    State(state): State<AppState>,
    _admin: Admin,
    input: Input,
) -> Out {
    let subject = input
        .0
        .get("subject")
        .ok_or_else(|| XrpcError::invalid("Missing required field: subject"))?;
    let did = subject
        .get("did")
        .and_then(crate::cbor::Value::as_str)
        .ok_or_else(|| XrpcError::invalid("Only account (repoRef) subjects are supported"))?;
    let did = Did::parse(did)?;
    let record = state
        .storage()
        .load_repo(&did)
        .await?
        .ok_or_else(|| account_not_found(&did))?;
    let takedown = input.0.get("takedown");
    if let Some(t) = takedown {
        let applied = matches!(t.get("applied"), Some(crate::cbor::Value::Bool(true)));
        let status = if applied {
            RepoStatus::Takendown
        } else {
            RepoStatus::Active
        };
        if record.status != status {
            state
                .storage()
                .set_status(&did, status, vec![EventBody::account(status)])
                .await?;
        }
        if applied {
            Accounts(state.storage())
                .revoke_sessions(&did, None)
                .await?;
        }
    }
    Ok(Json(json!({
        "subject": crate::cbor::to_json(subject),
        "takedown": takedown.map(crate::cbor::to_json),
    })))
}

pub(super) async fn update_account_handle(
    State(state): State<AppState>,
    _admin: Admin,
    input: Input,
) -> Result<(), XrpcError> {
    let did: Did = input.parse("did")?;
    let handle: Handle = input.parse("handle")?;
    super::identity::set_handle(&state, &did, handle).await
}

pub(super) async fn update_account_password(
    State(state): State<AppState>,
    _admin: Admin,
    input: Input,
) -> Result<(), XrpcError> {
    let did: Did = input.parse("did")?;
    let password = input.str("password")?;
    if password.is_empty() {
        return Err(XrpcError::invalid("Password must not be empty"));
    }
    let accounts = Accounts(state.storage());
    let mut account = accounts
        .get(&did)
        .await?
        .ok_or_else(|| account_not_found(&did))?;
    account.password_hash = hash_password(password)?;
    accounts.put(&account).await?;
    accounts.revoke_sessions(&did, None).await?;
    Ok(())
}

pub(super) async fn delete_account(
    State(state): State<AppState>,
    _admin: Admin,
    input: Input,
) -> Result<(), XrpcError> {
    let did: Did = input.parse("did")?;
    if state.storage().load_repo(&did).await?.is_none() {
        return Err(account_not_found(&did));
    }
    super::server::delete_account_data(&state, &did).await
}
