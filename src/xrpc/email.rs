//! The e-mail flows (`com.atproto.server.*`): confirming and changing the address, resetting a
//! forgotten password, and asking to delete the account. Each code goes out by e-mail
//! ([`crate::mail`]) before the call answers; the codes themselves are `accounts`' business.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;

use super::auth::Access;
use super::extract::Body;
use super::limits::{Budget, Caller};
use super::{AppState, XrpcError};
use crate::accounts::{AccountError, Login, TokenPurpose};
use crate::mail::templates::token_mail;
use crate::oauth::Permission;
use crate::syntax::Did;

type Out = Result<Json<serde_json::Value>, XrpcError>;

/// E-mails `token` for `purpose` to `to`, for `did`'s account.
pub(super) async fn send_code(
    state: &AppState,
    did: &Did,
    to: &str,
    purpose: TokenPurpose,
    token: &str,
) -> Result<(), XrpcError> {
    let mailer = state.mailer().ok_or_else(|| {
        XrpcError::invalid(
            "This server does not send e-mail (its operator has set neither PDS_EMAIL_SMTP_URL \
             nor PDS_EMAIL_SES)",
        )
    })?;
    let handle = state
        .accounts()
        .repo(did)
        .await?
        .handle
        .map_or_else(|| did.to_string(), |h| h.to_string());
    let mail = token_mail(purpose, to, &handle, &state.config().hostname, token);
    crate::mail::send_with_retries(mailer, &mail)
        .await
        .map_err(XrpcError::internal)
}

/// E-mail two-factor sign-in for `login`, when the account has it on: without a `code`, one is
/// mailed and the answer is `AuthFactorTokenRequired`; with one, it is taken (used once).
pub(super) async fn check_second_factor(
    state: &AppState,
    login: &Login,
    code: Option<&str>,
) -> Result<(), XrpcError> {
    if !login.account.email_auth_factor {
        return Ok(());
    }
    let did = &login.record.did;
    let accounts = state.accounts();
    match code.map(str::trim).filter(|c| !c.is_empty()) {
        Some(code) => Ok(accounts
            .take_token_for(did, TokenPurpose::SignIn, code)
            .await?),
        None => {
            if let Some(email) = &login.account.email {
                let token = accounts.issue_token(did, TokenPurpose::SignIn).await?;
                send_code(state, did, email, TokenPurpose::SignIn, &token).await?;
            }
            Err(AccountError::AuthFactorTokenRequired.into())
        }
    }
}

/// Spends from a per-account e-mail budget, counted per method.
async fn spend_email_request(
    state: &AppState,
    caller: &Caller,
    access: &Access,
    nsid: &str,
) -> Result<(), XrpcError> {
    state
        .limits()
        .spend(
            caller,
            Budget::EmailRequest,
            &format!("{nsid}:{}", access.did),
            1,
        )
        .await
}

/// Makes a code for `purpose` and mails it to the account's address.
async fn mail_new_code(
    state: &AppState,
    did: &Did,
    purpose: TokenPurpose,
) -> Result<(), XrpcError> {
    let accounts = state.accounts();
    let email = accounts
        .account(did)
        .await?
        .email
        .ok_or_else(|| XrpcError::invalid("This account does not have an e-mail address"))?;
    let token = accounts.issue_token(did, purpose).await?;
    send_code(state, did, &email, purpose, &token).await
}

pub(super) async fn request_email_confirmation(
    State(state): State<AppState>,
    caller: Caller,
    access: Access,
) -> Result<(), XrpcError> {
    access.require(Permission::Account {
        attr: "email",
        manage: true,
    })?;
    spend_email_request(&state, &caller, &access, "requestEmailConfirmation").await?;
    mail_new_code(&state, &access.did, TokenPurpose::ConfirmEmail).await
}

/// The `confirmEmail` input.
#[derive(Deserialize)]
pub(super) struct ConfirmEmailInput {
    email: String,
    token: String,
}

pub(super) async fn confirm_email(
    State(state): State<AppState>,
    access: Access,
    Body(input): Body<ConfirmEmailInput>,
) -> Result<(), XrpcError> {
    access.require(Permission::Account {
        attr: "email",
        manage: true,
    })?;
    let confirmed = state
        .accounts()
        .confirm_email(&access.did, &input.email, &input.token)
        .await;
    match confirmed {
        // The lexicon names this error for confirmEmail (elsewhere it is InvalidRequest).
        Err(AccountError::InvalidEmail(_)) => Err(XrpcError::named(
            "InvalidEmail",
            "The address is not this account's",
        )),
        other => Ok(other?),
    }
}

pub(super) async fn request_email_update(
    State(state): State<AppState>,
    caller: Caller,
    access: Access,
) -> Out {
    access.refuse_oauth(
        "Use the account manager interface to update email address associated with an account",
    )?;
    spend_email_request(&state, &caller, &access, "requestEmailUpdate").await?;
    let account = state.accounts().account(&access.did).await?;
    let token_required = account.email_confirmed_at.is_some();
    if token_required {
        mail_new_code(&state, &access.did, TokenPurpose::UpdateEmail).await?;
    }
    Ok(Json(json!({ "tokenRequired": token_required })))
}

/// The `updateEmail` input.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UpdateEmailInput {
    email: String,
    email_auth_factor: Option<bool>,
    token: Option<String>,
}

pub(super) async fn update_email(
    State(state): State<AppState>,
    access: Access,
    Body(input): Body<UpdateEmailInput>,
) -> Result<(), XrpcError> {
    access.refuse_oauth(
        "Use the account manager interface to update email address associated with an account",
    )?;
    access.require_full()?;
    state
        .accounts()
        .update_email(
            &access.did,
            &input.email,
            input.email_auth_factor,
            input.token.as_deref(),
        )
        .await?;
    Ok(())
}

/// The `requestPasswordReset` input.
#[derive(Deserialize)]
pub(super) struct RequestPasswordResetInput {
    email: String,
}

pub(super) async fn request_password_reset(
    State(state): State<AppState>,
    caller: Caller,
    Body(input): Body<RequestPasswordResetInput>,
) -> Result<(), XrpcError> {
    state
        .limits()
        .spend(&caller, Budget::RequestPasswordReset, &caller.ip_key(), 1)
        .await?;
    // The same answer whether or not an account has the address: it tells no one who is here.
    if let Some((did, token)) = state
        .accounts()
        .request_password_reset(&input.email)
        .await?
    {
        let email = input.email.trim().to_ascii_lowercase();
        send_code(&state, &did, &email, TokenPurpose::ResetPassword, &token).await?;
    }
    Ok(())
}

/// The `resetPassword` input.
#[derive(Deserialize)]
pub(super) struct ResetPasswordInput {
    token: String,
    password: String,
}

pub(super) async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    Body(input): Body<ResetPasswordInput>,
) -> Result<(), XrpcError> {
    state
        .limits()
        .spend(&caller, Budget::ResetPassword, &caller.ip_key(), 1)
        .await?;
    state
        .accounts()
        .reset_password(&input.token, &input.password)
        .await?;
    Ok(())
}

pub(super) async fn request_account_delete(
    State(state): State<AppState>,
    caller: Caller,
    access: Access,
) -> Result<(), XrpcError> {
    access.refuse_oauth("OAuth credentials are not supported for this endpoint")?;
    access.require_full()?;
    spend_email_request(&state, &caller, &access, "requestAccountDelete").await?;
    mail_new_code(&state, &access.did, TokenPurpose::DeleteAccount).await
}
