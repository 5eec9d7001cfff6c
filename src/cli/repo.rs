//! `arroba repo …`: the repo tool for migrations and debugging.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;

use super::progress::Progress;
use crate::car::read_car;
use crate::cbor;
use crate::crypto::{Algorithm, Keypair, PublicKey};
use crate::mst::diff;
use crate::repo::Repo;
use crate::repo::verify::verify_repo_car;
use crate::syntax::Did;
use crate::tid::{TidClock, micros_of};

/// The `repo` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum RepoCommand {
    /// Print a repo's DID, rev, commit CID, data root, and record and block counts.
    Inspect {
        /// The repo CAR file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List every record's path and CID, sorted by path.
    Ls {
        /// The repo CAR file.
        file: PathBuf,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Print one record as JSON (DAG-JSON: links as {"$link"}, bytes as {"$bytes"}).
    Get {
        /// The repo CAR file.
        file: PathBuf,
        /// The record path, `collection/rkey`.
        path: String,
        /// Accepted for symmetry; the output is always JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every block's CID, the MST's structure, key order and heights, that every record
    /// is present, and (with --key) the commit signature. Exits 1 with a one-line reason if not.
    Verify {
        /// The repo CAR file.
        file: PathBuf,
        /// The account's signing key as did:key; without it the signature is not checked.
        #[arg(long)]
        key: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the records created, updated and deleted from OLD to NEW.
    Diff {
        /// The older repo CAR.
        old: PathBuf,
        /// The newer repo CAR.
        new: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Build and sign a repo from JSON lines `{"path": "coll/rkey", "record": {...}}` on stdin,
    /// writing the CAR to stdout.
    Create {
        /// The account DID.
        #[arg(long)]
        did: String,
        /// The secp256k1 signing key, 32 bytes in hex.
        #[arg(long)]
        key_hex: String,
        /// Use a P-256 key instead of secp256k1.
        #[arg(long)]
        p256: bool,
    },
}

pub(crate) fn run(cmd: RepoCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        RepoCommand::Inspect { file, json } => inspect(&file, json, &mut out),
        RepoCommand::Ls { file, json } => ls(&file, json, &mut out),
        RepoCommand::Get { file, path, .. } => get(&file, &path, &mut out),
        RepoCommand::Verify { file, key, json } => verify(&file, key.as_deref(), json, &mut out),
        RepoCommand::Diff { old, new, json } => diff_cmd(&old, &new, json, &mut out),
        RepoCommand::Create { did, key_hex, p256 } => {
            create(&did, &key_hex, p256, std::io::stdin().lock(), &mut out)
        }
    }
}

fn load(file: &Path) -> anyhow::Result<(Repo, usize)> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let car = read_car(&bytes).with_context(|| format!("{} is not a valid CAR", file.display()))?;
    let head = *car.roots.first().context("the CAR has no root")?;
    let blocks = car.blocks.len();
    let repo = Repo::load(head, Arc::new(car.blocks)).context("reading the root commit")?;
    Ok((repo, blocks))
}

fn inspect(file: &Path, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let (repo, blocks) = load(file)?;
    let records = repo.mst().leaf_count()?;
    let c = repo.commit();
    if json {
        let v = json!({
            "did": c.did.as_str(), "rev": c.rev.to_string(), "commit": repo.head().to_string(),
            "data": c.data.to_string(), "records": records, "blocks": blocks,
        });
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "did      {}", c.did)?;
        writeln!(out, "rev      {}", c.rev)?;
        writeln!(out, "commit   {}", repo.head())?;
        writeln!(out, "data     {}", c.data)?;
        writeln!(out, "records  {records}")?;
        writeln!(out, "blocks   {blocks}")?;
    }
    Ok(())
}

fn ls(file: &Path, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let (repo, _) = load(file)?;
    let leaves = repo.mst().leaves()?;
    if json {
        let v: Vec<_> = leaves
            .iter()
            .map(|(p, c)| json!({"path": p, "cid": c.to_string()}))
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(v))?;
    } else {
        for (path, cid) in leaves {
            writeln!(out, "{path}\t{cid}")?;
        }
    }
    Ok(())
}

fn get(file: &Path, path: &str, out: &mut impl Write) -> anyhow::Result<()> {
    let (repo, _) = load(file)?;
    let cid = repo
        .mst()
        .get(path)?
        .with_context(|| format!("no record at {path}"))?;
    let record = repo.read_record(&cid)?;
    writeln!(out, "{}", cbor::to_json_string(&record))?;
    Ok(())
}

fn verify(file: &Path, key: Option<&str>, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let key = key
        .map(PublicKey::from_did_key)
        .transpose()
        .context("--key")?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let report =
        verify_repo_car(&bytes, key.as_ref()).map_err(|e| anyhow::anyhow!("invalid: {e}"))?;
    if json {
        let v = json!({
            "valid": true, "did": report.commit.did.as_str(), "commit": report.commit_cid.to_string(),
            "records": report.records, "blocks": report.blocks, "signatureChecked": key.is_some(),
        });
        writeln!(out, "{v}")?;
    } else {
        let sig = if key.is_some() {
            "signature ok"
        } else {
            "signature not checked (no --key)"
        };
        writeln!(
            out,
            "ok: {} records, {} blocks, {sig}",
            report.records, report.blocks
        )?;
    }
    Ok(())
}

fn diff_cmd(old: &Path, new: &Path, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let (old, _) = load(old)?;
    let (new, _) = load(new)?;
    let d = diff(old.mst(), new.mst())?;
    let kind = |c: &crate::mst::RecordChange| match (c.prev, c.cid) {
        (None, _) => "created",
        (_, None) => "deleted",
        _ => "updated",
    };
    if json {
        let v: Vec<_> = d
            .records
            .iter()
            .map(|c| {
                json!({
                    "change": kind(c), "path": c.key,
                    "prev": c.prev.map(|p| p.to_string()), "cid": c.cid.map(|p| p.to_string()),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(v))?;
    } else {
        for c in &d.records {
            writeln!(out, "{}\t{}", kind(c), c.key)?;
        }
    }
    Ok(())
}

fn create(
    did: &str,
    key_hex: &str,
    p256: bool,
    input: impl BufRead,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let did = Did::parse(did)?;
    let alg = if p256 {
        Algorithm::P256
    } else {
        Algorithm::K256
    };
    let key_bytes = hex::decode(key_hex.trim()).context("--key-hex is not hex")?;
    let key = Keypair::from_bytes(alg, &key_bytes)?;
    // Records are parsed as the build consumes them, so each is held as a tree of values only
    // until it is encoded: peak memory is the encoded repo, not every record's JSON as well.
    let progress = Progress::counter("records", false);
    let mut bad_line = None;
    let records = input
        .lines()
        .enumerate()
        .filter_map(|(n, line)| record_line(n + 1, line).transpose())
        .map_while(|line| match line {
            Ok(record) => {
                progress.advance(1);
                Some(record)
            }
            Err(e) => {
                bad_line = Some(e);
                None
            }
        });
    let rev = TidClock::random().next(micros_of(chrono::Utc::now()));
    let built = Repo::create_with_records(did, &key, rev, records);
    progress.finish();
    if let Some(e) = bad_line {
        return Err(e);
    }
    let repo = built?;
    let building = Progress::spinner("writing", false);
    repo.export_car(out)?;
    building.finish();
    Ok(())
}

/// One line of `repo create`'s input, numbered `n`: its path and record, or None if blank.
fn record_line(
    n: usize,
    line: std::io::Result<String>,
) -> anyhow::Result<Option<(String, cbor::Value)>> {
    let line = line.context("reading stdin")?;
    if line.trim().is_empty() {
        return Ok(None);
    }
    let value = cbor::from_json_str(&line).with_context(|| format!("line {n}"))?;
    if let cbor::Value::Map(mut fields) = value
        && let (Some(cbor::Value::String(path)), Some(record)) =
            (fields.remove("path"), fields.remove("record"))
    {
        return Ok(Some((path, record)));
    }
    bail!("line {n}: expected {{\"path\": \"collection/rkey\", \"record\": {{...}}}}")
}
