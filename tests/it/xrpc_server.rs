//! `com.atproto.server.*`, identity, admin and well-known routes over HTTP against a real PDS
//! on a socket (embedded store, real PLC directory).

use crate::common::pds::{ADMIN_PASSWORD, Pds};
use serde_json::json;

#[tokio::test]
async fn describe_server_and_well_known_routes() {
    let pds = Pds::start(&[]).await;
    let (status, body) = pds
        .get("com.atproto.server.describeServer", None, &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["did"], "did:web:pds.test");
    assert_eq!(body["availableUserDomains"], json!([".test"]));
    let alice = pds.create_account("alice").await;
    let resp = pds
        .client
        .get(format!("{}/.well-known/atproto-did", pds.url))
        .header("host", "alice.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), alice.did);
    let resp = pds
        .client
        .get(format!("{}/.well-known/atproto-did", pds.url))
        .header("host", "nobody.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let doc: serde_json::Value = pds
        .client
        .get(format!("{}/.well-known/did.json", pds.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["id"], "did:web:pds.test");
    assert_eq!(pds.get("_health", None, &[]).await.0, 200);
    // CORS for browsers, on every response and preflight.
    let resp = pds
        .client
        .get(pds.xrpc("com.atproto.server.describeServer"))
        .header("origin", "https://app.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let pre = pds
        .client
        .request(
            reqwest::Method::OPTIONS,
            pds.xrpc("com.atproto.repo.createRecord"),
        )
        .header("origin", "https://app.test")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 200);
    // A method answered nowhere here goes to its service; with none configured, that is said.
    let (status, body) = pds.get("com.example.doesNotExist", None, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidRequest"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("No service configured for com.example.doesNotExist"),
        "{body}"
    );
    let (status, _) = pds.get("com.atproto.server.createSession", None, &[]).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn create_account_publishes_a_did_and_enforces_handle_rules() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    assert!(alice.did.starts_with("did:plc:"));
    assert_eq!(alice.handle, "alice.test");
    let doc = pds
        .state
        .resolver()
        .resolve_did(&arroba::syntax::Did::parse(&alice.did).unwrap())
        .await
        .unwrap();
    assert_eq!(doc.handle().unwrap().as_str(), "alice.test");
    assert_eq!(doc.pds_endpoint(), Some("http://localhost:2583"));
    for (handle, error) in [
        ("alice.test", "HandleNotAvailable"),
        ("al.test", "InvalidHandle"),
        ("a.b.test", "InvalidHandle"),
        ("bob.example.com", "UnsupportedDomain"),
        // Syntax is the lexicon's to check, before any rule of ours (as the reference does).
        ("not a handle", "InvalidRequest"),
    ] {
        let (status, body) = pds
            .post(
                "com.atproto.server.createAccount",
                None,
                json!({"handle": handle, "password": "x"}),
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(error)),
            "{handle}: {body}"
        );
    }
    let (status, body) = pds
        .post(
            "com.atproto.server.createAccount",
            None,
            json!({"handle": "carol.test", "password": "x", "email": "alice@example.com"}),
        )
        .await;
    assert_eq!(status, 400, "email already used: {body}");
    let (status, _) = pds
        .post(
            "com.atproto.server.createAccount",
            None,
            json!({"handle": "dave.test"}),
        )
        .await;
    assert_eq!(status, 400, "a password is required");
    // Refused attempts left nothing behind: carol.test is free.
    pds.create_account("carol").await;
}

#[tokio::test]
async fn invite_codes_are_required_when_configured_and_single_use() {
    let pds = Pds::start(&[("PDS_INVITE_REQUIRED", "true")]).await;
    let (status, body) = pds
        .post(
            "com.atproto.server.createAccount",
            None,
            json!({"handle": "alice.test", "password": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidInviteCode"))
    );
    let (status, _) = pds
        .post(
            "com.atproto.server.createInviteCode",
            None,
            json!({"useCount": 1}),
        )
        .await;
    assert_eq!(status, 401, "admin only");
    let (status, body) = pds
        .admin_post(
            "com.atproto.server.createInviteCode",
            json!({"useCount": 1}),
        )
        .await;
    assert_eq!(status, 200);
    let code = body["code"].as_str().unwrap().to_owned();
    let (status, body) = pds
        .post(
            "com.atproto.server.createAccount",
            None,
            json!({"handle": "alice.test", "password": "x", "inviteCode": code}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = pds
        .post(
            "com.atproto.server.createAccount",
            None,
            json!({"handle": "bob.test", "password": "x", "inviteCode": code}),
        )
        .await;
    assert_eq!(status, 400, "used up");
    let (status, body) = pds
        .admin_post(
            "com.atproto.server.createInviteCodes",
            json!({"codeCount": 3, "useCount": 2, "forAccounts": ["did:plc:aaa", "did:plc:bbb"]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["codes"].as_array().unwrap().len(), 2);
    assert_eq!(body["codes"][0]["codes"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn sessions_by_handle_did_or_email_refresh_once_and_end() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    for identifier in [
        "alice.test",
        alice.did.as_str(),
        "alice@example.com",
        "ALICE@EXAMPLE.COM",
    ] {
        let (status, body) = pds
            .post(
                "com.atproto.server.createSession",
                None,
                json!({"identifier": identifier, "password": "alice-pw"}),
            )
            .await;
        assert_eq!(status, 200, "{identifier}: {body}");
        assert_eq!(body["did"], alice.did);
        assert_eq!(body["active"], true);
    }
    for (identifier, password) in [
        ("alice.test", "wrong"),
        ("nobody.test", "alice-pw"),
        ("alice.test", ""),
    ] {
        let (status, body) = pds
            .post(
                "com.atproto.server.createSession",
                None,
                json!({"identifier": identifier, "password": password}),
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("AuthenticationRequired")),
            "{identifier}"
        );
    }
    let (status, body) = pds
        .get("com.atproto.server.getSession", Some(&alice.access), &[])
        .await;
    assert_eq!(
        (status, body["handle"].as_str(), body["email"].as_str()),
        (200, Some("alice.test"), Some("alice@example.com"))
    );
    // A refresh token is not an access token, and vice versa.
    assert_eq!(
        pds.get("com.atproto.server.getSession", Some(&alice.refresh), &[])
            .await
            .0,
        401
    );
    assert_eq!(
        pds.post(
            "com.atproto.server.refreshSession",
            Some(&alice.access),
            json!({})
        )
        .await
        .0,
        401
    );
    let (status, refreshed) = pds
        .post(
            "com.atproto.server.refreshSession",
            Some(&alice.refresh),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{refreshed}");
    let (status, body) = pds
        .post(
            "com.atproto.server.refreshSession",
            Some(&alice.refresh),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("ExpiredToken")),
        "refresh tokens are single-use"
    );
    let new_refresh = refreshed["refreshJwt"].as_str().unwrap();
    assert_eq!(
        pds.post(
            "com.atproto.server.deleteSession",
            Some(new_refresh),
            json!({})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        pds.post(
            "com.atproto.server.refreshSession",
            Some(new_refresh),
            json!({})
        )
        .await
        .0,
        400,
        "deleted sessions cannot refresh"
    );
}

#[tokio::test]
async fn app_passwords_sign_in_with_reduced_rights_and_can_be_revoked() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let (status, created) = pds
        .post(
            "com.atproto.server.createAppPassword",
            Some(&alice.access),
            json!({"name": "phone"}),
        )
        .await;
    assert_eq!(status, 200);
    let app_pw = created["password"].as_str().unwrap();
    assert_eq!(app_pw.len(), 19);
    let (status, _) = pds
        .post(
            "com.atproto.server.createAppPassword",
            Some(&alice.access),
            json!({"name": "phone"}),
        )
        .await;
    assert_eq!(status, 400, "names are unique");
    let (_, list) = pds
        .get(
            "com.atproto.server.listAppPasswords",
            Some(&alice.access),
            &[],
        )
        .await;
    assert_eq!(list["passwords"][0]["name"], "phone");
    let (status, session) = pds
        .post(
            "com.atproto.server.createSession",
            None,
            json!({"identifier": "alice.test", "password": app_pw}),
        )
        .await;
    assert_eq!(status, 200);
    let app_access = session["accessJwt"].as_str().unwrap();
    pds.post("com.atproto.repo.createRecord", Some(app_access), json!({"repo": alice.did, "collection": "app.bsky.feed.post", "record": {"text": "from my phone", "createdAt": "2026-01-01T00:00:00.000Z"}})).await;
    let (status, _) = pds
        .post(
            "com.atproto.server.createAppPassword",
            Some(app_access),
            json!({"name": "another"}),
        )
        .await;
    assert_eq!(status, 401, "app passwords cannot manage app passwords");
    assert_eq!(
        pds.post(
            "com.atproto.server.deactivateAccount",
            Some(app_access),
            json!({})
        )
        .await
        .0,
        401
    );
    assert_eq!(
        pds.post(
            "com.atproto.server.revokeAppPassword",
            Some(&alice.access),
            json!({"name": "phone"})
        )
        .await
        .0,
        200
    );
    let (status, _) = pds
        .post(
            "com.atproto.server.createSession",
            None,
            json!({"identifier": "alice.test", "password": app_pw}),
        )
        .await;
    assert_eq!(status, 401, "revoked");
    let refresh = session["refreshJwt"].as_str().unwrap();
    assert_eq!(
        pds.post(
            "com.atproto.server.refreshSession",
            Some(refresh),
            json!({})
        )
        .await
        .0,
        400,
        "its sessions end too"
    );
}

#[tokio::test]
async fn service_auth_tokens_verify_against_the_accounts_did_document() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let (status, body) = pds
        .get(
            "com.atproto.server.getServiceAuth",
            Some(&alice.access),
            &[
                ("aud", "did:web:feed.test"),
                ("lxm", "app.bsky.feed.getFeedSkeleton"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    let now = chrono::Utc::now().timestamp();
    let lxm = arroba::syntax::Nsid::parse("app.bsky.feed.getFeedSkeleton").unwrap();
    let claims = arroba::identity::service_auth::verify(
        pds.state.resolver(),
        token,
        "did:web:feed.test",
        Some(&lxm),
        now,
    )
    .await
    .unwrap();
    assert_eq!(claims.iss, alice.did);
    let (status, _) = pds
        .get(
            "com.atproto.server.getServiceAuth",
            Some(&alice.access),
            &[("aud", "not a did")],
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = pds
        .get(
            "com.atproto.server.getServiceAuth",
            Some(&alice.access),
            &[("aud", "did:web:x.test"), ("exp", "1")],
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn deactivation_stops_writes_and_reads_until_activation() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    pds.create_post(&alice, "before").await;
    assert_eq!(
        pds.post(
            "com.atproto.server.deactivateAccount",
            Some(&alice.access),
            json!({})
        )
        .await
        .0,
        200
    );
    let (status, body) = pds.post("com.atproto.repo.createRecord", Some(&alice.access), json!({"repo": alice.did, "collection": "app.bsky.feed.post", "record": {"text": "x", "createdAt": "2026-01-01T00:00:00.000Z"}})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("AccountDeactivated"))
    );
    let (status, body) = pds
        .get("com.atproto.sync.getRepo", None, &[("did", &alice.did)])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("RepoDeactivated"))
    );
    let (_, st) = pds
        .get(
            "com.atproto.sync.getRepoStatus",
            None,
            &[("did", &alice.did)],
        )
        .await;
    assert_eq!(
        (st["active"].as_bool(), st["status"].as_str()),
        (Some(false), Some("deactivated"))
    );
    let (status, session) = pds
        .post(
            "com.atproto.server.createSession",
            None,
            json!({"identifier": "alice.test", "password": "alice-pw"}),
        )
        .await;
    assert_eq!(
        (
            status,
            session["active"].as_bool(),
            session["status"].as_str()
        ),
        (200, Some(false), Some("deactivated"))
    );
    let (status, check) = pds
        .get(
            "com.atproto.server.checkAccountStatus",
            Some(&alice.access),
            &[],
        )
        .await;
    assert_eq!(
        (
            status,
            check["activated"].as_bool(),
            check["indexedRecords"].as_u64()
        ),
        (200, Some(false), Some(1))
    );
    assert_eq!(
        pds.post(
            "com.atproto.server.activateAccount",
            Some(&alice.access),
            json!({})
        )
        .await
        .0,
        200
    );
    pds.create_post(&alice, "after").await;
    let events = pds
        .state
        .storage()
        .read_repo_events(&arroba::syntax::Did::parse(&alice.did).unwrap(), None, 100)
        .await
        .unwrap();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match &e.body {
            arroba::storage::EventBody::Commit(c) => format!("commit:{}", c.ops.len()),
            arroba::storage::EventBody::Account { active, .. } => format!("account:{active}"),
            arroba::storage::EventBody::Identity { .. } => "identity".into(),
            arroba::storage::EventBody::Sync { .. } => "sync".into(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "identity",
            "account:true",
            "commit:0",
            "sync",
            "commit:1",
            "account:false",
            "account:true",
            "identity",
            "commit:0",
            "commit:1"
        ]
    );
}

#[tokio::test]
async fn delete_account_needs_the_password_and_the_mailed_code_and_removes_the_account() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let (status, _) = pds
        .post(
            "com.atproto.server.deleteAccount",
            None,
            json!({"did": alice.did, "password": "wrong", "token": "x"}),
        )
        .await;
    assert_eq!(status, 401);
    let (status, body) = pds
        .post(
            "com.atproto.server.deleteAccount",
            None,
            json!({"did": alice.did, "password": "alice-pw", "token": "AAAAA-AAAAA"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidToken")),
        "the e-mailed code is required"
    );
    let (status, _) = pds
        .post(
            "com.atproto.server.requestAccountDelete",
            Some(&alice.access),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let code = pds.last_code_to("alice@example.com");
    assert_eq!(
        pds.post(
            "com.atproto.server.deleteAccount",
            None,
            json!({"did": alice.did, "password": "alice-pw", "token": code})
        )
        .await
        .0,
        200
    );
    let (_, st) = pds
        .get(
            "com.atproto.sync.getRepoStatus",
            None,
            &[("did", &alice.did)],
        )
        .await;
    assert_eq!(st["status"], "deleted");
    assert_eq!(
        pds.post(
            "com.atproto.server.createSession",
            None,
            json!({"identifier": alice.did, "password": "alice-pw"})
        )
        .await
        .0,
        401
    );
    assert_eq!(
        pds.get("com.atproto.server.getSession", Some(&alice.access), &[])
            .await
            .0,
        200,
        "access tokens live out their two hours, but the repo is gone"
    );
    // The handle and email are free again.
    let (status, _) = pds
        .post(
            "com.atproto.server.createAccount",
            None,
            json!({"handle": "alice.test", "password": "x", "email": "alice@example.com"}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn resolve_and_update_handles() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let (status, body) = pds
        .get(
            "com.atproto.identity.resolveHandle",
            None,
            &[("handle", "alice.test")],
        )
        .await;
    assert_eq!(
        (status, body["did"].as_str()),
        (200, Some(alice.did.as_str()))
    );
    let (status, body) = pds
        .get(
            "com.atproto.identity.resolveHandle",
            None,
            &[("handle", "nobody.test")],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("HandleNotFound"))
    );
    assert_eq!(
        pds.get(
            "com.atproto.identity.resolveHandle",
            None,
            &[("handle", "no")]
        )
        .await
        .0,
        400
    );
    assert_eq!(
        pds.post(
            "com.atproto.identity.updateHandle",
            Some(&alice.access),
            json!({"handle": "alice2.test"})
        )
        .await
        .0,
        200
    );
    let (_, body) = pds
        .get(
            "com.atproto.identity.resolveHandle",
            None,
            &[("handle", "alice2.test")],
        )
        .await;
    assert_eq!(body["did"], alice.did);
    assert_eq!(
        pds.get(
            "com.atproto.identity.resolveHandle",
            None,
            &[("handle", "alice.test")]
        )
        .await
        .0,
        400,
        "the old handle is released"
    );
    pds.state
        .resolver()
        .invalidate(Some(&arroba::syntax::Did::parse(&alice.did).unwrap()), None);
    let doc = pds
        .state
        .resolver()
        .resolve_did(&arroba::syntax::Did::parse(&alice.did).unwrap())
        .await
        .unwrap();
    assert_eq!(
        doc.handle().unwrap().as_str(),
        "alice2.test",
        "the DID document follows"
    );
    let bob = pds.create_account("bob").await;
    let (status, body) = pds
        .post(
            "com.atproto.identity.updateHandle",
            Some(&bob.access),
            json!({"handle": "alice2.test"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("HandleNotAvailable"))
    );
}

#[tokio::test]
async fn admin_methods_need_basic_auth_and_take_accounts_down() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    pds.create_post(&alice, "hi").await;
    let (status, _) = pds
        .client
        .get(pds.xrpc("com.atproto.admin.getAccountInfo"))
        .basic_auth("admin", Some("wrong"))
        .query(&[("did", &alice.did)])
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 401);
    let (status, info) = pds
        .admin_get("com.atproto.admin.getAccountInfo", &[("did", &alice.did)])
        .await;
    assert_eq!(
        (status, info["handle"].as_str(), info["email"].as_str()),
        (200, Some("alice.test"), Some("alice@example.com"))
    );
    let (status, infos) = pds
        .admin_get(
            "com.atproto.admin.getAccountInfos",
            &[("dids", &alice.did), ("dids", "did:plc:nobody")],
        )
        .await;
    assert_eq!((status, infos["infos"].as_array().unwrap().len()), (200, 1));
    let takedown = json!({"subject": {"$type": "com.atproto.admin.defs#repoRef", "did": alice.did}, "takedown": {"applied": true, "ref": "T1"}});
    assert_eq!(
        pds.admin_post("com.atproto.admin.updateSubjectStatus", takedown)
            .await
            .0,
        200
    );
    let (status, body) = pds
        .get(
            "com.atproto.repo.listRecords",
            None,
            &[("repo", &alice.did), ("collection", "app.bsky.feed.post")],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("RepoTakendown"))
    );
    let (status, body) = pds
        .post(
            "com.atproto.server.createSession",
            None,
            json!({"identifier": "alice.test", "password": "alice-pw"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("AccountTakedown"))
    );
    assert_eq!(
        pds.post(
            "com.atproto.server.refreshSession",
            Some(&alice.refresh),
            json!({})
        )
        .await
        .0,
        400,
        "sessions revoked"
    );
    let restore = json!({"subject": {"$type": "com.atproto.admin.defs#repoRef", "did": alice.did}, "takedown": {"applied": false}});
    assert_eq!(
        pds.admin_post("com.atproto.admin.updateSubjectStatus", restore)
            .await
            .0,
        200
    );
    assert_eq!(
        pds.admin_post(
            "com.atproto.admin.updateAccountPassword",
            json!({"did": alice.did, "password": "new-pw"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        pds.post(
            "com.atproto.server.createSession",
            None,
            json!({"identifier": "alice.test", "password": "new-pw"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        pds.admin_post(
            "com.atproto.admin.updateAccountHandle",
            json!({"did": alice.did, "handle": "alicia.test"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        pds.get(
            "com.atproto.identity.resolveHandle",
            None,
            &[("handle", "alicia.test")]
        )
        .await
        .1["did"],
        alice.did
    );
    assert_eq!(
        pds.admin_post("com.atproto.admin.deleteAccount", json!({"did": alice.did}))
            .await
            .0,
        200
    );
    assert_eq!(
        pds.get(
            "com.atproto.sync.getRepoStatus",
            None,
            &[("did", &alice.did)]
        )
        .await
        .1["status"],
        "deleted"
    );
    let _ = ADMIN_PASSWORD;
}

/// The state the PLC directory holds for `did` now.
async fn plc_state(pds: &Pds, did: &str) -> arroba::identity::plc::PlcData {
    let did = arroba::syntax::Did::parse(did).unwrap();
    let last = pds.state.plc().last_operation(&did).await.unwrap();
    last.data().unwrap()
}

#[tokio::test]
async fn new_dids_list_the_operators_rotation_key_which_alone_can_update_them() {
    use arroba::crypto::{Algorithm, Keypair};

    let operator = Keypair::from_seed(Algorithm::K256, b"operator rotation key");
    let secret = hex::encode(operator.to_bytes());
    let pds = Pds::start(&[("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", &secret)]).await;
    let recovery = Keypair::from_seed(Algorithm::K256, b"the user's recovery key");
    let (status, body) = pds
        .post(
            "com.atproto.server.createAccount",
            None,
            json!({"handle": "carol.test", "password": "carol-pw", "email": "carol@example.com",
                   "recoveryKey": recovery.public_key().to_did_key()}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let did = body["did"].as_str().unwrap();
    let data = plc_state(&pds, did).await;
    assert_eq!(data.rotation_keys.len(), 3, "{:?}", data.rotation_keys);
    assert_eq!(data.rotation_keys[0], recovery.public_key().to_did_key());
    assert_eq!(data.rotation_keys[2], operator.public_key().to_did_key());

    // The operator's key is enough for the directory to accept a change (as after losing the
    // account's own keys).
    pds.state
        .plc()
        .update(&arroba::syntax::Did::parse(did).unwrap(), &operator, |d| {
            d.also_known_as = vec!["at://carol-recovered.test".into()];
        })
        .await
        .unwrap();
    let data = plc_state(&pds, did).await;
    assert_eq!(data.also_known_as, ["at://carol-recovered.test"]);

    // Without the setting a new DID lists only the account's own rotation key.
    let plain = Pds::start(&[]).await;
    let dave = plain.create_account("dave").await;
    assert_eq!(plc_state(&plain, &dave.did).await.rotation_keys.len(), 1);
}
