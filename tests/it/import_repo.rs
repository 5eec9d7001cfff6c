//! `com.atproto.repo.importRepo` over HTTP, sent the way migration tools send it (a CAR body,
//! `application/vnd.ipld.car`, a full-access session): the repo read back, the `#sync` on the
//! firehose, blob references carried over, repeated imports, and every kind of bad import
//! refused with a clear error and nothing changed.
//!
//! The importing account's DID is moved to a signing key the test holds (through the PLC
//! directory, with the operator's rotation key), so the test can sign repos the way the old PDS
//! of a migrating account would have.

use std::time::Duration;

use crate::common::pds::{Pds, Session};
use arroba::car::{car_bytes, encode_header};
use arroba::cbor::{self, Value as Cbor, map};
use arroba::cid::{Cid, cid_for_cbor};
use arroba::crypto::{Algorithm, Keypair};
use arroba::repo::Repo;
use arroba::storage::Accounts;
use arroba::syntax::Did;
use arroba::tid::{Tid, TidClock, micros_of};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The operator's PLC rotation key of the test PDS.
const OPERATOR_KEY: &str = "4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d";
const CAR: &str = "application/vnd.ipld.car";

struct Importer {
    pds: Pds,
    alice: Session,
    did: Did,
    /// The key alice's DID document now names.
    key: Keypair,
}

async fn importer(extra: &[(&str, &str)]) -> Importer {
    let mut env = vec![("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", OPERATOR_KEY)];
    env.extend_from_slice(extra);
    let pds = Pds::start(&env).await;
    let alice = pds.create_account("alice").await;
    let did = Did::parse(&alice.did).unwrap();
    let key = Keypair::from_seed(Algorithm::K256, b"alice's key at her old PDS");
    let operator =
        Keypair::from_bytes(Algorithm::K256, &hex::decode(OPERATOR_KEY).unwrap()).unwrap();
    let did_key = key.public_key().to_did_key();
    pds.state
        .plc()
        .update(&did, &operator, |data| {
            data.verification_methods.insert("atproto".into(), did_key);
        })
        .await
        .unwrap();
    Importer {
        pds,
        alice,
        did,
        key,
    }
}

/// A rev `secs` seconds from now.
fn rev_in(secs: i64) -> Tid {
    TidClock::new(7).next(micros_of(chrono::Utc::now()).saturating_add_signed(secs * 1_000_000))
}

fn post(n: usize) -> (String, Cbor) {
    (
        format!("app.bsky.feed.post/3imp{n:09}"),
        map([
            ("$type", "app.bsky.feed.post".into()),
            ("text", format!("imported post {n}").into()),
            ("createdAt", "2026-01-01T00:00:00.000Z".into()),
        ]),
    )
}

fn blob_ref(cid: &str, size: u64) -> Cbor {
    map([
        ("$type", "blob".into()),
        ("ref", Cbor::Link(arroba::cid::parse_cid(cid).unwrap())),
        ("mimeType", "image/png".into()),
        ("size", Cbor::Integer(size as i64)),
    ])
}

fn image_post(path: &str, blob: Cbor) -> (String, Cbor) {
    (
        path.to_owned(),
        map([
            ("$type", "app.bsky.feed.post".into()),
            ("text", "with an image".into()),
            ("createdAt", "2026-01-01T00:00:00.000Z".into()),
            (
                "embed",
                map([
                    ("$type", "app.bsky.embed.images".into()),
                    (
                        "images",
                        Cbor::Array(vec![map([("alt", "".into()), ("image", blob)])]),
                    ),
                ]),
            ),
        ]),
    )
}

/// The CID a blob of `bytes` gets.
fn raw_cid(bytes: &[u8]) -> String {
    use sha2::Digest;
    arroba::cid::cid_from_sha256(arroba::cid::RAW, sha2::Sha256::digest(bytes).into()).to_string()
}

/// A repo of `records` for `did`, signed by `key` at `rev`: its CAR and head.
fn repo_car(did: &Did, key: &Keypair, rev: Tid, records: Vec<(String, Cbor)>) -> (Vec<u8>, Cid) {
    let repo = Repo::create_with_records(did.clone(), key, rev, records).unwrap();
    let mut out = Vec::new();
    repo.export_car(&mut out).unwrap();
    (out, repo.head())
}

impl Importer {
    async fn import(&self, body: Vec<u8>) -> (u16, Value) {
        self.import_as(&self.alice.access, Some(CAR), body).await
    }

    async fn import_as(&self, token: &str, media: Option<&str>, body: Vec<u8>) -> (u16, Value) {
        let mut req = self
            .pds
            .client
            .post(self.pds.xrpc("com.atproto.repo.importRepo"))
            .bearer_auth(token)
            .body(body);
        if let Some(m) = media {
            req = req.header("content-type", m);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn latest(&self) -> (String, String) {
        let (_, body) = self
            .pds
            .get(
                "com.atproto.sync.getLatestCommit",
                None,
                &[("did", &self.alice.did)],
            )
            .await;
        (
            body["cid"].as_str().unwrap().to_owned(),
            body["rev"].as_str().unwrap().to_owned(),
        )
    }

    async fn upload(&self, bytes: &[u8]) -> Value {
        let resp = self
            .pds
            .client
            .post(self.pds.xrpc("com.atproto.repo.uploadBlob"))
            .bearer_auth(&self.alice.access)
            .header("content-type", "image/png")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().await.unwrap()["blob"].clone()
    }

    async fn record_count(&self) -> usize {
        let mut count = 0;
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![
                ("repo", self.alice.did.clone()),
                ("collection", "app.bsky.feed.post".to_owned()),
                ("limit", "100".to_owned()),
            ];
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, body) = self
                .pds
                .get("com.atproto.repo.listRecords", None, &query)
                .await;
            assert_eq!(status, 200, "{body}");
            count += body["records"].as_array().unwrap().len();
            match body["cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return count,
            }
        }
    }
}

/// The `#sync` frames of the firehose from `cursor` on, until `commit`'s shows up (or 10 s).
async fn sync_frame_for(pds: &Pds, cursor: u64, commit: &Cid) -> Option<(Value, Cbor)> {
    let url = format!(
        "{}/xrpc/com.atproto.sync.subscribeRepos?cursor={cursor}",
        pds.url.replacen("http", "ws", 1)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .ok()??
            .ok()?;
        let Message::Binary(bytes) = msg else {
            continue;
        };
        let (header, rest) = cbor::decode_first(&bytes).unwrap();
        let body = cbor::decode(rest).unwrap();
        if header.get("t").and_then(Cbor::as_str) != Some("#sync") {
            continue;
        }
        let blocks = body.get("blocks").and_then(Cbor::as_bytes).unwrap();
        let car = arroba::car::read_car(blocks).unwrap();
        if car.roots.first() == Some(commit) {
            let json = cbor::to_json(&body);
            return Some((json, body));
        }
    }
}

async fn last_seq(pds: &Pds) -> u64 {
    pds.state.storage().last_seq().await.unwrap().unwrap_or(0)
}

#[tokio::test]
async fn an_import_replaces_the_repo_is_announced_and_a_repeat_changes_nothing() {
    let t = importer(&[]).await;
    let old_post = t.pds.create_post(&t.alice, "before the import").await;
    let uploaded = t.upload(b"an uploaded png").await;
    let uploaded_cid = uploaded["ref"]["$link"].as_str().unwrap().to_owned();
    let missing = raw_cid(b"a picture never uploaded");
    let mut records: Vec<(String, Cbor)> = (0..250).map(post).collect();
    records.push(image_post(
        "app.bsky.feed.post/3impimage0001",
        blob_ref(&uploaded_cid, 15),
    ));
    records.push(image_post(
        "app.bsky.feed.post/3impimage0002",
        blob_ref(&missing, 4),
    ));
    let rev = rev_in(5);
    let (car, head) = repo_car(&t.did, &t.key, rev, records);
    let cursor = last_seq(&t.pds).await;

    let (status, body) = t.import(car.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(t.latest().await, (head.to_string(), rev.to_string()));
    assert_eq!(t.record_count().await, 252);
    // getRepo sends the imported repo back byte for byte (the same blocks in the same order).
    let exported = t
        .pds
        .get_bytes("com.atproto.sync.getRepo", &[("did", t.alice.did.as_str())])
        .await
        .bytes()
        .await
        .unwrap();
    assert!(exported == car, "getRepo differs from the imported CAR");
    let (status, record) = t
        .pds
        .get(
            "com.atproto.repo.getRecord",
            None,
            &[
                ("repo", &t.alice.did),
                ("collection", "app.bsky.feed.post"),
                ("rkey", "3imp000000042"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["value"]["text"], "imported post 42");
    let old_rkey = old_post["uri"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let (status, _) = t
        .pds
        .get(
            "com.atproto.repo.getRecord",
            None,
            &[
                ("repo", &t.alice.did),
                ("collection", "app.bsky.feed.post"),
                ("rkey", old_rkey),
            ],
        )
        .await;
    assert_eq!(status, 400, "the repo is the imported one, not a merge");

    // Relays learn of the new head from a #sync carrying the commit.
    let (sync, _) = sync_frame_for(&t.pds, cursor, &head)
        .await
        .expect("a #sync for the imported commit");
    assert_eq!(sync["did"], t.alice.did);
    assert_eq!(sync["rev"], rev.to_string());

    // The blobs the records reference: the uploaded one is referenced (so never swept as
    // temporary); the other is expected, and referenced as soon as it is uploaded.
    let accounts = Accounts(t.pds.state.storage());
    let blob = accounts
        .get_blob(&t.did, &uploaded_cid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(blob.refs, ["app.bsky.feed.post/3impimage0001"]);
    assert_eq!(
        accounts
            .get_expected_blob(&t.did, &missing)
            .await
            .unwrap()
            .unwrap(),
        ["app.bsky.feed.post/3impimage0002"]
    );

    // The same CAR again: accepted, nothing moves, nothing is announced.
    let seq = last_seq(&t.pds).await;
    let (status, body) = t.import(car).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(t.latest().await.0, head.to_string());
    assert_eq!(last_seq(&t.pds).await, seq);
}

#[tokio::test]
async fn a_blob_uploaded_after_the_import_is_already_referenced() {
    let t = importer(&[]).await;
    let bytes = b"a picture that arrives after its post";
    let cid = raw_cid(bytes);
    let path = "app.bsky.feed.post/3impimage0003";
    let (car, _) = repo_car(
        &t.did,
        &t.key,
        rev_in(5),
        vec![image_post(path, blob_ref(&cid, bytes.len() as u64))],
    );
    let (status, body) = t.import(car).await;
    assert_eq!(status, 200, "{body}");
    let uploaded = t.upload(bytes).await;
    assert_eq!(uploaded["ref"]["$link"], cid);
    let accounts = Accounts(t.pds.state.storage());
    assert_eq!(
        accounts.get_blob(&t.did, &cid).await.unwrap().unwrap().refs,
        [path]
    );
    assert!(
        accounts
            .get_expected_blob(&t.did, &cid)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn records_an_import_replaces_release_their_blobs() {
    let t = importer(&[]).await;
    let blob = t.upload(b"a picture of the old repo").await;
    let cid = blob["ref"]["$link"].as_str().unwrap().to_owned();
    let (status, body) = t
        .pds
        .post(
            "com.atproto.repo.createRecord",
            Some(&t.alice.access),
            json!({"repo": t.alice.did, "collection": "app.bsky.feed.post", "record": {
                "$type": "app.bsky.feed.post", "text": "pic", "createdAt": "2026-01-01T00:00:00.000Z",
                "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": blob}]}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (car, _) = repo_car(&t.did, &t.key, rev_in(5), (0..3).map(post).collect());
    let (status, body) = t.import(car).await;
    assert_eq!(status, 200, "{body}");
    let gone = t
        .pds
        .get_bytes(
            "com.atproto.sync.getBlob",
            &[("did", &t.alice.did), ("cid", &cid)],
        )
        .await;
    assert_eq!(gone.status(), 400, "no record references the blob any more");
}

#[tokio::test]
async fn a_deactivated_account_takes_an_older_repo_silently() {
    let t = importer(&[]).await;
    let (status, body) = t
        .pds
        .post(
            "com.atproto.server.deactivateAccount",
            Some(&t.alice.access),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // An account arriving from another PDS: its last commit is older than this PDS's genesis.
    let rev = rev_in(-3600);
    let (car, head) = repo_car(&t.did, &t.key, rev, (0..10).map(post).collect());
    let seq = last_seq(&t.pds).await;
    let (status, body) = t.import(car).await;
    assert_eq!(status, 200, "{body}");
    let record = t
        .pds
        .state
        .storage()
        .load_repo(&t.did)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((record.head, record.rev), (head, rev));
    assert_eq!(
        last_seq(&t.pds).await,
        seq,
        "nothing announced before activation"
    );
}

/// What is wrong, the token and media type it is sent with, the body, and the status, error name
/// and part of the message expected.
type BadImport<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Vec<u8>,
    u16,
    &'a str,
    &'a str,
);

#[tokio::test]
async fn bad_imports_are_refused_with_a_clear_error_and_change_nothing() {
    let t = importer(&[("PDS_MAX_REPO_IMPORT_SIZE", "200000")]).await;
    let before = t.latest().await;
    let seq = last_seq(&t.pds).await;
    let (good, head) = repo_car(&t.did, &t.key, rev_in(5), (0..20).map(post).collect());
    let car = arroba::car::read_car(&good).unwrap();
    let record_cid = *car
        .order
        .iter()
        .find(|c| {
            cbor::decode(car.blocks.get(c).unwrap())
                .unwrap()
                .get("text")
                .is_some()
        })
        .unwrap();
    let without = |drop: &Cid| -> Vec<u8> {
        car_bytes(
            &car.roots,
            car.order
                .iter()
                .filter(|c| *c != drop)
                .map(|c| (c, car.blocks.get(c).unwrap())),
        )
    };
    let mut tampered = good.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let mut two_roots = encode_header(&[head, head]);
    two_roots.extend_from_slice(&good[encode_header(&[head]).len()..]);
    let (bob_car, _) = repo_car(
        &Did::parse("did:plc:bobbobbobbobbobbobbobbob").unwrap(),
        &t.key,
        rev_in(5),
        (0..2).map(post).collect(),
    );
    let stranger = Keypair::from_seed(Algorithm::K256, b"not alice's key");
    let (forged, _) = repo_car(&t.did, &stranger, rev_in(5), (0..2).map(post).collect());
    let not_a_map = {
        let record = cbor::encode(&Cbor::Array(vec![Cbor::Integer(1)]));
        let cid = cid_for_cbor(&record);
        let mut mst = arroba::mst::Mst::new(std::sync::Arc::new({
            let mut b = arroba::block::BlockMap::new();
            b.insert(cid, record.clone());
            b
        }));
        mst.insert("app.bsky.feed.post/3impbadrecord", cid).unwrap();
        let repo_blocks = mst
            .unstored_blocks(&arroba::block::BlockMap::new())
            .unwrap();
        let commit =
            arroba::repo::Commit::sign(t.did.clone(), mst.root_cid(), rev_in(5), None, &t.key);
        let mut blocks: Vec<(Cid, Vec<u8>)> = vec![(commit.cid(), commit.encode())];
        blocks.extend(repo_blocks.iter().map(|(c, b)| (*c, b.to_vec())));
        blocks.push((cid, record));
        car_bytes(
            &[commit.cid()],
            blocks.iter().map(|(c, b)| (c, b.as_slice())),
        )
    };
    let older = repo_car(&t.did, &t.key, rev_in(-3600), (0..2).map(post).collect()).0;
    let large = repo_car(&t.did, &t.key, rev_in(5), (0..1500).map(post).collect()).0;
    assert!(large.len() > 200_000);

    let app_password = {
        let (status, body) = t
            .pds
            .post(
                "com.atproto.server.createAppPassword",
                Some(&t.alice.access),
                json!({"name": "migrator"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, session) = t
            .pds
            .post(
                "com.atproto.server.createSession",
                None,
                json!({"identifier": t.alice.handle, "password": body["password"]}),
            )
            .await;
        assert_eq!(status, 200, "{session}");
        session["accessJwt"].as_str().unwrap().to_owned()
    };

    let access = t.alice.access.clone();
    let cases: Vec<BadImport> = vec![
        (
            "garbage",
            &access,
            Some(CAR),
            b"not a car".to_vec(),
            400,
            "InvalidRequest",
            "invalid CAR",
        ),
        (
            "empty body",
            &access,
            Some(CAR),
            vec![],
            400,
            "InvalidRequest",
            "body is expected",
        ),
        (
            "JSON",
            &access,
            Some("application/json"),
            b"{}".to_vec(),
            400,
            "InvalidRequest",
            "Content-Type",
        ),
        (
            "no content type",
            &access,
            None,
            good.clone(),
            400,
            "InvalidRequest",
            "Content-Type",
        ),
        (
            "truncated",
            &access,
            Some(CAR),
            good[..good.len() - 10].to_vec(),
            400,
            "InvalidRequest",
            "truncated",
        ),
        (
            "tampered block",
            &access,
            Some(CAR),
            tampered,
            400,
            "InvalidRequest",
            "does not match its CID",
        ),
        (
            "two roots",
            &access,
            Some(CAR),
            two_roots,
            400,
            "InvalidRequest",
            "expected one root",
        ),
        (
            "missing commit",
            &access,
            Some(CAR),
            without(&head),
            400,
            "InvalidRequest",
            "root commit",
        ),
        (
            "missing record",
            &access,
            Some(CAR),
            without(&record_cid),
            400,
            "InvalidRequest",
            "is missing",
        ),
        (
            "record not an object",
            &access,
            Some(CAR),
            not_a_map,
            400,
            "InvalidRequest",
            "not an object",
        ),
        (
            "another DID's repo",
            &access,
            Some(CAR),
            bob_car,
            400,
            "InvalidRequest",
            "did:plc:bob",
        ),
        (
            "signed by another key",
            &access,
            Some(CAR),
            forged,
            400,
            "InvalidRequest",
            "signature",
        ),
        (
            "older than the head",
            &access,
            Some(CAR),
            older,
            400,
            "InvalidRequest",
            "not newer",
        ),
        (
            "over the size limit",
            &access,
            Some(CAR),
            large,
            413,
            "PayloadTooLarge",
            "limit",
        ),
        (
            "an app password",
            &app_password,
            Some(CAR),
            good.clone(),
            401,
            "InvalidToken",
            "app passwords",
        ),
        (
            "no session",
            "",
            Some(CAR),
            good.clone(),
            401,
            "AuthenticationRequired",
            "",
        ),
    ];
    for (what, token, media, body, status, error, message) in cases {
        let (got, answer) = t.import_as(token, media, body).await;
        assert_eq!(got, status, "{what}: {answer}");
        assert_eq!(answer["error"], error, "{what}: {answer}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap_or_default()
                .contains(message),
            "{what}: {answer}"
        );
        assert_eq!(t.latest().await, before, "{what}: the head did not move");
        assert_eq!(last_seq(&t.pds).await, seq, "{what}: nothing was announced");
    }
}

#[tokio::test]
async fn an_import_past_the_limit_is_cut_off_while_streaming() {
    let t = importer(&[("PDS_MAX_REPO_IMPORT_SIZE", "100000")]).await;
    // No Content-Length: the limit is enforced on what arrives.
    let chunks = (0..50).map(|_| Ok::<_, std::io::Error>(vec![0u8; 10_000]));
    let resp = t
        .pds
        .client
        .post(t.pds.xrpc("com.atproto.repo.importRepo"))
        .bearer_auth(&t.alice.access)
        .header("content-type", CAR)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "PayloadTooLarge");
}

#[tokio::test]
async fn a_server_not_accepting_imports_says_so() {
    let t = importer(&[("PDS_ACCEPTING_REPO_IMPORTS", "false")]).await;
    let (car, _) = repo_car(&t.did, &t.key, rev_in(5), (0..2).map(post).collect());
    let (status, body) = t.import(car).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "Service is not accepting repo imports");
}
