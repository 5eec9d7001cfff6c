//! The `subscribeRepos` route and one subscriber's life: cursor checks, replay from storage,
//! the hand-off to the live ring, and slow-consumer handling.
//!
//! Cursor rules (the reference PDS's): no cursor → live only; a cursor above the log's end →
//! `FutureCursor` and close; a cursor inside the window → every event with seq **greater than**
//! the cursor, then live; a cursor before the window → `#info OutdatedCursor`, then everything
//! in the window, then live.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::frames::{error_frame, event_frame, info_frame};
use super::hub::Hub;
use crate::storage::{Seq, StorageError};
use crate::xrpc::XrpcError;
use crate::xrpc::extract::Params;

/// The firehose's route, `subscribeRepos` (with CORS, like every XRPC route).
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route(
            "/xrpc/com.atproto.sync.subscribeRepos",
            get(subscribe_repos),
        )
        .layer(crate::xrpc::cors())
        .with_state(hub)
}

async fn subscribe_repos(
    State(hub): State<Arc<Hub>>,
    params: Params,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let cursor = match params.get("cursor") {
        None => None,
        Some(c) => match c.parse::<u64>() {
            Ok(n) if n < (1 << 53) => Some(n),
            _ => {
                return XrpcError::invalid(format!("Invalid cursor: {c:?} (a sequence number)"))
                    .into_response();
            }
        },
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(_) => {
            return XrpcError::new(
                StatusCode::UPGRADE_REQUIRED,
                "InvalidRequest",
                "subscribeRepos is a WebSocket endpoint",
            )
            .into_response();
        }
    };
    let Some(connection) = hub.admit() else {
        return XrpcError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ConnectionLimit",
            "Too many firehose subscribers; retry later",
        )
        .into_response();
    };
    // Subscribers send nothing but control frames: a small read buffer and a message limit sized
    // for them (the defaults are 128 KiB and 64 MiB per connection); writes go out as queued.
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(CLIENT_MESSAGE_LIMIT)
        .max_frame_size(CLIENT_MESSAGE_LIMIT)
        .on_upgrade(move |socket| async move {
            if let Err(e) = serve(hub, socket, cursor).await {
                tracing::debug!(error = %e, "subscriber ended");
            }
            drop(connection);
        })
}

/// The largest message a subscriber may send (it only ever needs control frames).
const CLIENT_MESSAGE_LIMIT: usize = 16 * 1024;

/// What the connection loop hands the writer task.
enum Outgoing {
    Frame(bytes::Bytes),
    /// Send a close frame and stop.
    Close(u16, &'static str),
}

/// The sending side of one subscriber: an unbounded queue to a writer task that owns the
/// socket, with a count of queued frames and bytes. The connection loop never waits on the
/// socket, so a stalled consumer is noticed by what it has queued, not by a blocked write.
struct Outbox {
    queue: tokio::sync::mpsc::UnboundedSender<Outgoing>,
    queued: Arc<Queued>,
    drained: Arc<tokio::sync::Notify>,
    /// Most frames that may be queued.
    limit: usize,
    /// Most bytes that may be queued.
    byte_limit: usize,
}

/// What a subscriber has queued and not yet written.
#[derive(Default)]
struct Queued {
    frames: AtomicUsize,
    bytes: AtomicUsize,
}

/// How long one frame may take to write before the subscriber is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

impl Outbox {
    fn start(hub: &Hub, mut sink: futures::stream::SplitSink<WebSocket, Message>) -> Outbox {
        let (queue, mut rx) = tokio::sync::mpsc::unbounded_channel::<Outgoing>();
        let queued = Arc::new(Queued::default());
        let drained = Arc::new(tokio::sync::Notify::new());
        let (count, notify) = (queued.clone(), drained.clone());
        hub.spawn_writer(async move {
            while let Some(item) = rx.recv().await {
                match item {
                    Outgoing::Frame(bytes) => {
                        let size = bytes.len();
                        let sent =
                            tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Binary(bytes)))
                                .await;
                        count.frames.fetch_sub(1, Ordering::SeqCst);
                        count.bytes.fetch_sub(size, Ordering::SeqCst);
                        notify.notify_waiters();
                        if !matches!(sent, Ok(Ok(()))) {
                            return;
                        }
                    }
                    Outgoing::Close(code, reason) => {
                        let close = Message::Close(Some(CloseFrame {
                            code,
                            reason: reason.into(),
                        }));
                        let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(close)).await;
                        let _ = sink.close().await;
                        return;
                    }
                }
            }
        });
        Outbox {
            queue,
            queued,
            drained,
            limit: hub.config().buffer,
            byte_limit: hub.config().buffer_bytes,
        }
    }

    /// Whether the subscriber has fallen a whole buffer behind (frames or bytes).
    fn full(&self) -> bool {
        self.queued.frames.load(Ordering::SeqCst) >= self.limit
            || self.queued.bytes.load(Ordering::SeqCst) >= self.byte_limit
    }

    /// Whether more than half a buffer is queued.
    fn half_full(&self) -> bool {
        self.queued.frames.load(Ordering::SeqCst) > self.limit / 2
            || self.queued.bytes.load(Ordering::SeqCst) > self.byte_limit / 2
    }

    /// Queues a frame; false once the writer has gone (the socket closed).
    fn push(&self, bytes: bytes::Bytes) -> bool {
        self.queued.frames.fetch_add(1, Ordering::SeqCst);
        self.queued.bytes.fetch_add(bytes.len(), Ordering::SeqCst);
        self.queue.send(Outgoing::Frame(bytes)).is_ok()
    }

    /// Waits until at most half a buffer is queued (backpressure for replays).
    async fn wait_for_room(&self) {
        while self.half_full() && !self.queue.is_closed() {
            let notified = self.drained.notified();
            if self.half_full() {
                let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
            }
        }
    }

    fn close(&self, code: u16, reason: &'static str) {
        let _ = self.queue.send(Outgoing::Close(code, reason));
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("the subscriber went away")]
    Gone,
}

/// The first sequence number inside the replay window: the count limit, and the first event
/// not older than the time limit (found by binary search; times grow with seq). Everything up
/// to `end` is resolved, so a number with no event and no marker there has expired (DynamoDB's
/// TTL removes old events and markers alike) and counts as old.
async fn window_start(hub: &Hub, end: Seq) -> Result<Seq, StorageError> {
    let config = hub.config();
    let start = config
        .window_events
        .map_or(1, |n| end.saturating_sub(n) + 1)
        .max(1);
    let oldest = chrono::Utc::now()
        - chrono::Duration::from_std(config.window).unwrap_or(chrono::Duration::MAX);
    let (mut lo, mut hi) = (start, end + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let recent = match hub.storage().read_events(Some(mid - 1), 1).await?.first() {
            Some(e) => e.time >= oldest,
            None => false,
        };
        if recent {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// Queues stored events after `after`, up to `until`, waiting for the subscriber to keep up;
/// returns the last seq queued (or passed).
async fn replay(
    hub: &Hub,
    out: &Outbox,
    mut after: Seq,
    until: Seq,
) -> Result<Seq, ConnectionError> {
    while after < until {
        let events = hub.storage().read_events(Some(after), 500).await?;
        if events.is_empty() {
            // Everything up to `until` is resolved, so this only happens when old events have
            // expired; the live stream takes over from `until`.
            return Ok(until);
        }
        for event in events {
            if event.seq > until {
                return Ok(after);
            }
            out.wait_for_room().await;
            if !out.push(event_frame(&**hub.storage(), &event).await?) {
                return Err(ConnectionError::Gone);
            }
            after = event.seq;
        }
    }
    Ok(after)
}

async fn serve(
    hub: Arc<Hub>,
    socket: WebSocket,
    cursor: Option<Seq>,
) -> Result<(), ConnectionError> {
    let (sink, mut incoming) = socket.split();
    // Client messages are ignored; reading them answers pings and notices the close.
    let (gone_tx, mut gone) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = incoming.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
        let _ = gone_tx.send(());
    });
    let out = Outbox::start(&hub, sink);
    let (mut rx, position) = hub.subscribe();
    let mut last_sent = position;
    if let Some(cursor) = cursor {
        let end = hub.storage().last_seq().await?.unwrap_or(0).max(position);
        if cursor > end {
            out.push(error_frame(
                "FutureCursor",
                &format!("Cursor {cursor} is past the current sequence number {end}"),
            ));
            out.close(1008, "FutureCursor");
            return Ok(());
        }
        let start = window_start(&hub, position).await?;
        let mut from = cursor;
        if cursor + 1 < start {
            out.push(info_frame(
                "OutdatedCursor",
                "Requested cursor exceeded limit. Possibly missing events",
            ));
            from = start - 1;
        }
        // Replays read storage hard: a few at a time, the others wait (live frames meanwhile
        // gather in the ring, and a subscriber that falls behind it catches up from storage).
        let turn = hub.backfill_turn().await;
        last_sent = replay(&hub, &out, from, position).await?;
        drop(turn);
    }
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Ok(frame) if frame.seq <= last_sent => {}
                Ok(frame) => {
                    if out.full() {
                        // The error frame goes behind what is queued; the writer sends it and
                        // closes if the consumer ever reads that far.
                        out.push(error_frame("ConsumerTooSlow", "Stream consumer too slow"));
                        out.close(1008, "ConsumerTooSlow");
                        return Ok(());
                    }
                    if !out.push(hub.frame_bytes(&frame).await?) {
                        return Err(ConnectionError::Gone);
                    }
                    last_sent = frame.seq;
                }
                Err(RecvError::Lagged(_)) => {
                    // This loop fell behind the hub's ring (not the socket); storage has it all.
                    let until = hub.position();
                    last_sent = replay(&hub, &out, last_sent, until).await?;
                }
                Err(RecvError::Closed) => {
                    out.close(1001, "shutting down");
                    return Ok(());
                }
            },
            _ = hub.closing() => {
                out.close(1001, "shutting down");
                return Ok(());
            }
            _ = &mut gone => return Ok(()),
        }
    }
}
