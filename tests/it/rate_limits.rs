//! Rate limits over HTTP on a real server: the budgets refuse with `429 RateLimitExceeded` and the
//! `RateLimit-*` headers, count per identifier and address, per account and per address, write
//! nothing when they refuse, can be bypassed by key or address, and are shared by every process
//! on DynamoDB. App passwords are capped and checked without an argon2 run each.

use std::sync::Arc;

use arroba::storage::dynamo::DynamoConfig;
use arroba::storage::{DynamoStorage, KeySealer, KvStore};
use arroba::xrpc::limits::{Budget, Caller, RateLimitConfig, RateLimiter};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::common::pds::{Pds, Session};
use crate::common::start_well_inside_the_window;

/// POSTs JSON as a client at `ip` (sent in the header the server is told to trust).
async fn post_from(
    pds: &Pds,
    nsid: &str,
    ip: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, HeaderMap, Value) {
    let mut request = pds
        .client
        .post(pds.xrpc(nsid))
        .header("x-client-ip", ip)
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| v.to_str().unwrap().to_owned())
}

fn login(identifier: &str, password: &str) -> Value {
    json!({"identifier": identifier, "password": password})
}

#[tokio::test]
async fn wrong_passwords_run_out_the_login_budget_per_identifier_and_address() {
    let pds = Pds::start(&[
        ("PDS_RATE_LIMITS", "create-session-5m=5"),
        ("PDS_CLIENT_IP_HEADER", "x-client-ip"),
    ])
    .await;
    let alice = pds.create_account("alice").await;
    let nsid = "com.atproto.server.createSession";
    start_well_inside_the_window(300).await;
    for tried in 1..=5u64 {
        let (status, headers, body) = post_from(
            &pds,
            nsid,
            "203.0.113.1",
            None,
            login(&alice.handle, "wrong"),
        )
        .await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(header(&headers, "ratelimit-limit").as_deref(), Some("5"));
        assert_eq!(
            header(&headers, "ratelimit-remaining"),
            Some((5 - tried).to_string())
        );
        assert_eq!(
            header(&headers, "ratelimit-policy").as_deref(),
            Some("5;w=300")
        );
    }
    // The sixth try is refused before the password is looked at, even the right one.
    let (status, headers, body) = post_from(
        &pds,
        nsid,
        "203.0.113.1",
        None,
        login(&alice.handle, "alice-pw"),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "RateLimitExceeded");
    assert_eq!(
        header(&headers, "ratelimit-remaining").as_deref(),
        Some("0")
    );
    let now = chrono::Utc::now().timestamp();
    let reset: i64 = header(&headers, "ratelimit-reset")
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset > now && reset <= now + 300, "{reset} vs {now}");
    let retry: i64 = header(&headers, "retry-after").unwrap().parse().unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    // Another address, or another identifier, has its own budget.
    let (status, _, body) = post_from(
        &pds,
        nsid,
        "203.0.113.2",
        None,
        login(&alice.handle, "alice-pw"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = post_from(&pds, nsid, "203.0.113.1", None, login(&alice.did, "x")).await;
    assert_eq!(status, 401, "the DID is another identifier");
    // Browsers may read the headers.
    let response = pds
        .client
        .post(pds.xrpc(nsid))
        .header("origin", "https://app.example")
        .header("x-client-ip", "203.0.113.1")
        .json(&login(&alice.handle, "wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(
        header(response.headers(), "access-control-expose-headers").as_deref(),
        Some("*")
    );
}

#[tokio::test]
async fn writes_spend_points_by_kind_and_a_refused_write_writes_nothing() {
    let pds = Pds::start(&[("PDS_RATE_LIMITS", "repo-write-hour=11")]).await;
    start_well_inside_the_window(3600).await;
    let alice = pds.create_account("alice").await;
    let write = |nsid: &'static str, body: Value| {
        let (pds, token) = (&pds, alice.access.clone());
        async move {
            let (status, headers, body) =
                post_from(pds, nsid, "198.51.100.1", Some(&token), body).await;
            (status, header(&headers, "ratelimit-remaining"), body)
        }
    };
    let post = |text: &str| {
        json!({"repo": alice.did, "collection": "app.bsky.feed.post",
            "record": {"text": text, "createdAt": "2026-01-01T00:00:00.000Z"}})
    };
    let (status, left, body) = write("com.atproto.repo.createRecord", post("one")).await;
    assert_eq!((status, left.as_deref()), (200, Some("8")), "{body}");
    let rkey = body["uri"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let (status, left, _) = write(
        "com.atproto.repo.putRecord",
        json!({"repo": alice.did, "collection": "app.bsky.feed.post", "rkey": rkey,
            "record": {"text": "edited", "createdAt": "2026-01-01T00:00:00.000Z"}}),
    )
    .await;
    assert_eq!((status, left.as_deref()), (200, Some("6")));
    let (status, left, _) = write(
        "com.atproto.repo.applyWrites",
        json!({"repo": alice.did, "writes": [
            {"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post",
             "value": {"text": "two", "createdAt": "2026-01-01T00:00:00.000Z"}},
            {"$type": "com.atproto.repo.applyWrites#delete", "collection": "app.bsky.feed.post",
             "rkey": rkey},
        ]}),
    )
    .await;
    assert_eq!((status, left.as_deref()), (200, Some("2")));
    let head = pds.head(&alice.did).await;
    // A create costs 3; 2 are left.
    let (status, left, body) = write("com.atproto.repo.createRecord", post("three")).await;
    assert_eq!((status, left.as_deref()), (429, Some("0")), "{body}");
    assert_eq!(
        pds.head(&alice.did).await,
        head,
        "the refused write wrote nothing"
    );
    let (_, listed) = pds
        .get(
            "com.atproto.repo.listRecords",
            None,
            &[("repo", &alice.did), ("collection", "app.bsky.feed.post")],
        )
        .await;
    assert_eq!(listed["records"].as_array().unwrap().len(), 1);
    // Another account's budget is its own.
    let bob = pds.create_account("bob").await;
    pds.create_post(&bob, "bob's").await;
}

#[tokio::test]
async fn account_creation_and_handle_changes_have_their_budgets() {
    let pds = Pds::start(&[
        ("PDS_RATE_LIMITS", "create-account-5m=2,update-handle-5m=1"),
        ("PDS_CLIENT_IP_HEADER", "x-client-ip"),
    ])
    .await;
    start_well_inside_the_window(300).await;
    let create = |name: &str, ip: &'static str| {
        let body = json!({"handle": format!("{name}.test"), "password": "pw-123456"});
        let pds = &pds;
        async move { post_from(pds, "com.atproto.server.createAccount", ip, None, body).await }
    };
    assert_eq!(create("rate-a1", "192.0.2.1").await.0, 200);
    let (status, _, body) = create("rate-a2", "192.0.2.1").await;
    assert_eq!(status, 200);
    let second = Session {
        did: body["did"].as_str().unwrap().into(),
        handle: body["handle"].as_str().unwrap().into(),
        access: body["accessJwt"].as_str().unwrap().into(),
        refresh: body["refreshJwt"].as_str().unwrap().into(),
    };
    let (status, _, body) = create("rate-a3", "192.0.2.1").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("RateLimitExceeded"))
    );
    // The refused account was not created: its handle is still free.
    assert_eq!(create("rate-a3", "192.0.2.2").await.0, 200);

    let rename = |handle: &'static str| {
        let (pds, token) = (&pds, second.access.clone());
        async move {
            post_from(
                pds,
                "com.atproto.identity.updateHandle",
                "192.0.2.9",
                Some(&token),
                json!({"handle": handle}),
            )
            .await
            .0
        }
    };
    assert_eq!(rename("renamed.test").await, 200);
    assert_eq!(rename("renamed-again.test").await, 429);
}

#[tokio::test]
async fn the_bypass_key_and_addresses_skip_every_limit_and_limits_can_be_off() {
    let pds = Pds::start(&[
        ("PDS_RATE_LIMITS", "create-account-5m=1"),
        ("PDS_CLIENT_IP_HEADER", "x-client-ip"),
        ("PDS_RATE_LIMIT_BYPASS_KEY", "let-me-through"),
        ("PDS_RATE_LIMIT_BYPASS_IPS", "192.0.2.50"),
    ])
    .await;
    start_well_inside_the_window(300).await;
    let create = |name: &str, ip: &str, key: Option<&str>| {
        let mut request = pds
            .client
            .post(pds.xrpc("com.atproto.server.createAccount"))
            .header("x-client-ip", ip)
            .json(&json!({"handle": format!("{name}.test"), "password": "pw-123456"}));
        if let Some(key) = key {
            request = request.header("x-ratelimit-bypass", key);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(create("rate-b1", "192.0.2.1", None).await, 200);
    assert_eq!(create("rate-b2", "192.0.2.1", None).await, 429);
    assert_eq!(create("rate-b3", "192.0.2.1", Some("wrong-key")).await, 429);
    assert_eq!(
        create("rate-b4", "192.0.2.1", Some("let-me-through")).await,
        200
    );
    assert_eq!(create("rate-b5", "192.0.2.50", None).await, 200);
    assert_eq!(create("rate-b6", "192.0.2.50", None).await, 200);

    let off = Pds::start(&[
        ("PDS_RATE_LIMITS", "create-account-5m=1"),
        ("PDS_RATE_LIMITS_ENABLED", "false"),
    ])
    .await;
    for name in ["rate-c1", "rate-c2", "rate-c3"] {
        off.create_account(name).await;
    }
}

#[tokio::test]
async fn without_a_client_address_header_the_socket_address_counts() {
    let pds = Pds::start(&[("PDS_RATE_LIMITS", "create-account-5m=1")]).await;
    start_well_inside_the_window(300).await;
    pds.create_account("rate-d1").await;
    // A header the server was not told to trust changes nothing.
    let (status, _, _) = post_from(
        &pds,
        "com.atproto.server.createAccount",
        "192.0.2.77",
        None,
        json!({"handle": "rate-d2.test", "password": "pw-123456"}),
    )
    .await;
    assert_eq!(status, 429);
}

#[tokio::test]
async fn on_dynamodb_every_process_shares_the_counts() {
    let sdk = crate::common::sdk_config().await;
    let prefix = format!("t{}-", hex::encode(rand::random::<[u8; 6]>()));
    let storage = DynamoStorage::with_sdk_config(
        &sdk,
        DynamoConfig::new(prefix, Some(KeySealer::ephemeral())),
    );
    storage.create_tables().await.unwrap();
    let storage: Arc<dyn KvStore> = Arc::new(storage);
    let mut config = RateLimitConfig::default();
    config.points.insert("repo-write-hour", 30);
    // Two limiters on one table: two Lambda instances.
    let limiters = [
        Arc::new(RateLimiter::shared(config.clone(), storage.clone())),
        Arc::new(RateLimiter::shared(config, storage)),
    ];
    let caller = Caller {
        ip: None,
        bypass: false,
    };
    start_well_inside_the_window(3600).await;
    let spends = (0..24).map(|i| {
        let limiter = limiters[i % 2].clone();
        let caller = caller.clone();
        tokio::spawn(async move {
            limiter
                .spend(&caller, Budget::RepoWrite, "did:plc:shared", 3)
                .await
                .is_ok()
        })
    });
    let mut granted = 0;
    for spend in spends {
        granted += usize::from(spend.await.unwrap());
    }
    assert_eq!(
        granted, 10,
        "30 points in all, 3 a write, across both processes"
    );
}

#[tokio::test]
async fn app_passwords_are_capped_and_kept_as_digests_so_a_login_hashes_once() {
    let pds = Pds::start(&[("PDS_RATE_LIMITS_ENABLED", "false")]).await;
    let alice = pds.create_account("alice").await;
    let mut last = String::new();
    for i in 0..arroba::accounts::MAX_APP_PASSWORDS {
        let (status, body) = pds
            .post(
                "com.atproto.server.createAppPassword",
                Some(&alice.access),
                json!({"name": format!("app {i}")}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        last = body["password"].as_str().unwrap().to_owned();
    }
    let (status, body) = pds
        .post(
            "com.atproto.server.createAppPassword",
            Some(&alice.access),
            json!({"name": "one too many"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidRequest"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Too many app passwords")
    );
    // Stored as digests, so a login computes one argon2 (the main password) and one SHA-256,
    // never one argon2 per app password.
    let did = arroba::syntax::Did::parse(&alice.did).unwrap();
    let account = arroba::storage::Accounts(pds.state.storage())
        .get(&did)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        account.app_passwords.len(),
        arroba::accounts::MAX_APP_PASSWORDS
    );
    assert!(
        account
            .app_passwords
            .iter()
            .all(|a| a.hash.starts_with("sha256:")),
        "{:?}",
        account.app_passwords[0].hash
    );
    assert!(account.password_hash.starts_with("$argon2id$"));
    let (status, _) = pds
        .post(
            "com.atproto.server.createSession",
            None,
            login(&alice.handle, &last),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = pds
        .post(
            "com.atproto.server.createSession",
            None,
            login(&alice.handle, "nope"),
        )
        .await;
    assert_eq!(status, 401);
}
