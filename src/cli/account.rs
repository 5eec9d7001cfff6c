//! `arroba account migrate`: moves an account from one PDS to another (ours or any other) by the
//! flow atproto's account migration guide describes, as `goat account migrate` runs it.
//!
//! Every step first asks the servers whether it is already done, so running the command again
//! after an interruption (a network failure, the e-mailed PLC code still to come) picks up where
//! it stopped: an account already created on the new PDS is signed in to, a repo already
//! imported (same commit) is not sent again, only blobs still missing are copied, a DID document
//! already pointing at the new PDS is not signed again, and activation and deactivation are
//! idempotent. `--dry-run` checks both ends and changes nothing.

use std::io::IsTerminal;

use anyhow::Context;
use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::client::{Auth, XrpcClient};
use super::progress::Progress;

/// The `account` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AccountCommand {
    /// Move an account to another PDS: account, repo, blobs, preferences, DID document, then
    /// activate it there and deactivate it here. Run it again to resume.
    Migrate(MigrateArgs),
}

/// Options for `account migrate`.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// The PDS the account is on now.
    #[arg(long)]
    from: String,
    /// The PDS it moves to.
    #[arg(long)]
    to: String,
    /// The account's handle (or DID) on the old PDS.
    #[arg(long)]
    handle: String,
    /// Its password (else `ARROBA_PASSWORD`).
    #[arg(long, env = "ARROBA_PASSWORD", hide_env_values = true)]
    password: String,
    /// The handle on the new PDS (default: the current one).
    #[arg(long)]
    new_handle: Option<String>,
    /// The password on the new PDS (default: the current one).
    #[arg(long, hide_env_values = true, env = "ARROBA_NEW_PASSWORD")]
    new_password: Option<String>,
    /// The e-mail address on the new PDS (default: the current one).
    #[arg(long)]
    email: Option<String>,
    /// An invite code for the new PDS, if it asks for one.
    #[arg(long)]
    invite_code: Option<String>,
    /// The code the old PDS e-mailed for the PLC operation (without it, the command asks the
    /// old PDS to e-mail one and prompts for it, or stops so you can run it again with it).
    #[arg(long)]
    plc_token: Option<String>,
    /// Check both ends and print the plan; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cmd: AccountCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cmd {
        AccountCommand::Migrate(args) => {
            let json = args.json;
            let report = runtime.block_on(migrate(args))?;
            report.print(json)
        }
    }
}

/// What a run did, step by step.
#[derive(Debug, Default)]
struct Report {
    did: String,
    steps: Vec<(&'static str, String)>,
    /// The move finished.
    done: bool,
    /// A dry run found both ends ready.
    ready: bool,
}

impl Report {
    fn step(&mut self, name: &'static str, detail: impl Into<String>, json: bool) {
        let detail = detail.into();
        if !json {
            eprintln!("{name}: {detail}");
        }
        self.steps.push((name, detail));
    }

    fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            let steps: Vec<Value> = self
                .steps
                .iter()
                .map(|(s, d)| json!({"step": s, "detail": d}))
                .collect();
            let out = json!({"did": self.did, "complete": self.done, "ready": self.ready,
                "steps": steps});
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else if self.done {
            println!("{} has moved", self.did);
        } else if self.ready {
            println!("{} is ready to move", self.did);
        }
        Ok(())
    }
}

/// A signed-in account on one PDS.
struct Session {
    client: XrpcClient,
    access: String,
}

impl Session {
    fn auth(&self) -> Auth<'_> {
        Auth::Bearer(&self.access)
    }
}

async fn sign_in(
    client: XrpcClient,
    identifier: &str,
    password: &str,
) -> anyhow::Result<(Session, Value)> {
    let session = client
        .procedure(
            "com.atproto.server.createSession",
            Auth::None,
            Some(&json!({"identifier": identifier, "password": password})),
        )
        .await?;
    let access = session["accessJwt"]
        .as_str()
        .context("createSession gave no access token")?
        .to_owned();
    Ok((Session { client, access }, session))
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<Report> {
    let json = args.json;
    let mut report = Report::default();
    let from = XrpcClient::new(&args.from)?;
    let to = XrpcClient::new(&args.to)?;
    let (old, session) = sign_in(from, &args.handle, &args.password)
        .await
        .context("signing in to the old PDS")?;
    let did = session["did"]
        .as_str()
        .context("no DID in the session")?
        .to_owned();
    report.did = did.clone();
    let handle = args
        .new_handle
        .clone()
        .or_else(|| session["handle"].as_str().map(str::to_owned))
        .context("no handle")?;
    let email = args
        .email
        .clone()
        .or_else(|| session["email"].as_str().map(str::to_owned));
    let password = args.new_password.clone().unwrap_or(args.password.clone());
    let server = to
        .query("com.atproto.server.describeServer", Auth::None, &[])
        .await
        .context("describing the new PDS")?;
    let service_did = server["did"]
        .as_str()
        .context("the new PDS names no DID")?
        .to_owned();
    report.step(
        "old",
        format!("{did} signed in on {}", old.client.url()),
        json,
    );
    report.step("new", format!("{} is {service_did}", to.url()), json);
    // A deactivated repo (a move already finished) may not say its head; the export still works.
    let head_cid = match old
        .client
        .query(
            "com.atproto.sync.getLatestCommit",
            Auth::None,
            &[("did", &did)],
        )
        .await
    {
        Ok(head) => {
            let cid = head["cid"].as_str().unwrap_or_default().to_owned();
            let rev = head["rev"].as_str().unwrap_or("?");
            report.step("repo", format!("head {cid} rev {rev}"), json);
            cid
        }
        Err(e) => {
            report.step(
                "repo",
                format!("the old PDS does not say its head ({e:#})"),
                json,
            );
            String::new()
        }
    };

    if args.dry_run {
        if server["inviteCodeRequired"] == true && args.invite_code.is_none() {
            anyhow::bail!("the new PDS requires an invite code (--invite-code)");
        }
        let taken = to
            .query(
                "com.atproto.identity.resolveHandle",
                Auth::None,
                &[("handle", &handle)],
            )
            .await
            .ok()
            .and_then(|r| r["did"].as_str().map(str::to_owned));
        match taken {
            Some(owner) if owner != did => {
                anyhow::bail!("{handle} is taken on the new PDS by {owner} (--new-handle)")
            }
            _ => report.step(
                "plan",
                format!(
                    "create {handle} on the new PDS, copy the repo, blobs and preferences, move \
                     the DID document, activate there, deactivate here"
                ),
                json,
            ),
        }
        report.ready = true;
        return Ok(report);
    }

    // 1. The account on the new PDS: created with the DID, or signed in to if a run before
    // created it.
    let new = match sign_in(to.clone(), &did, &password).await {
        Ok((new, _)) => {
            report.step("account", "already on the new PDS; signed in", json);
            new
        }
        Err(_) => {
            let token = old
                .client
                .query(
                    "com.atproto.server.getServiceAuth",
                    old.auth(),
                    &[
                        ("aud", &service_did),
                        ("lxm", "com.atproto.server.createAccount"),
                    ],
                )
                .await
                .context("asking the old PDS for a service-auth token")?;
            let token = token["token"].as_str().context("no token")?;
            let mut input = json!({"did": did, "handle": handle, "password": password});
            if let Some(email) = &email {
                input["email"] = json!(email);
            }
            if let Some(code) = &args.invite_code {
                input["inviteCode"] = json!(code);
            }
            let created = to
                .procedure(
                    "com.atproto.server.createAccount",
                    Auth::Bearer(token),
                    Some(&input),
                )
                .await
                .context("creating the account on the new PDS")?;
            report.step("account", format!("created as {handle}"), json);
            Session {
                client: to.clone(),
                access: created["accessJwt"]
                    .as_str()
                    .context("no access token")?
                    .to_owned(),
            }
        }
    };
    let status = new
        .client
        .query("com.atproto.server.checkAccountStatus", new.auth(), &[])
        .await?;

    if status["activated"] != true {
        // 2. The repo, unless the new PDS already has this commit.
        if status["repoCommit"].as_str() == Some(head_cid.as_str()) {
            report.step("import", "the new PDS already has this commit", json);
        } else {
            let bytes = copy_repo(&old, &new, &did, json).await?;
            report.step("import", format!("{bytes} bytes imported"), json);
        }
        // 3. The blobs the new PDS is missing, then the preferences.
        let copied = copy_missing_blobs(&old, &new, &did, json).await?;
        report.step("blobs", format!("{copied} copied"), json);
        // A PDS without an AppView configured may not serve preferences at all.
        match old
            .client
            .query("app.bsky.actor.getPreferences", old.auth(), &[])
            .await
        {
            Ok(prefs) if prefs["preferences"].as_array().is_none_or(Vec::is_empty) => {
                report.step("preferences", "none to copy", json);
            }
            Ok(prefs) => {
                new.client
                    .procedure("app.bsky.actor.putPreferences", new.auth(), Some(&prefs))
                    .await
                    .context("writing the preferences")?;
                let count = prefs["preferences"].as_array().map_or(0, Vec::len);
                report.step("preferences", format!("{count} copied"), json);
            }
            Err(e) => report.step(
                "preferences",
                format!("not copied: the old PDS does not serve them ({e:#})"),
                json,
            ),
        }
    }

    // 4. The DID document.
    let valid = new
        .client
        .query("com.atproto.server.checkAccountStatus", new.auth(), &[])
        .await?["validDid"]
        == true;
    if valid {
        report.step(
            "identity",
            "the DID document already names the new PDS",
            json,
        );
    } else if !did.starts_with("did:plc:") {
        anyhow::bail!(
            "{did} is not a did:plc: change its DID document by hand (the new PDS's \
             getRecommendedDidCredentials says what it must name), then run this again"
        );
    } else {
        let token = match &args.plc_token {
            Some(t) => t.clone(),
            None => request_plc_token(&old).await?,
        };
        let credentials = new
            .client
            .query(
                "com.atproto.identity.getRecommendedDidCredentials",
                new.auth(),
                &[],
            )
            .await?;
        let mut input = credentials.clone();
        input["token"] = json!(token);
        let signed = old
            .client
            .procedure(
                "com.atproto.identity.signPlcOperation",
                old.auth(),
                Some(&input),
            )
            .await
            .context("the old PDS signing the PLC operation")?;
        new.client
            .procedure(
                "com.atproto.identity.submitPlcOperation",
                new.auth(),
                Some(&json!({"operation": signed["operation"]})),
            )
            .await
            .context("the new PDS submitting the PLC operation")?;
        report.step("identity", "the DID document now names the new PDS", json);
    }

    // 5. Live there, retired here.
    new.client
        .procedure("com.atproto.server.activateAccount", new.auth(), None)
        .await
        .context("activating the account on the new PDS")?;
    report.step("activate", "active on the new PDS", json);
    match old
        .client
        .procedure(
            "com.atproto.server.deactivateAccount",
            old.auth(),
            Some(&json!({})),
        )
        .await
    {
        Ok(_) => report.step("deactivate", "deactivated on the old PDS", json),
        Err(e) => report.step(
            "deactivate",
            format!("the old PDS refused ({e:#}); deactivate it there"),
            json,
        ),
    }
    report.done = true;
    Ok(report)
}

/// Asks the old PDS to e-mail the PLC code and reads it from the terminal, or stops with
/// instructions when there is none to ask.
async fn request_plc_token(old: &Session) -> anyhow::Result<String> {
    old.client
        .procedure(
            "com.atproto.identity.requestPlcOperationSignature",
            old.auth(),
            None,
        )
        .await
        .context("asking the old PDS to e-mail the PLC code")?;
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "the old PDS e-mailed a code to confirm the move: run this again with --plc-token CODE"
        );
    }
    eprint!("the old PDS e-mailed a code to confirm the move; enter it: ");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the code")?;
    let code = line.trim().to_owned();
    if code.is_empty() {
        anyhow::bail!("no code entered");
    }
    Ok(code)
}

/// Streams the old PDS's export of `did` into a temporary file, then into the new PDS's
/// `importRepo`; returns the CAR's size.
async fn copy_repo(old: &Session, new: &Session, did: &str, quiet: bool) -> anyhow::Result<u64> {
    let response = old
        .client
        .query_raw("com.atproto.sync.getRepo", Auth::None, &[("did", did)])
        .await
        .context("exporting the repo")?;
    let progress = Progress::bytes("export", response.content_length(), quiet);
    let spool = tempfile::NamedTempFile::new().context("creating a temporary file")?;
    let mut file = tokio::fs::File::create(spool.path()).await?;
    let mut stream = response.bytes_stream();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("reading the export")?;
        file.write_all(&chunk).await?;
        size += chunk.len() as u64;
        progress.advance(chunk.len() as u64);
    }
    file.flush().await?;
    progress.finish();
    let file = tokio::fs::File::open(spool.path()).await?;
    let progress = Progress::bytes("import", Some(size), quiet);
    let counted = progress.clone();
    let body = tokio_util::io::ReaderStream::new(file).map(move |chunk| {
        if let Ok(c) = &chunk {
            counted.advance(c.len() as u64);
        }
        chunk
    });
    new.client
        .procedure_raw(
            "com.atproto.repo.importRepo",
            new.auth(),
            "application/vnd.ipld.car",
            reqwest::Body::wrap_stream(body),
        )
        .await
        .context("importing the repo")?;
    progress.finish();
    Ok(size)
}

/// Copies every blob the new PDS reports missing from the old one; returns how many.
async fn copy_missing_blobs(
    old: &Session,
    new: &Session,
    did: &str,
    quiet: bool,
) -> anyhow::Result<usize> {
    let mut missing: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![("limit", "500")];
        if let Some(c) = &cursor {
            params.push(("cursor", c));
        }
        let page = new
            .client
            .query("com.atproto.repo.listMissingBlobs", new.auth(), &params)
            .await
            .context("listing the missing blobs")?;
        let blobs = page["blobs"].as_array().cloned().unwrap_or_default();
        missing.extend(
            blobs
                .iter()
                .filter_map(|b| b["cid"].as_str().map(str::to_owned)),
        );
        cursor = page["cursor"].as_str().map(str::to_owned);
        if cursor.is_none() || blobs.is_empty() {
            break;
        }
    }
    let progress = Progress::count("blobs", missing.len() as u64, quiet);
    let copies = futures::stream::iter(missing.iter().map(|cid| {
        let progress = progress.clone();
        async move {
            copy_blob(old, new, did, cid).await?;
            progress.advance(1);
            anyhow::Ok(())
        }
    }))
    .buffer_unordered(4)
    .collect::<Vec<_>>()
    .await;
    progress.finish();
    for result in copies {
        result?;
    }
    Ok(missing.len())
}

async fn copy_blob(old: &Session, new: &Session, did: &str, cid: &str) -> anyhow::Result<()> {
    let response = old
        .client
        .query_raw(
            "com.atproto.sync.getBlob",
            Auth::None,
            &[("did", did), ("cid", cid)],
        )
        .await
        .with_context(|| format!("fetching blob {cid}"))?;
    let mime = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let bytes = response
        .bytes()
        .await
        .with_context(|| format!("fetching blob {cid}"))?;
    new.client
        .procedure_raw(
            "com.atproto.repo.uploadBlob",
            new.auth(),
            &mime,
            bytes.into(),
        )
        .await
        .with_context(|| format!("uploading blob {cid}"))?;
    Ok(())
}
