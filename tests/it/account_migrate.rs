//! `arroba account migrate` as a person runs it, between two of our servers (`arroba serve`
//! processes sharing a PLC directory): a dry run that changes nothing, a run that stops for the
//! e-mailed PLC code and says how to go on, the run that finishes the move, and a run after it
//! that finds everything done. Moving to and from the reference PDS is
//! `tests/it/reference_migration.rs`.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::common::process::{free_port, post_json, serve};

/// Runs `arroba account migrate` with `args`, stdin not a terminal.
pub fn migrate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arroba"))
        .args(["account", "migrate"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The newest code our dev outbox in `data` holds.
pub fn outbox_code(data: &Path) -> String {
    let mut mails: Vec<_> = std::fs::read_dir(data.join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    mails.sort();
    let mail: Value =
        serde_json::from_slice(&std::fs::read(mails.last().unwrap()).unwrap()).unwrap();
    crate::common::smtp::code_in(mail["text"].as_str().unwrap()).unwrap()
}

/// Every record's path and CID in `did`'s repo on `base`, from its export.
pub async fn records(client: &reqwest::Client, base: &str, did: &str) -> Vec<(String, String)> {
    let car = client
        .get(format!("{base}/xrpc/com.atproto.sync.getRepo"))
        .query(&[("did", did)])
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let car = arroba::car::read_car(&car).unwrap();
    let root = car.roots[0];
    let commit = arroba::repo::Commit::decode(root, car.blocks.get(&root).unwrap()).unwrap();
    let source: std::sync::Arc<dyn arroba::block::BlockSource> = std::sync::Arc::new(car.blocks);
    arroba::mst::Mst::load(commit.data, source)
        .leaves()
        .unwrap()
        .into_iter()
        .map(|(path, cid)| (path, cid.to_string()))
        .collect()
}

#[tokio::test]
async fn an_account_moves_between_two_servers_stopping_for_the_mailed_code_and_resuming() {
    let dir = tempfile::tempdir().unwrap();
    let (old_data, new_data) = (dir.path().join("old"), dir.path().join("new"));
    let (old_port, new_port) = (free_port(), free_port());
    let _old = serve(&old_data, old_port, &[]).await;
    // The old server runs the PLC directory in dev mode; the new one uses it too.
    let printed = std::fs::read_to_string(old_data.with_extension("log")).unwrap();
    let plc = printed
        .lines()
        .find_map(|l| l.strip_prefix("local PLC directory on "))
        .unwrap()
        .to_owned();
    let _new = serve(
        &new_data,
        new_port,
        &[
            ("PDS_DID_PLC_URL", plc.as_str()),
            ("PDS_SERVICE_DID", "did:web:new.localhost"),
        ],
    )
    .await;
    let (old, new) = (
        format!("http://127.0.0.1:{old_port}"),
        format!("http://127.0.0.1:{new_port}"),
    );
    let client = reqwest::Client::new();
    let account = post_json(
        &client,
        format!("{old}/xrpc/com.atproto.server.createAccount"),
        None,
        json!({"handle": "alice.test", "email": "alice@example.com", "password": "alice-pw-0123"}),
    )
    .await;
    let did = account["did"].as_str().unwrap().to_owned();
    let token = account["accessJwt"].as_str().unwrap().to_owned();
    let mut blobs = Vec::new();
    for i in 0..3u8 {
        let bytes = [b"\x89PNG\r\n\x1a\n".as_slice(), &[i; 64]].concat();
        let response = client
            .post(format!("{old}/xrpc/com.atproto.repo.uploadBlob"))
            .bearer_auth(&token)
            .header("content-type", "image/png")
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        let blob = response.json::<Value>().await.unwrap()["blob"].clone();
        post_json(
            &client,
            format!("{old}/xrpc/com.atproto.repo.createRecord"),
            Some(&token),
            json!({"repo": did, "collection": "app.bsky.feed.post", "record": {
                "$type": "app.bsky.feed.post", "text": format!("picture {i}"),
                "createdAt": "2026-12-01T00:00:00.000Z",
                "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": blob}]}}}),
        )
        .await;
        blobs.push((blob, bytes));
    }
    let writes: Vec<Value> = (0..30)
        .map(|i| {
            json!({"$type": "com.atproto.repo.applyWrites#create",
            "collection": "app.bsky.feed.post",
            "value": {"$type": "app.bsky.feed.post", "text": format!("post {i}"),
                "createdAt": "2026-12-01T00:00:00.000Z"}})
        })
        .collect();
    post_json(
        &client,
        format!("{old}/xrpc/com.atproto.repo.applyWrites"),
        Some(&token),
        json!({"repo": did, "writes": writes}),
    )
    .await;
    let before = records(&client, &old, &did).await;
    assert_eq!(before.len(), 33);

    let base = [
        "--from",
        old.as_str(),
        "--to",
        new.as_str(),
        "--handle",
        "alice.test",
        "--password",
        "alice-pw-0123",
    ];
    // A dry run checks both ends and changes nothing.
    let dry = migrate(&[&base[..], &["--dry-run"]].concat());
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("ready to move"),
        "{}",
        text(&dry)
    );
    let status = client
        .post(format!("{new}/xrpc/com.atproto.server.createSession"))
        .json(&json!({"identifier": did, "password": "alice-pw-0123"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401, "the dry run created nothing");

    // Without the code it moves everything it can, asks for the code and says how to go on.
    // On a terminal it draws its progress (the export, the import, the blobs).
    let mut on_terminal = Command::new(env!("CARGO_BIN_EXE_arroba"));
    on_terminal
        .args(["account", "migrate"])
        .args(base)
        .stdin(std::process::Stdio::null());
    let (status, drawn) = crate::common::process::on_terminal(on_terminal);
    assert_eq!(status.code(), Some(1), "{drawn}");
    assert!(drawn.contains("--plc-token"), "{drawn}");
    for bar in ["export", "import", "blobs", "3/3"] {
        assert!(drawn.contains(bar), "{bar}: {drawn:?}");
    }
    let code = outbox_code(&old_data);

    // With --json, nothing is drawn, even on a terminal: only the report, on stdout.
    let report_file = dir.path().join("report.json");
    let mut json_run = Command::new(env!("CARGO_BIN_EXE_arroba"));
    json_run
        .args(["account", "migrate"])
        .args(base)
        .args(["--plc-token", &code, "--json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&report_file).unwrap());
    let (status, drawn) = crate::common::process::on_terminal(json_run);
    assert!(status.success(), "{drawn}");
    assert!(
        drawn.trim().is_empty(),
        "nothing drawn with --json: {drawn:?}"
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    assert_eq!(report["complete"], true, "{report}");
    assert_eq!(report["did"], did.as_str());
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "old",
            "new",
            "repo",
            "account",
            "import",
            "blobs",
            "preferences",
            "identity",
            "activate",
            "deactivate"
        ]
    );
    assert!(
        report["steps"][3]["detail"]
            .as_str()
            .unwrap()
            .contains("already"),
        "{report}"
    );

    // Everything arrived: records, blobs, identity; the old account is deactivated.
    assert_eq!(records(&client, &new, &did).await, before);
    for (blob, bytes) in &blobs {
        let got = client
            .get(format!("{new}/xrpc/com.atproto.sync.getBlob"))
            .query(&[
                ("did", did.as_str()),
                ("cid", blob["ref"]["$link"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
        assert_eq!(got.bytes().await.unwrap().as_ref(), bytes.as_slice());
    }
    let doc: Value = client
        .get(format!("{plc}/{did}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["service"][0]["serviceEndpoint"],
        format!("http://localhost:{new_port}"),
        "{doc}"
    );
    let status: Value = client
        .get(format!("{old}/xrpc/com.atproto.sync.getRepoStatus"))
        .query(&[("did", did.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["active"], false, "{status}");
    assert_eq!(status["status"], "deactivated", "{status}");

    // Run again: everything is found done.
    let again = migrate(&[&base[..], &["--json"]].concat());
    assert!(again.status.success(), "{}", text(&again));
    let report: Value = serde_json::from_slice(&again.stdout).unwrap();
    let details: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["detail"].as_str().unwrap())
        .collect();
    assert!(
        details
            .iter()
            .any(|d| d.contains("already names the new PDS")),
        "{report}"
    );

    // A wrong password is a clear error, exit code 1.
    let wrong = migrate(&[
        "--from",
        &old,
        "--to",
        &new,
        "--handle",
        "alice.test",
        "--password",
        "nope",
    ]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("signing in to the old PDS"),
        "{}",
        text(&wrong)
    );
}
