//! Creating an account: handle rules, invite, DID creation at the PLC directory, the e-mail
//! claim, the repo and the credentials.

use chrono::Utc;

use super::{AccountError, AccountService, hash_password};
use crate::crypto::{Algorithm, Keypair, PublicKey};
use crate::identity::PlcClient;
use crate::storage::accounts::Account;
use crate::storage::{RepoKeys, RepoStatus, StorageError, create_repo_with_status};
use crate::syntax::{Did, Handle};

/// What a new account is made from (the `createAccount` input, parsed).
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// The handle, under one of this PDS's domains.
    pub handle: Handle,
    /// The password.
    pub password: String,
    /// The login e-mail.
    pub email: Option<String>,
    /// An invite code (required when the PDS requires invites).
    pub invite_code: Option<String>,
    /// A rotation key the user holds, listed first in the new DID's `rotationKeys`.
    pub recovery_key: Option<String>,
    /// An existing DID moving in from another PDS. The caller has checked a service-auth token
    /// from it (`lxm` createAccount, `aud` this PDS): the account is created deactivated, its
    /// repo to be imported, its DID document to be pointed here (`signPlcOperation` on the old
    /// PDS, `submitPlcOperation` here), then activated.
    pub did: Option<Did>,
}

/// The account made.
#[derive(Debug, Clone)]
pub struct CreatedAccount {
    /// Its DID.
    pub did: Did,
    /// Its handle.
    pub handle: Handle,
}

impl AccountService<'_> {
    /// Checks a new handle against the service domains: `<name><domain>` with a name of 3 to 18
    /// characters and no dots (the reference PDS's rule).
    pub fn check_service_handle(&self, handle: &Handle) -> Result<(), AccountError> {
        let domain = self
            .config
            .handle_domains
            .iter()
            .find(|d| handle.as_str().ends_with(d.as_str()))
            .ok_or_else(|| AccountError::UnsupportedDomain(handle.clone()))?;
        let name = &handle.as_str()[..handle.as_str().len() - domain.len()];
        let why = if name.contains('.') {
            "Handle must be a single name under the service domain"
        } else if name.len() < 3 {
            "Handle too short"
        } else if name.len() > 18 {
            "Handle too long"
        } else {
            return Ok(());
        };
        Err(AccountError::InvalidHandle {
            handle: handle.clone(),
            why,
        })
    }

    /// Creates the account: DID (or an arriving one), repo (active with its first events, or
    /// deactivated for an arriving account) and credentials.
    pub async fn create(&self, new: NewAccount) -> Result<CreatedAccount, AccountError> {
        let arriving = new.did.clone();
        let handle = new.handle;
        self.check_service_handle(&handle)?;
        if new.password.is_empty() {
            return Err(AccountError::InvalidPassword("A password is required"));
        }
        let email = new.email.map(|e| e.to_ascii_lowercase());
        if let Some(e) = &email {
            if !e.contains('@') || e.len() > 254 {
                return Err(AccountError::InvalidEmail(e.clone()));
            }
        }
        let records = self.records();
        if self.config.invite_required {
            let code = new
                .invite_code
                .as_deref()
                .ok_or(AccountError::InvalidInviteCode(
                    "An invite code is required",
                ))?;
            let invite = records.get_invite(code).await?;
            let mut usable = invite
                .as_ref()
                .is_some_and(|i| i.available > 0 && !i.disabled);
            // An account whose invites the operator stopped admits no one with its codes.
            if let Some(owner) = invite.and_then(|i| Did::parse(&i.for_account).ok()) {
                if records
                    .get(&owner)
                    .await?
                    .is_some_and(|a| a.invites_disabled)
                {
                    usable = false;
                }
            }
            if !usable {
                return Err(AccountError::InvalidInviteCode(
                    "Invalid or used invite code",
                ));
            }
        }
        // An account coming back keeps the handle it left with.
        if let Some(owner) = self.storage.resolve_handle(&handle).await? {
            if Some(&owner) != arriving.as_ref() {
                return Err(AccountError::HandleNotAvailable(handle));
            }
        }
        let recovery = new
            .recovery_key
            .map(|k| PublicKey::from_did_key(&k).map_err(|_| AccountError::InvalidRecoveryKey(k)))
            .transpose()?;
        // An arriving account signs with the key reserved for it, if one was.
        let reserved = match &arriving {
            Some(did) => self.reserved_key(did).await?,
            None => None,
        };
        let signing = reserved
            .clone()
            .unwrap_or_else(|| Keypair::generate(Algorithm::K256));
        let rotation = Keypair::generate(Algorithm::K256);
        // Priority order: the user's recovery key, this account's key, then the operator's key.
        let mut rotation_keys: Vec<PublicKey> = recovery.into_iter().collect();
        rotation_keys.push(rotation.public_key());
        rotation_keys.extend(
            self.config
                .plc_rotation_key
                .as_ref()
                .map(Keypair::public_key),
        );
        let (did, genesis) = match arriving.clone() {
            // The DID exists; its document moves here later, with a signed operation.
            Some(did) => (did, None),
            None => {
                let (did, op) = PlcClient::genesis(
                    &handle,
                    &signing.public_key(),
                    &rotation_keys,
                    &rotation,
                    &self.config.public_url,
                );
                (did, Some(op))
            }
        };
        if let Some(existing) = self.storage.load_repo(&did).await? {
            return match (&arriving, existing.status) {
                // It moved away from here and is coming back: the same account, ready for its
                // repo and its DID document again.
                (Some(_), RepoStatus::Deactivated) => {
                    self.welcome_back(&did, existing.handle, &new.password, email.as_deref())
                        .await
                }
                _ => Err(AccountError::AlreadyExists(did)),
            };
        }
        // The claims come first, so a sign-up that cannot succeed (e-mail taken, invite used up
        // by a concurrent sign-up) never registers a DID with the directory.
        if let Some(e) = &email {
            if !records.claim_email(e, &did).await? {
                return Err(AccountError::EmailTaken(e.clone()));
            }
        }
        let invite = new.invite_code.filter(|_| self.config.invite_required);
        if let Some(code) = &invite {
            if !records.use_invite(code, &did).await? {
                self.undo_claims(&did, email.as_deref(), None).await?;
                return Err(AccountError::InvalidInviteCode(
                    "Invalid or used invite code",
                ));
            }
        }
        if let Some(genesis) = &genesis {
            if let Err(e) = self.plc.submit(&did, genesis).await {
                self.undo_claims(&did, email.as_deref(), invite.as_deref())
                    .await?;
                return Err(AccountError::DidCreation(e));
            }
        }
        let status = match arriving {
            Some(_) => RepoStatus::Deactivated,
            None => RepoStatus::Active,
        };
        let keys = RepoKeys {
            signing,
            rotation: Some(rotation),
        };
        let view = self.cache.view();
        let created = create_repo_with_status(
            self.storage,
            &view,
            did.clone(),
            Some(handle.clone()),
            keys,
            self.clock,
            status,
        )
        .await;
        if let Err(e) = created {
            self.undo_claims(&did, email.as_deref(), invite.as_deref())
                .await?;
            return Err(e.into());
        }
        let account = Account {
            did: did.clone(),
            email,
            password_hash: hash_password(&new.password).await?,
            app_passwords: vec![],
            email_confirmed_at: None,
            email_auth_factor: false,
            invites_disabled: false,
            created_at: Utc::now(),
        };
        if !records.create(&account).await? {
            return Err(StorageError::RepoExists(did).into());
        }
        if reserved.is_some() {
            self.release_reserved_key(&did).await?;
        }
        Ok(CreatedAccount { did, handle })
    }

    /// Releases what a failed sign-up claimed for `did`: its e-mail and its invite use.
    async fn undo_claims(
        &self,
        did: &Did,
        email: Option<&str>,
        invite: Option<&str>,
    ) -> Result<(), AccountError> {
        let records = self.records();
        if let Some(email) = email {
            records.release_email(email, did).await?;
        }
        if let Some(code) = invite {
            records.refund_invite(code, did).await?;
        }
        Ok(())
    }

    /// An account that moved away from here and is moving back (deactivated meanwhile): it
    /// keeps its keys and handle here, takes the password it arrives with, and the e-mail
    /// address if it brings another.
    async fn welcome_back(
        &self,
        did: &Did,
        handle: Option<Handle>,
        password: &str,
        email: Option<&str>,
    ) -> Result<CreatedAccount, AccountError> {
        let handle = handle.ok_or_else(|| AccountError::AlreadyExists(did.clone()))?;
        self.set_password(did, password).await?;
        let current = self.account(did).await?.email;
        if let Some(email) = email.filter(|e| current.as_deref() != Some(*e)) {
            self.set_email(did, email, None).await?;
        }
        Ok(CreatedAccount {
            did: did.clone(),
            handle,
        })
    }
}
