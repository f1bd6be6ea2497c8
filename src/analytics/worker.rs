//! The analytics worker: takes clicks off the queue in batches (by size and by time),
//! derives their families, and has the store count them exactly once; acknowledges
//! only after the commit. Also prunes raw events past their retention.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use std::collections::HashMap;

use super::event::{classify, Families};
use super::queue::{ClickQueue, Delivery};
use crate::store::LinkStore;

/// Worker settings (`[analytics]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsSettings {
    /// Whether redirects record clicks at all.
    pub enabled: bool,
    /// Whether `serve` runs a worker in process (always in the memory queue mode; with
    /// Redis Streams, turn it off when `shortener worker` runs separately).
    pub worker_in_serve: bool,
    /// Most clicks written in one batch.
    pub batch_size: usize,
    /// Longest a click waits in a partial batch, in milliseconds.
    pub flush_interval_ms: u64,
    /// Raw click events older than this are deleted (the rollups stay), in days.
    pub retention_days: u32,
    /// How often retention runs, in seconds.
    pub prune_every_s: u64,
}

impl Default for AnalyticsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            worker_in_serve: true,
            batch_size: 5_000,
            flush_interval_ms: 200,
            retention_days: 90,
            prune_every_s: 3_600,
        }
    }
}

/// Counters (exported as metrics).
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Batches committed.
    pub batches: AtomicU64,
    /// Clicks counted (newly inserted).
    pub counted: AtomicU64,
    /// Clicks delivered again after they were counted (redelivery), not counted twice.
    pub duplicates: AtomicU64,
    /// Batches that failed and were left for redelivery.
    pub failures: AtomicU64,
    /// Milliseconds between the newest click of the last batch and its commit.
    pub lag_ms: AtomicU64,
    /// Raw events removed by retention.
    pub pruned: AtomicU64,
}

/// Whether a batch is acknowledged after its commit (tests skip it to play a worker
/// that dies between the commit and `XACK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    AfterCommit,
    Never,
}

/// Counts clicks.
pub struct Worker {
    queue: Arc<dyn ClickQueue>,
    store: Arc<dyn LinkStore>,
    settings: AnalyticsSettings,
    parser: woothee::parser::Parser,
    stats: Arc<WorkerStats>,
}

impl Worker {
    /// A worker from `queue` into `store`.
    pub fn new(
        queue: Arc<dyn ClickQueue>,
        store: Arc<dyn LinkStore>,
        settings: AnalyticsSettings,
    ) -> Self {
        Self {
            queue,
            store,
            settings,
            parser: woothee::parser::Parser::new(),
            stats: Arc::new(WorkerStats::default()),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<WorkerStats> {
        &self.stats
    }

    /// Gathers one batch: waits for a first click up to `flush_interval`, then keeps
    /// taking until `batch_size` or until the interval since the first has passed. When
    /// `stop` fires it returns what it holds at once: a batch in hand is never dropped.
    pub async fn gather(&self, stop: &CancellationToken) -> Vec<Delivery> {
        let interval = Duration::from_millis(self.settings.flush_interval_ms);
        let max = self.settings.batch_size;
        let first = tokio::select! {
            r = self.queue.receive(max, interval) => r,
            () = stop.cancelled() => return Vec::new(),
        };
        let mut batch = match first {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "click queue unavailable");
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = stop.cancelled() => {}
                }
                return Vec::new();
            }
        };
        let started = Instant::now();
        while !batch.is_empty() && batch.len() < max {
            let left = interval.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            let more = tokio::select! {
                r = self.queue.receive(max - batch.len(), left) => r,
                () = stop.cancelled() => break,
            };
            match more {
                Ok(more) if more.is_empty() => break,
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        batch
    }

    /// Counts a batch in one transaction per shard, then acknowledges it.
    ///
    /// # Errors
    /// When the store fails: nothing is acknowledged, so the batch is delivered again
    /// (Redis) or, in process, retried by the caller.
    pub async fn process(&self, batch: &[Delivery], ack: Ack) -> anyhow::Result<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        let mut families: HashMap<&str, Families> = HashMap::new();
        let records: Vec<_> = batch
            .iter()
            .map(|d| {
                let ua = d.click.user_agent.as_str();
                let f = families
                    .entry(ua)
                    .or_insert_with(|| classify(&self.parser, ua));
                d.click.clone().into_record_with(f)
            })
            .collect();
        let newest = records.iter().map(|r| r.at).max();
        let counted = self.store.record_clicks(&records).await?;
        if ack == Ack::AfterCommit {
            self.queue.ack(batch).await?;
        }
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.counted.fetch_add(counted, Ordering::Relaxed);
        self.stats
            .duplicates
            .fetch_add(records.len() as u64 - counted, Ordering::Relaxed);
        if let Some(newest) = newest {
            let lag = (Utc::now() - newest).num_milliseconds().max(0) as u64;
            self.stats.lag_ms.store(lag, Ordering::Relaxed);
        }
        Ok(counted)
    }

    async fn process_with_retry(&self, batch: Vec<Delivery>, stop: &CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.process(&batch, Ack::AfterCommit).await {
                Ok(_) => return,
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(clicks = batch.len(), error = %format!("{e:#}"), "click batch failed; retrying");
                    // With Redis the entries stay pending and another worker can take
                    // them; in process, this worker is the only holder, so it retries
                    // until it succeeds or is told to stop.
                    if stop.is_cancelled() && batch.iter().all(|d| d.entry.is_some()) {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    if stop.is_cancelled() && backoff >= Duration::from_secs(5) {
                        tracing::error!(
                            lost = batch.len(),
                            "giving up on a click batch at shutdown"
                        );
                        return;
                    }
                }
            }
        }
    }

    /// Runs until `stop`, then drains what the queue still holds in this process,
    /// counts it and returns.
    pub async fn run(&self, stop: CancellationToken) {
        let prune_every = Duration::from_secs(self.settings.prune_every_s.max(1));
        let mut last_prune = Instant::now();
        while !stop.is_cancelled() {
            let batch = self.gather(&stop).await;
            self.process_with_retry(batch, &stop).await;
            if last_prune.elapsed() >= prune_every {
                last_prune = Instant::now();
                self.prune().await;
            }
        }
        // Drain: everything already queued is counted before the process exits.
        loop {
            let batch = match self
                .queue
                .receive(self.settings.batch_size, Duration::from_millis(1))
                .await
            {
                Ok(b) if !b.is_empty() => b,
                _ => break,
            };
            self.process_with_retry(batch, &stop).await;
        }
        tracing::info!(
            counted = self.stats.counted.load(Ordering::Relaxed),
            "analytics worker stopped"
        );
    }

    /// Deletes raw events past the retention (rollups are untouched).
    pub async fn prune(&self) {
        let before = Utc::now() - chrono::Duration::days(i64::from(self.settings.retention_days));
        match self.store.prune_clicks(before).await {
            Ok(n) => {
                self.stats.pruned.fetch_add(n, Ordering::Relaxed);
                if n > 0 {
                    tracing::info!(removed = n, %before, "pruned raw click events");
                }
            }
            Err(e) => tracing::warn!(error = %e, "pruning click events failed"),
        }
    }
}
