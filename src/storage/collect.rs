//! [`collect_blocks`]: the block collector, a mark and sweep over the shared block store.
//!
//! Blocks are content-addressed and shared by every repo, so no single write knows when a block
//! stops being used. The collector marks every block something still names — the tree of every
//! repo that is not deleted (its head commit, MST nodes and records) and every block an event
//! in the log names (the firehose replays them) — then deletes the blocks nothing marked. That
//! frees a deleted account's repo (its events are forgotten when it is purged), the trees that
//! commits replaced and are no longer in the log, and the orphans of commits and imports that
//! failed after writing their blocks.
//!
//! A commit may be writing blocks while the collector runs: blocks the mark did not see because
//! the head naming them landed afterwards. Two rules keep them. Every write stamps each block
//! with its time (an existing one too), and a block is deleted only if its stamp is older than
//! the start of the mark minus the safety window, checked in the delete itself (a conditional
//! delete on DynamoDB, the single writer on disk). And no head may land more than
//! [`BLOCK_LANDING_LIMIT`] after its blocks were written (a commit or an import that takes
//! longer fails and is retried, which stamps them again), so a window of at least
//! [`MIN_SAFE_WINDOW`] covers every write in flight. A shorter window is only safe on a store
//! nothing writes to meanwhile. See `docs/storage.md`.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::time::Duration;

use chrono::Utc;

use super::driver::load_head;
use super::fetch_tree;
use super::{BlockCache, EventBody, RepoStatus, Storage, StorageError};
use crate::cid::Cid;
use crate::repo::RepoError;

/// The longest a writer may take between writing a head's blocks and landing the head.
pub const BLOCK_LANDING_LIMIT: Duration = Duration::from_secs(30 * 60);

/// The shortest safety window that protects every write in flight (twice the landing limit).
pub const MIN_SAFE_WINDOW: Duration = Duration::from_secs(60 * 60);

/// Repos, events and blocks read per page.
const PAGE: usize = 1000;

/// What a collection found and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CollectReport {
    /// Repos whose trees were marked.
    pub repos: usize,
    /// Events whose blocks were marked.
    pub events: usize,
    /// Distinct blocks marked.
    pub marked: usize,
    /// Blocks in the store when swept.
    pub scanned: usize,
    /// Unmarked blocks written inside the safety window, left for a later run.
    pub recent: usize,
    /// Unmarked blocks deleted (with `dry_run`, the ones that would be).
    pub deleted: usize,
}

/// Marks and sweeps `storage`'s blocks (see the module docs), deleting unmarked blocks last
/// written more than `window` before the collection started. With `dry_run` it only counts.
pub async fn collect_blocks(
    storage: &dyn Storage,
    cache: &BlockCache,
    window: Duration,
    dry_run: bool,
) -> Result<CollectReport, StorageError> {
    let started_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
    let cutoff = started_ms.saturating_sub(u64::try_from(window.as_millis()).unwrap_or(u64::MAX));
    let mut report = CollectReport::default();
    let mut marked: HashSet<Cid> = HashSet::new();
    mark_repos(storage, cache, &mut marked, &mut report).await?;
    mark_events(storage, &mut marked, &mut report).await?;
    report.marked = marked.len();
    let mut token = None;
    loop {
        let (page, next) = storage.scan_blocks(token, PAGE).await?;
        report.scanned += page.len();
        let mut doomed = Vec::new();
        for block in page.iter().filter(|b| !marked.contains(&b.cid)) {
            if block.written_ms < cutoff {
                doomed.push(block.cid);
            } else {
                report.recent += 1;
            }
        }
        report.deleted += if dry_run {
            doomed.len()
        } else {
            storage.delete_blocks(&doomed, cutoff).await?
        };
        match next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    tracing::info!(
        repos = report.repos,
        events = report.events,
        marked = report.marked,
        scanned = report.scanned,
        recent = report.recent,
        deleted = report.deleted,
        dry_run,
        "block collection finished"
    );
    Ok(report)
}

/// Marks the head commit, MST nodes and records of every repo not deleted.
async fn mark_repos(
    storage: &dyn Storage,
    cache: &BlockCache,
    marked: &mut HashSet<Cid>,
    report: &mut CollectReport,
) -> Result<(), StorageError> {
    let mut after = None;
    loop {
        let page = storage.list_repos(after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.did.clone());
        for record in page.iter().filter(|r| r.status != RepoStatus::Deleted) {
            // A view per repo: its tree is held only while it is walked.
            let view = cache.view();
            let mut repo = load_head(storage, &view, record.head).await?;
            fetch_tree(storage, &view, &mut repo).await?;
            marked.insert(record.head);
            repo.mst()
                .walk_nodes(&mut |node| {
                    marked.insert(node.cid);
                    marked.extend(node.leaves.iter().map(|(_, cid)| *cid));
                    ControlFlow::Continue(())
                })
                .map_err(RepoError::from)?;
            report.repos += 1;
        }
    }
}

/// Marks every block an event in the log names.
async fn mark_events(
    storage: &dyn Storage,
    marked: &mut HashSet<Cid>,
    report: &mut CollectReport,
) -> Result<(), StorageError> {
    let mut token = None;
    loop {
        let (page, next) = storage.scan_events(token, PAGE).await?;
        for event in &page {
            match &event.body {
                EventBody::Commit(c) => {
                    marked.insert(c.commit);
                    marked.extend(c.blocks.iter().copied());
                }
                EventBody::Sync { commit, .. } => {
                    marked.insert(*commit);
                }
                EventBody::Identity { .. } | EventBody::Account { .. } => {}
            }
        }
        report.events += page.len();
        match next {
            Some(t) => token = Some(t),
            None => return Ok(()),
        }
    }
}

/// Runs [`collect_blocks`] every `every` with `window` until `stop` is cancelled, logging each
/// run's report or failure (a failed run is tried again at the next interval).
pub async fn run_block_collector(
    storage: std::sync::Arc<dyn Storage>,
    cache: BlockCache,
    every: Duration,
    window: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = collect_blocks(storage.as_ref(), &cache, window, false).await {
            tracing::warn!(error = %e, "block collection failed; trying again next time");
        }
    }
}
