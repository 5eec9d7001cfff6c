//! The storage conformance suite: written once, stamped out per backend by
//! `storage_conformance!`. A new backend passes it before it merges. The crash, pause and
//! call-count cases wrap the backend in `common::faulty::Faulty`, so every backend is also
//! tested for what happens when a call fails before or after it reached storage.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::common::faulty::{Faulty, Point};
use arroba::block::BlockMap;
use arroba::cbor::{Value, map};
use arroba::cid::cid_for_cbor;
use arroba::crypto::{Algorithm, Keypair};
use arroba::repo::{Repo, Write, WriteAction};
use arroba::storage::import::{SpooledCar, VerifiedRepo};
use arroba::storage::{
    BlockCache, EventBody, MemoryStorage, RemoteBlob, RemoteBlobs, RepoKeys, RepoStatus, Storage,
    StorageError, commit_writes, create_repo, fetch_tree, load_repo_state, writes_since,
};
use arroba::syntax::{Did, Handle, Nsid, RecordKey};
use arroba::tid::{TidClock, micros_of};
use chrono::Utc;

fn did(n: u32) -> Did {
    Did::parse(&format!("did:plc:conformance{n:011}")).unwrap()
}

fn handle(s: &str) -> Handle {
    Handle::parse(s).unwrap()
}

fn create(n: u32, text: &str) -> Write {
    Write::create(
        Nsid::parse("app.bsky.feed.post").unwrap(),
        RecordKey::parse(&format!("r{n}")).unwrap(),
        map([
            ("$type", "app.bsky.feed.post".into()),
            ("text", text.into()),
        ]),
    )
}

fn key(n: u32) -> Keypair {
    Keypair::from_seed(Algorithm::K256, &n.to_be_bytes())
}

fn keys(n: u32) -> RepoKeys {
    RepoKeys {
        signing: key(n),
        rotation: Some(key(n + 1000)),
    }
}

/// The last readable event's seq. Failed writes may use up sequence numbers (gaps are allowed
/// for numbers that never became events), so "nothing changed" is judged by the events.
async fn last_event(s: &dyn Storage) -> Option<u64> {
    s.read_events(None, 100_000)
        .await
        .unwrap()
        .last()
        .map(|e| e.seq)
}

async fn new_repo(s: &dyn Storage, n: u32, h: Option<&str>) -> arroba::storage::RepoRecord {
    let clock = TidClock::new(1);
    create_repo(
        s,
        &BlockCache::default().view(),
        did(n),
        h.map(handle),
        keys(n),
        &clock,
    )
    .await
    .unwrap()
    .0
}

async fn creates_and_loads_repos_by_did_and_handle(s: Arc<dyn Storage>) {
    let rec = new_repo(&*s, 1, Some("alice.test")).await;
    let loaded = s.load_repo(&did(1)).await.unwrap().unwrap();
    assert_eq!(loaded.head, rec.head);
    assert_eq!(loaded.status, RepoStatus::Active);
    let stored = s.load_keys(&did(1)).await.unwrap().unwrap();
    assert_eq!(stored.signing.to_bytes(), key(1).to_bytes());
    assert_eq!(stored.rotation.unwrap().to_bytes(), key(1001).to_bytes());
    let (for_write, _) = s.load_for_write(&did(1)).await.unwrap().unwrap();
    assert_eq!(for_write, loaded);
    assert_eq!(
        s.resolve_handle(&handle("alice.test")).await.unwrap(),
        Some(did(1))
    );
    assert!(s.load_repo(&did(99)).await.unwrap().is_none());
    assert!(s.load_keys(&did(99)).await.unwrap().is_none());
    assert!(
        s.resolve_handle(&handle("nobody.test"))
            .await
            .unwrap()
            .is_none()
    );
}

async fn duplicate_dids_and_handles_are_refused_and_write_nothing(s: Arc<dyn Storage>) {
    new_repo(&*s, 1, Some("alice.test")).await;
    let last = last_event(&*s).await;
    let clock = TidClock::new(1);
    let view = BlockCache::default().view();
    let again = create_repo(&*s, &view, did(1), None, keys(1), &clock).await;
    assert!(matches!(again, Err(StorageError::RepoExists(_))));
    let taken = create_repo(
        &*s,
        &view,
        did(2),
        Some(handle("alice.test")),
        keys(2),
        &clock,
    )
    .await;
    assert!(matches!(taken, Err(StorageError::HandleTaken(_))));
    assert!(s.load_repo(&did(2)).await.unwrap().is_none());
    assert_eq!(last_event(&*s).await, last);
}

async fn repo_creation_sequences_identity_account_commit_sync(s: Arc<dyn Storage>) {
    let rec = new_repo(&*s, 1, Some("alice.test")).await;
    let events = s.read_events(None, 100).await.unwrap();
    assert_eq!(events.len(), 4);
    assert!(
        matches!(&events[0].body, EventBody::Identity { handle: Some(h) } if h.as_str() == "alice.test")
    );
    assert_eq!(
        events[1].body,
        EventBody::Account {
            active: true,
            status: None
        }
    );
    assert!(
        matches!(&events[2].body, EventBody::Commit(c) if c.commit == rec.head && c.since.is_none() && c.prev_data.is_none())
    );
    assert_eq!(
        events[3].body,
        EventBody::Sync {
            commit: rec.head,
            rev: rec.rev
        }
    );
    for w in events.windows(2) {
        assert!(w[0].seq < w[1].seq);
    }
    assert_eq!(s.last_seq().await.unwrap(), Some(events[3].seq));
}

async fn lists_repos_in_did_order_with_an_exclusive_cursor(s: Arc<dyn Storage>) {
    for n in [5, 1, 3, 2, 4] {
        new_repo(&*s, n, None).await;
    }
    let all: Vec<Did> = s
        .list_repos(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.did)
        .collect();
    assert_eq!(all, (1..=5).map(did).collect::<Vec<_>>());
    let page: Vec<Did> = s
        .list_repos(Some(&did(2)), 2)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.did)
        .collect();
    assert_eq!(page, vec![did(3), did(4)]);
    assert!(s.list_repos(Some(&did(5)), 10).await.unwrap().is_empty());
}

async fn commits_store_blocks_move_the_head_and_append_events(s: Arc<dyn Storage>) {
    new_repo(&*s, 1, None).await;
    let cache = BlockCache::default().view();
    let clock = TidClock::new(2);
    let (data, seq) = commit_writes(
        &*s,
        &cache,
        &did(1),
        &[create(1, "one"), create(2, "two")],
        &clock,
    )
    .await
    .unwrap();
    let rec = s.load_repo(&did(1)).await.unwrap().unwrap();
    assert_eq!(rec.head, data.cid);
    assert_eq!(rec.rev, data.rev());
    for cid in data.new_blocks.cids() {
        assert!(s.read_block(cid).await.unwrap().is_some());
    }
    let events = s.read_events(Some(seq - 1), 10).await.unwrap();
    assert_eq!(events.len(), 1);
    let EventBody::Commit(c) = &events[0].body else {
        panic!("not a commit")
    };
    assert_eq!(c.ops.len(), 2);
    assert_eq!(c.since, data.since);
    assert_eq!(c.prev_data, data.prev_data);
    // A fresh cache reads the repo back from storage alone.
    let fresh = BlockCache::default().view();
    let (_, mut repo) = load_repo_state(&*s, &fresh, &did(1)).await.unwrap();
    fetch_tree(&*s, &fresh, &mut repo).await.unwrap();
    let record = arroba::block::BlockSource::read_block(&cache, &data.ops[0].cid.unwrap()).unwrap();
    assert_eq!(cid_for_cbor(&record), data.ops[0].cid.unwrap());
    assert_eq!(repo.mst().leaf_count().unwrap(), 2);
}

async fn a_stale_head_is_a_conflict_and_changes_nothing(s: Arc<dyn Storage>) {
    new_repo(&*s, 1, None).await;
    let cache = BlockCache::default().view();
    let clock = TidClock::new(3);
    let (_, mut repo) = load_repo_state(&*s, &cache, &did(1)).await.unwrap();
    fetch_tree(&*s, &cache, &mut repo).await.unwrap();
    let rev = clock.next_after(micros_of(Utc::now()), Some(repo.rev()));
    let (_, stale) = repo.apply_writes(&[create(1, "a")], &key(1), rev).unwrap();
    commit_writes(&*s, &cache, &did(1), &[create(2, "b")], &clock)
        .await
        .unwrap();
    let before = s.load_repo(&did(1)).await.unwrap().unwrap();
    let last = last_event(&*s).await;
    assert!(matches!(
        s.apply_commit(&stale).await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(
        s.load_repo(&did(1)).await.unwrap().unwrap().head,
        before.head
    );
    assert_eq!(last_event(&*s).await, last);
}

async fn inactive_repos_refuse_commits_and_status_changes_emit_account_events(s: Arc<dyn Storage>) {
    new_repo(&*s, 1, None).await;
    let seqs = s
        .set_status(
            &did(1),
            RepoStatus::Active,
            RepoStatus::Deactivated,
            vec![EventBody::account(RepoStatus::Deactivated)],
        )
        .await
        .unwrap();
    // A change decided on a status that no longer holds changes nothing.
    let last = s.last_seq().await.unwrap();
    let stale = s
        .set_status(
            &did(1),
            RepoStatus::Active,
            RepoStatus::Takendown,
            vec![EventBody::account(RepoStatus::Takendown)],
        )
        .await;
    assert!(
        matches!(stale, Err(StorageError::StatusChanged(_))),
        "{stale:?}"
    );
    // (DynamoDB may have taken a sequence number for it: numbers are not events.)
    assert!(
        s.read_events(last, 10).await.unwrap().is_empty(),
        "no event appended"
    );
    let missing = s
        .set_status(&did(9), RepoStatus::Active, RepoStatus::Deactivated, vec![])
        .await;
    assert!(
        matches!(missing, Err(StorageError::RepoNotFound(_))),
        "{missing:?}"
    );
    let event = &s.read_events(Some(seqs[0] - 1), 1).await.unwrap()[0];
    assert_eq!(
        event.body,
        EventBody::Account {
            active: false,
            status: Some(RepoStatus::Deactivated)
        }
    );
    let head = s.load_repo(&did(1)).await.unwrap().unwrap().head;
    let result = commit_writes(
        &*s,
        &BlockCache::default().view(),
        &did(1),
        &[create(1, "x")],
        &TidClock::new(4),
    )
    .await;
    assert!(matches!(
        result,
        Err(StorageError::InactiveRepo(_, RepoStatus::Deactivated))
    ));
    assert_eq!(s.load_repo(&did(1)).await.unwrap().unwrap().head, head);
    s.set_status(
        &did(1),
        RepoStatus::Deactivated,
        RepoStatus::Active,
        vec![EventBody::account(RepoStatus::Active)],
    )
    .await
    .unwrap();
    commit_writes(
        &*s,
        &BlockCache::default().view(),
        &did(1),
        &[create(1, "x")],
        &TidClock::new(4),
    )
    .await
    .unwrap();
}

async fn handles_move_and_are_released(s: Arc<dyn Storage>) {
    new_repo(&*s, 1, Some("alice.test")).await;
    new_repo(&*s, 2, Some("bob.test")).await;
    let taken = s
        .set_handle(&did(1), Some(handle("bob.test")), vec![])
        .await;
    assert!(matches!(taken, Err(StorageError::HandleTaken(_))));
    s.set_handle(
        &did(1),
        Some(handle("carol.test")),
        vec![EventBody::Identity {
            handle: Some(handle("carol.test")),
        }],
    )
    .await
    .unwrap();
    assert!(
        s.resolve_handle(&handle("alice.test"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.resolve_handle(&handle("carol.test")).await.unwrap(),
        Some(did(1))
    );
    assert_eq!(
        s.load_repo(&did(1)).await.unwrap().unwrap().handle,
        Some(handle("carol.test"))
    );
    s.set_handle(&did(2), Some(handle("alice.test")), vec![])
        .await
        .unwrap();
    assert_eq!(
        s.resolve_handle(&handle("alice.test")).await.unwrap(),
        Some(did(2))
    );
}

async fn blocks_are_written_once_and_read_in_batches(s: Arc<dyn Storage>) {
    let mut blocks = BlockMap::new();
    for i in 0..30i64 {
        let bytes = arroba::cbor::encode(&map([("i", Value::Integer(i))]));
        blocks.insert(cid_for_cbor(&bytes), bytes);
    }
    s.write_blocks(&blocks).await.unwrap();
    s.write_blocks(&blocks).await.unwrap();
    let cids: Vec<_> = blocks.cids().copied().collect();
    let missing = cid_for_cbor(b"nope");
    let mut wanted = cids.clone();
    wanted.push(missing);
    let read = s.read_blocks(&wanted).await.unwrap();
    assert_eq!(read, blocks);
    assert!(s.read_block(&missing).await.unwrap().is_none());
    assert!(s.read_blocks(&[]).await.unwrap().is_empty());
}

async fn events_are_read_by_seq_globally_and_per_repo(s: Arc<dyn Storage>) {
    new_repo(&*s, 1, None).await;
    new_repo(&*s, 2, None).await;
    let cache = BlockCache::default().view();
    let clock = TidClock::new(5);
    for n in 0..3 {
        commit_writes(&*s, &cache, &did(1), &[create(n, "a")], &clock)
            .await
            .unwrap();
        commit_writes(&*s, &cache, &did(2), &[create(n, "b")], &clock)
            .await
            .unwrap();
    }
    let all = s.read_events(None, 1000).await.unwrap();
    assert_eq!(all.len(), 14);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let page = s.read_events(Some(all[3].seq), 2).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![all[4].seq, all[5].seq]
    );
    let mine = s.read_repo_events(&did(2), None, 1000).await.unwrap();
    assert_eq!(mine.len(), 7);
    assert!(mine.iter().all(|e| e.did == did(2)));
    assert!(
        s.read_events(Some(all[13].seq), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn writes_since_a_rev_are_the_later_commits_ops(s: Arc<dyn Storage>) {
    new_repo(&*s, 1, None).await;
    let cache = BlockCache::default().view();
    let clock = TidClock::new(6);
    let (first, _) = commit_writes(&*s, &cache, &did(1), &[create(1, "a")], &clock)
        .await
        .unwrap();
    commit_writes(
        &*s,
        &cache,
        &did(1),
        &[create(2, "b"), create(3, "c")],
        &clock,
    )
    .await
    .unwrap();
    let del = Write::delete(
        Nsid::parse("app.bsky.feed.post").unwrap(),
        RecordKey::parse("r1").unwrap(),
    );
    commit_writes(&*s, &cache, &did(1), &[del], &clock)
        .await
        .unwrap();
    let since = writes_since(&*s, &did(1), first.rev(), 100).await.unwrap();
    let actions: Vec<(WriteAction, String)> = since
        .iter()
        .map(|(_, op)| (op.action, op.path.clone()))
        .collect();
    assert_eq!(
        actions,
        vec![
            (WriteAction::Create, "app.bsky.feed.post/r2".into()),
            (WriteAction::Create, "app.bsky.feed.post/r3".into()),
            (WriteAction::Delete, "app.bsky.feed.post/r1".into()),
        ]
    );
    assert_eq!(
        writes_since(&*s, &did(1), first.rev(), 1)
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn a_rejected_commit_leaves_storage_unchanged(s: Arc<dyn Storage>) {
    new_repo(&*s, 1, None).await;
    let cache = BlockCache::default().view();
    let clock = TidClock::new(7);
    commit_writes(&*s, &cache, &did(1), &[create(1, "a")], &clock)
        .await
        .unwrap();
    let before = s.load_repo(&did(1)).await.unwrap().unwrap();
    let last = last_event(&*s).await;
    let writes: Vec<Write> = (0..201).map(|n| create(1000 + n, "x")).collect();
    assert!(matches!(
        commit_writes(&*s, &cache, &did(1), &writes, &clock).await,
        Err(StorageError::Repo(_))
    ));
    assert!(
        commit_writes(&*s, &cache, &did(1), &[create(1, "dup")], &clock)
            .await
            .is_err()
    );
    assert!(matches!(
        commit_writes(&*s, &cache, &did(42), &[create(1, "x")], &clock).await,
        Err(StorageError::RepoNotFound(_))
    ));
    assert_eq!(
        s.load_repo(&did(1)).await.unwrap().unwrap().head,
        before.head
    );
    assert_eq!(last_event(&*s).await, last);
}

/// Concurrent writers to one repo: every acknowledged commit is in the final repo, the head
/// chain has no fork, and each commit appears once in the log in chain order.
async fn concurrent_commits_to_one_repo_never_fork_or_lose_writes(s: Arc<dyn Storage>) {
    new_repo(&*s, 1, None).await;
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let cache = BlockCache::default().view();
            let clock = TidClock::new(t as u16);
            let mut acked = Vec::new();
            for i in 0..10u32 {
                let (data, seq) =
                    commit_writes(&*s, &cache, &did(1), &[create(t * 100 + i, "c")], &clock)
                        .await
                        .unwrap();
                acked.push((data.cid, seq, data.ops[0].path.clone()));
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let fresh = BlockCache::default().view();
    let (_, mut repo) = load_repo_state(&*s, &fresh, &did(1)).await.unwrap();
    fetch_tree(&*s, &fresh, &mut repo).await.unwrap();
    let leaves: Vec<String> = repo
        .mst()
        .leaves()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for (_, _, path) in &acked {
        assert!(leaves.contains(path), "acknowledged write {path} lost");
    }
    assert_eq!(leaves.len(), 80);
    // Walk the prev chain from the head: it must pass through every acknowledged commit.
    let mut commits = BlockMap::new();
    let mut chain = Vec::new();
    let mut cursor = Some(repo.head());
    while let Some(cid) = cursor {
        chain.push(cid);
        let bytes = s.read_block(&cid).await.unwrap().unwrap();
        cursor = arroba::repo::Commit::decode(cid, &bytes).unwrap().prev;
        commits.insert(cid, bytes);
    }
    assert_eq!(chain.len(), 81);
    for (cid, _, _) in &acked {
        assert!(chain.contains(cid));
    }
    let events = s.read_repo_events(&did(1), None, 1000).await.unwrap();
    let commit_cids: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Commit(c) => Some(c.commit),
            _ => None,
        })
        .collect();
    chain.reverse();
    assert_eq!(
        commit_cids, chain,
        "events must list each commit once, in chain order"
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    let _ = Repo::load(repo.head(), Arc::new(commits)).unwrap();
}

async fn remote_blobs_are_upserted_by_url_and_found_by_cid(s: Arc<dyn Storage>) {
    let remote = RemoteBlobs(&*s);
    let cid = arroba::cid::cid_for_raw(b"image bytes");
    let blob = |url: &str, repos: &[u32], cid: Option<arroba::cid::Cid>| RemoteBlob {
        url: url.into(),
        cid,
        mime_type: "image/png".into(),
        size: 11,
        repos: repos.iter().map(|n| did(*n)).collect(),
        last_fetched: None,
        status: None,
    };
    let stored = remote
        .upsert(blob("https://a.test/1.png", &[1], Some(cid)))
        .await
        .unwrap();
    assert_eq!(stored.repos, BTreeSet::from([did(1)]));
    let merged = remote
        .upsert(blob("https://a.test/1.png", &[2], Some(cid)))
        .await
        .unwrap();
    assert_eq!(merged.repos, BTreeSet::from([did(1), did(2)]));
    let mut inactive = blob("https://a.test/1.png", &[], Some(cid));
    inactive.status = Some("inactive".into());
    let updated = remote.upsert(inactive).await.unwrap();
    assert_eq!(updated.status.as_deref(), Some("inactive"));
    assert_eq!(updated.repos.len(), 2);
    remote
        .upsert(blob("https://b.test/2.png", &[3], Some(cid)))
        .await
        .unwrap();
    remote
        .upsert(blob("https://c.test/3.png", &[3], None))
        .await
        .unwrap();
    let got = remote.get("https://a.test/1.png").await.unwrap().unwrap();
    assert_eq!(got, updated);
    assert!(remote.get("https://nope.test/").await.unwrap().is_none());
    let mut urls: Vec<String> = remote
        .by_cid(&cid)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.url)
        .collect();
    urls.sort();
    assert_eq!(urls, ["https://a.test/1.png", "https://b.test/2.png"]);
}

async fn the_key_value_store_supports_claims_compare_and_swap_and_single_use_takes(
    s: Arc<dyn Storage>,
) {
    use arroba::storage::KvCondition::{Always, IfAbsent, IfEquals};
    assert!(s.kv_get("ns", "a").await.unwrap().is_none());
    assert!(s.kv_put("ns", "a", b"1", IfAbsent).await.unwrap());
    assert!(
        !s.kv_put("ns", "a", b"2", IfAbsent).await.unwrap(),
        "a claim is refused once taken"
    );
    assert!(!s.kv_put("ns", "a", b"3", IfEquals(b"2")).await.unwrap());
    assert!(s.kv_put("ns", "a", b"3", IfEquals(b"1")).await.unwrap());
    assert_eq!(
        s.kv_get("ns", "a").await.unwrap().as_deref(),
        Some(&b"3"[..])
    );
    assert!(s.kv_put("ns", "b", b"x", Always).await.unwrap());
    assert!(s.kv_put("ns", "c", b"y", Always).await.unwrap());
    assert!(s.kv_put("other", "a", b"z", Always).await.unwrap());
    let listed: Vec<String> = s
        .kv_list("ns", None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(listed, ["a", "b", "c"]);
    let page: Vec<String> = s
        .kv_list("ns", Some("a"), 1)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(page, ["b"]);
    assert!(
        s.kv_delete("ns", "b", Some(b"wrong"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.kv_delete("ns", "b", Some(b"x")).await.unwrap().as_deref(),
        Some(&b"x"[..])
    );
    assert!(
        s.kv_delete("ns", "b", None).await.unwrap().is_none(),
        "taken exactly once"
    );
    // Concurrent takes of one token: exactly one wins.
    s.kv_put("tokens", "t", b"v", Always).await.unwrap();
    let takes = (0..8).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { s.kv_delete("tokens", "t", None).await.unwrap().is_some() })
    });
    let mut wins = 0;
    for t in takes {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    // An expiring value is a value like any other until its backend expires it, conditions
    // included (OAuth requests, codes and sessions are stored this way).
    let later = chrono::Utc::now().timestamp() + 3600;
    assert!(
        s.kv_put_expiring("exp", "k", b"1", IfAbsent, later)
            .await
            .unwrap()
    );
    assert!(
        !s.kv_put_expiring("exp", "k", b"2", IfAbsent, later)
            .await
            .unwrap()
    );
    assert!(
        s.kv_put_expiring("exp", "k", b"2", IfEquals(b"1"), later)
            .await
            .unwrap()
    );
    assert_eq!(
        s.kv_get("exp", "k").await.unwrap().as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(
        s.kv_delete("exp", "k", None).await.unwrap().as_deref(),
        Some(&b"2"[..])
    );
}

async fn counters_add_up_to_their_limit_and_no_further_under_concurrency(s: Arc<dyn Storage>) {
    let expires = chrono::Utc::now().timestamp() + 60;
    assert_eq!(
        s.kv_add("limits", "k", 3, 10, expires).await.unwrap(),
        Some(3)
    );
    assert_eq!(
        s.kv_add("limits", "k", 7, 10, expires).await.unwrap(),
        Some(10)
    );
    assert_eq!(
        s.kv_add("limits", "k", 1, 10, expires).await.unwrap(),
        None,
        "a full counter refuses and stays full"
    );
    assert_eq!(
        s.kv_add("limits", "other", 11, 10, expires).await.unwrap(),
        None
    );
    assert_eq!(
        s.kv_add("limits", "other", 1, 10, expires).await.unwrap(),
        Some(1)
    );
    // Sixteen concurrent adds of 2 against a limit of 20: exactly ten land.
    let adds = (0..16).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { s.kv_add("limits", "race", 2, 20, expires).await.unwrap() })
    });
    let mut landed = Vec::new();
    for a in adds {
        if let Some(total) = a.await.unwrap() {
            landed.push(total);
        }
    }
    landed.sort_unstable();
    assert_eq!(landed, (1..=10).map(|i| i * 2).collect::<Vec<u64>>());
}

/// The head, and the commit events, as a reader sees them.
async fn snapshot(s: &dyn Storage) -> (arroba::cid::Cid, Vec<arroba::cid::Cid>) {
    let head = s.load_repo(&did(1)).await.unwrap().unwrap().head;
    let commits = s
        .read_repo_events(&did(1), None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.body {
            EventBody::Commit(c) => Some(c.commit),
            _ => None,
        })
        .collect();
    (head, commits)
}

/// Every block of the repo at its head is readable from storage alone (a fresh cache).
async fn assert_whole(s: &dyn Storage, records: usize) {
    let fresh = BlockCache::default().view();
    let (_, mut repo) = load_repo_state(s, &fresh, &did(1)).await.unwrap();
    fetch_tree(s, &fresh, &mut repo).await.unwrap();
    let leaves = repo.mst().leaves().unwrap();
    assert_eq!(leaves.len(), records);
    let cids: Vec<_> = leaves.iter().map(|(_, c)| *c).collect();
    assert_eq!(s.read_blocks(&cids).await.unwrap().len(), cids.len());
}

async fn a_crash_before_a_commit_reaches_storage_changes_nothing(s: Arc<dyn Storage>) {
    new_repo(&*s, 1, None).await;
    let faulty = Faulty::new(s.clone());
    let clock = TidClock::new(11);
    let before = snapshot(&*s).await;
    faulty.fail("apply_commit", Point::Before);
    let view = BlockCache::default().view();
    let failed = commit_writes(&*faulty, &view, &did(1), &[create(1, "a")], &clock).await;
    assert!(
        matches!(failed, Err(StorageError::Backend(_))),
        "{failed:?}"
    );
    assert_eq!(snapshot(&*s).await, before);
    // The writer's retry commits normally on the unchanged head.
    let (data, _) = commit_writes(&*faulty, &view, &did(1), &[create(1, "a")], &clock)
        .await
        .unwrap();
    assert_eq!(data.prev, Some(before.0));
    assert_whole(&*s, 1).await;
}

async fn a_crash_after_a_commit_reached_storage_leaves_it_whole_and_durable(s: Arc<dyn Storage>) {
    new_repo(&*s, 1, None).await;
    let faulty = Faulty::new(s.clone());
    let clock = TidClock::new(12);
    let (genesis, _) = snapshot(&*s).await;
    faulty.fail("apply_commit", Point::After);
    let view = BlockCache::default().view();
    let failed = commit_writes(&*faulty, &view, &did(1), &[create(1, "a")], &clock).await;
    assert!(failed.is_err());
    // The writer was told it failed, but the backend had committed: the new head is complete,
    // on the log once, and the next commit builds on it rather than forking from genesis.
    let (head, commits) = snapshot(&*s).await;
    assert_ne!(head, genesis);
    assert_eq!(commits.last(), Some(&head));
    assert_whole(&*s, 1).await;
    let (next, _) = commit_writes(&*faulty, &view, &did(1), &[create(2, "b")], &clock)
        .await
        .unwrap();
    assert_eq!(next.prev, Some(head));
    let (_, commits) = snapshot(&*s).await;
    assert_eq!(commits.len(), 3, "genesis, the crashed commit, the next");
    assert_whole(&*s, 2).await;
}

async fn repo_creation_is_all_or_nothing_at_either_crash_point(s: Arc<dyn Storage>) {
    let faulty = Faulty::new(s.clone());
    let view = BlockCache::default().view();
    faulty.fail("create_repo", Point::Before);
    let clock = TidClock::new(13);
    let failed = create_repo(
        &*faulty,
        &view,
        did(1),
        Some(handle("a.test")),
        keys(1),
        &clock,
    );
    assert!(failed.await.is_err());
    assert!(s.load_repo(&did(1)).await.unwrap().is_none());
    assert!(s.resolve_handle(&handle("a.test")).await.unwrap().is_none());
    assert!(s.read_events(None, 10).await.unwrap().is_empty());
    faulty.fail("create_repo", Point::After);
    let crashed = create_repo(
        &*faulty,
        &view,
        did(1),
        Some(handle("a.test")),
        keys(1),
        &clock,
    );
    assert!(crashed.await.is_err());
    // It landed whole: record, keys, handle and all four events.
    assert!(s.load_repo(&did(1)).await.unwrap().is_some());
    assert!(s.load_keys(&did(1)).await.unwrap().is_some());
    assert_eq!(
        s.resolve_handle(&handle("a.test")).await.unwrap(),
        Some(did(1))
    );
    assert_eq!(s.read_events(None, 10).await.unwrap().len(), 4);
    assert_whole(&*s, 0).await;
}

async fn a_writer_paused_before_its_commit_loses_the_race_and_rebuilds_without_a_fork(
    s: Arc<dyn Storage>,
) {
    new_repo(&*s, 1, None).await;
    let faulty = Faulty::new(s.clone());
    let gate = faulty.pause("apply_commit", Point::Before);
    let slow = {
        let faulty = faulty.clone();
        tokio::spawn(async move {
            let view = BlockCache::default().view();
            commit_writes(
                &*faulty,
                &view,
                &did(1),
                &[create(1, "slow")],
                &TidClock::new(14),
            )
            .await
        })
    };
    gate.reached().await;
    // Another process (another storage instance) commits while the first holds a commit
    // built on the old head. (Writers through one instance take turns instead.)
    let view = BlockCache::default().view();
    let (fast, _) = commit_writes(
        &*s,
        &view,
        &did(1),
        &[create(2, "fast")],
        &TidClock::new(15),
    )
    .await
    .unwrap();
    gate.open();
    let (slow, _) = slow.await.unwrap().unwrap();
    assert_eq!(slow.prev, Some(fast.cid), "rebuilt on the winner's head");
    assert!(
        faulty.calls("load_for_write") >= 1,
        "the loser re-read the head: {:?}",
        faulty.all_calls()
    );
    let (head, commits) = snapshot(&*s).await;
    assert_eq!(head, slow.cid);
    assert_eq!(&commits[1..], &[fast.cid, slow.cid]);
    assert_whole(&*s, 2).await;
}

async fn a_warm_commit_reads_no_blocks_and_makes_one_write(s: Arc<dyn Storage>) {
    new_repo(&*s, 1, None).await;
    let faulty = Faulty::new(s.clone());
    let cache = BlockCache::default();
    let clock = TidClock::new(16);
    commit_writes(&*faulty, &cache.view(), &did(1), &[create(1, "a")], &clock)
        .await
        .unwrap();
    faulty.reset_calls();
    commit_writes(&*faulty, &cache.view(), &did(1), &[create(2, "b")], &clock)
        .await
        .unwrap();
    let calls = faulty.all_calls();
    assert_eq!(calls.get("apply_commit"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("load_for_write_cached"), Some(&1), "{calls:?}");
    assert_eq!(
        calls.get("read_blocks"),
        None,
        "the shared cache had every node: {calls:?}"
    );
    assert_eq!(calls.values().sum::<u64>(), 2, "{calls:?}");
}

/// A repo of `records` posts for `did(1)` signed by `key(1)` at `rev`, spooled and indexed as
/// importRepo would have it.
fn spooled_repo(records: u32, rev: arroba::tid::Tid) -> (Arc<SpooledCar>, VerifiedRepo) {
    use std::io::{Seek, Write as _};
    let posts = (0..records).map(|n| {
        (
            format!("app.bsky.feed.post/i{n}"),
            map([
                ("$type", "app.bsky.feed.post".into()),
                ("text", format!("imported {n}").into()),
            ]),
        )
    });
    let repo = Repo::create_with_records(did(1), &key(1), rev, posts).unwrap();
    let mut file = tempfile::tempfile().unwrap();
    repo.export_car(&mut file).unwrap();
    file.flush().unwrap();
    file.rewind().unwrap();
    let car = Arc::new(SpooledCar::index(file).unwrap());
    let verified = car.verify(&did(1), &key(1).public_key()).unwrap();
    (car, verified)
}

async fn an_import_moves_the_head_last_and_a_crash_before_that_changes_nothing(
    s: Arc<dyn Storage>,
) {
    use arroba::storage::import::{ImportError, import_repo};
    new_repo(&*s, 1, None).await;
    let faulty = Faulty::new(s.clone());
    let blobs = arroba::storage::DiskBlobStore::new(tempfile::tempdir().unwrap().keep());
    let view = BlockCache::default().view();
    let before = snapshot(&*s).await;
    let events_before = last_event(&*s).await;
    let rev = TidClock::new(21).next(micros_of(Utc::now()) + 1_000_000);
    let (car, verified) = spooled_repo(300, rev);
    let commit = verified.commit_cid;

    faulty.fail("replace_head", Point::Before);
    let failed = import_repo(&*faulty, &blobs, &view, &did(1), car.clone(), verified).await;
    assert!(
        matches!(failed, Err(ImportError::Storage(StorageError::Backend(_)))),
        "{failed:?}"
    );
    assert_eq!(snapshot(&*s).await, before, "the head did not move");
    assert_eq!(last_event(&*s).await, events_before, "nothing announced");

    // Asked again, it completes: the head is the imported commit, every block is readable from
    // storage alone, and one #sync announces it (the repo is active).
    let (_, verified) = spooled_repo(300, rev);
    let outcome = import_repo(&*faulty, &blobs, &view, &did(1), car.clone(), verified)
        .await
        .unwrap();
    assert!(outcome.moved);
    assert_eq!(outcome.records, 300);
    let record = s.load_repo(&did(1)).await.unwrap().unwrap();
    assert_eq!((record.head, record.rev), (commit, rev));
    assert_whole(&*s, 300).await;
    let events = s.read_events(events_before, 100).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].body, EventBody::Sync { commit, rev });

    // A third time is a no-op.
    let (_, verified) = spooled_repo(300, rev);
    let again = import_repo(&*s, &blobs, &view, &did(1), car, verified)
        .await
        .unwrap();
    assert!(!again.moved);
    assert_eq!(s.read_events(events_before, 100).await.unwrap().len(), 1);

    // Into an active repo, an older commit is refused; into a deactivated one it is taken,
    // silently (the account announces itself when it is activated).
    let older = TidClock::new(22).next(micros_of(Utc::now()) - 60_000_000);
    let (car, verified) = spooled_repo(5, older);
    let refused = import_repo(&*s, &blobs, &view, &did(1), car, verified).await;
    assert!(
        matches!(refused, Err(ImportError::NotNewer { .. })),
        "{refused:?}"
    );
    s.set_status(&did(1), RepoStatus::Active, RepoStatus::Deactivated, vec![])
        .await
        .unwrap();
    let last = last_event(&*s).await;
    let (car, verified) = spooled_repo(5, older);
    import_repo(&*s, &blobs, &view, &did(1), car, verified)
        .await
        .unwrap();
    assert_eq!(s.load_repo(&did(1)).await.unwrap().unwrap().rev, older);
    assert_whole(&*s, 5).await;
    assert_eq!(last_event(&*s).await, last);
}

/// Checks what a `getRepo` of `did(1)` reads: `ExportWalk` lists the repo's records (those
/// its tree holds, in path order) and `Storage::read_repo_records` returns each one's block,
/// whole or in runs.
async fn assert_exports(s: &dyn Storage, records: usize) {
    use arroba::storage::{ExportItem, ExportWalk};
    let fresh = BlockCache::default().view();
    let (_, mut repo) = load_repo_state(s, &fresh, &did(1)).await.unwrap();
    fetch_tree(s, &fresh, &mut repo).await.unwrap();
    let leaves = repo.mst().leaves().unwrap();
    // Walked in batches of 5 records, through a cache too small to keep the whole tree.
    let mut walk = ExportWalk::new(repo.commit().data);
    let cache = BlockCache::new(8 * 1024);
    let mut order = Vec::new();
    loop {
        let batch = walk.next_batch(s, &cache, 5).await.unwrap();
        if batch.is_empty() {
            break;
        }
        let records = batch
            .iter()
            .filter(|item| matches!(item, ExportItem::Record(..)))
            .count();
        assert!(records <= 5);
        order.extend(batch);
    }
    let nodes: Vec<arroba::cid::Cid> = order
        .iter()
        .filter_map(|item| match item {
            ExportItem::Node(cid, bytes) => {
                assert_eq!(cid_for_cbor(bytes), *cid);
                Some(*cid)
            }
            ExportItem::Record(..) => None,
        })
        .collect();
    assert_eq!(nodes.first(), Some(&repo.commit().data));
    let mut distinct = nodes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), nodes.len(), "each node once");
    // The same blocks in the same order as the tree's own export walk.
    let mut expected = Vec::new();
    repo.mst()
        .walk_export(&mut |block| {
            expected.push(match block {
                arroba::mst::ExportBlock::Node { cid, .. } => (true, cid),
                arroba::mst::ExportBlock::Record { cid, .. } => (false, cid),
            });
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    let walked: Vec<(bool, arroba::cid::Cid)> = order
        .iter()
        .map(|item| match item {
            ExportItem::Node(cid, _) => (true, *cid),
            ExportItem::Record(_, cid) => (false, *cid),
        })
        .collect();
    assert_eq!(walked, expected);
    let listed: Vec<(String, arroba::cid::Cid)> = order
        .iter()
        .filter_map(|item| match item {
            ExportItem::Record(path, cid) => Some((path.clone(), *cid)),
            ExportItem::Node(..) => None,
        })
        .collect();
    assert_eq!(listed.len(), records);
    assert_eq!(listed, leaves);
    let whole = s.read_repo_records(&did(1), &listed).await.unwrap();
    assert_eq!(whole.len(), records);
    for (i, (path, cid)) in listed.iter().enumerate() {
        assert_eq!(cid_for_cbor(whole.get(i).unwrap()), *cid, "{path}");
    }
    for run in listed.chunks(7) {
        let packed = s.read_repo_records(&did(1), run).await.unwrap();
        for (i, (path, cid)) in run.iter().enumerate() {
            assert_eq!(cid_for_cbor(packed.get(i).unwrap()), *cid, "{path}");
        }
    }
}

async fn an_export_reads_every_current_record_after_updates_deletes_and_an_import(
    s: Arc<dyn Storage>,
) {
    use arroba::storage::import::import_repo;
    let post = |n: u32, text: &str| {
        (
            Nsid::parse("app.bsky.feed.post").unwrap(),
            RecordKey::parse(&format!("r{n}")).unwrap(),
            map([
                ("$type", "app.bsky.feed.post".into()),
                ("text", text.into()),
            ]),
        )
    };
    new_repo(&*s, 1, None).await;
    let view = BlockCache::default().view();
    let clock = TidClock::new(31);
    let creates: Vec<Write> = (0..60).map(|n| create(n, &format!("post {n}"))).collect();
    commit_writes(&*s, &view, &did(1), &creates, &clock)
        .await
        .unwrap();
    assert_exports(&*s, 60).await;
    // r1 takes r2's content (a block already stored), r3 new content; r4 goes.
    let (c1, k1, v1) = post(1, "post 2");
    let (c3, k3, v3) = post(3, "changed");
    let (c4, k4, _) = post(4, "");
    let edits = [
        Write::update(c1, k1, v1),
        Write::update(c3, k3, v3),
        Write::delete(c4, k4),
    ];
    commit_writes(&*s, &view, &did(1), &edits, &clock)
        .await
        .unwrap();
    assert_exports(&*s, 59).await;

    // An imported tree replaces the old one whole.
    let blobs = arroba::storage::DiskBlobStore::new(tempfile::tempdir().unwrap().keep());
    let rev = TidClock::new(32).next(micros_of(Utc::now()) + 1_000_000);
    let (car, verified) = spooled_repo(300, rev);
    import_repo(&*s, &blobs, &view, &did(1), car, verified)
        .await
        .unwrap();
    assert_exports(&*s, 300).await;

    // A record the store does not have is named.
    let unknown = cid_for_cbor(b"\xa1axa0");
    let missing = s
        .read_repo_records(&did(1), &[("app.bsky.feed.post/zz".into(), unknown)])
        .await;
    assert!(
        matches!(missing, Err(StorageError::MissingBlock(c)) if c == unknown),
        "{missing:?}"
    );
}

async fn replacing_the_head_is_conditional_on_the_old_one(s: Arc<dyn Storage>) {
    let rec = new_repo(&*s, 1, None).await;
    let other = cid_for_cbor(b"\xa0");
    let rev = TidClock::new(23).next(micros_of(Utc::now()));
    let stale = s
        .replace_head(
            &did(1),
            other,
            other,
            rev,
            vec![EventBody::Sync { commit: other, rev }],
        )
        .await;
    assert!(matches!(stale, Err(StorageError::Conflict(_))), "{stale:?}");
    assert_eq!(s.load_repo(&did(1)).await.unwrap().unwrap().head, rec.head);
    let missing = s.replace_head(&did(2), other, other, rev, vec![]).await;
    assert!(
        matches!(missing, Err(StorageError::RepoNotFound(_))),
        "{missing:?}"
    );
}

/// Every block in the store, by scanning in pages of `page`.
async fn all_blocks(s: &dyn Storage, page: usize) -> BTreeSet<arroba::cid::Cid> {
    let mut out = BTreeSet::new();
    let mut token = None;
    loop {
        let (blocks, next) = s.scan_blocks(token, page).await.unwrap();
        out.extend(blocks.iter().map(|b| b.cid));
        match next {
            Some(t) => token = Some(t),
            None => return out,
        }
    }
}

/// The head commit, nodes and records of `did`'s repo.
async fn tree_blocks(s: &dyn Storage, did: &Did) -> BTreeSet<arroba::cid::Cid> {
    let view = BlockCache::default().view();
    let (record, mut repo) = load_repo_state(s, &view, did).await.unwrap();
    fetch_tree(s, &view, &mut repo).await.unwrap();
    let mut out = BTreeSet::from([record.head]);
    repo.mst()
        .walk_nodes(&mut |node| {
            out.insert(node.cid);
            out.extend(node.leaves.iter().map(|(_, c)| *c));
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    out
}

fn loose_blocks(tag: &str, n: i64) -> BlockMap {
    let mut blocks = BlockMap::new();
    for i in 0..n {
        let bytes = arroba::cbor::encode(&map([
            ("orphan", Value::String(tag.into())),
            ("i", Value::Integer(i)),
        ]));
        blocks.insert(cid_for_cbor(&bytes), bytes);
    }
    blocks
}

fn now_ms() -> u64 {
    u64::try_from(Utc::now().timestamp_millis()).unwrap()
}

async fn blocks_are_scanned_in_pages_with_their_write_time(s: Arc<dyn Storage>) {
    let before = now_ms();
    let blocks = loose_blocks("scan", 25);
    s.write_blocks(&blocks).await.unwrap();
    let after = now_ms();
    let mut seen = BTreeSet::new();
    let mut token = None;
    loop {
        let (page, next) = s.scan_blocks(token, 7).await.unwrap();
        for b in &page {
            assert!(
                (before..=after).contains(&b.written_ms),
                "{} written at {}, not between {before} and {after}",
                b.cid,
                b.written_ms
            );
            assert!(seen.insert(b.cid), "{} listed twice", b.cid);
        }
        match next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let written: BTreeSet<_> = blocks.cids().copied().collect();
    assert_eq!(seen, written);
}

async fn a_block_written_again_after_the_cutoff_is_not_deleted(s: Arc<dyn Storage>) {
    // A record block of a megabyte: several parts where the backend splits blocks.
    let big = arroba::cbor::encode(&map([("text", Value::String("x".repeat(1_000_000)))]));
    let mut blocks = loose_blocks("race", 3);
    blocks.insert(cid_for_cbor(&big), big);
    let cids: Vec<_> = blocks.cids().copied().collect();
    s.write_blocks(&blocks).await.unwrap();
    // The collector's cutoff was taken before this write: the blocks stay, whole.
    let cutoff = now_ms() - 60_000;
    assert_eq!(s.delete_blocks(&cids, cutoff).await.unwrap(), 0);
    assert_eq!(s.read_blocks(&cids).await.unwrap(), blocks);
    // Written before the cutoff: deleted, every part.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(s.delete_blocks(&cids, now_ms()).await.unwrap(), cids.len());
    assert!(s.read_blocks(&cids).await.unwrap().is_empty());
    assert!(
        all_blocks(&*s, 100)
            .await
            .is_disjoint(&cids.iter().copied().collect())
    );
    // Deleting again deletes nothing; writing again restores them.
    assert_eq!(s.delete_blocks(&cids, now_ms()).await.unwrap(), 0);
    s.write_blocks(&blocks).await.unwrap();
    assert_eq!(s.read_blocks(&cids).await.unwrap(), blocks);
}

async fn forgotten_events_are_passed_over_and_only_the_owner_s_go(s: Arc<dyn Storage>) {
    new_repo(&*s, 1, None).await;
    new_repo(&*s, 2, None).await;
    let cache = BlockCache::default().view();
    let clock = TidClock::new(3);
    commit_writes(&*s, &cache, &did(1), &[create(1, "one")], &clock)
        .await
        .unwrap();
    let (_, last) = commit_writes(&*s, &cache, &did(2), &[create(1, "two")], &clock)
        .await
        .unwrap();
    let ones: Vec<_> = s
        .read_repo_events(&did(1), None, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    let twos: Vec<_> = s
        .read_repo_events(&did(2), None, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(ones.len(), 5);
    // Numbers of another DID (and nonexistent ones) are left alone.
    let mut asked = ones.clone();
    asked.extend(&twos);
    asked.push(last + 1000);
    s.forget_events(&did(1), &asked).await.unwrap();
    s.forget_events(&did(1), &asked).await.unwrap();
    assert!(
        s.read_repo_events(&did(1), None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let global: Vec<_> = s
        .read_events(None, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(global, twos, "readers pass over the forgotten numbers");
    let mut scanned = BTreeSet::new();
    let mut token = None;
    loop {
        let (page, next) = s.scan_events(token, 3).await.unwrap();
        scanned.extend(page.iter().map(|e| e.seq));
        match next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(scanned, twos.iter().copied().collect());
    // The log keeps counting after the forgotten numbers.
    let (_, next) = commit_writes(&*s, &cache, &did(2), &[create(2, "more")], &clock)
        .await
        .unwrap();
    assert!(next > last);
}

async fn the_collector_deletes_only_blocks_no_repo_or_event_names(s: Arc<dyn Storage>) {
    new_repo(&*s, 1, None).await;
    new_repo(&*s, 2, None).await;
    let cache = BlockCache::default().view();
    let clock = TidClock::new(4);
    for (n, text) in [(1, "shared"), (2, "only one's")] {
        commit_writes(&*s, &cache, &did(1), &[create(n, text)], &clock)
            .await
            .unwrap();
    }
    for (n, text) in [(1, "shared"), (3, "only two's"), (4, "also two's")] {
        commit_writes(&*s, &cache, &did(2), &[create(n, text)], &clock)
            .await
            .unwrap();
    }
    // A commit that failed after writing its blocks left them behind.
    let orphans = loose_blocks("failed commit", 4);
    s.write_blocks(&orphans).await.unwrap();
    let ones = tree_blocks(&*s, &did(1)).await;
    let twos = tree_blocks(&*s, &did(2)).await;
    let everything = all_blocks(&*s, 1000).await;

    // Inside the safety window nothing goes.
    let big = BlockCache::new(1 << 20);
    let window = std::time::Duration::from_secs(3600);
    let report = arroba::storage::collect_blocks(&*s, &big, window, false)
        .await
        .unwrap();
    assert_eq!(report.deleted, 0);
    assert_eq!(report.recent, orphans.len());
    assert_eq!(report.repos, 2);
    assert_eq!(all_blocks(&*s, 1000).await, everything);

    // A dry run counts without deleting.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let zero = std::time::Duration::ZERO;
    let dry = arroba::storage::collect_blocks(&*s, &big, zero, true)
        .await
        .unwrap();
    assert_eq!(dry.deleted, orphans.len());
    assert_eq!(all_blocks(&*s, 1000).await, everything);

    // Past it, the orphans go and both repos stay whole (the events name the older trees).
    let report = arroba::storage::collect_blocks(&*s, &big, zero, false)
        .await
        .unwrap();
    assert_eq!(report.deleted, orphans.len());
    let left = all_blocks(&*s, 1000).await;
    assert_eq!(left.len(), everything.len() - orphans.len());
    assert!(left.is_superset(&ones) && left.is_superset(&twos));

    // Repo 2 is deleted and its history forgotten: its blocks go, the one it shared stays.
    s.set_status(
        &did(2),
        RepoStatus::Active,
        RepoStatus::Deleted,
        vec![EventBody::account(RepoStatus::Deleted)],
    )
    .await
    .unwrap();
    let history: Vec<_> = s
        .read_repo_events(&did(2), None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| !matches!(e.body, EventBody::Account { .. }))
        .map(|e| e.seq)
        .collect();
    s.forget_events(&did(2), &history).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let report = arroba::storage::collect_blocks(&*s, &big, zero, false)
        .await
        .unwrap();
    assert_eq!(report.repos, 1);
    assert!(report.deleted > 0);
    let left = all_blocks(&*s, 1000).await;
    assert!(left.is_superset(&ones), "repo 1 is whole");
    let only_twos: BTreeSet<_> = twos.difference(&ones).copied().collect();
    assert!(!only_twos.is_empty());
    assert!(left.is_disjoint(&only_twos), "repo 2's own blocks are gone");
    // Repo 1 still reads and commits from storage alone.
    let fresh = BlockCache::default().view();
    commit_writes(&*s, &fresh, &did(1), &[create(9, "after")], &clock)
        .await
        .unwrap();
    assert!(tree_blocks(&*s, &did(1)).await.len() > ones.len());
}

macro_rules! storage_conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            storage_conformance!(@tests $make;
                creates_and_loads_repos_by_did_and_handle,
                duplicate_dids_and_handles_are_refused_and_write_nothing,
                repo_creation_sequences_identity_account_commit_sync,
                lists_repos_in_did_order_with_an_exclusive_cursor,
                commits_store_blocks_move_the_head_and_append_events,
                a_stale_head_is_a_conflict_and_changes_nothing,
                inactive_repos_refuse_commits_and_status_changes_emit_account_events,
                handles_move_and_are_released,
                blocks_are_written_once_and_read_in_batches,
                events_are_read_by_seq_globally_and_per_repo,
                writes_since_a_rev_are_the_later_commits_ops,
                a_rejected_commit_leaves_storage_unchanged,
                concurrent_commits_to_one_repo_never_fork_or_lose_writes,
                remote_blobs_are_upserted_by_url_and_found_by_cid,
                the_key_value_store_supports_claims_compare_and_swap_and_single_use_takes,
                counters_add_up_to_their_limit_and_no_further_under_concurrency,
                a_crash_before_a_commit_reaches_storage_changes_nothing,
                a_crash_after_a_commit_reached_storage_leaves_it_whole_and_durable,
                repo_creation_is_all_or_nothing_at_either_crash_point,
                a_writer_paused_before_its_commit_loses_the_race_and_rebuilds_without_a_fork,
                a_warm_commit_reads_no_blocks_and_makes_one_write,
                an_import_moves_the_head_last_and_a_crash_before_that_changes_nothing,
                replacing_the_head_is_conditional_on_the_old_one,
                an_export_reads_every_current_record_after_updates_deletes_and_an_import,
                blocks_are_scanned_in_pages_with_their_write_time,
                a_block_written_again_after_the_cutoff_is_not_deleted,
                forgotten_events_are_passed_over_and_only_the_owner_s_go,
                the_collector_deletes_only_blocks_no_repo_or_event_names,
            );
        }
    };
    (@tests $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let storage: Arc<dyn Storage> = $make.await;
                super::$case(storage).await;
            }
        )*
    };
}

storage_conformance!(memory, async {
    Arc::new(MemoryStorage::new()) as Arc<dyn Storage>
});
storage_conformance!(dynamo, async {
    crate::common::dynamo_storage().await as Arc<dyn Storage>
});
storage_conformance!(disk, async {
    // In cargo's per-target scratch directory, so `cargo clean` removes it.
    let dir = tempfile::Builder::new()
        .prefix("disk-storage")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep();
    Arc::new(
        arroba::storage::DiskStorage::open(&dir, Some(arroba::storage::KeySealer::ephemeral()))
            .unwrap(),
    ) as Arc<dyn Storage>
});
