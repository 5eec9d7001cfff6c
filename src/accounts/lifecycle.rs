//! Status changes: activating, deactivating, taking down and deleting an account, each with the
//! events relays expect.
//!
//! The statuses form a small state machine ([`Change::target`]): the owner moves between active
//! and deactivated, the operator takes down and reverses a takedown, and deletion is final.
//! Every change is a compare-and-swap on the status it was decided from, so a change decided on
//! an old status (an activation racing a takedown) fails and is decided again on the new one:
//! a takedown is never undone by a request that did not know about it.

use super::{AccountError, AccountService};
use crate::storage::{EventBody, RepoRecord, RepoStatus, StorageError, commit_writes};
use crate::syntax::Did;

/// Attempts at a status change that keeps finding the status changed under it.
const STATUS_ATTEMPTS: usize = 8;

/// A status change and who may ask for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// The owner: deactivated (or desynchronized, throttled) → active.
    Activate,
    /// The owner: active → deactivated.
    Deactivate,
    /// The operator: anything but deleted → taken down.
    Takedown,
    /// The operator: taken down → active; nothing else changes.
    ReverseTakedown,
    /// The owner or the operator: anything → deleted, for good.
    Delete,
}

impl Change {
    /// The status `current` moves to (None: already there, nothing to do), or the refusal.
    fn target(self, did: &Did, current: RepoStatus) -> Result<Option<RepoStatus>, AccountError> {
        use RepoStatus::*;
        let refused = |action| AccountError::StatusChangeRefused {
            did: did.clone(),
            status: current,
            action,
        };
        match (self, current) {
            (Change::Activate, Active) => Ok(None),
            (Change::Activate, Deactivated | Desynchronized | Throttled) => Ok(Some(Active)),
            (Change::Activate, _) => Err(refused("activated")),
            (Change::Deactivate, Deactivated) => Ok(None),
            (Change::Deactivate, s) if s.is_active() => Ok(Some(Deactivated)),
            (Change::Deactivate, _) => Err(refused("deactivated")),
            (Change::Takedown, Takendown) => Ok(None),
            (Change::Takedown, Deleted) => Err(refused("taken down")),
            (Change::Takedown, _) => Ok(Some(Takendown)),
            (Change::ReverseTakedown, Takendown) => Ok(Some(Active)),
            (Change::ReverseTakedown, _) => Ok(None),
            (Change::Delete, Deleted) => Ok(None),
            (Change::Delete, _) => Ok(Some(Deleted)),
        }
    }
}

impl AccountService<'_> {
    /// The repo record of `did` (a token's own account: gone means the token is stale).
    pub async fn repo(&self, did: &Did) -> Result<RepoRecord, AccountError> {
        self.storage
            .load_repo(did)
            .await?
            .ok_or_else(|| AccountError::NotFound(did.clone()))
    }

    /// Applies `change` with the `#account` event (and `extra` events after it), deciding again
    /// whenever the status changed under it. Returns the record as it was before, if it changed.
    async fn change_status(
        &self,
        did: &Did,
        change: Change,
        extra: impl Fn(&RepoRecord) -> Vec<EventBody>,
    ) -> Result<Option<RepoRecord>, AccountError> {
        for _ in 0..STATUS_ATTEMPTS {
            let record = self.repo(did).await?;
            let Some(to) = change.target(did, record.status)? else {
                return Ok(None);
            };
            let mut events = vec![EventBody::account(to)];
            events.extend(extra(&record));
            match self
                .storage
                .set_status(did, record.status, to, events)
                .await
            {
                Ok(_) => return Ok(Some(record)),
                Err(StorageError::StatusChanged(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StorageError::TooManyConflicts(did.clone(), STATUS_ATTEMPTS).into())
    }

    /// Activates a deactivated account: `#account` (active), `#identity`, then an empty commit
    /// with a fresh rev (what relays need to pick the repo up again). Taken-down, suspended and
    /// deleted accounts cannot be activated by their owner.
    pub async fn activate(&self, did: &Did) -> Result<(), AccountError> {
        let identity = |record: &RepoRecord| {
            vec![EventBody::Identity {
                handle: record.handle.clone(),
            }]
        };
        if self
            .change_status(did, Change::Activate, identity)
            .await?
            .is_some()
        {
            commit_writes(self.storage, &self.cache.view(), did, &[], self.clock).await?;
        }
        Ok(())
    }

    /// Deactivates an active account (`#account` deactivated); a no-op if already deactivated.
    pub async fn deactivate(&self, did: &Did) -> Result<(), AccountError> {
        self.change_status(did, Change::Deactivate, |_| vec![])
            .await?;
        Ok(())
    }

    /// The operator's takedown (`applied`) or its reversal; sessions end on a takedown. A
    /// reversal only ever moves a taken-down account back to active: it never revives a deleted
    /// one.
    pub async fn set_takedown(&self, did: &Did, applied: bool) -> Result<(), AccountError> {
        let change = match applied {
            true => Change::Takedown,
            false => Change::ReverseTakedown,
        };
        self.change_status(did, change, |_| vec![]).await?;
        if applied {
            self.records().revoke_sessions(did, None).await?;
        }
        Ok(())
    }

    /// Marks an account deleted: `#account` (deleted), sessions revoked, credentials, e-mail and
    /// handle released. Blocks stay until a purge; the repo is no longer served.
    pub async fn delete(&self, did: &Did) -> Result<(), AccountError> {
        let records = self.records();
        self.change_status(did, Change::Delete, |_| vec![]).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_caller_makes_only_its_own_transitions() {
        use RepoStatus::*;
        let did = Did::parse("did:plc:ewvi7nxzyoun6zhxrhs64oiz").unwrap();
        let all = [
            Active,
            Deactivated,
            Takendown,
            Suspended,
            Deleted,
            Desynchronized,
            Throttled,
        ];
        let table = |change: Change| -> Vec<Result<Option<RepoStatus>, ()>> {
            all.iter()
                .map(|s| change.target(&did, *s).map_err(|_| ()))
                .collect()
        };
        let (refused, same) = (Err(()), Ok(None));
        assert_eq!(
            table(Change::Activate),
            [
                same,
                Ok(Some(Active)),
                refused,
                refused,
                refused,
                Ok(Some(Active)),
                Ok(Some(Active))
            ]
        );
        assert_eq!(
            table(Change::Deactivate),
            [
                Ok(Some(Deactivated)),
                same,
                refused,
                refused,
                refused,
                Ok(Some(Deactivated)),
                Ok(Some(Deactivated))
            ]
        );
        assert_eq!(
            table(Change::ReverseTakedown),
            [same, same, Ok(Some(Active)), same, same, same, same],
            "a reversal never revives a deleted or deactivated account"
        );
        assert_eq!(table(Change::Takedown)[4], refused);
        assert!(
            table(Change::Delete)[..4]
                .iter()
                .all(|t| *t == Ok(Some(Deleted)))
        );
    }
}
