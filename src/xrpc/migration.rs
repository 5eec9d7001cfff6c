//! Moving accounts in and out (atproto's migration guide): an arriving `createAccount` with an
//! existing DID is checked here (a service-auth token from that DID), and the identity methods
//! — recommended credentials, the e-mailed signature request, signing and submitting PLC
//! operations — plus `listMissingBlobs`. The flows are `accounts`' (`migration`).

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use super::auth::Access;
use super::extract::{Body, OptionalBody, Params};
use super::{AppState, XrpcError};
use crate::accounts::{CredentialChanges, TokenPurpose};
use crate::oauth::Permission;
use crate::storage::Accounts;
use crate::syntax::Did;

type Out = Result<Json<serde_json::Value>, XrpcError>;

/// For `createAccount` with an existing `did`: the request must carry a service-auth token that
/// `did` signed for this PDS (`aud`) and this method (`lxm`), as the old PDS issues it
/// (`getServiceAuth`), checked against the DID document's current key.
pub(super) async fn check_arriving(
    state: &AppState,
    headers: &HeaderMap,
    did: &Did,
) -> Result<(), XrpcError> {
    let issuer =
        super::auth::service_token_caller(state, headers, "com.atproto.server.createAccount")
            .await?;
    if &issuer != did {
        return Err(XrpcError::forbidden(
            "Forbidden",
            "The service token was not issued by the DID being created",
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
pub(super) struct ReserveSigningKeyInput {
    did: Option<String>,
}

/// `reserveSigningKey`: a signing key for an account yet to arrive, by its DID (the key its
/// `createAccount` will sign with) or without one. Open to anyone, as on the reference PDS; the
/// request rate limits bound it.
pub(super) async fn reserve_signing_key(
    State(state): State<AppState>,
    OptionalBody(input): OptionalBody<ReserveSigningKeyInput>,
) -> Out {
    let did = input
        .and_then(|i| i.did)
        .map(|d| Did::parse(&d).map_err(|e| XrpcError::invalid(format!("Invalid did: {e}"))))
        .transpose()?;
    let signing_key = state.accounts().reserve_signing_key(did.as_ref()).await?;
    Ok(Json(json!({ "signingKey": signing_key })))
}

pub(super) async fn get_recommended_did_credentials(
    State(state): State<AppState>,
    access: Access,
) -> Out {
    Ok(Json(
        state
            .accounts()
            .recommended_credentials(&access.did)
            .await?,
    ))
}

pub(super) async fn request_plc_operation_signature(
    State(state): State<AppState>,
    access: Access,
) -> Result<(), XrpcError> {
    access.require_full_or(Permission::Identity { attr: "*" })?;
    let accounts = state.accounts();
    let email = accounts
        .account(&access.did)
        .await?
        .email
        .ok_or_else(|| XrpcError::invalid("This account does not have an e-mail address"))?;
    let token = accounts
        .issue_token(&access.did, TokenPurpose::PlcOperation)
        .await?;
    super::email::send_code(
        &state,
        &access.did,
        &email,
        TokenPurpose::PlcOperation,
        &token,
    )
    .await
}

/// The `signPlcOperation` input.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SignPlcOperationInput {
    token: Option<String>,
    rotation_keys: Option<Vec<String>>,
    also_known_as: Option<Vec<String>>,
    verification_methods: Option<serde_json::Map<String, serde_json::Value>>,
    services: Option<serde_json::Map<String, serde_json::Value>>,
}

pub(super) async fn sign_plc_operation(
    State(state): State<AppState>,
    access: Access,
    Body(input): Body<SignPlcOperationInput>,
) -> Out {
    access.require_full_or(Permission::Identity { attr: "*" })?;
    let token = input.token.ok_or_else(|| {
        XrpcError::invalid("email confirmation token required to sign PLC operations")
    })?;
    let op = state
        .accounts()
        .sign_plc_operation(
            &access.did,
            &token,
            CredentialChanges {
                rotation_keys: input.rotation_keys,
                also_known_as: input.also_known_as,
                verification_methods: input.verification_methods,
                services: input.services,
            },
        )
        .await?;
    Ok(Json(json!({ "operation": op.to_json() })))
}

/// The `submitPlcOperation` input.
#[derive(Deserialize)]
pub(super) struct SubmitPlcOperationInput {
    operation: serde_json::Value,
}

pub(super) async fn submit_plc_operation(
    State(state): State<AppState>,
    access: Access,
    Body(input): Body<SubmitPlcOperationInput>,
) -> Result<(), XrpcError> {
    access.require_full_or(Permission::Identity { attr: "*" })?;
    state
        .accounts()
        .submit_plc_operation(&access.did, &input.operation)
        .await?;
    Ok(())
}

pub(super) async fn list_missing_blobs(
    State(state): State<AppState>,
    access: Access,
    params: Params,
) -> Out {
    let limit = params.limit(500, 1000)?;
    let page = Accounts(state.storage())
        .list_expected_blobs(&access.did, params.get("cursor"), limit)
        .await?;
    let blobs: Vec<serde_json::Value> = page
        .iter()
        .filter_map(|(cid, paths)| {
            let path = paths.first()?;
            Some(json!({"cid": cid, "recordUri": format!("at://{}/{path}", access.did)}))
        })
        .collect();
    let mut out = json!({ "blobs": blobs });
    if page.len() == limit {
        if let Some((cid, _)) = page.last() {
            out["cursor"] = json!(cid);
        }
    }
    Ok(Json(out))
}
