//! Fault injection through the emulator wrapper (`localstack/server.py`): throttling is
//! retried; an outage mid-commit gives a clear error and leaves no partial state; with a fixed
//! latency per request, a warm commit waits two round trips. The faults affect the whole
//! emulator, so these tests run one at a time in their own binary.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

#[path = "it/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use arroba::cbor::map;
use arroba::repo::Write;
use arroba::storage::{
    BlockCache, EventBody, EventLog, RepoStore, Sequencer, StorageError, commit_writes,
};
use arroba::syntax::{Did, Nsid, RecordKey};
use arroba::tid::TidClock;

static FAULTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn fault(path: &str) -> serde_json::Value {
    let url = format!("{}/_fault/{path}", common::dynamo_endpoint());
    let response = reqwest::Client::new().post(&url).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "the emulator at {url} has no fault injection (is it localstack/server.py?)"
    );
    response.json().await.unwrap()
}

fn did() -> Did {
    Did::parse("did:plc:faultfaultfaultfaultfaul").unwrap()
}

fn create(rkey: &str) -> Write {
    Write::create(
        Nsid::parse("app.bsky.feed.post").unwrap(),
        RecordKey::parse(rkey).unwrap(),
        map([
            ("$type", "app.bsky.feed.post".into()),
            ("text", rkey.into()),
        ]),
    )
}

#[tokio::test]
async fn throttled_requests_are_retried_and_succeed() {
    let _guard = FAULTS.lock().await;
    let s = common::dynamo_storage().await;
    common::create_test_repo(&*s, &BlockCache::default().view(), did(), &TidClock::new(0)).await;
    let before = fault("stats").await["throttled"].as_u64().unwrap();
    fault("throttle?n=3").await;
    s.reset_metrics();
    let result = commit_writes(
        &*s,
        &BlockCache::default().view(),
        &did(),
        &[create("a")],
        &TidClock::new(1),
    )
    .await;
    fault("up").await;
    result.unwrap();
    let after = fault("stats").await["throttled"].as_u64().unwrap();
    assert_eq!(after - before, 3, "three requests were throttled");
    // The retried attempts are counted as requests actually sent.
    assert!(s.metrics().total_requests() >= 3 + 3);
}

#[tokio::test]
async fn an_outage_at_any_point_of_a_commit_leaves_no_partial_state() {
    let _guard = FAULTS.lock().await;
    let s = common::dynamo_storage().await;
    common::create_test_repo(&*s, &BlockCache::default().view(), did(), &TidClock::new(0)).await;
    let clock = TidClock::new(2);
    commit_writes(
        &*s,
        &BlockCache::default().view(),
        &did(),
        &[create("base")],
        &clock,
    )
    .await
    .unwrap();
    // A commit is: read the repo, write blocks, allocate a number, one transaction. Cut the
    // service after each of those steps in turn.
    for (n, step) in [
        "before anything",
        "after the repo read",
        "after the block write",
        "after the number",
    ]
    .iter()
    .enumerate()
    {
        let before = s.load_repo(&did()).await.unwrap().unwrap();
        let events_before = s.read_repo_events(&did(), None, 1000).await.unwrap().len();
        s.clear_caches();
        fault(&format!("fail_after?n={n}")).await;
        let result = commit_writes(
            &*s,
            &BlockCache::default().view(),
            &did(),
            &[create(&format!("cut{n}"))],
            &clock,
        )
        .await;
        fault("up").await;
        let err = result.expect_err(step);
        assert!(matches!(err, StorageError::Backend(_)), "{step}: {err}");
        assert!(
            err.to_string().contains("503")
                || err.to_string().to_lowercase().contains("unavailable"),
            "{step}: a clear error, got {err}"
        );
        let after = s.load_repo(&did()).await.unwrap().unwrap();
        assert_eq!(after.head, before.head, "{step}: the head did not move");
        assert_eq!(
            s.read_repo_events(&did(), None, 1000).await.unwrap().len(),
            events_before,
            "{step}: no event"
        );
    }
    // After the service returns, writing works, and the sequencer passes over the number the
    // cut writer held (it never became an event).
    let (_, seq) = commit_writes(
        &*s,
        &BlockCache::default().view(),
        &did(),
        &[create("after")],
        &clock,
    )
    .await
    .unwrap();
    let mut sequencer = Sequencer::new(s.clone(), 0, Duration::from_millis(200));
    let mut seen = Vec::new();
    let began = std::time::Instant::now();
    while seen.last().is_none_or(|&last| last < seq) {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "the sequencer got stuck"
        );
        let batch = sequencer.next_batch(100).await.unwrap();
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen.extend(
            batch
                .into_iter()
                .filter(|e| matches!(e.body, EventBody::Commit(_)))
                .map(|e| e.seq),
        );
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        seen.len(),
        3,
        "genesis, base and after; nothing from the cut attempts"
    );
}

#[tokio::test]
async fn reads_during_an_outage_fail_clearly_and_recover() {
    let _guard = FAULTS.lock().await;
    let s = common::dynamo_storage().await;
    common::create_test_repo(&*s, &BlockCache::default().view(), did(), &TidClock::new(0)).await;
    fault("down").await;
    let result = s.load_repo(&did()).await;
    fault("up").await;
    assert!(matches!(result, Err(StorageError::Backend(_))));
    assert!(s.load_repo(&did()).await.unwrap().is_some());
}

/// The latency the emulator adds to each request in the round-trip test: far above its own
/// handling time, so the commit's time counts its sequential round trips.
const REQUEST_LATENCY: Duration = Duration::from_millis(250);

#[tokio::test]
async fn a_warm_commit_waits_two_round_trips_of_latency() {
    let _guard = FAULTS.lock().await;
    let s = common::dynamo_storage().await;
    let (cache, clock) = (BlockCache::default().view(), TidClock::new(0));
    common::create_test_repo(&*s, &cache, did(), &clock).await;
    // A warm process: the repo record and the write path are cached after one commit.
    commit_writes(&*s, &cache, &did(), &[create("warm")], &clock)
        .await
        .unwrap();
    let started = Instant::now();
    commit_writes(&*s, &cache, &did(), &[create("unhurried")], &clock)
        .await
        .unwrap();
    let handling = started.elapsed();
    fault(&format!("delay?ms={}", REQUEST_LATENCY.as_millis())).await;
    let started = Instant::now();
    let committed = commit_writes(&*s, &cache, &did(), &[create("measured")], &clock).await;
    let elapsed = started.elapsed();
    fault("up").await;
    committed.unwrap();
    let trips = elapsed.saturating_sub(handling).as_secs_f64() / REQUEST_LATENCY.as_secs_f64();
    println!(
        "warm single-record commit: {} ms with {} ms per request, {} ms without: {trips:.2} \
         round trips",
        elapsed.as_millis(),
        REQUEST_LATENCY.as_millis(),
        handling.as_millis()
    );
    // Blocks and the sequence number go together, then the transaction: two waits, not three.
    assert!(
        elapsed >= 2 * REQUEST_LATENCY && elapsed < 3 * REQUEST_LATENCY,
        "{elapsed:?} at {REQUEST_LATENCY:?} a request"
    );
}
