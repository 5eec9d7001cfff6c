//! Deleting an account over HTTP takes its blobs (bytes and records), preferences and
//! outstanding e-mail codes with it, on the embedded store and disk and on DynamoDB and S3;
//! nothing of it can be read afterwards; a purge cut off midway finishes when deletion is asked
//! for again. Its repo blocks and its history in the event log go too, once the block
//! collector has run, while every other repo stays whole.

use std::sync::Arc;

use arroba::storage::{
    Accounts, BlobStore, DiskBlobStore, DiskStorage, KeySealer, S3BlobStore, Storage,
};
use arroba::syntax::Did;
use serde_json::{Value, json};

use crate::common::faulty::{Faulty, Point};
use crate::common::pds::{Pds, Session};

async fn upload(pds: &Pds, who: &Session, bytes: &[u8]) -> Value {
    let response = pds
        .client
        .post(pds.xrpc("com.atproto.repo.uploadBlob"))
        .bearer_auth(&who.access)
        .header("content-type", "image/png")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["blob"].clone()
}

/// Alice with a posted picture, an unused upload, preferences and an unused e-mail code; returns
/// the two blobs.
async fn alice_with_everything(pds: &Pds, alice: &Session) -> [Value; 2] {
    let posted = upload(pds, alice, b"\x89PNG a posted picture").await;
    let unused = upload(pds, alice, b"\x89PNG an upload never used").await;
    let (status, _) = pds
        .post(
            "com.atproto.repo.createRecord",
            Some(&alice.access),
            json!({"repo": alice.did, "collection": "app.bsky.feed.post",
                "record": {"$type": "app.bsky.feed.post", "text": "look",
                    "createdAt": "2026-01-01T00:00:00.000Z",
                    "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": posted}]}}}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = pds
        .post(
            "app.bsky.actor.putPreferences",
            Some(&alice.access),
            json!({"preferences": [{"$type": "app.bsky.actor.defs#adultContentPref", "enabled": false}]}),
        )
        .await;
    assert_eq!(status, 200);
    pds.post(
        "com.atproto.server.requestEmailConfirmation",
        Some(&alice.access),
        json!({}),
    )
    .await;
    [posted, unused]
}

/// Bob, another account with a post, and the number of blocks the store holds once unused
/// ones are collected.
async fn bob_and_the_block_count(pds: &Pds) -> (Session, usize) {
    let bob = pds.create_account("bob").await;
    let (status, _) = pds
        .post(
            "com.atproto.repo.createRecord",
            Some(&bob.access),
            json!({"repo": bob.did, "collection": "app.bsky.feed.post",
                "record": {"$type": "app.bsky.feed.post", "text": "look",
                    "createdAt": "2026-01-01T00:00:00.000Z"}}),
        )
        .await;
    assert_eq!(status, 200);
    (bob, blocks_after_collecting(pds).await)
}

/// Collects unused blocks with no safety window (the test is the only writer) and counts the
/// blocks left.
async fn blocks_after_collecting(pds: &Pds) -> usize {
    let storage = pds.state.storage();
    let cache = arroba::storage::BlockCache::new(1 << 20);
    arroba::storage::collect_blocks(storage, &cache, std::time::Duration::ZERO, false)
        .await
        .unwrap();
    let mut count = 0;
    let mut token = None;
    loop {
        let (page, next) = storage.scan_blocks(token, 1000).await.unwrap();
        count += page.len();
        match next {
            Some(t) => token = Some(t),
            None => return count,
        }
    }
}

/// After the collector: the store holds exactly what it held before Alice, her history is
/// gone from the event log but for the deletion, and Bob's repo still exports whole.
async fn blocks_and_history_gone(pds: &Pds, alice: &Session, bob: &Session, before: usize) {
    assert_eq!(blocks_after_collecting(pds).await, before);
    let did = Did::parse(&alice.did).unwrap();
    let history = pds
        .state
        .storage()
        .read_repo_events(&did, None, 100)
        .await
        .unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(matches!(
        history[0].body,
        arroba::storage::EventBody::Account {
            active: false,
            status: Some(arroba::storage::RepoStatus::Deleted)
        }
    ));
    let response = pds
        .client
        .get(pds.xrpc("com.atproto.sync.getRepo"))
        .query(&[("did", &bob.did)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let car = response.bytes().await.unwrap();
    let report = arroba::repo::verify::verify_repo_car(&car, None).unwrap();
    assert_eq!(report.records, 1);
}

async fn delete_with_code(pds: &Pds, alice: &Session) -> (u16, Value) {
    pds.post(
        "com.atproto.server.requestAccountDelete",
        Some(&alice.access),
        json!({}),
    )
    .await;
    let code = pds.last_code_to("alice@example.com");
    pds.post(
        "com.atproto.server.deleteAccount",
        None,
        json!({"did": alice.did, "password": "alice-pw", "token": code}),
    )
    .await
}

/// Nothing of the account is readable, and its account data is gone from storage.
async fn nothing_left(pds: &Pds, alice: &Session, blobs: &[Value; 2]) {
    let did = alice.did.as_str();
    for (nsid, query) in [
        ("com.atproto.repo.describeRepo", vec![("repo", did)]),
        (
            "com.atproto.repo.listRecords",
            vec![("repo", did), ("collection", "app.bsky.feed.post")],
        ),
        ("com.atproto.sync.getLatestCommit", vec![("did", did)]),
        ("com.atproto.sync.getRepo", vec![("did", did)]),
        ("com.atproto.sync.listBlobs", vec![("did", did)]),
        (
            "com.atproto.sync.getBlob",
            vec![
                ("did", did),
                ("cid", blobs[0]["ref"]["$link"].as_str().unwrap()),
            ],
        ),
        (
            "com.atproto.identity.resolveHandle",
            vec![("handle", "alice.test")],
        ),
    ] {
        let (status, body) = pds.get(nsid, None, &query).await;
        assert!(
            (400..500).contains(&status),
            "{nsid} still answers for a deleted account: {status} {body}"
        );
    }
    let storage = pds.state.storage();
    let parsed = Did::parse(did).unwrap();
    assert!(
        Accounts(storage)
            .list_blobs(&parsed, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(storage.kv_get("preferences", did).await.unwrap().is_none());
    let codes = storage.kv_list("email-token-of", None, 100).await.unwrap();
    assert!(codes.iter().all(|(k, _)| !k.starts_with(did)), "{codes:?}");
    for blob in blobs {
        let cid = arroba::cid::parse_cid(blob["ref"]["$link"].as_str().unwrap()).unwrap();
        assert!(
            pds.state
                .blobs()
                .get(&parsed, &cid)
                .await
                .unwrap()
                .is_none(),
            "the blob's bytes are gone"
        );
    }
}

#[tokio::test]
async fn on_disk_a_deleted_account_leaves_no_blob_file_and_nothing_readable() {
    let pds = Pds::start(&[]).await;
    let (bob, before) = bob_and_the_block_count(&pds).await;
    let alice = pds.create_account("alice").await;
    let blobs = alice_with_everything(&pds, &alice).await;
    let folder = pds.dir.path().join("blobs").join(&alice.did);
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 2);
    let (status, body) = delete_with_code(&pds, &alice).await;
    assert_eq!(status, 200, "{body}");
    nothing_left(&pds, &alice, &blobs).await;
    let files = std::fs::read_dir(&folder).map(Iterator::count).unwrap_or(0);
    assert_eq!(files, 0, "no blob file is left on disk");
    blocks_and_history_gone(&pds, &alice, &bob, before).await;
}

#[tokio::test]
async fn on_dynamodb_and_s3_a_deleted_account_leaves_no_blob_object() {
    let storage: Arc<dyn Storage> = crate::common::dynamo_storage().await;
    let sdk = crate::common::sdk_config().await;
    let bucket = format!("blobs-{}", hex::encode(rand::random::<[u8; 4]>()));
    let s3 = S3BlobStore::new(&sdk, bucket.clone());
    s3.ensure_bucket().await.unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(s3);
    let pds = Pds::start_with(tempfile::tempdir().unwrap(), storage, blobs, &[]).await;
    let (bob, before) = bob_and_the_block_count(&pds).await;
    let alice = pds.create_account("alice").await;
    let uploaded = alice_with_everything(&pds, &alice).await;
    let objects = || async {
        aws_sdk_s3::Client::new(&sdk)
            .list_objects_v2()
            .bucket(&bucket)
            .send()
            .await
            .unwrap()
            .key_count()
            .unwrap_or(0)
    };
    assert_eq!(objects().await, 2);
    let (status, body) = delete_with_code(&pds, &alice).await;
    assert_eq!(status, 200, "{body}");
    nothing_left(&pds, &alice, &uploaded).await;
    assert_eq!(objects().await, 0, "no object is left in the bucket");
    blocks_and_history_gone(&pds, &alice, &bob, before).await;
}

#[tokio::test]
async fn a_purge_cut_off_midway_finishes_when_deletion_is_asked_again() {
    let dir = tempfile::tempdir().unwrap();
    let disk: Arc<dyn Storage> = Arc::new(
        DiskStorage::open(&dir.path().join("store"), Some(KeySealer::ephemeral())).unwrap(),
    );
    let faulty = Faulty::new(disk);
    let blob_dir = dir.path().join("blobs");
    let blobs: Arc<dyn BlobStore> = Arc::new(DiskBlobStore::new(blob_dir.clone()));
    let pds = Pds::start_with(dir, faulty.clone(), blobs, &[]).await;
    let alice = pds.create_account("alice").await;
    let uploaded = alice_with_everything(&pds, &alice).await;
    pds.post(
        "com.atproto.server.requestAccountDelete",
        Some(&alice.access),
        json!({}),
    )
    .await;
    let code = pds.last_code_to("alice@example.com");
    // The process dies partway: after the account is marked deleted, while its sessions are
    // being ended, before any blob is touched.
    faulty.fail("kv_list", Point::Before);
    let (status, _) = pds
        .post(
            "com.atproto.server.deleteAccount",
            None,
            json!({"did": alice.did, "password": "alice-pw", "token": code}),
        )
        .await;
    assert_eq!(status, 500);
    assert_eq!(
        std::fs::read_dir(blob_dir.join(&alice.did))
            .unwrap()
            .count(),
        2,
        "the purge had not begun"
    );
    // The operator deletes it again: the purge runs to the end.
    let (status, body) = pds
        .admin_post("com.atproto.admin.deleteAccount", json!({"did": alice.did}))
        .await;
    assert_eq!(status, 200, "{body}");
    nothing_left(&pds, &alice, &uploaded).await;
}
