//! Validating data-model values against lexicon definitions.

use serde_json::Value as Json;
use unicode_segmentation::UnicodeSegmentation;

use super::Lexicons;
use crate::cbor::Value;
use crate::syntax::{
    AtIdentifier, AtUri, Did, Handle, Nsid, RecordKey, is_valid_cid, is_valid_datetime,
    is_valid_language, is_valid_uri,
};
use crate::tid::Tid;

/// Where and why a value does not match its lexicon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct LexiconError {
    /// The field, e.g. `record/embed/images/0/alt`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// The outcome of validating a record, as `validationStatus` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Checked against a known lexicon.
    Valid,
    /// No lexicon is known for the collection, so it was not checked.
    Unknown,
}

impl Validation {
    /// The `validationStatus` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Validation::Valid => "valid",
            Validation::Unknown => "unknown",
        }
    }
}

fn fail(path: &str, message: impl Into<String>) -> LexiconError {
    LexiconError {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn int(def: &Json, key: &str) -> Option<i64> {
    def.get(key).and_then(Json::as_i64)
}

impl Lexicons {
    /// Validates `record` for `collection`. `require`: `Some(true)` fails on an unknown
    /// collection, `Some(false)` skips lexicon validation, `None` validates only if known.
    pub fn validate_record(
        &self,
        collection: &Nsid,
        record: &Value,
        require: Option<bool>,
    ) -> Result<Validation, LexiconError> {
        if require == Some(false) {
            return Ok(Validation::Unknown);
        }
        let Some(def) = self.main_def(collection.as_str()) else {
            return match require {
                Some(true) => Err(fail("record", format!("lexicon not found: {collection}"))),
                _ => Ok(Validation::Unknown),
            };
        };
        if def.get("type").and_then(Json::as_str) != Some("record") {
            return Err(fail("record", format!("{collection} is not a record type")));
        }
        let schema = def
            .get("record")
            .ok_or_else(|| fail("record", "lexicon has no record schema"))?;
        self.check(schema, collection.as_str(), record, "record")?;
        Ok(Validation::Valid)
    }

    /// Validates a method's `input` or `output` body, or its `parameters`, against `nsid`'s
    /// schema. Parts the method does not declare as JSON objects pass.
    pub fn validate_method(
        &self,
        nsid: &str,
        part: &str,
        value: &Value,
    ) -> Result<(), LexiconError> {
        let Some(def) = self.main_def(nsid) else {
            return Ok(());
        };
        let schema = match part {
            "parameters" => def.get("parameters"),
            _ => def.get(part).and_then(|p| p.get("schema")),
        };
        match schema {
            Some(schema) => self.check(schema, nsid, value, part),
            None => Ok(()),
        }
    }

    fn check(&self, def: &Json, base: &str, value: &Value, path: &str) -> Result<(), LexiconError> {
        let kind = def.get("type").and_then(Json::as_str).unwrap_or_default();
        match kind {
            "null" => matches!(value, Value::Null)
                .then_some(())
                .ok_or_else(|| fail(path, "must be null")),
            "boolean" => {
                let Value::Bool(b) = value else {
                    return Err(fail(path, "must be a boolean"));
                };
                match def.get("const").and_then(Json::as_bool) {
                    Some(c) if c != *b => Err(fail(path, format!("must be {c}"))),
                    _ => Ok(()),
                }
            }
            "integer" => self.check_integer(def, value, path),
            "string" => self.check_string(def, value, path),
            "bytes" => {
                let Value::Bytes(b) = value else {
                    return Err(fail(path, "must be bytes"));
                };
                check_len(def, b.len(), path, "bytes")
            }
            "cid-link" => matches!(value, Value::Link(_))
                .then_some(())
                .ok_or_else(|| fail(path, "must be a CID link")),
            "blob" => check_blob(def, value, path),
            "array" => {
                let Value::Array(items) = value else {
                    return Err(fail(path, "must be an array"));
                };
                check_len(def, items.len(), path, "items")?;
                if let Some(item_def) = def.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item_def, base, item, &format!("{path}/{i}"))?;
                    }
                }
                Ok(())
            }
            "object" | "params" => self.check_object(def, base, value, path),
            "ref" => {
                let reference = def.get("ref").and_then(Json::as_str).unwrap_or_default();
                let (target, nsid) = self
                    .resolve(reference, base)
                    .ok_or_else(|| fail(path, format!("unknown ref {reference}")))?;
                if target.get("type").and_then(Json::as_str) == Some("token") {
                    let full = full_ref(reference, base);
                    return match value.as_str() {
                        Some(s) if s == full => Ok(()),
                        _ => Err(fail(path, format!("must be the token {full}"))),
                    };
                }
                self.check(target, &nsid, value, path)
            }
            "union" => self.check_union(def, base, value, path),
            "unknown" => match value {
                Value::Map(m) if m.get("$type").and_then(Value::as_str) != Some("blob") => Ok(()),
                _ => Err(fail(path, "must be an object")),
            },
            "token" => value
                .as_str()
                .map(|_| ())
                .ok_or_else(|| fail(path, "must be a token string")),
            "record" => match def.get("record") {
                Some(schema) => self.check(schema, base, value, path),
                None => Ok(()),
            },
            other => Err(fail(path, format!("unsupported lexicon type {other:?}"))),
        }
    }

    fn check_integer(&self, def: &Json, value: &Value, path: &str) -> Result<(), LexiconError> {
        let Value::Integer(i) = *value else {
            return Err(fail(path, "must be an integer"));
        };
        if let Some(c) = int(def, "const") {
            if c != i {
                return Err(fail(path, format!("must be {c}")));
            }
        }
        if let Some(values) = def.get("enum").and_then(Json::as_array) {
            if !values.iter().any(|v| v.as_i64() == Some(i)) {
                return Err(fail(path, "must be one of the enumerated values"));
            }
        }
        if int(def, "minimum").is_some_and(|m| i < m) || int(def, "maximum").is_some_and(|m| i > m)
        {
            return Err(fail(path, "is out of range"));
        }
        Ok(())
    }

    fn check_string(&self, def: &Json, value: &Value, path: &str) -> Result<(), LexiconError> {
        let Value::String(s) = value else {
            return Err(fail(path, "must be a string"));
        };
        if let Some(c) = def.get("const").and_then(Json::as_str) {
            if c != s {
                return Err(fail(path, format!("must be {c:?}")));
            }
        }
        if let Some(values) = def.get("enum").and_then(Json::as_array) {
            if !values.iter().any(|v| v.as_str() == Some(s)) {
                return Err(fail(path, "must be one of the enumerated values"));
            }
        }
        if int(def, "minLength").is_some_and(|m| (s.len() as i64) < m) {
            return Err(fail(path, "is too short"));
        }
        if int(def, "maxLength").is_some_and(|m| (s.len() as i64) > m) {
            return Err(fail(path, "is too long"));
        }
        if def.get("minGraphemes").is_some() || def.get("maxGraphemes").is_some() {
            let graphemes = s.graphemes(true).count() as i64;
            if int(def, "minGraphemes").is_some_and(|m| graphemes < m) {
                return Err(fail(path, "has too few characters"));
            }
            if int(def, "maxGraphemes").is_some_and(|m| graphemes > m) {
                return Err(fail(path, "has too many characters"));
            }
        }
        let ok = match def.get("format").and_then(Json::as_str) {
            None => true,
            Some("did") => Did::parse(s).is_ok(),
            Some("handle") => Handle::parse(s).is_ok(),
            Some("at-identifier") => AtIdentifier::parse(s).is_ok(),
            Some("nsid") => Nsid::parse(s).is_ok(),
            Some("at-uri") => AtUri::parse(s).is_ok(),
            Some("cid") => is_valid_cid(s),
            Some("datetime") => is_valid_datetime(s),
            Some("language") => is_valid_language(s),
            Some("record-key") => RecordKey::parse(s).is_ok(),
            Some("tid") => Tid::parse(s).is_ok(),
            Some("uri") => is_valid_uri(s),
            Some(_) => true,
        };
        if !ok {
            let format = def.get("format").and_then(Json::as_str).unwrap_or_default();
            return Err(fail(path, format!("must be a valid {format}")));
        }
        Ok(())
    }

    fn check_object(
        &self,
        def: &Json,
        base: &str,
        value: &Value,
        path: &str,
    ) -> Result<(), LexiconError> {
        let Value::Map(map) = value else {
            return Err(fail(path, "must be an object"));
        };
        let names = |key: &str| -> Vec<&str> {
            def.get(key)
                .and_then(Json::as_array)
                .map(|a| a.iter().filter_map(Json::as_str).collect())
                .unwrap_or_default()
        };
        let nullable = names("nullable");
        for required in names("required") {
            match map.get(required) {
                None => return Err(fail(path, format!("must have the property {required:?}"))),
                Some(Value::Null) if !nullable.contains(&required) => {
                    return Err(fail(&format!("{path}/{required}"), "must not be null"));
                }
                _ => {}
            }
        }
        if let Some(properties) = def.get("properties").and_then(Json::as_object) {
            for (name, prop) in properties {
                match map.get(name) {
                    None => {}
                    Some(Value::Null) if nullable.contains(&name.as_str()) => {}
                    Some(v) => self.check(prop, base, v, &format!("{path}/{name}"))?,
                }
            }
        }
        Ok(())
    }

    fn check_union(
        &self,
        def: &Json,
        base: &str,
        value: &Value,
        path: &str,
    ) -> Result<(), LexiconError> {
        let Value::Map(map) = value else {
            return Err(fail(path, "must be an object"));
        };
        let Some(t) = map.get("$type").and_then(Value::as_str) else {
            return Err(fail(path, "must have a $type"));
        };
        let refs: Vec<String> = def
            .get("refs")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Json::as_str)
                    .map(|r| full_ref(r, base))
                    .collect()
            })
            .unwrap_or_default();
        let normalized = t.strip_suffix("#main").unwrap_or(t);
        if let Some(reference) = refs.iter().find(|r| r.as_str() == normalized) {
            let (target, nsid) = self
                .resolve(reference, base)
                .ok_or_else(|| fail(path, format!("unknown ref {reference}")))?;
            return self.check(target, &nsid, value, path);
        }
        if def.get("closed").and_then(Json::as_bool) == Some(true) {
            return Err(fail(
                path,
                format!("$type {t} is not one of the allowed types"),
            ));
        }
        Ok(())
    }
}

/// `#name` made absolute against `base`; `nsid#main` shortened to `nsid`.
fn full_ref(reference: &str, base: &str) -> String {
    let full = if reference.starts_with('#') {
        format!("{base}{reference}")
    } else {
        reference.to_owned()
    };
    full.strip_suffix("#main")
        .map(str::to_owned)
        .unwrap_or(full)
}

fn check_len(def: &Json, len: usize, path: &str, unit: &str) -> Result<(), LexiconError> {
    if int(def, "minLength").is_some_and(|m| (len as i64) < m) {
        return Err(fail(path, format!("has too few {unit}")));
    }
    if int(def, "maxLength").is_some_and(|m| (len as i64) > m) {
        return Err(fail(path, format!("has too many {unit}")));
    }
    Ok(())
}

/// A blob object (or the legacy `{cid, mimeType}` form), its MIME type against `accept`
/// (`*/*` and `type/*` allowed) and its size against `maxSize`.
fn check_blob(def: &Json, value: &Value, path: &str) -> Result<(), LexiconError> {
    let Value::Map(m) = value else {
        return Err(fail(path, "must be a blob"));
    };
    let mime = m
        .get("mimeType")
        .and_then(Value::as_str)
        .ok_or_else(|| fail(path, "blob needs a mimeType string"))?;
    let size = if m.get("$type").and_then(Value::as_str) == Some("blob") {
        if m.get("ref").and_then(Value::as_link).is_none() {
            return Err(fail(path, "blob ref must be a CID link"));
        }
        Some(
            m.get("size")
                .and_then(Value::as_integer)
                .ok_or_else(|| fail(path, "blob size must be an integer"))?,
        )
    } else if m.get("cid").and_then(Value::as_str).is_some() {
        None
    } else {
        return Err(fail(path, "must be a blob"));
    };
    if let Some(accept) = def.get("accept").and_then(Json::as_array) {
        let ok = accept.iter().filter_map(Json::as_str).any(|a| {
            a == "*/*"
                || a == mime
                || a.strip_suffix("/*")
                    .is_some_and(|prefix| mime.split('/').next() == Some(prefix))
        });
        if !ok {
            return Err(fail(path, format!("blob type {mime} is not accepted")));
        }
    }
    if let (Some(max), Some(size)) = (int(def, "maxSize"), size) {
        if size > max {
            return Err(fail(path, "blob is too large"));
        }
    }
    Ok(())
}
