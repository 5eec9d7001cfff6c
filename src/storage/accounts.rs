//! Account data on the storage key-value API: passwords, app passwords, email claims, refresh
//! sessions, invite codes and blob records. Written once for every backend.
//!
//! Values are JSON. Namespaces: `account` (by DID), `email` (claims: email → DID),
//! `refresh:<did>` (session id → session), `invite` (code → invite), `blobs:<did>` (CID →
//! blob record), `expected-blobs:<did>` (CID → the record paths of an imported repo that
//! reference a blob not uploaded yet), `preferences` (DID → the account's preferences, a JSON
//! array of objects with a `$type`). Claims use put-if-absent, single-use sessions use delete-and-return, invite
//! uses compare-and-swap, so concurrent requests cannot both win.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{KvCondition, Storage, StorageError};
use crate::syntax::Did;

/// An account's credentials and settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The account.
    pub did: Did,
    /// Login email, if any (lower-cased).
    pub email: Option<String>,
    /// argon2id hash of the main password.
    pub password_hash: String,
    /// App passwords.
    #[serde(default)]
    pub app_passwords: Vec<AppPassword>,
    /// When the e-mail address was confirmed (None: not confirmed, or changed since).
    #[serde(default)]
    pub email_confirmed_at: Option<DateTime<Utc>>,
    /// Whether signing in also needs a code sent by e-mail.
    #[serde(default)]
    pub email_auth_factor: bool,
    /// Whether the operator stopped this account's invite codes.
    #[serde(default)]
    pub invites_disabled: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// A named app password: a second password with reduced rights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPassword {
    /// Its name, unique per account.
    pub name: String,
    /// argon2id hash.
    pub hash: String,
    /// Whether it may also use privileged methods (e.g. direct messages).
    pub privileged: bool,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// A refresh session (what a refresh token names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshSession {
    /// The app password the session was opened with, if not the main password.
    pub app_password: Option<String>,
    /// Whether that app password is privileged.
    #[serde(default)]
    pub privileged: bool,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// A code sent by e-mail, stored under the SHA-256 of the code (never the code itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailToken {
    /// The account it was sent for.
    pub did: Did,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// An invite code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The code.
    pub code: String,
    /// Uses left.
    pub available: u32,
    /// Who it was made for (`admin` for operator-made codes).
    pub for_account: String,
    /// Who used it.
    #[serde(default)]
    pub used_by: Vec<String>,
    /// When each use happened, in the order of `used_by` (absent for uses recorded before
    /// times were kept).
    #[serde(default)]
    pub used_at: Vec<DateTime<Utc>>,
    /// Who made it: `admin`, or the account that did.
    #[serde(default = "admin")]
    pub created_by: String,
    /// Disabled by an admin.
    #[serde(default)]
    pub disabled: bool,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// A blob stored for a repo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    /// MIME type given at upload.
    pub mime_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Record paths that reference it; empty means temporary (uploaded, not yet used).
    pub refs: Vec<String>,
    /// References of commits in flight: marked before the commit, moved to `refs` after it.
    /// While any is here the blob is never deleted; one left by a crash is resolved against the
    /// repo by the sweep.
    #[serde(default)]
    pub pending: Vec<PendingRef>,
    /// The operator's takedown (its reference, e.g. a report id): not served while set.
    #[serde(default)]
    pub takedown: Option<String>,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
}

impl BlobRecord {
    /// Whether nothing references it, not even a commit in flight.
    pub fn unreferenced(&self) -> bool {
        self.refs.is_empty() && self.pending.is_empty()
    }
}

/// A record path a commit in flight is about to make reference a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRef {
    /// The record path.
    pub path: String,
    /// When the commit marked it.
    pub since: DateTime<Utc>,
}

/// Attempts of a compare-and-swap that keeps finding the value changed.
const CAS_ATTEMPTS: usize = 20;

/// The error for an account's value that kept changing under a compare-and-swap.
fn conflict(did: &Did) -> impl FnOnce() -> StorageError + '_ {
    move || StorageError::Conflict(did.clone())
}

/// The error for an invite code that kept changing under a compare-and-swap.
fn invite_conflict() -> StorageError {
    StorageError::Backend("invite code kept changing concurrently".into())
}

fn admin() -> String {
    "admin".to_owned()
}

fn corrupt(what: &str) -> StorageError {
    StorageError::Corrupt {
        what: what.to_owned(),
        why: "stored JSON does not parse",
    }
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, StorageError> {
    serde_json::from_slice(bytes).map_err(|_| corrupt(what))
}

/// Account operations over any [`Storage`].
#[derive(Debug, Clone, Copy)]
pub struct Accounts<'a>(pub &'a dyn Storage);

impl Accounts<'_> {
    /// Reads the JSON value at `ns`/`key`, lets `change` edit it, and writes it back only if it
    /// is still what was read, running `change` again on the newer version when another request
    /// wrote first, so no change is lost. `change` answers whether to write at all. None if
    /// nothing is stored there; else the value as left and whether it was written.
    async fn modify<T: Serialize + DeserializeOwned, E: From<StorageError>>(
        &self,
        ns: &str,
        key: &str,
        what: &str,
        conflict: impl FnOnce() -> StorageError,
        mut change: impl FnMut(&mut T) -> Result<bool, E>,
    ) -> Result<Option<(T, bool)>, E> {
        for _ in 0..CAS_ATTEMPTS {
            let Some(raw) = self.0.kv_get(ns, key).await? else {
                return Ok(None);
            };
            let mut value: T = decode(&raw, what)?;
            if !change(&mut value)? {
                return Ok(Some((value, false)));
            }
            if self
                .0
                .kv_put(ns, key, &encode(&value), KvCondition::IfEquals(&raw))
                .await?
            {
                return Ok(Some((value, true)));
            }
        }
        Err(conflict().into())
    }

    /// The account of `did`.
    pub async fn get(&self, did: &Did) -> Result<Option<Account>, StorageError> {
        self.0
            .kv_get("account", did.as_str())
            .await?
            .map(|b| decode(&b, "account"))
            .transpose()
    }

    /// Stores a new account; false (and nothing written) if `did` already has one.
    pub async fn create(&self, account: &Account) -> Result<bool, StorageError> {
        self.0
            .kv_put(
                "account",
                account.did.as_str(),
                &encode(account),
                KvCondition::IfAbsent,
            )
            .await
    }

    /// Changes `did`'s account with `change`, as a compare-and-swap: if another request changed
    /// it meanwhile, `change` runs again on the new version, so neither change is lost (a revoked
    /// app password stays revoked). None if there is no account.
    pub async fn update<E: From<StorageError>>(
        &self,
        did: &Did,
        mut change: impl FnMut(&mut Account) -> Result<(), E>,
    ) -> Result<Option<Account>, E> {
        let updated = self
            .modify(
                "account",
                did.as_str(),
                "account",
                conflict(did),
                |account| change(account).map(|()| true),
            )
            .await?;
        Ok(updated.map(|(account, _)| account))
    }

    /// Removes an account record.
    pub async fn delete(&self, did: &Did) -> Result<(), StorageError> {
        self.0
            .kv_delete("account", did.as_str(), None)
            .await
            .map(|_| ())
    }

    /// Claims `email` for `did`; false if another account has it.
    pub async fn claim_email(&self, email: &str, did: &Did) -> Result<bool, StorageError> {
        let email = email.to_ascii_lowercase();
        if self
            .0
            .kv_put(
                "email",
                &email,
                did.as_str().as_bytes(),
                KvCondition::IfAbsent,
            )
            .await?
        {
            return Ok(true);
        }
        Ok(self.did_for_email(&email).await?.as_ref() == Some(did))
    }

    /// Releases `email` if `did` holds it.
    pub async fn release_email(&self, email: &str, did: &Did) -> Result<(), StorageError> {
        self.0
            .kv_delete(
                "email",
                &email.to_ascii_lowercase(),
                Some(did.as_str().as_bytes()),
            )
            .await
            .map(|_| ())
    }

    /// The account that holds `email`.
    pub async fn did_for_email(&self, email: &str) -> Result<Option<Did>, StorageError> {
        let Some(bytes) = self.0.kv_get("email", &email.to_ascii_lowercase()).await? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes).map_err(|_| corrupt("email claim"))?;
        Did::parse(&text)
            .map(Some)
            .map_err(|_| corrupt("email claim"))
    }

    /// Records a refresh session.
    pub async fn put_session(
        &self,
        did: &Did,
        id: &str,
        session: &RefreshSession,
    ) -> Result<(), StorageError> {
        self.0
            .kv_put(
                &format!("refresh:{did}"),
                id,
                &encode(session),
                KvCondition::Always,
            )
            .await
            .map(|_| ())
    }

    /// Takes (removes and returns) a refresh session: it can be used exactly once.
    pub async fn take_session(
        &self,
        did: &Did,
        id: &str,
    ) -> Result<Option<RefreshSession>, StorageError> {
        let taken = self
            .0
            .kv_delete(&format!("refresh:{did}"), id, None)
            .await?;
        taken.map(|b| decode(&b, "refresh session")).transpose()
    }

    /// Ends every session of `did` (password change, deletion, takedown), or only those of one
    /// app password.
    pub async fn revoke_sessions(
        &self,
        did: &Did,
        app_password: Option<&str>,
    ) -> Result<(), StorageError> {
        let ns = format!("refresh:{did}");
        let mut after: Option<String> = None;
        loop {
            let page = self.0.kv_list(&ns, after.as_deref(), 500).await?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            for (id, bytes) in page {
                let session: RefreshSession = decode(&bytes, "refresh session")?;
                if app_password.is_none() || session.app_password.as_deref() == app_password {
                    self.0.kv_delete(&ns, &id, None).await?;
                }
            }
        }
    }

    /// Stores a new invite code.
    pub async fn create_invite(&self, invite: &Invite) -> Result<bool, StorageError> {
        self.0
            .kv_put(
                "invite",
                &invite.code,
                &encode(invite),
                KvCondition::IfAbsent,
            )
            .await
    }

    /// Uses one use of `code` for `did`; false if it does not exist, is disabled or used up.
    pub async fn use_invite(&self, code: &str, did: &Did) -> Result<bool, StorageError> {
        let used = self
            .modify(
                "invite",
                code,
                "invite",
                invite_conflict,
                |invite: &mut Invite| {
                    if invite.disabled || invite.available == 0 {
                        return Ok::<_, StorageError>(false);
                    }
                    invite.available -= 1;
                    invite.used_by.push(did.to_string());
                    invite.used_at.push(Utc::now());
                    Ok(true)
                },
            )
            .await?;
        Ok(used.is_some_and(|(_, written)| written))
    }

    /// Stores an e-mail code for `did` under `key` (purpose and digest), replacing the code it
    /// sent before for the same purpose, which stops working.
    pub async fn put_email_token(
        &self,
        did: &Did,
        purpose: &str,
        key: &str,
        token: &EmailToken,
    ) -> Result<(), StorageError> {
        let current = format!("{did}:{purpose}");
        if let Some(old) = self.0.kv_get("email-token-of", &current).await? {
            if let Ok(old) = std::str::from_utf8(&old) {
                self.0.kv_delete("email-token", old, None).await?;
            }
        }
        self.0
            .kv_put("email-token", key, &encode(token), KvCondition::Always)
            .await?;
        self.0
            .kv_put(
                "email-token-of",
                &current,
                key.as_bytes(),
                KvCondition::Always,
            )
            .await?;
        Ok(())
    }

    /// Takes the e-mail code stored under `key`: it is gone after this (single use), whoever
    /// asks next. None if there is none.
    pub async fn take_email_token(&self, key: &str) -> Result<Option<EmailToken>, StorageError> {
        self.0
            .kv_delete("email-token", key, None)
            .await?
            .map(|b| decode(&b, "e-mail token"))
            .transpose()
    }

    /// Gives back the use of `code` that `did` took (a sign-up that failed after it).
    pub async fn refund_invite(&self, code: &str, did: &Did) -> Result<(), StorageError> {
        self.modify(
            "invite",
            code,
            "invite",
            invite_conflict,
            |invite: &mut Invite| {
                let Some(i) = invite.used_by.iter().position(|u| u == did.as_str()) else {
                    return Ok::<_, StorageError>(false);
                };
                invite.used_by.remove(i);
                if i < invite.used_at.len() {
                    invite.used_at.remove(i);
                }
                invite.available += 1;
                Ok(true)
            },
        )
        .await
        .map(|_| ())
    }

    /// Every invite code, in code order (the namespace holds nothing else).
    pub async fn list_invites(&self) -> Result<Vec<Invite>, StorageError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.0.kv_list("invite", after.as_deref(), 1000).await?;
            let last = page.last().map(|(k, _)| k.clone());
            for (_, raw) in &page {
                out.push(decode(raw, "invite")?);
            }
            match last {
                Some(k) if page.len() == 1000 => after = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Disables the invite `code` (compare-and-swap, so a use at the same moment is kept).
    pub async fn disable_invite(&self, code: &str) -> Result<(), StorageError> {
        self.modify(
            "invite",
            code,
            "invite",
            invite_conflict,
            |invite: &mut Invite| {
                let write = !invite.disabled;
                invite.disabled = true;
                Ok::<_, StorageError>(write)
            },
        )
        .await
        .map(|_| ())
    }

    /// The invite `code`.
    pub async fn get_invite(&self, code: &str) -> Result<Option<Invite>, StorageError> {
        self.0
            .kv_get("invite", code)
            .await?
            .map(|b| decode(&b, "invite"))
            .transpose()
    }

    /// The blob record of `cid` in `did`'s repo.
    pub async fn get_blob(&self, did: &Did, cid: &str) -> Result<Option<BlobRecord>, StorageError> {
        self.0
            .kv_get(&format!("blobs:{did}"), cid)
            .await?
            .map(|b| decode(&b, "blob record"))
            .transpose()
    }

    /// The operator's takedown of the record at `path` in `did`'s repo (its reference), if any.
    pub async fn record_takedown(
        &self,
        did: &Did,
        path: &str,
    ) -> Result<Option<String>, StorageError> {
        self.0
            .kv_get(&format!("takedown-record:{did}"), path)
            .await?
            .map(|b| decode(&b, "record takedown"))
            .transpose()
    }

    /// Takes the record at `path` down (`Some(reference)`) or restores it (`None`).
    pub async fn set_record_takedown(
        &self,
        did: &Did,
        path: &str,
        takedown: Option<&str>,
    ) -> Result<(), StorageError> {
        let ns = format!("takedown-record:{did}");
        match takedown {
            Some(reference) => self
                .0
                .kv_put(&ns, path, &encode(&reference), KvCondition::Always)
                .await
                .map(|_| ()),
            None => self.0.kv_delete(&ns, path, None).await.map(|_| ()),
        }
    }

    /// Every taken-down record path of `did`'s repo.
    pub async fn record_takedowns(&self, did: &Did) -> Result<Vec<String>, StorageError> {
        Ok(self
            .0
            .kv_list(&format!("takedown-record:{did}"), None, 10_000)
            .await?
            .into_iter()
            .map(|(path, _)| path)
            .collect())
    }

    /// Stores a new blob record; false (nothing written) if the blob already has one.
    pub async fn create_blob(
        &self,
        did: &Did,
        cid: &str,
        record: &BlobRecord,
    ) -> Result<bool, StorageError> {
        self.0
            .kv_put(
                &format!("blobs:{did}"),
                cid,
                &encode(record),
                KvCondition::IfAbsent,
            )
            .await
    }

    /// Changes `did`'s blob record `cid` with `change`, as a compare-and-swap (run again on the
    /// newer version if another request changed it meanwhile, so no reference is lost). None if
    /// there is no record.
    pub async fn update_blob<E: From<StorageError>>(
        &self,
        did: &Did,
        cid: &str,
        mut change: impl FnMut(&mut BlobRecord) -> Result<(), E>,
    ) -> Result<Option<BlobRecord>, E> {
        let updated = self
            .modify(
                &format!("blobs:{did}"),
                cid,
                "blob record",
                conflict(did),
                |record| change(record).map(|()| true),
            )
            .await?;
        Ok(updated.map(|(record, _)| record))
    }

    /// Removes `did`'s blob record `cid` if nothing references it and `also` holds, as a
    /// compare-and-swap on what was read (a reference added meanwhile keeps it); returns whether
    /// it was removed. The caller deletes the bytes after, never before.
    pub async fn delete_blob_if_unreferenced(
        &self,
        did: &Did,
        cid: &str,
        also: impl Fn(&BlobRecord) -> bool,
    ) -> Result<bool, StorageError> {
        let ns = format!("blobs:{did}");
        let Some(raw) = self.0.kv_get(&ns, cid).await? else {
            return Ok(false);
        };
        let record: BlobRecord = decode(&raw, "blob record")?;
        if !record.unreferenced() || !also(&record) {
            return Ok(false);
        }
        Ok(self.0.kv_delete(&ns, cid, Some(&raw)).await?.is_some())
    }

    /// Blob records of `did` after CID `after`, in CID order.
    pub async fn list_blobs(
        &self,
        did: &Did,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, BlobRecord)>, StorageError> {
        let page = self
            .0
            .kv_list(&format!("blobs:{did}"), after, limit)
            .await?;
        page.into_iter()
            .map(|(k, v)| Ok((k, decode(&v, "blob record")?)))
            .collect()
    }

    /// The record paths that reference `cid`, a blob of `did`'s repo not uploaded yet.
    pub async fn get_expected_blob(
        &self,
        did: &Did,
        cid: &str,
    ) -> Result<Option<Vec<String>>, StorageError> {
        self.0
            .kv_get(&format!("expected-blobs:{did}"), cid)
            .await?
            .map(|b| decode(&b, "expected blob"))
            .transpose()
    }

    /// Stores the record paths that reference `cid`, a blob not uploaded yet.
    pub async fn put_expected_blob(
        &self,
        did: &Did,
        cid: &str,
        refs: &[String],
    ) -> Result<(), StorageError> {
        self.0
            .kv_put(
                &format!("expected-blobs:{did}"),
                cid,
                &encode(&refs),
                KvCondition::Always,
            )
            .await
            .map(|_| ())
    }

    /// Forgets an expected blob (uploaded, or no record references it any more).
    pub async fn delete_expected_blob(&self, did: &Did, cid: &str) -> Result<(), StorageError> {
        self.0
            .kv_delete(&format!("expected-blobs:{did}"), cid, None)
            .await
            .map(|_| ())
    }

    /// Expected blobs of `did` after CID `after`, in CID order, with their record paths.
    pub async fn list_expected_blobs(
        &self,
        did: &Did,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<String>)>, StorageError> {
        let page = self
            .0
            .kv_list(&format!("expected-blobs:{did}"), after, limit)
            .await?;
        page.into_iter()
            .map(|(k, v)| Ok((k, decode(&v, "expected blob")?)))
            .collect()
    }

    /// The stored preferences of `did` (every namespace), in the order they were put.
    pub async fn get_preferences(&self, did: &Did) -> Result<Vec<serde_json::Value>, StorageError> {
        Ok(self
            .0
            .kv_get("preferences", did.as_str())
            .await?
            .map(|b| decode(&b, "preferences"))
            .transpose()?
            .unwrap_or_default())
    }

    /// Replaces `did`'s preferences with what `change` makes of the current ones, by
    /// compare-and-swap (retried), so two concurrent changes cannot lose one another.
    pub async fn update_preferences<E: From<StorageError>>(
        &self,
        did: &Did,
        change: impl Fn(Vec<serde_json::Value>) -> Result<Vec<serde_json::Value>, E>,
    ) -> Result<(), E> {
        for _ in 0..10 {
            let raw = self.0.kv_get("preferences", did.as_str()).await?;
            let current = match &raw {
                Some(bytes) => decode(bytes, "preferences")?,
                None => Vec::new(),
            };
            let next = encode(&change(current)?);
            let condition = match &raw {
                Some(bytes) => KvCondition::IfEquals(bytes),
                None => KvCondition::IfAbsent,
            };
            if self
                .0
                .kv_put("preferences", did.as_str(), &next, condition)
                .await?
            {
                return Ok(());
            }
        }
        Err(StorageError::Conflict(did.clone()).into())
    }
}
