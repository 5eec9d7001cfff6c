//! DynamoDB-specific behaviour against the emulator: many concurrent writers, the sequencer's
//! handling of numbers that never became events, and large records and commits.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arroba::cbor::{Value, map};
use arroba::crypto::{Algorithm, Keypair};
use arroba::repo::{RepoError, Write};
use arroba::storage::{
    BlockCache, BlockStore, DynamoStorage, EventBody, EventLog, RepoKeys, RepoStore, Sequencer,
    StorageError, commit_writes, create_repo, fetch_tree, load_repo_state,
};
use arroba::syntax::{Did, Nsid, RecordKey};
use arroba::tid::TidClock;

fn did(n: u32) -> Did {
    Did::parse(&format!("did:plc:dynamotest{n:014}")).unwrap()
}

fn create(rkey: &str, record: Value) -> Write {
    Write::create(
        Nsid::parse("app.bsky.feed.post").unwrap(),
        RecordKey::parse(rkey).unwrap(),
        record,
    )
}

fn post(text: &str) -> Value {
    map([
        ("$type", "app.bsky.feed.post".into()),
        ("text", text.into()),
    ])
}

async fn new_repo(s: &DynamoStorage, n: u32) {
    let key = Keypair::from_seed(Algorithm::K256, &n.to_be_bytes());
    create_repo(
        s,
        &BlockCache::default().view(),
        did(n),
        None,
        RepoKeys {
            signing: key,
            rotation: None,
        },
        &TidClock::new(0),
    )
    .await
    .unwrap();
}

/// Reads the whole log through a sequencer and checks per-repo commit order against the
/// acknowledged commits: each once, in chain order, seqs strictly increasing.
async fn check_log(s: Arc<DynamoStorage>, acked: &HashMap<Did, Vec<(arroba::cid::Cid, u64)>>) {
    let mut seq = Sequencer::new(s.clone(), 0, Duration::from_millis(100));
    let mut events = Vec::new();
    loop {
        let batch = seq.next_batch(500).await.unwrap();
        if batch.is_empty() {
            if seq.cursor() >= s.last_seq().await.unwrap().unwrap_or(0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        events.extend(batch);
    }
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    let mut per_repo: BTreeMap<Did, Vec<(arroba::cid::Cid, u64)>> = BTreeMap::new();
    for e in &events {
        if let EventBody::Commit(c) = &e.body {
            per_repo
                .entry(e.did.clone())
                .or_default()
                .push((c.commit, e.seq));
        }
    }
    for (did, acks) in acked {
        let logged = &per_repo[did];
        // Skip the genesis commit, which was not made by the writers.
        let logged: Vec<_> = logged[1..].to_vec();
        let mut sorted_acks = acks.clone();
        sorted_acks.sort_by_key(|(_, seq)| *seq);
        assert_eq!(
            logged, sorted_acks,
            "{did}: every acknowledged commit once, in seq order"
        );
        // Chain order: each logged commit's prev is the one before it.
        let cache = BlockCache::default().view();
        let (_, repo) = load_repo_state(&*s, &cache, did).await.unwrap();
        assert_eq!(
            repo.head(),
            logged.last().unwrap().0,
            "{did}: the head is the last commit logged"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_writers_times_25_commits_to_one_repo() {
    // Eight storage instances on the same tables, as eight Lambda instances: they race (writers
    // through one instance take turns).
    let sealer = arroba::storage::KeySealer::ephemeral();
    let prefix = format!("t{}-", hex::encode(rand::random::<[u8; 6]>()));
    let sdk = crate::common::sdk_config().await;
    let instance = || {
        Arc::new(DynamoStorage::with_sdk_config(
            &sdk,
            arroba::storage::dynamo::DynamoConfig::new(prefix.clone(), Some(sealer.clone())),
        ))
    };
    let s = instance();
    s.create_tables().await.unwrap();
    new_repo(&s, 1).await;
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let s = instance();
        tasks.push(tokio::spawn(async move {
            let (cache, clock) = (BlockCache::default().view(), TidClock::new(t as u16));
            let mut acked = Vec::new();
            for i in 0..25 {
                let write = [create(&format!("t{t}-{i}"), post("x"))];
                // A writer that lost the race on every attempt is refused and its commit not
                // made (`TooManyConflicts`, a 409 to a client), and a client sends it again. A
                // loaded emulator makes that possible, if rare; the log check below still
                // finds every acknowledged commit exactly once.
                let mut refusals = 0;
                let (data, seq) = loop {
                    match commit_writes(&*s, &cache, &did(1), &write, &clock).await {
                        Err(StorageError::TooManyConflicts(..)) if refusals < 3 => refusals += 1,
                        committed => break committed.unwrap(),
                    }
                };
                acked.push((data.cid, seq));
            }
            acked
        }));
    }
    let mut acked = HashMap::new();
    for t in tasks {
        acked
            .entry(did(1))
            .or_insert_with(Vec::new)
            .extend(t.await.unwrap());
    }
    let cache = BlockCache::default().view();
    let (_, mut repo) = load_repo_state(&*s, &cache, &did(1)).await.unwrap();
    fetch_tree(&*s, &cache, &mut repo).await.unwrap();
    assert_eq!(
        repo.mst().leaf_count().unwrap(),
        200,
        "every acknowledged write is in the repo"
    );
    check_log(s, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_repos_written_concurrently() {
    let s = crate::common::dynamo_storage().await;
    for n in 0..8 {
        new_repo(&s, n).await;
    }
    let mut tasks = Vec::new();
    for n in 0..8u32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let (cache, clock) = (BlockCache::default().view(), TidClock::new(n as u16));
            let mut acked = Vec::new();
            for i in 0..25 {
                let (data, seq) = commit_writes(
                    &*s,
                    &cache,
                    &did(n),
                    &[create(&format!("r{i}"), post("y"))],
                    &clock,
                )
                .await
                .unwrap();
                acked.push((data.cid, seq));
            }
            (did(n), acked)
        }));
    }
    let mut acked = HashMap::new();
    for t in tasks {
        let (d, a) = t.await.unwrap();
        acked.insert(d, a);
    }
    check_log(s, &acked).await;
}

#[tokio::test]
async fn a_seq_that_never_becomes_an_event_is_skipped_after_the_grace_period_and_never_reordered() {
    let s = crate::common::dynamo_storage().await;
    new_repo(&s, 1).await;
    let cache = BlockCache::default().view();
    let clock = TidClock::new(1);
    let start = s.last_seq().await.unwrap().unwrap();
    // A writer that took a number and died before committing.
    strand(&s, 1).await;
    let dead = start + 1;
    let (_, later) = commit_writes(
        &*s,
        &cache,
        &did(1),
        &[create("a", post("after the dead writer"))],
        &clock,
    )
    .await
    .unwrap();
    assert_eq!(later, dead + 1);

    let mut seq = Sequencer::new(s.clone(), start, Duration::from_millis(400));
    let began = std::time::Instant::now();
    let mut delivered = Vec::new();
    while delivered.is_empty() {
        delivered = seq.next_batch(10).await.unwrap();
        if delivered.is_empty() {
            assert!(
                began.elapsed() < Duration::from_secs(10),
                "the gap was never resolved"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(
        began.elapsed() >= Duration::from_millis(400),
        "the later event waited for the grace period"
    );
    assert_eq!(
        delivered.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![later]
    );
    // The number is now claimed for good: a late writer holding it cannot use it.
    assert!(s.mark_seq_skipped(dead).await.unwrap());
    assert!(
        !s.mark_seq_skipped(later).await.unwrap(),
        "an event is never marked skipped"
    );
}

/// Strands `n` sequence numbers in `s`'s tables (see `strand_seq_numbers`).
async fn strand(s: &DynamoStorage, n: u64) {
    let prefix = format!("{s:?}").split('"').nth(1).unwrap().to_owned();
    crate::common::strand_seq_numbers(&prefix, n).await;
}

#[tokio::test]
async fn numbers_a_crashed_writer_stranded_cost_one_grace_period_together() {
    let s = crate::common::dynamo_storage().await;
    new_repo(&s, 1).await;
    let cache = BlockCache::default().view();
    let start = s.last_seq().await.unwrap().unwrap();
    // A crashed Lambda's six numbers, then a live write above them.
    strand(&s, 6).await;
    let (_, later) = commit_writes(
        &*s,
        &cache,
        &did(1),
        &[create("a", post("after the crash"))],
        &TidClock::new(3),
    )
    .await
    .unwrap();
    assert_eq!(later, start + 7);
    let grace = Duration::from_millis(500);
    let mut seq = Sequencer::new(s.clone(), start, grace);
    let began = std::time::Instant::now();
    let mut delivered = Vec::new();
    while delivered.is_empty() {
        delivered = seq.next_batch(10).await.unwrap();
        if delivered.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let waited = began.elapsed();
    assert_eq!(
        delivered.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![later]
    );
    // One grace period, not six (three seconds). The margin is wide because every poll is an
    // emulator round trip, and those slow down when the whole suite runs beside this test.
    assert!(
        waited >= grace && waited < grace * 5,
        "waited {waited:?} for six stranded numbers"
    );
    for dead in start + 1..later {
        assert!(s.mark_seq_skipped(dead).await.unwrap(), "{dead} claimed");
    }
}

#[tokio::test]
async fn a_starting_hub_claims_old_gaps_after_one_grace_period_and_then_streams() {
    let s = crate::common::dynamo_storage().await;
    new_repo(&s, 1).await;
    // Forty numbers that will never be events (expired, or a crash before a restart).
    strand(&s, 40).await;
    let config = arroba::firehose::FirehoseConfig {
        gap_grace: Duration::from_millis(500),
        poll_interval: Duration::from_millis(10),
        ..arroba::firehose::FirehoseConfig::default()
    };
    let began = std::time::Instant::now();
    let hub = arroba::firehose::Hub::start(s.clone(), config, std::future::pending())
        .await
        .unwrap();
    let started = began.elapsed();
    // Forty waits of 500 ms would be twenty seconds; one is half a second (the rest is reading
    // and claiming, slower on a loaded emulator).
    assert!(started < Duration::from_secs(10), "started in {started:?}");
    assert_eq!(hub.position(), s.last_seq().await.unwrap().unwrap());
}

#[tokio::test]
async fn a_one_megabyte_record_and_a_200_op_two_megabyte_commit_work() {
    let s = crate::common::dynamo_storage().await;
    new_repo(&s, 1).await;
    let cache = BlockCache::default().view();
    let clock = TidClock::new(2);
    // A record of exactly 1,000,000 encoded bytes is stored in several parts and read back.
    let overhead = arroba::cbor::encode(&map([
        ("$type", "x.y.z".into()),
        ("b", Value::Bytes(vec![])),
    ]))
    .len();
    let big = map([
        ("$type", "x.y.z".into()),
        ("b", Value::Bytes(vec![7; 1_000_000 - overhead - 4])),
    ]);
    assert_eq!(arroba::cbor::encode(&big).len(), 1_000_000);
    let (data, _) = commit_writes(&*s, &cache, &did(1), &[create("big", big.clone())], &clock)
        .await
        .unwrap();
    let cid = data.ops[0].cid.unwrap();
    s.clear_caches();
    let read = s.read_block(&cid).await.unwrap().unwrap();
    assert_eq!(arroba::cbor::decode(&read).unwrap(), big);
    // One byte more is refused, and nothing changes.
    let head = s.load_repo(&did(1)).await.unwrap().unwrap().head;
    let too_big = map([
        ("$type", "x.y.z".into()),
        ("b", Value::Bytes(vec![7; 1_000_000 - overhead - 3])),
    ]);
    let err = commit_writes(&*s, &cache, &did(1), &[create("big2", too_big)], &clock)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Repo(RepoError::RecordTooLarge { .. })),
        "{err}"
    );
    assert_eq!(s.load_repo(&did(1)).await.unwrap().unwrap().head, head);
    // 200 records of 9 KB: close to the 2 MB commit limit.
    let writes: Vec<Write> = (0..200)
        .map(|i| {
            create(
                &format!("w{i:03}"),
                map([
                    ("$type", "x.y.z".into()),
                    ("b", Value::Bytes(vec![i as u8; 9_000])),
                ]),
            )
        })
        .collect();
    let (data, seq) = commit_writes(&*s, &cache, &did(1), &writes, &clock)
        .await
        .unwrap();
    assert!(data.slice_bytes() > 1_800_000);
    let events = s.read_events(Some(seq - 1), 1).await.unwrap();
    let EventBody::Commit(c) = &events[0].body else {
        panic!()
    };
    assert_eq!(c.ops.len(), 200);
    let blocks = s.read_blocks(&c.blocks).await.unwrap();
    assert_eq!(
        blocks.len(),
        c.blocks.len(),
        "every block of the firehose slice is stored"
    );
}

#[tokio::test]
async fn keys_are_sealed_at_rest() {
    let s = crate::common::dynamo_storage().await;
    new_repo(&s, 1).await;
    let raw = aws_sdk_dynamodb::Client::new(&crate::common::sdk_config().await);
    let prefix = format!("{:?}", s).split('"').nth(1).unwrap().to_owned();
    let item = raw
        .get_item()
        .table_name(format!("{prefix}repos"))
        .key(
            "did",
            aws_sdk_dynamodb::types::AttributeValue::S(did(1).to_string()),
        )
        .send()
        .await
        .unwrap();
    let item = item.item().unwrap();
    let secret = Keypair::from_seed(Algorithm::K256, &1u32.to_be_bytes()).to_bytes();
    for value in item.values() {
        if let Ok(b) = value.as_b() {
            assert!(
                !b.as_ref().windows(32).any(|w| w == secret),
                "the signing key is stored in plaintext"
            );
        }
    }
    assert!(item.contains_key("keys"));
}

#[tokio::test]
async fn a_commit_slower_than_the_landing_limit_fails_and_moves_nothing() {
    // The limit protects blocks from the collector (`storage::collect`); here it is zero, so
    // every commit overruns it between writing its blocks and landing its head.
    let mut config = arroba::storage::dynamo::DynamoConfig::new(
        format!("t{}-", hex::encode(rand::random::<[u8; 6]>())),
        Some(arroba::storage::KeySealer::ephemeral()),
    );
    config.block_landing_limit = Duration::ZERO;
    let slow = DynamoStorage::with_sdk_config(&crate::common::sdk_config().await, config);
    slow.create_tables().await.unwrap();
    new_repo(&slow, 1).await;
    let before = slow.load_repo(&did(1)).await.unwrap().unwrap();
    let key = Keypair::from_seed(Algorithm::K256, &1u32.to_be_bytes());
    let view = BlockCache::default().view();
    let (_, mut repo) = load_repo_state(&slow, &view, &did(1)).await.unwrap();
    fetch_tree(&slow, &view, &mut repo).await.unwrap();
    let (_, data) = repo
        .apply_writes(
            &[create("slow", post("late"))],
            &key,
            TidClock::new(9).next(arroba::tid::micros_of(chrono::Utc::now())),
        )
        .unwrap();
    let landed = slow.apply_commit(&data).await;
    assert!(
        matches!(landed, Err(StorageError::Conflict(_))),
        "{landed:?}"
    );
    let after = slow.load_repo(&did(1)).await.unwrap().unwrap();
    assert_eq!(after.head, before.head);
    // Its number was released at once: readers find no event there and do not wait.
    let after = slow.read_events(Some(4), 10).await.unwrap();
    assert!(after.is_empty(), "no event was sequenced: {after:?}");
    assert!(
        slow.mark_seq_skipped(5).await.unwrap(),
        "number 5 is marked skipped"
    );
}
