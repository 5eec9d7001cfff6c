//! An account with 10,000 records and 50 blobs moves from the reference TypeScript PDS
//! (`../shared/tools/reference-pds/`, started here with its PLC directory) to ours (`arroba
//! serve`) and back, then to ours again and on to a second, empty reference PDS (which must take
//! every record and blob from ours), each time with `arroba account migrate`. After each move
//! every record, blob, the handle and the DID document are compared, and the firehoses of both
//! ends are checked for the events relays expect. The reference PDSs e-mail their PLC codes to
//! an SMTP stand-in; ours writes them to its dev outbox.
//!
//! Not part of `make test`: a fresh machine needs three minutes to install the reference PDS.
//! `make reference-pds` runs it; `docs/migration.md` records a run.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arroba::cbor::{self, Value as Cbor};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::account_migrate::{migrate, records, text};
use crate::common::process::{free_port, serve};

const RECORDS: usize = 10_000;
const BLOBS: usize = 50;
const HANDLE: &str = "mover.test";
const PASSWORD: &str = "mover-pw-0123";

/// A reference PDS, stopped when the test ends.
pub struct Reference {
    port: u16,
    dir: PathBuf,
}

impl Reference {
    /// Starts one on `port`: with its own PLC directory on `plc_port`, or using `plc_url`'s.
    pub fn start(port: u16, plc_port: u16, plc_url: Option<&str>, smtp_port: u16) -> Reference {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".local/reference-pds");
        let mut command = Command::new(runner("start-reference.sh"));
        command
            .args([port.to_string(), plc_port.to_string()])
            .env("REFERENCE_PDS_DIR", &dir)
            .env(
                "PDS_EMAIL_SMTP_URL",
                format!("smtp://127.0.0.1:{smtp_port}"),
            )
            .env("PDS_EMAIL_FROM_ADDRESS", "reference@example.com");
        if let Some(url) = plc_url {
            command.env("REFERENCE_PLC_URL", url);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        Reference { port, dir }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = Command::new(runner("stop-reference.sh"))
            .arg(self.port.to_string())
            .env("REFERENCE_PDS_DIR", &self.dir)
            .status();
    }
}

fn runner(script: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/tools/reference-pds")
        .join(script)
}

/// Every frame `url`'s firehose sends from now on: (type, body), kept in the returned list.
async fn subscribe(url: String) -> Arc<Mutex<Vec<(String, Cbor)>>> {
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let frames = Arc::new(Mutex::new(Vec::new()));
    let kept = frames.clone();
    tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            let Message::Binary(bytes) = message else {
                continue;
            };
            let Ok((header, rest)) = cbor::decode_first(&bytes) else {
                continue;
            };
            let Ok(body) = cbor::decode(rest) else {
                continue;
            };
            let kind = header
                .get("t")
                .and_then(Cbor::as_str)
                .unwrap_or("")
                .to_owned();
            kept.lock().unwrap().push((kind, body));
        }
    });
    frames
}

/// The types of the frames about `did` (with `#account` frames as `#account:<active>`).
fn kinds_for(frames: &Mutex<Vec<(String, Cbor)>>, did: &str) -> Vec<String> {
    frames
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, body)| {
            body.get("did")
                .or_else(|| body.get("repo"))
                .and_then(Cbor::as_str)
                == Some(did)
        })
        .map(|(kind, body)| match kind.as_str() {
            "#account" => format!(
                "#account:{}",
                matches!(body.get("active"), Some(Cbor::Bool(true)))
            ),
            _ => kind.clone(),
        })
        .collect()
}

/// Waits up to 10 s for `did`'s frames on `frames` to include all of `wanted`.
async fn expect_frames(
    frames: &Mutex<Vec<(String, Cbor)>>,
    did: &str,
    wanted: &[&str],
    what: &str,
) {
    for _ in 0..100 {
        let seen = kinds_for(frames, did);
        if wanted.iter().all(|w| seen.iter().any(|s| s == w)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{what}: wanted {wanted:?}, saw {:?}",
        kinds_for(frames, did)
    );
}

async fn json_of(request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// The DID document's PDS endpoint and atproto key, from the PLC directory.
async fn plc_document(client: &reqwest::Client, plc: &str, did: &str) -> (String, String, Value) {
    let data = json_of(client.get(format!("{plc}/{did}/data"))).await;
    (
        data["services"]["atproto_pds"]["endpoint"]
            .as_str()
            .unwrap()
            .to_owned(),
        data["verificationMethods"]["atproto"]
            .as_str()
            .unwrap()
            .to_owned(),
        data["alsoKnownAs"].clone(),
    )
}

/// The 50 blobs, each fetched from `base`, equal to what was uploaded.
async fn blobs_match(client: &reqwest::Client, base: &str, did: &str, blobs: &[(String, Vec<u8>)]) {
    for (cid, bytes) in blobs {
        let got = client
            .get(format!("{base}/xrpc/com.atproto.sync.getBlob"))
            .query(&[("did", did), ("cid", cid.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200, "{base}: blob {cid}");
        assert_eq!(
            got.bytes().await.unwrap().as_ref(),
            bytes.as_slice(),
            "{base}: blob {cid}"
        );
    }
}

/// Where the PLC code of a move comes from.
enum Mailbox<'a> {
    /// The SMTP stand-in (a reference PDS sends there).
    Smtp(&'a Mutex<Vec<String>>),
    /// Our dev outbox in this data directory.
    Outbox(&'a std::path::Path),
}

impl Mailbox<'_> {
    fn newest_code(&self) -> String {
        match self {
            Mailbox::Smtp(mails) => {
                let mail = mails.lock().unwrap().pop().expect("a code was mailed");
                crate::common::smtp::code_in(&mail).unwrap()
            }
            Mailbox::Outbox(data) => crate::account_migrate::outbox_code(data),
        }
    }
}

/// One move with `arroba account migrate`, as a person does it: the first run stops for the
/// mailed code, the second finishes. Returns both runs' reports (stderr).
fn move_account(from: &str, to: &str, mailbox: Mailbox<'_>, label: &str) -> String {
    let args = [
        "--from",
        from,
        "--to",
        to,
        "--handle",
        HANDLE,
        "--password",
        PASSWORD,
    ];
    let clock = Instant::now();
    let first = migrate(&args);
    assert_eq!(first.status.code(), Some(1), "{label}: {}", text(&first));
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("--plc-token"),
        "{label}: {}",
        text(&first)
    );
    let first_secs = clock.elapsed().as_secs_f64();
    let code = mailbox.newest_code();
    let clock = Instant::now();
    let done = migrate(&[&args[..], &["--plc-token", &code]].concat());
    assert!(done.status.success(), "{label}: {}", text(&done));
    let report = format!(
        "{label}, first run ({first_secs:.1} s):\n{}\n{label}, with the code ({:.1} s):\n{}",
        String::from_utf8_lossy(&first.stderr),
        clock.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&done.stderr)
    );
    eprintln!("{report}");
    report
}

/// After a move to `base`: every record and blob is there, the handle resolves there, and the
/// DID document names `endpoint` and the signing key `base` recommends.
async fn arrived(
    client: &reqwest::Client,
    base: &str,
    endpoint: &str,
    plc: &str,
    did: &str,
    original: &[(String, String)],
    blobs: &[(String, Vec<u8>)],
) {
    assert_eq!(
        records(client, base, did).await,
        original,
        "{base}: every record"
    );
    blobs_match(client, base, did, blobs).await;
    let resolved = json_of(
        client
            .get(format!("{base}/xrpc/com.atproto.identity.resolveHandle"))
            .query(&[("handle", HANDLE)]),
    )
    .await;
    assert_eq!(resolved["did"], did, "{base}: the handle");
    let (named, key, aka) = plc_document(client, plc, did).await;
    assert_eq!(named, endpoint);
    assert_eq!(aka, json!([format!("at://{HANDLE}")]));
    let session = json_of(
        client
            .post(format!("{base}/xrpc/com.atproto.server.createSession"))
            .json(&json!({"identifier": HANDLE, "password": PASSWORD})),
    )
    .await;
    let recommended = json_of(
        client
            .get(format!(
                "{base}/xrpc/com.atproto.identity.getRecommendedDidCredentials"
            ))
            .bearer_auth(session["accessJwt"].as_str().unwrap()),
    )
    .await;
    assert_eq!(recommended["verificationMethods"]["atproto"], key.as_str());
}

fn ws(base: &str) -> String {
    format!(
        "{}/xrpc/com.atproto.sync.subscribeRepos",
        base.replacen("http", "ws", 1)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the reference PDS installed (3 minutes on a fresh machine): make reference-pds"]
async fn an_account_of_10000_records_and_50_blobs_moves_from_the_reference_pds_to_ours_and_back() {
    let started = Instant::now();
    let (smtp_port, mails) = crate::common::smtp::stand_in().await;
    let (a_port, plc_port, b_port, our_port) = (free_port(), free_port(), free_port(), free_port());
    let a = Reference::start(a_port, plc_port, None, smtp_port);
    // The reference PDS refuses IP-literal PLC hosts, and names its directory `localhost`.
    let plc = format!("http://localhost:{plc_port}");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ours");
    let _ours = serve(
        &data,
        our_port,
        &[
            ("PDS_DID_PLC_URL", plc.as_str()),
            ("PDS_SERVICE_DID", "did:web:arroba.localhost"),
            ("PDS_SERVICE_HANDLE_DOMAINS", ".test"),
        ],
    )
    .await;
    let (reference, ours) = (a.url(), format!("http://127.0.0.1:{our_port}"));
    let (reference_endpoint, our_endpoint) = (
        format!("http://localhost:{a_port}"),
        format!("http://localhost:{our_port}"),
    );
    let client = reqwest::Client::new();

    // The account on the reference PDS: 50 posts with a picture each, 9,950 without.
    let account = json_of(
        client
            .post(format!("{reference}/xrpc/com.atproto.server.createAccount"))
            .json(&json!({"handle": HANDLE, "email": "mover@example.com", "password": PASSWORD})),
    )
    .await;
    let did = account["did"].as_str().unwrap().to_owned();
    let token = account["accessJwt"].as_str().unwrap().to_owned();
    let mut blobs = Vec::new();
    for i in 0..BLOBS {
        let bytes = [
            b"\x89PNG\r\n\x1a\n".as_slice(),
            format!("picture {i}").as_bytes(),
            &[i as u8; 1000],
        ]
        .concat();
        let blob = json_of(
            client
                .post(format!("{reference}/xrpc/com.atproto.repo.uploadBlob"))
                .bearer_auth(&token)
                .header("content-type", "image/png")
                .body(bytes.clone()),
        )
        .await["blob"]
            .clone();
        json_of(
            client
                .post(format!("{reference}/xrpc/com.atproto.repo.createRecord"))
                .bearer_auth(&token)
                .json(
                    &json!({"repo": did, "collection": "app.bsky.feed.post", "record": {
                    "$type": "app.bsky.feed.post", "text": format!("picture {i}"),
                    "createdAt": "2026-12-01T00:00:00.000Z",
                    "embed": {"$type": "app.bsky.embed.images",
                        "images": [{"alt": "", "image": blob}]}}}),
                ),
        )
        .await;
        blobs.push((blob["ref"]["$link"].as_str().unwrap().to_owned(), bytes));
    }
    for batch in 0..(RECORDS - BLOBS).div_ceil(200) {
        let writes: Vec<Value> = (0..200)
            .map(|i| batch * 200 + i)
            .take_while(|n| *n < RECORDS - BLOBS)
            .map(|n| {
                json!({"$type": "com.atproto.repo.applyWrites#create",
                "collection": "app.bsky.feed.post",
                "value": {"$type": "app.bsky.feed.post", "text": format!("post {n}"),
                    "createdAt": "2026-12-01T00:00:00.000Z"}})
            })
            .collect();
        json_of(
            client
                .post(format!("{reference}/xrpc/com.atproto.repo.applyWrites"))
                .bearer_auth(&token)
                .json(&json!({"repo": did, "writes": writes})),
        )
        .await;
    }
    let original = records(&client, &reference, &did).await;
    assert_eq!(original.len(), RECORDS);
    eprintln!(
        "reference account {did}: {} records, {BLOBS} blobs, ready after {:.1} s",
        original.len(),
        started.elapsed().as_secs_f64()
    );
    let reference_frames = subscribe(ws(&reference)).await;
    let our_frames = subscribe(ws(&ours)).await;

    // 1. Reference → ours: everything is copied here.
    let report = move_account(&reference, &ours, Mailbox::Smtp(&mails), "reference → ours");
    assert!(report.contains("blobs: 50 copied"), "{report}");
    arrived(&client, &ours, &our_endpoint, &plc, &did, &original, &blobs).await;
    let listed = json_of(
        client
            .get(format!("{ours}/xrpc/com.atproto.sync.listBlobs"))
            .query(&[("did", did.as_str()), ("limit", "1000")]),
    )
    .await;
    assert_eq!(listed["cids"].as_array().unwrap().len(), BLOBS);
    expect_frames(
        &our_frames,
        &did,
        &["#identity", "#account:true", "#commit"],
        "ours, arriving",
    )
    .await;
    expect_frames(
        &reference_frames,
        &did,
        &["#account:false"],
        "the reference, left",
    )
    .await;

    // 2. Back: the reference PDS kept the deactivated account and takes it again.
    move_account(
        &ours,
        &reference,
        Mailbox::Outbox(&data),
        "ours → reference",
    );
    arrived(
        &client,
        &reference,
        &reference_endpoint,
        &plc,
        &did,
        &original,
        &blobs,
    )
    .await;
    expect_frames(
        &reference_frames,
        &did,
        &["#identity", "#account:true", "#sync"],
        "the reference, back",
    )
    .await;
    expect_frames(&our_frames, &did, &["#account:false"], "ours, left").await;

    // 3. Here again (ours kept the account too), then on to an empty reference PDS, which
    // takes every record and blob from ours.
    move_account(
        &reference,
        &ours,
        Mailbox::Smtp(&mails),
        "reference → ours again",
    );
    arrived(&client, &ours, &our_endpoint, &plc, &did, &original, &blobs).await;
    let b = Reference::start(b_port, free_port(), Some(&plc), smtp_port);
    let fresh = b.url();
    let fresh_frames = subscribe(ws(&fresh)).await;
    let report = move_account(
        &ours,
        &fresh,
        Mailbox::Outbox(&data),
        "ours → an empty reference",
    );
    assert!(report.contains("blobs: 50 copied"), "{report}");
    arrived(
        &client,
        &fresh,
        &format!("http://localhost:{b_port}"),
        &plc,
        &did,
        &original,
        &blobs,
    )
    .await;
    expect_frames(
        &fresh_frames,
        &did,
        &["#identity", "#account:true", "#sync"],
        "the empty reference, arriving",
    )
    .await;
    eprintln!(
        "frames for {did}: ours {:?}; first reference {:?}; second reference {:?}; whole run {:.1} s",
        kinds_for(&our_frames, &did),
        kinds_for(&reference_frames, &did),
        kinds_for(&fresh_frames, &did),
        started.elapsed().as_secs_f64()
    );
}
