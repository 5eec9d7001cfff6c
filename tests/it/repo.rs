//! Repo commits: genesis, writes, limits, signatures, and Sync 1.1 inversion of every commit.

use std::collections::BTreeMap;
use std::sync::Arc;

use arroba::block::BlockMap;
use arroba::cbor::{Value, map};
use arroba::crypto::{Algorithm, Keypair};
use arroba::repo::verify::{verify_commit_slice, verify_repo_car};
use arroba::repo::{Repo, RepoError, Write, WriteAction};
use arroba::storage::{BlockCache, BlockView};
use arroba::syntax::{Did, Nsid, RecordKey};
use arroba::tid::{Tid, TidClock};
use proptest::prelude::*;

fn did() -> Did {
    Did::parse("did:plc:abcdefghijklmnopqrstuvwx").unwrap()
}

fn key() -> Keypair {
    Keypair::from_seed(Algorithm::K256, b"repo tests")
}

fn post(text: &str) -> Value {
    map([
        ("$type", "app.bsky.feed.post".into()),
        ("text", text.into()),
    ])
}

fn coll() -> Nsid {
    Nsid::parse("app.bsky.feed.post").unwrap()
}

fn rk(s: &str) -> RecordKey {
    RecordKey::parse(s).unwrap()
}

/// A store for tests: every block any commit produced.
struct Fixture {
    cache: BlockView,
    clock: TidClock,
    repo: Repo,
}

impl Fixture {
    fn new() -> Fixture {
        let cache = BlockCache::default().view();
        let clock = TidClock::new(0);
        let (repo, data) = Repo::create(
            did(),
            &key(),
            clock.next(1_000_000),
            Arc::new(cache.clone()),
        );
        cache.hold(data.new_blocks.clone());
        Fixture { cache, clock, repo }
    }

    fn commit(&mut self, writes: &[Write]) -> Result<arroba::repo::CommitData, RepoError> {
        let rev = self.clock.next(2_000_000);
        let (repo, data) = self.repo.apply_writes(writes, &key(), rev)?;
        self.cache.hold(data.new_blocks.clone());
        self.repo = repo;
        Ok(data)
    }
}

#[test]
fn genesis_commit_is_signed_empty_and_has_no_prev() {
    let f = Fixture::new();
    let commit = f.repo.commit();
    assert_eq!(commit.prev, None);
    assert_eq!(
        commit.data.to_string(),
        "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
    );
    commit.verify(&key().public_key()).unwrap();
    let other = Keypair::from_seed(Algorithm::K256, b"other").public_key();
    assert!(matches!(
        commit.verify(&other),
        Err(RepoError::Signature(_))
    ));
}

#[test]
fn commits_carry_ops_since_prev_data_and_verify_like_a_relay() {
    let mut f = Fixture::new();
    let first = f.repo.clone();
    let data = f
        .commit(&[Write::create(coll(), rk("a"), post("hi"))])
        .unwrap();
    assert_eq!(data.since, Some(first.rev()));
    assert_eq!(data.prev_data, Some(first.commit().data));
    assert_eq!(data.prev, Some(first.head()));
    assert_eq!(data.ops.len(), 1);
    assert_eq!(data.ops[0].action, WriteAction::Create);
    assert_eq!(data.ops[0].prev, None);
    verify_commit_slice(
        &data.car_slice(),
        &data.ops,
        data.prev_data,
        &key().public_key(),
    )
    .unwrap();

    let upd = f
        .commit(&[Write::update(coll(), rk("a"), post("edited"))])
        .unwrap();
    assert_eq!(upd.ops[0].prev, data.ops[0].cid);
    let del = f.commit(&[Write::delete(coll(), rk("a"))]).unwrap();
    assert_eq!(del.ops[0].cid, None);
    assert_eq!(del.ops[0].prev, upd.ops[0].cid);
    verify_commit_slice(
        &del.car_slice(),
        &del.ops,
        del.prev_data,
        &key().public_key(),
    )
    .unwrap();
}

#[test]
fn wrong_prev_data_is_caught_by_inversion() {
    let mut f = Fixture::new();
    f.commit(&[Write::create(coll(), rk("a"), post("hi"))])
        .unwrap();
    let data = f
        .commit(&[Write::create(coll(), rk("b"), post("yo"))])
        .unwrap();
    let wrong = data.cid;
    assert!(matches!(
        verify_commit_slice(
            &data.car_slice(),
            &data.ops,
            Some(wrong),
            &key().public_key()
        ),
        Err(RepoError::InversionMismatch { .. })
    ));
}

#[test]
fn bad_writes_are_rejected_and_change_nothing() {
    let mut f = Fixture::new();
    f.commit(&[Write::create(coll(), rk("a"), post("hi"))])
        .unwrap();
    let head = f.repo.head();
    let too_many: Vec<Write> = (0..201)
        .map(|i| Write::create(coll(), rk(&format!("r{i}")), post("x")))
        .collect();
    assert_eq!(
        f.commit(&too_many).unwrap_err(),
        RepoError::TooManyWrites(201)
    );
    assert!(matches!(
        f.commit(&[Write::create(coll(), rk("a"), post("again"))]),
        Err(RepoError::RecordExists(_))
    ));
    assert!(matches!(
        f.commit(&[Write::update(coll(), rk("zz"), post("x"))]),
        Err(RepoError::RecordNotFound(_))
    ));
    assert!(matches!(
        f.commit(&[Write::delete(coll(), rk("zz"))]),
        Err(RepoError::RecordNotFound(_))
    ));
    let big = map([
        ("$type", "x.y.z".into()),
        ("blob", Value::Bytes(vec![0; 1_000_001])),
    ]);
    assert!(matches!(
        f.commit(&[Write::create(coll(), rk("big"), big)]),
        Err(RepoError::RecordTooLarge { .. })
    ));
    assert!(matches!(
        f.commit(&[Write::create(coll(), rk("n"), Value::Integer(1))]),
        Err(RepoError::RecordNotAnObject(_))
    ));
    let dup = [
        Write::create(coll(), rk("d"), post("1")),
        Write::delete(coll(), rk("d")),
    ];
    assert!(matches!(f.commit(&dup), Err(RepoError::DuplicatePath(_))));
    // A failure half way through a batch leaves no trace either.
    let half = [
        Write::create(coll(), rk("new"), post("1")),
        Write::delete(coll(), rk("missing")),
    ];
    assert!(f.commit(&half).is_err());
    assert_eq!(f.repo.head(), head);
    assert_eq!(f.repo.record_cid(&coll(), &rk("new")).unwrap(), None);
    let old_rev = f.repo.rev();
    assert!(matches!(
        f.repo.apply_writes(&[], &key(), old_rev),
        Err(RepoError::RevNotIncreasing { .. })
    ));
}

#[test]
fn a_no_op_update_produces_no_op_but_still_commits() {
    let mut f = Fixture::new();
    f.commit(&[Write::create(coll(), rk("a"), post("same"))])
        .unwrap();
    let data = f
        .commit(&[Write::update(coll(), rk("a"), post("same"))])
        .unwrap();
    assert!(data.ops.is_empty());
    assert_eq!(data.commit.data, data.prev_data.unwrap());
}

#[test]
fn a_full_export_verifies_and_reads_back_every_record() {
    let mut f = Fixture::new();
    let writes: Vec<Write> = (0..50)
        .map(|i| Write::create(coll(), rk(&format!("r{i:03}")), post(&i.to_string())))
        .collect();
    f.commit(&writes).unwrap();
    let mut blocks = BlockMap::new();
    f.repo
        .mst()
        .walk_nodes(&mut |n| {
            blocks.insert(n.cid, n.bytes);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    let head = f.repo.head();
    let reloaded = Repo::load(head, Arc::new(f.cache.clone())).unwrap();
    for (_, cid) in reloaded.mst().leaves().unwrap() {
        blocks.insert(
            cid,
            arroba::cbor::encode(&reloaded.read_record(&cid).unwrap()),
        );
    }
    blocks.insert(head, f.repo.commit().encode());
    let car = arroba::car::car_bytes(&[head], blocks.iter());
    let report = verify_repo_car(&car, Some(&key().public_key())).unwrap();
    assert_eq!(report.records, 50);
    let (_, value) = reloaded.get_record(&coll(), &rk("r007")).unwrap().unwrap();
    assert_eq!(value, post("7"));
}

#[derive(Debug, Clone)]
enum Step {
    Create(u16),
    Update(u16),
    Delete(u16),
}

fn arb_commits() -> impl Strategy<Value = Vec<Vec<Step>>> {
    let step = prop_oneof![
        (0u16..400).prop_map(Step::Create),
        (0u16..400).prop_map(Step::Update),
        (0u16..400).prop_map(Step::Delete),
    ];
    proptest::collection::vec(proptest::collection::vec(step, 1..25), 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Every generated commit's firehose slice alone inverts to its prevData, and the repo
    /// matches a BTreeMap model throughout.
    #[test]
    fn inverting_every_commit_gives_prev_data(commits in arb_commits()) {
        let mut f = Fixture::new();
        let mut model: BTreeMap<String, Value> = BTreeMap::new();
        // Seed some records so deletes and updates have targets.
        let seed: Vec<Write> = (0..120u16).step_by(3).map(|i| Write::create(coll(), rk(&format!("k{i}")), post("seed"))).collect();
        f.commit(&seed).unwrap();
        for w in &seed { model.insert(w.path(), w.record.clone().unwrap()); }
        for (n, steps) in commits.iter().enumerate() {
            let mut writes = Vec::new();
            let mut touched = std::collections::HashSet::new();
            for step in steps {
                let (i, action) = match step { Step::Create(i) => (i, 0), Step::Update(i) => (i, 1), Step::Delete(i) => (i, 2) };
                let key = rk(&format!("k{i}"));
                let path = format!("{}/{}", coll(), key);
                if !touched.insert(path.clone()) { continue; }
                let exists = model.contains_key(&path);
                let record = post(&format!("{n}-{i}"));
                match (action, exists) {
                    (0, false) | (1, false) => { writes.push(Write::create(coll(), key, record.clone())); model.insert(path, record); }
                    (1, true) | (0, true) => { writes.push(Write::update(coll(), key, record.clone())); model.insert(path, record); }
                    (_, true) => { writes.push(Write::delete(coll(), key)); model.remove(&path); }
                    (_, false) => {}
                }
            }
            let data = f.commit(&writes).unwrap();
            verify_commit_slice(&data.car_slice(), &data.ops, data.prev_data, &key().public_key()).unwrap();
        }
        let leaves = f.repo.mst().leaves().unwrap();
        prop_assert_eq!(leaves.len(), model.len());
        for (path, _) in leaves {
            let (c, r) = path.split_once('/').unwrap();
            let (_, value) = f.repo.get_record(&Nsid::parse(c).unwrap(), &rk(r)).unwrap().unwrap();
            prop_assert_eq!(Some(&value), model.get(&path));
        }
    }
}

#[test]
fn revs_are_wall_clock_tids_after_the_previous_one() {
    let mut f = Fixture::new();
    let a = f.commit(&[]).unwrap().rev();
    let b = f.commit(&[]).unwrap().rev();
    assert!(b > a);
    assert!(Tid::parse(&b.to_string()).is_ok());
}
