//! The analytics worker: gathers clicks off the queue for a window
//! (`flush_interval_ms`, or until `batch_size` clicks), classifies them (each distinct
//! user agent once), and has the click store count the window as a whole: summed per
//! link and day in process, one row write per (link, day) per flush, exactly once per
//! unit. Acknowledges stream entries only after the commit. Also prunes raw events and
//! old unit IDs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::event::Classifier;
use super::geo::GeoDb;
use super::queue::{view_entry, ClickQueue, Delivery};
use crate::domain::click::{ClickRecord, ClickUnit, UnitId};
use crate::store::clicks::ClickStore;

/// Worker settings (`[analytics]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsSettings {
    /// Whether redirects record clicks at all.
    pub enabled: bool,
    /// Whether `serve` runs a worker in process (always in the memory queue mode; with
    /// Redis Streams, turn it off when `shortener worker` runs separately).
    pub worker_in_serve: bool,
    /// Most clicks summed into one flush (a bound on the worker's memory).
    pub batch_size: usize,
    /// The window: how long clicks are summed in process before they are written, in
    /// milliseconds. Stats lag clicks by about this much; a longer window writes a
    /// link clicked often once instead of many times.
    #[serde(with = "crate::duration::ms")]
    pub flush_interval_ms: Duration,
    /// Share of clicks whose raw event is kept (0 = none, the default; 1 = all),
    /// sampled by event ID. Counts never depend on it.
    pub raw_events: f64,
    /// Raw click events older than this are deleted (the counts stay), in days.
    pub retention_days: u32,
    /// How long the IDs of counted units are remembered, in hours: a unit delivered
    /// again later than this (say, a stream entry left pending that long after its
    /// commit) would be counted twice.
    #[serde(with = "crate::duration::hours")]
    pub unit_retention_hours: Duration,
    /// How often retention runs, in seconds.
    #[serde(with = "crate::duration::secs")]
    pub prune_every_s: Duration,
}

impl Default for AnalyticsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            worker_in_serve: true,
            batch_size: 100_000,
            flush_interval_ms: Duration::from_millis(5_000),
            raw_events: 0.0,
            retention_days: 90,
            unit_retention_hours: Duration::from_secs(24 * 3600),
            prune_every_s: Duration::from_secs(3_600),
        }
    }
}

/// Counters (exported as metrics).
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Flushes committed.
    pub batches: AtomicU64,
    /// Clicks counted.
    pub counted: AtomicU64,
    /// Clicks delivered again after they were counted (redelivery), not counted twice.
    pub duplicates: AtomicU64,
    /// Flushes that failed and were retried or left for redelivery.
    pub failures: AtomicU64,
    /// Milliseconds between the newest click of the last flush and its commit.
    pub lag_ms: AtomicU64,
    /// Raw events removed by retention.
    pub pruned: AtomicU64,
    /// Rows of per-link, per-day counts written.
    pub rows: AtomicU64,
    /// Raw events kept.
    pub events: AtomicU64,
    /// Whether a location database is loaded.
    pub geo: AtomicBool,
    /// Reloads of the location database (its file changed).
    pub geo_reloads: AtomicU64,
    /// Reloads that failed (the previous data stayed).
    pub geo_reload_failures: AtomicU64,
}

/// Whether a batch is acknowledged after its commit (tests skip it to play a worker
/// that dies between the commit and `XACK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    AfterCommit,
    Never,
}

/// One flush: the units gathered, and the stream entries to acknowledge after it.
#[derive(Debug, Default)]
pub struct Batch {
    units: Vec<ClickUnit>,
    /// Clicks of the in-process queue, not yet a unit (see [`Worker::seal`]).
    loose: Vec<ClickRecord>,
    entries: Vec<String>,
    clicks: usize,
}

impl Batch {
    /// Clicks held.
    pub fn len(&self) -> usize {
        self.clicks
    }

    /// Whether there is nothing to count or acknowledge.
    pub fn is_empty(&self) -> bool {
        self.clicks == 0 && self.entries.is_empty()
    }
}

/// How often a gathering worker looks at the queue.
const TICK: Duration = Duration::from_millis(100);

/// How often a stopping worker looks whether the queue has closed.
const CLOSE_POLL: Duration = Duration::from_millis(10);

/// Counts clicks.
pub struct Worker {
    queue: Arc<dyn ClickQueue>,
    store: Arc<dyn ClickStore>,
    settings: AnalyticsSettings,
    classifier: Mutex<Classifier>,
    stats: Arc<WorkerStats>,
    /// Names the units of in-process flushes (see [`UnitId`]).
    producer: i64,
    /// The location database, and how often its file is checked for a change.
    geo: Option<(Arc<GeoDb>, Duration)>,
}

impl Worker {
    /// A worker from `queue` into `store`.
    pub fn new(
        queue: Arc<dyn ClickQueue>,
        store: Arc<dyn ClickStore>,
        settings: AnalyticsSettings,
    ) -> Self {
        Self {
            queue,
            store,
            settings,
            classifier: Mutex::new(Classifier::new()),
            stats: Arc::new(WorkerStats::default()),
            producer: rand::random(),
            geo: None,
        }
    }

    /// The same worker, placing clicks with `geo` (checked for a new file every
    /// `check_every`).
    #[must_use]
    pub fn with_geo(self, geo: Option<Arc<GeoDb>>, check_every: Duration) -> Self {
        self.stats.geo.store(geo.is_some(), Ordering::Relaxed);
        Self {
            classifier: Mutex::new(Classifier::with_geo(geo.clone())),
            geo: geo.map(|g| (g, check_every.max(Duration::from_millis(100)))),
            ..self
        }
    }

    /// Checks the location database's file every so often until `stop`, reading it
    /// again when it changed (off the async threads); the classifier takes the new data
    /// up at its next batch.
    fn spawn_geo_reloader(&self, stop: &CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
        let (geo, every) = self.geo.clone()?;
        let stats = self.stats.clone();
        let stop = stop.clone();
        Some(tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = stop.cancelled() => return,
                }
                let g = geo.clone();
                let _ = tokio::task::spawn_blocking(move || g.reload_if_changed()).await;
                let copy = |to: &AtomicU64, from: &AtomicU64| {
                    to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
                };
                copy(&stats.geo_reloads, &geo.reloads);
                copy(&stats.geo_reload_failures, &geo.reload_failures);
            }
        }))
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<WorkerStats> {
        &self.stats
    }

    fn add(&self, batch: &mut Batch, deliveries: Vec<Delivery>) {
        let Ok(mut classifier) = self.classifier.lock() else {
            return;
        };
        classifier.refresh_geo();
        for d in deliveries {
            batch.clicks += d.len();
            let mut records: Vec<ClickRecord> =
                d.clicks.iter().map(|c| classifier.record(c)).collect();
            if let Some((payload, _)) = &d.packed {
                // Checked when it was received, so it reads again.
                if let Ok(view) = view_entry(payload) {
                    classifier.records_of(&view, &mut records);
                }
            }
            match d.unit {
                Some(id) => batch.units.push(ClickUnit {
                    id,
                    clicks: records,
                }),
                None => batch.loose.extend(records),
            }
            batch.entries.extend(d.entry);
        }
    }

    /// Makes the in-process clicks of `batch` one unit. Its ID is its first click's
    /// event ID and this worker's producer number: unique (that click is in no other
    /// unit of this worker), stable across retries of the flush (which then count
    /// nothing twice), and a Snowflake of the click's time.
    fn seal(&self, batch: &mut Batch) {
        if let Some(first) = batch.loose.first() {
            let id = UnitId {
                first: first.event_id,
                producer: self.producer,
            };
            let clicks = std::mem::take(&mut batch.loose);
            batch.units.push(ClickUnit { id, clicks });
        }
    }

    async fn receive(&self, batch: &mut Batch, max: usize, wait: Duration) -> bool {
        let room = max.saturating_sub(batch.len()).max(1);
        match self.queue.receive(room, wait).await {
            Ok(d) => {
                let got = d.iter().any(|d| !d.is_empty() || d.entry.is_some());
                self.add(batch, d);
                got
            }
            Err(e) => {
                tracing::warn!(error = %crate::telemetry::chain(&e), "click queue unavailable");
                tokio::time::sleep(wait).await;
                false
            }
        }
    }

    /// Gathers one flush: looks at the queue every 100 ms (or the window, if shorter)
    /// until a first click arrives, then keeps taking until `batch_size` clicks or until
    /// the window since the first has passed. When `stop` fires it returns what it holds
    /// at once: a batch in hand is never dropped.
    pub async fn gather(&self, stop: &CancellationToken) -> Batch {
        self.gather_up_to(stop, self.settings.batch_size).await
    }

    /// [`gather`](Self::gather), holding at most `max` clicks (none: returns at once).
    async fn gather_up_to(&self, stop: &CancellationToken, max: usize) -> Batch {
        let window = self.settings.flush_interval_ms;
        let tick = TICK.min(window).max(Duration::from_millis(1));
        let mut batch = Batch::default();
        if max > 0 {
            loop {
                tokio::select! {
                    _ = self.receive(&mut batch, max, tick) => {}
                    () = stop.cancelled() => break,
                }
                if !batch.is_empty() {
                    break;
                }
            }
        }
        let started = Instant::now();
        while !batch.is_empty() && batch.len() < max {
            let left = window.saturating_sub(started.elapsed());
            if left.is_zero() || stop.is_cancelled() {
                break;
            }
            tokio::select! {
                _ = self.receive(&mut batch, max, left.min(tick)) => {}
                () = stop.cancelled() => break,
            }
        }
        self.seal(&mut batch);
        batch
    }

    /// Counts a batch (one transaction per shard), then acknowledges its entries.
    /// Returns the clicks counted.
    ///
    /// # Errors
    /// When the store or the acknowledgement fails: counted units stay counted, and a
    /// retry or a redelivery of the batch counts nothing twice.
    pub async fn process(&self, batch: &Batch, ack: Ack) -> anyhow::Result<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        let newest = batch
            .units
            .iter()
            .flat_map(|u| u.clicks.iter().map(|c| c.at_ms))
            .max();
        let started = Instant::now();
        let recorded = if batch.units.is_empty() {
            Default::default()
        } else {
            self.store.record(&batch.units).await?
        };
        tracing::debug!(
            clicks = recorded.counted,
            duplicates = recorded.duplicates,
            rows = recorded.rows,
            ms = started.elapsed().as_millis() as u64,
            "click flush committed"
        );
        let s = &self.stats;
        s.batches.fetch_add(1, Ordering::Relaxed);
        s.counted.fetch_add(recorded.counted, Ordering::Relaxed);
        s.duplicates
            .fetch_add(recorded.duplicates, Ordering::Relaxed);
        s.rows.fetch_add(recorded.rows, Ordering::Relaxed);
        s.events.fetch_add(recorded.events, Ordering::Relaxed);
        if let Some(newest) = newest {
            let lag = (Utc::now().timestamp_millis() as u64).saturating_sub(newest);
            s.lag_ms.store(lag, Ordering::Relaxed);
        }
        // Counted once committed; the acknowledgement only stops redelivery.
        if ack == Ack::AfterCommit {
            self.queue.ack(&batch.entries).await?;
        }
        Ok(recorded.counted)
    }

    async fn process_with_retry(&self, batch: Batch, stop: &CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.process(&batch, Ack::AfterCommit).await {
                Ok(_) => return,
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(clicks = batch.len(), error = %format!("{e:#}"), "click flush failed; retrying");
                    // With Redis the entries stay pending and another worker can take
                    // them; in process, this worker is the only holder, so it retries
                    // until it succeeds or is told to stop.
                    if stop.is_cancelled() && !self.queue.in_process() {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    if stop.is_cancelled() && backoff >= Duration::from_secs(5) {
                        tracing::error!(
                            lost = batch.len(),
                            "giving up on a click flush at shutdown"
                        );
                        return;
                    }
                }
            }
        }
    }

    /// Runs until `stop`, then counts the batch in hand and what arrives until the
    /// queue is closed and, for an in-process queue, everything it still holds, and
    /// returns. A window is written while the next one
    /// gathers, so the queue keeps being drained during a flush; the two together hold
    /// at most `batch_size` clicks.
    pub async fn run(&self, stop: CancellationToken) {
        let prune_every = self.settings.prune_every_s.max(Duration::from_secs(1));
        let mut last_prune = Instant::now();
        let _reloader = self.spawn_geo_reloader(&stop);
        let mut gathered: Option<Batch> = None;
        while !stop.is_cancelled() {
            let previous = gathered.take();
            let room =
                (self.settings.batch_size).saturating_sub(previous.as_ref().map_or(0, Batch::len));
            let flush = async {
                if let Some(batch) = previous {
                    self.process_with_retry(batch, &stop).await;
                }
            };
            let (batch, ()) = tokio::join!(self.gather_up_to(&stop, room), flush);
            gathered = Some(batch);
            if last_prune.elapsed() >= prune_every {
                last_prune = Instant::now();
                self.prune().await;
            }
        }
        if let Some(batch) = gathered {
            self.process_with_retry(batch, &stop).await;
        }
        // Requests still in flight may offer clicks until the queue is closed (see
        // `crate::shutdown`): keep counting them in short windows until then.
        while !self.queue.is_closed() {
            let mut batch = Batch::default();
            self.receive(&mut batch, self.settings.batch_size, CLOSE_POLL)
                .await;
            if !batch.is_empty() {
                self.seal(&mut batch);
                self.process_with_retry(batch, &stop).await;
            }
        }
        // Drain: everything already queued in this process is counted before it exits.
        while self.queue.in_process() {
            let mut batch = Batch::default();
            let max = self.settings.batch_size;
            while batch.len() < max && self.receive(&mut batch, max, Duration::ZERO).await {}
            if batch.is_empty() {
                break;
            }
            self.seal(&mut batch);
            self.process_with_retry(batch, &stop).await;
        }
        tracing::info!(
            counted = self.stats.counted.load(Ordering::Relaxed),
            "analytics worker stopped"
        );
    }

    /// Deletes raw events past the retention and unit IDs past theirs (the counts are
    /// untouched).
    pub async fn prune(&self) {
        let now = Utc::now();
        let events = now - chrono::Duration::days(i64::from(self.settings.retention_days));
        // A retention longer than time itself keeps everything.
        let units = chrono::Duration::from_std(self.settings.unit_retention_hours)
            .ok()
            .and_then(|kept| now.checked_sub_signed(kept))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        match self.store.prune(events, units).await {
            Ok(n) => {
                self.stats.pruned.fetch_add(n, Ordering::Relaxed);
                if n > 0 {
                    tracing::info!(removed = n, before = %events, "pruned raw click events");
                }
            }
            Err(e) => {
                tracing::warn!(error = %crate::telemetry::chain(&e), "pruning click events failed")
            }
        }
    }
}
