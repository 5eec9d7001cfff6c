//! Envelope encryption of account keys at rest.
//!
//! Each sealed value gets a fresh random 256-bit data key; the value is encrypted with it
//! (AES-256-GCM), and the data key is encrypted ("wrapped") with a key-encryption key (KEK) from
//! configuration. Sealed bytes name the KEK that wrapped them, so KEKs rotate: the first
//! configured KEK seals, every configured KEK can open. With KMS, the KEK would be a KMS key and
//! wrapping a `GenerateDataKey` call; the format keeps the wrapped key beside the data either way.
//!
//! Format: `1 | len(kek_id) | kek_id | nonce(12) | wrapped data key(48) | nonce(12) | ciphertext`.
//! The keys themselves are configured as text ([`KeySealer::from_config`]); rotation is described
//! in `docs/deploy.md`.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;

/// Why sealing material is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The configuration string is malformed.
    #[error("invalid key-encryption keys: {0}")]
    InvalidConfig(&'static str),
    /// No configured KEK has this id.
    #[error("no key-encryption key with id {0:?} is configured")]
    UnknownKek(String),
    /// The sealed bytes are truncated or were not produced by this format.
    #[error("sealed value is malformed")]
    Malformed,
    /// Authentication failed: wrong key or tampered bytes.
    #[error("sealed value does not decrypt (wrong key or tampered)")]
    Decrypt,
}

/// Seals and opens secrets with the configured KEKs.
#[derive(Clone)]
pub struct KeySealer {
    keks: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for KeySealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keks.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("KeySealer").field("kek_ids", &ids).finish()
    }
}

impl KeySealer {
    /// Parses the configured key-encryption keys. Two forms, so that whatever a deployment can
    /// generate is accepted:
    /// - `id:base64key[,id:base64key…]` (32-byte keys, standard base64);
    /// - JSON: `{"id": "k1", "key": "…"}` or a list of such objects, each key 64 hex digits or
    ///   32 bytes of base64 (the CDK stack's Secrets Manager template generates the hex form).
    ///
    /// The first KEK seals; all of them open.
    pub fn from_config(spec: &str) -> Result<KeySealer, SealError> {
        let spec = spec.trim();
        let pairs = if spec.starts_with('{') || spec.starts_with('[') {
            json_keks(spec)?
        } else {
            let mut pairs = Vec::new();
            for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (id, key) = part
                    .split_once(':')
                    .ok_or(SealError::InvalidConfig("expected id:base64key"))?;
                let key = base64::engine::general_purpose::STANDARD
                    .decode(key)
                    .map_err(|_| SealError::InvalidConfig("KEK is not base64"))?;
                pairs.push((id.to_owned(), key));
            }
            pairs
        };
        let mut keks = Vec::new();
        for (id, key) in pairs {
            if id.is_empty() || id.len() > 64 {
                return Err(SealError::InvalidConfig("KEK id must be 1-64 characters"));
            }
            let cipher = Aes256Gcm::new_from_slice(&key)
                .map_err(|_| SealError::InvalidConfig("KEK must be 32 bytes"))?;
            keks.push((id, cipher));
        }
        if keks.is_empty() {
            return Err(SealError::InvalidConfig("no key-encryption key configured"));
        }
        Ok(KeySealer { keks })
    }

    /// A sealer with one random KEK, for tests and throwaway local runs.
    pub fn ephemeral() -> KeySealer {
        let key: [u8; 32] = rand::random();
        let spec = format!(
            "ephemeral:{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        KeySealer::from_config(&spec).expect("a random 32-byte key is a valid KEK")
    }

    /// Encrypts `plaintext` under a fresh data key wrapped by the first KEK.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let (id, kek) = &self.keks[0];
        let data_key: [u8; 32] = rand::random();
        let (wrap_nonce, data_nonce): ([u8; 12], [u8; 12]) = (rand::random(), rand::random());
        // Encrypting with AES-GCM into a Vec cannot fail for these sizes.
        let wrapped = kek
            .encrypt(&Nonce::from(wrap_nonce), data_key.as_slice())
            .expect("AES-GCM encrypt");
        let cipher = Aes256Gcm::new_from_slice(&data_key).expect("32-byte data key");
        let ciphertext = cipher
            .encrypt(&Nonce::from(data_nonce), plaintext)
            .expect("AES-GCM encrypt");
        let mut out = vec![1, id.len() as u8];
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&wrap_nonce);
        out.extend_from_slice(&wrapped);
        out.extend_from_slice(&data_nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts bytes made by [`KeySealer::seal`] with any configured KEK.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let (&version, rest) = sealed.split_first().ok_or(SealError::Malformed)?;
        let (&id_len, rest) = rest.split_first().ok_or(SealError::Malformed)?;
        if version != 1 || rest.len() < id_len as usize + 12 + 48 + 12 {
            return Err(SealError::Malformed);
        }
        let (id, rest) = rest.split_at(id_len as usize);
        let id = std::str::from_utf8(id).map_err(|_| SealError::Malformed)?;
        let (wrap_nonce, rest) = rest.split_at(12);
        let (wrapped, rest) = rest.split_at(48);
        let (data_nonce, ciphertext) = rest.split_at(12);
        let kek = &self
            .keks
            .iter()
            .find(|(k, _)| k == id)
            .ok_or_else(|| SealError::UnknownKek(id.to_owned()))?
            .1;
        let data_key = kek
            .decrypt(&nonce(wrap_nonce)?, wrapped)
            .map_err(|_| SealError::Decrypt)?;
        let cipher = Aes256Gcm::new_from_slice(&data_key).map_err(|_| SealError::Malformed)?;
        cipher
            .decrypt(&nonce(data_nonce)?, ciphertext)
            .map_err(|_| SealError::Decrypt)
    }
}

/// The JSON form: one `{"id", "key"}` object or a list of them.
fn json_keks(spec: &str) -> Result<Vec<(String, Vec<u8>)>, SealError> {
    #[derive(serde::Deserialize)]
    struct Kek {
        id: String,
        key: String,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Keks {
        One(Kek),
        Many(Vec<Kek>),
    }
    let keks = match serde_json::from_str::<Keks>(spec).map_err(|_| {
        SealError::InvalidConfig("expected {\"id\": …, \"key\": …} or a list of them")
    })? {
        Keks::One(k) => vec![k],
        Keks::Many(list) => list,
    };
    keks.into_iter()
        .map(|k| {
            let key = if k.key.len() == 64 && k.key.bytes().all(|b| b.is_ascii_hexdigit()) {
                hex::decode(&k.key).map_err(|_| SealError::InvalidConfig("KEK is not hex"))?
            } else {
                base64::engine::general_purpose::STANDARD
                    .decode(&k.key)
                    .map_err(|_| {
                        SealError::InvalidConfig("KEK is neither 64 hex digits nor base64")
                    })?
            };
            Ok((k.id, key))
        })
        .collect()
}

fn nonce(bytes: &[u8]) -> Result<Nonce<aes_gcm::aes::cipher::consts::U12>, SealError> {
    let array: [u8; 12] = bytes.try_into().map_err(|_| SealError::Malformed)?;
    Ok(Nonce::from(array))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(id: &str, byte: u8) -> String {
        format!(
            "{id}:{}",
            base64::engine::general_purpose::STANDARD.encode([byte; 32])
        )
    }

    #[test]
    fn sealed_values_open_and_rotated_keks_still_open_old_values() {
        let old = KeySealer::from_config(&kek("k1", 1)).unwrap();
        let sealed = old.seal(b"secret key bytes");
        assert!(!sealed.windows(16).any(|w| w == b"secret key bytes"));
        assert_eq!(old.open(&sealed).unwrap(), b"secret key bytes");
        let rotated =
            KeySealer::from_config(&format!("{},{}", kek("k2", 2), kek("k1", 1))).unwrap();
        assert_eq!(rotated.open(&sealed).unwrap(), b"secret key bytes");
        let resealed = rotated.seal(b"x");
        assert_eq!(old.open(&resealed), Err(SealError::UnknownKek("k2".into())));
    }

    #[test]
    fn tampering_and_bad_configs_are_errors() {
        let s = KeySealer::from_config(&kek("k", 7)).unwrap();
        let mut sealed = s.seal(b"abc");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(s.open(&sealed), Err(SealError::Decrypt));
        assert_eq!(s.open(&[1, 2, 3]), Err(SealError::Malformed));
        assert!(KeySealer::from_config("").is_err());
        assert!(KeySealer::from_config("k:short").is_err());
        assert!(KeySealer::from_config("nocolon").is_err());
        // 44 letters and digits: what a stack generating a bare password would produce.
        assert!(KeySealer::from_config(&"a1".repeat(22)).is_err());
        assert!(KeySealer::from_config(r#"{"id":"k1","key":"abcd"}"#).is_err());
        assert!(KeySealer::from_config(r#"{"id":"","key":""}"#).is_err());
    }

    #[test]
    fn the_json_forms_a_stack_generates_are_accepted_and_equal_the_classic_form() {
        let hex_key = "0f".repeat(32);
        let from_json =
            KeySealer::from_config(&format!(r#"{{"id":"k1","key":"{hex_key}"}}"#)).unwrap();
        let classic = KeySealer::from_config(&kek("k1", 0x0f)).unwrap();
        assert_eq!(classic.open(&from_json.seal(b"x")).unwrap(), b"x");
        let list = KeySealer::from_config(&format!(
            r#"[{{"id":"k2","key":"{}"}},{{"id":"k1","key":"{hex_key}"}}]"#,
            base64::engine::general_purpose::STANDARD.encode([2u8; 32])
        ))
        .unwrap();
        assert_eq!(list.open(&classic.seal(b"y")).unwrap(), b"y");
        assert_eq!(
            classic.open(&list.seal(b"z")),
            Err(SealError::UnknownKek("k2".into()))
        );
    }
}
