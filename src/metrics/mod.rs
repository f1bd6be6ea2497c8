//! Prometheus metrics, in one struct registered once (namespace `shortener_`).
//!
//! Request counts and latencies are recorded as requests finish. Everything the parts
//! already count in atomics (cache tiers, IDs, the click queue and worker) and every
//! gauge (breaker, pools, queue depth) is copied into the registry when `/metrics` is
//! scraped, so the hot paths pay for nothing twice. Labels are low-cardinality: route
//! templates, methods, statuses, tiers, shards; never a code or a URL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::analytics::queue::ClickQueue;
use crate::analytics::worker::WorkerStats;
use crate::cache::{CacheStats, LinkCache};
use crate::domain::ids::IdStats;
use crate::domain::SnowflakeGenerator;
use crate::store::clicks::ClickStore;
use crate::store::{LinkStore, PoolKind};

pub use crate::telemetry::LATENCY_BUCKETS;

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c =
        IntCounter::with_opts(Opts::new(name, help).namespace("shortener")).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help).namespace("shortener"), labels)
        .expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g =
        IntGauge::with_opts(Opts::new(name, help).namespace("shortener")).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help).namespace("shortener"), labels)
        .expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

/// Every metric the service exports.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route template, method and status.
    pub http_requests: IntCounterVec,
    /// HTTP request latency by route template.
    pub http_duration: HistogramVec,
    cache_requests: IntCounterVec,
    cache_loads: IntCounter,
    breaker_state: IntGauge,
    ids_issued: IntCounter,
    id_duplicates: IntCounter,
    id_clock_waits: IntCounter,
    id_clock_failures: IntCounter,
    id_sequence_exhausted: IntCounter,
    worker_id: IntGauge,
    lease_renewals: IntCounterVec,
    pool_connections: IntGaugeVec,
    click_pool_connections: IntGaugeVec,
    replica_pool_connections: IntGaugeVec,
    clicks_enqueued: IntCounter,
    clicks_dropped: IntCounter,
    click_queue_depth: IntGauge,
    click_batches: IntCounter,
    clicks_counted: IntCounter,
    clicks_duplicate: IntCounter,
    click_batch_failures: IntCounter,
    click_worker_lag_ms: IntGauge,
    clicks_reclaimed: IntCounter,
    click_rows: IntCounter,
    click_events: IntCounter,
    click_entries: IntCounter,
    rate_limited: IntCounterVec,
    /// Redirect requests for codes that lead nowhere, by kind.
    pub orphan_visits: IntCounterVec,
    geo_reloads: IntCounterVec,
    sources: Mutex<Sources>,
}

/// What the scrape copies from.
#[derive(Default)]
struct Sources {
    cache: Option<Arc<CacheStats>>,
    breaker: Option<Arc<crate::cache::RedisTier>>,
    ids: Option<Arc<SnowflakeGenerator>>,
    store: Option<Arc<dyn LinkStore>>,
    clicks: Option<Arc<dyn ClickStore>>,
    queue: Option<Arc<dyn ClickQueue>>,
    worker: Option<Arc<WorkerStats>>,
    limits: Option<Arc<crate::limits::LimitStats>>,
}

/// Moves a counter up to an atomic's value (counters only ever rise; the scrape holds
/// a lock, so two scrapes never race).
fn sync(counter: &IntCounter, source: &AtomicU64) {
    let target = source.load(Ordering::Relaxed);
    let current = counter.get();
    if target > current {
        counter.inc_by(target - current);
    }
}

impl Metrics {
    /// Creates and registers every metric, plus the process collector.
    pub fn new() -> Self {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        {
            let _ = registry.register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ));
        }
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route template.",
            )
            .namespace("shortener")
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(http_duration.clone()))
            .expect("registered once");
        let r = &registry;
        let metrics = Self {
            http_requests: counter_vec(
                r,
                "http_requests_total",
                "HTTP requests by route template, method and status.",
                &["route", "method", "status"],
            ),
            http_duration,
            cache_requests: counter_vec(
                r,
                "cache_requests_total",
                "Redirect cache lookups by tier (l1, l2) and result (hit, miss, error, skipped).",
                &["tier", "result"],
            ),
            cache_loads: counter(
                r,
                "cache_loads_total",
                "Redirect lookups that reached the store.",
            ),
            breaker_state: gauge(
                r,
                "redis_breaker_state",
                "Redis circuit breaker: 0 closed, 1 open, 2 half-open.",
            ),
            ids_issued: counter(r, "ids_issued_total", "Snowflake IDs issued."),
            worker_id: gauge(
                r,
                "worker_id",
                "The Snowflake worker ID this instance mints with now; -1 while it holds none.",
            ),
            lease_renewals: counter_vec(
                r,
                "worker_lease_renewals_total",
                "Worker ID lease renewals by result: ok, error (directory unreachable or slow), \
                 lost (ran out before renewal).",
                &["result"],
            ),
            id_duplicates: counter(
                r,
                "id_duplicates_total",
                "IDs another instance had used already: two instances share a worker ID.",
            ),
            id_clock_waits: counter(
                r,
                "id_clock_waits_total",
                "Times ID issuing waited out a small backward clock step.",
            ),
            id_clock_failures: counter(
                r,
                "id_clock_failures_total",
                "Requests failed because the clock stepped back too far.",
            ),
            id_sequence_exhausted: counter(
                r,
                "id_sequence_exhausted_total",
                "Times the 4,096 IDs of a millisecond ran out.",
            ),
            pool_connections: gauge_vec(
                r,
                "shard_pool_connections",
                "Connections per shard pool by state (size, available, waiting).",
                &["shard", "state"],
            ),
            click_pool_connections: gauge_vec(
                r,
                "click_shard_pool_connections",
                "Connections per shard's click pool by state (size, available, waiting).",
                &["shard", "state"],
            ),
            replica_pool_connections: gauge_vec(
                r,
                "replica_pool_connections",
                "Connections per replica pool by state (size, available, waiting).",
                &["shard", "replica", "state"],
            ),
            clicks_enqueued: counter(
                r,
                "clicks_enqueued_total",
                "Clicks accepted by the click queue.",
            ),
            clicks_dropped: counter(
                r,
                "clicks_dropped_total",
                "Clicks dropped because the queue was full (or the ID clock was being waited out).",
            ),
            click_queue_depth: gauge(r, "click_queue_depth", "Clicks buffered in this process."),
            click_batches: counter(
                r,
                "click_worker_batches_total",
                "Click flushes committed by this process's worker.",
            ),
            clicks_counted: counter(
                r,
                "clicks_counted_total",
                "Clicks counted by this process's worker.",
            ),
            clicks_duplicate: counter(
                r,
                "clicks_duplicate_total",
                "Clicks delivered again after they were counted, not counted twice.",
            ),
            click_batch_failures: counter(
                r,
                "click_worker_failures_total",
                "Click batches that failed and were retried or left for redelivery.",
            ),
            click_worker_lag_ms: gauge(
                r,
                "click_worker_lag_milliseconds",
                "Age of the newest click of the last committed batch.",
            ),
            clicks_reclaimed: counter(
                r,
                "clicks_reclaimed_total",
                "Click stream entries taken over from a stopped worker (Redis Streams).",
            ),
            click_rows: counter(
                r,
                "click_rollup_rows_total",
                "Rows of per-link, per-day click counts written by this process's worker.",
            ),
            click_events: counter(
                r,
                "click_events_kept_total",
                "Raw click events kept (sampled by analytics.raw_events).",
            ),
            click_entries: counter(
                r,
                "click_stream_entries_total",
                "Click stream entries appended by this process (Redis Streams; many clicks each).",
            ),
            rate_limited: counter_vec(
                r,
                "rate_limited_total",
                "Requests refused with 429, by class (shorten, redirect).",
                &["class"],
            ),
            orphan_visits: counter_vec(
                r,
                "orphan_visits_total",
                "Redirect requests for codes that lead nowhere, by kind (unknown, deleted, \
                 expired, disabled).",
                &["kind"],
            ),
            geo_reloads: counter_vec(
                r,
                "geo_reloads_total",
                "Reloads of the location database after its file changed, by result (ok, \
                 failed: the previous data stayed).",
                &["result"],
            ),
            registry,
            sources: Mutex::new(Sources::default()),
        };
        metrics.precreate();
        metrics
    }

    /// Names the parts whose counters the scrape copies, and registers the stores' own
    /// collectors (per-shard query latency and errors).
    pub fn observe(
        &self,
        cache: &LinkCache,
        ids: &Arc<SnowflakeGenerator>,
        store: &Arc<dyn LinkStore>,
        clicks: &Arc<dyn ClickStore>,
        queue: Option<&Arc<dyn ClickQueue>>,
        worker: Option<&Arc<WorkerStats>>,
    ) {
        for collector in store.collectors().into_iter().chain(clicks.collectors()) {
            if let Err(e) = self.registry.register(collector) {
                tracing::warn!(error = %e, "store collector not registered");
            }
        }
        if let Ok(mut s) = self.sources.lock() {
            s.cache = Some(cache.stats().clone());
            s.breaker = cache.redis().cloned();
            s.ids = Some(ids.clone());
            s.store = Some(store.clone());
            s.clicks = Some(clicks.clone());
            s.queue = queue.cloned();
            s.worker = worker.cloned();
        }
    }

    /// The `worker` process's variant of [`observe`](Self::observe): its store, queue
    /// and worker, no cache.
    pub fn observe_worker(
        &self,
        clicks: &Arc<dyn ClickStore>,
        queue: &Arc<dyn ClickQueue>,
        worker: &Arc<WorkerStats>,
    ) {
        for collector in clicks.collectors() {
            let _ = self.registry.register(collector);
        }
        if let Ok(mut s) = self.sources.lock() {
            s.clicks = Some(clicks.clone());
            s.queue = Some(queue.clone());
            s.worker = Some(worker.clone());
        }
    }

    /// Adds the rate limiters' counters.
    pub fn observe_limits(&self, stats: &Arc<crate::limits::LimitStats>) {
        if let Ok(mut s) = self.sources.lock() {
            s.limits = Some(stats.clone());
        }
    }

    /// Records one finished HTTP request.
    pub fn record_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let mut buf = [0u8; 3];
        self.http_requests
            .with_label_values(&[route, method, status_str(status, &mut buf)])
            .inc();
        self.http_duration
            .with_label_values(&[route])
            .observe(seconds);
    }

    /// The text exposition of every metric, after copying the parts' counters.
    pub fn render(&self) -> String {
        if let Ok(s) = self.sources.lock() {
            if let Some(c) = &s.cache {
                let tier = |t: &str, r: &str| self.cache_requests.with_label_values(&[t, r]);
                sync(&tier("l1", "hit"), &c.l1_hits);
                sync(&tier("l1", "miss"), &c.l1_misses);
                sync(&tier("l2", "hit"), &c.l2_hits);
                sync(&tier("l2", "miss"), &c.l2_misses);
                sync(&tier("l2", "error"), &c.l2_errors);
                sync(&tier("l2", "skipped"), &c.l2_skipped);
                sync(&self.cache_loads, &c.loads);
            }
            if let Some(b) = &s.breaker {
                self.breaker_state.set(b.breaker_state() as i64);
            }
            if let Some(ids) = &s.ids {
                let st: &IdStats = ids.stats();
                sync(&self.ids_issued, &st.issued);
                sync(&self.id_duplicates, &st.duplicates);
                sync(&self.id_clock_waits, &st.clock_waits);
                sync(&self.id_clock_failures, &st.clock_failures);
                sync(&self.id_sequence_exhausted, &st.sequence_exhausted);
                let lease = |r: &str| self.lease_renewals.with_label_values(&[r]);
                sync(&lease("ok"), &st.lease_renewals);
                sync(&lease("error"), &st.lease_errors);
                sync(&lease("lost"), &st.leases_lost);
                self.worker_id.set(ids.worker().map_or(-1, i64::from));
            }
            let links = s.store.iter().flat_map(|st| st.pool_status());
            let clicks = s.clicks.iter().flat_map(|st| st.pool_status());
            {
                for p in links.chain(clicks) {
                    let (shard, replica) = p.name.split_once('/').unwrap_or((&p.name, ""));
                    let g = |state: &str| match p.pool {
                        PoolKind::Links => self.pool_connections.with_label_values(&[shard, state]),
                        PoolKind::Clicks => self
                            .click_pool_connections
                            .with_label_values(&[shard, state]),
                        PoolKind::Replica => self
                            .replica_pool_connections
                            .with_label_values(&[shard, replica, state]),
                    };
                    g("size").set(p.size as i64);
                    g("available").set(p.available as i64);
                    g("waiting").set(p.waiting as i64);
                }
            }
            if let Some(q) = &s.queue {
                let st = q.stats();
                sync(&self.clicks_enqueued, &st.enqueued);
                sync(&self.clicks_dropped, &st.dropped);
                sync(&self.clicks_reclaimed, &st.reclaimed);
                sync(&self.click_entries, &st.entries);
                self.click_queue_depth.set(q.depth() as i64);
            }
            if let Some(l) = &s.limits {
                sync(
                    &self.rate_limited.with_label_values(&["shorten"]),
                    &l.shorten,
                );
                sync(
                    &self.rate_limited.with_label_values(&["redirect"]),
                    &l.redirect,
                );
            }
            if let Some(w) = &s.worker {
                sync(&self.click_batches, &w.batches);
                sync(&self.clicks_counted, &w.counted);
                sync(&self.clicks_duplicate, &w.duplicates);
                sync(&self.click_batch_failures, &w.failures);
                sync(&self.click_rows, &w.rows);
                sync(&self.click_events, &w.events);
                self.click_worker_lag_ms
                    .set(w.lag_ms.load(Ordering::Relaxed) as i64);
                if w.geo.load(Ordering::Relaxed) {
                    let reloads = |r: &str| self.geo_reloads.with_label_values(&[r]);
                    sync(&reloads("ok"), &w.geo_reloads);
                    sync(&reloads("failed"), &w.geo_reload_failures);
                }
            }
        }
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Metrics {
    fn precreate(&self) {
        // Present at 0 from the start, so rates and alerts see the first one.
        for class in ["shorten", "redirect"] {
            self.rate_limited.with_label_values(&[class]);
        }
        for result in ["ok", "error", "lost"] {
            self.lease_renewals.with_label_values(&[result]);
        }
        for kind in ["unknown", "deleted", "expired", "disabled"] {
            self.orphan_visits.with_label_values(&[kind]);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A status code as text without allocating.
fn status_str(status: u16, buf: &mut [u8; 3]) -> &str {
    let s = status.min(999);
    buf[0] = b'0' + (s / 100) as u8;
    buf[1] = b'0' + (s / 10 % 10) as u8;
    buf[2] = b'0' + (s % 10) as u8;
    std::str::from_utf8(buf).unwrap_or("000")
}

#[cfg(test)]
mod tests;
