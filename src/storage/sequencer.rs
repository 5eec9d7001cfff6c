//! [`Sequencer`]: the reader side of the event log, in sequence order, never skipping a number
//! that may still commit.
//!
//! A writer allocates a number and then commits the event; a slower writer can commit `n`
//! after `n + 1` is already visible. The sequencer therefore stops at the first missing number.
//! If the number stays missing for the grace period while later numbers have been allocated,
//! it claims the number with a conditional "skipped" marker: if the marker lands, the number is
//! provably not an event (a writer still holding it fails and takes a new one); if the event
//! lands first, it is delivered. Either way the order seen by readers never changes.
//!
//! A crashed writer can strand several numbers. Every number up to the last one allocated when
//! the wait began has been allocated for at least the grace period once the wait ends, so all
//! of them are claimed at once, without a wait each: a crash costs readers one grace period,
//! however many numbers it stranded. The same holds at start-up ([`Sequencer::allocated_by`]):
//! numbers allocated before the process started are claimed one grace period after it.
//! See `docs/storage.md`.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Event, EventLog, Seq, StorageError};

/// Follows the event log from a cursor.
#[derive(Debug)]
pub struct Sequencer {
    storage: Arc<dyn EventLog>,
    cursor: Seq,
    grace: Duration,
    /// The missing number being waited for, since when, and the last number allocated then.
    waiting: Option<Wait>,
    /// Numbers up to this one, if missing, are claimed at once (see the module docs).
    claim_through: Seq,
    /// Every number up to `.0` was allocated by `.1` (set at start-up).
    allocated_by: Option<(Seq, Instant)>,
}

#[derive(Debug, Clone, Copy)]
struct Wait {
    seq: Seq,
    since: Instant,
    through: Seq,
}

impl Sequencer {
    /// Starts after `cursor` (0 = from the beginning), waiting `grace` for missing numbers.
    pub fn new(storage: Arc<dyn EventLog>, cursor: Seq, grace: Duration) -> Sequencer {
        Sequencer {
            storage,
            cursor,
            grace,
            waiting: None,
            claim_through: 0,
            allocated_by: None,
        }
    }

    /// Tells the sequencer that every number up to `last` was allocated by `when` (a process
    /// starting up: whatever is missing then and still missing a grace period later is
    /// stranded, and is claimed without waiting again).
    pub fn allocated_by(&mut self, last: Seq, when: Instant) {
        self.allocated_by = Some((last, when));
    }

    /// The last sequence number delivered (or passed over).
    pub fn cursor(&self) -> Seq {
        self.cursor
    }

    /// The next events after the cursor, in order, at most `limit`; empty when there is nothing
    /// new yet. Call again after a short sleep when empty.
    pub async fn next_batch(&mut self, limit: usize) -> Result<Vec<Event>, StorageError> {
        let last = self.storage.last_seq().await?;
        if last.is_none_or(|l| l <= self.cursor) {
            self.waiting = None;
            return Ok(Vec::new());
        }
        let events = self.storage.read_events(Some(self.cursor), limit).await?;
        if let Some(e) = events.last() {
            self.cursor = e.seq;
            self.waiting = None;
            return Ok(events);
        }
        // Numbers above the cursor are allocated but the next one is not readable.
        let missing = self.cursor + 1;
        let wait = match self.waiting {
            Some(w) if w.seq == missing => w,
            _ => {
                let since = match self.allocated_by {
                    Some((through, when)) if missing <= through => when,
                    _ => Instant::now(),
                };
                let w = Wait {
                    seq: missing,
                    since,
                    through: last.unwrap_or(missing),
                };
                self.waiting = Some(w);
                w
            }
        };
        if missing > self.claim_through && wait.since.elapsed() < self.grace {
            return Ok(Vec::new());
        }
        // Everything allocated when the wait began is as overdue as `missing`.
        self.claim_through = self.claim_through.max(wait.through);
        let skipped = self.storage.mark_seq_skipped(missing).await?;
        if skipped {
            tracing::warn!(
                seq = missing,
                "sequence number never became an event; skipped"
            );
            self.cursor = missing;
        }
        self.waiting = None;
        // Read again: past the marker, or the event that won the race.
        Box::pin(self.next_batch(limit)).await
    }
}
