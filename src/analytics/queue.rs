//! The click queue: one trait, two implementations.
//!
//! - [`MemoryQueue`]: a bounded channel inside the process (embedded mode, and any
//!   single-instance deployment). Lost if the process dies without draining.
//! - [`RedisStreamQueue`]: a Redis stream with a consumer group: `XADD … MAXLEN ~`,
//!   `XREADGROUP`, `XACK` only after the database commit, and stale pending entries of
//!   dead workers taken over with `XAUTOCLAIM`. Survives any worker dying.
//!
//! Either way [`ClickQueue::offer`] never waits: the redirect path hands the click to a
//! bounded in-process buffer with `try_send`, and a full buffer drops the click and
//! counts it. A redirect never waits on analytics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Mutex};

use super::event::RawClick;

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
    /// Redis: approximate most entries the stream keeps (`MAXLEN ~`).
    pub stream_maxlen: u64,
    /// Redis: a pending entry idle this long belongs to a dead worker and is taken over.
    pub claim_idle_ms: u64,
    /// Redis: this consumer's name in the group (default: host name and process ID).
    pub consumer: Option<String>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            kind: QueueKind::Memory,
            capacity: 65_536,
            stream_maxlen: 10_000_000,
            claim_idle_ms: 30_000,
            consumer: None,
        }
    }
}

/// Why the queue could not deliver or acknowledge.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    #[error("this queue can only be consumed in the process that produces it")]
    NotShared,
}

/// One click handed to the worker, with what it takes to acknowledge it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub click: RawClick,
    /// The stream entry ID (Redis); `None` for the in-process queue.
    pub entry: Option<String>,
}

/// Counters (exported as metrics).
#[derive(Debug, Default)]
pub struct QueueStats {
    pub enqueued: AtomicU64,
    pub dropped: AtomicU64,
    pub delivered: AtomicU64,
    pub acked: AtomicU64,
    /// Redis: entries taken over from dead workers.
    pub reclaimed: AtomicU64,
}

/// A queue of clicks between the redirect path and the analytics worker.
#[async_trait]
pub trait ClickQueue: Send + Sync + 'static {
    /// Offers a click without waiting. Returns false, and counts a drop, when full.
    fn offer(&self, click: RawClick) -> bool;

    /// Up to `max` clicks, waiting at most `wait` for the first.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError>;

    /// Marks deliveries done: call only after their clicks are committed.
    async fn ack(&self, deliveries: &[Delivery]) -> Result<(), QueueError>;

    /// Clicks buffered in this process, not yet handed on.
    fn depth(&self) -> u64;

    /// The counters.
    fn stats(&self) -> &QueueStats;
}

/// The in-process queue.
pub struct MemoryQueue {
    tx: mpsc::Sender<RawClick>,
    rx: Mutex<mpsc::Receiver<RawClick>>,
    stats: QueueStats,
}

impl MemoryQueue {
    /// A queue holding at most `capacity` clicks.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self {
            tx,
            rx: Mutex::new(rx),
            stats: QueueStats::default(),
        }
    }
}

fn offer_to(tx: &mpsc::Sender<RawClick>, stats: &QueueStats, click: RawClick) -> bool {
    match tx.try_send(click) {
        Ok(()) => {
            stats.enqueued.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(_) => {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// Takes up to `max` from a channel, waiting at most `wait` for the first.
async fn take(rx: &mut mpsc::Receiver<RawClick>, max: usize, wait: Duration) -> Vec<RawClick> {
    let mut out = Vec::new();
    if max == 0 {
        return out;
    }
    match tokio::time::timeout(wait, rx.recv()).await {
        Ok(Some(first)) => out.push(first),
        _ => return out,
    }
    while out.len() < max {
        match rx.try_recv() {
            Ok(c) => out.push(c),
            Err(_) => break,
        }
    }
    out
}

#[async_trait]
impl ClickQueue for MemoryQueue {
    fn offer(&self, click: RawClick) -> bool {
        offer_to(&self.tx, &self.stats, click)
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let mut rx = self.rx.lock().await;
        let clicks = take(&mut rx, max, wait).await;
        self.stats
            .delivered
            .fetch_add(clicks.len() as u64, Ordering::Relaxed);
        Ok(clicks
            .into_iter()
            .map(|click| Delivery { click, entry: None })
            .collect())
    }

    async fn ack(&self, deliveries: &[Delivery]) -> Result<(), QueueError> {
        self.stats
            .acked
            .fetch_add(deliveries.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn depth(&self) -> u64 {
        (self.tx.max_capacity() - self.tx.capacity()) as u64
    }

    fn stats(&self) -> &QueueStats {
        &self.stats
    }
}

/// The consumer group every worker joins.
pub const GROUP: &str = "workers";
/// Clicks per `XADD` pipeline.
const PRODUCE_BATCH: usize = 512;
/// How often a worker looks for stale pending entries to take over.
const CLAIM_EVERY: Duration = Duration::from_secs(1);

/// Clicks in a Redis stream.
pub struct RedisStreamQueue {
    client: redis::Client,
    stream: String,
    consumer: String,
    maxlen: u64,
    claim_idle_ms: u64,
    /// The redirect path's buffer in front of `XADD`.
    tx: mpsc::Sender<RawClick>,
    buffer: Mutex<mpsc::Receiver<RawClick>>,
    /// The consumer's own connection: `XREADGROUP … BLOCK` must not hold up others.
    consumer_conn: Mutex<Option<redis::aio::MultiplexedConnection>>,
    last_claim: Mutex<Instant>,
    group_ready: std::sync::atomic::AtomicBool,
    stats: QueueStats,
}

fn unavailable(e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

impl RedisStreamQueue {
    /// A queue on the stream `{prefix}clicks` of the Redis at `url`.
    ///
    /// # Errors
    /// When the URL is not a Redis URL.
    pub fn new(url: &str, prefix: &str, settings: &QueueSettings) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel(settings.capacity.max(1));
        let consumer = settings.consumer.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
            format!(
                "{}-{}-{:x}",
                host.trim(),
                std::process::id(),
                rand::random::<u32>()
            )
        });
        Ok(Self {
            client: redis::Client::open(url)?,
            stream: format!("{prefix}clicks"),
            consumer,
            maxlen: settings.stream_maxlen,
            claim_idle_ms: settings.claim_idle_ms,
            tx,
            buffer: Mutex::new(rx),
            consumer_conn: Mutex::new(None),
            last_claim: Mutex::new(Instant::now() - CLAIM_EVERY),
            group_ready: std::sync::atomic::AtomicBool::new(false),
            stats: QueueStats::default(),
        })
    }

    /// The stream's key.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Moves buffered clicks into the stream until the buffer is empty or `stop` says
    /// so; retries with backoff while Redis is down (the buffer absorbs, then drops).
    pub async fn run_producer(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut conn: Option<redis::aio::MultiplexedConnection> = None;
        let mut pending: Vec<RawClick> = Vec::new();
        let mut backoff = Duration::from_millis(50);
        loop {
            if pending.is_empty() {
                let mut rx = self.buffer.lock().await;
                tokio::select! {
                    batch = take(&mut rx, PRODUCE_BATCH, Duration::from_millis(100)) => pending = batch,
                    () = stop.cancelled() => {
                        // Drain what is left without waiting.
                        pending = take(&mut rx, usize::MAX, Duration::ZERO).await;
                        drop(rx);
                        if !pending.is_empty() {
                            if let Err(e) = self.xadd(&mut conn, &pending).await {
                                tracing::error!(lost = pending.len(), error = %e, "could not push buffered clicks to Redis at shutdown");
                            }
                        }
                        return;
                    }
                }
                if pending.is_empty() {
                    continue;
                }
            }
            match self.xadd(&mut conn, &pending).await {
                Ok(()) => {
                    pending.clear();
                    backoff = Duration::from_millis(50);
                }
                Err(e) => {
                    conn = None;
                    tracing::warn!(buffered = pending.len(), error = %e, "XADD failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stop.cancelled() => {
                            tracing::error!(lost = pending.len(), "Redis unavailable at shutdown; buffered clicks lost");
                            return;
                        }
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn xadd(
        &self,
        conn: &mut Option<redis::aio::MultiplexedConnection>,
        clicks: &[RawClick],
    ) -> Result<(), QueueError> {
        if conn.is_none() {
            *conn = Some(
                self.client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(unavailable)?,
            );
        }
        let c = conn.as_mut().expect("connected above");
        let mut pipe = redis::pipe();
        for click in clicks {
            let body = serde_json::to_string(click).map_err(unavailable)?;
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.maxlen)
                .arg("*")
                .arg("c")
                .arg(body)
                .ignore();
        }
        pipe.query_async::<()>(c).await.map_err(unavailable)
    }

    async fn consumer(&self) -> Result<redis::aio::MultiplexedConnection, QueueError> {
        let mut slot = self.consumer_conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(unavailable)?;
        if !self.group_ready.load(Ordering::Acquire) {
            let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&self.stream)
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await;
            match created {
                Ok(()) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(unavailable(e)),
            }
            self.group_ready.store(true, Ordering::Release);
        }
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn forget_consumer(&self) {
        self.consumer_conn.lock().await.take();
    }

    fn parse_entries(&self, entries: Vec<redis::streams::StreamId>) -> Vec<Delivery> {
        entries
            .into_iter()
            .filter_map(|entry| {
                let body: Option<String> = entry.get("c");
                match body.as_deref().map(serde_json::from_str::<RawClick>) {
                    Some(Ok(click)) => Some(Delivery {
                        click,
                        entry: Some(entry.id),
                    }),
                    _ => {
                        tracing::warn!(entry = %entry.id, "unreadable click entry skipped");
                        None
                    }
                }
            })
            .collect()
    }

    /// Entries pending for longer than `claim_idle_ms` with consumers that stopped,
    /// taken over by this one.
    async fn claim_stale(&self, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let mut conn = self.consumer().await?;
        let reply: redis::streams::StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(self.claim_idle_ms)
            .arg("0-0")
            .arg("COUNT")
            .arg(max)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let claimed = self.parse_entries(reply.claimed);
        self.stats
            .reclaimed
            .fetch_add(claimed.len() as u64, Ordering::Relaxed);
        Ok(claimed)
    }
}

#[async_trait]
impl ClickQueue for RedisStreamQueue {
    fn offer(&self, click: RawClick) -> bool {
        offer_to(&self.tx, &self.stats, click)
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let result = async {
            let due = {
                let mut last = self.last_claim.lock().await;
                let due = last.elapsed() >= CLAIM_EVERY;
                if due {
                    *last = Instant::now();
                }
                due
            };
            if due {
                let claimed = self.claim_stale(max).await?;
                if !claimed.is_empty() {
                    tracing::info!(
                        claimed = claimed.len(),
                        "took over clicks of a stopped worker"
                    );
                    return Ok(claimed);
                }
            }
            let mut conn = self.consumer().await?;
            let options = redis::streams::StreamReadOptions::default()
                .group(GROUP, &self.consumer)
                .count(max)
                .block(wait.as_millis().max(1) as usize);
            let reply: Option<redis::streams::StreamReadReply> = conn
                .xread_options(&[&self.stream], &[">"], &options)
                .await
                .map_err(unavailable)?;
            Ok(reply
                .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
                .map(|ids| self.parse_entries(ids))
                .unwrap_or_default())
        }
        .await;
        match result {
            Ok(deliveries) => {
                self.stats
                    .delivered
                    .fetch_add(deliveries.len() as u64, Ordering::Relaxed);
                Ok(deliveries)
            }
            Err(e) => {
                self.forget_consumer().await;
                Err(e)
            }
        }
    }

    async fn ack(&self, deliveries: &[Delivery]) -> Result<(), QueueError> {
        let ids: Vec<&str> = deliveries
            .iter()
            .filter_map(|d| d.entry.as_deref())
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.consumer().await?;
        let acked: u64 = redis::cmd("XACK")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(&ids)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        self.stats.acked.fetch_add(acked, Ordering::Relaxed);
        Ok(())
    }

    fn depth(&self) -> u64 {
        (self.tx.max_capacity() - self.tx.capacity()) as u64
    }

    fn stats(&self) -> &QueueStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Snowflake;

    fn click(n: u64) -> RawClick {
        RawClick {
            event_id: Snowflake::from_parts(n, 0, 0),
            link_id: Snowflake::from_parts(1, 0, 0),
            at_ms: 1_800_000_000_000,
            referrer: String::new(),
            user_agent: String::new(),
            client: String::new(),
        }
    }

    #[tokio::test]
    async fn a_full_memory_queue_drops_and_counts_without_waiting() {
        let q = MemoryQueue::new(3);
        let accepted = (0..10).filter(|n| q.offer(click(*n))).count();
        assert_eq!(accepted, 3);
        assert_eq!(q.stats().dropped.load(Ordering::Relaxed), 7);
        assert_eq!(q.depth(), 3);
        let got = q.receive(10, Duration::from_millis(10)).await.unwrap();
        assert_eq!(got.len(), 3);
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
}
