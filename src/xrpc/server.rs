//! `com.atproto.server.*`: accounts, sessions, app passwords, invites.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde_json::{Value as Json_, json};

use super::auth::{self, Access, Admin, Refresh, create_session, hash_password, verify_password};
use super::extract::{Input, Params};
use super::{AppState, XrpcError};
use crate::crypto::{Algorithm, Keypair, PublicKey};
use crate::identity::service_auth;
use crate::storage::accounts::{Account, AppPassword, Invite};
use crate::storage::{
    Accounts, EventBody, RepoKeys, RepoRecord, RepoStatus, commit_writes, create_repo,
};
use crate::syntax::{Did, Handle, Nsid};

type Out = Result<Json<Json_>, XrpcError>;

/// The repo record of the token's own account; a valid token for a repo that is gone is
/// refused like an unknown account.
async fn own_repo(state: &AppState, did: &Did) -> Result<RepoRecord, XrpcError> {
    state
        .storage()
        .load_repo(did)
        .await?
        .ok_or_else(|| XrpcError::invalid_token("Account not found"))
}

/// The account data (password, app passwords, email) of the token's own account.
async fn own_account(accounts: &Accounts<'_>, did: &Did) -> Result<Account, XrpcError> {
    accounts
        .get(did)
        .await?
        .ok_or_else(|| XrpcError::invalid_token("Account not found"))
}

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

/// Checks a new handle against the service domains: `<name><domain>` with a name of 3 to 18
/// characters and no dots (the reference PDS's rule).
fn check_service_handle(state: &AppState, handle: &Handle) -> Result<(), XrpcError> {
    let domain = state
        .config()
        .handle_domains
        .iter()
        .find(|d| handle.as_str().ends_with(d.as_str()))
        .ok_or_else(|| XrpcError::named("UnsupportedDomain", "Not a supported handle domain"))?;
    let name = &handle.as_str()[..handle.as_str().len() - domain.len()];
    if name.contains('.') {
        return Err(XrpcError::named(
            "InvalidHandle",
            "Handle must be a single name under the service domain",
        ));
    }
    if name.len() < 3 {
        return Err(XrpcError::named("InvalidHandle", "Handle too short"));
    }
    if name.len() > 18 {
        return Err(XrpcError::named("InvalidHandle", "Handle too long"));
    }
    Ok(())
}

fn status_fields(record: &RepoRecord) -> Json_ {
    if record.status.is_active() {
        json!({"active": true})
    } else {
        json!({"active": false, "status": record.status.as_str()})
    }
}

async fn did_doc(state: &AppState, did: &Did) -> Json_ {
    // The document is informative here; an unreachable directory must not fail a login.
    match state.resolver().resolve_did(did).await {
        Ok(doc) => serde_json::to_value(doc).unwrap_or_default(),
        Err(_) => Json_::Null,
    }
}

pub(super) async fn create_account(State(state): State<AppState>, input: Input) -> Out {
    if input.opt_str("did")?.is_some() {
        return Err(XrpcError::invalid(
            "Creating an account with an existing DID (migration) is not supported yet",
        ));
    }
    let handle_text = input.str("handle")?;
    let handle = Handle::parse(handle_text).map_err(|_| {
        XrpcError::named("InvalidHandle", format!("Invalid handle: {handle_text:?}"))
    })?;
    check_service_handle(&state, &handle)?;
    state
        .lexicons()
        .validate_method("com.atproto.server.createAccount", "input", &input.0)?;
    let password = input
        .opt_str("password")?
        .filter(|p| !p.is_empty())
        .ok_or_else(|| XrpcError::named("InvalidPassword", "A password is required"))?;
    let email = input.opt_str("email")?.map(str::to_ascii_lowercase);
    if let Some(e) = &email {
        if !e.contains('@') || e.len() > 254 {
            return Err(XrpcError::invalid("Invalid email address"));
        }
    }
    let accounts = Accounts(state.storage());
    let invite = input.opt_str("inviteCode")?.map(str::to_owned);
    if state.config().invite_required {
        let code = invite
            .as_deref()
            .ok_or_else(|| XrpcError::named("InvalidInviteCode", "An invite code is required"))?;
        let usable = accounts
            .get_invite(code)
            .await?
            .is_some_and(|i| i.available > 0 && !i.disabled);
        if !usable {
            return Err(XrpcError::named(
                "InvalidInviteCode",
                "Invalid or used invite code",
            ));
        }
    }
    if state.storage().resolve_handle(&handle).await?.is_some() {
        return Err(XrpcError::named(
            "HandleNotAvailable",
            "Handle already taken",
        ));
    }
    let recovery = input
        .opt_str("recoveryKey")?
        .map(PublicKey::from_did_key)
        .transpose()
        .map_err(|_| XrpcError::invalid("Invalid recoveryKey"))?;
    let signing = Keypair::generate(Algorithm::K256);
    let rotation = Keypair::generate(Algorithm::K256);
    // Priority order: the user's recovery key, this account's key, then the operator's key.
    let mut rotation_keys: Vec<PublicKey> = recovery.into_iter().collect();
    rotation_keys.push(rotation.public_key());
    rotation_keys.extend(
        state
            .config()
            .plc_rotation_key
            .as_ref()
            .map(Keypair::public_key),
    );
    let (did, _) = state
        .plc()
        .create(
            &handle,
            &signing.public_key(),
            &rotation_keys,
            &rotation,
            &state.config().public_url,
        )
        .await
        .map_err(|e| {
            XrpcError::named("UnresolvableDid", format!("Could not create the DID: {e}"))
        })?;
    if let Some(e) = &email {
        if !accounts.claim_email(e, &did).await? {
            return Err(XrpcError::invalid("This email address is already in use"));
        }
    }
    let created = create_repo(
        state.storage(),
        &state.blocks(),
        did.clone(),
        Some(handle.clone()),
        RepoKeys {
            signing,
            rotation: Some(rotation),
        },
        state.clock(),
    )
    .await;
    if let Err(e) = created {
        if let Some(em) = &email {
            accounts.release_email(em, &did).await?;
        }
        return Err(e.into());
    }
    let account = Account {
        did: did.clone(),
        email: email.clone(),
        password_hash: hash_password(password)?,
        app_passwords: vec![],
        created_at: Utc::now(),
    };
    accounts.put(&account).await?;
    if let Some(code) = &invite {
        accounts.use_invite(code, &did).await?;
    }
    let (access, refresh) = create_session(&state, &did, None).await?;
    Ok(Json(json!({
        "accessJwt": access, "refreshJwt": refresh, "handle": handle, "did": did, "didDoc": did_doc(&state, &did).await,
    })))
}

/// The DID an identifier (handle, DID or email) names on this PDS.
async fn lookup(state: &AppState, identifier: &str) -> Result<Option<Did>, XrpcError> {
    let identifier = identifier.trim();
    if identifier.contains('@') {
        return Ok(Accounts(state.storage()).did_for_email(identifier).await?);
    }
    if identifier.starts_with("did:") {
        return Ok(Did::parse(identifier).ok());
    }
    match Handle::parse(identifier) {
        Ok(h) => Ok(state.storage().resolve_handle(&h).await?),
        Err(_) => Ok(None),
    }
}

pub(super) async fn create_session_handler(State(state): State<AppState>, input: Input) -> Out {
    let identifier = input.str("identifier")?;
    let password = input.str("password")?;
    let denied = || XrpcError::auth_required("Invalid identifier or password");
    let did = lookup(&state, identifier).await?.ok_or_else(denied)?;
    let account = Accounts(state.storage())
        .get(&did)
        .await?
        .ok_or_else(denied)?;
    let record = state.storage().load_repo(&did).await?.ok_or_else(denied)?;
    let app_password = if verify_password(password, &account.password_hash) {
        None
    } else {
        let found = account
            .app_passwords
            .iter()
            .find(|a| verify_password(password, &a.hash))
            .ok_or_else(denied)?;
        Some((found.name.as_str(), found.privileged))
    };
    if record.status == RepoStatus::Takendown {
        return Err(XrpcError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "AccountTakedown",
            "Account has been taken down",
        ));
    }
    if record.status == RepoStatus::Deleted {
        return Err(denied());
    }
    let (access, refresh) = create_session(&state, &did, app_password).await?;
    let mut out = json!({
        "accessJwt": access, "refreshJwt": refresh, "handle": record.handle, "did": did,
        "email": account.email, "emailConfirmed": false, "didDoc": did_doc(&state, &did).await,
    });
    merge(&mut out, status_fields(&record));
    Ok(Json(out))
}

fn merge(out: &mut Json_, extra: Json_) {
    if let (Some(o), Json_::Object(e)) = (out.as_object_mut(), extra) {
        o.extend(e);
    }
}

pub(super) async fn get_session(State(state): State<AppState>, access: Access) -> Out {
    let record = own_repo(&state, &access.did).await?;
    let account = Accounts(state.storage()).get(&access.did).await?;
    let mut out = json!({
        "handle": record.handle, "did": access.did, "email": account.and_then(|a| a.email),
        "emailConfirmed": false, "didDoc": did_doc(&state, &access.did).await,
    });
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
    let record = own_repo(&state, &refresh.did).await?;
    if matches!(record.status, RepoStatus::Takendown | RepoStatus::Deleted) {
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

pub(super) async fn get_service_auth(
    State(state): State<AppState>,
    access: Access,
    params: Params,
) -> Out {
    let aud: String = params.required("aud")?;
    Did::parse(aud.split('#').next().unwrap_or_default())?;
    let lxm: Option<Nsid> = params.parse("lxm")?;
    let now = Utc::now().timestamp();
    let exp: i64 = params.parse("exp")?.unwrap_or(now + 60);
    if exp <= now || exp > now + 3600 {
        return Err(XrpcError::named(
            "BadExpiration",
            "exp must be in the next hour",
        ));
    }
    own_repo(&state, &access.did).await?;
    let keys = state
        .storage()
        .load_keys(&access.did)
        .await?
        .ok_or_else(|| XrpcError::invalid_token("Account not found"))?;
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

pub(super) async fn create_app_password(
    State(state): State<AppState>,
    access: Access,
    input: Input,
) -> Out {
    access.require_full()?;
    let name = input.str("name")?.trim().to_owned();
    if name.is_empty() || name.len() > 100 {
        return Err(XrpcError::invalid(
            "App password name must be 1 to 100 characters",
        ));
    }
    let privileged = input.opt_bool("privileged")?.unwrap_or(false);
    let accounts = Accounts(state.storage());
    let mut account = own_account(&accounts, &access.did).await?;
    if account.app_passwords.iter().any(|a| a.name == name) {
        return Err(XrpcError::invalid(
            "An app password with this name already exists",
        ));
    }
    let password = auth::generate_app_password();
    let created_at = Utc::now();
    account.app_passwords.push(AppPassword {
        name: name.clone(),
        hash: hash_password(&password)?,
        privileged,
        created_at,
    });
    accounts.put(&account).await?;
    Ok(Json(
        json!({"name": name, "password": password, "createdAt": crate::syntax::format_datetime(created_at), "privileged": privileged}),
    ))
}

pub(super) async fn list_app_passwords(State(state): State<AppState>, access: Access) -> Out {
    access.require_full()?;
    let account = own_account(&Accounts(state.storage()), &access.did).await?;
    let passwords: Vec<Json_> = account
        .app_passwords
        .iter()
        .map(|a| json!({"name": a.name, "createdAt": crate::syntax::format_datetime(a.created_at), "privileged": a.privileged}))
        .collect();
    Ok(Json(json!({ "passwords": passwords })))
}

pub(super) async fn revoke_app_password(
    State(state): State<AppState>,
    access: Access,
    input: Input,
) -> Result<(), XrpcError> {
    access.require_full()?;
    let name = input.str("name")?;
    let accounts = Accounts(state.storage());
    let mut account = own_account(&accounts, &access.did).await?;
    account.app_passwords.retain(|a| a.name != name);
    accounts.put(&account).await?;
    accounts.revoke_sessions(&access.did, Some(name)).await?;
    Ok(())
}

pub(super) async fn activate_account(
    State(state): State<AppState>,
    access: Access,
) -> Result<(), XrpcError> {
    access.require_full()?;
    let record = own_repo(&state, &access.did).await?;
    match record.status {
        RepoStatus::Active => return Ok(()),
        RepoStatus::Takendown | RepoStatus::Suspended | RepoStatus::Deleted => {
            return Err(XrpcError::forbidden(
                "AccountTakedown",
                "This account cannot be activated",
            ));
        }
        _ => {}
    }
    let events = vec![
        EventBody::account(RepoStatus::Active),
        EventBody::Identity {
            handle: record.handle.clone(),
        },
    ];
    state
        .storage()
        .set_status(&access.did, RepoStatus::Active, events)
        .await?;
    // Best practice on reactivation: an empty commit with a fresh rev.
    commit_writes(
        state.storage(),
        &state.blocks(),
        &access.did,
        &[],
        state.clock(),
    )
    .await?;
    Ok(())
}

pub(super) async fn deactivate_account(
    State(state): State<AppState>,
    access: Access,
) -> Result<(), XrpcError> {
    access.require_full()?;
    let record = own_repo(&state, &access.did).await?;
    if record.status == RepoStatus::Deactivated {
        return Ok(());
    }
    if !record.status.is_active() {
        return Err(XrpcError::forbidden(
            "AccountTakedown",
            "This account cannot be deactivated",
        ));
    }
    state
        .storage()
        .set_status(
            &access.did,
            RepoStatus::Deactivated,
            vec![EventBody::account(RepoStatus::Deactivated)],
        )
        .await?;
    Ok(())
}

pub(super) async fn check_account_status(State(state): State<AppState>, access: Access) -> Out {
    let record = own_repo(&state, &access.did).await?;
    let view = state.blocks();
    let (_, repo) = crate::storage::load_repo_state(state.storage(), &view, &access.did).await?;
    crate::storage::fetch_tree(state.storage(), &view, &repo).await?;
    let records = repo
        .mst()
        .leaf_count()
        .map_err(crate::repo::RepoError::from)?;
    let blobs = Accounts(state.storage())
        .list_blobs(&access.did, None, 100_000)
        .await?;
    let doc = state.resolver().resolve_did(&access.did).await.ok();
    let valid_did =
        doc.is_some_and(|d| d.pds_endpoint() == Some(state.config().public_url.as_str()));
    Ok(Json(json!({
        "activated": record.status.is_active(), "validDid": valid_did, "repoCommit": record.head.to_string(),
        "repoRev": record.rev.to_string(), "repoBlocks": 0, "indexedRecords": records, "privateStateValues": 0,
        "expectedBlobs": blobs.len(), "importedBlobs": blobs.len(),
    })))
}

/// Marks an account deleted: `#account` (deleted), sessions revoked, credentials, email and
/// handle released. Blocks stay until a purge; the repo is no longer served.
pub(super) async fn delete_account_data(state: &AppState, did: &Did) -> Result<(), XrpcError> {
    let accounts = Accounts(state.storage());
    state
        .storage()
        .set_status(
            did,
            RepoStatus::Deleted,
            vec![EventBody::account(RepoStatus::Deleted)],
        )
        .await?;
    state.storage().set_handle(did, None, vec![]).await?;
    accounts.revoke_sessions(did, None).await?;
    if let Some(account) = accounts.get(did).await? {
        if let Some(email) = &account.email {
            accounts.release_email(email, did).await?;
        }
    }
    accounts.delete(did).await?;
    Ok(())
}

pub(super) async fn delete_account(
    State(state): State<AppState>,
    input: Input,
) -> Result<(), XrpcError> {
    let did: Did = input.parse("did")?;
    let password = input.str("password")?;
    let account = Accounts(state.storage())
        .get(&did)
        .await?
        .ok_or_else(|| XrpcError::auth_required("Invalid did or password"))?;
    if !verify_password(password, &account.password_hash) {
        return Err(XrpcError::auth_required("Invalid did or password"));
    }
    delete_account_data(&state, &did).await
}

fn invite_code(state: &AppState) -> String {
    let host = state.config().hostname.replace('.', "-");
    let part = || crate::xrpc::auth::generate_app_password().replace('-', "")[..5].to_owned();
    format!("{host}-{}-{}", part(), part())
}

async fn make_invite(state: &AppState, uses: u32, for_account: &str) -> Result<String, XrpcError> {
    loop {
        let invite = Invite {
            code: invite_code(state),
            available: uses,
            for_account: for_account.to_owned(),
            used_by: vec![],
            disabled: false,
            created_at: Utc::now(),
        };
        if Accounts(state.storage()).create_invite(&invite).await? {
            return Ok(invite.code);
        }
    }
}

fn use_count(input: &Input) -> Result<u32, XrpcError> {
    match input
        .0
        .get("useCount")
        .and_then(crate::cbor::Value::as_integer)
    {
        Some(n) if (1..=1000).contains(&n) => Ok(n as u32),
        _ => Err(XrpcError::invalid(
            "useCount must be an integer from 1 to 1000",
        )),
    }
}

pub(super) async fn create_invite_code(
    State(state): State<AppState>,
    _admin: Admin,
    input: Input,
) -> Out {
    let uses = use_count(&input)?;
    let for_account = input.opt_str("forAccount")?.unwrap_or("admin").to_owned();
    Ok(Json(
        json!({ "code": make_invite(&state, uses, &for_account).await? }),
    ))
}

pub(super) async fn create_invite_codes(
    State(state): State<AppState>,
    _admin: Admin,
    input: Input,
) -> Out {
    let uses = use_count(&input)?;
    let count = match input
        .0
        .get("codeCount")
        .and_then(crate::cbor::Value::as_integer)
    {
        Some(n) if (1..=100).contains(&n) => n as usize,
        _ => {
            return Err(XrpcError::invalid(
                "codeCount must be an integer from 1 to 100",
            ));
        }
    };
    let accounts: Vec<String> = match input
        .0
        .get("forAccounts")
        .and_then(crate::cbor::Value::as_array)
    {
        Some(list) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        None => vec!["admin".to_owned()],
    };
    let mut out = Vec::new();
    for account in accounts {
        let mut codes = Vec::new();
        for _ in 0..count {
            codes.push(make_invite(&state, uses, &account).await?);
        }
        out.push(json!({"account": account, "codes": codes}));
    }
    Ok(Json(json!({ "codes": out })))
}
