//! [`Hub`]: one tailer per process, a bounded broadcast ring of encoded frames, and crawler
//! notifications.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use super::FirehoseConfig;
use super::frames::event_frame;
use crate::storage::{Seq, Sequencer, Storage};

/// One encoded event, as the ring holds it.
#[derive(Debug)]
pub struct Frame {
    /// Its sequence number.
    pub seq: Seq,
    /// The WebSocket message, unless it is larger than 64 KiB: those are rebuilt
    /// from storage by each subscriber ([`Hub::frame_bytes`]), so the ring's memory is bounded
    /// in bytes (frames × the limit), not only in frames (a commit frame can be 2 MB).
    pub bytes: Option<Bytes>,
}

/// The largest frame the ring holds itself (most are a few kilobytes).
pub(super) const RING_INLINE_LIMIT: usize = 64 * 1024;

/// Frames the ring holds at least (more if a subscriber's buffer is larger).
const RING_FRAMES: usize = 2048;

/// The process's firehose: its position in the log and the live ring.
#[derive(Debug)]
pub struct Hub {
    storage: Arc<dyn Storage>,
    config: FirehoseConfig,
    sender: broadcast::Sender<Arc<Frame>>,
    /// Every sequence number up to this one is resolved (an event or skipped), and every event
    /// above it will go through the ring.
    position: AtomicU64,
    /// Set when the process is shutting down: connections send a close frame and end.
    closing: tokio::sync::watch::Sender<bool>,
    /// The subscribers' writer tasks, so shutting down can wait for their close frames.
    writers: tokio_util::task::TaskTracker,
    /// One permit per subscriber allowed at once.
    connections: Arc<tokio::sync::Semaphore>,
    /// One permit per subscriber allowed to replay from storage at once.
    backfills: tokio::sync::Semaphore,
}

/// How far below the log's end a starting hub looks for numbers still being committed: more
/// than there can be writers at once.
const IN_FLIGHT_WINDOW: Seq = 1000;

impl Hub {
    /// Starts the tailer. Before broadcasting it silently resolves everything up to the log's
    /// current end (waiting out gaps), so that what it has not broadcast is exactly what comes
    /// after its position. It stops when `shutdown` completes; subscribers then see the ring
    /// close.
    pub async fn start(
        storage: Arc<dyn Storage>,
        config: FirehoseConfig,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<Arc<Hub>, crate::storage::StorageError> {
        // The shared ring outlasts any one subscriber's queue, so a loop that falls behind it is
        // rare (and recovers from storage).
        let (sender, _) = broadcast::channel(config.buffer.max(RING_FRAMES));
        let end = storage.last_seq().await?.unwrap_or(0);
        // Only numbers near the end can still be in flight (one per writer mid-commit); older
        // gaps are expired events and are claimed once a grace period has passed since start.
        let mut sequencer = Sequencer::new(
            storage.clone(),
            end.saturating_sub(IN_FLIGHT_WINDOW),
            config.gap_grace,
        );
        sequencer.allocated_by(end, tokio::time::Instant::now());
        while sequencer.cursor() < end {
            if sequencer.next_batch(1000).await?.is_empty() {
                tokio::time::sleep(config.poll_interval).await;
            }
        }
        let (closing, _) = tokio::sync::watch::channel(false);
        let hub = Arc::new(Hub {
            storage,
            position: AtomicU64::new(sequencer.cursor()),
            sender,
            closing,
            writers: tokio_util::task::TaskTracker::new(),
            connections: Arc::new(tokio::sync::Semaphore::new(config.max_connections)),
            backfills: tokio::sync::Semaphore::new(config.max_backfills),
            config,
        });
        let tail = hub.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tail.clone().run(sequencer) => {}
                _ = shutdown => {}
            }
            tail.closing.send_replace(true);
            tracing::info!("firehose tailer stopped");
        });
        Ok(hub)
    }

    async fn run(self: Arc<Self>, mut sequencer: Sequencer) {
        let mut last_crawl: Option<tokio::time::Instant> = None;
        let mut lag = LagReport::default();
        let mut polls = PollBackoff::new(&self.config);
        loop {
            let batch = match sequencer.next_batch(500).await {
                Ok(b) => b,
                Err(e) => {
                    // One failed read is logged and retried; it never stops the stream.
                    tracing::error!(error = %e, "firehose read failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if batch.is_empty() {
                self.position.store(sequencer.cursor(), Ordering::SeqCst);
                tokio::time::sleep(polls.next_sleep()).await;
                continue;
            }
            polls.saw_events();
            for event in &batch {
                if self.sender.receiver_count() == 0 {
                    // Nobody would receive the frame, so it is not built. The position is stored
                    // before the count is read again: a subscriber arriving after that read
                    // (both go through the ring's lock) sees this position and replays up to it
                    // from storage; one arriving before it is counted and gets the frame.
                    self.position.store(event.seq, Ordering::SeqCst);
                    if self.sender.receiver_count() == 0 {
                        continue;
                    }
                }
                let bytes = loop {
                    match event_frame(&*self.storage, event).await {
                        Ok(b) => break b,
                        Err(e) => {
                            tracing::error!(seq = event.seq, error = %e, "could not build a firehose frame; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                };
                // Position first, then send: a subscriber that reads the position after
                // subscribing is sure to receive everything above it from the ring.
                self.position.store(event.seq, Ordering::SeqCst);
                let _ = self.sender.send(Arc::new(Frame {
                    seq: event.seq,
                    bytes: (bytes.len() <= RING_INLINE_LIMIT).then_some(bytes),
                }));
            }
            self.position.store(sequencer.cursor(), Ordering::SeqCst);
            if let Some(last) = batch.last() {
                lag.observe(last.time, sequencer.cursor());
            }
            if !self.config.crawlers.is_empty()
                && last_crawl.is_none_or(|t| t.elapsed() >= self.config.crawl_interval)
            {
                last_crawl = Some(tokio::time::Instant::now());
                self.request_crawl();
            }
        }
    }

    /// Tells each configured relay this host has new events.
    fn request_crawl(&self) {
        let body = serde_json::json!({ "hostname": self.config.hostname });
        for crawler in self.config.crawlers.clone() {
            let body = body.clone();
            tokio::spawn(async move {
                let url = format!(
                    "{}/xrpc/com.atproto.sync.requestCrawl",
                    crawler.trim_end_matches('/')
                );
                match reqwest::Client::new()
                    .post(&url)
                    .json(&body)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => tracing::info!(%url, "requested a crawl"),
                    Ok(r) => {
                        tracing::warn!(%url, status = r.status().as_u16(), "requestCrawl refused")
                    }
                    Err(e) => tracing::warn!(%url, error = %e, "requestCrawl failed"),
                }
            });
        }
    }

    /// A receiver of every frame after the returned position.
    pub fn subscribe(&self) -> (broadcast::Receiver<Arc<Frame>>, Seq) {
        let rx = self.sender.subscribe();
        (rx, self.position.load(Ordering::SeqCst))
    }

    /// Everything up to here is resolved.
    pub fn position(&self) -> Seq {
        self.position.load(Ordering::SeqCst)
    }

    /// The configuration.
    pub fn config(&self) -> &FirehoseConfig {
        &self.config
    }

    /// The storage the hub reads.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Completes when the process starts shutting down.
    pub async fn closing(&self) {
        let mut rx = self.closing.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Runs a subscriber's writer task where [`Hub::writers_finished`] can wait for it.
    pub(super) fn spawn_writer(
        &self,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.writers.spawn(task);
    }

    /// Once shutting down, waits (at most `limit`) for every subscriber's writer to send its
    /// close frame: the server stops tracking a connection once it is a WebSocket, so without
    /// this the process could exit with the frames unsent.
    pub async fn writers_finished(&self, limit: Duration) {
        self.writers.close();
        let _ = tokio::time::timeout(limit, self.writers.wait()).await;
    }

    /// A place for one more subscriber, held for its connection's life; None when
    /// `max_connections` are connected.
    pub(super) fn admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.connections.clone().try_acquire_owned().ok()
    }

    /// Waits for a turn to replay from storage (at most `max_backfills` at once).
    pub(super) async fn backfill_turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.backfills.acquire().await.ok()
    }

    /// The message of a frame from the ring: its own bytes, or (a large one) rebuilt from the
    /// stored event.
    pub async fn frame_bytes(&self, frame: &Frame) -> Result<Bytes, crate::storage::StorageError> {
        if let Some(bytes) = &frame.bytes {
            return Ok(bytes.clone());
        }
        let event = self
            .storage
            .read_events(Some(frame.seq - 1), 1)
            .await?
            .into_iter()
            .find(|e| e.seq == frame.seq)
            .ok_or(crate::storage::StorageError::SeqOutOfRange(frame.seq))?;
        event_frame(&*self.storage, &event).await
    }

    /// Number of connected subscribers.
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }
}

/// The tailer's sleep between reads that found nothing: the short interval while events are
/// recent (so a busy PDS is delivered with low latency), then doubling up to the idle interval
/// once the log has been quiet for [`PollBackoff::QUIET`] (so an idle PDS costs a read a second,
/// not fifty). The first event after a quiet spell waits at most the idle interval.
#[derive(Debug)]
struct PollBackoff {
    min: Duration,
    max: Duration,
    current: Duration,
    last_event: tokio::time::Instant,
}

impl PollBackoff {
    const QUIET: Duration = Duration::from_secs(1);

    fn new(config: &FirehoseConfig) -> PollBackoff {
        PollBackoff {
            min: config.poll_interval,
            max: config.idle_poll_interval.max(config.poll_interval),
            current: config.poll_interval,
            last_event: tokio::time::Instant::now(),
        }
    }

    fn saw_events(&mut self) {
        self.current = self.min;
        self.last_event = tokio::time::Instant::now();
    }

    fn next_sleep(&mut self) -> Duration {
        if self.last_event.elapsed() < Self::QUIET {
            return self.min;
        }
        self.current = (self.current * 2).min(self.max);
        self.current
    }
}

/// How far behind the writers the firehose broadcasts: the age of each batch's newest event when
/// it went out. The worst value is logged every 10 s as the `lag` field (milliseconds), which the
/// deployment turns into the `FirehoseLag` metric and alarm (docs/deploy.md).
#[derive(Default)]
struct LagReport {
    worst_ms: i64,
    last_report: Option<tokio::time::Instant>,
}

impl LagReport {
    const EVERY: Duration = Duration::from_secs(10);

    fn observe(&mut self, newest: DateTime<Utc>, position: Seq) {
        let ms = (Utc::now() - newest).num_milliseconds().max(0);
        self.worst_ms = self.worst_ms.max(ms);
        if self.last_report.is_none_or(|t| t.elapsed() >= Self::EVERY) {
            tracing::info!(lag = self.worst_ms, position, "firehose lag");
            self.worst_ms = 0;
            self.last_report = Some(tokio::time::Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn polling_slows_to_the_idle_interval_only_after_a_quiet_second() {
        let config = FirehoseConfig::default();
        let mut polls = PollBackoff::new(&config);
        // While events are recent, every poll waits the short interval.
        for _ in 0..10 {
            assert_eq!(polls.next_sleep(), config.poll_interval);
            tokio::time::advance(polls.min).await;
        }
        tokio::time::advance(PollBackoff::QUIET).await;
        let sleeps: Vec<Duration> = (0..10).map(|_| polls.next_sleep()).collect();
        assert_eq!(sleeps[0], config.poll_interval * 2);
        assert!(sleeps.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*sleeps.last().unwrap(), config.idle_poll_interval);
        // One event brings it straight back.
        polls.saw_events();
        assert_eq!(polls.next_sleep(), config.poll_interval);
    }
}
