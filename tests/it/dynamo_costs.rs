//! The DynamoDB cost of common operations, counted from the requests the SDK actually sent
//! (an interceptor counts every attempt) and the capacity units of the items written and read.
//! Asserts the warm single-record commit budget (3 requests) and prints the figures recorded in
//! `docs/dynamodb.md` (`cargo test --test dynamo_costs -- --nocapture`).

use arroba::cbor::map;
use arroba::crypto::{Algorithm, Keypair};
use arroba::repo::Write;
use arroba::storage::dynamo::DynamoMetrics;
use arroba::storage::{
    BlockCache, DynamoStorage, RepoKeys, commit_writes, create_repo, fetch_tree, load_repo_state,
};
use arroba::syntax::{Did, Nsid, RecordKey};
use arroba::tid::TidClock;

fn did() -> Did {
    Did::parse("did:plc:costcostcostcostcostcost").unwrap()
}

fn create(rkey: &str) -> Write {
    Write::create(
        Nsid::parse("app.bsky.feed.post").unwrap(),
        RecordKey::parse(rkey).unwrap(),
        map([
            ("$type", "app.bsky.feed.post".into()),
            (
                "text",
                format!("record {rkey}: a typical short post of about a hundred bytes of text")
                    .into(),
            ),
            ("createdAt", "2026-11-26T00:00:00.000Z".into()),
        ]),
    )
}

fn report(what: &str, m: &DynamoMetrics) {
    println!(
        "| {what} | {} | {} | {:.0} | {:.0} |",
        m.total_requests(),
        m.requests
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        m.write_units,
        m.read_units
    );
}

#[tokio::test]
async fn cost_of_a_commit_a_record_read_and_a_10000_record_export() {
    let s: std::sync::Arc<DynamoStorage> = crate::common::dynamo_storage().await;
    let clock = TidClock::new(0);
    let cache = BlockCache::default().view();
    create_repo(
        &*s,
        &cache,
        did(),
        None,
        RepoKeys {
            signing: Keypair::from_seed(Algorithm::K256, b"cost"),
            rotation: None,
        },
        &clock,
    )
    .await
    .unwrap();
    let mut n = 0;
    for _ in 0..50 {
        let writes: Vec<Write> = (0..200)
            .map(|_| {
                n += 1;
                create(&format!("r{n:05}"))
            })
            .collect();
        commit_writes(&*s, &cache, &did(), &writes, &clock)
            .await
            .unwrap();
    }
    println!(
        "| operation | requests | by operation | WCU | RCU |\n| --- | --- | --- | --- | --- |"
    );

    // A warm Lambda: the repo record and the blocks on the write path are cached.
    commit_writes(&*s, &cache, &did(), &[create("warmup")], &clock)
        .await
        .unwrap();
    s.reset_metrics();
    commit_writes(&*s, &cache, &did(), &[create("measured")], &clock)
        .await
        .unwrap();
    let commit = s.metrics();
    report("single-record commit, warm, 10,001-record repo", &commit);
    assert!(
        commit.total_requests() <= 3,
        "a warm single-record commit must take at most 3 requests: {commit:?}"
    );
    // The blocks go while the sequence number is allocated, then the transaction.
    assert_eq!(
        commit.round_trips, 2,
        "a warm single-record commit is two sequential round trips: {commit:?}"
    );

    // A cold single-record commit (new process): the repo and the path must be read first.
    s.clear_caches();
    s.reset_metrics();
    commit_writes(
        &*s,
        &BlockCache::default().view(),
        &did(),
        &[create("cold")],
        &clock,
    )
    .await
    .unwrap();
    report("single-record commit, cold", &s.metrics());

    // Reading one record in a cold process: repo, commit, the MST path, the record.
    s.clear_caches();
    s.reset_metrics();
    let fresh = BlockCache::default().view();
    let (_, repo) = load_repo_state(&*s, &fresh, &did()).await.unwrap();
    let path = repo.mst().cids_for_path("app.bsky.feed.post/r05000");
    let mut tries = 0;
    let record = loop {
        match repo.get_record(
            &Nsid::parse("app.bsky.feed.post").unwrap(),
            &RecordKey::parse("r05000").unwrap(),
        ) {
            Ok(r) => break r,
            Err(e) => {
                let cid = e.missing_block().unwrap();
                fresh.hold(
                    arroba::storage::BlockStore::read_blocks(&*s, &[cid])
                        .await
                        .unwrap(),
                );
                tries += 1;
                assert!(tries < 50);
            }
        }
    };
    assert!(record.is_some());
    drop(path);
    report("read one record, cold", &s.metrics());

    // Exporting the whole repo in a cold process: the tree level by level, records in batches.
    s.clear_caches();
    s.reset_metrics();
    let fresh = BlockCache::default().view();
    let (_, mut repo) = load_repo_state(&*s, &fresh, &did()).await.unwrap();
    fetch_tree(&*s, &fresh, &mut repo).await.unwrap();
    let leaves = repo.mst().leaves().unwrap();
    assert_eq!(leaves.len(), 10_003);
    let cids: Vec<_> = leaves.iter().map(|(_, c)| *c).collect();
    for chunk in cids.chunks(1000) {
        fresh.hold(
            arroba::storage::BlockStore::read_blocks(&*s, chunk)
                .await
                .unwrap(),
        );
    }
    let bytes = repo.export_car(std::io::sink()).unwrap();
    let export = s.metrics();
    report(
        &format!("export 10,003 records ({bytes} bytes of CAR), cold"),
        &export,
    );
}
