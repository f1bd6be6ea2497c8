//! The Redis Streams queue: a producer that appends many clicks per entry, and the
//! consumer side every worker uses.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::AsyncCommands as _;
use tokio::sync::{mpsc, Mutex};

use super::entry::{encode_entry, view_entry, LegacyClick};
use super::{drain, ClickQueue, Delivery, Inlet, QueueError, QueueSettings, QueueStats};
use crate::domain::click::{ClientNet, RawClick, UnitId};
use crate::domain::Snowflake;
use crate::telemetry::chain;

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
    inlet: Inlet,
    buffer: Mutex<mpsc::Receiver<RawClick>>,
    /// The consumer's own connection: `XREADGROUP … BLOCK` must not hold up others.
    consumer_conn: Mutex<Option<redis::aio::MultiplexedConnection>>,
    last_claim: Mutex<Instant>,
    group_ready: std::sync::atomic::AtomicBool,
    /// Names this producer's entries (see [`UnitId`]).
    producer: i64,
    stats: QueueStats,
}

/// How often a stopping producer looks whether the queue has closed.
const CLOSE_POLL: Duration = Duration::from_millis(10);

fn unavailable(e: impl Into<anyhow::Error>) -> QueueError {
    QueueError::Unavailable(e.into())
}

/// An entry ready to append: its unit ID and payload, kept until Redis has it so that a
/// retry appends the same unit (which the click store counts once).
struct Outgoing {
    unit: UnitId,
    payload: Vec<u8>,
    clicks: usize,
}

impl RedisStreamQueue {
    /// A queue on the stream `{prefix}clicks` of the Redis at `url`.
    ///
    /// # Errors
    /// When the URL is not a Redis URL.
    pub fn new(url: &str, prefix: &str, settings: &QueueSettings) -> anyhow::Result<Self> {
        let (inlet, rx) = Inlet::new(settings.capacity);
        let consumer = settings
            .consumer
            .clone()
            .unwrap_or_else(crate::telemetry::instance_name);
        Ok(Self {
            client: redis::Client::open(url)?,
            stream: format!("{prefix}clicks"),
            consumer,
            maxlen: settings.stream_maxlen,
            claim_idle_ms: crate::duration::whole_millis(settings.claim_idle_ms),
            entry_clicks: settings.entry_clicks.max(1),
            entry_linger: settings.entry_linger_ms.max(Duration::from_millis(1)),
            inlet,
            buffer: Mutex::new(rx),
            consumer_conn: Mutex::new(None),
            last_claim: Mutex::new(Instant::now() - CLAIM_EVERY),
            group_ready: std::sync::atomic::AtomicBool::new(false),
            producer: rand::random(),
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
                unit: UnitId {
                    first: first.event_id,
                    producer: self.producer,
                },
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
    /// `stop` fires it goes on until the queue is closed (requests still in flight
    /// may offer clicks), then pushes what is left once and returns.
    pub async fn run_producer(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut conn: Option<redis::aio::MultiplexedConnection> = None;
        let mut pending: Vec<Outgoing> = Vec::new();
        let mut backoff = Duration::ZERO;
        loop {
            let linger = self.entry_linger.max(backoff);
            if stop.is_cancelled() {
                tokio::time::sleep(linger.min(CLOSE_POLL)).await;
            } else {
                tokio::select! {
                    () = tokio::time::sleep(linger) => {}
                    () = stop.cancelled() => {}
                }
            }
            let stopping = stop.is_cancelled() && self.is_closed();
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
                        tracing::error!(lost = clicks, error = %chain(&e), "Redis unavailable at shutdown; buffered clicks lost");
                        return;
                    }
                    tracing::warn!(buffered = clicks, error = %chain(&e), "XADD failed; retrying");
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
                .arg(e.unit.first.get())
                .arg("p")
                .arg(e.unit.producer)
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
            .map(|entry| match parse_entry(&entry) {
                Ok(mut d) => {
                    d.entry = Some(entry.id);
                    d
                }
                Err(e) => {
                    tracing::warn!(entry = %entry.id, error = %e, "unreadable click entry skipped");
                    Delivery {
                        entry: Some(entry.id),
                        ..Delivery::default()
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

/// An entry's unit and clicks: the current encoding (`u`, `p`, `k`; entries of earlier
/// versions have no `p`, producer 0), or the one-click JSON entries (`c`) of older
/// ones, whose unit is the click's own event ID.
fn parse_entry(entry: &redis::streams::StreamId) -> anyhow::Result<Delivery> {
    if let Some(payload) = entry.get::<Vec<u8>>("k") {
        let first = entry
            .get::<u64>("u")
            .and_then(Snowflake::from_u64)
            .ok_or_else(|| anyhow::anyhow!("no unit ID"))?;
        let unit = UnitId {
            first,
            producer: entry.get::<i64>("p").unwrap_or(0),
        };
        let n = view_entry(&payload)?.clicks.len();
        return Ok(Delivery {
            unit: Some(unit),
            packed: Some((payload, n)),
            ..Delivery::default()
        });
    }
    let legacy: String = entry
        .get("c")
        .ok_or_else(|| anyhow::anyhow!("neither k nor c"))?;
    let c: LegacyClick = serde_json::from_str(&legacy)?;
    Ok(Delivery {
        unit: Some(UnitId {
            first: c.event_id,
            producer: 0,
        }),
        clicks: vec![RawClick {
            event_id: c.event_id,
            link_id: c.link_id,
            at_ms: c.at_ms,
            referrer: c.referrer,
            user_agent: c.user_agent,
            client: ClientNet::parse(&c.client),
            visitor: 0,
            extra: None,
        }],
        ..Delivery::default()
    })
}

#[async_trait]
impl ClickQueue for RedisStreamQueue {
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
                let clicks: usize = deliveries.iter().map(Delivery::len).sum();
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
        self.inlet.depth()
    }

    fn stats(&self) -> &QueueStats {
        &self.stats
    }
}
