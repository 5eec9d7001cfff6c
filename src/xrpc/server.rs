//! `com.atproto.server.*`: accounts, sessions, app passwords, invites. The flows are in
//! `crate::accounts`; these handlers parse, call and answer.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value as Json_, json};

use super::auth::{Access, Admin, Refresh, Scope, create_session};
use super::extract::{Body, OptionalBody, Params};
use super::limits::{Budget, Caller};
use super::{AppState, XrpcError};
use crate::accounts::{AccountError, NewAccount, TokenPurpose};
use crate::identity::service_auth;
use crate::oauth::Permission;
use crate::storage::{Accounts, RepoRecord, RepoStatus};
use crate::syntax::{Did, Handle, Nsid, format_datetime};

type Out = Result<Json<Json_>, XrpcError>;

pub(super) async fn describe_server(State(state): State<AppState>) -> Out {
    let c = state.config();
    Ok(Json(json!({
        "did": c.service_did,
        "availableUserDomains": c.handle_domains,
        "inviteCodeRequired": c.invite_required,
        "phoneVerificationRequired": false,
        "links": {},
        "contact": {},
    })))
}

fn status_fields(record: &RepoRecord) -> Json_ {
    if record.status.is_active() {
        json!({"active": true})
    } else {
        json!({"active": false, "status": record.status.as_str()})
    }
}

fn merge(out: &mut Json_, extra: Json_) {
    if let (Some(o), Json_::Object(e)) = (out.as_object_mut(), extra) {
        o.extend(e);
    }
}

async fn did_doc(state: &AppState, did: &Did) -> Json_ {
    // The document is informative here; an unreachable directory must not fail a login.
    match state.resolver().resolve_did(did).await {
        Ok(doc) => serde_json::to_value(doc).unwrap_or_default(),
        Err(_) => Json_::Null,
    }
}

/// The `createAccount` input.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateAccountInput {
    handle: Handle,
    email: Option<String>,
    password: Option<String>,
    invite_code: Option<String>,
    did: Option<Did>,
    recovery_key: Option<String>,
}

pub(super) async fn create_account(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    Body(input): Body<CreateAccountInput>,
) -> Out {
    state
        .limits()
        .spend(&caller, Budget::CreateAccount, &caller.ip_key(), 1)
        .await?;
    if let Some(did) = &input.did {
        super::migration::check_arriving(&state, &headers, did).await?;
    }
    let created = state
        .accounts()
        .create(NewAccount {
            handle: input.handle,
            password: input.password.unwrap_or_default(),
            email: input.email,
            invite_code: input.invite_code,
            recovery_key: input.recovery_key,
            did: input.did,
        })
        .await?;
    let (access, refresh) = create_session(&state, &created.did, None).await?;
    Ok(Json(json!({
        "accessJwt": access, "refreshJwt": refresh, "handle": created.handle, "did": created.did,
        "didDoc": did_doc(&state, &created.did).await,
    })))
}

/// The `createSession` input.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateSessionInput {
    identifier: String,
    password: String,
    auth_factor_token: Option<String>,
}

pub(super) async fn create_session_handler(
    State(state): State<AppState>,
    caller: Caller,
    Body(input): Body<CreateSessionInput>,
) -> Out {
    // Per identifier and address, as the reference PDS counts: one address cannot lock an
    // account out for everyone else.
    let key = format!(
        "{}-{}",
        input.identifier.trim().to_lowercase(),
        caller.ip_key()
    );
    state
        .limits()
        .spend(&caller, Budget::CreateSession, &key, 1)
        .await?;
    let login = state
        .accounts()
        .login(&input.identifier, &input.password)
        .await?;
    let did = login.record.did.clone();
    // E-mail two-factor: the first try mails a code, the second brings it.
    super::email::check_second_factor(&state, &login, input.auth_factor_token.as_deref()).await?;
    let app = login
        .app_password
        .as_ref()
        .map(|(name, privileged)| (name.as_str(), *privileged));
    let (access, refresh) = create_session(&state, &did, app).await?;
    let mut out = json!({
        "accessJwt": access, "refreshJwt": refresh, "handle": login.record.handle, "did": did,
        "email": login.account.email, "emailConfirmed": login.account.email_confirmed_at.is_some(),
        "emailAuthFactor": login.account.email_auth_factor, "didDoc": did_doc(&state, &did).await,
    });
    merge(&mut out, status_fields(&login.record));
    Ok(Json(out))
}

pub(super) async fn get_session(State(state): State<AppState>, access: Access) -> Out {
    let accounts = state.accounts();
    let record = accounts.repo(&access.did).await?;
    let account = Accounts(state.storage()).get(&access.did).await?;
    let confirmed = account
        .as_ref()
        .is_some_and(|a| a.email_confirmed_at.is_some());
    let auth_factor = account.as_ref().is_some_and(|a| a.email_auth_factor);
    let mut out = json!({
        "handle": record.handle, "did": access.did, "email": account.and_then(|a| a.email),
        "emailConfirmed": confirmed, "emailAuthFactor": auth_factor,
        "didDoc": did_doc(&state, &access.did).await,
    });
    if !access.may_read_email() {
        // An OAuth app sees the address only with `account:email` (or `transition:email`).
        for field in ["email", "emailConfirmed", "emailAuthFactor"] {
            if let Some(map) = out.as_object_mut() {
                map.remove(field);
            }
        }
    }
    merge(&mut out, status_fields(&record));
    Ok(Json(out))
}

pub(super) async fn refresh_session(State(state): State<AppState>, refresh: Refresh) -> Out {
    let accounts = Accounts(state.storage());
    // Taking the session makes the refresh token single-use: a replay finds nothing.
    let session = accounts
        .take_session(&refresh.did, &refresh.id)
        .await?
        .ok_or_else(|| XrpcError::named("ExpiredToken", "Token has been revoked"))?;
    if session.expires_at < Utc::now() {
        return Err(XrpcError::named("ExpiredToken", "Token has expired"));
    }
    let record = state.accounts().repo(&refresh.did).await?;
    if matches!(
        record.status,
        crate::storage::RepoStatus::Takendown | crate::storage::RepoStatus::Deleted
    ) {
        return Err(XrpcError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "AccountTakedown",
            "Account is not available",
        ));
    }
    let app = session
        .app_password
        .as_deref()
        .map(|n| (n, session.privileged));
    let (access, refresh_jwt) = create_session(&state, &refresh.did, app).await?;
    let mut out = json!({"accessJwt": access, "refreshJwt": refresh_jwt, "handle": record.handle, "did": refresh.did});
    merge(&mut out, status_fields(&record));
    Ok(Json(out))
}

pub(super) async fn delete_session(
    State(state): State<AppState>,
    refresh: Refresh,
) -> Result<(), XrpcError> {
    Accounts(state.storage())
        .take_session(&refresh.did, &refresh.id)
        .await?;
    Ok(())
}

/// `getServiceAuth`, with the reference PDS's rules: a token for a DID (or `did#service`), for
/// at most an hour and, without a method, a minute; never for account management; chat only
/// for privileged sessions; a taken-down account only for moving away (`createAccount`).
pub(super) async fn get_service_auth(
    State(state): State<AppState>,
    access: Access,
    params: Params,
) -> Out {
    let aud: String = params.required("aud")?;
    let (did_part, service) = match aud.split_once('#') {
        Some((d, s)) => (d, Some(s)),
        None => (aud.as_str(), None),
    };
    if Did::parse(did_part).is_err() || service.is_some_and(|s| s.is_empty() || s.contains('#')) {
        return Err(XrpcError::invalid(
            "aud must be a valid atproto DID or did#serviceId reference",
        ));
    }
    let lxm: Option<Nsid> = params.parse("lxm")?;
    let record = state.accounts().repo(&access.did).await?;
    let lxm_str = lxm.as_ref().map(Nsid::as_str);
    if record.status == RepoStatus::Takendown && lxm_str != Some("com.atproto.server.createAccount")
    {
        return Err(XrpcError::invalid_token("Bad token scope"));
    }
    if access.permissions.is_some() {
        // An OAuth token may mint a token for a call its `rpc:` scopes grant, and no other; a
        // token for any method is one `rpc:*` grant.
        access.require(Permission::Rpc {
            lxm: lxm_str.unwrap_or("*"),
            aud: &aud,
        })?;
    } else if let Some(method) = lxm_str {
        if super::proxy::is_privileged(method) && access.scope == Scope::AppPassword {
            return Err(XrpcError::invalid(format!(
                "insufficient access to request a service auth token for the following method: {method}"
            )));
        }
    }
    let now = Utc::now().timestamp();
    let exp: i64 = match params.parse::<i64>("exp")? {
        None => now + 60,
        Some(exp) if exp < now => {
            return Err(XrpcError::named("BadExpiration", "expiration is in past"));
        }
        Some(exp) if exp - now > 3600 => {
            return Err(XrpcError::named(
                "BadExpiration",
                "cannot request a token with an expiration more than an hour in the future",
            ));
        }
        Some(exp) if lxm.is_none() && exp - now > 60 => {
            return Err(XrpcError::named(
                "BadExpiration",
                "cannot request a method-less token with an expiration more than a minute in the future",
            ));
        }
        Some(exp) => exp,
    };
    if let Some(method) = lxm_str.filter(|m| super::proxy::is_protected(m)) {
        return Err(XrpcError::invalid(format!(
            "cannot request a service auth token for the following protected method: {method}"
        )));
    }
    let keys = state
        .storage()
        .load_keys(&access.did)
        .await?
        .ok_or(AccountError::NotFound(access.did.clone()))?;
    let token = service_auth::create(
        &keys.signing,
        &access.did,
        &aud,
        lxm.as_ref(),
        now,
        exp - now,
    );
    Ok(Json(json!({ "token": token })))
}

/// The `createAppPassword` input.
#[derive(Deserialize)]
pub(super) struct CreateAppPasswordInput {
    name: String,
    privileged: Option<bool>,
}

pub(super) async fn create_app_password(
    State(state): State<AppState>,
    access: Access,
    Body(input): Body<CreateAppPasswordInput>,
) -> Out {
    access.refuse_oauth("OAuth credentials are not supported for this endpoint")?;
    access.require_full()?;
    let privileged = input.privileged.unwrap_or(false);
    let (password, created_at) = state
        .accounts()
        .create_app_password(&access.did, &input.name, privileged)
        .await?;
    Ok(Json(json!({
        "name": input.name.trim(), "password": password, "createdAt": format_datetime(created_at),
        "privileged": privileged,
    })))
}

pub(super) async fn list_app_passwords(State(state): State<AppState>, access: Access) -> Out {
    access.refuse_oauth("OAuth credentials are not supported for this endpoint")?;
    access.require_full()?;
    let account = state.accounts().account(&access.did).await?;
    let passwords: Vec<Json_> = account
        .app_passwords
        .iter()
        .map(|a| json!({"name": a.name, "createdAt": format_datetime(a.created_at), "privileged": a.privileged}))
        .collect();
    Ok(Json(json!({ "passwords": passwords })))
}

/// The `revokeAppPassword` input.
#[derive(Deserialize)]
pub(super) struct RevokeAppPasswordInput {
    name: String,
}

pub(super) async fn revoke_app_password(
    State(state): State<AppState>,
    access: Access,
    Body(input): Body<RevokeAppPasswordInput>,
) -> Result<(), XrpcError> {
    access.refuse_oauth("OAuth credentials are not supported for this endpoint")?;
    access.require_full()?;
    state
        .accounts()
        .revoke_app_password(&access.did, &input.name)
        .await?;
    Ok(())
}

pub(super) async fn activate_account(
    State(state): State<AppState>,
    access: Access,
) -> Result<(), XrpcError> {
    // OAuth is refused to deactivated accounts, so no OAuth token may reactivate one.
    access.refuse_oauth(
        "Account reactivation is not available with OAuth credentials. Sign in to your account \
         management page to reactivate.",
    )?;
    access.require_full()?;
    state.accounts().activate(&access.did).await?;
    Ok(())
}

/// The `deactivateAccount` input (`deleteAfter` is accepted and not acted on: deactivated
/// accounts are kept until their owner deletes them).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeactivateAccountInput {
    #[serde(rename = "deleteAfter")]
    _delete_after: Option<String>,
}

pub(super) async fn deactivate_account(
    State(state): State<AppState>,
    access: Access,
    OptionalBody(_input): OptionalBody<DeactivateAccountInput>,
) -> Result<(), XrpcError> {
    access.require_full_or(Permission::Account {
        attr: "status",
        manage: true,
    })?;
    state.accounts().deactivate(&access.did).await?;
    Ok(())
}

pub(super) async fn check_account_status(State(state): State<AppState>, access: Access) -> Out {
    let record = state.accounts().repo(&access.did).await?;
    let view = state.blocks();
    let (_, mut repo) =
        crate::storage::load_repo_state(state.storage(), &view, &access.did).await?;
    crate::storage::fetch_tree(state.storage(), &view, &mut repo).await?;
    let records = repo
        .mst()
        .leaf_count()
        .map_err(crate::repo::RepoError::from)?;
    // The commit, every tree node and every record.
    let mut blocks = 1;
    crate::storage::with_blocks(state.storage(), &view, || {
        blocks = 1;
        repo.mst()
            .walk_export(&mut |_| {
                blocks += 1;
                std::ops::ControlFlow::Continue(())
            })
            .map_err(crate::repo::RepoError::from)
    })
    .await?;
    let accounts = Accounts(state.storage());
    let uploaded = accounts.list_blobs(&access.did, None, 100_000).await?;
    let imported = uploaded.iter().filter(|(_, b)| !b.unreferenced()).count();
    let waiting = accounts
        .list_expected_blobs(&access.did, None, 100_000)
        .await?
        .len();
    let preferences = accounts.get_preferences(&access.did).await?.len();
    // Resolved afresh, as the reference does: a migration tool asks right after changing it.
    state.resolver().invalidate(Some(&access.did), None);
    let doc = state.resolver().resolve_did(&access.did).await.ok();
    let signing = state
        .storage()
        .load_keys(&access.did)
        .await?
        .map(|k| k.signing.public_key().to_did_key());
    let valid_did = doc.is_some_and(|d| {
        d.pds_endpoint() == Some(state.config().public_url.as_str())
            && d.signing_key().map(|k| k.to_did_key()) == signing
    });
    Ok(Json(json!({
        "activated": record.status.is_active(), "validDid": valid_did, "repoCommit": record.head.to_string(),
        "repoRev": record.rev.to_string(), "repoBlocks": blocks, "indexedRecords": records,
        "privateStateValues": preferences, "expectedBlobs": imported + waiting, "importedBlobs": imported,
    })))
}

/// The `deleteAccount` input: the password and the code requestAccountDelete e-mailed.
#[derive(Deserialize)]
pub(super) struct DeleteAccountInput {
    did: Did,
    password: String,
    token: String,
}

pub(super) async fn delete_account(
    State(state): State<AppState>,
    caller: Caller,
    Body(input): Body<DeleteAccountInput>,
) -> Result<(), XrpcError> {
    state
        .limits()
        .spend(&caller, Budget::DeleteAccount, &caller.ip_key(), 1)
        .await?;
    let accounts = state.accounts();
    if !accounts.check_password(&input.did, &input.password).await? {
        return Err(XrpcError::auth_required("Invalid did or password"));
    }
    accounts
        .take_token_for(&input.did, TokenPurpose::DeleteAccount, &input.token)
        .await?;
    accounts.delete(&input.did).await?;
    purge(&state, &input.did).await?;
    Ok(())
}

/// The `createInviteCode` input.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateInviteCodeInput {
    use_count: i64,
    for_account: Option<Did>,
}

pub(super) async fn create_invite_code(
    State(state): State<AppState>,
    _admin: Admin,
    Body(input): Body<CreateInviteCodeInput>,
) -> Out {
    let for_account = input
        .for_account
        .map_or_else(|| "admin".to_owned(), Did::into_string);
    let code = state
        .accounts()
        .create_invite(input.use_count, &for_account)
        .await?;
    Ok(Json(json!({ "code": code })))
}

/// The `createInviteCodes` input.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateInviteCodesInput {
    code_count: i64,
    use_count: i64,
    for_accounts: Option<Vec<Did>>,
}

pub(super) async fn create_invite_codes(
    State(state): State<AppState>,
    _admin: Admin,
    Body(input): Body<CreateInviteCodesInput>,
) -> Out {
    let accounts: Vec<String> = match input.for_accounts {
        Some(dids) => dids.into_iter().map(Did::into_string).collect(),
        None => vec!["admin".to_owned()],
    };
    let made = state
        .accounts()
        .create_invites(input.code_count, input.use_count, &accounts)
        .await?;
    let codes: Vec<Json_> = made
        .into_iter()
        .map(|(account, codes)| json!({"account": account, "codes": codes}))
        .collect();
    Ok(Json(json!({ "codes": codes })))
}

pub(super) async fn get_account_invite_codes(
    State(state): State<AppState>,
    access: Access,
    params: Params,
) -> Out {
    access.refuse_oauth("OAuth credentials are not supported for this endpoint")?;
    access.require_full()?;
    // includeUsed defaults to true.
    let include_used = params.get("includeUsed").is_none() || params.flag("includeUsed")?;
    let codes: Vec<Json_> = state
        .accounts()
        .account_invites(&access.did)
        .await?
        .iter()
        .filter(|i| include_used || i.available > 0)
        .map(super::admin::invite_view)
        .collect();
    Ok(Json(json!({ "codes": codes })))
}

/// There is no sign-up queue here: every account is active from the start.
pub(super) async fn check_signup_queue(_access: Access) -> Out {
    Ok(Json(json!({ "activated": true })))
}

/// After a deletion: the account's blobs and remaining data go too (`storage::purge_account`).
pub(super) async fn purge(state: &AppState, did: &Did) -> Result<(), XrpcError> {
    let report = crate::storage::purge_account(state.storage(), state.blobs(), did).await?;
    tracing::info!(%did, blobs = report.blobs, entries = report.entries, "deleted account purged");
    Ok(())
}
