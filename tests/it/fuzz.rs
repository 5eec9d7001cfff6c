//! Property tests over what outside input reaches (a bounded number of cases each, so they run
//! in `make test`): DAG-JSON trees, lexicon validation, JWTs, and request bodies sent to every
//! procedure of a running server. Never a panic, and never a 5xx: whatever a client sends, a
//! clear 4xx.

use arroba::cbor;
use arroba::cid::cid_for_raw;
use arroba::lexicon::Lexicons;
use arroba::syntax::Nsid;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Value as Json, json};

use crate::common::pds::Pds;

/// JSON trees shaped like atproto data, with the special keys (`$link`, `$bytes`, `$type`,
/// blob objects) right and wrong.
fn arb_json() -> impl Strategy<Value = Json> {
    let cid = proptest::collection::vec(any::<u8>(), 1..8)
        .prop_map(|b| Json::String(cid_for_raw(&b).to_string()));
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,16}".prop_map(Json::String),
        cid.clone().prop_map(|c| json!({ "$link": c })),
        "[A-Za-z0-9+/=]{0,12}".prop_map(|b| json!({ "$bytes": b })),
        (cid, ".{0,10}", any::<i64>()).prop_map(
            |(c, mime, size)| json!({"$type": "blob", "ref": {"$link": c}, "mimeType": mime, "size": size})
        ),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("$type".to_owned()),
                    Just("$link".to_owned()),
                    Just("text".to_owned()),
                    "[a-zA-Z$]{0,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

/// The record types a client writes most, plus one with no lexicon.
const COLLECTIONS: &[&str] = &[
    "app.bsky.feed.post",
    "app.bsky.actor.profile",
    "app.bsky.feed.like",
    "app.bsky.graph.follow",
    "app.bsky.feed.generator",
    "com.example.unknown",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn dag_json_never_panics_and_what_it_accepts_round_trips(json in arb_json()) {
        if let Ok(value) = cbor::from_json(&json) {
            let back = cbor::from_json(&cbor::to_json(&value)).unwrap();
            prop_assert_eq!(&back, &value);
            let bytes = cbor::encode(&value);
            prop_assert_eq!(cbor::decode(&bytes).unwrap(), value);
        }
    }

    #[test]
    fn lexicon_validation_never_panics(json in arb_json(), text in "\\PC{0,20}") {
        let lexicons = Lexicons::bundled();
        let Ok(value) = cbor::from_json(&json) else { return Ok(()); };
        // The value alone, and inside a record that is otherwise right.
        let wrapped = cbor::from_json(&json!({
            "$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-01-01T00:00:00.000Z",
            "embed": json, "facets": [json], "langs": [text],
        }));
        for collection in COLLECTIONS {
            let nsid = Nsid::parse(collection).unwrap();
            for record in [Some(&value), wrapped.as_ref().ok()].into_iter().flatten() {
                for require in [None, Some(true)] {
                    let _ = lexicons.validate_record(&nsid, record, require);
                }
            }
        }
        for (method, _) in arroba::xrpc::method_list() {
            let _ = lexicons.validate_method(method, "input", &value);
            let _ = lexicons.validate_method(method, "parameters", &value);
        }
    }

    #[test]
    fn jwt_decoding_never_panics(
        parts in proptest::collection::vec("[A-Za-z0-9_=+/.-]{0,40}", 0..5),
        json_header in arb_json(),
        json_claims in arb_json(),
    ) {
        let _ = arroba::identity::service_auth::decode_unverified(&parts.join("."));
        // Well-formed base64url around arbitrary JSON, as a forger would send.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = format!(
            "{}.{}.{}",
            b64.encode(json_header.to_string()),
            b64.encode(json_claims.to_string()),
            b64.encode(parts.concat()),
        );
        let _ = arroba::identity::service_auth::decode_unverified(&token);
    }
}

/// A body a client might send: JSON of any shape (valid for the method or not), bytes that are
/// not JSON, or nothing; with a fitting, wrong or missing content type.
fn arb_body() -> impl Strategy<Value = (Option<&'static str>, Vec<u8>)> {
    let content_type = prop_oneof![
        Just(Some("application/json")),
        Just(Some("application/json; charset=utf-8")),
        Just(Some("text/plain")),
        Just(Some("*/*")),
        Just(None),
    ];
    let bytes = prop_oneof![
        arb_json().prop_map(|j| j.to_string().into_bytes()),
        arb_json().prop_map(|j| json!({"repo": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "collection": "app.bsky.feed.post", "record": j, "writes": [j], "identifier": j, "password": j, "handle": j}).to_string().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..64),
        Just(Vec::new()),
    ];
    (content_type, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_body_sent_to_any_procedure_gets_a_5xx() {
    let pds = Pds::start(&[("PDS_RATE_LIMITS_ENABLED", "false")]).await;
    let alice = pds.create_account("alice").await;
    let procedures: Vec<&str> = arroba::xrpc::method_list()
        .into_iter()
        .filter(|(_, kind)| *kind == arroba::xrpc::MethodKind::Procedure)
        .map(|(nsid, _)| nsid)
        .collect();
    assert!(procedures.len() > 20, "{procedures:?}");
    let mut runner = TestRunner::deterministic();
    let strategy = arb_body();
    let tokens = prop_oneof![
        "Bearer [A-Za-z0-9_.-]{0,60}",
        "Basic [A-Za-z0-9+/=]{0,30}",
        "[ -~]{0,40}",
        (arb_json(), arb_json()).prop_map(|(h, c)| {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!(
                "Bearer {}.{}.sig",
                b64.encode(h.to_string()),
                b64.encode(c.to_string())
            )
        }),
    ];
    let mut sent = 0;
    for round in 0..6 {
        for nsid in &procedures {
            let (content_type, body) = strategy.new_tree(&mut runner).unwrap().current();
            let mut request = pds.client.post(pds.xrpc(nsid)).body(body.clone());
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            // A third of the rounds as the account, a third with a forged or broken token (or
            // Basic credentials), a third anonymous.
            match round % 3 {
                0 => request = request.bearer_auth(&alice.access),
                1 => {
                    let forged = tokens.new_tree(&mut runner).unwrap().current();
                    request = request.header("authorization", forged);
                }
                _ => {}
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            assert!(
                status < 500,
                "{nsid} answered {status} to {content_type:?} {:?}: {text}",
                String::from_utf8_lossy(&body)
            );
            if status >= 400 {
                let error: Json = serde_json::from_str(&text)
                    .unwrap_or_else(|_| panic!("{nsid}: {status} without an XRPC error: {text}"));
                assert!(error["error"].is_string(), "{nsid}: {text}");
            }
            sent += 1;
        }
    }
    assert!(sent >= procedures.len() * 6);
}
