//! `com.atproto.repo.*` and `com.atproto.sync.*` over HTTP: writes, reads, exports that
//! verify, proofs, blocks, listings and blobs.

use crate::common::pds::{Pds, Session};
use arroba::crypto::PublicKey;
use arroba::repo::verify::verify_repo_car;
use arroba::syntax::Did;
use serde_json::{Value, json};

async fn signing_key(pds: &Pds, did: &str) -> PublicKey {
    pds.state
        .resolver()
        .signing_key(&Did::parse(did).unwrap())
        .await
        .unwrap()
}

fn post(text: &str) -> Value {
    json!({"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-01-01T00:00:00.000Z"})
}

async fn create(pds: &Pds, s: &Session, rkey: &str, record: Value) -> (u16, Value) {
    pds.post(
        "com.atproto.repo.createRecord",
        Some(&s.access),
        json!({"repo": s.did, "collection": "app.bsky.feed.post", "rkey": rkey, "record": record}),
    )
    .await
}

#[tokio::test]
async fn records_are_created_read_updated_and_deleted() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let created = pds.create_post(&alice, "hello").await;
    assert_eq!(created["validationStatus"], "valid");
    let uri = created["uri"].as_str().unwrap();
    let rkey = uri.rsplit('/').next().unwrap();
    assert!(
        arroba::tid::Tid::parse(rkey).is_ok(),
        "default rkeys are TIDs"
    );
    assert_eq!(created["commit"]["cid"], pds.head(&alice.did).await);

    let (status, got) = pds
        .get(
            "com.atproto.repo.getRecord",
            None,
            &[
                ("repo", "alice.test"),
                ("collection", "app.bsky.feed.post"),
                ("rkey", rkey),
            ],
        )
        .await;
    assert_eq!(
        (status, got["value"]["text"].as_str(), got["cid"].clone()),
        (200, Some("hello"), created["cid"].clone())
    );
    let (status, _) = pds
        .get(
            "com.atproto.repo.getRecord",
            None,
            &[
                ("repo", &alice.did),
                ("collection", "app.bsky.feed.post"),
                ("rkey", rkey),
                (
                    "cid",
                    "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
                ),
            ],
        )
        .await;
    assert_eq!(
        status, 400,
        "a cid that is not the current one is RecordNotFound"
    );
    let (status, body) = pds
        .get(
            "com.atproto.repo.getRecord",
            None,
            &[
                ("repo", &alice.did),
                ("collection", "app.bsky.feed.post"),
                ("rkey", "3zzzzzzzzzzzz"),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("RecordNotFound"))
    );

    // Creating the same rkey again is an error (arroba silently updated).
    let (status, _) = create(&pds, &alice, rkey, post("again")).await;
    assert_eq!(status, 400);

    // putRecord creates and updates; swapRecord guards it.
    let put = |record: Value, swap: Option<Value>| {
        let mut body = json!({"repo": alice.did, "collection": "app.bsky.actor.profile", "rkey": "self", "record": record});
        if let Some(s) = swap {
            body["swapRecord"] = s;
        }
        pds.post("com.atproto.repo.putRecord", Some(&alice.access), body)
    };
    let (status, first) = put(json!({"displayName": "Alice"}), None).await;
    assert_eq!(status, 200, "{first}");
    let (status, body) = put(
        json!({"displayName": "Eve"}),
        Some(json!(
            "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
        )),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("InvalidSwap")));
    let (status, _) = put(
        json!({"displayName": "Alice B"}),
        Some(first["cid"].clone()),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = pds.post("com.atproto.repo.createRecord", Some(&alice.access), json!({"repo": alice.did, "collection": "app.bsky.actor.profile", "rkey": "notself", "record": {"displayName": "x"}})).await;
    assert_eq!(status, 400, "profile keys must be literal:self: {body}");

    // deleteRecord, and deleting a missing record is a no-op success.
    let head = pds.head(&alice.did).await;
    let (status, body) = pds
        .post(
            "com.atproto.repo.deleteRecord",
            Some(&alice.access),
            json!({"repo": alice.did, "collection": "app.bsky.feed.post", "rkey": "3zzzzzzzzzzzz"}),
        )
        .await;
    assert_eq!((status, body.get("commit")), (200, None));
    assert_eq!(pds.head(&alice.did).await, head);
    let (status, _) = pds
        .post(
            "com.atproto.repo.deleteRecord",
            Some(&alice.access),
            json!({"repo": alice.did, "collection": "app.bsky.feed.post", "rkey": rkey}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        pds.get(
            "com.atproto.repo.getRecord",
            None,
            &[
                ("repo", &alice.did),
                ("collection", "app.bsky.feed.post"),
                ("rkey", rkey)
            ]
        )
        .await
        .0,
        400
    );
    // swapCommit guards against a stale head.
    let (status, body) = pds.post("com.atproto.repo.createRecord", Some(&alice.access), json!({"repo": alice.did, "collection": "app.bsky.feed.post", "record": post("x"), "swapCommit": head})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("InvalidSwap")));
}

#[tokio::test]
async fn validation_follows_the_validate_flag() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    // `validate` is omitted when Null: the lexicon allows no null for it (nor does the
    // reference PDS, whose lexicon check refuses `"validate": null`).
    let base = |record: Value, collection: &str, validate: Value| {
        let mut body = json!({"repo": alice.did, "collection": collection, "record": record});
        if !validate.is_null() {
            body["validate"] = validate;
        }
        body
    };
    let (status, body) = pds
        .post(
            "com.atproto.repo.createRecord",
            Some(&alice.access),
            base(
                json!({"text": 5, "createdAt": "2026-01-01T00:00:00.000Z"}),
                "app.bsky.feed.post",
                Value::Null,
            ),
        )
        .await;
    assert_eq!(status, 400, "invalid against a known lexicon: {body}");
    let (status, body) = pds
        .post(
            "com.atproto.repo.createRecord",
            Some(&alice.access),
            base(json!({"text": 5}), "app.bsky.feed.post", json!(false)),
        )
        .await;
    assert_eq!(
        (status, body["validationStatus"].as_str()),
        (200, Some("unknown")),
        "validate=false skips the lexicon"
    );
    let (status, body) = pds
        .post(
            "com.atproto.repo.createRecord",
            Some(&alice.access),
            base(json!({"anything": 1}), "com.example.thing", Value::Null),
        )
        .await;
    assert_eq!(
        (status, body["validationStatus"].as_str()),
        (200, Some("unknown"))
    );
    let (status, _) = pds
        .post(
            "com.atproto.repo.createRecord",
            Some(&alice.access),
            base(json!({"anything": 1}), "com.example.thing", json!(true)),
        )
        .await;
    assert_eq!(status, 400, "validate=true needs a known lexicon");
    let (status, _) = pds
        .post(
            "com.atproto.repo.createRecord",
            Some(&alice.access),
            base(
                json!({"$type": "app.bsky.feed.like"}),
                "app.bsky.feed.post",
                Value::Null,
            ),
        )
        .await;
    assert_eq!(status, 400, "$type must match the collection");
}

#[tokio::test]
async fn apply_writes_is_all_or_nothing() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let create = |rkey: &str, text: &str| json!({"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post", "rkey": rkey, "value": post(text)});
    let (status, body) = pds.post("com.atproto.repo.applyWrites", Some(&alice.access), json!({"repo": alice.did, "writes": [create("3kaaaaaaaaa22", "a"), create("3kaaaaaaaab22", "b")]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"].as_array().unwrap().len(), 2);
    assert_eq!(
        body["results"][0]["$type"],
        "com.atproto.repo.applyWrites#createResult"
    );
    let head = pds.head(&alice.did).await;
    let failing = json!({"repo": alice.did, "writes": [
        create("3kaaaaaaaac22", "c"),
        {"$type": "com.atproto.repo.applyWrites#update", "collection": "app.bsky.feed.post", "rkey": "3kaaaaaaaab22", "value": post("b2")},
        {"$type": "com.atproto.repo.applyWrites#delete", "collection": "app.bsky.feed.post", "rkey": "3zzzzzzzzzz22"},
    ]});
    let (status, _) = pds
        .post("com.atproto.repo.applyWrites", Some(&alice.access), failing)
        .await;
    assert_eq!(status, 400);
    assert_eq!(pds.head(&alice.did).await, head, "nothing was written");
    assert_eq!(
        pds.get(
            "com.atproto.repo.getRecord",
            None,
            &[
                ("repo", &alice.did),
                ("collection", "app.bsky.feed.post"),
                ("rkey", "3kaaaaaaaac22")
            ]
        )
        .await
        .0,
        400
    );
    let ok = json!({"repo": alice.did, "writes": [
        {"$type": "com.atproto.repo.applyWrites#update", "collection": "app.bsky.feed.post", "rkey": "3kaaaaaaaab22", "value": post("b2")},
        {"$type": "com.atproto.repo.applyWrites#delete", "collection": "app.bsky.feed.post", "rkey": "3kaaaaaaaaa22"},
    ]});
    let (status, body) = pds
        .post("com.atproto.repo.applyWrites", Some(&alice.access), ok)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][1]["$type"],
        "com.atproto.repo.applyWrites#deleteResult"
    );
}

async fn list_page(
    pds: &Pds,
    alice: &Session,
    cursor: Option<String>,
    reverse: bool,
    limit: &str,
) -> Value {
    let mut q = vec![
        ("repo", alice.did.clone()),
        ("collection", "app.bsky.feed.post".into()),
        ("limit", limit.into()),
    ];
    if let Some(c) = cursor {
        q.push(("cursor", c));
    }
    if reverse {
        q.push(("reverse", "true".into()));
    }
    let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pds.get("com.atproto.repo.listRecords", None, &q).await.1
}

#[tokio::test]
async fn list_records_pages_newest_first_with_exclusive_cursors() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let rkeys: Vec<String> = (0..7)
        .map(|i| format!("3kaaaaaaaa{}22", ["a", "b", "c", "d", "e", "f", "g"][i]))
        .collect();
    for r in &rkeys {
        assert_eq!(create(&pds, &alice, r, post(r)).await.0, 200);
    }
    pds.post("com.atproto.repo.createRecord", Some(&alice.access), json!({"repo": alice.did, "collection": "app.bsky.feed.like", "record": {"subject": {"uri": "at://did:plc:x/app.bsky.feed.post/3kaaaaaaaaa22", "cid": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"}, "createdAt": "2026-01-01T00:00:00.000Z"}})).await;
    // limit=1 must terminate (arroba's inclusive cursor looped forever).
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let body = list_page(&pds, &alice, cursor.clone(), false, "1").await;
        for r in body["records"].as_array().unwrap() {
            seen.push(
                r["uri"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned(),
            );
        }
        match body["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(seen.len() <= 7, "the cursor must be exclusive");
    }
    let mut expected = rkeys.clone();
    expected.reverse();
    assert_eq!(seen, expected, "newest (highest rkey) first");
    let asc = list_page(&pds, &alice, None, true, "3").await;
    let got: Vec<&str> = asc["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        &rkeys.iter().map(String::as_str).collect::<Vec<_>>()[..3]
    );
    let next = list_page(
        &pds,
        &alice,
        asc["cursor"].as_str().map(str::to_owned),
        true,
        "3",
    )
    .await;
    assert_eq!(next["records"][0]["value"]["text"], rkeys[3]);
    let (_, d) = pds
        .get(
            "com.atproto.repo.describeRepo",
            None,
            &[("repo", "alice.test")],
        )
        .await;
    assert_eq!(
        d["collections"],
        json!(["app.bsky.feed.like", "app.bsky.feed.post"])
    );
    assert_eq!(
        (d["handle"].as_str(), d["handleIsCorrect"].as_bool()),
        (Some("alice.test"), Some(true))
    );
    assert_eq!(d["didDoc"]["id"], alice.did);
    assert_eq!(
        pds.get(
            "com.atproto.repo.listRecords",
            None,
            &[
                ("repo", &alice.did),
                ("collection", "app.bsky.feed.post"),
                ("limit", "101")
            ]
        )
        .await
        .0,
        400
    );
}

#[tokio::test]
async fn get_repo_exports_exactly_what_was_written_and_verifies() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let mut uris = Vec::new();
    for i in 0..30 {
        uris.push(
            pds.create_post(&alice, &format!("post {i}")).await["uri"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let resp = pds
        .get_bytes("com.atproto.sync.getRepo", &[("did", &alice.did)])
        .await;
    assert_eq!(resp.headers()["content-type"], "application/vnd.ipld.car");
    let car = resp.bytes().await.unwrap();
    let key = signing_key(&pds, &alice.did).await;
    let report = verify_repo_car(&car, Some(&key)).unwrap();
    assert_eq!(report.records, 30);
    // The operator's tool agrees.
    let file = pds.dir.path().join("export.car");
    std::fs::write(&file, &car).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arroba"))
        .args([
            "repo",
            "verify",
            file.to_str().unwrap(),
            "--key",
            &key.to_did_key(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: 30 records"));
    assert_eq!(report.commit_cid.to_string(), pds.head(&alice.did).await);
    let parsed = arroba::car::read_car(&car).unwrap();
    assert_eq!(parsed.order[0], report.commit_cid, "the commit comes first");
    let repo =
        arroba::repo::Repo::load(report.commit_cid, std::sync::Arc::new(parsed.blocks)).unwrap();
    let paths: Vec<String> = repo
        .mst()
        .leaves()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut expected: Vec<String> = uris
        .iter()
        .map(|u| u.split('/').skip(3).collect::<Vec<_>>().join("/"))
        .collect();
    expected.sort();
    assert_eq!(paths, expected);
    assert_eq!(
        pds.get_bytes("com.atproto.sync.getCheckout", &[("did", &alice.did)])
            .await
            .status(),
        200
    );

    // `since`: only the blocks of later commits.
    let (_, latest) = pds
        .get(
            "com.atproto.sync.getLatestCommit",
            None,
            &[("did", &alice.did)],
        )
        .await;
    let rev = latest["rev"].as_str().unwrap().to_owned();
    let added = pds.create_post(&alice, "after since").await;
    let diff = pds
        .get_bytes(
            "com.atproto.sync.getRepo",
            &[("did", &alice.did), ("since", &rev)],
        )
        .await
        .bytes()
        .await
        .unwrap();
    let diff = arroba::car::read_car(&diff).unwrap();
    assert_eq!(diff.roots[0].to_string(), pds.head(&alice.did).await);
    assert!(
        diff.blocks
            .contains(&arroba::cid::parse_cid(added["cid"].as_str().unwrap()).unwrap())
    );
    assert!(
        diff.blocks.len() < report.blocks / 2,
        "a diff, not the whole repo"
    );
    let (_, h) = pds
        .get("com.atproto.sync.getHead", None, &[("did", &alice.did)])
        .await;
    assert_eq!(h["root"].as_str().unwrap(), pds.head(&alice.did).await);
}

#[tokio::test]
async fn sync_get_record_proofs_and_get_blocks() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    for i in 0..20 {
        pds.create_post(&alice, &format!("{i}")).await;
    }
    let created = pds.create_post(&alice, "the one").await;
    let rkey = created["uri"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let proof = pds
        .get_bytes(
            "com.atproto.sync.getRecord",
            &[
                ("did", &alice.did),
                ("collection", "app.bsky.feed.post"),
                ("rkey", &rkey),
            ],
        )
        .await
        .bytes()
        .await
        .unwrap();
    let car = arroba::car::read_car(&proof).unwrap();
    let commit_cid = car.roots[0];
    let commit =
        arroba::repo::Commit::decode(commit_cid, car.blocks.get(&commit_cid).unwrap()).unwrap();
    commit.verify(&signing_key(&pds, &alice.did).await).unwrap();
    // The proof alone is enough to look the record up from the signed root.
    let mst = arroba::mst::Mst::load(commit.data, std::sync::Arc::new(car.blocks.clone()));
    let cid = mst
        .get(&format!("app.bsky.feed.post/{rkey}"))
        .unwrap()
        .unwrap();
    assert_eq!(cid.to_string(), created["cid"].as_str().unwrap());
    assert!(car.blocks.contains(&cid));
    // Absence is provable too: the path nodes, no record.
    let absent = pds
        .get_bytes(
            "com.atproto.sync.getRecord",
            &[
                ("did", &alice.did),
                ("collection", "app.bsky.feed.post"),
                ("rkey", "2222222222222"),
            ],
        )
        .await
        .bytes()
        .await
        .unwrap();
    let car = arroba::car::read_car(&absent).unwrap();
    let mst = arroba::mst::Mst::load(commit.data, std::sync::Arc::new(car.blocks));
    assert_eq!(mst.get("app.bsky.feed.post/2222222222222").unwrap(), None);

    let c = created["cid"].as_str().unwrap();
    let blocks = pds
        .get_bytes(
            "com.atproto.sync.getBlocks",
            &[
                ("did", &alice.did),
                ("cids", c),
                ("cids", &commit_cid.to_string()),
            ],
        )
        .await
        .bytes()
        .await
        .unwrap();
    let car = arroba::car::read_car(&blocks).unwrap();
    assert_eq!(
        car.order.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        vec![c.to_owned(), commit_cid.to_string()]
    );
    let (status, body) = pds
        .get(
            "com.atproto.sync.getBlocks",
            None,
            &[
                ("did", &alice.did),
                (
                    "cids",
                    "bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454",
                ),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("BlockNotFound"))
    );
}

#[tokio::test]
async fn list_repos_and_repo_status() {
    let pds = Pds::start(&[]).await;
    let mut dids = Vec::new();
    for name in ["aaa", "bbb", "ccc", "ddd"] {
        dids.push(pds.create_account(name).await.did);
    }
    dids.sort();
    let (_, page1) = pds
        .get("com.atproto.sync.listRepos", None, &[("limit", "2")])
        .await;
    let got: Vec<&str> = page1["repos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["did"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        &dids[..2].iter().map(String::as_str).collect::<Vec<_>>()[..]
    );
    assert_eq!(page1["repos"][0]["active"], true);
    let (_, page2) = pds
        .get(
            "com.atproto.sync.listRepos",
            None,
            &[
                ("limit", "2"),
                ("cursor", page1["cursor"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(page2["repos"][0]["did"].as_str().unwrap(), dids[2]);
    let (_, st) = pds
        .get("com.atproto.sync.getRepoStatus", None, &[("did", &dids[0])])
        .await;
    assert_eq!(
        (st["active"].as_bool(), st["rev"].is_string()),
        (Some(true), true)
    );
    let (status, body) = pds
        .get(
            "com.atproto.sync.getRepoStatus",
            None,
            &[("did", "did:plc:nobodynobodynobodynobody")],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("RepoNotFound"))
    );
}

#[tokio::test]
async fn blobs_upload_become_referenced_are_served_and_go_with_their_last_record() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let png: Vec<u8> = b"\x89PNG\r\n\x1a\n fake image bytes".to_vec();
    let resp = pds
        .client
        .post(pds.xrpc("com.atproto.repo.uploadBlob"))
        .bearer_auth(&alice.access)
        .header("content-type", "image/png")
        .body(png.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let uploaded: Value = resp.json().await.unwrap();
    let blob = uploaded["blob"].clone();
    let cid = blob["ref"]["$link"].as_str().unwrap().to_owned();
    assert_eq!(cid, arroba::cid::cid_for_raw(&png).to_string());
    assert!(cid.starts_with("bafkrei"));
    assert_eq!(
        (blob["mimeType"].as_str(), blob["size"].as_u64()),
        (Some("image/png"), Some(png.len() as u64))
    );
    // Temporary until referenced: not served, not listed.
    assert_eq!(
        pds.get_bytes(
            "com.atproto.sync.getBlob",
            &[("did", &alice.did), ("cid", &cid)]
        )
        .await
        .status(),
        400
    );
    assert_eq!(
        pds.get("com.atproto.sync.listBlobs", None, &[("did", &alice.did)])
            .await
            .1["cids"],
        json!([])
    );
    let record = json!({"$type": "app.bsky.feed.post", "text": "pic", "createdAt": "2026-01-01T00:00:00.000Z",
        "embed": {"$type": "app.bsky.embed.images", "images": [{"image": blob, "alt": "a picture"}]}});
    let (status, body) = create(&pds, &alice, "3kaaaaaaaaa22", record.clone()).await;
    assert_eq!(status, 200, "{body}");
    let resp = pds
        .get_bytes(
            "com.atproto.sync.getBlob",
            &[("did", &alice.did), ("cid", &cid)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(
        resp.headers()["content-length"],
        png.len().to_string().as_str()
    );
    assert_eq!(
        resp.headers()["content-security-policy"],
        "default-src 'none'; sandbox"
    );
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(resp.bytes().await.unwrap().to_vec(), png);
    assert_eq!(
        pds.get("com.atproto.sync.listBlobs", None, &[("did", &alice.did)])
            .await
            .1["cids"],
        json!([cid])
    );
    // A second record shares it; deleting one keeps it, deleting both removes it.
    assert_eq!(create(&pds, &alice, "3kaaaaaaaab22", record).await.0, 200);
    let delete = |rkey: &str| {
        pds.post(
            "com.atproto.repo.deleteRecord",
            Some(&alice.access),
            json!({"repo": alice.did, "collection": "app.bsky.feed.post", "rkey": rkey}),
        )
    };
    assert_eq!(delete("3kaaaaaaaaa22").await.0, 200);
    assert_eq!(
        pds.get_bytes(
            "com.atproto.sync.getBlob",
            &[("did", &alice.did), ("cid", &cid)]
        )
        .await
        .status(),
        200
    );
    assert_eq!(delete("3kaaaaaaaab22").await.0, 200);
    let (status, body) = pds
        .get(
            "com.atproto.sync.getBlob",
            None,
            &[("did", &alice.did), ("cid", &cid)],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("BlobNotFound"))
    );
    // A record may only reference blobs uploaded to this repo.
    let foreign = json!({"$type": "app.bsky.feed.post", "text": "x", "createdAt": "2026-01-01T00:00:00.000Z",
        "embed": {"$type": "app.bsky.embed.images", "images": [{"image": {"$type": "blob", "ref": {"$link": "bafkreibjfgx2gprinfvicegelk5kosd6y2frmqpqzwqkg7usac74l3t2v4"}, "mimeType": "image/png", "size": 10}, "alt": ""}]}});
    let (status, body) = create(&pds, &alice, "3kaaaaaaaac22", foreign).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("BlobNotFound"))
    );
}

/// A record whose deepest array sits `levels` containers below the record itself.
fn nested_record(levels: usize) -> Value {
    let mut inner = json!("bottom");
    for _ in 0..levels {
        inner = json!([inner]);
    }
    json!({"$type": "com.example.deep", "nest": inner})
}

#[tokio::test]
async fn the_deepest_accepted_record_reads_back_through_every_read_path() {
    use arroba::cbor::{self, MAX_DEPTH, Value as Cbor};
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let write = |record: Value| {
        pds.post(
            "com.atproto.repo.createRecord",
            Some(&alice.access),
            json!({"repo": alice.did, "collection": "com.example.deep", "record": record}),
        )
    };
    // The record map is one level, so MAX_DEPTH - 1 arrays fill the budget; one more is refused
    // before anything is written.
    let head = pds.head(&alice.did).await;
    let (status, body) = write(nested_record(MAX_DEPTH)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidRequest")),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains("deep"), "{body}");
    assert_eq!(pds.head(&alice.did).await, head);
    // A map key longer than any reader decodes is refused the same way.
    let long_key = "k".repeat(arroba::cbor::MAX_KEY_LEN + 1);
    let (status, body) = write(json!({"$type": "com.example.deep", long_key: 1})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidRequest")),
        "{body}"
    );
    assert_eq!(pds.head(&alice.did).await, head);
    let deepest = nested_record(MAX_DEPTH - 1);
    let (status, created) = write(deepest.clone()).await;
    assert_eq!(status, 200, "{created}");
    let uri = created["uri"].as_str().unwrap();
    let rkey = uri.rsplit('/').next().unwrap();
    let record_cid = arroba::cid::parse_cid(created["cid"].as_str().unwrap()).unwrap();
    let query = [
        ("repo", alice.did.as_str()),
        ("collection", "com.example.deep"),
        ("rkey", rkey),
    ];

    let (status, got) = pds.get("com.atproto.repo.getRecord", None, &query).await;
    assert_eq!((status, &got["value"]), (200, &deepest), "getRecord");
    let (status, listed) = pds
        .get("com.atproto.repo.listRecords", None, &query[..2])
        .await;
    assert_eq!(
        (status, &listed["records"][0]["value"]),
        (200, &deepest),
        "listRecords"
    );

    let decoded_in = |car: &[u8]| -> Option<Value> {
        let car = arroba::car::read_car(car).unwrap();
        let bytes = car.blocks.get(&record_cid)?;
        Some(cbor::to_json(&cbor::decode(bytes).unwrap()))
    };
    let proof = pds
        .get_bytes(
            "com.atproto.sync.getRecord",
            &[
                ("did", alice.did.as_str()),
                ("collection", "com.example.deep"),
                ("rkey", rkey),
            ],
        )
        .await;
    assert_eq!(proof.status(), 200);
    assert_eq!(
        decoded_in(&proof.bytes().await.unwrap()),
        Some(deepest.clone()),
        "sync.getRecord"
    );
    let repo = pds
        .get_bytes("com.atproto.sync.getRepo", &[("did", alice.did.as_str())])
        .await;
    assert_eq!(repo.status(), 200);
    assert_eq!(
        decoded_in(&repo.bytes().await.unwrap()),
        Some(deepest.clone()),
        "getRepo"
    );

    // The firehose, replayed from the start: the commit that carries the record.
    let url = format!(
        "{}/xrpc/com.atproto.sync.subscribeRepos?cursor=0",
        pds.url.replacen("http", "ws", 1)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let from_firehose = loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("the commit within 10 s")
            .unwrap()
            .unwrap();
        let Message::Binary(bytes) = msg else {
            continue;
        };
        let (header, rest) = cbor::decode_first(&bytes).unwrap();
        let body = cbor::decode(rest).unwrap();
        if header.get("t").and_then(Cbor::as_str) != Some("#commit") {
            continue;
        }
        let blocks = body.get("blocks").and_then(Cbor::as_bytes).unwrap();
        if let Some(found) = decoded_in(blocks) {
            break found;
        }
    };
    assert_eq!(from_firehose, deepest, "firehose #commit");
}
