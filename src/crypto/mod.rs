//! Signing keys, signatures and did:key, for both atproto curves (k256 and p256).
//!
//! atproto signs the SHA-256 of the bytes with ECDSA and writes the signature as 64 compact bytes
//! `r‖s` with a low S. [`Keypair::sign`] always produces that; [`PublicKey::verify`] rejects
//! anything else (high-S, DER, wrong length). Keys travel as did:key / Multikey strings
//! (https://atproto.com/specs/cryptography). JWTs built from these keys live in `identity`.

mod did_key;
mod keys;

pub use keys::{Algorithm, CryptoError, Keypair, PublicKey};
