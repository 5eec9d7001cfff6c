//! E-mail codes and the flows built on them: confirming and changing the address, resetting the
//! password, deleting the account, and e-mail two-factor at sign-in.
//!
//! A code is ten letters and digits (`XXXXX-XXXXX`, 50 random bits), works once, expires after
//! 15 minutes, and is bound to one account and one purpose: it is stored under the SHA-256 of
//! the purpose and the code, so it cannot be read back from storage, a code for one purpose
//! finds nothing under another, and taking it deletes it (so two requests cannot both use it).
//! Rate limits keep guessing out of reach (docs/xrpc.md).

use chrono::{Duration, Utc};
use sha2::{Digest, Sha256};

use super::{AccountError, AccountService};
use crate::storage::accounts::EmailToken;
use crate::syntax::Did;

/// What a code may be used for: the purposes the mail templates word
/// ([`crate::mail::templates::Purpose`]).
pub use crate::mail::templates::Purpose as TokenPurpose;

/// A purpose's name in storage keys.
fn key_name(purpose: TokenPurpose) -> &'static str {
    match purpose {
        TokenPurpose::ConfirmEmail => "confirm_email",
        TokenPurpose::UpdateEmail => "update_email",
        TokenPurpose::ResetPassword => "reset_password",
        TokenPurpose::DeleteAccount => "delete_account",
        TokenPurpose::SignIn => "sign_in",
        TokenPurpose::PlcOperation => "plc_operation",
    }
}

/// How long a code works.
const TOKEN_LIFETIME: Duration = Duration::minutes(15);

/// The storage key of `token` for `purpose`: its digest, so storage never holds the code.
fn token_key(purpose: TokenPurpose, token: &str) -> String {
    let normalized: String = token
        .trim()
        .to_ascii_uppercase()
        .chars()
        .filter(|c| *c != '-')
        .collect();
    let mut hasher = Sha256::new();
    hasher.update(key_name(purpose).as_bytes());
    hasher.update([0]);
    hasher.update(normalized.as_bytes());
    format!("{}:{}", key_name(purpose), hex::encode(hasher.finalize()))
}

/// A new code: `XXXXX-XXXXX` from 32 symbols (no 0, 1, 8, 9, which look like letters).
fn new_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bytes: [u8; 10] = rand::random();
    let chars: String = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("{}-{}", &chars[..5], &chars[5..])
}

impl AccountService<'_> {
    /// Makes a code for `did` and `purpose` (replacing the one sent before) and returns it, to
    /// be e-mailed.
    pub async fn issue_token(
        &self,
        did: &Did,
        purpose: TokenPurpose,
    ) -> Result<String, AccountError> {
        let token = new_token();
        let stored = EmailToken {
            did: did.clone(),
            expires_at: Utc::now() + TOKEN_LIFETIME,
        };
        self.records()
            .put_email_token(did, key_name(purpose), &token_key(purpose, &token), &stored)
            .await?;
        Ok(token)
    }

    /// Uses `token` for `purpose` and returns the account it was sent for. Refused as
    /// `InvalidToken` when it does not exist (wrong, used, or for another purpose) and as
    /// `ExpiredToken` when it is too old; either way it is gone after this.
    pub async fn take_token(
        &self,
        purpose: TokenPurpose,
        token: &str,
    ) -> Result<Did, AccountError> {
        let stored = self
            .records()
            .take_email_token(&token_key(purpose, token))
            .await?
            .ok_or(AccountError::InvalidToken)?;
        if stored.expires_at < Utc::now() {
            return Err(AccountError::ExpiredToken);
        }
        Ok(stored.did)
    }

    /// Uses `token` for `purpose`, which must have been sent for `did`.
    pub async fn take_token_for(
        &self,
        did: &Did,
        purpose: TokenPurpose,
        token: &str,
    ) -> Result<(), AccountError> {
        match self.take_token(purpose, token).await? {
            owner if &owner == did => Ok(()),
            _ => Err(AccountError::InvalidToken),
        }
    }

    /// Marks `did`'s address confirmed, if it is still `email` (a code for an address the
    /// account has since left confirms nothing).
    pub async fn confirm_email(
        &self,
        did: &Did,
        email: &str,
        token: &str,
    ) -> Result<(), AccountError> {
        let account = self.account(did).await?;
        let current = account.email.as_deref().unwrap_or_default();
        if !current.eq_ignore_ascii_case(email.trim()) {
            return Err(AccountError::InvalidEmail(email.to_owned()));
        }
        self.take_token_for(did, TokenPurpose::ConfirmEmail, token)
            .await?;
        self.records()
            .update(did, |account| {
                if account
                    .email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email.trim()))
                {
                    account.email_confirmed_at = Some(Utc::now());
                }
                Ok::<_, AccountError>(())
            })
            .await?;
        Ok(())
    }

    /// Changes `did`'s address to `email` (and two-factor, if given). Once the address is
    /// confirmed, a code sent to it is required. The new address is claimed first (so it cannot
    /// be another account's) and the old one released; the new one is unconfirmed.
    pub async fn update_email(
        &self,
        did: &Did,
        email: &str,
        auth_factor: Option<bool>,
        token: Option<&str>,
    ) -> Result<(), AccountError> {
        let email = email.trim().to_ascii_lowercase();
        if !email.contains('@') || email.len() > 254 {
            return Err(AccountError::InvalidEmail(email));
        }
        let account = self.account(did).await?;
        if account.email_confirmed_at.is_some() {
            let token = token.ok_or(AccountError::TokenRequired)?;
            self.take_token_for(did, TokenPurpose::UpdateEmail, token)
                .await?;
        }
        self.set_email(did, &email, auth_factor).await
    }

    /// Sets `did`'s address to `email` without a code (the operator's `updateAccountEmail`, or
    /// [`AccountService::update_email`] once its code is checked): the new address is claimed
    /// first and the old one released; a changed address is unconfirmed.
    pub async fn set_email(
        &self,
        did: &Did,
        email: &str,
        auth_factor: Option<bool>,
    ) -> Result<(), AccountError> {
        let email = email.trim().to_ascii_lowercase();
        if !email.contains('@') || email.len() > 254 {
            return Err(AccountError::InvalidEmail(email));
        }
        let account = self.account(did).await?;
        let changed = account.email.as_deref() != Some(email.as_str());
        let confirmed = account.email_confirmed_at.is_some() && !changed;
        if auth_factor == Some(true) && !confirmed {
            return Err(AccountError::Refused(
                "E-mail two-factor needs a confirmed e-mail address",
            ));
        }
        let records = self.records();
        if changed && !records.claim_email(&email, did).await? {
            return Err(AccountError::EmailTaken(email));
        }
        let updated = records
            .update(did, |account| {
                if changed {
                    account.email = Some(email.clone());
                    account.email_confirmed_at = None;
                    account.email_auth_factor = false;
                }
                if let Some(on) = auth_factor {
                    account.email_auth_factor = on;
                }
                Ok::<_, AccountError>(())
            })
            .await;
        match updated {
            Ok(_) => {
                if let (true, Some(old)) = (changed, &account.email) {
                    records.release_email(old, did).await?;
                }
                Ok(())
            }
            Err(e) => {
                if changed {
                    records.release_email(&email, did).await?;
                }
                Err(e)
            }
        }
    }

    /// The account that has `email`, its handle, and a password-reset code for it; None if no
    /// account has the address (the caller answers the same either way).
    pub async fn request_password_reset(
        &self,
        email: &str,
    ) -> Result<Option<(Did, String)>, AccountError> {
        let Some(did) = self.records().did_for_email(email.trim()).await? else {
            return Ok(None);
        };
        let token = self.issue_token(&did, TokenPurpose::ResetPassword).await?;
        Ok(Some((did, token)))
    }

    /// Sets a new password with a reset code; every session ends.
    pub async fn reset_password(&self, token: &str, password: &str) -> Result<(), AccountError> {
        let did = self.take_token(TokenPurpose::ResetPassword, token).await?;
        self.set_password(&did, password).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_ten_symbols_and_keys_depend_on_purpose_not_spelling() {
        let token = new_token();
        assert_eq!(token.len(), 11);
        assert_eq!(&token[5..6], "-");
        let lower = token.to_ascii_lowercase().replace('-', "");
        assert_eq!(
            token_key(TokenPurpose::ResetPassword, &token),
            token_key(TokenPurpose::ResetPassword, &format!(" {lower} "))
        );
        assert_ne!(
            token_key(TokenPurpose::ResetPassword, &token),
            token_key(TokenPurpose::DeleteAccount, &token)
        );
        assert!(!token_key(TokenPurpose::SignIn, &token).contains(&token));
    }
}
