//! The deploy rehearsal: what the CDK stack and the Terraform module would deploy, run offline.
//!
//! From each definition ([`cdk::spec`] reads the synthesized template, [`terraform::spec`]
//! evaluates the module) it takes exactly the environment, secrets and routes the Lambda and
//! the task's two containers receive. It generates each secret the way the definition has AWS
//! generate it, stores it in the emulator's Secrets Manager, creates the tables and the bucket,
//! and starts the real binaries with that environment: the Lambda `bootstrap` behind a stand-in
//! Runtime API, `arroba firehose` and `arroba bulk` as the containers run them. Only the world
//! around them is substituted: AWS endpoints (the emulator), the PLC directory (a local one) and
//! the relay (a stand-in that records `requestCrawl`). Then, through the deployed routing: an
//! invite, an account and a post through the Lambda, the post's `#commit` from the firehose, a
//! 20 MB blob up and down and a 100 MB repo import through the bulk container. A wrong secret format, a missing variable,
//! a default naming an example domain, or a path routed to the wrong place fails it.
//! `stacks_agree` compares the two definitions on the settings that matter.

mod cdk;
mod spec;
mod terraform;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arroba::cbor::{self, Value as Cbor};
use arroba::crypto::{Algorithm, Keypair};
use arroba::identity::{IdentityConfig, PlcClient, Resolver};
use arroba::repo::Repo;
use arroba::storage::KeySealer;
use arroba::syntax::Did;
use arroba::tid::{TidClock, micros_of};
use futures::StreamExt;
use serde_json::{Value, json};
use sha2::Digest;
use spec::{Spec, Val, generate};
use tokio_tungstenite::tungstenite::Message;

use crate::common::lambda_api::{Invoker, bootstrap_command};

/// The hostname the rehearsal deploys as (`make infra-test` synthesizes with it too).
const HOSTNAME: &str = "pds.rehearsal.test";
/// The defaults that must reach the binaries, before the world replaces them.
const PLC: &str = "https://plc.directory";
const MAIN_RELAY: &str = "https://bsky.network";

fn terraform_spec(table_prefix: &str) -> Spec {
    terraform::spec(&[
        ("hostname", HOSTNAME),
        ("table_prefix", table_prefix),
        ("lambda_zip", "target/arroba-lambda.zip"),
        (
            "certificate_arn",
            "arn:aws:acm:us-east-1:123456789012:certificate/regional",
        ),
        (
            "edge_certificate_arn",
            "arn:aws:acm:us-east-1:123456789012:certificate/edge",
        ),
    ])
}

/// A relay that records the `requestCrawl`s it gets.
async fn relay() -> (String, Arc<Mutex<Vec<Value>>>) {
    let crawled: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = crawled.clone();
    let app = axum::Router::new().route(
        "/xrpc/com.atproto.sync.requestCrawl",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(body);
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, crawled)
}

async fn plc_directory(dir: &std::path::Path) -> String {
    let store = arroba::plc::PlcStore::open(&dir.join("plc")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(arroba::plc::serve(listener, store, std::future::pending()));
    url
}

/// The cloud around the binaries: what the stack would have created, in the emulator.
struct World {
    secrets: BTreeMap<String, (String, String)>,
    bucket: String,
    tables: BTreeMap<String, String>,
}

impl World {
    /// Creates the spec's secrets (generated as the definition says) and the bucket; the tables
    /// get names the way CloudFormation would name them.
    async fn create(spec: &Spec) -> World {
        let sdk = crate::common::sdk_config().await;
        let client = aws_sdk_secretsmanager::Client::new(&sdk);
        let mut secrets = BTreeMap::new();
        for (id, how) in &spec.secrets {
            let value = generate(how);
            let name = format!("rehearsal-{}-{id}", hex::encode(rand::random::<[u8; 4]>()));
            let out = client
                .create_secret()
                .name(name)
                .secret_string(&value)
                .send()
                .await
                .unwrap();
            secrets.insert(id.clone(), (out.arn().unwrap().to_owned(), value));
        }
        let bucket = format!("rehearsal-{}", hex::encode(rand::random::<[u8; 4]>()));
        arroba::storage::S3BlobStore::new(&sdk, bucket.clone())
            .ensure_bucket()
            .await
            .unwrap();
        let tag = hex::encode(rand::random::<[u8; 4]>());
        let tables = arroba::storage::dynamo::tables::definitions()
            .iter()
            .map(|d| {
                (
                    d.suffix.to_owned(),
                    format!("Arroba-Table{}-{tag}", d.suffix),
                )
            })
            .collect();
        World {
            secrets,
            bucket,
            tables,
        }
    }

    fn resolve(&self, v: &Val) -> String {
        match v {
            Val::Lit(s) => s.clone(),
            Val::SecretArn(id) => self.secrets[id].0.clone(),
            Val::Bucket => self.bucket.clone(),
            Val::Table(suffix) => self.tables[suffix].clone(),
            Val::Concat(parts) => parts.iter().map(|p| self.resolve(p)).collect(),
        }
    }

    /// Creates the tables the environment names (by `ARROBA_TABLE_NAMES` or the prefix).
    async fn create_tables(&self, env: &BTreeMap<String, String>) {
        use arroba::storage::dynamo::DynamoConfig;
        let mut config = DynamoConfig::new(
            env.get("ARROBA_TABLE_PREFIX").cloned().unwrap_or_default(),
            None,
        );
        if let Some(names) = env.get("ARROBA_TABLE_NAMES") {
            config.table_names = serde_json::from_str(names).unwrap();
        }
        arroba::storage::DynamoStorage::with_sdk_config(&crate::common::sdk_config().await, config)
            .create_tables()
            .await
            .unwrap();
    }
}

/// The environment variables the image itself sets (`ENV` in infra/docker/Dockerfile), which the
/// task's containers start with.
fn image_env() -> BTreeMap<String, String> {
    let dockerfile = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/infra/docker/Dockerfile"
    ))
    .unwrap();
    dockerfile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ENV "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// What AWS gives every process: credentials, a region, and here the emulator's endpoint.
fn aws_env() -> [(&'static str, String); 4] {
    [
        ("AWS_ENDPOINT_URL", crate::common::dynamo_endpoint()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
    ]
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Checks what must hold of a definition before any world replaces anything.
fn check_defaults(spec: &Spec) {
    let mut all = vec![("lambda", &spec.lambda)];
    all.extend(spec.containers.iter().map(|(n, c)| (n.as_str(), c)));
    for (name, c) in &all {
        for (k, v) in &c.env {
            assert!(
                !format!("{v:?}").contains("example.com"),
                "{}: {name}'s {k} names an example domain: {v:?}",
                spec.source
            );
        }
        assert_eq!(
            c.env.get("PDS_HOSTNAME").and_then(Val::lit),
            Some(HOSTNAME),
            "{}: {name}",
            spec.source
        );
    }
    let lambda = &spec.lambda.env;
    assert_eq!(
        lambda["PDS_DID_PLC_URL"].lit(),
        Some(PLC),
        "{}",
        spec.source
    );
    assert_eq!(
        lambda["PDS_INVITE_REQUIRED"].lit(),
        Some("true"),
        "{}",
        spec.source
    );
    // The Bluesky app's views come from Bluesky's AppView, reports go to its moderation service.
    for (k, v) in [
        ("PDS_BSKY_APP_VIEW_URL", "https://api.bsky.app"),
        ("PDS_BSKY_APP_VIEW_DID", "did:web:api.bsky.app"),
        ("PDS_REPORT_SERVICE_URL", "https://mod.bsky.app"),
        ("PDS_REPORT_SERVICE_DID", "did:plc:ar7c4by46qjdydhdevvrndac"),
    ] {
        assert_eq!(
            lambda.get(k).and_then(Val::lit),
            Some(v),
            "{}: {k}",
            spec.source
        );
    }
    assert_eq!(
        lambda["PDS_SERVICE_HANDLE_DOMAINS"].lit(),
        Some(".pds.rehearsal.test"),
        "{}",
        spec.source
    );
    let firehose = &spec.containers["firehose"];
    assert_eq!(
        firehose.env["PDS_CRAWLERS"].lit(),
        Some(MAIN_RELAY),
        "{}",
        spec.source
    );
    assert!(
        firehose.secrets.is_empty(),
        "{}: the firehose gets no secret",
        spec.source
    );
    assert_eq!(
        spec.containers["bulk"].secrets.keys().collect::<Vec<_>>(),
        ["PDS_JWT_SECRET"],
        "{}: the bulk container gets only the JWT secret",
        spec.source
    );
    for (path, component) in [
        ("/xrpc/com.atproto.sync.subscribeRepos", "firehose"),
        ("/xrpc/com.atproto.sync.getRepo", "firehose"),
        ("/xrpc/com.atproto.repo.uploadBlob", "bulk"),
        ("/xrpc/com.atproto.sync.getBlob", "bulk"),
        ("/xrpc/com.atproto.repo.createRecord", "lambda"),
    ] {
        assert_eq!(spec.route(path), component, "{}: {path}", spec.source);
    }
    let routed: Vec<&str> = arroba::xrpc::BULK_METHODS.to_vec();
    for nsid in routed {
        assert_eq!(
            spec.route(&format!("/xrpc/{nsid}")),
            "bulk",
            "{}: {nsid}",
            spec.source
        );
    }
}

/// Runs everything `spec` deploys and checks the scenario end to end.
async fn rehearse(spec: Spec) {
    check_defaults(&spec);
    let dir = tempfile::tempdir().unwrap();
    let world = World::create(&spec).await;
    let plc = plc_directory(dir.path()).await;
    let (relay, crawled) = relay().await;
    let substitute = |k: &str, v: String| match (k, v.as_str()) {
        ("PDS_DID_PLC_URL", PLC) => plc.clone(),
        ("PDS_CRAWLERS", MAIN_RELAY) => relay.clone(),
        _ => v,
    };
    let resolve = |c: &spec::Component| -> BTreeMap<String, String> {
        c.env
            .iter()
            .map(|(k, v)| (k.clone(), substitute(k, world.resolve(v))))
            .collect()
    };
    let lambda_env = resolve(&spec.lambda);
    world.create_tables(&lambda_env).await;

    // The Lambda, as Lambda starts it: its environment, AWS's, and the Runtime API.
    let invoker = Invoker::start().await;
    let mut lambda = bootstrap_command();
    lambda
        .env_clear()
        .envs(&lambda_env)
        .envs(aws_env())
        .env("AWS_LAMBDA_RUNTIME_API", &invoker.addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", "arroba-xrpc")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("lambda.log")).unwrap(),
        ))
        .kill_on_drop(true);
    let mut lambda = lambda.spawn().unwrap();
    tokio::select! {
        _ = invoker.started() => {}
        status = lambda.wait() => panic!(
            "{}: the Lambda exited at start ({:?}):\n{}",
            spec.source,
            status,
            std::fs::read_to_string(dir.path().join("lambda.log")).unwrap_or_default()
        ),
        _ = tokio::time::sleep(Duration::from_secs(30)) => panic!("{}: the Lambda did not start", spec.source),
    }

    // The task's containers, as ECS starts them: the image's environment, the task's, the
    // secrets' values, the command; the world maps their ports.
    let mut ports = BTreeMap::new();
    let mut containers = Vec::new();
    for (name, c) in &spec.containers {
        let port = free_port();
        ports.insert(name.clone(), port);
        let mut env = image_env();
        env.extend(resolve(c));
        for (k, id) in &c.secrets {
            env.insert(k.clone(), world.secrets[id].1.clone());
        }
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_arroba"));
        cmd.args(&c.command)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env_clear()
            .envs(&env)
            .envs(aws_env())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap(),
            ))
            .kill_on_drop(true);
        containers.push(cmd.spawn().unwrap());
    }
    let http = reqwest::Client::new();
    let base = |component: &str| format!("http://127.0.0.1:{}", ports[component]);
    for name in spec.containers.keys() {
        let mut up = false;
        for _ in 0..200 {
            if http
                .get(format!("{}/xrpc/_health", base(name)))
                .send()
                .await
                .is_ok()
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log =
            std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap_or_default();
        assert!(
            up,
            "{}: the {name} container answers its health check:\n{log}",
            spec.source
        );
    }
    // The path a client calls goes where the deployment routes it.
    let through = |path: &str| -> String {
        match spec.route(path) {
            "lambda" => "lambda".to_owned(),
            container => base(container),
        }
    };
    let lambda_log = || std::fs::read_to_string(dir.path().join("lambda.log")).unwrap_or_default();
    let admin = {
        let Val::SecretArn(id) = &spec.lambda.env["PDS_ADMIN_PASSWORD_ARN"] else {
            panic!("the admin password arrives by ARN")
        };
        world.secrets[id].1.clone()
    };
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{admin}"))
    );
    let json_headers = |auth: &str| {
        vec![
            ("content-type", "application/json".to_owned()),
            ("authorization", auth.to_owned()),
        ]
    };
    let call = |method: &'static str,
                path: String,
                headers: Vec<(&'static str, String)>,
                body: Option<Vec<u8>>| {
        let invoker = invoker.clone();
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            invoker.call(method, &path, &headers, body).await
        }
    };

    let invite = call(
        "POST",
        "/xrpc/com.atproto.server.createInviteCode".into(),
        json_headers(&basic),
        Some(br#"{"useCount": 1}"#.to_vec()),
    )
    .await;
    assert_eq!(
        invite.status,
        200,
        "{}: {:?}\n{}",
        spec.source,
        invite.json(),
        lambda_log()
    );
    let code = invite.json()["code"].as_str().unwrap().to_owned();
    let account = call(
        "POST",
        "/xrpc/com.atproto.server.createAccount".into(),
        vec![("content-type", "application/json".into())],
        Some(
            json!({"handle": "alice.pds.rehearsal.test", "password": "rehearsal-password", "inviteCode": code})
                .to_string()
                .into_bytes(),
        ),
    )
    .await;
    assert_eq!(
        account.status,
        200,
        "{}: {:?}\n{}",
        spec.source,
        account.json(),
        lambda_log()
    );
    let account = account.json();
    let (did, token) = (
        account["did"].as_str().unwrap().to_owned(),
        account["accessJwt"].as_str().unwrap().to_owned(),
    );
    assert!(
        account["didDoc"]["service"]
            .to_string()
            .contains("https://pds.rehearsal.test"),
        "the DID document points at the deployment: {account}"
    );
    let bearer = format!("Bearer {token}");

    // The firehose, through its route, sees the post created through the Lambda.
    assert_eq!(
        spec.route("/xrpc/com.atproto.sync.subscribeRepos"),
        "firehose"
    );
    let ws_url = format!(
        "{}/xrpc/com.atproto.sync.subscribeRepos",
        through("/xrpc/com.atproto.sync.subscribeRepos").replacen("http", "ws", 1)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let post = call(
        "POST",
        "/xrpc/com.atproto.repo.createRecord".into(),
        json_headers(&bearer),
        Some(
            json!({"repo": did, "collection": "app.bsky.feed.post",
                   "record": {"text": "rehearsed", "createdAt": "2026-12-01T00:00:00.000Z"}})
            .to_string()
            .into_bytes(),
        ),
    )
    .await;
    assert_eq!(post.status, 200, "{}: {:?}", spec.source, post.json());
    let commit = post.json()["commit"]["cid"].as_str().unwrap().to_owned();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .unwrap_or_else(|_| panic!("{}: the commit reaches the firehose", spec.source))
            .unwrap()
            .unwrap();
        let Message::Binary(bytes) = msg else {
            continue;
        };
        let (_, rest) = cbor::decode_first(&bytes).unwrap();
        let body = cbor::decode(rest).unwrap();
        if body
            .get("commit")
            .and_then(Cbor::as_link)
            .map(|c| c.to_string())
            == Some(commit.clone())
        {
            break;
        }
    }

    // A 20 MB blob up and down through the bulk route (Lambda would refuse anything over 6 MB).
    let blob: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let upload = http
        .post(format!(
            "{}/xrpc/com.atproto.repo.uploadBlob",
            through("/xrpc/com.atproto.repo.uploadBlob")
        ))
        .bearer_auth(&token)
        .header("content-type", "application/octet-stream")
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        upload.status(),
        200,
        "{}: {}",
        spec.source,
        upload.text().await.unwrap()
    );
    let uploaded: Value = upload.json().await.unwrap();
    let cid = uploaded["blob"]["ref"]["$link"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = call(
        "POST",
        "/xrpc/com.atproto.repo.createRecord".into(),
        json_headers(&bearer),
        Some(
            json!({"repo": did, "collection": "com.example.rehearsal.file", "validate": false,
                   "record": {"file": uploaded["blob"]}})
            .to_string()
            .into_bytes(),
        ),
    )
    .await;
    assert_eq!(file.status, 200, "{}: {:?}", spec.source, file.json());
    let download = http
        .get(format!(
            "{}/xrpc/com.atproto.sync.getBlob",
            through("/xrpc/com.atproto.sync.getBlob")
        ))
        .query(&[("did", did.as_str()), ("cid", cid.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200, "{}", spec.source);
    assert_eq!(download.headers()["x-content-type-options"], "nosniff");
    let bytes = download.bytes().await.unwrap();
    assert_eq!(
        sha2::Sha256::digest(&bytes),
        sha2::Sha256::digest(&blob),
        "{}: the blob comes back whole",
        spec.source
    );

    // A 100 MB repo import through the bulk route. The account's DID is first moved to a key
    // this test holds (with the operator's rotation key, which the deployment generated), the
    // way a migrating account's repo arrives signed by its old PDS's key.
    let operator = {
        let Val::SecretArn(id) = &spec.lambda.env["PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX_ARN"]
        else {
            panic!("the operator's rotation key arrives by ARN")
        };
        Keypair::from_bytes(Algorithm::K256, &hex::decode(&world.secrets[id].1).unwrap()).unwrap()
    };
    let old_pds_key = Keypair::from_seed(Algorithm::K256, b"the rehearsal account's old key");
    let resolver = Arc::new(
        Resolver::new(IdentityConfig {
            plc_url: plc.clone(),
            allow_private_addresses: true,
            ..IdentityConfig::default()
        })
        .unwrap(),
    );
    let did_key = old_pds_key.public_key().to_did_key();
    let account_did = Did::parse(&did).unwrap();
    PlcClient::new(resolver)
        .update(&account_did, &operator, |data| {
            data.verification_methods.insert("atproto".into(), did_key);
        })
        .await
        .unwrap();
    let filler = "x".repeat(20_000);
    let records = (0..5_000).map(|n| {
        (
            format!("com.example.rehearsal.big/{n:06}"),
            cbor::map([
                ("$type", "com.example.rehearsal.big".into()),
                ("text", format!("{n:06}{filler}").into()),
            ]),
        )
    });
    let rev = TidClock::new(3).next(micros_of(chrono::Utc::now()) + 5_000_000);
    let big = Repo::create_with_records(account_did, &old_pds_key, rev, records).unwrap();
    let mut car = Vec::new();
    big.export_car(&mut car).unwrap();
    assert!(car.len() >= 100_000_000, "{} bytes", car.len());
    let import = http
        .post(format!(
            "{}/xrpc/com.atproto.repo.importRepo",
            through("/xrpc/com.atproto.repo.importRepo")
        ))
        .bearer_auth(&token)
        .header("content-type", "application/vnd.ipld.car")
        .body(car)
        .send()
        .await
        .unwrap();
    assert_eq!(
        import.status(),
        200,
        "{}: {}",
        spec.source,
        import.text().await.unwrap()
    );
    let latest = call(
        "GET",
        format!("/xrpc/com.atproto.sync.getLatestCommit?did={did}"),
        vec![],
        None,
    )
    .await;
    assert_eq!(
        latest.json()["cid"],
        big.head().to_string(),
        "{}: the imported commit is the head",
        spec.source
    );
    let record = call(
        "GET",
        format!(
            "/xrpc/com.atproto.repo.getRecord?repo={did}&collection=com.example.rehearsal.big&rkey=004999"
        ),
        vec![],
        None,
    )
    .await;
    assert_eq!(record.status, 200, "{}: {:?}", spec.source, record.json());
    assert!(
        record.json()["value"]["text"]
            .as_str()
            .unwrap()
            .starts_with("004999x")
    );

    // The whole-repo export is served by the firehose route (Lambda caps responses at 6 MB).
    let car = http
        .get(format!(
            "{}/xrpc/com.atproto.sync.getRepo",
            through("/xrpc/com.atproto.sync.getRepo")
        ))
        .query(&[("did", did.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(car.status(), 200, "{}", spec.source);

    // The relay was told to crawl this hostname.
    let mut told = false;
    for _ in 0..100 {
        if crawled
            .lock()
            .unwrap()
            .iter()
            .any(|b| b["hostname"] == HOSTNAME)
        {
            told = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        told,
        "{}: the relay gets requestCrawl for {HOSTNAME}",
        spec.source
    );
    assert!(invoker.init_errors().await.is_empty());
    drop(containers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cdk_stack_deploys_a_working_pds() {
    rehearse(cdk::spec(&cdk::template())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_terraform_module_deploys_a_working_pds() {
    let prefix = format!("rh{}-", hex::encode(rand::random::<[u8; 4]>()));
    rehearse(terraform_spec(&prefix)).await;
}

/// The name each secret plays, by the variable that carries it to the Lambda or a container.
fn secret_roles(spec: &Spec) -> BTreeMap<String, String> {
    let mut roles = BTreeMap::new();
    for (k, v) in &spec.lambda.env {
        if let Val::SecretArn(id) = v {
            roles.insert(id.clone(), k.trim_end_matches("_ARN").to_owned());
        }
    }
    roles
}

#[test]
fn the_cdk_stack_and_the_terraform_module_agree_on_what_matters() {
    let cdk = cdk::spec(&cdk::template());
    let tf = terraform_spec("arroba-");
    // Tables: CDK lets CloudFormation name them (ARROBA_TABLE_NAMES), Terraform names them by
    // prefix (ARROBA_TABLE_PREFIX; Terraform never rolls back a failed apply, so a fixed name
    // cannot block the next one). Everything else is the same, name by name.
    let tables = |k: &str| matches!(k, "ARROBA_TABLE_NAMES" | "ARROBA_TABLE_PREFIX");
    let names = |c: &spec::Component| -> Vec<String> {
        c.env.keys().filter(|k| !tables(k)).cloned().collect()
    };
    let lits = |c: &spec::Component| -> BTreeMap<String, Option<String>> {
        c.env
            .iter()
            .filter(|(k, v)| !tables(k) && !matches!(v, Val::SecretArn(_) | Val::Concat(_)))
            .map(|(k, v)| (k.clone(), v.lit().map(str::to_owned)))
            .collect()
    };
    assert_eq!(
        names(&cdk.lambda),
        names(&tf.lambda),
        "the Lambda's variables"
    );
    assert_eq!(lits(&cdk.lambda), lits(&tf.lambda), "the Lambda's values");
    assert_eq!(
        cdk.containers.keys().collect::<Vec<_>>(),
        tf.containers.keys().collect::<Vec<_>>()
    );
    for (name, c) in &cdk.containers {
        let t = &tf.containers[name];
        assert_eq!(names(c), names(t), "{name}'s variables");
        assert_eq!(lits(c), lits(t), "{name}'s values");
        assert_eq!(c.command, t.command, "{name}'s command");
        assert_eq!(c.port, t.port, "{name}'s port");
        assert_eq!(
            c.secrets.keys().collect::<Vec<_>>(),
            t.secrets.keys().collect::<Vec<_>>(),
            "{name}'s secrets"
        );
    }
    assert_eq!(cdk.routes, tf.routes, "routes");
    // Secrets: the same roles; every generated value is one the binaries accept.
    let (cdk_roles, tf_roles) = (secret_roles(&cdk), secret_roles(&tf));
    assert_eq!(
        cdk_roles
            .values()
            .collect::<std::collections::BTreeSet<_>>(),
        tf_roles.values().collect::<std::collections::BTreeSet<_>>()
    );
    for spec in [&cdk, &tf] {
        for (id, role) in secret_roles(spec) {
            for _ in 0..20 {
                let value = generate(&spec.secrets[&id]);
                match role.as_str() {
                    "ARROBA_KEY_ENCRYPTION_KEYS" => {
                        assert!(
                            KeySealer::from_config(&value).is_ok(),
                            "{}: {value}",
                            spec.source
                        )
                    }
                    "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX" => {
                        let bytes = hex::decode(&value).unwrap();
                        arroba::crypto::Keypair::from_bytes(
                            arroba::crypto::Algorithm::K256,
                            &bytes,
                        )
                        .unwrap();
                    }
                    "PDS_JWT_SECRET" => assert!(value.len() >= 32),
                    _ => assert!(!value.is_empty()),
                }
            }
        }
    }
    // Everything else that matters, less the one known difference: CDK builds and pushes the
    // image into its bootstrap repository, Terraform creates a repository for the operator to
    // push to, so only Terraform outputs one.
    let mut tf_facts = tf.facts.clone();
    let outputs = tf_facts.get_mut("outputs").unwrap();
    *outputs = outputs
        .split(' ')
        .filter(|o| *o != "firehose_repository_url")
        .collect::<Vec<_>>()
        .join(" ");
    let mut cdk_facts = cdk.facts.clone();
    let mut sorted: Vec<&str> = cdk_facts["outputs"].split(' ').collect();
    sorted.sort();
    let sorted = sorted.join(" ");
    cdk_facts.insert("outputs".into(), sorted);
    assert_eq!(cdk_facts, tf_facts);
}
