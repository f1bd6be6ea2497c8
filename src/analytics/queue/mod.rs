//! The click queue: one trait, two implementations.
//!
//! - [`MemoryQueue`]: a bounded channel inside the process (embedded mode, and any
//!   single-instance deployment). Lost if the process dies without draining.
//! - [`RedisStreamQueue`]: a Redis stream with a consumer group. A producer task
//!   gathers clicks for [`QueueSettings::entry_linger_ms`] (or up to
//!   [`QueueSettings::entry_clicks`]) and appends them as **one entry** in a compact
//!   binary encoding ([`encode_entry`]), named by its first click's event ID (the unit
//!   ID the click store records, which makes a retried `XADD` harmless); workers read entries with
//!   `XREADGROUP`, `XACK` them only after the database commit, and take over entries of
//!   dead workers with `XAUTOCLAIM`. Redis appends, delivers and acknowledges an entry
//!   per few milliseconds, not per click.
//!
//! Either way [`ClickQueue::offer`] never waits: the redirect path hands the click to a
//! bounded in-process buffer with `try_send`, and a full buffer drops the click and
//! counts it. Nothing waits on that buffer either: its consumer (the worker, or the
//! producer) polls it on a timer, so a click never wakes another thread.

mod entry;
mod stream;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Mutex};

pub use self::entry::{decode_entry, encode_entry, view_entry, EntryView, PackedClick};
pub use self::stream::{RedisStreamQueue, GROUP};
use crate::domain::click::{RawClick, UnitId};

/// Which queue (`[queue] kind`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    /// In process.
    Memory,
    /// Redis Streams.
    Redis,
}

/// Queue settings (`[queue]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSettings {
    /// `memory` (default) or `redis` (needs `[redis]`).
    pub kind: QueueKind,
    /// Clicks buffered in process before new ones are dropped (both kinds: with Redis it
    /// is the buffer in front of `XADD`).
    pub capacity: usize,
    /// Redis: approximate most entries the stream keeps (`MAXLEN ~`); each entry holds
    /// up to `entry_clicks` clicks.
    pub stream_maxlen: u64,
    /// Redis: a pending entry idle this long belongs to a dead worker and is taken over.
    /// Keep it well above `analytics.flush_interval_ms`: a live worker holds its entries
    /// that long before acknowledging them.
    #[serde(with = "crate::duration::ms")]
    pub claim_idle_ms: Duration,
    /// Redis: this consumer's name in the group (default: host name and process ID).
    pub consumer: Option<String>,
    /// Redis: most clicks in one stream entry.
    pub entry_clicks: usize,
    /// Redis: how long the producer gathers clicks into one entry, in milliseconds.
    #[serde(with = "crate::duration::ms")]
    pub entry_linger_ms: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            kind: QueueKind::Memory,
            capacity: 65_536,
            stream_maxlen: 100_000,
            claim_idle_ms: Duration::from_millis(30_000),
            consumer: None,
            entry_clicks: 2_048,
            entry_linger_ms: Duration::from_millis(50),
        }
    }
}

/// Why the queue could not deliver or acknowledge.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable")]
    Unavailable(#[source] anyhow::Error),
}

/// Clicks handed to the worker, with what it takes to count and acknowledge them.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    /// The unit these clicks are counted as, when the producer named one (a stream
    /// entry). `None` for the in-process queue: the worker names its flush instead.
    pub unit: Option<UnitId>,
    /// The stream entry ID to acknowledge (Redis); `None` in process.
    pub entry: Option<String>,
    /// Clicks as captured (the in-process queue, and entries of earlier versions).
    pub clicks: Vec<RawClick>,
    /// A stream entry's payload, checked (see [`view_entry`]), and how many clicks it
    /// holds: the worker reads it without copying a string per click.
    pub packed: Option<(Vec<u8>, usize)>,
}

impl Delivery {
    /// How many clicks it carries.
    pub fn len(&self) -> usize {
        self.clicks.len() + self.packed.as_ref().map_or(0, |(_, n)| *n)
    }

    /// Whether it carries no click.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counters (exported as metrics).
#[derive(Debug, Default)]
pub struct QueueStats {
    pub enqueued: AtomicU64,
    pub dropped: AtomicU64,
    /// Clicks handed to a worker.
    pub delivered: AtomicU64,
    /// Stream entries acknowledged (Redis).
    pub acked: AtomicU64,
    /// Redis: stream entries appended.
    pub entries: AtomicU64,
    /// Redis: entries taken over from dead workers.
    pub reclaimed: AtomicU64,
}

/// A queue of clicks between the redirect path and the analytics worker.
#[async_trait]
pub trait ClickQueue: Send + Sync + 'static {
    /// Offers a click without waiting. Returns false, and counts a drop, when full or
    /// closed.
    fn offer(&self, click: RawClick) -> bool;

    /// Takes no more clicks (at shutdown, once no request is in flight): what was
    /// offered before is still delivered.
    fn close(&self);

    /// Whether [`close`](Self::close) was called.
    fn is_closed(&self) -> bool;

    /// Counts a click that was dropped before it was offered (the redirect path could
    /// not name it without waiting).
    fn count_dropped(&self) {
        self.stats().dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Clicks waiting now, up to about `max` of them; when none are, waits up to `wait`
    /// and looks once more.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError>;

    /// Marks stream entries done: call only after their clicks are committed.
    async fn ack(&self, entries: &[String]) -> Result<(), QueueError>;

    /// Whether the queue lives in this process only, so that a stopping worker must
    /// drain it (the Redis stream outlives the process; its entries wait for a worker).
    fn in_process(&self) -> bool;

    /// Clicks buffered in this process, not yet handed on.
    fn depth(&self) -> u64;

    /// The counters.
    fn stats(&self) -> &QueueStats;
}

/// The in-process queue.
pub struct MemoryQueue {
    inlet: Inlet,
    rx: Mutex<mpsc::Receiver<RawClick>>,
    stats: QueueStats,
}

impl MemoryQueue {
    /// A queue holding at most `capacity` clicks.
    pub fn new(capacity: usize) -> Self {
        let (inlet, rx) = Inlet::new(capacity);
        Self {
            inlet,
            rx: Mutex::new(rx),
            stats: QueueStats::default(),
        }
    }
}

/// The in-process entrance of a queue: the bounded channel the redirect path offers
/// clicks to, which the shutdown closes once no request is in flight.
struct Inlet {
    tx: mpsc::Sender<RawClick>,
    closed: AtomicBool,
}

impl Inlet {
    fn new(capacity: usize) -> (Self, mpsc::Receiver<RawClick>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let inlet = Self {
            tx,
            closed: AtomicBool::new(false),
        };
        (inlet, rx)
    }

    /// Takes the click, or drops and counts it when the channel is full or closed.
    fn offer(&self, stats: &QueueStats, click: RawClick) -> bool {
        if !self.closed.load(Ordering::Relaxed) && self.tx.try_send(click).is_ok() {
            stats.enqueued.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn depth(&self) -> u64 {
        (self.tx.max_capacity() - self.tx.capacity()) as u64
    }
}

/// Takes what the channel holds now, up to `max`, without waiting. Never registers a
/// waker: the senders (redirects) are never asked to wake this side.
fn drain(rx: &mut mpsc::Receiver<RawClick>, max: usize) -> Vec<RawClick> {
    let mut out = Vec::new();
    while out.len() < max {
        match rx.try_recv() {
            Ok(c) => out.push(c),
            Err(_) => break,
        }
    }
    out
}

/// [`drain`], or after `wait` when the channel is empty now.
async fn drain_or_wait(
    rx: &mut mpsc::Receiver<RawClick>,
    max: usize,
    wait: Duration,
) -> Vec<RawClick> {
    let now = drain(rx, max);
    if !now.is_empty() || wait.is_zero() {
        return now;
    }
    tokio::time::sleep(wait).await;
    drain(rx, max)
}

#[async_trait]
impl ClickQueue for MemoryQueue {
    fn offer(&self, click: RawClick) -> bool {
        self.inlet.offer(&self.stats, click)
    }

    fn close(&self) {
        self.inlet.close();
    }

    fn is_closed(&self) -> bool {
        self.inlet.is_closed()
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let mut rx = self.rx.lock().await;
        let clicks = drain_or_wait(&mut rx, max, wait).await;
        if clicks.is_empty() {
            return Ok(Vec::new());
        }
        self.stats
            .delivered
            .fetch_add(clicks.len() as u64, Ordering::Relaxed);
        Ok(vec![Delivery {
            clicks,
            ..Delivery::default()
        }])
    }

    async fn ack(&self, _entries: &[String]) -> Result<(), QueueError> {
        Ok(())
    }

    fn in_process(&self) -> bool {
        true
    }

    fn depth(&self) -> u64 {
        self.inlet.depth()
    }

    fn stats(&self) -> &QueueStats {
        &self.stats
    }
}

/// A click for the queue's tests.
#[cfg(test)]
fn sample_click(n: u64) -> RawClick {
    RawClick {
        event_id: crate::domain::Snowflake::from_parts(n, 0, 0),
        link_id: crate::domain::Snowflake::from_parts(1, 0, 0),
        at_ms: 1_800_000_000_000,
        referrer: String::new(),
        user_agent: String::new(),
        client: crate::domain::click::ClientNet::Unknown,
        visitor: 0,
        extra: None,
    }
}

#[cfg(test)]
mod tests {
    use super::sample_click as click;
    use super::*;

    fn clicks(d: &[Delivery]) -> usize {
        d.iter().map(|d| d.clicks.len()).sum()
    }

    #[tokio::test]
    async fn a_full_memory_queue_drops_and_counts_without_waiting() {
        let q = MemoryQueue::new(3);
        let accepted = (0..10).filter(|n| q.offer(click(*n))).count();
        assert_eq!(accepted, 3);
        assert_eq!(q.stats().dropped.load(Ordering::Relaxed), 7);
        assert_eq!(q.depth(), 3);
        let got = q.receive(10, Duration::from_millis(10)).await.unwrap();
        assert_eq!(clicks(&got), 3);
        assert_eq!(q.depth(), 0);
    }

    #[tokio::test]
    async fn receive_returns_empty_after_the_wait() {
        let q = MemoryQueue::new(3);
        assert!(q
            .receive(10, Duration::from_millis(5))
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn a_closed_queue_refuses_new_clicks_and_still_delivers_what_it_held() {
        let q = MemoryQueue::new(10);
        assert!(q.offer(click(1)) && q.offer(click(2)));
        assert!(!q.is_closed());
        q.close();
        assert!(q.is_closed());
        assert!(!q.offer(click(3)), "closed to new clicks");
        assert_eq!(q.stats().dropped.load(Ordering::Relaxed), 1);
        let got = q.receive(10, Duration::ZERO).await.unwrap();
        assert_eq!(clicks(&got), 2, "what was offered before still arrives");
    }
}
