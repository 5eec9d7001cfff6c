//! Identity against real servers on loopback: the PLC directory over HTTP, a DNS server for TXT
//! and A records, and an HTTP server for well-known files and did:web documents.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arroba::cbor;
use arroba::crypto::{Algorithm, Keypair};
use arroba::identity::plc::{PlcData, PlcOperation};
use arroba::identity::service_auth;
use arroba::identity::{DidDocument, IdentityConfig, IdentityError, PlcClient, Resolver};
use arroba::plc::PlcStore;
use arroba::syntax::{Did, Handle, Nsid};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{RData, Record, RecordType};
use sha2::{Digest, Sha256};

/// A PLC directory on a free port; returns its base URL. The temp dir lives as long as the test.
async fn plc_server(dir: &tempfile::TempDir) -> String {
    let store = PlcStore::open(dir.path()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(arroba::plc::serve(listener, store, std::future::pending()));
    format!("http://{addr}")
}

/// TXT records by name (`_atproto.alice.test.`); every A query answers 127.0.0.1.
type TxtRecords = Arc<Mutex<HashMap<String, Vec<String>>>>;

async fn dns_server(txt: TxtRecords) -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut reply = Message::new();
            reply
                .set_id(query.id())
                .set_message_type(MessageType::Response)
                .set_recursion_desired(true)
                .set_recursion_available(true);
            reply.add_queries(query.queries().to_vec());
            let mut found = false;
            for q in query.queries() {
                let name = q.name().to_ascii().to_lowercase();
                match q.query_type() {
                    RecordType::TXT => {
                        for value in txt.lock().unwrap().get(&name).cloned().unwrap_or_default() {
                            reply.add_answer(Record::from_rdata(
                                q.name().clone(),
                                60,
                                RData::TXT(TXT::new(vec![value])),
                            ));
                            found = true;
                        }
                    }
                    RecordType::A => {
                        reply.add_answer(Record::from_rdata(
                            q.name().clone(),
                            60,
                            RData::A(A::new(127, 0, 0, 1)),
                        ));
                        found = true;
                    }
                    _ => {}
                }
            }
            if !found {
                reply.set_response_code(ResponseCode::NXDomain);
            }
            let _ = socket.send_to(&reply.to_vec().unwrap(), peer).await;
        }
    });
    addr
}

/// What the web server answers per `Host`: path → (status, body).
type Pages = Arc<Mutex<HashMap<(String, String), (u16, Vec<u8>)>>>;

async fn web_server(pages: Pages) -> u16 {
    async fn page(
        State(pages): State<Pages>,
        headers: HeaderMap,
        uri: axum::http::Uri,
    ) -> Response {
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let host = host.split(':').next().unwrap_or_default().to_owned();
        if uri.path() == "/slow" {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        match pages.lock().unwrap().get(&(host, uri.path().to_owned())) {
            Some((301, target)) => (
                StatusCode::MOVED_PERMANENTLY,
                [("location", String::from_utf8(target.clone()).unwrap())],
            )
                .into_response(),
            Some((status, body)) => {
                (StatusCode::from_u16(*status).unwrap(), body.clone()).into_response()
            }
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }
    let app = axum::Router::new().fallback(page).with_state(pages);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

struct World {
    _dir: tempfile::TempDir,
    resolver: Arc<Resolver>,
    plc: PlcClient,
    plc_url: String,
    txt: TxtRecords,
    pages: Pages,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let plc_url = plc_server(&dir).await;
    let txt = TxtRecords::default();
    let pages = Pages::default();
    let dns = dns_server(txt.clone()).await;
    let port = web_server(pages.clone()).await;
    let config = IdentityConfig {
        plc_url: plc_url.clone(),
        dns_servers: Some(vec![dns]),
        allow_private_addresses: true,
        insecure_http_port: Some(port),
        timeout: Duration::from_millis(1500),
        max_response_bytes: 64 * 1024,
        cache_ttl: Duration::from_secs(60),
    };
    let resolver = Arc::new(Resolver::new(config).unwrap());
    World {
        _dir: dir,
        plc: PlcClient::new(resolver.clone()),
        resolver,
        plc_url,
        txt,
        pages,
    }
}

fn key(seed: &str) -> Keypair {
    Keypair::from_seed(Algorithm::K256, seed.as_bytes())
}

fn handle(s: &str) -> Handle {
    Handle::parse(s).unwrap()
}

#[tokio::test]
async fn plc_create_update_and_rotate_through_the_directory() {
    let w = world().await;
    let (signing, rotation) = (key("signing"), key("rotation"));
    let (did, genesis) = w
        .plc
        .create(
            &handle("alice.test"),
            &signing.public_key(),
            &[rotation.public_key()],
            &rotation,
            "https://pds.test",
        )
        .await
        .unwrap();
    assert!(did.as_str().starts_with("did:plc:") && did.as_str().len() == 32);
    let doc = w.resolver.resolve_did(&did).await.unwrap();
    assert_eq!(doc.handle(), Some(handle("alice.test")));
    assert_eq!(doc.signing_key(), Some(signing.public_key()));
    assert_eq!(doc.pds_endpoint(), Some("https://pds.test"));

    // New handle and PDS, signed by the rotation key.
    w.plc
        .update(&did, &rotation, |d| {
            d.also_known_as = vec!["at://alice2.test".into()];
            d.services.get_mut("atproto_pds").unwrap().endpoint = "https://pds2.test".into();
        })
        .await
        .unwrap();
    let doc = w.resolver.resolve_did(&did).await.unwrap();
    assert_eq!(doc.handle(), Some(handle("alice2.test")));
    assert_eq!(doc.pds_endpoint(), Some("https://pds2.test"));

    // Rotate to a new rotation key; the old one can no longer sign.
    let new_rotation = key("rotation 2");
    w.plc
        .update(&did, &rotation, |d| {
            d.rotation_keys = vec![new_rotation.public_key().to_did_key()]
        })
        .await
        .unwrap();
    let refused = w
        .plc
        .update(&did, &rotation, |d| {
            d.also_known_as = vec!["at://evil.test".into()]
        })
        .await;
    assert!(
        matches!(refused, Err(IdentityError::PlcRejected { status: 400, .. })),
        "{refused:?}"
    );
    w.plc
        .update(&did, &new_rotation, |d| {
            d.also_known_as = vec!["at://alice3.test".into()]
        })
        .await
        .unwrap();

    let log = w.resolver.plc_log(&did).await.unwrap();
    assert_eq!(log.ops.len(), 4);
    assert_eq!(log.ops[0], genesis);
    let audit: Vec<serde_json::Value> = reqwest::get(format!("{}/{did}/log/audit", w.plc_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit.len(), 4);
    assert_eq!(audit[3]["cid"], log.ops[3].cid().to_string());
    let data: serde_json::Value = reqwest::get(format!("{}/{did}/data", w.plc_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(data["alsoKnownAs"][0], "at://alice3.test");

    // A tombstone makes the DID unavailable.
    w.plc.tombstone(&did, &new_rotation).await.unwrap();
    assert!(matches!(
        w.resolver.resolve_did(&did).await,
        Err(IdentityError::DidDeactivated(_))
    ));
}

/// The genesis operation built from the spec's rules alone, not through `PlcOperation`.
fn independent_genesis(signing: &Keypair, rotation: &Keypair) -> (String, serde_json::Value) {
    let unsigned = cbor::map([
        ("type", "plc_operation".into()),
        (
            "rotationKeys",
            cbor::Value::Array(vec![rotation.public_key().to_did_key().into()]),
        ),
        (
            "verificationMethods",
            cbor::map([("atproto", signing.public_key().to_did_key().into())]),
        ),
        (
            "alsoKnownAs",
            cbor::Value::Array(vec!["at://bob.test".into()]),
        ),
        (
            "services",
            cbor::map([(
                "atproto_pds",
                cbor::map([
                    ("type", "AtprotoPersonalDataServer".into()),
                    ("endpoint", "https://pds.test".into()),
                ]),
            )]),
        ),
        ("prev", cbor::Value::Null),
    ]);
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(rotation.sign(&cbor::encode(&unsigned)));
    let cbor::Value::Map(mut m) = unsigned else {
        unreachable!()
    };
    m.insert("sig".into(), sig.into());
    let signed = cbor::Value::Map(m);
    let hash = Sha256::digest(cbor::encode(&signed));
    let did = format!(
        "did:plc:{}",
        &multibase::encode(multibase::Base::Base32Lower, hash)[1..25]
    );
    (did, cbor::to_json(&signed))
}

#[tokio::test]
async fn an_independently_built_genesis_derives_the_same_did_and_verifies() {
    let w = world().await;
    let (signing, rotation) = (key("s"), key("r"));
    let (did, json) = independent_genesis(&signing, &rotation);
    let op = PlcOperation::from_json(&json).unwrap();
    assert_eq!(op.did().as_str(), did);
    assert_eq!(op.verify(&[rotation.public_key().to_did_key()]).unwrap(), 0);
    assert_eq!(
        op.to_json(),
        json,
        "our serialisation has exactly the spec's fields"
    );
    let ours = PlcOperation::Operation {
        data: PlcData::new(
            &[rotation.public_key()],
            &signing.public_key(),
            &handle("bob.test"),
            "https://pds.test",
        ),
        prev: None,
        sig: None,
    }
    .sign(&rotation);
    assert_eq!(ours.did().as_str(), did);
    let response = reqwest::Client::new()
        .post(format!("{}/{did}", w.plc_url))
        .json(&json)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc = w
        .resolver
        .resolve_did(&Did::parse(&did).unwrap())
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&doc).unwrap(),
        serde_json::json!({
            "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1", "https://w3id.org/security/suites/secp256k1-2019/v1"],
            "id": did,
            "alsoKnownAs": ["at://bob.test"],
            "verificationMethod": [{"id": format!("{did}#atproto"), "type": "Multikey", "controller": did, "publicKeyMultibase": signing.public_key().to_multikey()}],
            "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": "https://pds.test"}],
        })
    );
}

#[tokio::test]
async fn the_directory_rejects_forgeries_and_malformed_operations_with_a_reason() {
    let w = world().await;
    let rotation = key("r1");
    let (did, genesis) = w
        .plc
        .create(
            &handle("carol.test"),
            &key("s1").public_key(),
            &[rotation.public_key()],
            &rotation,
            "https://pds.test",
        )
        .await
        .unwrap();
    let post = |did: String, body: serde_json::Value| {
        let url = format!("{}/{did}", w.plc_url);
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            (
                status,
                body["message"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    let next = |prev: Option<String>| PlcOperation::Operation {
        data: PlcData::new(
            &[rotation.public_key()],
            &key("s1").public_key(),
            &handle("carol2.test"),
            "https://pds.test",
        ),
        prev,
        sig: None,
    };
    let good_prev = Some(genesis.cid().to_string());

    let (status, msg) = post(
        did.to_string(),
        next(good_prev.clone()).sign(&key("intruder")).to_json(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(msg.contains("rotation key"), "{msg}");

    let (status, msg) = post(
        did.to_string(),
        next(Some(arroba::cid::cid_for_cbor(b"x").to_string()))
            .sign(&rotation)
            .to_json(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(msg.contains("prev"), "{msg}");

    let mut tampered = next(good_prev.clone()).sign(&rotation).to_json();
    tampered["alsoKnownAs"] = serde_json::json!(["at://mallory.test"]);
    let (status, msg) = post(did.to_string(), tampered).await;
    assert_eq!((status, msg.contains("signature")), (400, true), "{msg}");

    let valid = next(good_prev.clone()).sign(&rotation).to_json();
    for (field, value, expect) in [
        (
            "rotationKeys",
            serde_json::json!("not an array"),
            "rotationKeys",
        ),
        (
            "rotationKeys",
            serde_json::json!(["did:key:zBogus"]),
            "did:key",
        ),
        (
            "verificationMethods",
            serde_json::json!({"atproto": 5}),
            "verificationMethods",
        ),
        ("prev", serde_json::json!("not-a-cid"), "prev"),
        (
            "type",
            serde_json::json!("plc_wat"),
            "unknown operation type",
        ),
        ("extra", serde_json::json!(1), "unexpected field"),
        ("sig", serde_json::json!(12), "sig"),
    ] {
        let mut body = valid.clone();
        body[field] = value;
        let (status, msg) = post(did.to_string(), body).await;
        assert_eq!(status, 400, "{field}");
        assert!(msg.contains(expect), "{field}: {msg}");
    }

    // A genesis posted under a DID it does not derive.
    let other = PlcOperation::Operation {
        data: PlcData::new(
            &[rotation.public_key()],
            &rotation.public_key(),
            &handle("d.test"),
            "https://p.test",
        ),
        prev: None,
        sig: None,
    }
    .sign(&rotation);
    let (status, msg) = post("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".into(), other.to_json()).await;
    assert_eq!((status, msg.contains("derive")), (400, true), "{msg}");
    let (status, _) = post("not-a-did".into(), valid.clone()).await;
    assert_eq!(status, 400);
    let raw = reqwest::Client::new()
        .post(format!("{}/{did}", w.plc_url))
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(
        reqwest::get(format!("{}/did:plc:bbbbbbbbbbbbbbbbbbbbbbbb", w.plc_url))
            .await
            .unwrap()
            .status(),
        404
    );
    // None of the refused operations landed.
    assert_eq!(w.resolver.plc_log(&did).await.unwrap().ops.len(), 1);
}

#[tokio::test]
async fn handles_resolve_by_dns_txt_then_well_known_and_are_verified_both_ways() {
    let w = world().await;
    let rotation = key("r");
    let (did, _) = w
        .plc
        .create(
            &handle("dns.test"),
            &key("s").public_key(),
            &[rotation.public_key()],
            &rotation,
            "https://pds.test",
        )
        .await
        .unwrap();
    w.txt.lock().unwrap().insert(
        "_atproto.dns.test.".into(),
        vec![format!("did={did}"), "something else".into()],
    );
    assert_eq!(
        w.resolver
            .resolve_handle(&handle("dns.test"))
            .await
            .unwrap(),
        did
    );
    assert_eq!(
        w.resolver.verify_handle(&handle("dns.test")).await.unwrap(),
        did
    );

    // No TXT record: the well-known file.
    let (did2, _) = w
        .plc
        .create(
            &handle("web.test"),
            &key("s2").public_key(),
            &[rotation.public_key()],
            &rotation,
            "https://pds.test",
        )
        .await
        .unwrap();
    w.pages.lock().unwrap().insert(
        ("web.test".into(), "/.well-known/atproto-did".into()),
        (200, format!("{did2}\n").into_bytes()),
    );
    assert_eq!(
        w.resolver.verify_handle(&handle("web.test")).await.unwrap(),
        did2
    );

    // A handle pointing at a DID that does not claim it back.
    w.txt
        .lock()
        .unwrap()
        .insert("_atproto.liar.test.".into(), vec![format!("did={did}")]);
    assert!(matches!(
        w.resolver.verify_handle(&handle("liar.test")).await,
        Err(IdentityError::HandleMismatch { .. })
    ));

    // Two different DIDs in TXT records.
    w.txt.lock().unwrap().insert(
        "_atproto.two.test.".into(),
        vec![format!("did={did}"), format!("did={did2}")],
    );
    assert!(matches!(
        w.resolver.resolve_handle(&handle("two.test")).await,
        Err(IdentityError::AmbiguousHandle(_))
    ));

    // Neither method, or a well-known file that is not a DID.
    assert!(matches!(
        w.resolver.resolve_handle(&handle("nobody.test")).await,
        Err(IdentityError::HandleNotFound(_))
    ));
    w.pages.lock().unwrap().insert(
        ("junk.test".into(), "/.well-known/atproto-did".into()),
        (200, b"<html>".to_vec()),
    );
    assert!(matches!(
        w.resolver.resolve_handle(&handle("junk.test")).await,
        Err(IdentityError::HandleNotFound(_))
    ));
}

#[tokio::test]
async fn did_web_documents_resolve_and_bad_responses_are_typed_errors() {
    let w = world().await;
    let signing = key("web");
    let did = Did::parse("did:web:site.test").unwrap();
    let doc = DidDocument::new(
        &did,
        Some(&handle("site.test")),
        &signing.public_key(),
        "https://pds.test",
    );
    w.pages.lock().unwrap().insert(
        ("site.test".into(), "/.well-known/did.json".into()),
        (200, serde_json::to_vec(&doc).unwrap()),
    );
    assert_eq!(w.resolver.resolve_did(&did).await.unwrap(), doc);
    assert_eq!(
        w.resolver.signing_key(&did).await.unwrap(),
        signing.public_key()
    );

    {
        let mut pages = w.pages.lock().unwrap();
        pages.insert(
            ("big.test".into(), "/.well-known/did.json".into()),
            (200, vec![b' '; 100_000]),
        );
        pages.insert(
            ("html.test".into(), "/.well-known/did.json".into()),
            (200, b"<html></html>".to_vec()),
        );
        let other = DidDocument::new(
            &Did::parse("did:web:other.test").unwrap(),
            None,
            &signing.public_key(),
            "https://p.test",
        );
        pages.insert(
            ("wrongid.test".into(), "/.well-known/did.json".into()),
            (200, serde_json::to_vec(&other).unwrap()),
        );
        pages.insert(
            ("moved.test".into(), "/.well-known/did.json".into()),
            (301, b"http://site.test/slow".to_vec()),
        );
    }
    let resolve = |d: &str| {
        let did = Did::parse(d).unwrap();
        let r = w.resolver.clone();
        async move { r.resolve_did(&did).await }
    };
    assert!(matches!(
        resolve("did:web:big.test").await,
        Err(IdentityError::TooLarge(_))
    ));
    assert!(matches!(
        resolve("did:web:html.test").await,
        Err(IdentityError::BadResponse { .. })
    ));
    assert!(matches!(
        resolve("did:web:wrongid.test").await,
        Err(IdentityError::BadResponse { .. })
    ));
    assert!(matches!(
        resolve("did:web:missing.test").await,
        Err(IdentityError::DidNotFound(_))
    ));
    assert!(
        matches!(
            resolve("did:web:moved.test").await,
            Err(IdentityError::Http { .. })
        ),
        "a redirect to a slow page times out"
    );
    assert!(matches!(
        resolve("did:web:site.test:path").await,
        Err(IdentityError::InvalidDidWeb(_))
    ));
    assert!(matches!(
        resolve("did:key:zQ3shZc2QzApp2oymGvQbzP8eKheVshBHbU4ZYjeXqwSKEn6N").await,
        Err(IdentityError::UnsupportedMethod(_))
    ));
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let w = world().await;
    let mut config = w.resolver.config().clone();
    config.allow_private_addresses = false;
    let strict = Resolver::new(config).unwrap();
    let did = Did::parse("did:web:site.test").unwrap();
    let doc = DidDocument::new(&did, None, &key("k").public_key(), "https://pds.test");
    w.pages.lock().unwrap().insert(
        ("site.test".into(), "/.well-known/did.json".into()),
        (200, serde_json::to_vec(&doc).unwrap()),
    );
    assert!(w.resolver.resolve_did(&did).await.is_ok());
    // site.test resolves to 127.0.0.1, which the strict resolver will not connect to.
    assert!(matches!(
        strict.resolve_did(&did).await,
        Err(IdentityError::Http { .. })
    ));
}

#[tokio::test]
async fn service_auth_tokens_verify_only_for_their_audience_method_and_lifetime() {
    let w = world().await;
    let rotation = key("r");
    for alg in [Algorithm::K256, Algorithm::P256] {
        let signing = Keypair::from_seed(alg, b"jwt");
        let (did, _) = w
            .plc
            .create(
                &handle("jwt.test"),
                &signing.public_key(),
                &[rotation.public_key()],
                &rotation,
                "https://pds.test",
            )
            .await
            .unwrap();
        let lxm = Nsid::parse("app.bsky.feed.getFeedSkeleton").unwrap();
        let now = 1_700_000_000;
        let token = service_auth::create(
            &signing,
            &did,
            "did:web:feed.test#bsky_fg",
            Some(&lxm),
            now,
            60,
        );
        let header: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": alg.jwt_alg(), "typ": "JWT"})
        );
        let claims = service_auth::verify(
            &w.resolver,
            &token,
            "did:web:feed.test",
            Some(&lxm),
            now + 1,
        )
        .await
        .unwrap();
        assert_eq!(claims.iss, did.as_str());
        assert!(claims.jti.is_some() && claims.iat == now);
        let key = signing.public_key();
        assert!(matches!(
            service_auth::verify_with_key(&token, &key, "did:web:feed.test", Some(&lxm), now + 61),
            Err(IdentityError::JwtExpired)
        ));
        assert!(matches!(
            service_auth::verify_with_key(&token, &key, "did:web:other.test", Some(&lxm), now),
            Err(IdentityError::JwtClaimMismatch { claim: "aud", .. })
        ));
        let other_lxm = Nsid::parse("com.atproto.repo.createRecord").unwrap();
        assert!(matches!(
            service_auth::verify_with_key(&token, &key, "did:web:feed.test", Some(&other_lxm), now),
            Err(IdentityError::JwtClaimMismatch { claim: "lxm", .. })
        ));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"iss":"did:plc:x","aud":"did:web:feed.test","exp":9999999999}"#);
        assert!(matches!(
            service_auth::verify_with_key(&parts.join("."), &key, "did:web:feed.test", None, now),
            Err(IdentityError::Signature(_))
        ));
        parts[0] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(matches!(
            service_auth::verify_with_key(&parts.join("."), &key, "did:web:feed.test", None, now),
            Err(IdentityError::InvalidJwt(_))
        ));
        assert!(matches!(
            service_auth::verify_with_key("a.b", &key, "x", None, now),
            Err(IdentityError::InvalidJwt(_))
        ));
    }
}
