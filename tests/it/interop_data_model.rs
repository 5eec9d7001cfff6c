//! The data-model interop vectors: JSON ↔ CBOR ↔ CID fixtures, and valid/invalid JSON data.

use crate::common::interop_json;
use arroba::cbor::{self, JsonError};
use arroba::cid::cid_for_cbor;
use base64::Engine;

fn base64_decode(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s.trim_end_matches('='))
        .unwrap()
}

#[test]
fn fixtures_encode_to_the_exact_bytes_and_cid() {
    let fixtures = interop_json("data-model/data-model-fixtures.json");
    for fixture in fixtures.as_array().unwrap() {
        let value = cbor::from_json(&fixture["json"]).unwrap();
        let bytes = cbor::encode(&value);
        assert_eq!(
            bytes,
            base64_decode(fixture["cbor_base64"].as_str().unwrap())
        );
        assert_eq!(
            cid_for_cbor(&bytes).to_string(),
            fixture["cid"].as_str().unwrap()
        );
        let decoded = cbor::decode(&bytes).unwrap();
        assert_eq!(decoded, value);
        assert_eq!(cbor::to_json(&decoded), fixture["json"]);
    }
}

/// Top-level data must be an object (interop "top-level not an object").
fn parse_data(json: &serde_json::Value) -> Result<cbor::Value, JsonError> {
    let value = cbor::from_json(json)?;
    if value.as_map().is_none() {
        return Err(JsonError::NotAnObject);
    }
    Ok(value)
}

#[test]
fn valid_data_is_accepted_and_invalid_data_rejected() {
    for case in interop_json("data-model/data-model-valid.json")
        .as_array()
        .unwrap()
    {
        assert!(parse_data(&case["json"]).is_ok(), "{}", case["note"]);
    }
    for case in interop_json("data-model/data-model-invalid.json")
        .as_array()
        .unwrap()
    {
        assert!(parse_data(&case["json"]).is_err(), "{}", case["note"]);
    }
}
