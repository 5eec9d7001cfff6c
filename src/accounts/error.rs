//! [`AccountError`]: why an account flow refused or failed.

use crate::identity::IdentityError;
use crate::storage::{RepoStatus, StorageError};
use crate::syntax::{Did, Handle};

/// What went wrong in an account flow.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The handle is not under one of this PDS's domains.
    #[error("Not a supported handle domain")]
    UnsupportedDomain(Handle),
    /// The handle breaks the service domain's rules (length, dots).
    #[error("{why}")]
    InvalidHandle {
        /// The handle.
        handle: Handle,
        /// Which rule.
        why: &'static str,
    },
    /// Another account has the handle.
    #[error("Handle already taken: {0}")]
    HandleNotAvailable(Handle),
    /// A handle outside our domains that does not resolve to the account.
    #[error("Handle {0} does not resolve to {1}")]
    HandleDoesNotResolve(Handle, Did),
    /// No password, or an unusable one.
    #[error("{0}")]
    InvalidPassword(&'static str),
    /// The e-mail address is malformed.
    #[error("Invalid email address")]
    InvalidEmail(String),
    /// A request this account may not make now, with the reason.
    #[error("{0}")]
    Refused(&'static str),
    /// An e-mail code that does not exist (wrong, used, or for another purpose or account).
    #[error("Token is invalid")]
    InvalidToken,
    /// An e-mail code past its 15 minutes.
    #[error("Token is expired")]
    ExpiredToken,
    /// The change needs an e-mail code and none was given.
    #[error("Confirmation token required")]
    TokenRequired,
    /// Signing in needs the code just e-mailed (e-mail two-factor).
    #[error("A sign in code has been sent to your email address")]
    AuthFactorTokenRequired,
    /// Another account has the e-mail address.
    #[error("This email address is already in use")]
    EmailTaken(String),
    /// The invite code is missing, unknown, disabled or used up.
    #[error("{0}")]
    InvalidInviteCode(&'static str),
    /// The recovery key is not a did:key.
    #[error("Invalid recoveryKey")]
    InvalidRecoveryKey(String),
    /// An account for this DID is already here.
    #[error("Account already exists: {0}")]
    AlreadyExists(Did),
    /// A PLC operation that would take the account away from this PDS's keys or address.
    #[error("{0}")]
    BadPlcOperation(String),
    /// The PLC directory refused or could not be reached when creating the DID.
    #[error("Could not create the DID: {0}")]
    DidCreation(IdentityError),
    /// The identifier and password match no account.
    #[error("Invalid identifier or password")]
    WrongCredentials,
    /// The account was taken down by the operator.
    #[error("Account has been taken down")]
    Takendown(Did),
    /// The account of a valid token no longer exists.
    #[error("Account not found: {0}")]
    NotFound(Did),
    /// The account cannot move to the status asked for from the one it is in.
    #[error("Account {did} cannot be {action} while {status}", status = .status.as_str())]
    StatusChangeRefused {
        /// The account.
        did: Did,
        /// Its status.
        status: RepoStatus,
        /// What was asked (`activated`, `deactivated`).
        action: &'static str,
    },
    /// The app password name is empty, too long or already used.
    #[error("{0}")]
    InvalidAppPasswordName(&'static str),
    /// A count outside what the method allows.
    #[error("{0}")]
    OutOfRange(&'static str),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Resolving or updating an identity failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Hashing a password failed (a bug or resource exhaustion, never the client's fault).
    #[error("password hashing failed: {0}")]
    Hashing(String),
}
