//! The `arroba repo` commands, run as the built binary on files in a temp dir; progress bars on
//! a terminal and never in a pipe.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const KEY_HEX: &str = "6b0b91287ae3348f8c2f2552d766f30e3604867e34adc37ccbb74a8e6b893e02";
/// The did:key of KEY_HEX (from the interop K-256 vectors).
const DID_KEY: &str = "did:key:zQ3shZc2QzApp2oymGvQbzP8eKheVshBHbU4ZYjeXqwSKEn6N";
const DID: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";

fn arroba(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_arroba"));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("PDS_")) {
        cmd.env_remove(k);
    }
    let mut child = cmd.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or_default()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn jsonl(records: &[(&str, &str)]) -> Vec<u8> {
    records
        .iter()
        .map(|(path, text)| format!(r#"{{"path":"{path}","record":{{"$type":"app.bsky.feed.post","text":"{text}","createdAt":"2024-01-01T00:00:00.000Z"}}}}"#))
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

fn create_car(dir: &Path, name: &str, records: &[(&str, &str)]) -> PathBuf {
    let out = arroba(
        &["repo", "create", "--did", DID, "--key-hex", KEY_HEX],
        Some(&jsonl(records)),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let path = dir.join(name);
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

#[test]
fn create_then_inspect_ls_get_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let car = create_car(
        dir.path(),
        "repo.car",
        &[
            ("app.bsky.feed.post/3kaaaaaaaaa22", "one"),
            ("app.bsky.feed.post/3kaaaaaaaab22", "two"),
            ("app.bsky.actor.profile/self", "me"),
        ],
    );
    let car = car.to_str().unwrap();

    let info: serde_json::Value =
        serde_json::from_str(&stdout(&arroba(&["repo", "inspect", car, "--json"], None))).unwrap();
    assert_eq!(info["did"], DID);
    assert_eq!(info["records"], 3);
    // The commit, at least one MST node and the three records.
    let blocks = info["blocks"].as_u64().unwrap();
    assert!(blocks >= 5);
    let text = stdout(&arroba(&["repo", "inspect", car], None));
    assert!(text.contains(&format!("did      {DID}")));

    let ls = stdout(&arroba(&["repo", "ls", car], None));
    let paths: Vec<&str> = ls.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "app.bsky.actor.profile/self",
            "app.bsky.feed.post/3kaaaaaaaaa22",
            "app.bsky.feed.post/3kaaaaaaaab22"
        ]
    );

    let got = stdout(&arroba(
        &["repo", "get", car, "app.bsky.feed.post/3kaaaaaaaab22"],
        None,
    ));
    let record: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(record["text"], "two");

    let ok = arroba(&["repo", "verify", car, "--key", DID_KEY], None);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(
        stdout(&ok).trim(),
        format!("ok: 3 records, {blocks} blocks, signature ok")
    );
}

#[test]
fn verify_fails_with_one_line_for_a_wrong_key_or_tampered_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let car = create_car(dir.path(), "repo.car", &[("app.bsky.feed.post/a", "x")]);
    let other = "did:key:zQ3shadCps5JLAHcZiuX5YUtWHHL8ysBJqFLWvjZDKAWUBGzy";
    let bad = arroba(
        &["repo", "verify", car.to_str().unwrap(), "--key", other],
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(stderr(&bad).lines().count(), 1);
    assert!(stderr(&bad).contains("signature"), "{}", stderr(&bad));

    let mut bytes = std::fs::read(&car).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0x40;
    let tampered = dir.path().join("tampered.car");
    std::fs::write(&tampered, &bytes).unwrap();
    let out = arroba(&["repo", "verify", tampered.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not match its CID"),
        "{}",
        stderr(&out)
    );

    let garbage = dir.path().join("garbage.car");
    std::fs::write(
        &garbage,
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff not a car",
    )
    .unwrap();
    for cmd in ["verify", "inspect", "ls"] {
        let out = arroba(&["repo", cmd, garbage.to_str().unwrap()], None);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        assert!(
            stderr(&out).starts_with("error:"),
            "{cmd}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn diff_lists_created_updated_and_deleted_paths() {
    let dir = tempfile::tempdir().unwrap();
    let old = create_car(
        dir.path(),
        "old.car",
        &[("app.bsky.feed.post/a", "1"), ("app.bsky.feed.post/b", "2")],
    );
    let new = create_car(
        dir.path(),
        "new.car",
        &[
            ("app.bsky.feed.post/b", "changed"),
            ("app.bsky.feed.post/c", "3"),
        ],
    );
    let out = stdout(&arroba(
        &["repo", "diff", old.to_str().unwrap(), new.to_str().unwrap()],
        None,
    ));
    assert_eq!(
        out,
        "deleted\tapp.bsky.feed.post/a\nupdated\tapp.bsky.feed.post/b\ncreated\tapp.bsky.feed.post/c\n"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&arroba(
        &[
            "repo",
            "diff",
            old.to_str().unwrap(),
            new.to_str().unwrap(),
            "--json",
        ],
        None,
    )))
    .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
}

#[test]
fn create_rejects_bad_lines_keys_and_dids_with_a_clear_message() {
    for (args, input, expect) in [
        (
            vec!["--did", "not-a-did", "--key-hex", KEY_HEX],
            jsonl(&[]),
            "invalid DID",
        ),
        (
            vec!["--did", DID, "--key-hex", "zz"],
            jsonl(&[]),
            "--key-hex is not hex",
        ),
        (
            vec!["--did", DID, "--key-hex", KEY_HEX],
            b"{not json".to_vec(),
            "line 1",
        ),
        (
            vec!["--did", DID, "--key-hex", KEY_HEX],
            br#"{"path":"x"}"#.to_vec(),
            "expected",
        ),
        (
            // Blank lines are skipped but counted: the bad record is named by its line.
            vec!["--did", DID, "--key-hex", KEY_HEX],
            [
                jsonl(&[("a.b.c/x", "1")]),
                b"\n\n{\"path\": 7, \"record\": {}}\n".to_vec(),
            ]
            .concat(),
            "line 3: expected",
        ),
        (
            vec!["--did", DID, "--key-hex", KEY_HEX],
            jsonl(&[("bad path", "x")]),
            "Invalid MST key",
        ),
        (
            vec!["--did", DID, "--key-hex", KEY_HEX],
            jsonl(&[("a.b.c/x", "1"), ("a.b.c/x", "2")]),
            "more than one write",
        ),
    ] {
        let mut full = vec!["repo", "create"];
        full.extend(args);
        let out = arroba(&full, Some(&input));
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains(expect),
            "expected {expect:?} in {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn plc_serve_runs_a_directory_that_persists_across_restarts() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_arroba"))
            .args([
                "plc",
                "serve",
                "--port",
                "0",
                "--data-dir",
                dir.path().to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().rsplit(' ').next().unwrap().to_owned();
        (child, url)
    };
    let (mut child, url) = start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = arroba::crypto::Keypair::from_seed(arroba::crypto::Algorithm::K256, b"cli plc");
    let handle = arroba::syntax::Handle::parse("cli.test").unwrap();
    let data = arroba::identity::plc::PlcData::new(
        &[key.public_key()],
        &key.public_key(),
        &handle,
        "https://pds.test",
    );
    let op = arroba::identity::plc::PlcOperation::Operation {
        data,
        prev: None,
        sig: None,
    }
    .sign(&key);
    let did = op.did();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{url}/{did}"))
            .json(&op.to_json())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, url) = start();
    rt.block_on(async {
        let doc: serde_json::Value = reqwest::get(format!("{url}/{did}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["alsoKnownAs"][0], "at://cli.test");
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn dynamodb_create_tables_is_idempotent_against_the_emulator() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL: run `make test`");
    let prefix = format!("cli{}-", std::process::id());
    // On a terminal, a spinner while the tables are made.
    let mut first = Command::new(env!("CARGO_BIN_EXE_arroba"));
    first
        .args(["dynamodb", "create-tables", "--prefix", &prefix])
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .stdout(Stdio::null());
    let (status, drawn) = crate::common::process::on_terminal(first);
    assert!(status.success(), "{drawn}");
    assert!(drawn.contains("tables"), "{drawn:?}");
    for _ in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_arroba"))
            .args(["dynamodb", "create-tables", "--prefix", &prefix])
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).is_empty(),
            "no progress in a pipe: {}",
            stderr(&out)
        );
        assert!(stdout(&out).contains(&format!("{prefix}repos")));
        let defined = arroba::storage::dynamo::tables::definitions();
        let text = stdout(&out);
        let printed: Vec<&str> = text.lines().collect();
        let expected: Vec<String> = defined
            .iter()
            .map(|d| format!("{prefix}{}", d.suffix))
            .collect();
        assert_eq!(printed, expected);
    }
    let tables: serde_json::Value =
        serde_json::from_str(&stdout(&arroba(&["dynamodb", "tables", "--json"], None))).unwrap();
    assert_eq!(
        tables.as_array().unwrap().len(),
        arroba::storage::dynamo::tables::definitions().len()
    );
}

#[test]
fn repo_create_shows_its_progress_on_a_terminal_and_nothing_in_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<(String, String)> = (0..3000)
        .map(|i| {
            (
                format!("app.bsky.feed.post/3kaa{i:09}"),
                format!("post {i}"),
            )
        })
        .collect();
    let borrowed: Vec<(&str, &str)> = records
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let input = dir.path().join("records.jsonl");
    std::fs::write(&input, jsonl(&borrowed)).unwrap();
    let run = |car: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_arroba"));
        command
            .args(["repo", "create", "--did", DID, "--key-hex", KEY_HEX])
            .stdin(std::fs::File::open(&input).unwrap())
            .stdout(std::fs::File::create(dir.path().join(car)).unwrap());
        command
    };
    let (status, drawn) = crate::common::process::on_terminal(run("terminal.car"));
    assert!(status.success(), "{drawn}");
    assert!(
        drawn.contains("records") && drawn.contains("3000"),
        "{drawn:?}"
    );
    assert!(drawn.contains("writing"), "{drawn:?}");
    let piped = run("piped.car").stderr(Stdio::piped()).output().unwrap();
    assert!(piped.status.success());
    assert!(piped.stderr.is_empty(), "{}", stderr(&piped));
    // The bar goes to stderr only: the CAR is whole either way.
    for car in ["terminal.car", "piped.car"] {
        let out = arroba(
            &["repo", "inspect", dir.path().join(car).to_str().unwrap()],
            None,
        );
        assert!(stdout(&out).contains("records  3000"), "{}", stdout(&out));
    }
}
