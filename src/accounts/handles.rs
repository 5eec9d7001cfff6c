//! Changing an account's handle: our domains' claims, other domains' proof of control, the DID
//! document, storage and the `#identity` event.

use super::{AccountError, AccountService};
use crate::storage::{EventBody, RepoStatus};
use crate::syntax::{Did, Handle};

impl AccountService<'_> {
    /// The owner's handle change (`updateHandle`): as [`AccountService::set_handle`], for an
    /// account that is not taken down, suspended or deleted.
    pub async fn set_own_handle(&self, did: &Did, handle: Handle) -> Result<(), AccountError> {
        match self.repo(did).await?.status {
            RepoStatus::Takendown | RepoStatus::Suspended => {
                Err(AccountError::Takendown(did.clone()))
            }
            RepoStatus::Deleted => Err(AccountError::NotFound(did.clone())),
            _ => self.set_handle(did, handle).await,
        }
    }

    /// Moves `did` to `handle`: a handle under a service domain must follow the sign-up rules
    /// and be free; any other must already resolve to `did` (DNS or well-known). The DID
    /// document is updated first for did:plc accounts whose rotation key this PDS holds; then
    /// storage and `#identity`.
    pub async fn set_handle(&self, did: &Did, handle: Handle) -> Result<(), AccountError> {
        if self.config.is_service_handle(handle.as_str()) {
            // The same rules as at sign-up: one label under the domain, 3 to 18 characters.
            self.check_service_handle(&handle)?;
            if let Some(owner) = self.storage.resolve_handle(&handle).await? {
                if &owner != did {
                    return Err(AccountError::HandleNotAvailable(handle));
                }
            }
        } else {
            let resolved = self.resolver.resolve_handle(&handle).await;
            if resolved.ok().as_ref() != Some(did) {
                return Err(AccountError::HandleDoesNotResolve(handle, did.clone()));
            }
        }
        let keys = self
            .storage
            .load_keys(did)
            .await?
            .ok_or_else(|| AccountError::NotFound(did.clone()))?;
        if did.method() == "plc" {
            if let Some(rotation) = &keys.rotation {
                let aka = format!("at://{handle}");
                self.plc
                    .update(did, rotation, |data| {
                        data.also_known_as.retain(|a| !a.starts_with("at://"));
                        data.also_known_as.insert(0, aka);
                    })
                    .await?;
            }
        }
        self.storage
            .set_handle(
                did,
                Some(handle.clone()),
                vec![EventBody::Identity {
                    handle: Some(handle),
                }],
            )
            .await?;
        self.resolver.invalidate(Some(did), None);
        Ok(())
    }
}
