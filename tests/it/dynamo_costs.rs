//! The DynamoDB cost of common operations, counted from the requests the SDK actually sent
//! (an interceptor counts every attempt) and the capacity units of the items written and read.
//! Asserts the warm single-record commit budget (3 requests) and prints the figures recorded in
//! `docs/dynamodb.md` (`cargo test --test it dynamo_costs -- --nocapture`).

use arroba::cbor::map;
use arroba::cid::Cid;
use arroba::repo::Write;
use arroba::storage::dynamo::DynamoMetrics;
use arroba::storage::{
    BlockCache, BlockStore, DynamoStorage, ExportItem, ExportWalk, commit_writes, load_repo_state,
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
    crate::common::create_test_repo(&*s, &cache, did(), &clock).await;
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

    // Exporting the whole repo in a cold process, as getRepo does: the nodes read ahead of the
    // walk, the records in runs of 2,048.
    s.clear_caches();
    s.reset_metrics();
    let cache = BlockCache::default();
    let (_, repo) = load_repo_state(&*s, &cache.view(), &did()).await.unwrap();
    let mut walk = ExportWalk::new(repo.commit().data);
    let (mut nodes, mut records) = (0, 0);
    loop {
        let batch = walk.next_batch(&*s, &cache, 2048).await.unwrap();
        if batch.is_empty() {
            break;
        }
        let run: Vec<(String, Cid)> = batch
            .into_iter()
            .filter_map(|item| match item {
                ExportItem::Node(..) => {
                    nodes += 1;
                    None
                }
                ExportItem::Record(path, cid) => Some((path, cid)),
            })
            .collect();
        records += s.read_repo_records(&did(), &run).await.unwrap().len();
    }
    assert_eq!(records, 10_003);
    let export = s.metrics();
    report(
        &format!("export 10,003 records ({nodes} nodes), cold"),
        &export,
    );
    println!(
        "(the export: {} sequential round trips)",
        export.round_trips
    );
    // Node by node (a read for each node's children) would be a round trip per inner node.
    assert!(
        export.round_trips * 10 < nodes,
        "{} round trips for {nodes} nodes: {export:?}",
        export.round_trips
    );
}
