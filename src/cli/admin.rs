//! `arroba admin`: the operator's everyday verbs, as the reference PDS's `pdsadmin` offers them,
//! spoken over XRPC with the admin password to any PDS (ours or the reference): list, create,
//! inspect, delete, take down and restore accounts, reset a password, make an invite code, and
//! ask relays to crawl. Human output by default, `--json` for scripts.

use std::io::IsTerminal;

use anyhow::Context;
use base64::Engine;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::{Auth, XrpcClient};

/// Options every `admin` verb takes.
#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// The PDS (`https://pds.example.org`; else `ARROBA_PDS_URL`).
    #[arg(long, env = "ARROBA_PDS_URL", global = true)]
    url: Option<String>,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Accounts.
    #[command(subcommand)]
    Account(AccountVerb),
    /// Make an invite code good for one account.
    CreateInviteCode,
    /// Ask relays to crawl this PDS (default: bsky.network).
    RequestCrawl {
        /// Relay hosts (`bsky.network`, `http://127.0.0.1:2470`), comma separated.
        relays: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AccountVerb {
    /// Every account: handle, e-mail, DID.
    List,
    /// Create an account with a generated password (printed once).
    Create {
        /// Its e-mail address.
        email: String,
        /// Its handle.
        handle: String,
    },
    /// One account's details.
    Info {
        /// Its DID or handle.
        account: String,
    },
    /// Delete an account for good.
    Delete {
        /// Its DID.
        did: String,
    },
    /// Take an account down (its repo is no longer served or written).
    Takedown {
        /// Its DID.
        did: String,
    },
    /// Reverse a takedown.
    Untakedown {
        /// Its DID.
        did: String,
    },
    /// Give an account a new generated password (printed once).
    ResetPassword {
        /// Its DID.
        did: String,
    },
}

pub(crate) fn run(args: AdminArgs) -> anyhow::Result<()> {
    let url = args
        .url
        .clone()
        .context("name the PDS with --url or ARROBA_PDS_URL")?;
    let pds = XrpcClient::new(&url)?;
    let password = admin_password()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let out = runtime.block_on(admin(&pds, &password, &args.command))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out.json)?);
    } else {
        print!("{}", out.text);
    }
    Ok(())
}

/// The admin password: `PDS_ADMIN_PASSWORD`, else asked for on the terminal.
fn admin_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("PDS_ADMIN_PASSWORD") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("set PDS_ADMIN_PASSWORD (or run on a terminal to be asked for it)");
    }
    rpassword::prompt_password("admin password: ").context("reading the admin password")
}

/// What a verb prints: lines for people, a value for scripts.
struct Output {
    text: String,
    json: Value,
}

fn generated_password() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>())
}

async fn admin(pds: &XrpcClient, password: &str, command: &AdminCommand) -> anyhow::Result<Output> {
    let admin = Auth::Admin(password);
    Ok(match command {
        AdminCommand::Account(verb) => account(pds, admin, verb).await?,
        AdminCommand::CreateInviteCode => {
            let code = pds
                .procedure(
                    "com.atproto.server.createInviteCode",
                    admin,
                    Some(&json!({"useCount": 1})),
                )
                .await?;
            let code = code["code"].as_str().context("no code in the answer")?;
            Output {
                text: format!("{code}\n"),
                json: json!({"code": code}),
            }
        }
        AdminCommand::RequestCrawl { relays } => {
            let hostname = url::Url::parse(pds.url())?
                .host_str()
                .context("the PDS URL names no host")?
                .to_owned();
            let relays = relays.as_deref().unwrap_or("bsky.network");
            let mut text = String::new();
            let mut asked = Vec::new();
            for relay in relays.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                let url = match relay.contains("://") {
                    true => relay.to_owned(),
                    false => format!("https://{relay}"),
                };
                XrpcClient::new(&url)?
                    .procedure(
                        "com.atproto.sync.requestCrawl",
                        Auth::None,
                        Some(&json!({"hostname": hostname})),
                    )
                    .await
                    .with_context(|| format!("asking {relay} to crawl {hostname}"))?;
                text.push_str(&format!("{relay}: asked to crawl {hostname}\n"));
                asked.push(relay.to_owned());
            }
            Output {
                text,
                json: json!({"hostname": hostname, "relays": asked}),
            }
        }
    })
}

async fn account(pds: &XrpcClient, admin: Auth<'_>, verb: &AccountVerb) -> anyhow::Result<Output> {
    let repo_ref = |did: &str| json!({"$type": "com.atproto.admin.defs#repoRef", "did": did});
    Ok(match verb {
        AccountVerb::List => {
            let mut dids = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut params = vec![("limit", "1000")];
                if let Some(c) = &cursor {
                    params.push(("cursor", c));
                }
                let page = pds
                    .query("com.atproto.sync.listRepos", Auth::None, &params)
                    .await?;
                let repos = page["repos"].as_array().cloned().unwrap_or_default();
                // listRepos names deleted accounts too (with their status); they are gone.
                dids.extend(
                    repos
                        .iter()
                        .filter(|r| r["status"] != "deleted")
                        .filter_map(|r| r["did"].as_str().map(str::to_owned)),
                );
                cursor = page["cursor"].as_str().map(str::to_owned);
                if cursor.is_none() || repos.is_empty() {
                    break;
                }
            }
            let mut accounts = Vec::new();
            for did in &dids {
                accounts.push(
                    pds.query("com.atproto.admin.getAccountInfo", admin, &[("did", did)])
                        .await?,
                );
            }
            let mut text = String::from("handle\temail\tdid\n");
            for a in &accounts {
                text.push_str(&format!(
                    "{}\t{}\t{}\n",
                    a["handle"].as_str().unwrap_or("-"),
                    a["email"].as_str().unwrap_or("-"),
                    a["did"].as_str().unwrap_or("-"),
                ));
            }
            Output {
                text,
                json: json!({"accounts": accounts}),
            }
        }
        AccountVerb::Create { email, handle } => {
            // As pdsadmin does: an invite code first, in case the PDS requires one.
            let code = pds
                .procedure(
                    "com.atproto.server.createInviteCode",
                    admin,
                    Some(&json!({"useCount": 1})),
                )
                .await?;
            let password = generated_password();
            let created = pds
                .procedure(
                    "com.atproto.server.createAccount",
                    Auth::None,
                    Some(
                        &json!({"email": email, "handle": handle, "password": password,
                        "inviteCode": code["code"]}),
                    ),
                )
                .await?;
            let did = created["did"].as_str().context("no DID in the answer")?;
            Output {
                text: format!(
                    "account created\nhandle   {handle}\ndid      {did}\npassword {password}\n\
                     (the password is shown once)\n"
                ),
                json: json!({"handle": handle, "did": did, "password": password}),
            }
        }
        AccountVerb::Info { account } => {
            let did = if account.starts_with("did:") {
                account.clone()
            } else {
                pds.query(
                    "com.atproto.identity.resolveHandle",
                    Auth::None,
                    &[("handle", account)],
                )
                .await?["did"]
                    .as_str()
                    .context("no DID for that handle")?
                    .to_owned()
            };
            let info = pds
                .query("com.atproto.admin.getAccountInfo", admin, &[("did", &did)])
                .await?;
            let status = pds
                .query(
                    "com.atproto.admin.getSubjectStatus",
                    admin,
                    &[("did", &did)],
                )
                .await
                .ok();
            let taken_down = status
                .as_ref()
                .is_some_and(|s| s["takedown"]["applied"] == true);
            let mut text = String::new();
            for (label, key) in [
                ("did", "did"),
                ("handle", "handle"),
                ("email", "email"),
                ("created", "indexedAt"),
            ] {
                text.push_str(&format!(
                    "{label:<10}{}\n",
                    info[key].as_str().unwrap_or("-")
                ));
            }
            text.push_str(&format!(
                "{:<10}{}\n",
                "confirmed",
                info["emailConfirmedAt"].as_str().unwrap_or("no")
            ));
            text.push_str(&format!("{:<10}{}\n", "takedown", taken_down));
            let mut json = info.clone();
            json["takedown"] = json!(taken_down);
            Output { text, json }
        }
        AccountVerb::Delete { did } => {
            pds.procedure(
                "com.atproto.admin.deleteAccount",
                admin,
                Some(&json!({"did": did})),
            )
            .await?;
            Output {
                text: format!("{did} deleted\n"),
                json: json!({"did": did, "deleted": true}),
            }
        }
        AccountVerb::Takedown { did } | AccountVerb::Untakedown { did } => {
            let applied = matches!(verb, AccountVerb::Takedown { .. });
            let reference = chrono::Utc::now().timestamp().to_string();
            pds.procedure(
                "com.atproto.admin.updateSubjectStatus",
                admin,
                Some(&json!({"subject": repo_ref(did),
                    "takedown": {"applied": applied, "ref": reference}})),
            )
            .await?;
            let done = if applied { "taken down" } else { "restored" };
            Output {
                text: format!("{did} {done}\n"),
                json: json!({"did": did, "takedown": applied}),
            }
        }
        AccountVerb::ResetPassword { did } => {
            let password = generated_password();
            pds.procedure(
                "com.atproto.admin.updateAccountPassword",
                admin,
                Some(&json!({"did": did, "password": password})),
            )
            .await?;
            Output {
                text: format!("new password for {did}: {password}\n(shown once)\n"),
                json: json!({"did": did, "password": password}),
            }
        }
    })
}
