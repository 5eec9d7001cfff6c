//! The bad-input matrix: every case gets the right XRPC error and status, never a 500, and no
//! repo changes.

use crate::common::pds::{JWT_SECRET, Pds, Session};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

fn token(typ: &str, scope: &str, sub: &str, exp_offset: i64, secret: &str) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some(typ.into());
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"scope": scope, "sub": sub, "aud": "did:web:pds.test", "iat": now, "exp": now + exp_offset, "jti": "x"});
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn unsigned_none_token(sub: &str) -> String {
    use base64::Engine;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = chrono::Utc::now().timestamp();
    format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "at+jwt"})),
        b64(
            json!({"scope": "com.atproto.access", "sub": sub, "aud": "did:web:pds.test", "exp": now + 3600})
        )
    )
}

fn create_body(s: &Session, collection: &str, rkey: Option<&str>, record: Value) -> Value {
    let mut body = json!({"repo": s.did, "collection": collection, "record": record});
    if let Some(r) = rkey {
        body["rkey"] = json!(r);
    }
    body
}

fn post(text: &str) -> Value {
    json!({"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-01-01T00:00:00.000Z"})
}

#[tokio::test]
async fn every_bad_input_gets_a_clear_error_and_changes_nothing() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let bob = pds.create_account("bob").await;
    pds.create_post(&alice, "existing").await;
    let heads = || async { (pds.head(&alice.did).await, pds.head(&bob.did).await) };
    let before = heads().await;

    let good = create_body(&alice, "app.bsky.feed.post", None, post("x"));
    let big_text = "x".repeat(1_000_001);
    let writes_201: Vec<Value> = (0..201)
        .map(|i| json!({"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post", "rkey": format!("3kaaaaaa{i:05}"), "value": post("x")}))
        .collect();
    let cases: Vec<(&str, Option<String>, Value, u16, &str)> = vec![
        (
            "no token",
            None,
            good.clone(),
            401,
            "AuthenticationRequired",
        ),
        (
            "expired",
            Some(token(
                "at+jwt",
                "com.atproto.access",
                &alice.did,
                -3600,
                JWT_SECRET,
            )),
            good.clone(),
            400,
            "ExpiredToken",
        ),
        (
            "forged",
            Some(token(
                "at+jwt",
                "com.atproto.access",
                &alice.did,
                3600,
                "some-other-secret-0123456789abcdef",
            )),
            good.clone(),
            401,
            "InvalidToken",
        ),
        (
            "alg none",
            Some(unsigned_none_token(&alice.did)),
            good.clone(),
            401,
            "InvalidToken",
        ),
        (
            "refresh token as access",
            Some(alice.refresh.clone()),
            good.clone(),
            401,
            "InvalidToken",
        ),
        (
            "garbage token",
            Some("not.a.jwt".into()),
            good.clone(),
            401,
            "InvalidToken",
        ),
        (
            "another user's repo",
            Some(bob.access.clone()),
            good.clone(),
            403,
            "Forbidden",
        ),
        (
            "invalid NSID",
            Some(alice.access.clone()),
            create_body(&alice, "not-an-nsid", None, json!({"a": 1})),
            400,
            "InvalidRequest",
        ),
        (
            "invalid rkey",
            Some(alice.access.clone()),
            create_body(
                &alice,
                "com.example.thing",
                Some("bad key!"),
                json!({"a": 1}),
            ),
            400,
            "InvalidRequest",
        ),
        (
            "rkey .",
            Some(alice.access.clone()),
            create_body(&alice, "com.example.thing", Some("."), json!({"a": 1})),
            400,
            "InvalidRequest",
        ),
        (
            "rkey ..",
            Some(alice.access.clone()),
            create_body(&alice, "com.example.thing", Some(".."), json!({"a": 1})),
            400,
            "InvalidRequest",
        ),
        (
            "invalid DID repo",
            Some(alice.access.clone()),
            json!({"repo": "did:bad", "collection": "app.bsky.feed.post", "record": post("x")}),
            400,
            "InvalidRequest",
        ),
        (
            "invalid handle repo",
            Some(alice.access.clone()),
            json!({"repo": "-bad-.test", "collection": "app.bsky.feed.post", "record": post("x")}),
            400,
            "InvalidRequest",
        ),
        (
            "unknown repo",
            Some(alice.access.clone()),
            json!({"repo": "nobody.test", "collection": "app.bsky.feed.post", "record": post("x")}),
            400,
            "RepoNotFound",
        ),
        (
            "record over 1 MB",
            Some(alice.access.clone()),
            create_body(&alice, "com.example.thing", None, json!({"t": big_text})),
            413,
            "PayloadTooLarge",
        ),
        (
            "record not an object",
            Some(alice.access.clone()),
            create_body(&alice, "com.example.thing", None, json!([1, 2])),
            400,
            "InvalidRequest",
        ),
        (
            "float in record",
            Some(alice.access.clone()),
            create_body(&alice, "com.example.thing", None, json!({"f": 1.5})),
            400,
            "InvalidRequest",
        ),
        (
            "missing record",
            Some(alice.access.clone()),
            json!({"repo": alice.did, "collection": "app.bsky.feed.post"}),
            400,
            "InvalidRequest",
        ),
    ];
    for (name, tok, body, status, error) in cases {
        let (got, resp) = pds
            .post("com.atproto.repo.createRecord", tok.as_deref(), body)
            .await;
        assert_eq!(
            (got, resp["error"].as_str()),
            (status, Some(error)),
            "{name}: {resp}"
        );
        assert!(
            resp["message"].is_string(),
            "{name}: every error has a message"
        );
    }

    let (status, resp) = pds
        .post(
            "com.atproto.repo.applyWrites",
            Some(&alice.access),
            json!({"repo": alice.did, "writes": writes_201}),
        )
        .await;
    assert_eq!(
        (status, resp["error"].as_str()),
        (400, Some("InvalidRequest")),
        "201 writes: {resp}"
    );

    // Malformed JSON and the wrong content type.
    let raw = |body: &'static str, content_type: &'static str| {
        pds.client
            .post(pds.xrpc("com.atproto.repo.createRecord"))
            .bearer_auth(&alice.access)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let resp = raw("{\"repo\": ", "application/json").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "InvalidRequest"
    );
    let resp = raw("{}", "text/plain").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(
        resp.json::<Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("encoding")
    );

    // Blobs: over the limit (100,000 bytes in these tests), and a Content-Length that lies.
    let resp = pds
        .client
        .post(pds.xrpc("com.atproto.repo.uploadBlob"))
        .bearer_auth(&alice.access)
        .header("content-type", "image/png")
        .body(vec![0u8; 100_001])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // A body shorter than its Content-Length (the client stops sending) is refused.
    let mut stream = tokio::net::TcpStream::connect(pds.url.trim_start_matches("http://"))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!(
        "POST /xrpc/com.atproto.repo.uploadBlob HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: image/png\r\nContent-Length: 500\r\n\r\nonly forty bytes, then the client gives up",
        alice.access
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    assert!(
        !answer.contains(" 500 ") && !answer.contains(" 200 "),
        "a short body is refused: {answer}"
    );

    // Reads with bad parameters.
    for (nsid, query, status) in [
        (
            "com.atproto.repo.getRecord",
            vec![
                ("repo", "did:bad"),
                ("collection", "app.bsky.feed.post"),
                ("rkey", "x"),
            ],
            400,
        ),
        (
            "com.atproto.repo.getRecord",
            vec![
                ("repo", alice.did.as_str()),
                ("collection", "nope"),
                ("rkey", "x"),
            ],
            400,
        ),
        (
            "com.atproto.repo.listRecords",
            vec![
                ("repo", alice.did.as_str()),
                ("collection", "app.bsky.feed.post"),
                ("limit", "abc"),
            ],
            400,
        ),
        (
            "com.atproto.repo.listRecords",
            vec![("repo", alice.did.as_str())],
            400,
        ),
        ("com.atproto.sync.getRepo", vec![("did", "alice.test")], 400),
        (
            "com.atproto.sync.getRepo",
            vec![("did", "did:plc:nobodynobodynobodynobody")],
            400,
        ),
        (
            "com.atproto.sync.getBlob",
            vec![("did", alice.did.as_str()), ("cid", "not-a-cid")],
            400,
        ),
        (
            "com.atproto.sync.getBlocks",
            vec![("did", alice.did.as_str()), ("cids", "zzz")],
            400,
        ),
        ("com.atproto.sync.listRepos", vec![("limit", "0")], 400),
        (
            "com.atproto.sync.listRepos",
            vec![("cursor", "not a did")],
            400,
        ),
    ] {
        let (got, resp) = pds.get(nsid, None, &query).await;
        assert_eq!(got, status, "{nsid} {query:?}: {resp}");
        assert!(resp["error"].is_string());
    }
    assert_eq!(heads().await, before, "no repo changed");
}
