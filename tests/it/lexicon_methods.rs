//! Every method the router serves, walked against the bundled lexicons: the lexicon exists and
//! agrees on GET or POST, and a real call with a valid input answers 200 with an output that
//! validates against the lexicon's output schema (or has its declared encoding). A method added
//! to the router without a sample here fails the test.

use std::collections::BTreeSet;

use arroba::lexicon::Lexicons;
use arroba::xrpc::{MethodKind, method_list};
use serde_json::{Value, json};

use crate::common::pds::{ADMIN_PASSWORD, Pds, Session};
use crate::common::service::Service;

/// How a sample call authenticates.
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Admin,
}

/// What a sample sends: query parameters (GET) or a body (POST), raw bytes with a type, or
/// nothing at all.
enum Input {
    Query(Vec<(&'static str, String)>),
    Json(Value),
    Raw(&'static str, Vec<u8>),
    Empty,
}

/// Calls `nsid` as its lexicon says and checks the answer against the lexicon.
async fn call(pds: &Pds, nsid: &str, auth: Auth<'_>, input: Input) -> Value {
    let lexicons = Lexicons::bundled();
    let def = lexicons.main_def(nsid).unwrap();
    let url = pds.xrpc(nsid);
    let mut req = match &input {
        Input::Query(q) => pds.client.get(&url).query(q),
        Input::Json(body) => pds.client.post(&url).json(body),
        Input::Raw(mime, bytes) => pds
            .client
            .post(&url)
            .header("content-type", *mime)
            .body(bytes.clone()),
        Input::Empty => pds.client.post(&url),
    };
    req = match auth {
        Auth::None => req,
        Auth::Bearer(t) => req.bearer_auth(t),
        Auth::Admin => req.basic_auth("admin", Some(ADMIN_PASSWORD)),
    };
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(
        status,
        200,
        "{nsid}: {}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
    );
    let Some(output) = def.get("output") else {
        assert!(
            bytes.is_empty(),
            "{nsid} declares no output but sent {bytes:?}"
        );
        return Value::Null;
    };
    let encoding = output["encoding"].as_str().unwrap();
    if encoding == "application/json" {
        assert!(
            content_type.starts_with("application/json"),
            "{nsid}: {content_type}"
        );
        let json: Value = serde_json::from_slice(&bytes).unwrap();
        let value = arroba::cbor::from_json(&json).unwrap();
        if let Err(e) = lexicons.validate_method(nsid, "output", &value) {
            panic!("{nsid} output does not match its lexicon: {e}\n{json}");
        }
        json
    } else {
        if encoding != "*/*" {
            assert!(content_type.starts_with(encoding), "{nsid}: {content_type}");
        }
        Value::Null
    }
}

fn q(pairs: &[(&'static str, &str)]) -> Input {
    Input::Query(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
}

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

async fn session(pds: &Pds, name: &str) -> Session {
    pds.create_account(name).await
}

#[tokio::test]
async fn every_method_the_router_serves_follows_its_lexicon() {
    let lexicons = Lexicons::bundled();
    let methods = method_list();
    for (nsid, kind) in &methods {
        let def = lexicons
            .main_def(nsid)
            .unwrap_or_else(|| panic!("{nsid} has no bundled lexicon"));
        let expected = match kind {
            MethodKind::Query => "query",
            MethodKind::Procedure => "procedure",
        };
        assert_eq!(def["type"], expected, "{nsid}");
    }

    // An AppView for the app.bsky views the PDS patches (read-after-write).
    let app_view = Service::start("did:web:appview.test", "").await;
    let pds = Pds::start(&[
        ("PDS_BSKY_APP_VIEW_URL", app_view.url.as_str()),
        ("PDS_BSKY_APP_VIEW_DID", "did:web:appview.test"),
    ])
    .await;
    app_view.set_plc_url(&pds.plc_url);
    let alice = session(&pds, "alice").await;
    let bob = session(&pds, "bob").await;
    let dave = session(&pds, "dave").await;
    let erin = session(&pds, "erin").await;
    let a = Auth::Bearer;
    let mut called: BTreeSet<&str> = BTreeSet::new();
    macro_rules! check {
        ($nsid:expr, $auth:expr, $input:expr) => {{
            called.insert($nsid);
            call(&pds, $nsid, $auth, $input).await
        }};
    }

    // com.atproto.server
    check!("com.atproto.server.describeServer", Auth::None, q(&[]));
    check!(
        "com.atproto.server.createAccount",
        Auth::None,
        Input::Json(
            json!({"handle": "carol.test", "password": "carol-pw", "email": "carol@example.com"})
        )
    );
    let login = json!({"identifier": "alice.test", "password": "alice-pw"});
    let s1 = check!(
        "com.atproto.server.createSession",
        Auth::None,
        Input::Json(login.clone())
    );
    let s2 = call(
        &pds,
        "com.atproto.server.createSession",
        Auth::None,
        Input::Json(login),
    )
    .await;
    check!("com.atproto.server.getSession", a(&alice.access), q(&[]));
    check!(
        "com.atproto.server.refreshSession",
        a(s1["refreshJwt"].as_str().unwrap()),
        Input::Empty
    );
    check!(
        "com.atproto.server.deleteSession",
        a(s2["refreshJwt"].as_str().unwrap()),
        Input::Empty
    );
    check!(
        "com.atproto.server.getServiceAuth",
        a(&alice.access),
        q(&[
            ("aud", "did:web:pds.test"),
            ("lxm", "com.atproto.repo.uploadBlob")
        ])
    );
    check!(
        "com.atproto.server.createAppPassword",
        a(&alice.access),
        Input::Json(json!({"name": "app"}))
    );
    check!(
        "com.atproto.server.listAppPasswords",
        a(&alice.access),
        q(&[])
    );
    check!(
        "com.atproto.server.revokeAppPassword",
        a(&alice.access),
        Input::Json(json!({"name": "app"}))
    );
    check!(
        "com.atproto.server.deactivateAccount",
        a(&dave.access),
        Input::Json(json!({}))
    );
    check!(
        "com.atproto.server.activateAccount",
        a(&dave.access),
        Input::Empty
    );
    check!(
        "com.atproto.server.checkAccountStatus",
        a(&alice.access),
        q(&[])
    );
    // A signing key reserved for an account yet to arrive (no auth, as the reference).
    check!(
        "com.atproto.server.reserveSigningKey",
        Auth::None,
        Input::Json(json!({"did": "did:plc:arriving0000000000000000"}))
    );
    // The identity methods of moving accounts: alice's own credentials, an operation her PDS
    // signs (with the e-mailed code) that changes nothing, submitted back.
    check!(
        "com.atproto.identity.getRecommendedDidCredentials",
        a(&alice.access),
        q(&[])
    );
    check!(
        "com.atproto.identity.requestPlcOperationSignature",
        a(&alice.access),
        Input::Empty
    );
    let code = pds.last_code_to("alice@example.com");
    let signed = check!(
        "com.atproto.identity.signPlcOperation",
        a(&alice.access),
        Input::Json(json!({"token": code}))
    );
    check!(
        "com.atproto.identity.submitPlcOperation",
        a(&alice.access),
        Input::Json(json!({"operation": signed["operation"]}))
    );
    check!(
        "com.atproto.repo.listMissingBlobs",
        a(&alice.access),
        q(&[])
    );

    // The e-mail flows, each code read from the outbox.
    check!(
        "com.atproto.server.requestEmailConfirmation",
        a(&alice.access),
        Input::Empty
    );
    let code = pds.last_code_to("alice@example.com");
    check!(
        "com.atproto.server.confirmEmail",
        a(&alice.access),
        Input::Json(json!({"email": "alice@example.com", "token": code}))
    );
    check!(
        "com.atproto.server.requestEmailUpdate",
        a(&alice.access),
        Input::Empty
    );
    let code = pds.last_code_to("alice@example.com");
    check!(
        "com.atproto.server.updateEmail",
        a(&alice.access),
        Input::Json(json!({"email": "alice2@example.com", "token": code}))
    );
    check!(
        "com.atproto.server.requestPasswordReset",
        Auth::None,
        Input::Json(json!({"email": "alice2@example.com"}))
    );
    let code = pds.last_code_to("alice2@example.com");
    check!(
        "com.atproto.server.resetPassword",
        Auth::None,
        Input::Json(json!({"token": code, "password": "alice-pw"}))
    );
    check!(
        "com.atproto.server.requestAccountDelete",
        a(&bob.access),
        Input::Empty
    );
    let code = pds.last_code_to("bob@example.com");
    check!(
        "com.atproto.server.deleteAccount",
        Auth::None,
        Input::Json(json!({"did": bob.did, "password": "bob-pw", "token": code}))
    );
    check!(
        "com.atproto.server.createInviteCode",
        Auth::Admin,
        Input::Json(json!({"useCount": 1}))
    );
    let made = check!(
        "com.atproto.server.createInviteCodes",
        Auth::Admin,
        Input::Json(json!({"codeCount": 2, "useCount": 1, "forAccounts": [alice.did]}))
    );
    let code = made["codes"][0]["codes"][0].as_str().unwrap().to_owned();
    check!(
        "com.atproto.server.getAccountInviteCodes",
        a(&alice.access),
        q(&[])
    );
    check!(
        "com.atproto.admin.getInviteCodes",
        Auth::Admin,
        q(&[("sort", "usage")])
    );
    check!(
        "com.atproto.admin.disableInviteCodes",
        Auth::Admin,
        Input::Json(json!({"codes": [code]}))
    );
    check!(
        "com.atproto.admin.disableAccountInvites",
        Auth::Admin,
        Input::Json(json!({"account": alice.did}))
    );
    check!(
        "com.atproto.admin.enableAccountInvites",
        Auth::Admin,
        Input::Json(json!({"account": alice.did, "note": "restored"}))
    );
    check!(
        "com.atproto.temp.checkSignupQueue",
        a(&alice.access),
        q(&[])
    );

    // com.atproto.repo
    let blob = check!(
        "com.atproto.repo.uploadBlob",
        a(&alice.access),
        Input::Raw("image/png", PNG.to_vec())
    );
    let post = |text: &str| json!({"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-12-01T00:00:00.000Z"});
    let created = check!(
        "com.atproto.repo.createRecord",
        a(&alice.access),
        Input::Json(
            json!({"repo": alice.did, "collection": "app.bsky.feed.post", "record": post("one")})
        )
    );
    check!(
        "com.atproto.repo.putRecord",
        a(&alice.access),
        Input::Json(
            json!({"repo": alice.did, "collection": "app.bsky.actor.profile", "rkey": "self",
            "record": {"$type": "app.bsky.actor.profile", "displayName": "Alice", "avatar": blob["blob"]}})
        )
    );
    check!(
        "com.atproto.repo.applyWrites",
        a(&alice.access),
        Input::Json(json!({"repo": alice.did, "writes": [
            {"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post", "value": post("two")},
            {"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post", "rkey": "3kaaaaaaaaa22", "value": post("three")},
        ]}))
    );
    check!(
        "com.atproto.repo.deleteRecord",
        a(&alice.access),
        Input::Json(
            json!({"repo": alice.did, "collection": "app.bsky.feed.post", "rkey": "3kaaaaaaaaa22"})
        )
    );
    let rkey = created["uri"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    check!(
        "com.atproto.repo.getRecord",
        Auth::None,
        q(&[
            ("repo", &alice.did),
            ("collection", "app.bsky.feed.post"),
            ("rkey", &rkey)
        ])
    );
    check!(
        "com.atproto.repo.listRecords",
        Auth::None,
        q(&[("repo", &alice.did), ("collection", "app.bsky.feed.post")])
    );
    check!(
        "com.atproto.repo.describeRepo",
        Auth::None,
        q(&[("repo", &alice.did)])
    );

    // com.atproto.sync
    let did = alice.did.as_str();
    check!("com.atproto.sync.getRepo", Auth::None, q(&[("did", did)]));
    // The account's own export, imported again: accepted, and a no-op.
    let export = pds
        .get_bytes("com.atproto.sync.getRepo", &[("did", did)])
        .await
        .bytes()
        .await
        .unwrap()
        .to_vec();
    check!(
        "com.atproto.repo.importRepo",
        a(&alice.access),
        Input::Raw("application/vnd.ipld.car", export)
    );
    check!(
        "com.atproto.sync.getCheckout",
        Auth::None,
        q(&[("did", did)])
    );
    let latest = check!(
        "com.atproto.sync.getLatestCommit",
        Auth::None,
        q(&[("did", did)])
    );
    check!("com.atproto.sync.getHead", Auth::None, q(&[("did", did)]));
    check!(
        "com.atproto.sync.getRecord",
        Auth::None,
        q(&[
            ("did", did),
            ("collection", "app.bsky.feed.post"),
            ("rkey", &rkey)
        ])
    );
    check!(
        "com.atproto.sync.getBlocks",
        Auth::None,
        q(&[("did", did), ("cids", latest["cid"].as_str().unwrap())])
    );
    check!("com.atproto.sync.listRepos", Auth::None, q(&[]));
    check!(
        "com.atproto.sync.getRepoStatus",
        Auth::None,
        q(&[("did", did)])
    );
    let blob_cid = blob["blob"]["ref"]["$link"].as_str().unwrap().to_owned();
    check!(
        "com.atproto.sync.getBlob",
        Auth::None,
        q(&[("did", did), ("cid", &blob_cid)])
    );
    check!("com.atproto.sync.listBlobs", Auth::None, q(&[("did", did)]));

    // com.atproto.identity
    check!(
        "com.atproto.identity.resolveHandle",
        Auth::None,
        q(&[("handle", "alice.test")])
    );
    check!(
        "com.atproto.identity.updateHandle",
        a(&dave.access),
        Input::Json(json!({"handle": "dave2.test"}))
    );

    // com.atproto.admin
    check!(
        "com.atproto.admin.getAccountInfo",
        Auth::Admin,
        q(&[("did", did)])
    );
    check!(
        "com.atproto.admin.getAccountInfos",
        Auth::Admin,
        q(&[("dids", did), ("dids", dave.did.as_str())])
    );
    check!(
        "com.atproto.admin.updateSubjectStatus",
        Auth::Admin,
        Input::Json(
            json!({"subject": {"$type": "com.atproto.admin.defs#repoRef", "did": dave.did},
            "takedown": {"applied": false}})
        )
    );
    check!(
        "com.atproto.admin.updateAccountHandle",
        Auth::Admin,
        Input::Json(json!({"did": dave.did, "handle": "dave3.test"}))
    );
    check!(
        "com.atproto.admin.updateAccountPassword",
        Auth::Admin,
        Input::Json(json!({"did": dave.did, "password": "new-password"}))
    );
    check!(
        "com.atproto.admin.updateAccountEmail",
        Auth::Admin,
        Input::Json(json!({"account": "dave3.test", "email": "dave@new.example"}))
    );
    check!(
        "com.atproto.admin.sendEmail",
        Auth::Admin,
        Input::Json(
            json!({"recipientDid": dave.did, "senderDid": "did:web:pds.test",
            "subject": "A word from the operator", "content": "Hello <dave>"})
        )
    );
    let sent = pds.mails().pop().unwrap();
    assert_eq!(
        (sent.to.as_str(), sent.subject.as_str()),
        ("dave@new.example", "A word from the operator")
    );
    assert!(sent.html.contains("Hello &lt;dave&gt;"));
    check!(
        "com.atproto.admin.getSubjectStatus",
        Auth::Admin,
        q(&[("did", dave.did.as_str())])
    );
    check!(
        "com.atproto.admin.deleteAccount",
        Auth::Admin,
        Input::Json(json!({"did": erin.did}))
    );

    // app.bsky: preferences, and the AppView's views with alice's newer records patched in
    // (the AppView reports a rev older than all of them), each answer checked by its lexicon.
    check!(
        "app.bsky.actor.putPreferences",
        a(&alice.access),
        Input::Json(
            json!({"preferences": [{"$type": "app.bsky.actor.defs#adultContentPref", "enabled": true}]})
        )
    );
    check!("app.bsky.actor.getPreferences", a(&alice.access), q(&[]));
    app_view.set_rev(Some("2222222222222"));
    let profile = json!({"did": alice.did, "handle": "alice.test", "displayName": "Old"});
    let item = json!({"post": {"uri": format!("at://{}/app.bsky.feed.post/3kaaaaaaaaa22", alice.did),
        "cid": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
        "author": {"did": alice.did, "handle": "alice.test"},
        "record": {"$type": "app.bsky.feed.post", "text": "x", "createdAt": "2026-01-01T00:00:00.000Z"},
        "indexedAt": "2026-01-01T00:00:00.000Z"}});
    app_view.answer("app.bsky.actor.getProfile", profile.clone());
    app_view.answer("app.bsky.actor.getProfiles", json!({"profiles": [profile]}));
    for nsid in [
        "app.bsky.feed.getAuthorFeed",
        "app.bsky.feed.getTimeline",
        "app.bsky.feed.getActorLikes",
    ] {
        app_view.answer(nsid, json!({"feed": [item]}));
    }
    app_view.answer(
        "app.bsky.feed.getPostThread",
        json!({"thread": {"$type": "app.bsky.feed.defs#threadViewPost", "post": item["post"]}}),
    );
    let me = alice.did.as_str();
    check!(
        "app.bsky.actor.getProfile",
        a(&alice.access),
        q(&[("actor", me)])
    );
    check!(
        "app.bsky.actor.getProfiles",
        a(&alice.access),
        q(&[("actors", me)])
    );
    check!(
        "app.bsky.feed.getAuthorFeed",
        a(&alice.access),
        q(&[("actor", me)])
    );
    check!("app.bsky.feed.getTimeline", a(&alice.access), q(&[]));
    check!(
        "app.bsky.feed.getActorLikes",
        a(&alice.access),
        q(&[("actor", me)])
    );
    let thread_uri = item["post"]["uri"].as_str().unwrap().to_owned();
    check!(
        "app.bsky.feed.getPostThread",
        a(&alice.access),
        q(&[("uri", thread_uri.as_str())])
    );
    assert_eq!(
        app_view.seen().len(),
        6,
        "the six views came from the AppView"
    );

    let served: BTreeSet<&str> = methods.iter().map(|(nsid, _)| *nsid).collect();
    assert_eq!(
        served, called,
        "every method the router serves has a sample call here, and nothing else"
    );
}
