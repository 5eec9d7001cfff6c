//! [`Keypair`] and [`PublicKey`] over k256 and p256.

use k256::ecdsa::signature::{Signer, Verifier};
use sha2::{Digest, Sha256};

/// The two curves atproto supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// secp256k1, JWT `ES256K`; the atproto default.
    K256,
    /// NIST P-256 (secp256r1), JWT `ES256`.
    P256,
}

impl Algorithm {
    /// The JWT `alg` name.
    pub fn jwt_alg(self) -> &'static str {
        match self {
            Algorithm::K256 => "ES256K",
            Algorithm::P256 => "ES256",
        }
    }
}

/// Why a key or signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Private key bytes that are not a valid scalar for the curve.
    #[error("invalid {0:?} private key")]
    InvalidPrivateKey(Algorithm),
    /// Public key bytes that are not a point on the curve.
    #[error("invalid {0:?} public key")]
    InvalidPublicKey(Algorithm),
    /// A did:key or Multikey string that cannot be decoded.
    #[error("invalid did:key or multikey {0:?}: {1}")]
    InvalidDidKey(String, &'static str),
    /// A signature that is not 64 bytes (DER signatures land here).
    #[error("signature must be 64 compact bytes, got {0}")]
    SignatureLength(usize),
    /// A signature with a high S value, which atproto forbids.
    #[error("signature is not low-S")]
    HighS,
    /// A signature that does not verify against the key.
    #[error("signature does not verify")]
    BadSignature,
}

/// A private signing key on one of the two curves.
#[derive(Clone)]
pub enum Keypair {
    /// secp256k1.
    K256(k256::ecdsa::SigningKey),
    /// P-256.
    P256(p256::ecdsa::SigningKey),
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secret material; the public did:key identifies the key.
        write!(f, "Keypair({})", self.public_key().to_did_key())
    }
}

impl Keypair {
    /// A fresh random key.
    pub fn generate(alg: Algorithm) -> Keypair {
        let mut rng = rand::rngs::OsRng;
        match alg {
            Algorithm::K256 => Keypair::K256(k256::ecdsa::SigningKey::random(&mut rng)),
            Algorithm::P256 => Keypair::P256(p256::ecdsa::SigningKey::random(&mut rng)),
        }
    }

    /// A key from its 32 secret bytes.
    pub fn from_bytes(alg: Algorithm, bytes: &[u8]) -> Result<Keypair, CryptoError> {
        let err = |_| CryptoError::InvalidPrivateKey(alg);
        Ok(match alg {
            Algorithm::K256 => {
                Keypair::K256(k256::ecdsa::SigningKey::from_slice(bytes).map_err(err)?)
            }
            Algorithm::P256 => {
                Keypair::P256(p256::ecdsa::SigningKey::from_slice(bytes).map_err(err)?)
            }
        })
    }

    /// A deterministic key derived from `seed`. **For tests only**: anyone with the seed has the
    /// key.
    pub fn from_seed(alg: Algorithm, seed: &[u8]) -> Keypair {
        let mut digest: [u8; 32] = Sha256::digest(seed).into();
        loop {
            if let Ok(key) = Keypair::from_bytes(alg, &digest) {
                return key;
            }
            // Astronomically unlikely (digest ≥ the curve order or zero); rehash and retry.
            digest = Sha256::digest(digest).into();
        }
    }

    /// The curve.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Keypair::K256(_) => Algorithm::K256,
            Keypair::P256(_) => Algorithm::P256,
        }
    }

    /// The 32 secret bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        match self {
            Keypair::K256(k) => k.to_bytes().into(),
            Keypair::P256(k) => k.to_bytes().into(),
        }
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Keypair::K256(k) => PublicKey::K256(*k.verifying_key()),
            Keypair::P256(k) => PublicKey::P256(*k.verifying_key()),
        }
    }

    /// Signs SHA-256(`message`) and returns the compact low-S signature.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        match self {
            Keypair::K256(k) => {
                let sig: k256::ecdsa::Signature = k.sign(message);
                sig.normalize_s().unwrap_or(sig).to_bytes().into()
            }
            Keypair::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.normalize_s().unwrap_or(sig).to_bytes().into()
            }
        }
    }
}

/// A public key on one of the two curves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicKey {
    /// secp256k1.
    K256(k256::ecdsa::VerifyingKey),
    /// P-256.
    P256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// The curve.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::K256(_) => Algorithm::K256,
            PublicKey::P256(_) => Algorithm::P256,
        }
    }

    /// A key from SEC1 bytes (compressed or not).
    pub fn from_sec1(alg: Algorithm, bytes: &[u8]) -> Result<PublicKey, CryptoError> {
        let err = |_| CryptoError::InvalidPublicKey(alg);
        Ok(match alg {
            Algorithm::K256 => {
                PublicKey::K256(k256::ecdsa::VerifyingKey::from_sec1_bytes(bytes).map_err(err)?)
            }
            Algorithm::P256 => {
                PublicKey::P256(p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes).map_err(err)?)
            }
        })
    }

    /// The 33-byte compressed SEC1 point.
    pub fn to_compressed(&self) -> Vec<u8> {
        match self {
            PublicKey::K256(k) => k.to_encoded_point(true).as_bytes().to_vec(),
            PublicKey::P256(k) => k.to_encoded_point(true).as_bytes().to_vec(),
        }
    }

    /// Verifies a compact low-S signature over SHA-256(`message`).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        if signature.len() != 64 {
            return Err(CryptoError::SignatureLength(signature.len()));
        }
        match self {
            PublicKey::K256(k) => {
                let sig = k256::ecdsa::Signature::from_slice(signature)
                    .map_err(|_| CryptoError::BadSignature)?;
                if sig.normalize_s().is_some() {
                    return Err(CryptoError::HighS);
                }
                k.verify(message, &sig)
                    .map_err(|_| CryptoError::BadSignature)
            }
            PublicKey::P256(k) => {
                let sig = p256::ecdsa::Signature::from_slice(signature)
                    .map_err(|_| CryptoError::BadSignature)?;
                if sig.normalize_s().is_some() {
                    return Err(CryptoError::HighS);
                }
                k.verify(message, &sig)
                    .map_err(|_| CryptoError::BadSignature)
            }
        }
    }
}
