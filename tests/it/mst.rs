//! MST behaviour: arroba's golden roots, the interop height and prefix vectors, and property
//! tests against a `BTreeMap` model.

use std::collections::BTreeMap;
use std::sync::Arc;

use arroba::block::{BlockMap, BlockSource};
use arroba::cid::{Cid, cid_for_cbor, parse_cid};
use arroba::mst::{Mst, MstError, common_prefix_len, diff, height_for_key};
use proptest::prelude::*;

fn cid1() -> Cid {
    parse_cid("bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454").unwrap()
}

fn tree_of(keys: &[&str]) -> Mst {
    let mut mst = Mst::empty();
    for k in keys {
        mst.insert(&format!("com.example.record/{k}"), cid1())
            .unwrap();
    }
    mst
}

/// arroba's (and atproto `mst.test.ts`'s) five-key tree.
fn five_key_tree() -> Mst {
    tree_of(&[
        "3jqfcqzm3fp2j",
        "3jqfcqzm3fr2j",
        "3jqfcqzm3fs2j",
        "3jqfcqzm3ft2j",
        "3jqfcqzm4fc2j",
    ])
}

#[test]
fn empty_tree_root_matches_arroba() {
    assert_eq!(
        Mst::empty().root_cid().to_string(),
        "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
    );
}

#[test]
fn one_key_and_layer_two_roots_match_arroba() {
    assert_eq!(
        tree_of(&["3jqfcqzm3fo2j"]).root_cid().to_string(),
        "bafyreibj4lsc3aqnrvphp5xmrnfoorvru4wynt6lwidqbm2623a6tatzdu"
    );
    assert_eq!(
        tree_of(&["3jqfcqzm3fx2j"]).root_cid().to_string(),
        "bafyreih7wfei65pxzhauoibu3ls7jgmkju4bspy4t2ha2qdjnzqvoy33ai"
    );
}

#[test]
fn five_key_tree_root_matches_arroba() {
    let mst = five_key_tree();
    assert_eq!(
        mst.root_cid().to_string(),
        "bafyreicmahysq4n6wfuxo522m6dpiy7z7qzym3dzs756t5n7nfdgccwq7m"
    );
}

#[test]
fn cids_for_path_lists_the_nodes_down_to_the_key_then_the_record() {
    // In the five-key tree, 3jqfcqzm3fs2j is the only layer-1 key: the root holds it, with one
    // layer-0 child on each side.
    let mst = five_key_tree();
    let root = mst.root_cid();
    let top = "com.example.record/3jqfcqzm3fs2j";
    assert_eq!(height_for_key(top.as_bytes()), 1);
    assert_eq!(mst.cids_for_path(top).unwrap(), vec![root, cid1()]);
    let low = mst
        .cids_for_path("com.example.record/3jqfcqzm3fp2j")
        .unwrap();
    assert_eq!(low.len(), 3);
    assert_eq!((low[0], low[2]), (root, cid1()));
    // An absent key's path ends at the bottom node without a record CID.
    let absent = mst
        .cids_for_path("com.example.record/3jqfcqzm3fq2j")
        .unwrap();
    assert_eq!(absent, low[..2].to_vec());
    // The covering set of the layer-1 key adds both neighbours.
    assert_eq!(mst.covering_cids(top).unwrap().len(), 3);
}

#[test]
fn unstored_blocks_stop_at_subtrees_already_stored() {
    let mut mst = five_key_tree();
    let stored = blocks_of(&mst);
    assert_eq!(mst.unstored_blocks(&BlockMap::new()).unwrap(), stored);
    assert!(mst.unstored_blocks(&stored).unwrap().is_empty());
    mst.insert("com.example.record/3jqfcqzm4ff2j", cid1())
        .unwrap();
    let new = mst.unstored_blocks(&stored).unwrap();
    // The root and the right-hand leaf node changed; the left-hand leaf node did not.
    assert_eq!(new.len(), 2);
    assert!(new.contains(&mst.root_cid()));
}

#[test]
fn delete_trims_the_top_layer_as_in_arroba() {
    let mut mst = tree_of(&[
        "3jqfcqzm3fn2j",
        "3jqfcqzm3fo2j",
        "3jqfcqzm3fp2j",
        "3jqfcqzm3fs2j",
        "3jqfcqzm3ft2j",
        "3jqfcqzm3fu2j",
    ]);
    assert_eq!(
        mst.root_cid().to_string(),
        "bafyreifnqrwbk6ffmyaz5qtujqrzf5qmxf7cbxvgzktl4e3gabuxbtatv4"
    );
    mst.delete("com.example.record/3jqfcqzm3fs2j").unwrap();
    assert_eq!(
        mst.root_cid().to_string(),
        "bafyreie4kjuxbwkhzg2i5dljaswcroeih4dgiqq6pazcmunwt2byd725vi"
    );
}

#[test]
fn interop_key_heights() {
    let cases = crate::common::interop_json("mst/key_heights.json");
    for case in cases.as_array().unwrap() {
        let key = case["key"].as_str().unwrap();
        assert_eq!(
            height_for_key(key.as_bytes()) as u64,
            case["height"].as_u64().unwrap(),
            "{key}"
        );
    }
}

#[test]
fn interop_common_prefix_lengths() {
    let cases = crate::common::interop_json("mst/common_prefix.json");
    for case in cases.as_array().unwrap() {
        let (l, r) = (
            case["left"].as_str().unwrap(),
            case["right"].as_str().unwrap(),
        );
        let expected = case["len"].as_u64().unwrap() as usize;
        assert_eq!(
            common_prefix_len(l.as_bytes(), r.as_bytes()),
            expected,
            "{l:?} {r:?}"
        );
    }
}

#[test]
fn duplicate_insert_and_missing_update_or_delete_are_errors_that_change_nothing() {
    let mut mst = tree_of(&["3jqfcqzm3fp2j", "3jqfcqzm3fr2j"]);
    let root = mst.root_cid();
    let key = "com.example.record/3jqfcqzm3fp2j";
    assert_eq!(
        mst.insert(key, cid1()),
        Err(MstError::AlreadyExists(key.into()))
    );
    assert!(matches!(
        mst.update("com.example.record/nope", cid1()),
        Err(MstError::NotFound(_))
    ));
    assert!(matches!(
        mst.delete("com.example.record/nope"),
        Err(MstError::NotFound(_))
    ));
    assert!(matches!(
        mst.insert("bad key", cid1()),
        Err(MstError::InvalidKey(_))
    ));
    assert_eq!(mst.root_cid(), root);
}

/// Every node of `mst`, as a block map.
fn blocks_of(mst: &Mst) -> BlockMap {
    let mut blocks = BlockMap::new();
    mst.walk_nodes(&mut |n| {
        blocks.insert(n.cid, n.bytes);
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    blocks
}

#[test]
fn a_tree_loaded_lazily_from_blocks_reads_and_writes_like_the_original() {
    let keys: Vec<String> = (0..500)
        .map(|i| format!("com.example.record/k{i:04}"))
        .collect();
    let mut mst = Mst::empty();
    for k in &keys {
        mst.insert(k, cid1()).unwrap();
    }
    let blocks = blocks_of(&mst);
    let loaded = Mst::load(mst.root_cid(), Arc::new(blocks));
    assert_eq!(loaded.leaves().unwrap(), mst.leaves().unwrap());
    assert_eq!(loaded.verify_structure().unwrap(), 500);
    let mut a = mst.clone();
    let mut b = loaded.clone();
    a.delete(&keys[7]).unwrap();
    b.delete(&keys[7]).unwrap();
    assert_eq!(a.root_cid(), b.root_cid());
}

#[test]
fn a_missing_block_is_reported_and_leaves_the_tree_unchanged() {
    let mut mst = Mst::empty();
    for i in 0..200 {
        mst.insert(&format!("com.example.record/k{i:04}"), cid1())
            .unwrap();
    }
    let root = mst.root_cid();
    let mut blocks = blocks_of(&mst);
    let victim = *blocks.cids().find(|c| **c != root).unwrap();
    blocks.remove(&victim);
    let mut loaded = Mst::load(root, Arc::new(blocks));
    let mut saw_missing = false;
    for i in 0..200 {
        let key = format!("com.example.record/k{i:04}");
        match loaded.delete(&key) {
            Err(MstError::MissingBlock(c)) => {
                assert_eq!(c, victim);
                assert_eq!(loaded.root_cid(), root);
                saw_missing = true;
                break;
            }
            Ok(()) => {
                loaded.insert(&key, cid1()).unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(saw_missing);
}

fn record_cid(n: u32) -> Cid {
    cid_for_cbor(&n.to_be_bytes())
}

fn arb_keys() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::btree_set("[a-c]{1,2}\\.[a-z]{1,3}/[a-z0-9]{1,6}", 0..120)
        .prop_map(|s| s.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn insertion_order_does_not_change_the_root(keys in arb_keys(), seed in any::<u64>()) {
        let mut a = Mst::empty();
        for (i, k) in keys.iter().enumerate() {
            a.insert(k, record_cid(i as u32)).unwrap();
        }
        let mut shuffled: Vec<(usize, &String)> = keys.iter().enumerate().collect();
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut b = Mst::empty();
        for (i, k) in shuffled {
            b.insert(k, record_cid(i as u32)).unwrap();
        }
        prop_assert_eq!(a.root_cid(), b.root_cid());
        let model: BTreeMap<String, Cid> =
            keys.iter().enumerate().map(|(i, k)| (k.clone(), record_cid(i as u32))).collect();
        prop_assert_eq!(a.leaves().unwrap(), model.into_iter().collect::<Vec<_>>());
        prop_assert_eq!(a.verify_structure().unwrap(), keys.len());
    }

    #[test]
    fn add_then_delete_returns_the_original_root(keys in arb_keys(), extra in arb_keys()) {
        let mut mst = Mst::empty();
        for (i, k) in keys.iter().enumerate() {
            mst.insert(k, record_cid(i as u32)).unwrap();
        }
        let root = mst.root_cid();
        let added: Vec<&String> = extra.iter().filter(|k| !keys.contains(k)).collect();
        for k in &added {
            mst.insert(k, record_cid(9999)).unwrap();
        }
        for k in &added {
            mst.delete(k).unwrap();
        }
        prop_assert_eq!(mst.root_cid(), root);
    }

    #[test]
    fn diff_lists_exactly_the_changed_records_and_new_nodes(
        keys in arb_keys(), extra in arb_keys(), n_delete in 0usize..40, n_update in 0usize..40,
    ) {
        let mut old = Mst::empty();
        for (i, k) in keys.iter().enumerate() {
            old.insert(k, record_cid(i as u32)).unwrap();
        }
        let old_blocks = blocks_of(&old);
        let old = Mst::load(old.root_cid(), Arc::new(old_blocks.clone()));
        let mut new = old.clone();
        let mut model: BTreeMap<String, Cid> = old.leaves().unwrap().into_iter().collect();
        for k in keys.iter().take(n_delete) {
            new.delete(k).unwrap();
            model.remove(k);
        }
        for k in keys.iter().skip(n_delete).take(n_update) {
            new.update(k, record_cid(7777)).unwrap();
            model.insert(k.clone(), record_cid(7777));
        }
        for k in extra.iter().filter(|k| !keys.contains(k)) {
            new.insert(k, record_cid(8888)).unwrap();
            model.insert(k.clone(), record_cid(8888));
        }
        prop_assert_eq!(new.leaves().unwrap(), model.clone().into_iter().collect::<Vec<_>>());
        let d = diff(&old, &new).unwrap();
        // Applying the record changes to the old leaves gives the new leaves.
        let mut applied: BTreeMap<String, Cid> = old.leaves().unwrap().into_iter().collect();
        for change in &d.records {
            prop_assert_eq!(applied.get(&change.key).copied(), change.prev);
            match change.cid {
                Some(c) => applied.insert(change.key.clone(), c),
                None => applied.remove(&change.key),
            };
        }
        prop_assert_eq!(&applied, &model);
        // Old blocks plus the new nodes are enough to load the whole new tree.
        let mut all = old_blocks.clone();
        all.extend(d.new_nodes.clone());
        let reloaded = Mst::load(new.root_cid(), Arc::new(all));
        prop_assert_eq!(reloaded.leaves().unwrap(), model.into_iter().collect::<Vec<_>>());
        for cid in d.new_nodes.cids() {
            prop_assert!(!old_blocks.contains(cid));
        }
        for cid in &d.removed_nodes {
            prop_assert!(old_blocks.contains(cid) && !d.new_nodes.contains(cid));
        }
    }

    #[test]
    fn list_matches_a_btreemap_range(keys in arb_keys(), a in "[a-c]{1,2}", b in "[a-c]{1,2}", limit in 1usize..50, reverse in any::<bool>()) {
        let mut mst = Mst::empty();
        for (i, k) in keys.iter().enumerate() {
            mst.insert(k, record_cid(i as u32)).unwrap();
        }
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let model: Vec<(String, Cid)> = keys.iter().enumerate()
            .filter(|(_, k)| k.as_str() > lo.as_str() && k.as_str() < hi.as_str())
            .map(|(i, k)| (k.clone(), record_cid(i as u32))).collect();
        let mut expected = model;
        if reverse { expected.reverse(); }
        expected.truncate(limit);
        prop_assert_eq!(mst.list(Some(&lo), Some(&hi), limit, reverse).unwrap(), expected);
    }
}

#[test]
fn block_source_is_object_safe() {
    let source: Arc<dyn BlockSource> = Arc::new(BlockMap::new());
    assert!(source.read_block(&cid1()).is_none());
}
