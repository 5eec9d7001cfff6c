//! Credentials: logging in with a password or an app password, managing app passwords, and
//! changing the password.

use chrono::{DateTime, Utc};

use super::passwords::{app_password_digest, find_app_password};
use super::{AccountError, AccountService, generate_app_password, hash_password, verify_password};
use crate::storage::accounts::{Account, AppPassword};
use crate::storage::{RepoRecord, RepoStatus};
use crate::syntax::{Did, Handle};

/// App passwords an account may hold at once.
pub const MAX_APP_PASSWORDS: usize = 50;

/// A successful login.
#[derive(Debug, Clone)]
pub struct Login {
    /// The account's repo record (handle, status).
    pub record: RepoRecord,
    /// Its credentials and e-mail.
    pub account: Account,
    /// The app password used (name, privileged), if not the main password.
    pub app_password: Option<(String, bool)>,
}

impl AccountService<'_> {
    /// The DID an identifier (handle, DID or e-mail) names on this PDS.
    pub async fn lookup(&self, identifier: &str) -> Result<Option<Did>, AccountError> {
        let identifier = identifier.trim();
        if identifier.contains('@') {
            return Ok(self.records().did_for_email(identifier).await?);
        }
        if identifier.starts_with("did:") {
            return Ok(Did::parse(identifier).ok());
        }
        match Handle::parse(identifier) {
            Ok(h) => Ok(self.storage.resolve_handle(&h).await?),
            Err(_) => Ok(None),
        }
    }

    /// Checks `password` (the account's or one of its app passwords) for `identifier`.
    pub async fn login(&self, identifier: &str, password: &str) -> Result<Login, AccountError> {
        let denied = || AccountError::WrongCredentials;
        let did = self.lookup(identifier).await?.ok_or_else(denied)?;
        let account = self.records().get(&did).await?.ok_or_else(denied)?;
        let record = self.storage.load_repo(&did).await?.ok_or_else(denied)?;
        let app_password = if verify_password(password, &account.password_hash).await? {
            None
        } else {
            let stored: Vec<&str> = account
                .app_passwords
                .iter()
                .map(|a| a.hash.as_str())
                .collect();
            let found = find_app_password(&did, password, &stored)
                .await?
                .and_then(|i| account.app_passwords.get(i))
                .ok_or_else(denied)?;
            Some((found.name.clone(), found.privileged))
        };
        match record.status {
            RepoStatus::Takendown => Err(AccountError::Takendown(did)),
            RepoStatus::Deleted => Err(denied()),
            _ => Ok(Login {
                record,
                account,
                app_password,
            }),
        }
    }

    /// The account data of `did` (a token's own account: gone means the token is stale).
    pub async fn account(&self, did: &Did) -> Result<Account, AccountError> {
        self.records()
            .get(did)
            .await?
            .ok_or_else(|| AccountError::NotFound(did.clone()))
    }

    /// Whether `password` is `did`'s main password.
    pub async fn check_password(&self, did: &Did, password: &str) -> Result<bool, AccountError> {
        match self.records().get(did).await? {
            Some(account) => verify_password(password, &account.password_hash).await,
            None => Ok(false),
        }
    }

    /// Makes an app password named `name`; returns it (shown once) and when it was made.
    pub async fn create_app_password(
        &self,
        did: &Did,
        name: &str,
        privileged: bool,
    ) -> Result<(String, DateTime<Utc>), AccountError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(AccountError::InvalidAppPasswordName(
                "App password name must be 1 to 100 characters",
            ));
        }
        let password = generate_app_password();
        let created_at = Utc::now();
        let hash = app_password_digest(did, &password);
        self.records()
            .update(did, |account| {
                if account.app_passwords.len() >= MAX_APP_PASSWORDS {
                    return Err(AccountError::OutOfRange(
                        "Too many app passwords: revoke one first (at most 50)",
                    ));
                }
                if account.app_passwords.iter().any(|a| a.name == name) {
                    return Err(AccountError::InvalidAppPasswordName(
                        "An app password with this name already exists",
                    ));
                }
                account.app_passwords.push(AppPassword {
                    name: name.to_owned(),
                    hash: hash.clone(),
                    privileged,
                    created_at,
                });
                Ok(())
            })
            .await?
            .ok_or_else(|| AccountError::NotFound(did.clone()))?;
        Ok((password, created_at))
    }

    /// Removes the app password `name` and ends its sessions.
    pub async fn revoke_app_password(&self, did: &Did, name: &str) -> Result<(), AccountError> {
        self.records()
            .update(did, |account| {
                account.app_passwords.retain(|a| a.name != name);
                Ok::<_, AccountError>(())
            })
            .await?
            .ok_or_else(|| AccountError::NotFound(did.clone()))?;
        self.records().revoke_sessions(did, Some(name)).await?;
        Ok(())
    }

    /// Sets a new main password and ends every session.
    pub async fn set_password(&self, did: &Did, password: &str) -> Result<(), AccountError> {
        if password.is_empty() {
            return Err(AccountError::InvalidPassword("Password must not be empty"));
        }
        let hash = hash_password(password).await?;
        self.records()
            .update(did, |account| {
                account.password_hash = hash.clone();
                Ok::<_, AccountError>(())
            })
            .await?
            .ok_or_else(|| AccountError::NotFound(did.clone()))?;
        self.records().revoke_sessions(did, None).await?;
        Ok(())
    }
}
