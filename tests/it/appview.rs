//! The Bluesky app's calls: `app.bsky.*` proxied to the AppView (and other services by the
//! `atproto-proxy` header) with a service-auth token a stand-in service verifies independently,
//! read-after-write, preferences, blob types sniffed from the bytes, and the video service's
//! upload path. All over HTTP, against a PDS on a socket.

use crate::common::pds::{Pds, Session};
use crate::common::service::Service;
use arroba::crypto::{Algorithm, Keypair};
use arroba::identity::plc::{PlcData, PlcOperation, PlcService};
use serde_json::{Value, json};

const APP_VIEW_DID: &str = "did:web:appview.test";

/// A PDS whose AppView is a stand-in service (plus `extra` settings).
async fn with_app_view(extra: &[(&str, &str)]) -> (Pds, Service) {
    // The service's URL goes into the PDS's settings; the PDS's PLC directory, which the service
    // resolves callers through, is known once the PDS runs.
    let app_view = Service::start(APP_VIEW_DID, "").await;
    let mut env = vec![
        ("PDS_BSKY_APP_VIEW_URL", app_view.url.as_str()),
        ("PDS_BSKY_APP_VIEW_DID", APP_VIEW_DID),
    ];
    env.extend_from_slice(extra);
    let pds = Pds::start(&env).await;
    app_view.set_plc_url(&pds.plc_url);
    (pds, app_view)
}

/// A stand-in service with a did:plc of its own whose document names it as `#<id>` (the DID is
/// known only once the service listens: its endpoint is in the genesis operation).
async fn service_with_did(pds: &Pds, id: &str, kind: &str) -> (Service, arroba::syntax::Did) {
    let service = Service::start("did:plc:notyetknown", &pds.plc_url).await;
    let rotation = Keypair::from_seed(Algorithm::K256, id.as_bytes());
    let op = PlcOperation::Operation {
        data: PlcData {
            rotation_keys: vec![rotation.public_key().to_did_key()],
            verification_methods: [("atproto".to_owned(), rotation.public_key().to_did_key())]
                .into(),
            also_known_as: vec![],
            services: [(
                id.to_owned(),
                PlcService {
                    kind: kind.into(),
                    endpoint: service.url.clone(),
                },
            )]
            .into(),
        },
        prev: None,
        sig: None,
    }
    .sign(&rotation);
    let did = op.did();
    pds.state.plc().submit(&did, &op).await.unwrap();
    service.set_did(did.as_str());
    (service, did)
}

async fn get(
    pds: &Pds,
    token: &str,
    nsid: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = pds
        .client
        .get(pds.xrpc(nsid))
        .query(query)
        .bearer_auth(token);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

async fn app_password(pds: &Pds, s: &Session, name: &str, privileged: bool) -> String {
    let (status, body) = pds
        .post(
            "com.atproto.server.createAppPassword",
            Some(&s.access),
            json!({"name": name, "privileged": privileged}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, session) = pds
        .post(
            "com.atproto.server.createSession",
            None,
            json!({"identifier": s.handle, "password": body["password"]}),
        )
        .await;
    assert_eq!(status, 200, "{session}");
    session["accessJwt"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn app_bsky_calls_reach_the_app_view_with_a_token_it_verifies() {
    let (pds, app_view) = with_app_view(&[]).await;
    let alice = pds.create_account("alice").await;

    let (status, body, headers) = get(
        &pds,
        &alice.access,
        "app.bsky.unspecced.getPopularFeedGenerators",
        &[("limit", "3")],
        &[
            ("accept-language", "fr"),
            ("x-atproto-test", "passed"),
            ("cookie", "kept-here"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["nsid"], "app.bsky.unspecced.getPopularFeedGenerators");
    assert_eq!(body["query"], "limit=3");
    assert_eq!(
        headers["atproto-content-labelers"], "did:plc:labeler",
        "service headers come back"
    );
    let seen = app_view.seen();
    let call = seen.last().unwrap();
    assert_eq!(call.claims["iss"], alice.did);
    assert_eq!(call.claims["aud"], APP_VIEW_DID);
    assert_eq!(
        call.claims["lxm"],
        "app.bsky.unspecced.getPopularFeedGenerators"
    );
    assert_eq!(call.headers["accept-language"], "fr");
    assert_eq!(call.headers["x-atproto-test"], "passed");
    assert!(
        call.headers.get("cookie").is_none(),
        "only the headers services read are passed on"
    );

    // A procedure's body goes through as it came.
    let resp = pds
        .client
        .post(pds.xrpc("app.bsky.graph.muteActor"))
        .bearer_auth(&alice.access)
        .json(&json!({"actor": "did:plc:someone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echoed: Value = resp.json().await.unwrap();
    assert_eq!(echoed["body"], r#"{"actor":"did:plc:someone"}"#);
    assert_eq!(echoed["contentType"], "application/json");
    assert_eq!(app_view.seen().last().unwrap().method, "POST");

    // The service's errors come back as they were, its 500s as 502.
    let (status, body, _) = get(&pds, &alice.access, "app.bsky.test.refuse", &[], &[]).await;
    assert_eq!(
        (status, body["error"].as_str(), body["message"].as_str()),
        (400, Some("NotAllowed"), Some("nope"))
    );
    let (status, body, _) = get(&pds, &alice.access, "app.bsky.test.crash", &[], &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (502, Some("InternalServerError"))
    );

    // No session, no proxying.
    let resp = pds
        .client
        .get(pds.xrpc("app.bsky.feed.getFeed"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        app_view.seen().len(),
        4,
        "refused calls never reach the service"
    );
}

#[tokio::test]
async fn an_atproto_proxy_header_routes_to_the_service_it_names() {
    let (pds, app_view) = with_app_view(&[]).await;
    let alice = pds.create_account("alice").await;
    let (chat, chat_did) = service_with_did(&pds, "bsky_chat", "BskyChatService").await;
    let header = format!("{chat_did}#bsky_chat");

    let (status, body, _) = get(
        &pds,
        &alice.access,
        "chat.bsky.convo.listConvos",
        &[],
        &[("atproto-proxy", &header)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let call = chat.seen().pop().unwrap();
    assert_eq!(call.claims["aud"], chat_did.as_str());
    assert_eq!(call.claims["lxm"], "chat.bsky.convo.listConvos");
    assert!(
        app_view.seen().is_empty(),
        "the header overrides the default service"
    );

    // Chat needs a full session or a privileged app password.
    let plain = app_password(&pds, &alice, "plain", false).await;
    let (status, body, _) = get(
        &pds,
        &plain,
        "chat.bsky.convo.listConvos",
        &[],
        &[("atproto-proxy", &header)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("InvalidToken")),
        "{body}"
    );
    let privileged = app_password(&pds, &alice, "dms", true).await;
    let (status, _, _) = get(
        &pds,
        &privileged,
        "chat.bsky.convo.listConvos",
        &[],
        &[("atproto-proxy", &header)],
    )
    .await;
    assert_eq!(status, 200);

    // Bad headers and unknown services are named; account management is never proxied.
    for (bad, message) in [
        ("#bsky_chat".to_owned(), "no did specified in proxy header"),
        (
            chat_did.to_string(),
            "no service id specified in proxy header",
        ),
        (
            format!("{chat_did}#nothing_here"),
            "could not resolve proxy did service url",
        ),
        (
            "did:plc:doesnotexist00000000000#bsky_chat".to_owned(),
            "could not resolve proxy did",
        ),
    ] {
        let (status, body, _) = get(
            &pds,
            &alice.access,
            "chat.bsky.convo.listConvos",
            &[],
            &[("atproto-proxy", &bad)],
        )
        .await;
        assert_eq!(
            (status, body["message"].as_str()),
            (400, Some(message)),
            "{bad}"
        );
    }
    let resp = pds
        .client
        // A protected method spelt so that no local route takes it: the header must still not
        // carry it to a service.
        .post(pds.xrpc("com.atproto.identity.SignPlcOperation"))
        .bearer_auth(&alice.access)
        .header("atproto-proxy", &header)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), body["message"].as_str()),
        (Some("InvalidToken"), Some("Bad token method"))
    );
}

#[tokio::test]
async fn without_an_app_view_the_error_names_the_settings() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let (status, body, _) = get(&pds, &alice.access, "app.bsky.feed.getTimeline", &[], &[]).await;
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("PDS_BSKY_APP_VIEW_URL") && message.contains("PDS_BSKY_APP_VIEW_DID"),
        "{message}"
    );
}

fn post_view(uri: &str, did: &str, text: &str, at: &str) -> Value {
    json!({"post": {
        "uri": uri, "cid": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
        "author": {"did": did, "handle": "someone.test"},
        "record": {"$type": "app.bsky.feed.post", "text": text, "createdAt": at},
        "indexedAt": at,
    }})
}

#[tokio::test]
async fn the_callers_newest_records_are_patched_into_app_view_answers() {
    let (pds, app_view) = with_app_view(&[]).await;
    let alice = pds.create_account("alice").await;
    let old = pds.create_post(&alice, "indexed already").await;
    let (_, latest) = pds
        .get(
            "com.atproto.sync.getLatestCommit",
            None,
            &[("did", &alice.did)],
        )
        .await;
    // The AppView has seen everything up to here.
    app_view.set_rev(latest["rev"].as_str());
    let old_uri = old["uri"].as_str().unwrap();
    app_view.answer("app.bsky.feed.getTimeline", json!({"feed": [
        post_view("at://did:plc:other/app.bsky.feed.post/1", "did:plc:other", "someone else", "2026-01-01T00:00:00.000Z"),
    ]}));
    app_view.answer(
        "app.bsky.feed.getAuthorFeed",
        json!({"feed": [
            post_view(old_uri, &alice.did, "indexed already", "2026-01-01T00:00:00.000Z"),
        ]}),
    );
    app_view.answer(
        "app.bsky.actor.getProfile",
        json!({"did": alice.did, "handle": "alice.test", "displayName": "Alice Before"}),
    );
    app_view.answer("app.bsky.feed.getPostThread", json!({"thread": {
        "$type": "app.bsky.feed.defs#threadViewPost",
        "post": post_view("at://did:plc:other/app.bsky.feed.post/1", "did:plc:other", "a question", "2026-01-01T00:00:00.000Z")["post"],
        "replies": [],
    }}));

    // Then alice renames herself, posts, and replies in a thread.
    let (status, body) = pds
        .post(
            "com.atproto.repo.putRecord",
            Some(&alice.access),
            json!({"repo": alice.did, "collection": "app.bsky.actor.profile", "rkey": "self",
            "record": {"$type": "app.bsky.actor.profile", "displayName": "Alice After"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let fresh = pds.create_post(&alice, "just posted").await;
    let root = json!({"uri": "at://did:plc:other/app.bsky.feed.post/1", "cid": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"});
    let (status, reply) = pds
        .post("com.atproto.repo.createRecord", Some(&alice.access), json!({"repo": alice.did, "collection": "app.bsky.feed.post",
            "record": {"$type": "app.bsky.feed.post", "text": "an answer", "createdAt": "2026-12-01T00:00:00.000Z",
                "reply": {"root": root, "parent": root}}}))
        .await;
    assert_eq!(status, 200, "{reply}");

    let (status, timeline, headers) =
        get(&pds, &alice.access, "app.bsky.feed.getTimeline", &[], &[]).await;
    assert_eq!(status, 200, "{timeline}");
    let feed = timeline["feed"].as_array().unwrap();
    let texts: Vec<&str> = feed
        .iter()
        .map(|i| i["post"]["record"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["an answer", "just posted", "someone else"],
        "newest first, the AppView's after"
    );
    assert_eq!(feed[1]["post"]["uri"], fresh["uri"]);
    assert_eq!(feed[1]["post"]["author"]["displayName"], "Alice After");
    assert_eq!(feed[1]["post"]["author"]["handle"], "alice.test");
    assert!(headers.contains_key("atproto-upstream-lag"));

    let (_, profile, _) = get(
        &pds,
        &alice.access,
        "app.bsky.actor.getProfile",
        &[("actor", &alice.did)],
        &[],
    )
    .await;
    assert_eq!(profile["displayName"], "Alice After");

    let (_, author_feed, _) = get(
        &pds,
        &alice.access,
        "app.bsky.feed.getAuthorFeed",
        &[("actor", &alice.did)],
        &[],
    )
    .await;
    let uris: Vec<&str> = author_feed["feed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["post"]["uri"].as_str().unwrap())
        .collect();
    assert_eq!(uris.len(), 3, "{author_feed}");
    assert_eq!(uris[2], old_uri);
    assert_eq!(
        author_feed["feed"][2]["post"]["author"]["displayName"], "Alice After",
        "her older post shows her new name"
    );

    let (_, thread, _) = get(
        &pds,
        &alice.access,
        "app.bsky.feed.getPostThread",
        &[("uri", "at://did:plc:other/app.bsky.feed.post/1")],
        &[],
    )
    .await;
    assert_eq!(
        thread["thread"]["replies"][0]["post"]["uri"], reply["uri"],
        "{thread}"
    );

    // Once the AppView has caught up, its answer passes untouched.
    let (_, latest) = pds
        .get(
            "com.atproto.sync.getLatestCommit",
            None,
            &[("did", &alice.did)],
        )
        .await;
    app_view.set_rev(latest["rev"].as_str());
    let (_, timeline, headers) =
        get(&pds, &alice.access, "app.bsky.feed.getTimeline", &[], &[]).await;
    assert_eq!(timeline["feed"].as_array().unwrap().len(), 1);
    assert!(!headers.contains_key("atproto-upstream-lag"));
    assert_eq!(headers["atproto-repo-rev"], latest["rev"].as_str().unwrap());
}

async fn preferences_round_trip(pds: &Pds) {
    let alice = pds.create_account("prefs").await;
    let (status, body) = pds
        .get("app.bsky.actor.getPreferences", Some(&alice.access), &[])
        .await;
    assert_eq!((status, body), (200, json!({"preferences": []})));
    let prefs = json!([
        {"$type": "app.bsky.actor.defs#adultContentPref", "enabled": false},
        {"$type": "app.bsky.actor.defs#personalDetailsPref", "birthDate": "2000-01-01T00:00:00.000Z"},
        {"$type": "app.bsky.actor.defs#savedFeedsPrefV2", "items": []},
    ]);
    let (status, body) = pds
        .post(
            "app.bsky.actor.putPreferences",
            Some(&alice.access),
            json!({"preferences": prefs}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = pds
        .get("app.bsky.actor.getPreferences", Some(&alice.access), &[])
        .await;
    let got = body["preferences"].as_array().unwrap();
    assert_eq!(&got[..3], prefs.as_array().unwrap().as_slice());
    assert_eq!(got[3]["$type"], "app.bsky.actor.defs#declaredAgePref");
    assert_eq!(got[3]["isOverAge18"], true);

    // An app password neither sees nor writes personal details, and keeps them when it writes.
    let app = app_password(pds, &alice, "client", false).await;
    let (_, body) = pds
        .get("app.bsky.actor.getPreferences", Some(&app), &[])
        .await;
    let kinds: Vec<&str> = body["preferences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["$type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "app.bsky.actor.defs#adultContentPref",
            "app.bsky.actor.defs#savedFeedsPrefV2",
            "app.bsky.actor.defs#declaredAgePref"
        ]
    );
    let (status, body) = pds
        .post("app.bsky.actor.putPreferences", Some(&app), json!({"preferences": [{"$type": "app.bsky.actor.defs#personalDetailsPref", "birthDate": "1990-01-01T00:00:00.000Z"}]}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Do not have authorization to set preferences")
    );
    let (status, _) = pds
        .post("app.bsky.actor.putPreferences", Some(&app), json!({"preferences": [{"$type": "app.bsky.actor.defs#adultContentPref", "enabled": true}]}))
        .await;
    assert_eq!(status, 200);
    let (_, body) = pds
        .get("app.bsky.actor.getPreferences", Some(&alice.access), &[])
        .await;
    let got = body["preferences"].as_array().unwrap();
    assert_eq!(
        got[0]["$type"], "app.bsky.actor.defs#personalDetailsPref",
        "kept"
    );
    assert_eq!(
        got[1],
        json!({"$type": "app.bsky.actor.defs#adultContentPref", "enabled": true})
    );
    assert_eq!(got.len(), 3, "{body}");

    for (bad, message) in [
        (
            json!([{"$type": "com.example.pref"}]),
            "Some preferences are not in the app.bsky namespace",
        ),
        (
            json!([{"enabled": true}]),
            "Invalid input/preferences/0: must have a $type",
        ),
    ] {
        let (status, body) = pds
            .post(
                "app.bsky.actor.putPreferences",
                Some(&alice.access),
                json!({"preferences": bad}),
            )
            .await;
        assert_eq!((status, body["message"].as_str()), (400, Some(message)));
    }
    let resp = pds
        .client
        .get(pds.xrpc("app.bsky.actor.getPreferences"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn preferences_round_trip_on_the_embedded_store() {
    preferences_round_trip(&Pds::start(&[]).await).await;
}

#[tokio::test]
async fn preferences_round_trip_on_dynamodb() {
    let storage: std::sync::Arc<dyn arroba::storage::Storage> =
        crate::common::dynamo_storage().await;
    let dir = tempfile::tempdir().unwrap();
    let blobs = std::sync::Arc::new(arroba::storage::DiskBlobStore::new(
        dir.path().join("blobs"),
    ));
    let pds = Pds::start_with(dir, storage, blobs, &[]).await;
    preferences_round_trip(&pds).await;
}

#[tokio::test]
async fn preferences_for_another_app_view_go_there() {
    let (pds, app_view) = with_app_view(&[]).await;
    let alice = pds.create_account("alice").await;
    // The configured AppView named explicitly: still answered here.
    let ours = format!("{APP_VIEW_DID}#bsky_appview");
    let (status, body, _) = get(
        &pds,
        &alice.access,
        "app.bsky.actor.getPreferences",
        &[],
        &[("atproto-proxy", &ours)],
    )
    .await;
    assert_eq!((status, body), (200, json!({"preferences": []})));
    assert!(app_view.seen().is_empty());
    // Another AppView: its own preferences, there.
    let (other, other_did) = service_with_did(&pds, "bsky_appview", "BskyAppView").await;
    let theirs = format!("{other_did}#bsky_appview");
    let (status, body, _) = get(
        &pds,
        &alice.access,
        "app.bsky.actor.getPreferences",
        &[],
        &[("atproto-proxy", &theirs)],
    )
    .await;
    assert_eq!(
        (status, body["nsid"].as_str()),
        (200, Some("app.bsky.actor.getPreferences")),
        "{body}"
    );
    let resp = pds
        .client
        .post(pds.xrpc("app.bsky.actor.putPreferences"))
        .bearer_auth(&alice.access)
        .header("atproto-proxy", &theirs)
        .json(&json!({"preferences": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = other.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].claims["lxm"], "app.bsky.actor.putPreferences");
    assert_eq!(&seen[1].body[..], br#"{"preferences":[]}"#);
    let (_, body) = pds
        .get("app.bsky.actor.getPreferences", Some(&alice.access), &[])
        .await;
    assert_eq!(body, json!({"preferences": []}), "nothing was stored here");
}

/// The first bytes of each kind, enough for a type to be recognised.
fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let pad = |mut head: Vec<u8>| {
        head.extend(std::iter::repeat_n(0u8, 64));
        head
    };
    vec![
        (
            "image/png",
            pad(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec()),
        ),
        (
            "image/jpeg",
            pad(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00".to_vec()),
        ),
        ("image/gif", pad(b"GIF89a\x01\x00\x01\x00".to_vec())),
        ("image/webp", pad(b"RIFF\x24\x00\x00\x00WEBPVP8 ".to_vec())),
        (
            "video/mp4",
            pad(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom".to_vec()),
        ),
    ]
}

async fn upload(pds: &Pds, token: &str, content_type: Option<&str>, bytes: &[u8]) -> (u16, Value) {
    let mut req = pds
        .client
        .post(pds.xrpc("com.atproto.repo.uploadBlob"))
        .bearer_auth(token)
        .body(bytes.to_vec());
    if let Some(t) = content_type {
        req = req.header("content-type", t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn blob_types_come_from_the_bytes_and_records_must_describe_them_truly() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    for (kind, bytes) in samples() {
        for declared in [Some("*/*"), None, Some("application/octet-stream")] {
            let (status, body) = upload(&pds, &alice.access, declared, &bytes).await;
            assert_eq!(status, 200, "{kind} {declared:?}: {body}");
            assert_eq!(body["blob"]["mimeType"], kind, "{declared:?}");
        }
        let (_, body) = upload(&pds, &alice.access, Some("*/*"), &bytes).await;
        let cid = keep(&pds, &alice, &body["blob"]).await;
        let served = pds
            .get_bytes(
                "com.atproto.sync.getBlob",
                &[("did", &alice.did), ("cid", &cid)],
            )
            .await;
        assert_eq!(served.headers()["content-type"], kind);
    }

    // An image posted the way SDKs post it.
    let png = &samples()[0].1;
    let (_, uploaded) = upload(&pds, &alice.access, Some("*/*"), png).await;
    let post = |blob: Value| {
        json!({"repo": alice.did, "collection": "app.bsky.feed.post", "record": {
        "$type": "app.bsky.feed.post", "text": "a picture", "createdAt": "2026-12-01T00:00:00.000Z",
        "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": blob}]}}})
    };
    let (status, body) = pds
        .post(
            "com.atproto.repo.createRecord",
            Some(&alice.access),
            post(uploaded["blob"].clone()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut lying = uploaded["blob"].clone();
    lying["mimeType"] = "image/jpeg".into();
    let (status, body) = pds
        .post(
            "com.atproto.repo.createRecord",
            Some(&alice.access),
            post(lying),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidMimeType")),
        "{body}"
    );
    let mut lying = uploaded["blob"].clone();
    lying["size"] = 1.into();
    let (status, body) = pds
        .post(
            "com.atproto.repo.createRecord",
            Some(&alice.access),
            post(lying),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidSize")),
        "{body}"
    );

    // Bytes of no known kind: the declared type, or octet-stream; a specific type given later
    // for the same bytes corrects a generic one.
    let text = b"just some words, no magic number";
    let (_, body) = upload(&pds, &alice.access, Some("*/*"), text).await;
    assert_eq!(body["blob"]["mimeType"], "application/octet-stream");
    let (_, body) = upload(&pds, &alice.access, Some("text/plain; charset=utf-8"), text).await;
    assert_eq!(body["blob"]["mimeType"], "text/plain");
    let cid = keep(&pds, &alice, &body["blob"]).await;
    let served = pds
        .get_bytes(
            "com.atproto.sync.getBlob",
            &[("did", &alice.did), ("cid", &cid)],
        )
        .await;
    assert_eq!(served.headers()["content-type"], "text/plain");
}

/// References `blob` from a record (so it is served, not temporary); returns its CID.
async fn keep(pds: &Pds, s: &Session, blob: &Value) -> String {
    let (status, body) = pds
        .post(
            "com.atproto.repo.createRecord",
            Some(&s.access),
            json!({"repo": s.did, "collection": "com.example.file",
            "validate": false, "record": {"$type": "com.example.file", "file": blob}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    blob["ref"]["$link"].as_str().unwrap().to_owned()
}

async fn service_auth(pds: &Pds, token: &str, query: &[(&str, &str)]) -> (u16, Value) {
    pds.get("com.atproto.server.getServiceAuth", Some(token), query)
        .await
}

#[tokio::test]
async fn the_video_service_uploads_with_a_token_the_account_issued() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let exp = (chrono::Utc::now().timestamp() + 1800).to_string();
    let (status, body) = service_auth(
        &pds,
        &alice.access,
        &[
            ("aud", "did:web:pds.test"),
            ("lxm", "com.atproto.repo.uploadBlob"),
            ("exp", &exp),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let mp4 = &samples()[4].1;
    let (status, body) = upload(&pds, &token, Some("video/mp4"), mp4).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["blob"]["mimeType"], "video/mp4");
    let stored = arroba::storage::Accounts(pds.state.storage())
        .get_blob(
            &arroba::syntax::Did::parse(&alice.did).unwrap(),
            body["blob"]["ref"]["$link"].as_str().unwrap(),
        )
        .await
        .unwrap();
    assert!(stored.is_some(), "the blob is alice's");

    // Tokens for another method or another service are refused.
    for query in [
        [
            ("aud", "did:web:pds.test"),
            ("lxm", "com.atproto.repo.createRecord"),
        ],
        [
            ("aud", "did:web:elsewhere.test"),
            ("lxm", "com.atproto.repo.uploadBlob"),
        ],
    ] {
        let (_, body) = service_auth(&pds, &alice.access, &query).await;
        let (status, body) = upload(
            &pds,
            body["token"].as_str().unwrap(),
            Some("video/mp4"),
            mp4,
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("InvalidToken")),
            "{query:?}: {body}"
        );
    }
}

#[tokio::test]
async fn get_service_auth_follows_the_reference_rules() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let now = chrono::Utc::now().timestamp();
    let in_secs = |s: i64| (now + s).to_string();
    let plain = app_password(&pds, &alice, "plain", false).await;
    /// A refused request: what it is, whose token, the query, and the error name and message.
    struct Refusal<'a> {
        what: &'a str,
        token: String,
        query: Vec<(&'a str, String)>,
        error: &'a str,
        message: &'a str,
    }
    let case = |what, token, query, error, message| Refusal {
        what,
        token,
        query,
        error,
        message,
    };
    let cases = vec![
        case(
            "past",
            alice.access.clone(),
            vec![
                ("aud", "did:web:x.test".into()),
                ("lxm", "app.bsky.feed.getTimeline".into()),
                ("exp", in_secs(-10)),
            ],
            "BadExpiration",
            "expiration is in past",
        ),
        case(
            "over an hour",
            alice.access.clone(),
            vec![
                ("aud", "did:web:x.test".into()),
                ("lxm", "app.bsky.feed.getTimeline".into()),
                ("exp", in_secs(3700)),
            ],
            "BadExpiration",
            "more than an hour",
        ),
        case(
            "method-less over a minute",
            alice.access.clone(),
            vec![("aud", "did:web:x.test".into()), ("exp", in_secs(120))],
            "BadExpiration",
            "method-less token",
        ),
        case(
            "protected",
            alice.access.clone(),
            vec![
                ("aud", "did:web:x.test".into()),
                ("lxm", "com.atproto.server.createAppPassword".into()),
            ],
            "InvalidRequest",
            "protected method",
        ),
        case(
            "chat with a plain app password",
            plain.clone(),
            vec![
                ("aud", "did:web:x.test".into()),
                ("lxm", "chat.bsky.convo.getLog".into()),
            ],
            "InvalidRequest",
            "insufficient access",
        ),
        case(
            "not a DID",
            alice.access.clone(),
            vec![("aud", "x.test".into())],
            "InvalidRequest",
            "aud must be a valid atproto DID",
        ),
    ];
    for Refusal {
        what,
        token,
        query,
        error,
        message,
    } in cases
    {
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = service_auth(&pds, &token, &query).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(error)),
            "{what}: {body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains(message),
            "{what}: {body}"
        );
    }
    let (status, body) = service_auth(
        &pds,
        &alice.access,
        &[("aud", "did:web:x.test#svc"), ("exp", &in_secs(30))],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let claims = arroba::identity::service_auth::decode_unverified(body["token"].as_str().unwrap())
        .unwrap()
        .1;
    assert_eq!(
        (claims.aud.as_str(), claims.exp, claims.lxm),
        ("did:web:x.test#svc", now + 30, None)
    );
}
