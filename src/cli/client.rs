//! [`XrpcClient`]: the CLI's client for a PDS's XRPC methods, ours or another's — JSON queries
//! and procedures, raw bodies up and down, with a bearer token or the admin password, and
//! failures that name the method, the status and the server's error.

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

/// Why a call failed, as the server said it.
#[derive(Debug, thiserror::Error)]
#[error("{method}: {status} {error}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
pub(crate) struct XrpcFailure {
    /// The method called.
    pub(crate) method: String,
    /// The HTTP status.
    pub(crate) status: u16,
    /// The XRPC error name (`InvalidRequest`, `AccountNotFound`, …), or the status text.
    pub(crate) error: String,
    /// The server's message, if any.
    pub(crate) message: Option<String>,
}

/// How a call authenticates.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Auth<'a> {
    /// No credentials.
    None,
    /// A bearer token (a session's access token or a service-auth token).
    Bearer(&'a str),
    /// HTTP basic auth as `admin` with the admin password.
    Admin(&'a str),
}

/// A PDS's XRPC endpoint.
#[derive(Debug, Clone)]
pub(crate) struct XrpcClient {
    base: String,
    http: reqwest::Client,
}

impl XrpcClient {
    /// A client for the PDS at `url` (`https://pds.example.org`).
    pub(crate) fn new(url: &str) -> anyhow::Result<XrpcClient> {
        let parsed = url::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            anyhow::bail!("{url:?} is not an http(s) URL");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .user_agent(concat!("arroba/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(XrpcClient {
            base: url.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// The PDS's URL.
    pub(crate) fn url(&self) -> &str {
        &self.base
    }

    fn request(
        &self,
        method: reqwest::Method,
        nsid: &str,
        auth: Auth<'_>,
    ) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}/xrpc/{nsid}", self.base));
        match auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Admin(password) => request.basic_auth("admin", Some(password)),
        }
    }

    /// Sends `request` for `nsid`; the response if it succeeded, else the server's error.
    async fn send(
        &self,
        nsid: &str,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .with_context(|| format!("{nsid}: no answer from {}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Err(XrpcFailure {
            method: nsid.to_owned(),
            status: status.as_u16(),
            error: body["error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
            message: body["message"].as_str().map(str::to_owned),
        }
        .into())
    }

    /// A query (GET) with `params`; its JSON output.
    pub(crate) async fn query(
        &self,
        nsid: &str,
        auth: Auth<'_>,
        params: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        let request = self.request(reqwest::Method::GET, nsid, auth).query(params);
        let response = self.send(nsid, request).await?;
        response
            .json()
            .await
            .with_context(|| format!("{nsid}: the answer is not JSON"))
    }

    /// A query whose output is bytes (a CAR, a blob): the response, to stream from.
    pub(crate) async fn query_raw(
        &self,
        nsid: &str,
        auth: Auth<'_>,
        params: &[(&str, &str)],
    ) -> anyhow::Result<reqwest::Response> {
        let request = self.request(reqwest::Method::GET, nsid, auth).query(params);
        self.send(nsid, request).await
    }

    /// A procedure (POST) with a JSON `input` (or none); its JSON output (`Null` if it has none).
    pub(crate) async fn procedure(
        &self,
        nsid: &str,
        auth: Auth<'_>,
        input: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.request(reqwest::Method::POST, nsid, auth);
        if let Some(input) = input {
            request = request.json(input);
        }
        let response = self.send(nsid, request).await?;
        let bytes = response.bytes().await.context(nsid.to_owned())?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).with_context(|| format!("{nsid}: the answer is not JSON"))
    }

    /// A procedure whose input is bytes of type `content_type`; its JSON output.
    pub(crate) async fn procedure_raw(
        &self,
        nsid: &str,
        auth: Auth<'_>,
        content_type: &str,
        body: reqwest::Body,
    ) -> anyhow::Result<Value> {
        let request = self
            .request(reqwest::Method::POST, nsid, auth)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        let response = self.send(nsid, request).await?;
        let bytes = response.bytes().await.context(nsid.to_owned())?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).with_context(|| format!("{nsid}: the answer is not JSON"))
    }
}
