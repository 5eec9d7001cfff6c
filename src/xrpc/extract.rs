//! Our request extractors: query parameters and JSON bodies whose failures are XRPC errors.
//!
//! Unknown parameters are ignored; values are parsed with the syntax newtypes, so a bad DID or
//! NSID is a 400 naming the parameter. Bodies ([`Body`]) must be `application/json`, are checked
//! against the method's lexicon in their atproto data-model form (`$link`, `$bytes`), then read
//! into the handler's typed input struct; their size is limited per route.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::XrpcError;
use crate::cbor::{self, Value};
use crate::lexicon::Lexicons;

/// How deep a procedure body nests the records it carries (applyWrites: body, `writes`, a write).
const BODY_WRAPPING_DEPTH: usize = 3;

/// Query parameters, repeated ones kept in order.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `name` parsed, or a 400 naming it; None if absent.
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<Option<T>, XrpcError> {
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| XrpcError::invalid(format!("Invalid parameter {name}: {v:?}")))
            })
            .transpose()
    }

    /// `name` parsed; missing is a 400.
    pub fn required<T: FromStr>(&self, name: &str) -> Result<T, XrpcError> {
        self.parse(name)?
            .ok_or_else(|| XrpcError::invalid(format!("Missing required parameter: {name}")))
    }

    /// A `limit` parameter within 1..=`max`, or `default`.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, XrpcError> {
        match self.parse::<i64>("limit")? {
            None => Ok(default),
            Some(n) if n >= 1 && n as usize <= max => Ok(n as usize),
            Some(n) => Err(XrpcError::invalid(format!(
                "limit must be between 1 and {max}, got {n}"
            ))),
        }
    }

    /// A boolean parameter (`true`/`false`).
    pub fn flag(&self, name: &str) -> Result<bool, XrpcError> {
        match self.get(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(v) => Err(XrpcError::invalid(format!(
                "Invalid parameter {name}: {v:?} is not true or false"
            ))),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        Ok(Params(
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        ))
    }
}

/// A JSON request body for the method named in the path, checked against that method's
/// lexicon input schema, then read into `T`. Every procedure with a JSON input takes one.
#[derive(Debug, Clone)]
pub struct Body<T>(pub T);

/// Like [`Body`], but an empty body (no content at all, as some clients send for methods whose
/// every input field is optional) is `None`.
#[derive(Debug, Clone)]
pub struct OptionalBody<T>(pub Option<T>);

/// The NSID in a request path (`/xrpc/<nsid>`).
fn method_of(req: &Request) -> String {
    req.uri()
        .path()
        .strip_prefix("/xrpc/")
        .unwrap_or_default()
        .to_owned()
}

async fn read_json<T: DeserializeOwned, S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<Option<T>, XrpcError> {
    let nsid = method_of(&req);
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
    if bytes.is_empty() && content_type.is_empty() {
        return Ok(None);
    }
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(XrpcError::invalid(format!(
            "Wrong request encoding: expected application/json, got {content_type:?}"
        )));
    }
    let json: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| XrpcError::invalid(format!("Request body is not valid JSON: {e}")))?;
    if !json.is_object() {
        return Err(XrpcError::invalid("Request body must be a JSON object"));
    }
    // The lexicon is checked on the data-model form, where `$link` and `$bytes` are typed. The
    // body may nest records a few levels down (applyWrites: `writes[i].value`); each record is
    // held to the data model's own limit when it is read out (`data_value`).
    let value = cbor::from_json_within(&json, cbor::MAX_DEPTH + BODY_WRAPPING_DEPTH)?;
    Lexicons::bundled().validate_method(&nsid, "input", &value)?;
    serde_json::from_value(json)
        .map(Some)
        .map_err(|e| XrpcError::invalid(format!("Invalid input: {e}")))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = XrpcError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_json(req, state)
            .await?
            .map(Body)
            .ok_or_else(|| XrpcError::invalid("A JSON request body is required"))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalBody<T> {
    type Rejection = XrpcError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_json(req, state).await.map(OptionalBody)
    }
}

/// Deserializes a field of arbitrary atproto data (a record) into a data-model value, reading
/// `$link` and `$bytes` as links and bytes.
pub fn data_value<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    let json = serde_json::Value::deserialize(d)?;
    cbor::from_json(&json).map_err(serde::de::Error::custom)
}

/// Deserializes a field whose explicit `null` means something (`swapRecord: null`: "must not
/// exist"): absent is `None`, null is `Some(None)`. Use with `#[serde(default)]`.
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Turns a body read failure into a 413 (too large) or 400 (broken, e.g. shorter than its
/// `Content-Length`).
pub fn body_error(e: axum::extract::rejection::BytesRejection) -> XrpcError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        XrpcError::too_large("Request body is too large")
    } else {
        XrpcError::invalid(format!("Could not read the request body: {e}"))
    }
}
