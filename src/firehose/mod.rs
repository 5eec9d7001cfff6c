//! The firehose: `com.atproto.sync.subscribeRepos` over WebSocket
//! (https://atproto.com/specs/event-stream, https://atproto.com/specs/sync).
//!
//! One [`Hub`] per process tails the event log in sequence order with a gap-safe
//! [`crate::storage::Sequencer`], encodes each event's frame once, and fans it out through a
//! bounded broadcast ring: a subscriber that falls a ring's length behind gets
//! `ConsumerTooSlow` and is closed, and nobody else waits for it. A subscriber with a cursor
//! is replayed from storage up to the hub's position, then handed to the live ring with no gap
//! and no duplicate ([`subscribe`]). The hub also tells relays about new events
//! (`requestCrawl`, at most every 20 minutes). Frames are built in [`frames`]. It runs inside
//! `arroba serve` and, on AWS, as its own long-lived task (`arroba firehose`): Lambda cannot hold
//! sockets.

mod config;
pub mod frames;
mod hub;
mod subscribe;

pub use config::FirehoseConfig;
pub use hub::{Frame, Hub};
pub use subscribe::router;
