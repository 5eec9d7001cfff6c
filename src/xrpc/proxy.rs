//! Service proxying: calls this PDS does not answer itself go to the service that does, with a
//! service-auth token minted for the caller, as the reference PDS does (its `pipethrough`).
//!
//! The target is the service an `atproto-proxy: <did>#<service id>` header names (from that DID's
//! document, or the configured AppView when the header names it), else the method's default:
//! `tools.ozone.*` the moderation service, `com.atproto.moderation.createReport` the report
//! service, anything else the AppView. The request goes with its method, path, query and body,
//! the headers services read, and `Authorization: Bearer <token>` (iss the caller, aud the
//! service's DID, lxm the method, one minute); the answer streams back with its status and the
//! headers clients read. Account-management methods are never proxied, and chat (and
//! `createAccount`) needs a full session or a privileged app password.

use std::str::FromStr;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures::TryStreamExt;

use super::auth::{Access, Scope};
use super::config::ServiceConfig;
use super::{AppState, XrpcError};
use crate::identity::service_auth;
use crate::oauth::Permission;
use crate::syntax::{Did, Nsid};

/// Methods that manage the account itself: answered here or nowhere, never proxied or
/// service-authed (the reference PDS's list).
const PROTECTED_METHODS: &[&str] = &[
    "com.atproto.admin.sendEmail",
    "com.atproto.identity.requestPlcOperationSignature",
    "com.atproto.identity.signPlcOperation",
    "com.atproto.identity.updateHandle",
    "com.atproto.server.activateAccount",
    "com.atproto.server.confirmEmail",
    "com.atproto.server.createAppPassword",
    "com.atproto.server.deactivateAccount",
    "com.atproto.server.getAccountInviteCodes",
    "com.atproto.server.getSession",
    "com.atproto.server.listAppPasswords",
    "com.atproto.server.requestAccountDelete",
    "com.atproto.server.requestEmailConfirmation",
    "com.atproto.server.requestEmailUpdate",
    "com.atproto.server.revokeAppPassword",
    "com.atproto.server.updateEmail",
];

/// Whether `nsid` is one an access token may not be proxied or service-authed for.
pub(super) fn is_protected(nsid: &str) -> bool {
    PROTECTED_METHODS
        .iter()
        .any(|m| m.eq_ignore_ascii_case(nsid))
}

/// Whether `nsid` needs a full session or a privileged app password: direct messages, and
/// creating accounts elsewhere in the caller's name.
pub(super) fn is_privileged(nsid: &str) -> bool {
    let lower = nsid.to_ascii_lowercase();
    lower.starts_with("chat.bsky.") || lower == "com.atproto.server.createaccount"
}

/// Refuses `nsid` at `target` to a session that may not reach it through a service: account
/// management never, direct messages not with a plain app password, and for an OAuth token
/// whatever its `rpc:` scopes do not grant.
pub(super) fn check_session(access: &Access, nsid: &str, target: &Target) -> Result<(), XrpcError> {
    if is_protected(nsid) {
        return Err(XrpcError::invalid_token("Bad token method"));
    }
    if access.permissions.is_some() {
        let aud = format!("{}#{}", target.did, target.service_id);
        return access.require(Permission::Rpc {
            lxm: nsid,
            aud: &aud,
        });
    }
    if is_privileged(nsid) && access.scope == Scope::AppPassword {
        return Err(XrpcError::invalid_token("Bad token method"));
    }
    Ok(())
}

/// Where a proxied call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    /// The service's DID: the token's audience.
    pub(super) did: String,
    /// The service id in that DID's document (`bsky_appview`, `bsky_chat`, …).
    pub(super) service_id: String,
    /// The base URL.
    pub(super) url: String,
}

impl Target {
    /// Whether this is the configured AppView (whose answers read-after-write may patch).
    pub(super) fn is_app_view(&self, state: &AppState) -> bool {
        state
            .config()
            .app_view
            .as_ref()
            .is_some_and(|a| a.did == self.did && self.service_id == "bsky_appview")
    }
}

/// The service `nsid` goes to by default, with its service id and the settings that name it.
fn default_service<'a>(
    state: &'a AppState,
    nsid: &str,
) -> (&'static str, Option<&'a ServiceConfig>, &'static str) {
    let config = state.config();
    if nsid.starts_with("tools.ozone.") {
        (
            "atproto_labeler",
            config.mod_service.as_ref(),
            "PDS_MOD_SERVICE_URL and PDS_MOD_SERVICE_DID",
        )
    } else if nsid == "com.atproto.moderation.createReport" {
        (
            "atproto_labeler",
            config.report_service.as_ref(),
            "PDS_REPORT_SERVICE_URL and PDS_REPORT_SERVICE_DID",
        )
    } else {
        (
            "bsky_appview",
            config.app_view.as_ref(),
            "PDS_BSKY_APP_VIEW_URL and PDS_BSKY_APP_VIEW_DID",
        )
    }
}

/// Where a call to `nsid` with `headers` goes: the `atproto-proxy` header's service, or the
/// method's default.
pub(super) async fn target(
    state: &AppState,
    headers: &HeaderMap,
    nsid: &str,
) -> Result<Target, XrpcError> {
    let Some(header) = headers.get("atproto-proxy") else {
        let (service_id, service, settings) = default_service(state, nsid);
        let service = service.ok_or_else(|| {
            XrpcError::invalid(format!(
                "No service configured for {nsid} (set {settings}, or send an atproto-proxy header)"
            ))
        })?;
        return Ok(Target {
            did: service.did.clone(),
            service_id: service_id.to_owned(),
            url: service.url.clone(),
        });
    };
    let value = header
        .to_str()
        .map_err(|_| XrpcError::invalid("invalid proxy header format"))?;
    let (did, service_id) = parse_proxy_header(value)?;
    if let Some(app_view) = &state.config().app_view {
        if did == app_view.did && service_id == "bsky_appview" {
            return Ok(Target {
                did: did.to_owned(),
                service_id: service_id.to_owned(),
                url: app_view.url.clone(),
            });
        }
    }
    let parsed = Did::parse(did).map_err(|_| XrpcError::invalid("could not resolve proxy did"))?;
    let doc = state
        .resolver()
        .resolve_did(&parsed)
        .await
        .map_err(|_| XrpcError::invalid("could not resolve proxy did"))?;
    let url = doc
        .service_endpoint(service_id)
        .ok_or_else(|| XrpcError::invalid("could not resolve proxy did service url"))?;
    Ok(Target {
        did: did.to_owned(),
        service_id: service_id.to_owned(),
        url: url.trim_end_matches('/').to_owned(),
    })
}

/// `<did>#<service id>`, checked as the reference PDS checks it.
fn parse_proxy_header(value: &str) -> Result<(&str, &str), XrpcError> {
    let Some((did, service_id)) = value.split_once('#') else {
        return Err(XrpcError::invalid(
            "no service id specified in proxy header",
        ));
    };
    if did.is_empty() {
        return Err(XrpcError::invalid("no did specified in proxy header"));
    }
    if service_id.is_empty() {
        return Err(XrpcError::invalid(
            "no service id specified in proxy header",
        ));
    }
    if service_id.contains('#') {
        return Err(XrpcError::invalid("invalid proxy header format"));
    }
    if value.contains(' ') {
        return Err(XrpcError::invalid("proxy header cannot contain spaces"));
    }
    Ok((did, service_id))
}

/// Request headers a service may read, passed on as they came.
const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    "accept-language",
    "atproto-accept-labelers",
    "x-bsky-topics",
];

/// Body headers passed on with a procedure's body.
const FORWARDED_BODY_HEADERS: &[&str] = &["content-type", "content-encoding", "content-length"];

/// Response headers passed back to the client.
const FORWARDED_RESPONSE_HEADERS: &[&str] = &[
    "content-length",
    "content-encoding",
    "content-type",
    "content-language",
    "atproto-repo-rev",
    "atproto-content-labelers",
    "retry-after",
];

/// A proxied call: the caller, the method and where it goes.
pub(super) struct Call<'a> {
    pub(super) state: &'a AppState,
    pub(super) caller: &'a Did,
    pub(super) nsid: &'a str,
    pub(super) target: &'a Target,
}

impl Call<'_> {
    /// Sends the call and returns the service's answer if it succeeded; a 4xx or 5xx answer
    /// becomes an [`XrpcError`] with the service's status (502 for its 500s), name and message.
    pub(super) async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Option<Body>,
    ) -> Result<reqwest::Response, XrpcError> {
        let url = format!("{}{path_and_query}", self.target.url);
        let parsed = url::Url::parse(&url)
            .map_err(|_| XrpcError::invalid(format!("the service's URL is not usable: {url}")))?;
        if !self.state.resolver().allows_service_url(&parsed) {
            return Err(XrpcError::invalid(format!(
                "the service's URL is not allowed: {}",
                self.target.url
            )));
        }
        let keys = self
            .state
            .storage()
            .load_keys(self.caller)
            .await?
            .ok_or_else(|| crate::accounts::AccountError::NotFound(self.caller.clone()))?;
        let nsid = Nsid::parse(self.nsid)?;
        let token = service_auth::create(
            &keys.signing,
            self.caller,
            &self.target.did,
            Some(&nsid),
            Utc::now().timestamp(),
            60,
        );
        let mut request = self
            .state
            .http()
            .request(method, parsed)
            .bearer_auth(token)
            .header(
                header::ACCEPT_ENCODING,
                headers
                    .get(header::ACCEPT_ENCODING)
                    .cloned()
                    .unwrap_or(HeaderValue::from_static("identity")),
            );
        for (name, value) in headers {
            let forwarded = FORWARDED_REQUEST_HEADERS.contains(&name.as_str())
                || name.as_str().starts_with("x-atproto-")
                || (body.is_some() && FORWARDED_BODY_HEADERS.contains(&name.as_str()));
            if forwarded {
                request = request.header(name, value);
            }
        }
        if let Some(body) = body {
            request = request.body(reqwest::Body::wrap_stream(body.into_data_stream()));
        }
        let response = request.send().await.map_err(|e| {
            tracing::warn!(service = %self.target.url, error = %e, "upstream unreachable");
            upstream_failure("Upstream service unreachable")
        })?;
        if response.status().as_u16() >= 400 {
            return Err(upstream_error(response).await);
        }
        Ok(response)
    }
}

fn upstream_failure(message: &str) -> XrpcError {
    XrpcError::new(StatusCode::BAD_GATEWAY, "UpstreamFailure", message)
}

/// The service's error, as the client should see it.
async fn upstream_error(response: reqwest::Response) -> XrpcError {
    let status = match response.status().as_u16() {
        500 => StatusCode::BAD_GATEWAY,
        s => StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_GATEWAY),
    };
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"));
    let mut error = None;
    let mut message = None;
    if is_json {
        if let Ok(bytes) = read_limited(response, 64 * 1024).await {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                error = v["error"].as_str().map(str::to_owned);
                message = v["message"].as_str().map(str::to_owned);
            }
        }
    }
    let default = if status == StatusCode::BAD_GATEWAY {
        "UpstreamFailure"
    } else {
        "InvalidRequest"
    };
    XrpcError::new(
        status,
        error.unwrap_or_else(|| default.to_owned()),
        message.unwrap_or_else(|| format!("The service answered {}", status.as_u16())),
    )
}

/// The whole body of `response`, if it is at most `max` bytes.
pub(super) async fn read_limited(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, XrpcError> {
    if response.content_length().is_some_and(|l| l > max as u64) {
        return Err(upstream_failure("upstream response too large"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| upstream_failure("Upstream service unreachable"))?
    {
        if body.len() + chunk.len() > max {
            return Err(upstream_failure("upstream response too large"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The headers of `response` a client gets.
pub(super) fn response_headers(response: &reqwest::Response) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in FORWARDED_RESPONSE_HEADERS {
        if let Some(value) = response.headers().get(*name) {
            if let Ok(name) = HeaderName::from_str(name) {
                out.insert(name, value.clone());
            }
        }
    }
    out
}

/// The service's answer, streamed back with its status and forwarded headers.
pub(super) fn stream_back(response: reqwest::Response) -> Response {
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::OK);
    let headers = response_headers(&response);
    let body = Body::from_stream(response.bytes_stream().map_err(std::io::Error::other));
    (status, headers, body).into_response()
}

/// The router's fallback for `/xrpc/<nsid>` calls no route answers: proxied to the method's
/// service. Anything else is 404.
pub(super) async fn catch_all(State(state): State<AppState>, request: Request) -> Response {
    match proxy(&state, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn proxy(state: &AppState, request: Request) -> Result<Response, XrpcError> {
    let (mut parts, body) = request.into_parts();
    let Some(nsid) = parts.uri.path().strip_prefix("/xrpc/") else {
        return Err(XrpcError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "Not Found",
        ));
    };
    let nsid = nsid.to_owned();
    if Nsid::parse(&nsid).is_err() {
        return Err(XrpcError::invalid("invalid xrpc path"));
    }
    let method = parts.method.clone();
    if method != Method::GET && method != Method::HEAD && method != Method::POST {
        return Err(XrpcError::invalid(
            "XRPC requests only supports GET and POST",
        ));
    }
    if let Some(def) = state.lexicons().main_def(&nsid) {
        let expected = match def["type"].as_str() {
            Some("procedure") => Some(Method::POST),
            Some("query") => Some(Method::GET),
            _ => None,
        };
        if let Some(expected) = expected.filter(|e| *e != method && method != Method::HEAD) {
            return Err(XrpcError::invalid(format!(
                "Incorrect HTTP method ({method}) expected {expected}"
            )));
        }
    }
    if is_protected(&nsid) {
        return Err(XrpcError::invalid_token("Bad token method"));
    }
    let target = target(state, &parts.headers, &nsid).await?;
    let access = Access::from_request_parts(&mut parts, state).await?;
    check_session(&access, &nsid, &target)?;
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str())
        .to_owned();
    let body = (method == Method::POST).then_some(body);
    let call = Call {
        state,
        caller: &access.did,
        nsid: &nsid,
        target: &target,
    };
    let response = call
        .send(method, &path_and_query, &parts.headers, body)
        .await?;
    Ok(stream_back(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_headers_are_checked_as_the_reference_checks_them() {
        assert_eq!(
            parse_proxy_header("did:web:api.bsky.app#bsky_appview").unwrap(),
            ("did:web:api.bsky.app", "bsky_appview")
        );
        for (bad, message) in [
            ("#bsky_appview", "no did specified"),
            ("did:web:x", "no service id"),
            ("did:web:x#", "no service id"),
            ("did:web:x#a#b", "invalid proxy header format"),
            ("did:web:x y#a", "cannot contain spaces"),
        ] {
            let e = parse_proxy_header(bad).unwrap_err();
            assert!(e.to_string().contains(message), "{bad}: {e}");
        }
    }

    #[test]
    fn account_management_is_never_proxied_and_chat_needs_privilege() {
        assert!(is_protected("com.atproto.server.getSession"));
        assert!(is_protected("COM.ATPROTO.SERVER.GETSESSION"));
        assert!(!is_protected("app.bsky.feed.getTimeline"));
        assert!(is_privileged("chat.bsky.convo.listConvos"));
        assert!(is_privileged("com.atproto.server.createAccount"));
        assert!(!is_privileged("app.bsky.feed.getTimeline"));
    }
}
