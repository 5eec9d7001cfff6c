//! Password hashing and app passwords.
//!
//! Main passwords are hashed with argon2id, which is slow on purpose: it runs on the blocking
//! pool, at most one hash per CPU at a time, so logins can never starve the request threads.
//! App passwords are generated here with 80 random bits, too many to guess, so they need no slow
//! hash: each is stored as SHA-256 over the account's DID and the password, and a login computes
//! that once and compares it with every stored one, instead of one argon2 run per app password.
//! (App passwords made before this are argon2 hashes and are still checked that way.)

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, PasswordHash};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::AccountError;
use crate::syntax::Did;

/// The prefix of an app-password digest.
const APP_PASSWORD_DIGEST: &str = "sha256:";

/// argon2 runs at once, process-wide: one per CPU.
static HASHING: LazyLock<Semaphore> = LazyLock::new(|| {
    Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
});

/// Runs `work` (argon2) on the blocking pool once a hashing slot is free.
async fn hashing<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AccountError> {
    let _slot = HASHING
        .acquire()
        .await
        .map_err(|e| AccountError::Hashing(e.to_string()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AccountError::Hashing(e.to_string()))
}

/// Hashes a password with argon2id and a random salt.
pub async fn hash_password(password: &str) -> Result<String, AccountError> {
    let password = password.to_owned();
    hashing(move || {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .map_err(|e| AccountError::Hashing(e.to_string()))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AccountError::Hashing(e.to_string()))
    })
    .await?
}

/// Whether `password` matches the argon2 `hash` (constant-time inside argon2).
pub async fn verify_password(password: &str, hash: &str) -> Result<bool, AccountError> {
    let (password, hash) = (password.to_owned(), hash.to_owned());
    hashing(move || {
        PasswordHash::new(&hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
}

/// The stored form of `did`'s app password `password`.
pub(super) fn app_password_digest(did: &Did, password: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(did.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(password.as_bytes());
    format!("{APP_PASSWORD_DIGEST}{}", hex::encode(hasher.finalize()))
}

/// Which of `stored` (app-password hashes, in order) `password` matches, if any: one digest
/// compared in constant time with each, then argon2 only for old argon2 entries.
pub(super) async fn find_app_password(
    did: &Did,
    password: &str,
    stored: &[&str],
) -> Result<Option<usize>, AccountError> {
    let digest = app_password_digest(did, password);
    let mut found = None;
    for (i, hash) in stored.iter().enumerate() {
        if hash.starts_with(APP_PASSWORD_DIGEST)
            && bool::from(hash.as_bytes().ct_eq(digest.as_bytes()))
        {
            found = found.or(Some(i));
        }
    }
    if found.is_some() {
        return Ok(found);
    }
    for (i, hash) in stored.iter().enumerate() {
        if !hash.starts_with(APP_PASSWORD_DIGEST) && verify_password(password, hash).await? {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// A new app password, `xxxx-xxxx-xxxx-xxxx` from lower-case letters and digits (32 symbols,
/// so 80 random bits).
pub fn generate_app_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let bytes: [u8; 16] = rand::random();
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn app_passwords_are_found_by_digest_and_old_argon2_entries_still_match() {
        let did = Did::parse("did:plc:ewvi7nxzyoun6zhxrhs64oiz").unwrap();
        let new = generate_app_password();
        let old = generate_app_password();
        let old_hash = hash_password(&old).await.unwrap();
        let other = app_password_digest(&did, "aaaa-bbbb-cccc-dddd");
        let new_hash = app_password_digest(&did, &new);
        let stored = [other.as_str(), old_hash.as_str(), new_hash.as_str()];
        assert_eq!(
            find_app_password(&did, &new, &stored).await.unwrap(),
            Some(2)
        );
        assert_eq!(
            find_app_password(&did, &old, &stored).await.unwrap(),
            Some(1)
        );
        assert_eq!(
            find_app_password(&did, "wrong", &stored).await.unwrap(),
            None
        );
        let someone_else = Did::parse("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa").unwrap();
        assert_eq!(
            find_app_password(&someone_else, &new, &stored)
                .await
                .unwrap(),
            None,
            "the digest is bound to the account"
        );
    }
}
