//! Status changes: activating, deactivating, taking down and deleting an account, each with the
//! events relays expect.

use super::{AccountError, AccountService};
use crate::storage::{EventBody, RepoRecord, RepoStatus, commit_writes};
use crate::syntax::Did;

impl AccountService<'_> {
    /// The repo record of `did` (a token's own account: gone means the token is stale).
    pub async fn repo(&self, did: &Did) -> Result<RepoRecord, AccountError> {
        self.storage
            .load_repo(did)
            .await?
            .ok_or_else(|| AccountError::NotFound(did.clone()))
    }

    /// Activates a deactivated account: `#account` (active), `#identity`, then an empty commit
    /// with a fresh rev (what relays need to pick the repo up again). Taken-down, suspended and
    /// deleted accounts cannot be activated by their owner.
    pub async fn activate(&self, did: &Did) -> Result<(), AccountError> {
        let record = self.repo(did).await?;
        match record.status {
            RepoStatus::Active => return Ok(()),
            RepoStatus::Takendown | RepoStatus::Suspended | RepoStatus::Deleted => {
                return Err(AccountError::StatusChangeRefused {
                    did: did.clone(),
                    status: record.status,
                    action: "activated",
                });
            }
            _ => {}
        }
        let events = vec![
            EventBody::account(RepoStatus::Active),
            EventBody::Identity {
                handle: record.handle.clone(),
            },
        ];
        self.storage
            .set_status(did, RepoStatus::Active, events)
            .await?;
        commit_writes(self.storage, &self.cache.view(), did, &[], self.clock).await?;
        Ok(())
    }

    /// Deactivates an active account (`#account` deactivated); a no-op if already deactivated.
    pub async fn deactivate(&self, did: &Did) -> Result<(), AccountError> {
        let record = self.repo(did).await?;
        if record.status == RepoStatus::Deactivated {
            return Ok(());
        }
        if !record.status.is_active() {
            return Err(AccountError::StatusChangeRefused {
                did: did.clone(),
                status: record.status,
                action: "deactivated",
            });
        }
        self.storage
            .set_status(
                did,
                RepoStatus::Deactivated,
                vec![EventBody::account(RepoStatus::Deactivated)],
            )
            .await?;
        Ok(())
    }

    /// The operator's takedown (`applied`) or its reversal; sessions end on a takedown.
    pub async fn set_takedown(&self, did: &Did, applied: bool) -> Result<(), AccountError> {
        let record = self.repo(did).await?;
        let status = if applied {
            RepoStatus::Takendown
        } else {
            RepoStatus::Active
        };
        if record.status != status {
            self.storage
                .set_status(did, status, vec![EventBody::account(status)])
                .await?;
        }
        if applied {
            self.records().revoke_sessions(did, None).await?;
        }
        Ok(())
    }

    /// Marks an account deleted: `#account` (deleted), sessions revoked, credentials, e-mail and
    /// handle released. Blocks stay until a purge; the repo is no longer served.
    pub async fn delete(&self, did: &Did) -> Result<(), AccountError> {
        let records = self.records();
        self.storage
            .set_status(
                did,
                RepoStatus::Deleted,
                vec![EventBody::account(RepoStatus::Deleted)],
            )
            .await?;
        self.storage.set_handle(did, None, vec![]).await?;
        records.revoke_sessions(did, None).await?;
        if let Some(account) = records.get(did).await? {
            if let Some(email) = &account.email {
                records.release_email(email, did).await?;
            }
        }
        records.delete(did).await?;
        Ok(())
    }
}
