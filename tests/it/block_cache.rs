//! The process's block cache stays within `PDS_BLOCK_CACHE_BYTES` however many repos a
//! long-running server writes and reads, and reads stay correct when blocks are evicted.

use serde_json::json;

use crate::common::pds::Pds;

#[tokio::test]
async fn writing_and_reading_many_repos_keeps_the_block_cache_under_its_bound() {
    const BOUND: usize = 128 * 1024;
    let pds = Pds::start(&[("PDS_BLOCK_CACHE_BYTES", &BOUND.to_string())]).await;
    let cache = pds.state.cache().clone();
    let mut high = 0;
    let mut sessions = Vec::new();
    for n in 0..12 {
        let s = pds.create_account(&format!("reader{n:02}")).await;
        for batch in 0..2 {
            let writes: Vec<_> = (0..25)
                .map(|i| {
                    json!({"$type": "com.atproto.repo.applyWrites#create",
                    "collection": "app.bsky.feed.post",
                    "value": {"text": format!("{n}/{batch}/{i} {}", "x".repeat(280)),
                              "createdAt": "2026-12-01T00:00:00.000Z"}})
                })
                .collect();
            let (status, body) = pds
                .post(
                    "com.atproto.repo.applyWrites",
                    Some(&s.access),
                    json!({"repo": s.did, "writes": writes}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            high = high.max(cache.resident_bytes());
        }
        sessions.push(s);
    }
    // About 12 × 50 × 350 bytes of records were written, several times the bound.
    for s in &sessions {
        let mut seen = 0;
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![
                ("repo", s.did.as_str()),
                ("collection", "app.bsky.feed.post"),
                ("limit", "20"),
            ];
            if let Some(c) = &cursor {
                query.push(("cursor", c.as_str()));
            }
            let (status, body) = pds.get("com.atproto.repo.listRecords", None, &query).await;
            assert_eq!(status, 200, "{body}");
            seen += body["records"].as_array().unwrap().len();
            high = high.max(cache.resident_bytes());
            match body["cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, 50, "every record of {} listed", s.did);
        let car = pds
            .get_bytes("com.atproto.sync.getRepo", &[("did", s.did.as_str())])
            .await;
        assert_eq!(car.status(), 200);
        let blocks = arroba::car::read_car(&car.bytes().await.unwrap())
            .unwrap()
            .blocks;
        assert!(blocks.len() > 50, "the export holds every record and node");
        high = high.max(cache.resident_bytes());
    }
    assert!(
        high <= BOUND,
        "resident {high} bytes over the {BOUND}-byte bound"
    );
    assert!(high > BOUND / 2, "the cache is used ({high} bytes at most)");
}
