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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Mutex};

use crate::domain::click::{ClientNet, RawClick};
use crate::domain::Snowflake;

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
    pub claim_idle_ms: u64,
    /// Redis: this consumer's name in the group (default: host name and process ID).
    pub consumer: Option<String>,
    /// Redis: most clicks in one stream entry.
    pub entry_clicks: usize,
    /// Redis: how long the producer gathers clicks into one entry, in milliseconds.
    pub entry_linger_ms: u64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            kind: QueueKind::Memory,
            capacity: 65_536,
            stream_maxlen: 100_000,
            claim_idle_ms: 30_000,
            consumer: None,
            entry_clicks: 2_048,
            entry_linger_ms: 20,
        }
    }
}

/// Why the queue could not deliver or acknowledge.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(String),
}

/// Clicks handed to the worker, with what it takes to count and acknowledge them.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    /// The unit these clicks are counted as, when the producer named one (a stream
    /// entry). `None` for the in-process queue: the worker names its flush instead.
    pub unit: Option<Snowflake>,
    /// The stream entry ID to acknowledge (Redis); `None` in process.
    pub entry: Option<String>,
    pub clicks: Vec<RawClick>,
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
    /// Offers a click without waiting. Returns false, and counts a drop, when full.
    fn offer(&self, click: RawClick) -> bool;

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
        offer_to(&self.tx, &self.stats, click)
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
            unit: None,
            entry: None,
            clicks,
        }])
    }

    async fn ack(&self, _entries: &[String]) -> Result<(), QueueError> {
        Ok(())
    }

    fn in_process(&self) -> bool {
        true
    }

    fn depth(&self) -> u64 {
        (self.tx.max_capacity() - self.tx.capacity()) as u64
    }

    fn stats(&self) -> &QueueStats {
        &self.stats
    }
}

/// The version byte that starts every encoded entry.
const ENTRY_V1: u8 = 1;

/// One click of an encoded entry: its strings are indices into the entry's table.
#[derive(Serialize, Deserialize)]
struct PackedClick {
    event_id: u64,
    link_id: u64,
    at_ms: u64,
    referrer: u32,
    user_agent: u32,
    client: ClientNet,
}

/// An encoded entry: every distinct string once, then the clicks (postcard: varints
/// and length-prefixed strings, about 30 bytes a click besides the strings).
#[derive(Serialize, Deserialize)]
struct PackedEntry<'a> {
    #[serde(borrow)]
    strings: Vec<&'a str>,
    clicks: Vec<PackedClick>,
}

/// Encodes clicks into one stream entry's payload.
pub fn encode_entry(clicks: &[RawClick]) -> Vec<u8> {
    let mut index: HashMap<&str, u32> = HashMap::new();
    let mut strings: Vec<&str> = Vec::new();
    let mut packed = Vec::with_capacity(clicks.len());
    for c in clicks {
        let mut intern = |s| {
            *index.entry(s).or_insert_with(|| {
                strings.push(s);
                (strings.len() - 1) as u32
            })
        };
        let referrer = intern(c.referrer.as_str());
        let user_agent = intern(c.user_agent.as_str());
        packed.push(PackedClick {
            event_id: c.event_id.get(),
            link_id: c.link_id.get(),
            at_ms: c.at_ms,
            referrer,
            user_agent,
            client: c.client,
        });
    }
    let entry = PackedEntry {
        strings,
        clicks: packed,
    };
    postcard::to_extend(&entry, vec![ENTRY_V1]).expect("writing to a Vec cannot fail")
}

/// Decodes an entry's payload.
///
/// # Errors
/// When it is not an entry of a known version.
pub fn decode_entry(bytes: &[u8]) -> anyhow::Result<Vec<RawClick>> {
    let Some((&ENTRY_V1, body)) = bytes.split_first() else {
        anyhow::bail!("unknown entry version");
    };
    let entry: PackedEntry<'_> = postcard::from_bytes(body)?;
    let text = |i: u32| -> anyhow::Result<String> {
        entry
            .strings
            .get(i as usize)
            .map(|s| (*s).to_owned())
            .ok_or_else(|| anyhow::anyhow!("string {i} out of range"))
    };
    entry
        .clicks
        .iter()
        .map(|p| {
            Ok(RawClick {
                event_id: Snowflake::from_u64(p.event_id)
                    .ok_or_else(|| anyhow::anyhow!("bad event id"))?,
                link_id: Snowflake::from_u64(p.link_id)
                    .ok_or_else(|| anyhow::anyhow!("bad link id"))?,
                at_ms: p.at_ms,
                referrer: text(p.referrer)?,
                user_agent: text(p.user_agent)?,
                client: p.client,
            })
        })
        .collect()
}

/// An entry written by versions that put one click per entry, as JSON in field `c`.
#[derive(Deserialize)]
struct LegacyClick {
    event_id: Snowflake,
    link_id: Snowflake,
    at_ms: u64,
    referrer: String,
    user_agent: String,
    client: String,
}

/// The consumer group every worker joins.
pub const GROUP: &str = "workers";
/// Most entries one `XREADGROUP` or `XAUTOCLAIM` asks for.
const READ_ENTRIES: usize = 64;
/// How often a worker looks for stale pending entries to take over.
const CLAIM_EVERY: Duration = Duration::from_secs(1);

/// Clicks in a Redis stream.
pub struct RedisStreamQueue {
    client: redis::Client,
    stream: String,
    consumer: String,
    maxlen: u64,
    claim_idle_ms: u64,
    entry_clicks: usize,
    entry_linger: Duration,
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

/// An entry ready to append: its unit ID and payload, kept until Redis has it so that a
/// retry appends the same unit (which the click store counts once).
struct Outgoing {
    unit: Snowflake,
    payload: Vec<u8>,
    clicks: usize,
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
            entry_clicks: settings.entry_clicks.max(1),
            entry_linger: Duration::from_millis(settings.entry_linger_ms.max(1)),
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

    /// Packs what the buffer holds into entries of at most `entry_clicks`, each named
    /// by its first click's event ID.
    async fn pack(&self, out: &mut Vec<Outgoing>) {
        let mut rx = self.buffer.lock().await;
        loop {
            let clicks = drain(&mut rx, self.entry_clicks);
            let Some(first) = clicks.first() else {
                return;
            };
            let full = clicks.len() == self.entry_clicks;
            out.push(Outgoing {
                unit: first.event_id,
                payload: encode_entry(&clicks),
                clicks: clicks.len(),
            });
            if !full {
                return;
            }
        }
    }

    /// Every `entry_linger_ms`, packs the buffer into entries and appends them (one
    /// pipelined round trip); retries with backoff while Redis is down, keeping each
    /// entry's unit ID (the buffer absorbs new clicks meanwhile, then drops). When
    /// `stop` fires it pushes what is left once and returns.
    pub async fn run_producer(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut conn: Option<redis::aio::MultiplexedConnection> = None;
        let mut pending: Vec<Outgoing> = Vec::new();
        let mut backoff = Duration::ZERO;
        loop {
            let stopping = tokio::select! {
                () = tokio::time::sleep(self.entry_linger.max(backoff)) => false,
                () = stop.cancelled() => true,
            };
            self.pack(&mut pending).await;
            if pending.is_empty() {
                if stopping {
                    return;
                }
                continue;
            }
            match self.xadd(&mut conn, &pending).await {
                Ok(()) => {
                    pending.clear();
                    backoff = Duration::ZERO;
                }
                Err(e) => {
                    conn = None;
                    let clicks: usize = pending.iter().map(|o| o.clicks).sum();
                    if stopping {
                        tracing::error!(lost = clicks, error = %e, "Redis unavailable at shutdown; buffered clicks lost");
                        return;
                    }
                    tracing::warn!(buffered = clicks, error = %e, "XADD failed; retrying");
                    backoff =
                        (backoff * 2).clamp(Duration::from_millis(50), Duration::from_secs(2));
                }
            }
            if stopping {
                return;
            }
        }
    }

    async fn xadd(
        &self,
        conn: &mut Option<redis::aio::MultiplexedConnection>,
        entries: &[Outgoing],
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
        for e in entries {
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.maxlen)
                .arg("*")
                .arg("u")
                .arg(e.unit.get())
                .arg("k")
                .arg(&e.payload)
                .ignore();
        }
        pipe.query_async::<()>(c).await.map_err(unavailable)?;
        self.stats
            .entries
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        Ok(())
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

    /// Entries as deliveries. An entry that cannot be read is delivered with no clicks,
    /// so that it is acknowledged rather than taken over forever.
    fn parse_entries(entries: Vec<redis::streams::StreamId>) -> Vec<Delivery> {
        entries
            .into_iter()
            .map(|entry| {
                let parsed = parse_entry(&entry);
                match parsed {
                    Ok((unit, clicks)) => Delivery {
                        unit: Some(unit),
                        entry: Some(entry.id),
                        clicks,
                    },
                    Err(e) => {
                        tracing::warn!(entry = %entry.id, error = %e, "unreadable click entry skipped");
                        Delivery {
                            unit: None,
                            entry: Some(entry.id),
                            clicks: Vec::new(),
                        }
                    }
                }
            })
            .collect()
    }

    /// Entries pending for longer than `claim_idle_ms` with consumers that stopped,
    /// taken over by this one.
    async fn claim_stale(&self) -> Result<Vec<Delivery>, QueueError> {
        let mut conn = self.consumer().await?;
        let reply: redis::streams::StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(self.claim_idle_ms)
            .arg("0-0")
            .arg("COUNT")
            .arg(READ_ENTRIES)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let claimed = Self::parse_entries(reply.claimed);
        self.stats
            .reclaimed
            .fetch_add(claimed.len() as u64, Ordering::Relaxed);
        Ok(claimed)
    }
}

/// An entry's unit and clicks: the current encoding (`u`, `k`), or the one-click JSON
/// entries (`c`) of earlier versions, whose unit is the click's own event ID.
fn parse_entry(entry: &redis::streams::StreamId) -> anyhow::Result<(Snowflake, Vec<RawClick>)> {
    if let Some(payload) = entry.get::<Vec<u8>>("k") {
        let unit = entry
            .get::<u64>("u")
            .and_then(Snowflake::from_u64)
            .ok_or_else(|| anyhow::anyhow!("no unit ID"))?;
        return Ok((unit, decode_entry(&payload)?));
    }
    let legacy: String = entry
        .get("c")
        .ok_or_else(|| anyhow::anyhow!("neither k nor c"))?;
    let c: LegacyClick = serde_json::from_str(&legacy)?;
    Ok((
        c.event_id,
        vec![RawClick {
            event_id: c.event_id,
            link_id: c.link_id,
            at_ms: c.at_ms,
            referrer: c.referrer,
            user_agent: c.user_agent,
            client: ClientNet::parse(&c.client),
        }],
    ))
}

#[async_trait]
impl ClickQueue for RedisStreamQueue {
    fn offer(&self, click: RawClick) -> bool {
        offer_to(&self.tx, &self.stats, click)
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let entries = (max / self.entry_clicks).clamp(1, READ_ENTRIES);
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
                let claimed = self.claim_stale().await?;
                if !claimed.is_empty() {
                    tracing::info!(
                        entries = claimed.len(),
                        "took over click entries of a stopped worker"
                    );
                    return Ok(claimed);
                }
            }
            let mut conn = self.consumer().await?;
            let options = redis::streams::StreamReadOptions::default()
                .group(GROUP, &self.consumer)
                .count(entries)
                .block(wait.as_millis().max(1) as usize);
            let reply: Option<redis::streams::StreamReadReply> = conn
                .xread_options(&[&self.stream], &[">"], &options)
                .await
                .map_err(unavailable)?;
            Ok(reply
                .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
                .map(Self::parse_entries)
                .unwrap_or_default())
        }
        .await;
        match result {
            Ok(deliveries) => {
                let clicks: usize = deliveries.iter().map(|d| d.clicks.len()).sum();
                self.stats
                    .delivered
                    .fetch_add(clicks as u64, Ordering::Relaxed);
                Ok(deliveries)
            }
            Err(e) => {
                self.forget_consumer().await;
                Err(e)
            }
        }
    }

    async fn ack(&self, entries: &[String]) -> Result<(), QueueError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut conn = self.consumer().await?;
        let acked: u64 = redis::cmd("XACK")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(entries)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        self.stats.acked.fetch_add(acked, Ordering::Relaxed);
        Ok(())
    }

    fn in_process(&self) -> bool {
        false
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
            client: ClientNet::Unknown,
        }
    }

    fn clicks(d: &[Delivery]) -> usize {
        d.iter().map(|d| d.clicks.len()).sum()
    }

    #[test]
    fn an_entry_decodes_to_the_clicks_it_was_made_of_and_is_compact() {
        let mut batch: Vec<RawClick> = (0..500).map(click).collect();
        for (i, c) in batch.iter_mut().enumerate() {
            c.user_agent = format!("agent/{}", i % 3);
            c.referrer = if i % 2 == 0 {
                "https://a.example/x".into()
            } else {
                String::new()
            };
            c.client = ClientNet::parse("203.0.113.9");
        }
        let payload = encode_entry(&batch);
        assert_eq!(decode_entry(&payload).unwrap(), batch);
        let json: usize = batch
            .iter()
            .map(|c| serde_json::to_string(c).unwrap().len())
            .sum();
        assert!(
            payload.len() * 5 < json,
            "{} bytes against {json} as JSON",
            payload.len()
        );
        assert!(decode_entry(&payload[1..]).is_err(), "no version byte");
        assert!(
            decode_entry(&payload[..payload.len() / 2]).is_err(),
            "cut short"
        );
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
}
