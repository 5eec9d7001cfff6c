//! `arroba bench`: load tools any operator can point at a PDS (ours or another).
//!
//! `createrecord` creates `--repos` accounts, then `--connections` workers each write posts with
//! `createRecord` as fast as the PDS answers for `--seconds`, over kept-alive HTTP/1.1
//! connections, and it prints records per second, latency percentiles and failures by status.
//! `getrepo` exports one repo (`--did`, or a new account it fills with `--records` posts)
//! `--requests` times in a row, reading each CAR as it streams in without keeping it, and
//! prints the size, the time of each export and MB/s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::{Auth, XrpcClient};

/// The `bench` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Write posts with createRecord from many connections at once.
    Createrecord(CreateRecordArgs),
    /// Export one repo with getRepo, again and again, and time it.
    Getrepo(GetRepoArgs),
}

/// Options for `bench getrepo`.
#[derive(Debug, Args)]
pub(crate) struct GetRepoArgs {
    /// The PDS.
    #[arg(long)]
    url: String,
    /// The repo to export; without it, a new account is made and filled with `--records`.
    #[arg(long)]
    did: Option<String>,
    /// Posts to fill the new account with (200 per applyWrites call).
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    /// Exports timed, one after another over one kept-alive connection (after one that is not
    /// counted, which warms the server's caches).
    #[arg(long, default_value_t = 20)]
    requests: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Options for `bench createrecord`.
#[derive(Debug, Args)]
pub(crate) struct CreateRecordArgs {
    /// The PDS.
    #[arg(long)]
    url: String,
    /// Accounts written to (created for the run, under the PDS's first handle domain).
    #[arg(long, default_value_t = 16)]
    repos: usize,
    /// Concurrent connections; worker `i` writes to account `i mod repos`.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// How long to write, in seconds (after a one-second warm-up that is not counted).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cmd {
        BenchCommand::Createrecord(args) => {
            let result = runtime.block_on(create_record(&args))?;
            result.print(args.json)
        }
        BenchCommand::Getrepo(args) => {
            let result = runtime.block_on(get_repo(&args))?;
            result.print(args.json)
        }
    }
}

/// What `bench getrepo` measured.
#[derive(Debug)]
struct Exports {
    did: String,
    /// The CAR's size in bytes (the same every time, or the run fails).
    bytes: u64,
    /// The first (uncounted) export's time, in microseconds.
    first: u64,
    /// Each counted export's time, in microseconds, sorted.
    times: Vec<u64>,
}

impl Exports {
    fn percentile(&self, p: f64) -> f64 {
        let rank = ((p / 100.0) * self.times.len() as f64).ceil() as usize;
        self.times[rank.clamp(1, self.times.len()) - 1] as f64 / 1000.0
    }

    fn print(&self, json: bool) -> anyhow::Result<()> {
        let (min, p50, p90) = (
            self.percentile(0.0),
            self.percentile(50.0),
            self.percentile(90.0),
        );
        let mb_per_s = |ms: f64| self.bytes as f64 / 1e6 / (ms / 1e3);
        if json {
            let out = json!({
                "did": self.did, "bytes": self.bytes, "requests": self.times.len(),
                "firstMs": self.first as f64 / 1000.0, "minMs": min, "p50Ms": p50, "p90Ms": p90,
                "p50MBPerSecond": mb_per_s(p50), "bestMBPerSecond": mb_per_s(min),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            println!(
                "getRepo of {}: {:.2} MB, {} exports; first (uncounted) {:.1} ms",
                self.did,
                self.bytes as f64 / 1e6,
                self.times.len(),
                self.first as f64 / 1000.0
            );
            println!(
                "min {min:.1} ms ({:.0} MB/s), p50 {p50:.1} ms ({:.0} MB/s), p90 {p90:.1} ms",
                mb_per_s(min),
                mb_per_s(p50)
            );
        }
        Ok(())
    }
}

async fn get_repo(args: &GetRepoArgs) -> anyhow::Result<Exports> {
    if args.requests == 0 {
        anyhow::bail!("--requests must be at least 1");
    }
    let pds = XrpcClient::new(&args.url)?;
    let did = match &args.did {
        Some(did) => did.clone(),
        None => fill_account(&pds, args.records).await?,
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let url = format!("{}/xrpc/com.atproto.sync.getRepo", pds.url());
    let mut first = None;
    let mut bytes = None;
    let mut times = Vec::with_capacity(args.requests);
    for _ in 0..=args.requests {
        let sent = Instant::now();
        let mut response = http.get(&url).query(&[("did", &did)]).send().await?;
        if !response.status().is_success() {
            let status = response.status();
            anyhow::bail!("getRepo answered {status}: {}", response.text().await?);
        }
        let mut size = 0u64;
        while let Some(chunk) = response.chunk().await? {
            size += chunk.len() as u64;
        }
        let took = sent.elapsed().as_micros() as u64;
        if *bytes.get_or_insert(size) != size {
            anyhow::bail!("the repo changed during the run ({size} bytes, not {bytes:?})");
        }
        match first {
            None => first = Some(took),
            Some(_) => times.push(took),
        }
    }
    times.sort_unstable();
    Ok(Exports {
        did,
        bytes: bytes.unwrap_or(0),
        first: first.unwrap_or(0),
        times,
    })
}

/// Makes one account and writes `records` posts to it, 200 per `applyWrites`; returns its DID.
async fn fill_account(pds: &XrpcClient, records: usize) -> anyhow::Result<String> {
    let target = accounts(pds, 1)
        .await?
        .pop()
        .context("no account was made")?;
    let mut written = 0;
    while written < records {
        let batch = (records - written).min(200);
        let writes: Vec<Value> = (written..written + batch)
            .map(|n| {
                json!({"$type": "com.atproto.repo.applyWrites#create",
                    "collection": "app.bsky.feed.post",
                    "value": {"$type": "app.bsky.feed.post",
                        "text": format!("post {n} with some ordinary text in it"),
                        "createdAt": "2026-12-01T00:00:00.000Z"}})
            })
            .collect();
        pds.procedure(
            "com.atproto.repo.applyWrites",
            Auth::Bearer(&target.token),
            Some(&json!({"repo": target.did, "writes": writes})),
        )
        .await
        .context("filling the benchmark account")?;
        written += batch;
    }
    Ok(target.did)
}

/// What a run measured.
#[derive(Debug)]
struct Measured {
    seconds: f64,
    connections: usize,
    repos: usize,
    /// Latency of each successful write, in microseconds, sorted.
    latencies: Vec<u64>,
    /// Failed writes by HTTP status (0: no answer).
    failures: BTreeMap<u16, u64>,
}

impl Measured {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1] as f64 / 1000.0
    }

    fn print(&self, json: bool) -> anyhow::Result<()> {
        let rate = self.latencies.len() as f64 / self.seconds;
        let failed: u64 = self.failures.values().sum();
        if json {
            let out = json!({
                "records": self.latencies.len(), "seconds": self.seconds,
                "recordsPerSecond": rate, "connections": self.connections, "repos": self.repos,
                "p50Ms": self.percentile(50.0), "p90Ms": self.percentile(90.0),
                "p99Ms": self.percentile(99.0), "maxMs": self.percentile(100.0),
                "failed": failed,
                "failures": self.failures.iter().map(|(s, n)| (s.to_string(), *n)).collect::<BTreeMap<_, _>>(),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            println!(
                "{} records in {:.1} s from {} connections over {} repos: {rate:.0} records/s",
                self.latencies.len(),
                self.seconds,
                self.connections,
                self.repos
            );
            println!(
                "latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                self.percentile(50.0),
                self.percentile(90.0),
                self.percentile(99.0),
                self.percentile(100.0)
            );
            let by_status: Vec<String> = self
                .failures
                .iter()
                .map(|(s, n)| match s {
                    0 => format!("{n} without an answer"),
                    s => format!("{n} × {s}"),
                })
                .collect();
            println!(
                "failed {failed}{}",
                match by_status.is_empty() {
                    true => String::new(),
                    false => format!(" ({})", by_status.join(", ")),
                }
            );
        }
        Ok(())
    }
}

/// One account to write to: its DID and access token.
struct Target {
    did: String,
    token: String,
}

async fn create_record(args: &CreateRecordArgs) -> anyhow::Result<Measured> {
    if args.repos == 0 || args.connections == 0 || args.seconds == 0 {
        anyhow::bail!("--repos, --connections and --seconds must be at least 1");
    }
    let pds = XrpcClient::new(&args.url)?;
    let targets = accounts(&pds, args.repos).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!("{}/xrpc/com.atproto.repo.createRecord", pds.url());
    let start = Instant::now();
    let warm = start + Duration::from_secs(1);
    let end = warm + Duration::from_secs(args.seconds);
    let workers: Vec<_> = (0..args.connections)
        .map(|i| {
            let http = http.clone();
            let url = url.clone();
            let target = &targets[i % targets.len()];
            let (did, token) = (target.did.clone(), target.token.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures: BTreeMap<u16, u64> = BTreeMap::new();
                let mut n = 0u64;
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        return (latencies, failures);
                    }
                    n += 1;
                    let body = json!({"repo": did, "collection": "app.bsky.feed.post",
                        "record": {"$type": "app.bsky.feed.post",
                            "text": format!("load {i} {n}"),
                            "createdAt": "2026-12-01T00:00:00.000Z"}});
                    let status = match http.post(&url).bearer_auth(&token).json(&body).send().await
                    {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            // Read the body so the connection is reused.
                            let _ = response.bytes().await;
                            status
                        }
                        Err(_) => 0,
                    };
                    if sent < warm {
                        continue;
                    }
                    match status {
                        200 => latencies.push(sent.elapsed().as_micros() as u64),
                        s => *failures.entry(s).or_default() += 1,
                    }
                }
            })
        })
        .collect();
    let mut measured = Measured {
        seconds: 0.0,
        connections: args.connections,
        repos: args.repos,
        latencies: Vec::new(),
        failures: BTreeMap::new(),
    };
    for worker in workers {
        let (latencies, failures) = worker.await.context("a worker failed")?;
        measured.latencies.extend(latencies);
        for (s, n) in failures {
            *measured.failures.entry(s).or_default() += n;
        }
    }
    // Until the last answer: a request sent just before the end is counted whole.
    measured.seconds = warm.elapsed().as_secs_f64();
    measured.latencies.sort_unstable();
    Ok(measured)
}

/// Creates `count` accounts for the run under the PDS's first handle domain (with invite codes
/// from the admin password in `PDS_ADMIN_PASSWORD` when the PDS requires them).
async fn accounts(pds: &XrpcClient, count: usize) -> anyhow::Result<Vec<Target>> {
    let server = pds
        .query("com.atproto.server.describeServer", Auth::None, &[])
        .await?;
    let domain = server["availableUserDomains"][0]
        .as_str()
        .context("the PDS names no handle domain")?
        .to_owned();
    let admin = std::env::var("PDS_ADMIN_PASSWORD").ok();
    let run = hex::encode(rand::random::<[u8; 3]>());
    let mut targets = Vec::new();
    for i in 0..count {
        let password = hex::encode(rand::random::<[u8; 12]>());
        let mut input = json!({"handle": format!("bench{run}{i}{domain}"),
            "email": format!("bench{run}{i}@example.com"), "password": password});
        if server["inviteCodeRequired"] == true {
            let admin = admin
                .as_deref()
                .context("the PDS requires invite codes: set PDS_ADMIN_PASSWORD")?;
            let code: Value = pds
                .procedure(
                    "com.atproto.server.createInviteCode",
                    Auth::Admin(admin),
                    Some(&json!({"useCount": 1})),
                )
                .await?;
            input["inviteCode"] = code["code"].clone();
        }
        let created = pds
            .procedure("com.atproto.server.createAccount", Auth::None, Some(&input))
            .await
            .context("creating a benchmark account")?;
        targets.push(Target {
            did: created["did"].as_str().context("no DID")?.to_owned(),
            token: created["accessJwt"]
                .as_str()
                .context("no token")?
                .to_owned(),
        });
    }
    Ok(targets)
}
