//! `arroba smoke URL`: checks a running PDS from outside, the way its users reach it — the
//! server describes itself, a handle subdomain reaches it (wildcard DNS and routing by Host),
//! the firehose upgrades to a WebSocket, blobs come back with their safety headers, and the
//! routes a deployment sends to its task answer CORS preflights. One line per check; exit code
//! 1 if any fails. `make smoke URL=…` runs it against a deployment.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};

/// Options for `smoke`.
#[derive(Debug, Args)]
pub(crate) struct SmokeArgs {
    /// The PDS's public URL (`https://pds.example.org`).
    url: String,
    /// A blob to fetch (`did/cid`), to check getBlob's headers on a real blob.
    #[arg(long)]
    blob: Option<String>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// One check's outcome.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

fn check(name: &'static str, result: anyhow::Result<String>) -> Check {
    match result {
        Ok(detail) => Check {
            name,
            ok: true,
            detail,
        },
        Err(e) => Check {
            name,
            ok: false,
            detail: format!("{e:#}"),
        },
    }
}

pub(crate) fn run(args: SmokeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let checks = runtime.block_on(smoke(&args))?;
    if args.json {
        let list: Vec<Value> = checks
            .iter()
            .map(|c| json!({"check": c.name, "ok": c.ok, "detail": c.detail}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for c in &checks {
            println!(
                "{} {:<22} {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            );
        }
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        anyhow::bail!("{failed} of {} checks failed", checks.len());
    }
    Ok(())
}

async fn smoke(args: &SmokeArgs) -> anyhow::Result<Vec<Check>> {
    let base = url::Url::parse(args.url.trim_end_matches('/'))
        .with_context(|| format!("{:?} is not a URL", args.url))?;
    let host = base.host_str().context("the URL has no host")?.to_owned();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("arroba-smoke/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let xrpc = |nsid: &str| format!("{}/xrpc/{nsid}", base.as_str().trim_end_matches('/'));
    let described = describe(&client, &xrpc).await;
    // Handles live under the first handle domain the server announces (else the hostname).
    let domain = described
        .as_ref()
        .ok()
        .and_then(|(_, body)| body["availableUserDomains"][0].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!(".{host}"));
    let mut checks = vec![check("describeServer", described.map(|(line, _)| line))];
    checks.push(check(
        "handle subdomain",
        handle_subdomain(&base, &host, &domain).await,
    ));
    checks.push(check("firehose websocket", firehose(&xrpc).await));
    checks.push(check(
        "getBlob",
        blob(&client, &xrpc, args.blob.as_deref()).await,
    ));
    for (nsid, method) in [
        ("com.atproto.sync.subscribeRepos", "GET"),
        ("com.atproto.sync.getRepo", "GET"),
        ("com.atproto.sync.getBlob", "GET"),
        ("com.atproto.repo.uploadBlob", "POST"),
    ] {
        checks.push(check(
            "cors preflight",
            preflight(&client, &xrpc(nsid), method).await,
        ));
    }
    Ok(checks)
}

async fn describe(
    client: &reqwest::Client,
    xrpc: &impl Fn(&str) -> String,
) -> anyhow::Result<(String, Value)> {
    let resp = client
        .get(xrpc("com.atproto.server.describeServer"))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
    let body: Value = resp.json().await.context("not JSON")?;
    let did = body["did"].as_str().context("no did in the answer")?;
    let line = format!("{did}, handles under {}", body["availableUserDomains"]);
    Ok((line, body))
}

/// A random handle under the handle domain must reach the PDS and be told no such user (404
/// from us, not a DNS failure or another server's page).
async fn handle_subdomain(base: &url::Url, host: &str, domain: &str) -> anyhow::Result<String> {
    let name = format!("smoke-{}{domain}", hex::encode(rand::random::<[u8; 4]>()));
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(15));
    // A local URL (an address or localhost) has no wildcard DNS: send the name in Host to the
    // same address, which still checks the PDS routes by Host.
    let local = host == "localhost" || host.parse::<IpAddr>().is_ok();
    if local {
        let port = base.port_or_known_default().unwrap_or(80);
        let addr: SocketAddr = (host, port)
            .to_socket_addrs()?
            .next()
            .context("the host resolves to nothing")?;
        builder = builder.resolve(&name, addr);
    }
    let mut url = base.clone();
    url.set_host(Some(&name))?;
    url.set_path("/.well-known/atproto-did");
    let resp = builder.build()?.get(url.as_str()).send().await?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    anyhow::ensure!(
        status == 404 && body.contains("no user by that name"),
        "{name}: expected the PDS's 404, got {status} {body:.80}"
    );
    Ok(format!("{name} reaches the PDS"))
}

async fn firehose(xrpc: &impl Fn(&str) -> String) -> anyhow::Result<String> {
    let url = xrpc("com.atproto.sync.subscribeRepos").replacen("http", "ws", 1);
    let connect = tokio_tungstenite::connect_async(url.as_str());
    let (mut socket, response) = tokio::time::timeout(Duration::from_secs(15), connect)
        .await
        .context("no answer in 15 s")??;
    let status = response.status();
    let _ = socket.close(None).await;
    Ok(format!("{url} upgraded ({status})"))
}

async fn blob(
    client: &reqwest::Client,
    xrpc: &impl Fn(&str) -> String,
    blob: Option<&str>,
) -> anyhow::Result<String> {
    let (did, cid) = match blob {
        Some(b) => b.split_once('/').context("--blob is did/cid")?,
        // Without a blob: an unknown one must be an XRPC error from the PDS, not a gateway's.
        None => (
            "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa",
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
        ),
    };
    let resp = client
        .get(xrpc("com.atproto.sync.getBlob"))
        .query(&[("did", did), ("cid", cid)])
        .send()
        .await?;
    let status = resp.status();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    if blob.is_some() {
        anyhow::ensure!(status == 200, "status {status}");
        let (csp, nosniff) = (
            header("content-security-policy"),
            header("x-content-type-options"),
        );
        anyhow::ensure!(
            csp.contains("default-src 'none'") && nosniff == "nosniff",
            "missing safety headers (content-security-policy {csp:?}, x-content-type-options {nosniff:?})"
        );
        return Ok(format!(
            "{} bytes, {}",
            header("content-length"),
            header("content-type")
        ));
    }
    let body: Value = resp
        .json()
        .await
        .context("the answer is not an XRPC error")?;
    anyhow::ensure!(
        status.is_client_error() && body["error"].is_string(),
        "expected an XRPC error, got {status} {body}"
    );
    Ok(format!("an unknown blob is {status} {}", body["error"]))
}

async fn preflight(client: &reqwest::Client, url: &str, method: &str) -> anyhow::Result<String> {
    let resp = client
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await?;
    let status = resp.status();
    let allowed = resp
        .headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    anyhow::ensure!(
        status.is_success() && (allowed == "*" || allowed == "https://app.example"),
        "{url}: {status}, access-control-allow-origin {allowed:?}"
    );
    Ok(format!("{method} {url}"))
}
