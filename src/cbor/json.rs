//! The JSON form of the data model ("DAG-JSON" as atproto uses it): `{"$link": cid}` for links,
//! `{"$bytes": base64}` for bytes, and blob objects checked for shape.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::Value;
use crate::cid::parse_cid;

/// Why a JSON document is not valid atproto data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not parseable as JSON at all.
    #[error("malformed JSON: {0}")]
    Syntax(String),
    /// A number with a fractional part, or outside the integer range.
    #[error("number {0} is not an integer (atproto has no floats)")]
    NotAnInteger(String),
    /// A `$link` object that is malformed.
    #[error("invalid $link: {0}")]
    InvalidLink(String),
    /// A `$bytes` object that is malformed.
    #[error("invalid $bytes: {0}")]
    InvalidBytes(String),
    /// A `$type` that is not a non-empty string.
    #[error("$type must be a non-empty string")]
    InvalidType,
    /// A blob object missing `ref`, `mimeType` or `size`, or with the wrong types.
    #[error("invalid blob object: {0}")]
    InvalidBlob(String),
    /// The top level is not an object where one is required.
    #[error("expected a JSON object at the top level")]
    NotAnObject,
    /// Arrays and objects nested deeper than the data model allows ([`super::MAX_DEPTH`]),
    /// which no reader would decode.
    #[error("nested more than {0} levels deep")]
    TooDeep(usize),
    /// A map key or a container larger than the data model allows, which no reader would
    /// decode.
    #[error("{0}")]
    TooLarge(String),
}

/// Standard base64 alphabet, padding optional on input, none on output.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        // Other implementations accept non-zero trailing bits (interop vector `"$bytes": "123"`).
        .with_decode_allow_trailing_bits(true),
);

/// Parses a JSON string into a data-model value.
pub fn from_json_str(s: &str) -> Result<Value, JsonError> {
    let json: serde_json::Value =
        serde_json::from_str(s).map_err(|e| JsonError::Syntax(e.to_string()))?;
    from_json(&json)
}

/// Converts parsed JSON into a data-model value, decoding `$link` and `$bytes` objects. Nesting
/// is limited as in [`super::decode`] ([`super::MAX_DEPTH`]), so whatever is accepted here can
/// be read back from storage.
pub fn from_json(json: &serde_json::Value) -> Result<Value, JsonError> {
    from_json_within(json, super::MAX_DEPTH)
}

/// Like [`from_json`], allowing nesting `max_depth` deep: a request body wraps the records it
/// carries in a few levels of its own, and the records are limited when they are read out of it.
pub fn from_json_within(json: &serde_json::Value, max_depth: usize) -> Result<Value, JsonError> {
    from_json_at(json, 0, max_depth)
}

fn from_json_at(
    json: &serde_json::Value,
    depth: usize,
    max_depth: usize,
) -> Result<Value, JsonError> {
    let container = match json {
        serde_json::Value::Array(_) => true,
        serde_json::Value::Object(obj) => !obj.contains_key("$link") && !obj.contains_key("$bytes"),
        _ => false,
    };
    if container && depth >= max_depth {
        return Err(JsonError::TooDeep(max_depth));
    }
    let len = match json {
        serde_json::Value::Array(items) => items.len(),
        serde_json::Value::Object(obj) => obj.len(),
        _ => 0,
    };
    if u64::try_from(len).unwrap_or(u64::MAX) > super::decode::MAX_CONTAINER_LEN {
        return Err(JsonError::TooLarge(format!(
            "more than {} items in one array or object",
            super::decode::MAX_CONTAINER_LEN
        )));
    }
    if let serde_json::Value::Object(obj) = json
        && let Some(key) = obj.keys().find(|k| k.len() > super::decode::MAX_KEY_LEN)
    {
        return Err(JsonError::TooLarge(format!(
            "an object key of {} bytes (at most {})",
            key.len(),
            super::decode::MAX_KEY_LEN
        )));
    }
    let from_json = |v| from_json_at(v, depth + 1, max_depth);
    Ok(match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Integer(number_to_integer(n)?),
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(items) => {
            Value::Array(items.iter().map(from_json).collect::<Result<_, _>>()?)
        }
        serde_json::Value::Object(obj) => {
            if let Some(link) = obj.get("$link") {
                let s = link
                    .as_str()
                    .ok_or_else(|| JsonError::InvalidLink("not a string".into()))?;
                if obj.len() != 1 {
                    return Err(JsonError::InvalidLink("extra keys beside $link".into()));
                }
                return parse_cid(s)
                    .map(Value::Link)
                    .map_err(|e| JsonError::InvalidLink(e.to_string()));
            }
            if let Some(bytes) = obj.get("$bytes") {
                let s = bytes
                    .as_str()
                    .ok_or_else(|| JsonError::InvalidBytes("not a string".into()))?;
                if obj.len() != 1 {
                    return Err(JsonError::InvalidBytes("extra keys beside $bytes".into()));
                }
                return BASE64
                    .decode(s)
                    .map(Value::Bytes)
                    .map_err(|e| JsonError::InvalidBytes(e.to_string()));
            }
            let mut map = BTreeMap::new();
            for (k, v) in obj {
                map.insert(k.clone(), from_json_at(v, depth + 1, max_depth)?);
            }
            let value = Value::Map(map);
            check_typed_object(&value)?;
            value
        }
    })
}

fn number_to_integer(n: &serde_json::Number) -> Result<i64, JsonError> {
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    // An integer-like float (`123.0`) is an integer in the data model (interop data-model-valid).
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_991.0 => Ok(f as i64),
        _ => Err(JsonError::NotAnInteger(n.to_string())),
    }
}

/// `$type` must be a non-empty string, and `$type: "blob"` objects must have the blob shape.
fn check_typed_object(value: &Value) -> Result<(), JsonError> {
    let Some(t) = value.get("$type") else {
        return Ok(());
    };
    match t.as_str() {
        Some("blob") => {
            if value.get("ref").and_then(Value::as_link).is_none() {
                return Err(JsonError::InvalidBlob("ref must be a $link".into()));
            }
            if value
                .get("mimeType")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(JsonError::InvalidBlob(
                    "mimeType must be a non-empty string".into(),
                ));
            }
            if value
                .get("size")
                .and_then(Value::as_integer)
                .is_none_or(|s| s < 0)
            {
                return Err(JsonError::InvalidBlob(
                    "size must be a non-negative integer".into(),
                ));
            }
            Ok(())
        }
        Some(s) if !s.is_empty() => Ok(()),
        _ => Err(JsonError::InvalidType),
    }
}

/// Converts a value to its JSON form.
pub fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Integer(i) => serde_json::Value::from(*i),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Bytes(b) => serde_json::json!({ "$bytes": BASE64.encode(b) }),
        Value::Link(c) => serde_json::json!({ "$link": c.to_string() }),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Map(m) => {
            serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

/// Converts a value to a compact JSON string.
pub fn to_json_string(value: &Value) -> String {
    to_json(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_like_floats_become_integers_and_real_floats_are_rejected() {
        assert_eq!(from_json_str("123.0"), Ok(Value::Integer(123)));
        assert!(matches!(
            from_json_str("1.5"),
            Err(JsonError::NotAnInteger(_))
        ));
    }

    #[test]
    fn bytes_round_trip_without_padding() {
        let v = from_json_str(r#"{"$bytes":"AAE="}"#).unwrap();
        assert_eq!(v, Value::Bytes(vec![0, 1]));
        assert_eq!(to_json_string(&v), r#"{"$bytes":"AAE"}"#);
    }
}
