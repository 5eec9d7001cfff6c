//! [`Sequencer`]: the reader side of the event log, in sequence order, never skipping a number
//! that may still commit.
//!
//! A writer allocates a number and then commits the event; a slower writer can commit `n`
//! after `n + 1` is already visible. The sequencer therefore stops at the first missing number.
//! If the number stays missing for the grace period while later numbers have been allocated,
//! it claims the number with a conditional "skipped" marker: if the marker lands, the number is
//! provably not an event (a writer still holding it fails and takes a new one); if the event
//! lands first, it is delivered. Either way the order seen by readers never changes.
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
    /// The missing number being waited for, and since when.
    waiting: Option<(Seq, Instant)>,
}

impl Sequencer {
    /// Starts after `cursor` (0 = from the beginning), waiting `grace` for missing numbers.
    pub fn new(storage: Arc<dyn EventLog>, cursor: Seq, grace: Duration) -> Sequencer {
        Sequencer {
            storage,
            cursor,
            grace,
            waiting: None,
        }
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
        match self.waiting {
            Some((seq, since)) if seq == missing && since.elapsed() >= self.grace => {
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
            Some((seq, _)) if seq == missing => Ok(Vec::new()),
            _ => {
                self.waiting = Some((missing, Instant::now()));
                Ok(Vec::new())
            }
        }
    }
}
