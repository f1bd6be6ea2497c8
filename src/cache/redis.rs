//! L2: Redis, shared by every instance.
//!
//! Keys are `{prefix}link:v1:{code}` (the version names the value format). Every call
//! has a tight timeout and goes through a circuit breaker: with Redis down or slow the
//! tier answers "skipped" at once and the chain falls through to the store. Tombstones
//! for deleted links that could not be written are queued and written when Redis is
//! back. Invalidations travel over pub/sub on `{prefix}invalidate`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use deadpool_redis::{Pool, Runtime};
use futures::StreamExt;
use rand::Rng;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::breaker::{Breaker, BreakerState};
use super::local::LocalTier;
use super::{CacheError, CacheTier, Cached};
use crate::shutdown::Shutdown;
use crate::telemetry::chain;

/// Most deletions remembered for replay while Redis is unreachable.
const MAX_PENDING: usize = 10_000;
/// How often queued tombstones are retried.
const REPLAY_EVERY: Duration = Duration::from_millis(500);

/// Redis settings (`[redis]`; absent means no L2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `redis://host:port/db`.
    pub url: String,
    /// Prepended to every key and channel, so several deployments (or tests) can share
    /// one Redis.
    pub key_prefix: String,
    /// Lifetime of a cached link, in seconds (±10% jitter so entries cached together do
    /// not expire together).
    #[serde(with = "crate::duration::secs")]
    pub ttl_s: Duration,
    /// Longest any Redis call may take, in milliseconds, before it counts as failed.
    #[serde(with = "crate::duration::ms")]
    pub timeout_ms: Duration,
    /// Connections in the pool.
    pub pool_size: usize,
    /// Consecutive failures that open the breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before a probe, in milliseconds.
    #[serde(with = "crate::duration::ms")]
    pub breaker_open_ms: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "shortener:".into(),
            ttl_s: Duration::from_secs(86_400),
            timeout_ms: Duration::from_millis(50),
            pool_size: 8,
            breaker_failures: 3,
            breaker_open_ms: Duration::from_millis(2_000),
        }
    }
}

/// The Redis tier.
pub struct RedisTier {
    pool: Pool,
    /// One multiplexed connection, cloned for every call. redis-rs multiplexes
    /// concurrent commands over it; taking a pooled object per call instead would cost a
    /// `PING` round trip per checkout (deadpool-redis recycles that way) and halve the
    /// L2 hit rate. Dropped on any error, so the next call gets a fresh one from the pool.
    shared: Mutex<Option<MultiplexedConnection>>,
    client: redis::Client,
    prefix: String,
    channel: String,
    ttl: Duration,
    negative_ttl: Duration,
    timeout: Duration,
    breaker: Breaker,
    pending: Mutex<Vec<(String, Cached)>>,
    has_pending: AtomicBool,
}

impl RedisTier {
    /// A tier on `settings.url`. Connects lazily: Redis being down at startup only opens
    /// the breaker.
    ///
    /// # Errors
    /// When the URL is not a Redis URL.
    pub fn new(settings: &RedisSettings, negative_ttl: Duration) -> anyhow::Result<Self> {
        let timeout = settings.timeout_ms;
        let client = redis::Client::open(settings.url.as_str())?;
        let pool = deadpool_redis::Config::from_url(settings.url.clone())
            .builder()?
            .max_size(settings.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout.max(Duration::from_millis(500))))
            .recycle_timeout(Some(timeout))
            .build()?;
        Ok(Self {
            pool,
            shared: Mutex::new(None),
            client,
            channel: format!("{}invalidate", settings.key_prefix),
            prefix: settings.key_prefix.clone(),
            ttl: settings.ttl_s,
            negative_ttl,
            timeout,
            breaker: Breaker::new("redis", settings.breaker_failures, settings.breaker_open_ms),
            pending: Mutex::new(Vec::new()),
            has_pending: AtomicBool::new(false),
        })
    }

    /// The breaker's state (for the gauge and tests).
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// The key of a code.
    pub fn key(&self, code: &str) -> String {
        format!("{}link:v1:{code}", self.prefix)
    }

    fn ttl_ms(&self, value: &Cached) -> u64 {
        let base = value
            .ttl(self.ttl, self.negative_ttl, Utc::now())
            .as_millis() as u64;
        let jitter = base / 10;
        if jitter == 0 {
            return base.max(1);
        }
        rand::rng().random_range(base - jitter..=base + jitter)
    }

    /// Runs one Redis command under the timeout and the breaker.
    async fn call<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, CacheError> {
        if !self.breaker.allow() {
            return Err(CacheError::BreakerOpen);
        }
        let attempt = async {
            let mut conn = self.connection().await?;
            cmd.query_async::<T>(&mut conn)
                .await
                .map_err(|e| CacheError::Unavailable(e.into()))
        };
        let result = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(CacheError::Timeout),
        };
        match &result {
            Ok(_) => self.breaker.on_success(),
            Err(_) => {
                self.breaker.on_failure();
                if let Ok(mut shared) = self.shared.lock() {
                    shared.take();
                }
            }
        }
        result
    }

    async fn connection(&self) -> Result<MultiplexedConnection, CacheError> {
        if let Some(conn) = self.shared.lock().ok().and_then(|s| s.clone()) {
            return Ok(conn);
        }
        let pooled = self
            .pool
            .get()
            .await
            .map_err(|e| CacheError::Unavailable(e.into()))?;
        let conn = deadpool_redis::Connection::take(pooled);
        if let Ok(mut shared) = self.shared.lock() {
            *shared = Some(conn.clone());
        }
        Ok(conn)
    }

    fn set_cmd(&self, code: &str, value: &Cached, only_if_absent: bool) -> redis::Cmd {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(code))
            .arg(value.encode())
            .arg("PX")
            .arg(self.ttl_ms(value));
        if only_if_absent {
            cmd.arg("NX");
        }
        cmd
    }

    /// Writes a tombstone, or queues it for replay when Redis cannot take it now, so a
    /// deleted link is never served from a stale Redis entry once Redis is back.
    pub async fn put_or_queue(&self, code: &str, value: &Cached) {
        if self.put(code, value).await.is_err() {
            if let Ok(mut pending) = self.pending.lock() {
                if pending.len() < MAX_PENDING {
                    pending.push((code.to_owned(), value.clone()));
                    self.has_pending.store(true, Ordering::Release);
                } else {
                    tracing::error!(
                        code,
                        "invalidation replay queue full; entry may stay stale until its TTL"
                    );
                }
            }
        }
    }

    /// Tells every instance to drop `code` from its L1. Best effort: an instance that
    /// misses it serves the old entry for at most the L1 TTL.
    pub async fn publish_invalidation(&self, code: &str) {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(&self.channel).arg(code);
        if let Err(e) = self.call::<i64>(cmd).await {
            tracing::debug!(code, error = %chain(&e), "could not publish an invalidation");
        }
    }

    async fn replay_pending(&self) {
        if !self.has_pending.load(Ordering::Acquire) {
            return;
        }
        let batch = match self.pending.lock() {
            Ok(mut p) => {
                self.has_pending.store(false, Ordering::Release);
                std::mem::take(&mut *p)
            }
            Err(_) => return,
        };
        for (i, (code, value)) in batch.iter().enumerate() {
            if self.put(code, value).await.is_err() {
                // Still down: keep the rest for the next round.
                if let Ok(mut p) = self.pending.lock() {
                    p.extend(batch[i..].iter().cloned());
                    self.has_pending.store(true, Ordering::Release);
                }
                return;
            }
            self.publish_invalidation(code).await;
        }
        if !batch.is_empty() {
            tracing::info!(replayed = batch.len(), "replayed tombstones to Redis");
        }
    }

    /// Starts the background work: listening for invalidations (evicting them from
    /// `l1`) and replaying queued tombstones. After every (re)subscription the whole L1
    /// is dropped, since invalidations sent while unsubscribed were missed.
    /// Both end when `shutdown` begins.
    pub fn spawn_background(
        self: &Arc<Self>,
        l1: Option<LocalTier>,
        shutdown: &Shutdown,
    ) -> Vec<JoinHandle<()>> {
        let replayer = {
            let tier = self.clone();
            shutdown.spawn_until(async move {
                let mut tick = tokio::time::interval(REPLAY_EVERY);
                loop {
                    tick.tick().await;
                    tier.replay_pending().await;
                }
            })
        };
        let Some(l1) = l1 else {
            return vec![replayer];
        };
        let tier = self.clone();
        let listener = shutdown.spawn_until(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match tier.listen(&l1).await {
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(e) => {
                        tracing::debug!(error = %chain(&e), "invalidation subscription failed")
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        });
        vec![replayer, listener]
    }

    async fn listen(&self, l1: &LocalTier) -> redis::RedisResult<()> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(&self.channel).await?;
        l1.clear();
        tracing::info!(channel = %self.channel, "listening for cache invalidations");
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            if let Ok(code) = message.get_payload::<String>() {
                l1.remove(&code).await;
            }
        }
        tracing::warn!("invalidation subscription lost; resubscribing");
        Ok(())
    }
}

/// `SET key value PX ttl` unless the key holds the tombstone `ARGV[3]`; 1 when set.
const PUT_UNLESS_GONE: &str = "if redis.call('GET', KEYS[1]) == ARGV[3] then return 0 end \
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1";

#[async_trait]
impl CacheTier for RedisTier {
    async fn get(&self, code: &str) -> Result<Option<Cached>, CacheError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(code));
        let raw: Option<String> = self.call(cmd).await?;
        Ok(raw.and_then(|r| Cached::decode(&r)))
    }

    async fn fill(&self, code: &str, value: &Cached) -> Result<(), CacheError> {
        self.call::<Option<String>>(self.set_cmd(code, value, true))
            .await
            .map(drop)
    }

    /// Replaces the value, except a deleted link's tombstone: a deletion is final, so
    /// an edit that raced it and lands later cannot bring the link back (one script,
    /// so the compare and the write are one step on the server).
    async fn put(&self, code: &str, value: &Cached) -> Result<(), CacheError> {
        if matches!(value, Cached::Gone) {
            return self
                .call::<Option<String>>(self.set_cmd(code, value, false))
                .await
                .map(drop);
        }
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(PUT_UNLESS_GONE)
            .arg(1)
            .arg(self.key(code))
            .arg(value.encode())
            .arg(self.ttl_ms(value))
            .arg(Cached::Gone.encode());
        self.call::<i64>(cmd).await.map(drop)
    }
}
