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
use crate::error::Code;
use crate::store::clicks::ClickStore;
use crate::store::{LinkStore, PoolKind};

pub use crate::telemetry::LATENCY_BUCKETS;

/// A metric type the declaration below can make: a name (namespace `shortener_`), a help
/// text and, for the `…Vec` kinds, label names.
trait Declare: prometheus::core::Collector + Clone + Sized + 'static {
    fn declare(name: &str, help: String, labels: &[&str]) -> prometheus::Result<Self>;
}

fn opts(name: &str, help: String) -> Opts {
    Opts::new(name, help).namespace("shortener")
}

impl Declare for IntCounter {
    fn declare(name: &str, help: String, _: &[&str]) -> prometheus::Result<Self> {
        IntCounter::with_opts(opts(name, help))
    }
}

impl Declare for IntCounterVec {
    fn declare(name: &str, help: String, labels: &[&str]) -> prometheus::Result<Self> {
        IntCounterVec::new(opts(name, help), labels)
    }
}

impl Declare for IntGauge {
    fn declare(name: &str, help: String, _: &[&str]) -> prometheus::Result<Self> {
        IntGauge::with_opts(opts(name, help))
    }
}

impl Declare for IntGaugeVec {
    fn declare(name: &str, help: String, labels: &[&str]) -> prometheus::Result<Self> {
        IntGaugeVec::new(opts(name, help), labels)
    }
}

/// Every histogram has the latency buckets the dashboards and objectives assume.
impl Declare for HistogramVec {
    fn declare(name: &str, help: String, labels: &[&str]) -> prometheus::Result<Self> {
        let opts = HistogramOpts::new(name, help)
            .namespace("shortener")
            .buckets(LATENCY_BUCKETS.to_vec());
        HistogramVec::new(opts, labels)
    }
}

/// Makes a declared metric, its help text the field's doc comment, and registers it.
fn register<M: Declare>(registry: &Registry, name: &str, doc: &[&str], labels: &[&str]) -> M {
    let help = doc
        .iter()
        .map(|line| line.trim())
        .collect::<Vec<_>>()
        .join(" ");
    let metric = M::declare(name, help, labels).expect("a valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("each name is declared once");
    metric
}

/// Declares [`Metrics`]: each field's doc comment is its help text, then its type, its
/// name and its labels. Nothing is registered by hand.
macro_rules! declare_metrics {
    ($( $(#[doc = $doc:literal])+ $vis:vis $field:ident: $ty:ty = $name:literal $([$($label:literal),+])?; )*) => {
        /// Every metric the service exports.
        pub struct Metrics {
            registry: Registry,
            sources: Mutex<Sources>,
            $( $(#[doc = $doc])+ $vis $field: $ty, )*
        }

        impl Metrics {
            /// Every declared metric, registered in `registry`.
            fn declared(registry: Registry) -> Self {
                Self {
                    $( $field: register(&registry, $name, &[$($doc),+], &[$($($label),+)?]), )*
                    registry,
                    sources: Mutex::new(Sources::default()),
                }
            }
        }
    };
}

declare_metrics! {
    /// HTTP requests by route template, method and status.
    pub http_requests: IntCounterVec = "http_requests_total" ["route", "method", "status"];
    /// HTTP request latency by route template.
    pub http_duration: HistogramVec = "http_request_duration_seconds" ["route"];
    /// Redirect cache lookups by tier (l1, l2) and result (hit, miss, error, skipped).
    cache_requests: IntCounterVec = "cache_requests_total" ["tier", "result"];
    /// Redirect lookups that reached the store.
    cache_loads: IntCounter = "cache_loads_total";
    /// Redis circuit breaker: 0 closed, 1 open, 2 half-open.
    breaker_state: IntGauge = "redis_breaker_state";
    /// Snowflake IDs issued.
    ids_issued: IntCounter = "ids_issued_total";
    /// IDs another instance had used already: two instances share a worker ID.
    id_duplicates: IntCounter = "id_duplicates_total";
    /// Times ID issuing waited out a small backward clock step.
    id_clock_waits: IntCounter = "id_clock_waits_total";
    /// Requests failed because the clock stepped back too far.
    id_clock_failures: IntCounter = "id_clock_failures_total";
    /// Times the 4,096 IDs of a millisecond ran out.
    id_sequence_exhausted: IntCounter = "id_sequence_exhausted_total";
    /// The Snowflake worker ID this instance mints with now; -1 while it holds none.
    worker_id: IntGauge = "worker_id";
    /// Worker ID lease renewals by result: ok, error (directory unreachable or slow),
    /// lost (ran out before renewal).
    lease_renewals: IntCounterVec = "worker_lease_renewals_total" ["result"];
    /// Connections per shard pool by state (size, available, waiting).
    pool_connections: IntGaugeVec = "shard_pool_connections" ["shard", "state"];
    /// Connections per shard's click pool by state (size, available, waiting).
    click_pool_connections: IntGaugeVec = "click_shard_pool_connections" ["shard", "state"];
    /// Connections per replica pool by state (size, available, waiting).
    replica_pool_connections: IntGaugeVec = "replica_pool_connections" ["shard", "replica", "state"];
    /// Clicks accepted by the click queue.
    clicks_enqueued: IntCounter = "clicks_enqueued_total";
    /// Clicks dropped because the queue was full (or the ID clock was being waited out).
    clicks_dropped: IntCounter = "clicks_dropped_total";
    /// Clicks buffered in this process.
    click_queue_depth: IntGauge = "click_queue_depth";
    /// Click flushes committed by this process's worker.
    click_batches: IntCounter = "click_worker_batches_total";
    /// Clicks counted by this process's worker.
    clicks_counted: IntCounter = "clicks_counted_total";
    /// Clicks delivered again after they were counted, not counted twice.
    clicks_duplicate: IntCounter = "clicks_duplicate_total";
    /// Click batches that failed and were retried or left for redelivery.
    click_batch_failures: IntCounter = "click_worker_failures_total";
    /// Age of the newest click of the last committed batch.
    click_worker_lag_ms: IntGauge = "click_worker_lag_milliseconds";
    /// Click stream entries taken over from a stopped worker (Redis Streams).
    clicks_reclaimed: IntCounter = "clicks_reclaimed_total";
    /// Rows of per-link, per-day click counts written by this process's worker.
    click_rows: IntCounter = "click_rollup_rows_total";
    /// Raw click events kept (sampled by analytics.raw_events).
    click_events: IntCounter = "click_events_kept_total";
    /// Click stream entries appended by this process (Redis Streams; many clicks each).
    click_entries: IntCounter = "click_stream_entries_total";
    /// Requests refused with 429, by class (shorten, redirect).
    rate_limited: IntCounterVec = "rate_limited_total" ["class"];
    /// Redirect requests for codes that lead nowhere, by kind (unknown, deleted,
    /// expired, disabled).
    pub orphan_visits: IntCounterVec = "orphan_visits_total" ["kind"];
    /// Reloads of the location database after its file changed, by result (ok,
    /// failed: the previous data stayed).
    geo_reloads: IntCounterVec = "geo_reloads_total" ["result"];
    /// Requests the HTTP parser refused before any handler ran, by the code of their
    /// JSON answer (malformed_request, request_timeout, headers_too_large). Not logged:
    /// any client can send them.
    http_refused: IntCounterVec = "http_refused_total" ["code"];
}

/// The codes of the parser's own refusals, in the order the wire layer numbers them
/// (`http::wire`'s `OWN_ERRORS`).
pub const REFUSED_CODES: [Code; 3] = [
    Code::MalformedRequest,
    Code::RequestTimeout,
    Code::HeadersTooLarge,
];

/// Refusals counted by the wire layer, which runs before any app state exists; copied
/// into `http_refused_total` at each scrape.
static REFUSED: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Counts one refusal of the parser: `which` indexes [`REFUSED_CODES`].
pub fn count_refused(which: usize) {
    if let Some(counter) = REFUSED.get(which) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
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
        let metrics = Self::declared(registry);
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
        for (code, count) in REFUSED_CODES.iter().zip(&REFUSED) {
            sync(
                &self.http_refused.with_label_values(&[code.as_str()]),
                count,
            );
        }
        if let Ok(s) = self.sources.lock() {
            self.copy_cache_and_ids(&s);
            self.copy_pools(&s);
            self.copy_clicks_and_limits(&s);
        }
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    fn copy_cache_and_ids(&self, s: &Sources) {
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
    }

    fn copy_pools(&self, s: &Sources) {
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
    }

    fn copy_clicks_and_limits(&self, s: &Sources) {
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
