//! Account flows: creating an account, checking credentials, app passwords, status changes,
//! handles and invite codes — what the `com.atproto.server.*`, `identity.*` and `admin.*`
//! handlers call, so those handlers only parse, call and answer.
//!
//! [`AccountService`] borrows the services a flow needs (storage, the block cache, the clock,
//! the PLC client and resolver) and the rules from [`AccountsConfig`]; it knows nothing of HTTP,
//! tokens or sessions (those are `crate::xrpc::auth`). Account records themselves are
//! `crate::storage::accounts`. Failures are [`AccountError`], one variant per cause, which the
//! XRPC layer maps to statuses and names.

mod config;
mod create;
mod credentials;
mod email;
mod error;
mod handles;
mod invites;
mod lifecycle;
mod migration;
mod passwords;

pub use config::AccountsConfig;
pub use create::{CreatedAccount, NewAccount};
pub use credentials::{Login, MAX_APP_PASSWORDS};
pub use email::TokenPurpose;
pub use error::AccountError;
pub use migration::CredentialChanges;
pub use passwords::{generate_app_password, hash_password, verify_password};

use crate::identity::{PlcClient, Resolver};
use crate::storage::{BlockCache, Storage};
use crate::tid::TidClock;

/// The account flows over one server's services.
#[derive(Clone, Copy)]
pub struct AccountService<'a> {
    storage: &'a dyn Storage,
    cache: &'a BlockCache,
    clock: &'a TidClock,
    plc: &'a PlcClient,
    resolver: &'a Resolver,
    config: &'a AccountsConfig,
}

impl std::fmt::Debug for AccountService<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountService")
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

impl<'a> AccountService<'a> {
    /// The flows over these services.
    pub fn new(
        storage: &'a dyn Storage,
        cache: &'a BlockCache,
        clock: &'a TidClock,
        plc: &'a PlcClient,
        resolver: &'a Resolver,
        config: &'a AccountsConfig,
    ) -> AccountService<'a> {
        AccountService {
            storage,
            cache,
            clock,
            plc,
            resolver,
            config,
        }
    }

    fn records(&self) -> crate::storage::Accounts<'a> {
        crate::storage::Accounts(self.storage)
    }
}
