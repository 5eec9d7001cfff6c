//! The `app.bsky.*` methods the PDS answers itself: preferences, stored per account, and the
//! read-after-write views.
//!
//! **Preferences** (`getPreferences`, `putPreferences`) are the account's, kept in the key-value
//! store: only `app.bsky` types, `personalDetailsPref` only with a full session, the read-only
//! `declaredAgePref` derived from a birth date, as the reference PDS keeps them. A call with an
//! `atproto-proxy` header naming another AppView goes there instead.
//!
//! **Read-after-write.** The AppView indexes a write a moment after the PDS commits it. For the
//! views a person checks right after writing (their profile, their feed and likes, their
//! timeline, a thread they replied in), when the AppView's `Atproto-Repo-Rev` says it has not
//! seen the caller's latest commits, the caller's newer profile and posts (at most ten records,
//! from the event log) are patched into its answer, with `Atproto-Upstream-Lag` saying by how
//! much it lagged. Embedded posts (quotes) are not built locally; they appear once the AppView
//! catches up.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Access, Scope};
use super::extract::Body;
use super::proxy::{self, Call, Target};
use super::{AppState, XrpcError};
use crate::cid::Cid;
use crate::oauth::Permission;
use crate::repo::WriteAction;
use crate::storage::{Accounts, load_repo_state, with_blocks, writes_since};
use crate::syntax::{Did, Nsid, RecordKey, format_datetime};
use crate::tid::Tid;

/// The preference only a full session may read or write.
const PERSONAL_DETAILS: &str = "app.bsky.actor.defs#personalDetailsPref";
/// The preference derived from a birth date, never stored.
const DECLARED_AGE: &str = "app.bsky.actor.defs#declaredAgePref";
/// Largest AppView answer read-after-write will patch (the reference PDS's 10 MB).
const MAX_PATCHED_RESPONSE: usize = 10 * 1024 * 1024;
/// Most local records patched into one answer (the reference PDS's limit).
const MAX_LOCAL_RECORDS: usize = 10;

/// The request's parts, its caller and the NSID it names.
struct Incoming {
    parts: axum::http::request::Parts,
    body: axum::body::Body,
    access: Access,
    nsid: String,
}

async fn incoming(state: &AppState, request: Request) -> Result<Incoming, XrpcError> {
    let (mut parts, body) = request.into_parts();
    let access = Access::from_request_parts(&mut parts, state).await?;
    let nsid = parts
        .uri
        .path()
        .strip_prefix("/xrpc/")
        .unwrap_or_default()
        .to_owned();
    Ok(Incoming {
        parts,
        body,
        access,
        nsid,
    })
}

impl Incoming {
    fn path_and_query(&self) -> String {
        self.parts
            .uri
            .path_and_query()
            .map_or(self.parts.uri.path(), |p| p.as_str())
            .to_owned()
    }

    /// Forwards the call to `target` and streams its answer back.
    async fn forward(self, state: &AppState, target: &Target) -> Result<Response, XrpcError> {
        proxy::check_session(&self.access, &self.nsid, target)?;
        let path = self.path_and_query();
        let call = Call {
            state,
            caller: &self.access.did,
            nsid: &self.nsid,
            target,
        };
        let body = (self.parts.method == Method::POST).then_some(self.body);
        let response = call
            .send(self.parts.method.clone(), &path, &self.parts.headers, body)
            .await?;
        Ok(proxy::stream_back(response))
    }
}

/// The service an `atproto-proxy` header names, unless it is the configured AppView (or there
/// is no header): then the PDS answers.
async fn elsewhere(
    state: &AppState,
    headers: &HeaderMap,
    nsid: &str,
) -> Result<Option<Target>, XrpcError> {
    if !headers.contains_key("atproto-proxy") {
        return Ok(None);
    }
    let target = proxy::target(state, headers, nsid).await?;
    Ok((!target.is_app_view(state)).then_some(target))
}

/// An OAuth token reads and writes preferences here as the call to the AppView it stands in
/// for: its `rpc:` scopes must grant that.
fn check_local(state: &AppState, access: &Access, nsid: &str) -> Result<(), XrpcError> {
    let config = state.config();
    let app_view = config
        .app_view
        .as_ref()
        .map_or(config.service_did.as_str(), |a| a.did.as_str());
    let aud = format!("{app_view}#bsky_appview");
    access.require(Permission::Rpc {
        lxm: nsid,
        aud: &aud,
    })
}

fn answer(result: Result<Response, XrpcError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

fn in_namespace(kind: &str) -> bool {
    kind.starts_with("app.bsky.")
}

fn allowed(kind: &str, scope: Scope) -> bool {
    kind != PERSONAL_DETAILS || scope == Scope::Full
}

fn kind_of(pref: &Value) -> &str {
    pref["$type"].as_str().unwrap_or_default()
}

/// `app.bsky.actor.getPreferences`.
pub(super) async fn get_preferences(State(state): State<AppState>, request: Request) -> Response {
    answer(preferences(&state, request).await)
}

async fn preferences(state: &AppState, request: Request) -> Result<Response, XrpcError> {
    let incoming = incoming(state, request).await?;
    if let Some(target) = elsewhere(state, &incoming.parts.headers, &incoming.nsid).await? {
        return incoming.forward(state, &target).await;
    }
    check_local(state, &incoming.access, &incoming.nsid)?;
    let scope = incoming.access.scope;
    let stored = Accounts(state.storage())
        .get_preferences(&incoming.access.did)
        .await?;
    let mut out: Vec<Value> = stored
        .into_iter()
        .filter(|p| in_namespace(kind_of(p)))
        .collect();
    let birth_date = out
        .iter()
        .find(|p| kind_of(p) == PERSONAL_DETAILS)
        .and_then(|p| p["birthDate"].as_str())
        .and_then(|d| DateTime::parse_from_rfc3339(d).ok());
    if let Some(birth) = birth_date {
        let age = age_on(birth.with_timezone(&Utc), Utc::now());
        out.push(json!({
            "$type": DECLARED_AGE,
            "isOverAge13": age >= 13, "isOverAge16": age >= 16, "isOverAge18": age >= 18,
        }));
    }
    out.retain(|p| allowed(kind_of(p), scope));
    Ok(Json(json!({ "preferences": out })).into_response())
}

/// Whole years from `birth` to `today`.
fn age_on(birth: DateTime<Utc>, today: DateTime<Utc>) -> i32 {
    use chrono::Datelike;
    let mut age = today.year() - birth.year();
    if (today.month(), today.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

/// The `putPreferences` input.
#[derive(Deserialize)]
pub(super) struct PutPreferencesInput {
    preferences: Vec<Value>,
}

/// `app.bsky.actor.putPreferences`: replaces the account's `app.bsky` preferences (those this
/// session may write; the others stay).
pub(super) async fn put_preferences(State(state): State<AppState>, request: Request) -> Response {
    answer(store_preferences(&state, request).await)
}

async fn store_preferences(state: &AppState, request: Request) -> Result<Response, XrpcError> {
    let incoming = incoming(state, request).await?;
    if let Some(target) = elsewhere(state, &incoming.parts.headers, &incoming.nsid).await? {
        return incoming.forward(state, &target).await;
    }
    check_local(state, &incoming.access, &incoming.nsid)?;
    let Incoming {
        parts,
        body,
        access,
        ..
    } = incoming;
    let request = Request::from_parts(parts, body);
    let Body(input) = Body::<PutPreferencesInput>::from_request(request, state).await?;
    let mut kinds = Vec::new();
    for pref in &input.preferences {
        match pref["$type"].as_str() {
            Some(kind) => kinds.push(kind),
            None => return Err(XrpcError::invalid("Preference is missing a $type")),
        }
    }
    if !kinds.iter().all(|k| in_namespace(k)) {
        return Err(XrpcError::invalid(
            "Some preferences are not in the app.bsky namespace",
        ));
    }
    let forbidden: Vec<&str> = kinds
        .iter()
        .copied()
        .filter(|k| !allowed(k, access.scope))
        .collect();
    if !forbidden.is_empty() {
        return Err(XrpcError::invalid(format!(
            "Do not have authorization to set preferences: {}",
            forbidden.join(", ")
        )));
    }
    let new: Vec<Value> = input
        .preferences
        .into_iter()
        .filter(|p| kind_of(p) != DECLARED_AGE)
        .collect();
    Accounts(state.storage())
        .update_preferences(&access.did, |current| {
            let mut kept: Vec<Value> = current
                .into_iter()
                .filter(|p| !(in_namespace(kind_of(p)) && allowed(kind_of(p), access.scope)))
                .collect();
            kept.extend(new.iter().cloned());
            Ok::<_, XrpcError>(kept)
        })
        .await?;
    Ok(StatusCode::OK.into_response())
}

/// A record of the caller's written after the AppView's rev.
#[derive(Debug, Clone)]
struct LocalRecord {
    uri: String,
    cid: Cid,
    indexed_at: String,
    record: Value,
}

/// The caller's profile and posts the AppView has not seen yet.
#[derive(Debug, Default)]
struct LocalRecords {
    profile: Option<LocalRecord>,
    posts: Vec<LocalRecord>,
    /// When the oldest of them was written.
    oldest: Option<DateTime<Utc>>,
}

impl LocalRecords {
    fn is_empty(&self) -> bool {
        self.profile.is_none() && self.posts.is_empty()
    }
}

/// The caller's profile and posts written after `rev`, from the event log.
async fn records_since(state: &AppState, did: &Did, rev: Tid) -> Result<LocalRecords, XrpcError> {
    let mut out = LocalRecords::default();
    let Some(repo) = state.storage().load_repo(did).await? else {
        return Ok(out);
    };
    if repo.rev <= rev {
        return Ok(out);
    }
    let ops = writes_since(state.storage(), did, rev, MAX_LOCAL_RECORDS).await?;
    // The last write to each path wins; a deleted record is simply not there.
    let mut latest: BTreeMap<String, (Tid, Option<Cid>)> = BTreeMap::new();
    for (op_rev, op) in ops {
        let wanted =
            op.path == "app.bsky.actor.profile/self" || op.path.starts_with("app.bsky.feed.post/");
        if wanted {
            let cid = (op.action != WriteAction::Delete)
                .then_some(op.cid)
                .flatten();
            latest.insert(op.path, (op_rev, cid));
        }
    }
    let mut found: Vec<(String, Tid, Cid)> = latest
        .into_iter()
        .filter_map(|(path, (rev, cid))| cid.map(|c| (path, rev, c)))
        .collect();
    found.sort_by_key(|(_, rev, _)| *rev);
    found.truncate(MAX_LOCAL_RECORDS);
    let cids: Vec<Cid> = found.iter().map(|(_, _, c)| *c).collect();
    let blocks = state.storage().read_blocks(&cids).await?;
    for (path, rev, cid) in found {
        let Some(bytes) = blocks.get(&cid) else {
            continue;
        };
        let Ok(value) = crate::cbor::decode(bytes) else {
            continue;
        };
        let written = rev.to_datetime();
        out.oldest = Some(out.oldest.map_or(written, |o| o.min(written)));
        let record = LocalRecord {
            uri: format!("at://{did}/{path}"),
            cid,
            indexed_at: format_datetime(written),
            record: crate::cbor::to_json(&value),
        };
        if path == "app.bsky.actor.profile/self" {
            out.profile = Some(record);
        } else {
            out.posts.push(record);
        }
    }
    Ok(out)
}

/// Builds the views of the caller's own records, as the AppView would.
struct LocalView<'a> {
    state: &'a AppState,
    did: &'a Did,
}

impl LocalView<'_> {
    /// The URL of an image: the AppView's CDN if configured, else this PDS's getBlob.
    fn image_url(&self, preset: &str, blob: &Value) -> Option<String> {
        let cid = blob["ref"]["$link"]
            .as_str()
            .or_else(|| blob["cid"].as_str())?;
        Some(match &self.state.config().app_view_cdn_url_pattern {
            Some(pattern) => pattern
                .replacen("%s", preset, 1)
                .replacen("%s", self.did.as_str(), 1)
                .replacen("%s", cid, 1),
            None => format!(
                "{}/xrpc/com.atproto.sync.getBlob?did={}&cid={cid}",
                self.state.config().public_url,
                self.did
            ),
        })
    }

    /// `view` with the profile record's display name and avatar.
    fn profile_basic(&self, mut view: Value, profile: &Value) -> Value {
        set_or_remove(
            &mut view,
            "displayName",
            profile.get("displayName").cloned(),
        );
        let avatar = profile
            .get("avatar")
            .and_then(|a| self.image_url("avatar", a));
        set_or_remove(&mut view, "avatar", avatar.map(Value::from));
        view
    }

    /// `view` with the profile record's display name, avatar, description and banner.
    fn profile_detailed(&self, view: Value, profile: &Value) -> Value {
        let mut view = self.profile_basic(view, profile);
        set_or_remove(
            &mut view,
            "description",
            profile.get("description").cloned(),
        );
        let banner = profile
            .get("banner")
            .and_then(|b| self.image_url("banner", b));
        set_or_remove(&mut view, "banner", banner.map(Value::from));
        view
    }

    /// The caller as a post's author: handle and current profile.
    async fn author(&self, local: &LocalRecords) -> Value {
        let handle = match self.state.storage().load_repo(self.did).await {
            Ok(Some(r)) => r
                .handle
                .map_or_else(|| "handle.invalid".into(), |h| h.to_string()),
            _ => "handle.invalid".into(),
        };
        let view = json!({ "did": self.did.as_str(), "handle": handle });
        let profile = match &local.profile {
            Some(p) => Some(p.record.clone()),
            None => self.current_profile().await,
        };
        match profile {
            Some(p) => self.profile_basic(view, &p),
            None => view,
        }
    }

    async fn current_profile(&self) -> Option<Value> {
        let view = self.state.blocks();
        let storage = self.state.storage();
        let (_, repo) = load_repo_state(storage, &view, self.did).await.ok()?;
        let collection = Nsid::parse("app.bsky.actor.profile").ok()?;
        let rkey = RecordKey::parse("self").ok()?;
        let found = with_blocks(storage, &view, || repo.get_record(&collection, &rkey))
            .await
            .ok()??;
        Some(crate::cbor::to_json(&found.1))
    }

    fn post(&self, post: &LocalRecord, author: &Value) -> Value {
        let mut view = json!({
            "uri": post.uri, "cid": post.cid.to_string(), "author": author, "record": post.record,
            "likeCount": 0, "replyCount": 0, "repostCount": 0, "quoteCount": 0,
            "indexedAt": post.indexed_at,
        });
        if let Some(embed) = self.embed(&post.record["embed"]) {
            view["embed"] = embed;
        }
        view
    }

    /// The view of an image or link embed (others are left to the AppView).
    fn embed(&self, embed: &Value) -> Option<Value> {
        match embed["$type"].as_str()? {
            "app.bsky.embed.images" => {
                let images: Vec<Value> = embed["images"]
                    .as_array()?
                    .iter()
                    .map(|img| {
                        let mut view = json!({
                            "thumb": self.image_url("feed_thumbnail", &img["image"]),
                            "fullsize": self.image_url("feed_fullsize", &img["image"]),
                            "alt": img["alt"],
                        });
                        if !img["aspectRatio"].is_null() {
                            view["aspectRatio"] = img["aspectRatio"].clone();
                        }
                        view
                    })
                    .collect();
                Some(json!({"$type": "app.bsky.embed.images#view", "images": images}))
            }
            "app.bsky.embed.external" => {
                let ext = &embed["external"];
                let mut external = json!({
                    "uri": ext["uri"], "title": ext["title"], "description": ext["description"],
                });
                if let Some(thumb) = self.image_url("feed_thumbnail", &ext["thumb"]) {
                    external["thumb"] = thumb.into();
                }
                Some(json!({"$type": "app.bsky.embed.external#view", "external": external}))
            }
            _ => None,
        }
    }

    /// Inserts the caller's newer posts into a feed, newest first, by `indexedAt`.
    async fn insert_posts(&self, mut feed: Vec<Value>, local: &LocalRecords) -> Vec<Value> {
        if local.posts.is_empty() {
            return feed;
        }
        let last_time = feed
            .last()
            .and_then(|item| item["post"]["indexedAt"].as_str())
            .unwrap_or("1970-01-01T00:00:00.000Z")
            .to_owned();
        let author = self.author(local).await;
        let present: Vec<String> = feed
            .iter()
            .filter_map(|item| item["post"]["uri"].as_str().map(str::to_owned))
            .collect();
        for post in local.posts.iter().rev() {
            if post.indexed_at.as_str() <= last_time.as_str() || present.contains(&post.uri) {
                continue;
            }
            let view = json!({ "post": self.post(post, &author) });
            let at = feed.iter().position(|item| {
                item["post"]["indexedAt"].as_str().unwrap_or_default() < post.indexed_at.as_str()
            });
            match at {
                Some(i) => feed.insert(i, view),
                None => feed.push(view),
            }
        }
        feed
    }
}

fn set_or_remove(view: &mut Value, key: &str, value: Option<Value>) {
    if let Some(map) = view.as_object_mut() {
        match value {
            Some(v) if !v.is_null() => {
                map.insert(key.to_owned(), v);
            }
            _ => {
                map.remove(key);
            }
        }
    }
}

/// How an answer is patched.
#[derive(Debug, Clone, Copy)]
enum Patch {
    Profile,
    Profiles,
    AuthorFeed,
    Timeline,
    ActorLikes,
    PostThread,
}

impl Patch {
    async fn apply(self, view: &LocalView<'_>, mut body: Value, local: &LocalRecords) -> Value {
        let me = view.did.as_str();
        let profile = local.profile.as_ref().map(|p| &p.record);
        match self {
            Patch::Profile => match profile {
                Some(p) if body["did"] == me => view.profile_detailed(body, p),
                _ => body,
            },
            Patch::Profiles => {
                if let (Some(p), Some(list)) = (profile, body["profiles"].as_array_mut()) {
                    for item in list.iter_mut() {
                        if item["did"] == me {
                            *item = view.profile_detailed(item.take(), p);
                        }
                    }
                }
                body
            }
            Patch::AuthorFeed | Patch::ActorLikes => {
                if matches!(self, Patch::AuthorFeed) && !is_users_feed(&body, me) {
                    return body;
                }
                let mut feed = body["feed"].as_array().cloned().unwrap_or_default();
                if let Some(p) = profile {
                    for item in feed.iter_mut() {
                        if item["post"]["author"]["did"] == me {
                            let author = item["post"]["author"].take();
                            item["post"]["author"] = view.profile_basic(author, p);
                        }
                    }
                }
                if matches!(self, Patch::AuthorFeed) {
                    feed = view.insert_posts(feed, local).await;
                }
                body["feed"] = Value::Array(feed);
                body
            }
            Patch::Timeline => {
                let feed = body["feed"].as_array().cloned().unwrap_or_default();
                body["feed"] = Value::Array(view.insert_posts(feed, local).await);
                body
            }
            Patch::PostThread => {
                let root = {
                    let post = &body["thread"]["post"];
                    post["record"]["reply"]["root"]["uri"]
                        .as_str()
                        .or_else(|| post["uri"].as_str())
                        .map(str::to_owned)
                };
                let Some(root) = root else {
                    return body;
                };
                let author = view.author(local).await;
                for post in &local.posts {
                    let reply = &post.record["reply"];
                    let in_thread = reply["root"]["uri"].as_str() == Some(root.as_str());
                    if let (true, Some(parent)) = (in_thread, reply["parent"]["uri"].as_str()) {
                        let reply_view = json!({
                            "$type": "app.bsky.feed.defs#threadViewPost",
                            "post": view.post(post, &author),
                            "replies": [],
                        });
                        insert_reply(&mut body["thread"], parent, &post.uri, reply_view);
                    }
                }
                body
            }
        }
    }
}

/// Whether an author feed is the caller's own (its first item is the caller's post or repost).
fn is_users_feed(body: &Value, me: &str) -> bool {
    let Some(first) = body["feed"].as_array().and_then(|f| f.first()) else {
        return false;
    };
    match first.get("reason") {
        None => first["post"]["author"]["did"] == me,
        Some(reason) => {
            reason["$type"] == "app.bsky.feed.defs#reasonRepost" && reason["by"]["did"] == me
        }
    }
}

/// Puts `reply` first among the replies of the post `parent` in `thread`, unless it is there.
fn insert_reply(thread: &mut Value, parent: &str, uri: &str, reply: Value) -> bool {
    if thread["post"]["uri"] == parent {
        let replies = thread
            .as_object_mut()
            .map(|t| t.entry("replies").or_insert_with(|| json!([])));
        if let Some(Value::Array(list)) = replies {
            if !list.iter().any(|r| r["post"]["uri"] == uri) {
                list.insert(0, reply);
            }
        }
        return true;
    }
    if let Some(list) = thread.get_mut("replies").and_then(Value::as_array_mut) {
        for child in list.iter_mut() {
            if insert_reply(child, parent, uri, reply.clone()) {
                return true;
            }
        }
    }
    false
}

async fn read_after_write(state: &AppState, request: Request, patch: Patch) -> Response {
    answer(patched(state, request, patch).await)
}

async fn patched(state: &AppState, request: Request, patch: Patch) -> Result<Response, XrpcError> {
    let incoming = incoming(state, request).await?;
    let target = proxy::target(state, &incoming.parts.headers, &incoming.nsid).await?;
    proxy::check_session(&incoming.access, &incoming.nsid, &target)?;
    let path = incoming.path_and_query();
    // The answer may have to be read, so it comes unencoded.
    let mut headers: HeaderMap = incoming.parts.headers.clone();
    headers.remove(axum::http::header::ACCEPT_ENCODING);
    let call = Call {
        state,
        caller: &incoming.access.did,
        nsid: &incoming.nsid,
        target: &target,
    };
    let response = call.send(Method::GET, &path, &headers, None).await?;
    let rev = response
        .headers()
        .get("atproto-repo-rev")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Tid::parse(v).ok());
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"));
    let (Some(rev), true, true) = (rev, is_json, target.is_app_view(state)) else {
        return Ok(proxy::stream_back(response));
    };
    let local = match records_since(state, &incoming.access.did, rev).await {
        Ok(local) if !local.is_empty() => local,
        Ok(_) => return Ok(proxy::stream_back(response)),
        Err(e) => {
            tracing::warn!(error = %e, "read-after-write skipped");
            return Ok(proxy::stream_back(response));
        }
    };
    let mut headers = proxy::response_headers(&response);
    headers.remove(axum::http::header::CONTENT_LENGTH);
    headers.remove(axum::http::header::CONTENT_ENCODING);
    let bytes = proxy::read_limited(response, MAX_PATCHED_RESPONSE).await?;
    let Ok(body) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok((headers, bytes).into_response());
    };
    let view = LocalView {
        state,
        did: &incoming.access.did,
    };
    let body = patch.apply(&view, body, &local).await;
    if let Some(oldest) = local.oldest {
        let lag = (Utc::now() - oldest).num_milliseconds().max(0);
        if let Ok(v) = HeaderValue::from_str(&lag.to_string()) {
            headers.insert("atproto-upstream-lag", v);
        }
    }
    Ok((headers, Json(body)).into_response())
}

macro_rules! read_after_write_handlers {
    ($($name:ident => $patch:expr),* $(,)?) => {
        $(
            pub(super) async fn $name(State(state): State<AppState>, request: Request) -> Response {
                read_after_write(&state, request, $patch).await
            }
        )*
    };
}

read_after_write_handlers! {
    get_profile => Patch::Profile,
    get_profiles => Patch::Profiles,
    get_author_feed => Patch::AuthorFeed,
    get_timeline => Patch::Timeline,
    get_actor_likes => Patch::ActorLikes,
    get_post_thread => Patch::PostThread,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_counts_whole_years() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            age_on(at("2000-06-15T00:00:00Z"), at("2018-06-14T00:00:00Z")),
            17
        );
        assert_eq!(
            age_on(at("2000-06-15T00:00:00Z"), at("2018-06-15T00:00:00Z")),
            18
        );
    }

    #[test]
    fn replies_go_under_their_parent_once() {
        let mut thread = json!({"post": {"uri": "at://a/p/1"}, "replies": [
            {"post": {"uri": "at://a/p/2"}, "replies": []}
        ]});
        let reply = json!({"post": {"uri": "at://me/p/3"}});
        assert!(insert_reply(
            &mut thread,
            "at://a/p/2",
            "at://me/p/3",
            reply.clone()
        ));
        assert!(insert_reply(
            &mut thread,
            "at://a/p/2",
            "at://me/p/3",
            reply
        ));
        assert_eq!(thread["replies"][0]["replies"].as_array().unwrap().len(), 1);
        assert!(!insert_reply(
            &mut thread,
            "at://x/p/9",
            "at://me/p/4",
            json!({})
        ));
    }
}
