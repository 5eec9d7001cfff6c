//! Repo benchmarks on real code paths: MST inserts, a signed commit into a large repo, CAR
//! export, and `arroba repo create` run as a user runs it. Figures are recorded in
//! `docs/benchmarks.md`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use arroba::cbor::{Value, map};
use arroba::cid::cid_for_cbor;
use arroba::crypto::{Algorithm, Keypair};
use arroba::mst::Mst;
use arroba::repo::{Repo, Write};
use arroba::syntax::{Did, Nsid, RecordKey};
use arroba::tid::Tid;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const N: usize = 100_000;

/// Realistic record paths: TID rkeys a millisecond apart.
fn paths(n: usize) -> Vec<String> {
    let start = 1_700_000_000_000_000u64;
    (0..n)
        .map(|i| {
            format!(
                "app.bsky.feed.post/{}",
                Tid::from_micros(start + i as u64 * 1000, 7)
            )
        })
        .collect()
}

fn post(i: usize) -> Value {
    map([
        ("$type", "app.bsky.feed.post".into()),
        (
            "text",
            format!("post number {i}, with a little text to make it realistic").into(),
        ),
        ("createdAt", "2024-01-01T00:00:00.000Z".into()),
    ])
}

fn big_repo(key: &Keypair) -> Repo {
    let did = Did::parse("did:plc:benchbenchbenchbenchbenc").unwrap();
    let records = paths(N).into_iter().enumerate().map(|(i, p)| (p, post(i)));
    let repo = Repo::create_with_records(did, key, Tid::from_micros(1, 0), records).unwrap();
    black_box(repo.mst().root_cid());
    repo
}

fn mst_inserts(c: &mut Criterion) {
    let keys = paths(N);
    let value = cid_for_cbor(b"record");
    let mut group = c.benchmark_group("mst");
    group.sample_size(10);
    group.bench_function("insert 100k one at a time, then root CID", |b| {
        b.iter(|| {
            let mut mst = Mst::empty();
            for k in &keys {
                mst.insert(k, value).unwrap();
            }
            black_box(mst.root_cid())
        })
    });
    group.finish();
}

fn commit_into_large_repo(c: &mut Criterion) {
    let key = Keypair::from_seed(Algorithm::K256, b"bench");
    let repo = big_repo(&key);
    let collection = Nsid::parse("app.bsky.feed.post").unwrap();
    let mut n = 0u64;
    c.bench_function("signed single-record commit into a 100k-record repo", |b| {
        b.iter_batched(
            || {
                n += 1;
                let rkey =
                    RecordKey::parse(&Tid::from_micros(2_000_000_000_000_000 + n, 3).to_string())
                        .unwrap();
                (
                    Write::create(collection.clone(), rkey, post(n as usize)),
                    Tid::from_micros(3_000_000_000_000_000 + n, 0),
                )
            },
            |(write, rev)| {
                black_box(
                    repo.apply_writes(std::slice::from_ref(&write), &key, rev)
                        .unwrap(),
                )
            },
            BatchSize::SmallInput,
        )
    });
}

fn car_export(c: &mut Criterion) {
    let key = Keypair::from_seed(Algorithm::K256, b"bench");
    let repo = big_repo(&key);
    let size = repo.export_car(std::io::sink()).unwrap();
    let mut group = c.benchmark_group("car");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(size));
    group.bench_function("export a 100k-record repo", |b| {
        b.iter(|| black_box(repo.export_car(std::io::sink()).unwrap()))
    });
    group.finish();
}

/// The whole of `arroba repo create`, as the binary: 100,000 posts as JSON lines on stdin (a
/// file), the signed CAR to stdout (discarded). Process start and exit are in the figure.
fn repo_create_cli(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("posts.jsonl");
    let mut lines = String::new();
    for (i, path) in paths(N).iter().enumerate() {
        let line = serde_json::json!({"path": path, "record": {
            "$type": "app.bsky.feed.post",
            "text": format!("post number {i}, with a little text to make it realistic"),
            "createdAt": "2024-01-01T00:00:00.000Z",
        }});
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    std::fs::write(&input, lines).unwrap();
    let mut group = c.benchmark_group("cli");
    group.sample_size(10);
    group.bench_function("repo create of 100k posts, JSON lines to CAR", |b| {
        b.iter(|| {
            let status = std::process::Command::new(env!("CARGO_BIN_EXE_arroba"))
                .args([
                    "repo",
                    "create",
                    "--did",
                    "did:plc:benchbenchbenchbenchbenc",
                ])
                .args(["--key-hex", &"11".repeat(32)])
                .stdin(std::fs::File::open(&input).unwrap())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    mst_inserts,
    commit_into_large_repo,
    car_export,
    repo_create_cli
);
criterion_main!(benches);
