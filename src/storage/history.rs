//! A repo's recent past, read back from the event log: the record operations of the commits
//! after a given rev (what a client or an AppView that has seen rev R is missing).

use super::{EventBody, EventLog, StorageError};
use crate::repo::RepoOp;
use crate::syntax::Did;
use crate::tid::Tid;

/// The record operations of `did`'s commits with a rev after `since`, oldest first, from
/// commits still in the event log; at most `limit` commits are read.
pub async fn writes_since(
    log: &dyn EventLog,
    did: &Did,
    since: Tid,
    limit: usize,
) -> Result<Vec<(Tid, RepoOp)>, StorageError> {
    let mut out = Vec::new();
    let mut after = None;
    let mut commits = 0;
    loop {
        let page = log.read_repo_events(did, after, 100).await?;
        let Some(last) = page.last() else {
            return Ok(out);
        };
        after = Some(last.seq);
        for event in page {
            if let EventBody::Commit(c) = event.body {
                if c.rev > since {
                    out.extend(c.ops.into_iter().map(|op| (c.rev, op)));
                    commits += 1;
                    if commits >= limit {
                        return Ok(out);
                    }
                }
            }
        }
    }
}
