//! An account moves from one of our servers (embedded store) to another (DynamoDB) over HTTP,
//! the way migration tools run atproto's migration guide: a service-auth token from the old PDS,
//! `createAccount` with the existing DID on the new one, the repo exported and imported, the
//! missing blobs and the preferences copied, the PLC operation signed by the old PDS (with the
//! code it e-mails) and submitted by the new one, then the new account activated and the old
//! one deactivated; and back again. Both servers use one PLC directory.

use std::sync::Arc;

use arroba::storage::{BlobStore, DiskBlobStore, Storage};
use serde_json::{Value, json};

use crate::common::pds::Pds;

async fn call(
    pds: &Pds,
    method: reqwest::Method,
    nsid: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = pds
        .client
        .request(method, pds.xrpc(nsid))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_account_moves_from_the_embedded_store_to_dynamodb_and_back_with_its_records_blobs_and_identity()
 {
    let old = Pds::start(&[]).await;
    let alice = old.create_account("alice").await;
    let picture = b"\x89PNG a picture that moves";
    let response = old
        .client
        .post(old.xrpc("com.atproto.repo.uploadBlob"))
        .bearer_auth(&alice.access)
        .header("content-type", "image/png")
        .body(picture.to_vec())
        .send()
        .await
        .unwrap();
    let blob = response.json::<Value>().await.unwrap()["blob"].clone();
    for i in 0..5 {
        old.create_post(&alice, &format!("post {i}")).await;
    }
    let (status, _) = old
        .post(
            "com.atproto.repo.createRecord",
            Some(&alice.access),
            json!({"repo": alice.did, "collection": "app.bsky.feed.post",
                "record": {"$type": "app.bsky.feed.post", "text": "with a picture",
                    "createdAt": "2026-01-01T00:00:00.000Z",
                    "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": blob}]}}}),
        )
        .await;
    assert_eq!(status, 200);
    old.post(
        "app.bsky.actor.putPreferences",
        Some(&alice.access),
        json!({"preferences": [{"$type": "app.bsky.actor.defs#adultContentPref", "enabled": true}]}),
    )
    .await;

    // The new server: DynamoDB, its own name and address, the same PLC directory.
    let storage: Arc<dyn Storage> = crate::common::dynamo_storage().await;
    let dir = tempfile::tempdir().unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(DiskBlobStore::new(dir.path().join("blobs")));
    let new = Pds::start_with(
        dir,
        storage,
        blobs,
        &[
            ("PDS_HOSTNAME", "pds2.test"),
            ("PDS_PORT", "2600"),
            ("PDS_DID_PLC_URL", old.plc_url.as_str()),
        ],
    )
    .await;
    let new_service = new.state.config().service_did.clone();

    // 0. A signing key reserved on the new server for the arriving DID: the same one each
    // time, and the one the account signs with once it arrives.
    let reserve = json!({"did": alice.did});
    let (status, reserved) = new
        .post(
            "com.atproto.server.reserveSigningKey",
            None,
            reserve.clone(),
        )
        .await;
    assert_eq!(status, 200, "{reserved}");
    let reserved_key = reserved["signingKey"].as_str().unwrap().to_owned();
    assert!(reserved_key.starts_with("did:key:z"), "{reserved}");
    let (_, again) = new
        .post("com.atproto.server.reserveSigningKey", None, reserve)
        .await;
    assert_eq!(again["signingKey"], reserved_key.as_str());

    // 1. A service-auth token from the old PDS lets the new one create the account.
    let (status, auth) = old
        .get(
            "com.atproto.server.getServiceAuth",
            Some(&alice.access),
            &[
                ("aud", new_service.as_str()),
                ("lxm", "com.atproto.server.createAccount"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{auth}");
    let account = json!({"did": alice.did, "handle": "alice.test", "email": "alice@example.com",
        "password": "alice-pw"});
    let (status, body) = new
        .post("com.atproto.server.createAccount", None, account.clone())
        .await;
    assert_eq!(status, 401, "an existing DID needs its token: {body}");
    let (status, created) = call(
        &new,
        reqwest::Method::POST,
        "com.atproto.server.createAccount",
        auth["token"].as_str().unwrap(),
        Some(account),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["did"], alice.did.as_str());
    let token = created["accessJwt"].as_str().unwrap().to_owned();
    let (_, credentials) = new
        .get(
            "com.atproto.identity.getRecommendedDidCredentials",
            Some(&token),
            &[],
        )
        .await;
    assert_eq!(
        credentials["verificationMethods"]["atproto"],
        reserved_key.as_str(),
        "the arriving account signs with the reserved key"
    );
    let (_, st) = new
        .get("com.atproto.server.checkAccountStatus", Some(&token), &[])
        .await;
    assert_eq!(
        (&st["activated"], &st["validDid"]),
        (&json!(false), &json!(false))
    );

    // 2. The repo, the missing blobs and the preferences.
    let car = old
        .get_bytes("com.atproto.sync.getRepo", &[("did", alice.did.as_str())])
        .await
        .bytes()
        .await
        .unwrap();
    let response = new
        .client
        .post(new.xrpc("com.atproto.repo.importRepo"))
        .bearer_auth(&token)
        .header("content-type", "application/vnd.ipld.car")
        .body(car.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, missing) = new
        .get("com.atproto.repo.listMissingBlobs", Some(&token), &[])
        .await;
    let missing = missing["blobs"].as_array().unwrap().clone();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0]["cid"], blob["ref"]["$link"]);
    let bytes = old
        .get_bytes(
            "com.atproto.sync.getBlob",
            &[
                ("did", alice.did.as_str()),
                ("cid", missing[0]["cid"].as_str().unwrap()),
            ],
        )
        .await
        .bytes()
        .await
        .unwrap();
    let response = new
        .client
        .post(new.xrpc("com.atproto.repo.uploadBlob"))
        .bearer_auth(&token)
        .header("content-type", "image/png")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, missing) = new
        .get("com.atproto.repo.listMissingBlobs", Some(&token), &[])
        .await;
    assert!(missing["blobs"].as_array().unwrap().is_empty());
    let (_, prefs) = old
        .get("app.bsky.actor.getPreferences", Some(&alice.access), &[])
        .await;
    let (status, _) = new
        .post("app.bsky.actor.putPreferences", Some(&token), prefs)
        .await;
    assert_eq!(status, 200);

    // 3. The identity: the new PDS recommends, the old one signs (with its e-mailed code), the
    //    new one submits.
    let (status, creds) = new
        .get(
            "com.atproto.identity.getRecommendedDidCredentials",
            Some(&token),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{creds}");
    let (status, _) = old
        .post(
            "com.atproto.identity.requestPlcOperationSignature",
            Some(&alice.access),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let code = old.last_code_to("alice@example.com");
    let mut sign = creds.clone();
    sign["token"] = json!(code);
    let (status, signed) = old
        .post(
            "com.atproto.identity.signPlcOperation",
            Some(&alice.access),
            sign,
        )
        .await;
    assert_eq!(status, 200, "{signed}");
    // An operation that would leave out the new PDS is refused.
    let mut wrong = signed["operation"].clone();
    wrong["services"]["atproto_pds"]["endpoint"] = json!("https://elsewhere.example");
    let (status, body) = new
        .post(
            "com.atproto.identity.submitPlcOperation",
            Some(&token),
            json!({"operation": wrong}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = new
        .post(
            "com.atproto.identity.submitPlcOperation",
            Some(&token),
            json!({"operation": signed["operation"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // 4. Switch over.
    assert_eq!(
        new.post(
            "com.atproto.server.activateAccount",
            Some(&token),
            json!({})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        old.post(
            "com.atproto.server.deactivateAccount",
            Some(&alice.access),
            json!({})
        )
        .await
        .0,
        200
    );

    // The DID document points at the new PDS and its key; the records, the blob and the
    // preferences are there; the new PDS takes writes, the old one does not.
    let did = arroba::syntax::Did::parse(&alice.did).unwrap();
    new.state.resolver().invalidate(Some(&did), None);
    let doc = new.state.resolver().resolve_did(&did).await.unwrap();
    assert_eq!(
        doc.pds_endpoint(),
        Some(new.state.config().public_url.as_str())
    );
    assert_eq!(
        doc.signing_key().unwrap().to_did_key(),
        creds["verificationMethods"]["atproto"].as_str().unwrap()
    );
    let (_, listed) = new
        .get(
            "com.atproto.repo.listRecords",
            None,
            &[
                ("repo", alice.did.as_str()),
                ("collection", "app.bsky.feed.post"),
            ],
        )
        .await;
    assert_eq!(listed["records"].as_array().unwrap().len(), 6);
    let (_, st) = new
        .get("com.atproto.server.checkAccountStatus", Some(&token), &[])
        .await;
    assert_eq!(
        (
            &st["activated"],
            &st["validDid"],
            &st["indexedRecords"],
            &st["importedBlobs"],
            &st["expectedBlobs"],
            &st["privateStateValues"]
        ),
        (
            &json!(true),
            &json!(true),
            &json!(6),
            &json!(1),
            &json!(1),
            &json!(1)
        ),
        "{st}"
    );
    let served = new
        .get_bytes(
            "com.atproto.sync.getBlob",
            &[
                ("did", alice.did.as_str()),
                ("cid", blob["ref"]["$link"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.unwrap().as_ref(), picture);
    let (_, prefs) = new
        .get("app.bsky.actor.getPreferences", Some(&token), &[])
        .await;
    assert_eq!(prefs["preferences"][0]["enabled"], true);
    let post = json!({"repo": alice.did, "collection": "app.bsky.feed.post",
        "record": {"$type": "app.bsky.feed.post", "text": "from my new home", "createdAt": "2026-01-02T00:00:00.000Z"}});
    assert_eq!(
        new.post("com.atproto.repo.createRecord", Some(&token), post.clone())
            .await
            .0,
        200
    );
    let (status, _) = old
        .post("com.atproto.repo.createRecord", Some(&alice.access), post)
        .await;
    assert_eq!(
        status, 403,
        "the old PDS refuses writes to the deactivated account"
    );

    // And back: the old server still has the account (deactivated); it takes it again.
    let (status, auth) = new
        .get(
            "com.atproto.server.getServiceAuth",
            Some(&token),
            &[
                ("aud", old.state.config().service_did.as_str()),
                ("lxm", "com.atproto.server.createAccount"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{auth}");
    let (status, back) = call(
        &old,
        reqwest::Method::POST,
        "com.atproto.server.createAccount",
        auth["token"].as_str().unwrap(),
        Some(
            json!({"did": alice.did, "handle": "alice.test", "email": "alice@example.com",
            "password": "a password for coming home"}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{back}");
    let home = back["accessJwt"].as_str().unwrap().to_owned();
    let car = new
        .get_bytes("com.atproto.sync.getRepo", &[("did", alice.did.as_str())])
        .await
        .bytes()
        .await
        .unwrap();
    let response = old
        .client
        .post(old.xrpc("com.atproto.repo.importRepo"))
        .bearer_auth(&home)
        .header("content-type", "application/vnd.ipld.car")
        .body(car.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, creds) = old
        .get(
            "com.atproto.identity.getRecommendedDidCredentials",
            Some(&home),
            &[],
        )
        .await;
    new.post(
        "com.atproto.identity.requestPlcOperationSignature",
        Some(&token),
        json!({}),
    )
    .await;
    let mut sign = creds.clone();
    sign["token"] = json!(new.last_code_to("alice@example.com"));
    let (status, signed) = new
        .post("com.atproto.identity.signPlcOperation", Some(&token), sign)
        .await;
    assert_eq!(status, 200, "{signed}");
    let (status, body) = old
        .post(
            "com.atproto.identity.submitPlcOperation",
            Some(&home),
            json!({"operation": signed["operation"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        old.post("com.atproto.server.activateAccount", Some(&home), json!({}))
            .await
            .0,
        200
    );
    assert_eq!(
        new.post(
            "com.atproto.server.deactivateAccount",
            Some(&token),
            json!({})
        )
        .await
        .0,
        200
    );
    old.state.resolver().invalidate(Some(&did), None);
    let doc = old.state.resolver().resolve_did(&did).await.unwrap();
    assert_eq!(
        doc.pds_endpoint(),
        Some(old.state.config().public_url.as_str())
    );
    let (_, listed) = old
        .get(
            "com.atproto.repo.listRecords",
            None,
            &[
                ("repo", alice.did.as_str()),
                ("collection", "app.bsky.feed.post"),
            ],
        )
        .await;
    assert_eq!(
        listed["records"].as_array().unwrap().len(),
        7,
        "the post written on the other server came home too"
    );
    let (status, _) = old
        .post(
            "com.atproto.server.createSession",
            None,
            json!({"identifier": "alice.test", "password": "a password for coming home"}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_signing_key_is_reserved_with_or_without_a_did_and_a_bad_did_is_refused() {
    let pds = Pds::start(&[]).await;
    // Without a body, as the reference accepts it: a fresh key each time.
    let mut keys = Vec::new();
    for _ in 0..2 {
        let response = pds
            .client
            .post(pds.xrpc("com.atproto.server.reserveSigningKey"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        keys.push(body["signingKey"].as_str().unwrap().to_owned());
    }
    assert_ne!(keys[0], keys[1]);
    assert!(
        arroba::crypto::PublicKey::from_did_key(&keys[0]).is_ok(),
        "{}",
        keys[0]
    );
    let (status, body) = pds
        .post(
            "com.atproto.server.reserveSigningKey",
            None,
            json!({"did": "not a did"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "InvalidRequest");
    // A reservation is sealed at rest like account keys.
    let stored = pds
        .state
        .storage()
        .kv_list("reserved-signing-keys", None, 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    for (name, sealed) in stored {
        assert!(keys.contains(&name));
        assert!(
            arroba::storage::codec::decode_keys(&sealed).is_err(),
            "stored sealed, not in the clear"
        );
        let opened = pds.state.storage().open_secret(&sealed).unwrap();
        let (key, _) = arroba::storage::codec::decode_keys(&opened).unwrap();
        assert_eq!(key.public_key().to_did_key(), name);
    }
}

#[tokio::test]
async fn a_did_web_account_arrives_by_the_manual_path_and_signs_with_its_reserved_key() {
    use arroba::crypto::{Algorithm, Keypair};
    use arroba::identity::DidDocument;
    use arroba::syntax::{Did, Handle, Nsid};
    use std::sync::Mutex;

    let pds = Pds::start(&[]).await;
    // The person's own web server, whose did.json they edit by hand.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let did = Did::parse(&format!("did:web:localhost%3A{port}")).unwrap();
    let handle = Handle::parse("carol.test").unwrap();
    let own_key = Keypair::generate(Algorithm::K256);
    let document = Arc::new(Mutex::new(DidDocument::new(
        &did,
        Some(&handle),
        &own_key.public_key(),
        "https://elsewhere.example",
    )));
    let served = document.clone();
    let site = axum::Router::new().route(
        "/.well-known/did.json",
        axum::routing::get(move || {
            let doc = served.lock().unwrap().clone();
            async move { axum::Json(doc) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, site).await });

    // 1. A signing key reserved here for the DID.
    let (status, reserved) = pds
        .post(
            "com.atproto.server.reserveSigningKey",
            None,
            json!({"did": did.as_str()}),
        )
        .await;
    assert_eq!(status, 200, "{reserved}");
    let reserved = reserved["signingKey"].as_str().unwrap().to_owned();

    // 2. createAccount with a service-auth token signed by the key the document names now.
    let now = chrono::Utc::now().timestamp();
    let token = arroba::identity::service_auth::create(
        &own_key,
        &did,
        &pds.state.config().service_did,
        Some(&Nsid::parse("com.atproto.server.createAccount").unwrap()),
        now,
        60,
    );
    let (status, created) = call(
        &pds,
        reqwest::Method::POST,
        "com.atproto.server.createAccount",
        &token,
        Some(json!({"did": did.as_str(), "handle": "carol.test",
            "email": "carol@example.com", "password": "carol-pw"})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let access = created["accessJwt"].as_str().unwrap().to_owned();
    let (_, before) = pds
        .get("com.atproto.server.checkAccountStatus", Some(&access), &[])
        .await;
    assert_eq!(before["validDid"], false, "{before}");

    // The PLC methods are for did:plc only.
    let (status, body) = pds
        .post(
            "com.atproto.identity.signPlcOperation",
            Some(&access),
            json!({"token": "whatever"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("did:plc"),
        "{body}"
    );

    // 3. By hand: the document names the reserved key and this PDS.
    let (_, credentials) = pds
        .get(
            "com.atproto.identity.getRecommendedDidCredentials",
            Some(&access),
            &[],
        )
        .await;
    assert_eq!(
        credentials["verificationMethods"]["atproto"],
        reserved.as_str()
    );
    let endpoint = credentials["services"]["atproto_pds"]["endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    *document.lock().unwrap() = DidDocument::new(
        &did,
        Some(&handle),
        &arroba::crypto::PublicKey::from_did_key(&reserved).unwrap(),
        &endpoint,
    );
    let (_, after) = pds
        .get("com.atproto.server.checkAccountStatus", Some(&access), &[])
        .await;
    assert_eq!(after["validDid"], true, "{after}");

    // 4. Activated, it writes, and its commits verify against the reserved key.
    let (status, body) = pds
        .post(
            "com.atproto.server.activateAccount",
            Some(&access),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = pds
        .post(
            "com.atproto.repo.createRecord",
            Some(&access),
            json!({"repo": did.as_str(), "collection": "app.bsky.feed.post",
                "record": {"$type": "app.bsky.feed.post", "text": "from my own domain",
                    "createdAt": "2026-12-01T00:00:00.000Z"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let car = pds
        .get_bytes("com.atproto.sync.getRepo", &[("did", did.as_str())])
        .await
        .bytes()
        .await
        .unwrap();
    let key = arroba::crypto::PublicKey::from_did_key(&reserved).unwrap();
    let report = arroba::repo::verify::verify_repo_car(&car, Some(&key)).unwrap();
    assert_eq!(report.records, 1);
}
