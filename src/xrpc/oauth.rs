//! The OAuth endpoints over HTTP (the flow itself is `crate::oauth`): the two metadata
//! documents, pushed authorization requests, the sign-in and consent page, the token and
//! revocation endpoints.
//!
//! The page is plain server-rendered HTML: a form, no script, nothing loaded from elsewhere.
//! Its form carries a CSRF token that must equal the one in a cookie only this origin can set
//! (the double-submit pattern), so another site cannot post an approval in the person's name.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;

use super::error::DPOP_NONCE;
use super::limits::{Budget, Caller};
use super::{AppState, XrpcError};
use crate::accounts::AccountError;
use crate::oauth::{Answer, ClientMetadata, DpopProof, OAuthError, PushedRequest, Refusal};
use crate::syntax::Did;

const CSRF_COOKIE: &str = "arroba_oauth_csrf";
/// The browser's sign-in: which accounts signed in here with their password (the chooser).
const DEVICE_COOKIE: &str = "arroba_oauth_device";

fn now() -> i64 {
    Utc::now().timestamp()
}

/// The refusal of an OAuth endpoint, carrying the current nonce.
fn refusal(state: &AppState, e: OAuthError) -> XrpcError {
    XrpcError::oauth(e, state.oauth().nonces().current(now()))
}

/// The body of an OAuth request as name → value: form-encoded (RFC 6749), or a JSON object of
/// strings. A repeated parameter is refused (RFC 6749 §3.1).
fn params(headers: &HeaderMap, body: &[u8]) -> Result<BTreeMap<String, String>, OAuthError> {
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let mut out = BTreeMap::new();
    if json {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
            .map_err(|_| OAuthError::InvalidRequest("Body is not a JSON object".into()))?;
        for (name, value) in object {
            match value {
                serde_json::Value::String(s) => {
                    out.insert(name, s);
                }
                serde_json::Value::Null => {}
                _ => {
                    return Err(OAuthError::InvalidRequest(format!(
                        "{name} must be a string"
                    )));
                }
            }
        }
        return Ok(out);
    }
    for (name, value) in url::form_urlencoded::parse(body) {
        if out.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(OAuthError::InvalidRequest(format!("{name} is repeated")));
        }
    }
    Ok(out)
}

fn dpop_header(headers: &HeaderMap) -> Option<&str> {
    headers.get("dpop").and_then(|v| v.to_str().ok())
}

fn with_nonce(state: &AppState, mut response: Response) -> Response {
    if let Ok(nonce) = HeaderValue::from_str(&state.oauth().nonces().current(now())) {
        response.headers_mut().insert(DPOP_NONCE, nonce);
    }
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /.well-known/oauth-protected-resource`.
pub(super) async fn protected_resource(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.oauth().resource_metadata())
}

/// `GET /.well-known/oauth-authorization-server`.
pub(super) async fn authorization_server(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.oauth().metadata())
}

/// The DPoP proof a request to the endpoint at `path` came with, checked (None if it has none).
async fn endpoint_proof(
    state: &AppState,
    headers: &HeaderMap,
    path: &str,
    now: i64,
) -> Result<Option<DpopProof>, XrpcError> {
    let Some(proof) = dpop_header(headers) else {
        return Ok(None);
    };
    let oauth = state.oauth();
    let urls = [oauth.url_of(path)];
    oauth
        .check_proof(state.storage(), Some(proof), "POST", &urls, None, now)
        .await
        .map(Some)
        .map_err(|e| refusal(state, e))
}

/// `POST /oauth/par`: a client pushes its authorization request. A DPoP proof is optional here
/// (it binds the code to its key, RFC 9449 §10) and checked if sent.
pub(super) async fn par(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, XrpcError> {
    let now = now();
    let params = params(&headers, &body).map_err(|e| refusal(&state, e))?;
    let proof = endpoint_proof(&state, &headers, "/oauth/par", now).await?;
    let (request_uri, expires_in) = state
        .oauth()
        .push(
            state.storage(),
            state.resolver(),
            &params,
            proof.as_ref(),
            now,
        )
        .await
        .map_err(|e| refusal(&state, e))?;
    let body = serde_json::json!({ "request_uri": request_uri, "expires_in": expires_in });
    Ok(with_nonce(
        &state,
        (StatusCode::CREATED, Json(body)).into_response(),
    ))
}

/// `POST /oauth/token`: the `authorization_code` and `refresh_token` grants, DPoP required.
pub(super) async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, XrpcError> {
    let now = now();
    let params = params(&headers, &body).map_err(|e| refusal(&state, e))?;
    let proof = endpoint_proof(&state, &headers, "/oauth/token", now)
        .await?
        .ok_or_else(|| {
            refusal(
                &state,
                OAuthError::InvalidDpopProof("DPoP proof required".into()),
            )
        })?;
    let tokens = state
        .oauth()
        .token(state.storage(), state.resolver(), &params, &proof, now)
        .await
        .map_err(|e| refusal(&state, e))?;
    Ok(with_nonce(&state, Json(tokens).into_response()))
}

/// `POST /oauth/revoke` (RFC 7009): ends the session of the token given.
pub(super) async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, XrpcError> {
    let params = params(&headers, &body).map_err(|e| refusal(&state, e))?;
    let token = params
        .get("token")
        .ok_or_else(|| refusal(&state, OAuthError::InvalidRequest("Missing token".into())))?;
    state
        .oauth()
        .revoke(state.storage(), token)
        .await
        .map_err(|e| refusal(&state, e))?;
    Ok(with_nonce(&state, StatusCode::OK.into_response()))
}

/// The query of `GET /oauth/authorize`.
#[derive(Deserialize)]
pub(super) struct AuthorizeQuery {
    client_id: Option<String>,
    request_uri: Option<String>,
}

/// The accounts the browser is signed in with, each with the name the page shows.
async fn chooser(state: &AppState, headers: &HeaderMap) -> Vec<(Did, String)> {
    let Some(device) = cookie(headers, DEVICE_COOKIE) else {
        return Vec::new();
    };
    let dids = state
        .oauth()
        .device_accounts(state.storage(), &device, now())
        .await
        .unwrap_or_default();
    let mut accounts = Vec::with_capacity(dids.len());
    for did in dids {
        if let Ok(Some(record)) = state.storage().load_repo(&did).await {
            if record.status.is_active() {
                let name = record
                    .handle
                    .map_or_else(|| did.to_string(), |h| format!("@{h}"));
                accounts.push((did, name));
            }
        }
    }
    accounts
}

/// `GET /oauth/authorize`: the sign-in and consent page for a pushed request. Accounts already
/// signed in on this browser are offered first (unless `prompt=login`); `prompt=none` answers
/// at once, with a code only when such an account granted this client these scopes before.
pub(super) async fn authorize_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<AuthorizeQuery>,
) -> Response {
    let (Some(client_id), Some(request_uri)) = (query.client_id, query.request_uri) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "This server takes pushed authorization requests only: client_id and request_uri are required.",
        );
    };
    let oauth = state.oauth();
    let request = match oauth
        .pending(state.storage(), &client_id, &request_uri, now())
        .await
    {
        Ok(r) => r,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let mut accounts = chooser(&state, &headers).await;
    if let Some(hint) = &request.login_hint {
        // A hint names the account the app expects: offer that one only.
        let hint = hint.trim_start_matches('@');
        accounts.retain(|(did, name)| did.as_str() == hint || name.trim_start_matches('@') == hint);
    }
    match request.prompt.as_deref() {
        Some("none") => return silent_answer(&state, &request, &request_uri, &accounts).await,
        Some("login") => accounts.clear(),
        _ => {}
    }
    let client = match oauth.client(state.resolver(), &client_id).await {
        Ok(c) => c,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let csrf = cookie(&headers, CSRF_COOKIE)
        .filter(|c| c.len() >= 16)
        .unwrap_or_else(new_csrf);
    let page = Page {
        request: &request,
        request_uri: &request_uri,
        client: &client,
        csrf: &csrf,
        identifier: request.login_hint.as_deref().unwrap_or_default(),
        message: None,
        ask_code: false,
        accounts: &accounts,
    };
    page_response(&state, StatusCode::OK, &page)
}

/// `prompt=none`: a code for the one account signed in here that granted this client these
/// scopes before; otherwise `login_required`, `consent_required` or
/// `account_selection_required` back to the client.
async fn silent_answer(
    state: &AppState,
    request: &PushedRequest,
    request_uri: &str,
    accounts: &[(Did, String)],
) -> Response {
    let answer = match accounts {
        [] => Answer::Refuse(Refusal::LoginRequired),
        [(did, _)] => {
            let consented = state
                .oauth()
                .has_consent(state.storage(), did, &request.client_id, &request.scope)
                .await;
            match consented {
                Ok(true) => Answer::Grant(did),
                Ok(false) => Answer::Refuse(Refusal::ConsentRequired),
                Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        _ => Answer::Refuse(Refusal::AccountSelectionRequired),
    };
    answer_request(state, &request.client_id, request_uri, answer).await
}

/// The form the page posts.
#[derive(Deserialize)]
pub(super) struct AuthorizeForm {
    client_id: String,
    request_uri: String,
    csrf: String,
    #[serde(default)]
    decision: String,
    /// An account chosen from those signed in on this browser (no password asked).
    #[serde(default)]
    account: String,
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

/// `POST /oauth/authorize`: the person's answer. A refusal goes back to the client; an approval
/// is for an account signed in on this browser, or needs the account password (and the e-mailed
/// code when two-factor sign-in is on), after which the browser stays signed in.
pub(super) async fn authorize_submit(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    axum::Form(form): axum::Form<AuthorizeForm>,
) -> Response {
    let same_csrf = cookie(&headers, CSRF_COOKIE).is_some_and(|c| {
        bool::from(subtle::ConstantTimeEq::ct_eq(
            c.as_bytes(),
            form.csrf.as_bytes(),
        ))
    });
    if !same_csrf {
        return error_page(
            StatusCode::FORBIDDEN,
            "This form was not sent from this server's page. Go back to the app and start again.",
        );
    }
    let oauth = state.oauth();
    let request = match oauth
        .pending(state.storage(), &form.client_id, &form.request_uri, now())
        .await
    {
        Ok(r) => r,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if form.decision == "deny" {
        let refused = Answer::Refuse(Refusal::AccessDenied);
        return answer_request(&state, &form.client_id, &form.request_uri, refused).await;
    }
    let client = match oauth.client(state.resolver(), &form.client_id).await {
        Ok(c) => c,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let signed_in = chooser(&state, &headers).await;
    let again = |status, message: &str, ask_code| {
        let page = Page {
            request: &request,
            request_uri: &form.request_uri,
            client: &client,
            csrf: &form.csrf,
            identifier: &form.identifier,
            message: Some(message),
            ask_code,
            accounts: &signed_in,
        };
        page_response(&state, status, &page)
    };
    if !form.account.is_empty() {
        let chosen = signed_in.iter().find(|(did, _)| {
            did.as_str() == form.account && request.prompt.as_deref() != Some("login")
        });
        return match chosen {
            Some((did, _)) => approve(&state, &form, &request, did, None).await,
            None => again(
                StatusCode::UNAUTHORIZED,
                "That account is not signed in on this browser; sign in with its password.",
                false,
            ),
        };
    }
    if form.decision != "allow" {
        return error_page(StatusCode::BAD_REQUEST, "Choose Allow or Deny.");
    }
    let key = format!(
        "{}-{}",
        form.identifier.trim().to_lowercase(),
        caller.ip_key()
    );
    if let Err(e) = state
        .limits()
        .spend(&caller, Budget::CreateSession, &key, 1)
        .await
    {
        return again(e.status(), "Too many attempts; wait a few minutes.", false);
    }
    let accounts = state.accounts();
    let login = match accounts.login(&form.identifier, &form.password).await {
        Ok(login) if login.app_password.is_some() => {
            return again(
                StatusCode::UNAUTHORIZED,
                "Use your account password here, not an app password.",
                false,
            );
        }
        Ok(login) => login,
        Err(AccountError::WrongCredentials) => {
            return again(StatusCode::UNAUTHORIZED, "Wrong handle or password.", false);
        }
        Err(e) => return again(StatusCode::FORBIDDEN, &e.to_string(), false),
    };
    let did = login.record.did.clone();
    if !login.record.status.is_active() {
        return again(
            StatusCode::FORBIDDEN,
            "This account is not active; reactivate it before signing in to apps.",
            false,
        );
    }
    if let Err(e) = super::email::check_second_factor(&state, &login, Some(&form.code)).await {
        let message = if e.name() == "AuthFactorTokenRequired" {
            "A sign-in code was sent to your e-mail address. Enter it with your password."
        } else if form.code.trim().is_empty() {
            "Two-factor sign-in is on, but no code could be e-mailed."
        } else {
            "That code is wrong or has expired."
        };
        return again(StatusCode::UNAUTHORIZED, message, true);
    }
    let device = match oauth
        .remember_sign_in(
            state.storage(),
            cookie(&headers, DEVICE_COOKIE).as_deref(),
            &did,
            now(),
        )
        .await
    {
        Ok(device) => device,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    approve(&state, &form, &request, &did, Some(&device)).await
}

/// Grants the request to `did`, remembers the grant (for `prompt=none` later) and sends the
/// browser back; with `device`, the browser's sign-in cookie is (re)set on the way.
async fn approve(
    state: &AppState,
    form: &AuthorizeForm,
    request: &PushedRequest,
    did: &Did,
    device: Option<&str>,
) -> Response {
    let recorded = state
        .oauth()
        .record_consent(state.storage(), did, &request.client_id, &request.scope)
        .await;
    if let Err(e) = recorded {
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
    }
    let granted = Answer::Grant(did);
    let mut response = answer_request(state, &form.client_id, &form.request_uri, granted).await;
    if let Some(device) = device {
        let cookie = format!(
            "{DEVICE_COOKIE}={device}; Path=/oauth; HttpOnly; SameSite=Lax; Max-Age={}{}",
            crate::oauth::flow::DEVICE_TTL_SECS,
            secure_attribute(state)
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

/// Ends the request with `answer` and sends the browser back to the client.
async fn answer_request(
    state: &AppState,
    client_id: &str,
    request_uri: &str,
    answer: Answer<'_>,
) -> Response {
    match state
        .oauth()
        .answer(state.storage(), client_id, request_uri, answer, now())
        .await
    {
        Ok(url) => see_other(&url),
        Err(e) => error_page(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// `; Secure` when the server is reached over HTTPS (browsers refuse such cookies over HTTP).
fn secure_attribute(state: &AppState) -> &'static str {
    if state.config().public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

fn see_other(url: &str) -> Response {
    match HeaderValue::from_str(url) {
        Ok(location) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            response.headers_mut().insert(LOCATION, location);
            response
        }
        Err(_) => error_page(
            StatusCode::BAD_REQUEST,
            "The client's redirect URI is unusable.",
        ),
    }
}

fn new_csrf() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Escapes text for HTML content and quoted attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What a scope lets the app do, in the words the consent page uses.
fn scope_description(scope: &str) -> &'static str {
    match scope {
        "atproto" => "Know which account you are (your DID and handle).",
        "transition:generic" => {
            "Read and write your posts, likes, follows and other records, upload media, and use \
             Bluesky services in your name, as an app password can."
        }
        "transition:chat.bsky" => "Read and send your direct messages.",
        _ => "A permission this server does not describe.",
    }
}

struct Page<'a> {
    request: &'a PushedRequest,
    request_uri: &'a str,
    client: &'a ClientMetadata,
    csrf: &'a str,
    identifier: &'a str,
    message: Option<&'a str>,
    ask_code: bool,
    /// Accounts signed in on this browser, offered without a password.
    accounts: &'a [(Did, String)],
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;\
padding:0 1rem;line-height:1.5;color:#111;background:#fff}label{display:block;margin-top:.8rem}\
input{display:block;width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}\
.buttons{display:flex;gap:.5rem;margin-top:1.2rem}.accounts{display:grid;gap:.5rem}\
h2{font-size:1.1rem;margin-top:1.4rem}button{flex:1;padding:.6rem;font-size:1rem}\
[role=alert]{border:2px solid #b00;padding:.5rem;color:#700}code{word-break:break-all}";

fn page_response(state: &AppState, status: StatusCode, page: &Page<'_>) -> Response {
    let client_name = page
        .client
        .client_name
        .as_deref()
        .unwrap_or(&page.client.client_id);
    let scopes: String = page
        .request
        .scope
        .split(' ')
        .map(|s| {
            format!(
                "<li><strong>{}</strong>: {}</li>",
                escape(s),
                escape(scope_description(s))
            )
        })
        .collect();
    let message = page
        .message
        .map(|m| format!(r#"<p role="alert" id="message">{}</p>"#, escape(m)))
        .unwrap_or_default();
    let chooser = if page.accounts.is_empty() {
        String::new()
    } else {
        let buttons: String = page
            .accounts
            .iter()
            .map(|(did, name)| {
                format!(
                    r#"<button type="submit" name="account" value="{}" formnovalidate>Continue as {}</button>"#,
                    escape(did.as_str()),
                    escape(name)
                )
            })
            .collect();
        format!(
            r#"<section aria-labelledby="signed-in"><h2 id="signed-in">Signed in on this browser</h2>
<div class="accounts">{buttons}</div></section>
<h2>Or sign in with a password</h2>"#
        )
    };
    let code_field = if page.ask_code {
        r#"<label for="code">Code from the e-mail</label>
<input id="code" name="code" autocomplete="one-time-code" required>"#
    } else {
        ""
    };
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in to {host}</title><style>{STYLE}</style></head>
<body><main>
<h1>Sign in to {host}</h1>
<p><strong>{client_name}</strong> (<code>{client_id}</code>) asks to:</p>
<ul id="scopes">{scopes}</ul>
{message}
<form method="post" action="/oauth/authorize">
<input type="hidden" name="client_id" value="{client_id}">
<input type="hidden" name="request_uri" value="{request_uri}">
<input type="hidden" name="csrf" value="{csrf}">
{chooser}
<label for="identifier">Handle or e-mail</label>
<input id="identifier" name="identifier" value="{identifier}" autocomplete="username" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
{code_field}
<div class="buttons">
<button type="submit" name="decision" value="allow" id="allow">Allow</button>
<button type="submit" name="decision" value="deny" id="deny" formnovalidate>Deny</button>
</div>
</form>
<p>You will be sent back to <code>{redirect}</code>.</p>
</main></body></html>"#,
        host = escape(&state.config().hostname),
        client_name = escape(client_name),
        client_id = escape(&page.client.client_id),
        request_uri = escape(page.request_uri),
        csrf = escape(page.csrf),
        identifier = escape(page.identifier),
        redirect = escape(&page.request.redirect_uri),
    );
    let mut response = (status, Html(html)).into_response();
    let cookie = format!(
        "{CSRF_COOKIE}={}; Path=/oauth; HttpOnly; SameSite=Lax{}",
        page.csrf,
        secure_attribute(state)
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    page_headers(response)
}

fn error_page(status: StatusCode, message: &str) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign-in failed</title><style>{STYLE}</style></head>
<body><main><h1>Sign-in failed</h1><p role="alert" id="message">{}</p></main></body></html>"#,
        escape(message)
    );
    page_headers((status, Html(html)).into_response())
}

/// Headers of every page: never cached, never framed (clickjacking), nothing loaded from
/// elsewhere, no referrer leaking the request URI.
fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_with_a_repeated_parameter_are_refused() {
        let headers = HeaderMap::new();
        let ok = params(&headers, b"a=1&b=x%20y").unwrap();
        assert_eq!(ok.get("b").map(String::as_str), Some("x y"));
        assert!(params(&headers, b"a=1&a=2").is_err());
    }

    #[test]
    fn json_bodies_take_strings_only() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert_eq!(params(&headers, br#"{"a":"1"}"#).unwrap()["a"], "1");
        assert!(params(&headers, br#"{"a":1}"#).is_err());
        assert!(params(&headers, b"[]").is_err());
    }

    #[test]
    fn markup_in_client_supplied_text_is_escaped() {
        assert_eq!(
            escape(r#"<script>"x"&'y'</script>"#),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
    }
}
