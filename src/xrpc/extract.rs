//! Our request extractors: query parameters and JSON bodies whose failures are XRPC errors.
//!
//! Unknown parameters are ignored; values are parsed with the syntax newtypes, so a bad DID or
//! NSID is a 400 naming the parameter. Bodies must be `application/json`, are parsed as the
//! atproto JSON form (`$link`, `$bytes`) and size-limited per route.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;

use super::XrpcError;
use crate::cbor::{self, Value};

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

/// A JSON request body as a data-model value (must be an object).
#[derive(Debug, Clone)]
pub struct Input(pub Value);

impl Input {
    /// A required string field.
    pub fn str(&self, name: &str) -> Result<&str, XrpcError> {
        self.opt_str(name)?
            .ok_or_else(|| XrpcError::invalid(format!("Missing required field: {name}")))
    }

    /// An optional string field (null counts as absent).
    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, XrpcError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(XrpcError::invalid(format!("{name} must be a string"))),
        }
    }

    /// A required field parsed with `FromStr` (the syntax newtypes).
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<T, XrpcError> {
        let s = self.str(name)?;
        s.parse()
            .map_err(|_| XrpcError::invalid(format!("Invalid {name}: {s:?}")))
    }

    /// An optional field parsed with `FromStr`.
    pub fn opt_parse<T: FromStr>(&self, name: &str) -> Result<Option<T>, XrpcError> {
        self.opt_str(name)?
            .map(|s| {
                s.parse()
                    .map_err(|_| XrpcError::invalid(format!("Invalid {name}: {s:?}")))
            })
            .transpose()
    }

    /// An optional boolean field.
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, XrpcError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(XrpcError::invalid(format!("{name} must be a boolean"))),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for Input {
    type Rejection = XrpcError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mime = content_type.split(';').next().unwrap_or_default().trim();
        if !mime.eq_ignore_ascii_case("application/json") {
            return Err(XrpcError::invalid(format!(
                "Wrong request encoding: expected application/json, got {content_type:?}"
            )));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| XrpcError::invalid("Request body is not UTF-8"))?;
        let value = cbor::from_json_str(text)?;
        if value.as_map().is_none() {
            return Err(XrpcError::invalid("Request body must be a JSON object"));
        }
        Ok(Input(value))
    }
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
