//! The crypto interop vectors: signature fixtures (low-S, high-S, DER) and did:key derivations.

use crate::common::interop_json;
use arroba::crypto::{Algorithm, CryptoError, Keypair, PublicKey};
use base64::Engine;

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s.trim_end_matches('='))
        .unwrap()
}

#[test]
fn signature_fixtures_verify_exactly_when_valid() {
    let fixtures = interop_json("crypto/signature-fixtures.json");
    for f in fixtures.as_array().unwrap() {
        let key = PublicKey::from_did_key(f["publicKeyDid"].as_str().unwrap()).unwrap();
        let message = b64(f["messageBase64"].as_str().unwrap());
        let sig = b64(f["signatureBase64"].as_str().unwrap());
        let result = key.verify(&message, &sig);
        assert_eq!(
            result.is_ok(),
            f["validSignature"].as_bool().unwrap(),
            "{}",
            f["comment"]
        );
        let tags: Vec<&str> = f["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        if tags.contains(&"high-s") {
            assert_eq!(result, Err(CryptoError::HighS));
        }
        if tags.contains(&"der-encoded") {
            assert!(matches!(result, Err(CryptoError::SignatureLength(_))));
        }
    }
}

#[test]
fn k256_private_keys_derive_the_listed_did_keys() {
    for f in interop_json("crypto/w3c_didkey_K256.json")
        .as_array()
        .unwrap()
    {
        let bytes = hex::decode(f["privateKeyBytesHex"].as_str().unwrap()).unwrap();
        let key = Keypair::from_bytes(Algorithm::K256, &bytes).unwrap();
        assert_eq!(
            key.public_key().to_did_key(),
            f["publicDidKey"].as_str().unwrap()
        );
    }
}

#[test]
fn p256_private_keys_derive_the_listed_did_keys() {
    for f in interop_json("crypto/w3c_didkey_P256.json")
        .as_array()
        .unwrap()
    {
        let bytes = bs58::decode(f["privateKeyBytesBase58"].as_str().unwrap())
            .into_vec()
            .unwrap();
        let key = Keypair::from_bytes(Algorithm::P256, &bytes).unwrap();
        assert_eq!(
            key.public_key().to_did_key(),
            f["publicDidKey"].as_str().unwrap()
        );
    }
}

#[test]
fn signatures_are_always_low_s_and_verify() {
    for alg in [Algorithm::K256, Algorithm::P256] {
        let key = Keypair::from_seed(alg, b"low-s");
        for i in 0..50u32 {
            let msg = i.to_be_bytes();
            let sig = key.sign(&msg);
            assert_eq!(key.public_key().verify(&msg, &sig), Ok(()));
            assert_eq!(
                key.public_key().verify(b"other", &sig),
                Err(CryptoError::BadSignature)
            );
        }
    }
}
