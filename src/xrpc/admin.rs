//! `com.atproto.admin.*` (HTTP Basic `admin:PDS_ADMIN_PASSWORD`): account info, takedowns and
//! subject status, handle, password and e-mail changes, invite codes, e-mail to an account,
//! deletion. The flows are in `crate::accounts`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value as Json_, json};

use serde::Deserialize;

use super::auth::Admin;
use super::extract::{Body, Params, data_value};
use super::{AppState, XrpcError};
use crate::cbor::Value;
use crate::storage::accounts::Invite;
use crate::storage::{Accounts, RepoStatus};
use crate::syntax::{Did, Handle, format_datetime};

type Out = Result<Json<Json_>, XrpcError>;

/// As the reference answers it (`NotFound`), for an account that never was or was deleted.
fn account_not_found(did: &Did) -> XrpcError {
    XrpcError::named("NotFound", format!("Account not found: {did}"))
}

async fn info(state: &AppState, did: &Did) -> Result<Option<Json_>, XrpcError> {
    let record = state.storage().load_repo(did).await?;
    let Some(record) = record.filter(|r| r.status != RepoStatus::Deleted) else {
        return Ok(None);
    };
    let account = Accounts(state.storage()).get(did).await?;
    let mut out = json!({
        "did": did, "handle": record.handle.map(|h| h.to_string()).unwrap_or_else(|| crate::syntax::INVALID_HANDLE.into()),
        "indexedAt": format_datetime(record.created_at),
    });
    if let Some(account) = account {
        if let Some(email) = &account.email {
            out["email"] = json!(email);
        }
        if let Some(at) = account.email_confirmed_at {
            out["emailConfirmedAt"] = json!(format_datetime(at));
        }
        out["invitesDisabled"] = json!(account.invites_disabled);
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

/// The `updateSubjectStatus` input: an account (`repoRef`), a record (`strongRef`) or a blob
/// (`repoBlobRef`).
#[derive(Deserialize)]
pub(super) struct UpdateSubjectStatusInput {
    #[serde(deserialize_with = "data_value")]
    subject: Value,
    #[serde(default, deserialize_with = "optional_data_value")]
    takedown: Option<Value>,
}

/// What a status is about.
enum Subject {
    /// An account.
    Repo(Did),
    /// A record: its repo and path.
    Record(Did, String),
    /// A blob: its repo and CID.
    Blob(Did, String),
}

/// The subject of `updateSubjectStatus`: `uri` makes it a record, `cid` with `did` a blob, `did`
/// alone an account.
fn subject_of(subject: &Value) -> Result<Subject, XrpcError> {
    if let Some(uri) = subject.get("uri").and_then(Value::as_str) {
        let uri = crate::syntax::AtUri::parse(uri)?;
        let crate::syntax::AtIdentifier::Did(did) = uri.authority() else {
            return Err(XrpcError::invalid(
                "A record subject needs a DID in its uri",
            ));
        };
        let (Some(collection), Some(rkey)) = (uri.collection(), uri.rkey()) else {
            return Err(XrpcError::invalid("A record subject's uri names a record"));
        };
        return Ok(Subject::Record(did, format!("{collection}/{rkey}")));
    }
    let did = subject
        .get("did")
        .and_then(Value::as_str)
        .ok_or_else(|| XrpcError::invalid("The subject needs a did or a uri"))?;
    let did = Did::parse(did)?;
    match subject.get("cid").and_then(Value::as_str) {
        Some(cid) => {
            crate::cid::parse_cid(cid).map_err(|_| XrpcError::invalid("Invalid blob cid"))?;
            Ok(Subject::Blob(did, cid.to_owned()))
        }
        None => Ok(Subject::Repo(did)),
    }
}

fn optional_data_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    data_value(d).map(Some)
}

pub(super) async fn update_subject_status(
    State(state): State<AppState>,
    _admin: Admin,
    Body(input): Body<UpdateSubjectStatusInput>,
) -> Out {
    let takedown = input.takedown.as_ref().map(|t| {
        let applied = matches!(t.get("applied"), Some(Value::Bool(true)));
        let reference = t.get("ref").and_then(Value::as_str).unwrap_or("takedown");
        applied.then(|| reference.to_owned())
    });
    match subject_of(&input.subject)? {
        Subject::Repo(did) => {
            if state.storage().load_repo(&did).await?.is_none() {
                return Err(account_not_found(&did));
            }
            if let Some(takedown) = &takedown {
                state
                    .accounts()
                    .set_takedown(&did, takedown.is_some())
                    .await?;
            }
        }
        Subject::Record(did, path) => {
            if let Some(takedown) = &takedown {
                Accounts(state.storage())
                    .set_record_takedown(&did, &path, takedown.as_deref())
                    .await?;
            }
        }
        Subject::Blob(did, cid) => {
            if let Some(takedown) = takedown {
                Accounts(state.storage())
                    .update_blob(&did, &cid, |blob| {
                        blob.takedown = takedown.clone();
                        Ok::<_, crate::storage::StorageError>(())
                    })
                    .await?
                    .ok_or_else(|| {
                        XrpcError::named("BlobNotFound", format!("Blob not found: {cid}"))
                    })?;
            }
        }
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
    // A purge cut off before now finishes here: deleting again is how it is resumed.
    super::server::purge(&state, &input.did).await?;
    Ok(())
}

/// An invite code as `com.atproto.server.defs#inviteCode` shows it.
pub(super) fn invite_view(invite: &Invite) -> Json_ {
    let uses: Vec<Json_> = invite
        .used_by
        .iter()
        .enumerate()
        .map(|(i, did)| {
            let at = invite.used_at.get(i).copied().unwrap_or(invite.created_at);
            json!({"usedBy": did, "usedAt": format_datetime(at)})
        })
        .collect();
    json!({
        "code": invite.code, "available": invite.available, "disabled": invite.disabled,
        "forAccount": invite.for_account, "createdBy": invite.created_by,
        "createdAt": format_datetime(invite.created_at), "uses": uses,
    })
}

pub(super) async fn get_invite_codes(
    State(state): State<AppState>,
    _admin: Admin,
    params: Params,
) -> Out {
    let by_usage = match params.get("sort").unwrap_or("recent") {
        "recent" => false,
        "usage" => true,
        other => return Err(XrpcError::invalid(format!("Invalid sort: {other:?}"))),
    };
    let limit = params.limit(100, 500)?;
    let (codes, cursor) = state
        .accounts()
        .list_invites(by_usage, params.get("cursor"), limit)
        .await?;
    let mut out = json!({ "codes": codes.iter().map(invite_view).collect::<Vec<_>>() });
    if let Some(cursor) = cursor {
        out["cursor"] = json!(cursor);
    }
    Ok(Json(out))
}

/// The `disableInviteCodes` input.
#[derive(Deserialize)]
pub(super) struct DisableInviteCodesInput {
    #[serde(default)]
    codes: Vec<String>,
    #[serde(default)]
    accounts: Vec<String>,
}

pub(super) async fn disable_invite_codes(
    State(state): State<AppState>,
    _admin: Admin,
    Body(input): Body<DisableInviteCodesInput>,
) -> Result<(), XrpcError> {
    if input.accounts.iter().any(|a| a == "admin") {
        return Err(XrpcError::invalid("cannot disable admin invite codes"));
    }
    state
        .accounts()
        .disable_invites(&input.codes, &input.accounts)
        .await?;
    Ok(())
}

/// The `disableAccountInvites` / `enableAccountInvites` input.
#[derive(Deserialize)]
pub(super) struct AccountInvitesInput {
    account: Did,
}

pub(super) async fn disable_account_invites(
    State(state): State<AppState>,
    _admin: Admin,
    Body(input): Body<AccountInvitesInput>,
) -> Result<(), XrpcError> {
    state
        .accounts()
        .set_invites_disabled(&input.account, true)
        .await?;
    Ok(())
}

pub(super) async fn enable_account_invites(
    State(state): State<AppState>,
    _admin: Admin,
    Body(input): Body<AccountInvitesInput>,
) -> Result<(), XrpcError> {
    state
        .accounts()
        .set_invites_disabled(&input.account, false)
        .await?;
    Ok(())
}

/// The `updateAccountEmail` input.
#[derive(Deserialize)]
pub(super) struct UpdateAccountEmailInput {
    account: String,
    email: String,
}

pub(super) async fn update_account_email(
    State(state): State<AppState>,
    _admin: Admin,
    Body(input): Body<UpdateAccountEmailInput>,
) -> Result<(), XrpcError> {
    let accounts = state.accounts();
    let did = accounts
        .lookup(&input.account)
        .await?
        .ok_or_else(|| XrpcError::named("AccountNotFound", "Account not found"))?;
    accounts.set_email(&did, &input.email, None).await?;
    Ok(())
}

/// The `sendEmail` input.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SendEmailInput {
    recipient_did: Did,
    content: String,
    subject: Option<String>,
}

pub(super) async fn send_email(
    State(state): State<AppState>,
    _admin: Admin,
    Body(input): Body<SendEmailInput>,
) -> Out {
    let mailer = state
        .mailer()
        .ok_or_else(|| XrpcError::invalid("This server does not send e-mail"))?;
    let account = Accounts(state.storage())
        .get(&input.recipient_did)
        .await?
        .ok_or_else(|| account_not_found(&input.recipient_did))?;
    let to = account
        .email
        .ok_or_else(|| XrpcError::invalid("The account has no e-mail address"))?;
    let subject = input
        .subject
        .unwrap_or_else(|| format!("Message from {}", state.config().hostname));
    let mail = crate::mail::templates::operator_mail(&to, &subject, &input.content);
    crate::mail::send_with_retries(mailer, &mail)
        .await
        .map_err(XrpcError::internal)?;
    Ok(Json(json!({ "sent": true })))
}

pub(super) async fn get_subject_status(
    State(state): State<AppState>,
    _admin: Admin,
    params: Params,
) -> Out {
    let accounts = Accounts(state.storage());
    if let Some(uri) = params.get("uri") {
        let Subject::Record(did, path) = subject_of(&crate::cbor::map([("uri", uri.into())]))?
        else {
            return Err(XrpcError::invalid("Invalid uri"));
        };
        let takedown = accounts.record_takedown(&did, &path).await?;
        let (_, repo) =
            crate::storage::load_repo_state(state.storage(), &state.blocks(), &did).await?;
        let view = state.blocks();
        let (collection, rkey) = path.split_once('/').unwrap_or_default();
        let (collection, rkey) = (
            collection.parse::<crate::syntax::Nsid>()?,
            rkey.parse::<crate::syntax::RecordKey>()?,
        );
        let found = crate::storage::with_blocks(state.storage(), &view, || {
            repo.get_record(&collection, &rkey)
        })
        .await?
        .ok_or_else(|| XrpcError::named("NotFound", format!("Subject not found: {uri}")))?;
        return Ok(Json(json!({
            "subject": {"$type": "com.atproto.repo.strongRef", "uri": uri, "cid": found.0.to_string()},
            "takedown": status_attr(takedown),
        })));
    }
    let did: Did = params.required("did")?;
    if let Some(cid) = params.get("blob") {
        let blob = accounts
            .get_blob(&did, cid)
            .await?
            .ok_or_else(|| XrpcError::named("NotFound", format!("Subject not found: {cid}")))?;
        return Ok(Json(json!({
            "subject": {"$type": "com.atproto.admin.defs#repoBlobRef", "did": did, "cid": cid},
            "takedown": status_attr(blob.takedown),
        })));
    }
    let record = state
        .storage()
        .load_repo(&did)
        .await?
        .ok_or_else(|| XrpcError::named("NotFound", format!("Subject not found: {did}")))?;
    Ok(Json(json!({
        "subject": {"$type": "com.atproto.admin.defs#repoRef", "did": did},
        "takedown": {"applied": record.status == RepoStatus::Takendown},
        "deactivated": {"applied": record.status == RepoStatus::Deactivated},
    })))
}

/// A `statusAttr` from a takedown reference.
fn status_attr(takedown: Option<String>) -> Json_ {
    match takedown {
        Some(reference) => json!({"applied": true, "ref": reference}),
        None => json!({"applied": false}),
    }
}
