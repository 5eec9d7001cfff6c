//! Blob references survive a crash at any point between upload, commit and sweep: faults are
//! injected through the storage wrapper ([`Faulty`]) at each step of a record write, time is
//! moved on by aging the blob records (as six hours passing would), and the sweep (which runs on
//! an upload) must keep every blob a record references and delete only what none does.

use std::sync::Arc;

use arroba::storage::accounts::BlobRecord;
use arroba::storage::{Accounts, BlobStore, DiskBlobStore, DiskStorage, KeySealer, Storage};
use arroba::syntax::Did;
use serde_json::{Value, json};

use crate::common::faulty::{Faulty, Point};
use crate::common::pds::{Pds, Session};

struct Harness {
    pds: Pds,
    faulty: Arc<Faulty>,
    alice: Session,
}

impl Harness {
    async fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let disk: Arc<dyn Storage> = Arc::new(
            DiskStorage::open(&dir.path().join("store"), Some(KeySealer::ephemeral())).unwrap(),
        );
        let faulty = Faulty::new(disk);
        let blobs: Arc<dyn BlobStore> = Arc::new(DiskBlobStore::new(dir.path().join("blobs")));
        let pds = Pds::start_with(dir, faulty.clone(), blobs, &[]).await;
        let alice = pds.create_account("alice").await;
        Harness { pds, faulty, alice }
    }

    async fn upload(&self, bytes: &[u8]) -> Value {
        let response = self
            .pds
            .client
            .post(self.pds.xrpc("com.atproto.repo.uploadBlob"))
            .bearer_auth(&self.alice.access)
            .header("content-type", "image/png")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()["blob"].clone()
    }

    async fn post_with(&self, rkey: &str, blob: &Value) -> u16 {
        self.pds
            .post(
                "com.atproto.repo.createRecord",
                Some(&self.alice.access),
                json!({"repo": self.alice.did, "collection": "app.bsky.feed.post", "rkey": rkey,
                    "record": {"$type": "app.bsky.feed.post", "text": "with a picture",
                        "createdAt": "2026-01-01T00:00:00.000Z",
                        "embed": {"$type": "app.bsky.embed.images",
                            "images": [{"alt": "", "image": blob}]}}}),
            )
            .await
            .0
    }

    async fn record_exists(&self, rkey: &str) -> bool {
        self.pds
            .get(
                "com.atproto.repo.getRecord",
                None,
                &[
                    ("repo", self.alice.did.as_str()),
                    ("collection", "app.bsky.feed.post"),
                    ("rkey", rkey),
                ],
            )
            .await
            .0
            == 200
    }

    async fn served(&self, blob: &Value) -> bool {
        let cid = blob["ref"]["$link"].as_str().unwrap();
        self.pds
            .get_bytes(
                "com.atproto.sync.getBlob",
                &[("did", self.alice.did.as_str()), ("cid", cid)],
            )
            .await
            .status()
            == 200
    }

    async fn blob_record(&self, blob: &Value) -> Option<BlobRecord> {
        let did = Did::parse(&self.alice.did).unwrap();
        Accounts(self.pds.state.storage())
            .get_blob(&did, blob["ref"]["$link"].as_str().unwrap())
            .await
            .unwrap()
    }

    /// Moves every blob record of the account seven hours into the past, as if that time had
    /// passed: uploads and pending marks alike.
    async fn seven_hours_pass(&self) {
        let did = Did::parse(&self.alice.did).unwrap();
        let accounts = Accounts(self.pds.state.storage());
        let earlier = chrono::Duration::hours(7);
        for (cid, _) in accounts.list_blobs(&did, None, 1000).await.unwrap() {
            accounts
                .update_blob(&did, &cid, |record| {
                    record.created_at -= earlier;
                    for p in &mut record.pending {
                        p.since -= earlier;
                    }
                    Ok::<_, arroba::storage::StorageError>(())
                })
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn a_crash_after_the_commit_before_its_references_are_recorded_loses_no_blob() {
    let h = Harness::start().await;
    let picture = h.upload(b"a picture kept by a crashed commit").await;
    // The commit's first storage update marks the blob; the second, after the commit, would
    // record the reference: it fails as if the process died there.
    h.faulty.fail_after("kv_put", 1, Point::Before);
    let status = h.post_with("3kaaaaaaaaa22", &picture).await;
    assert_eq!(status, 500, "the request fails where the process died");
    assert!(
        h.record_exists("3kaaaaaaaaa22").await,
        "the commit itself landed"
    );
    let record = h.blob_record(&picture).await.unwrap();
    assert!(
        record.refs.is_empty() && record.pending.len() == 1,
        "{record:?}"
    );

    // Six hours on, the sweep (run by the next upload) keeps it and records the reference; an
    // unused upload of the same age goes.
    let unused = h.upload(b"a picture nobody used").await;
    h.seven_hours_pass().await;
    h.upload(b"the upload that runs the sweep").await;
    assert!(
        h.served(&picture).await,
        "the referenced blob survived the sweep"
    );
    let record = h.blob_record(&picture).await.unwrap();
    assert_eq!(
        (record.refs, record.pending),
        (vec!["app.bsky.feed.post/3kaaaaaaaaa22".to_owned()], vec![])
    );
    assert!(
        !h.served(&unused).await,
        "the sweep ran and took the unused blob"
    );
}

#[tokio::test]
async fn a_crash_before_the_commit_leaves_nothing_that_keeps_a_blob_forever() {
    let h = Harness::start().await;
    let picture = h.upload(b"a picture whose post never landed").await;
    // The commit fails before storage sees it, and the process dies before it can take its
    // mark back.
    h.faulty.fail("apply_commit", Point::Before);
    h.faulty.fail_after("kv_put", 1, Point::Before);
    assert_eq!(h.post_with("3kaaaaaaaaa22", &picture).await, 500);
    assert!(!h.record_exists("3kaaaaaaaaa22").await);
    assert_eq!(h.blob_record(&picture).await.unwrap().pending.len(), 1);
    // Meanwhile the blob stays (a commit may still be in flight).
    h.upload(b"an upload that runs the sweep early").await;
    assert!(h.blob_record(&picture).await.is_some());
    // Six hours on, the mark is resolved against the repo (no such record) and the blob goes.
    h.seven_hours_pass().await;
    h.upload(b"the upload that runs the sweep").await;
    assert!(!h.served(&picture).await);
    assert!(h.blob_record(&picture).await.is_none());
}

#[tokio::test]
async fn a_failed_commit_takes_its_marks_back_and_a_later_post_still_works() {
    let h = Harness::start().await;
    let picture = h.upload(b"a picture posted on the second try").await;
    h.faulty.fail("apply_commit", Point::Before);
    assert_eq!(h.post_with("3kaaaaaaaaa22", &picture).await, 500);
    let record = h.blob_record(&picture).await.unwrap();
    assert!(
        record.pending.is_empty(),
        "the mark was taken back: {record:?}"
    );
    assert_eq!(h.post_with("3kaaaaaaaaa22", &picture).await, 200);
    let record = h.blob_record(&picture).await.unwrap();
    assert_eq!(record.refs, ["app.bsky.feed.post/3kaaaaaaaaa22"]);
    assert!(record.pending.is_empty());
}

#[tokio::test]
async fn concurrent_posts_of_one_blob_and_a_deletion_never_lose_a_reference() {
    let h = Harness::start().await;
    let picture = h.upload(b"a picture shared by many posts").await;
    assert_eq!(h.post_with("3kaaaaaaaaa22", &picture).await, 200);
    assert_eq!(h.post_with("3kaaaaaaaaz22", &picture).await, 200);
    // Eight posts reference it while the first post is deleted: references are updated by
    // compare-and-swap, so none is lost (a lost update would drop one, or bring the deleted one
    // back).
    let posts = (0..8u8).map(|i| {
        let (client, url, token, did, blob) = (
            h.pds.client.clone(),
            h.pds.xrpc("com.atproto.repo.createRecord"),
            h.alice.access.clone(),
            h.alice.did.clone(),
            picture.clone(),
        );
        tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"repo": did, "collection": "app.bsky.feed.post",
                    "rkey": format!("3kaaaaaaaab{}2", char::from(b'a' + i)),
                    "record": {"$type": "app.bsky.feed.post", "text": "again",
                        "createdAt": "2026-01-01T00:00:00.000Z",
                        "embed": {"$type": "app.bsky.embed.images",
                            "images": [{"alt": "", "image": blob}]}}}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        })
    });
    let deletion = h.pds.post(
        "com.atproto.repo.deleteRecord",
        Some(&h.alice.access),
        json!({"repo": h.alice.did, "collection": "app.bsky.feed.post", "rkey": "3kaaaaaaaaa22"}),
    );
    let (deleted, _) = deletion.await;
    assert_eq!(deleted, 200);
    for post in posts {
        let (status, body) = post.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let record = h.blob_record(&picture).await.unwrap();
    let mut refs = record.refs.clone();
    refs.sort();
    let mut expected: Vec<String> = (0..8u8)
        .map(|i| format!("app.bsky.feed.post/3kaaaaaaaab{}2", char::from(b'a' + i)))
        .collect();
    expected.push("app.bsky.feed.post/3kaaaaaaaaz22".to_owned());
    assert_eq!(refs, expected);
    assert!(record.pending.is_empty());
    assert!(h.served(&picture).await);
}
