//! The main flows — account, writes, reads, getRepo, blobs — on DynamoDB and S3 in the
//! emulator, through the same router on a socket.

use std::sync::Arc;

use crate::common::pds::Pds;
use arroba::storage::{BlobStore, S3BlobStore, Storage};
use serde_json::json;

#[tokio::test]
async fn account_write_read_export_and_blobs_on_dynamodb_and_s3() {
    let storage: Arc<dyn Storage> = crate::common::dynamo_storage().await;
    let bucket = format!("blobs-{}", hex::encode(rand::random::<[u8; 4]>()));
    let s3 = S3BlobStore::new(&crate::common::sdk_config().await, bucket);
    s3.ensure_bucket().await.unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(s3);
    let pds = Pds::start_with(tempfile::tempdir().unwrap(), storage, blobs, &[]).await;

    let alice = pds.create_account("alice").await;
    let (status, _) = pds
        .post(
            "com.atproto.server.createSession",
            None,
            json!({"identifier": "alice@example.com", "password": "alice-pw"}),
        )
        .await;
    assert_eq!(status, 200);
    for i in 0..10 {
        pds.create_post(&alice, &format!("post {i}")).await;
    }
    let (_, list) = pds
        .get(
            "com.atproto.repo.listRecords",
            None,
            &[("repo", "alice.test"), ("collection", "app.bsky.feed.post")],
        )
        .await;
    assert_eq!(list["records"].as_array().unwrap().len(), 10);

    let image = b"GIF89a not really a gif".to_vec();
    let resp = pds
        .client
        .post(pds.xrpc("com.atproto.repo.uploadBlob"))
        .bearer_auth(&alice.access)
        .header("content-type", "image/gif")
        .body(image.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let blob = resp.json::<serde_json::Value>().await.unwrap()["blob"].clone();
    let record = json!({"repo": alice.did, "collection": "app.bsky.feed.post", "record": {"text": "pic", "createdAt": "2026-01-01T00:00:00.000Z",
        "embed": {"$type": "app.bsky.embed.images", "images": [{"image": blob, "alt": ""}]}}});
    assert_eq!(
        pds.post("com.atproto.repo.createRecord", Some(&alice.access), record)
            .await
            .0,
        200
    );
    let cid = blob["ref"]["$link"].as_str().unwrap();
    let got = pds
        .get_bytes(
            "com.atproto.sync.getBlob",
            &[("did", &alice.did), ("cid", cid)],
        )
        .await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), image);

    let car = pds
        .get_bytes("com.atproto.sync.getRepo", &[("did", &alice.did)])
        .await
        .bytes()
        .await
        .unwrap();
    let key = pds
        .state
        .resolver()
        .signing_key(&arroba::syntax::Did::parse(&alice.did).unwrap())
        .await
        .unwrap();
    let report = arroba::repo::verify::verify_repo_car(&car, Some(&key)).unwrap();
    assert_eq!(report.records, 11);
    let (_, status) = pds
        .get(
            "com.atproto.sync.getRepoStatus",
            None,
            &[("did", &alice.did)],
        )
        .await;
    assert_eq!(
        status["rev"].as_str().unwrap(),
        report.commit.rev.to_string()
    );
}
