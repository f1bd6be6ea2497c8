//! A shard's streaming replicas, and where a redirect miss reads.
//!
//! PostgreSQL replicates (a replica made with `pg_basebackup -R`); this module only
//! decides which copy a read goes to:
//!
//! - A redirect miss goes to a replica that answered its last probe and is at most
//!   `database.replica_max_lag_ms` behind, round robin.
//! - A code the replica does not know goes to the primary: it may have been created a
//!   moment ago and not be replayed yet (read-your-writes).
//! - A replica that fails, or none fit to read, sends the read to the primary.
//! - The primary down (its probe or a read failed): replicas serve whatever their lag.
//!   A code they do not know is then answered 404 only when its ID (which carries its
//!   minting time) is older than what the replica is known to hold in full; else 503,
//!   as the link may exist on the primary alone.
//!
//! A probe loop ([`ShardedPostgres::probe_replicas`](super::ShardedPostgres)) asks each
//! replica every `replica_probe_interval_ms` how far behind it is, and each replicated
//! shard's primary whether it answers. The probe is the replica's breaker: one that
//! fails a read or a probe is skipped until a probe succeeds.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::settings::{DatabaseSettings, ShardSettings};
use super::shard::{const_labels, make_pool, Shard};
use crate::duration::whole_millis;
use crate::store::{PoolStatus, ReplicaHealth, StoreError};
use deadpool_postgres::Pool;
use std::time::Duration;
use tokio_postgres::Row;

/// What a replica's probe reads: whether it replays, whether it has replayed all it
/// received while streaming, the time now, and the time of the last commit replayed.
const PROBE: &str = "SELECT pg_is_in_recovery(), \
    COALESCE(pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn(), false) \
      AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'), \
    (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint, \
    (EXTRACT(EPOCH FROM pg_last_xact_replay_timestamp()) * 1000)::bigint";

/// Lag reported for a replica that has replayed nothing yet.
const UNKNOWN_LAG_MS: u64 = u64::MAX / 2;

/// One replica of one shard.
pub struct Replica {
    conn: Shard,
    /// One connection of its own for the probe, so that a probe never waits behind a
    /// busy pool (and never reads a saturated replica as a lost one).
    probe: Pool,
    label: String,
    up: AtomicBool,
    lag_ms: AtomicU64,
    /// Unix milliseconds up to which the replica holds every commit of its primary (0:
    /// unknown): the last probe that found it caught up, or the time of the last commit
    /// it replayed, whichever is later.
    complete_to_ms: AtomicU64,
    lag_gauge: prometheus::Gauge,
    up_gauge: prometheus::IntGauge,
    /// Why the last probe failed (`None` while it answers): logged once per change,
    /// shown in `/readyz`.
    last_error: std::sync::Mutex<Option<String>>,
}

impl Replica {
    /// Records a failed probe: counted every time (`replica_errors_total`), logged when
    /// the reason changes (a replica that never answered, such as one refusing the
    /// service's login, is reported too, not only one that stops answering).
    fn probe_failed(&self, why: String) {
        self.conn.count_error("unavailable");
        let changed = match self.last_error.lock() {
            Ok(mut last) if last.as_deref() != Some(why.as_str()) => {
                *last = Some(why.clone());
                true
            }
            _ => false,
        };
        if changed {
            tracing::warn!(replica = self.conn.name(), error = %why, "replica probe failed; redirects read the primary");
        }
        self.set_up(false);
    }

    fn probe_answered(&self) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = None;
        }
    }

    fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    fn usable(&self, max_lag_ms: u64, any_lag: bool) -> bool {
        self.up.load(Ordering::Acquire)
            && (any_lag || self.lag_ms.load(Ordering::Acquire) <= max_lag_ms)
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Release);
        self.up_gauge.set(i64::from(up));
    }

    async fn probe(&self, timeout: Duration) {
        let result = probe_on(&self.probe, PROBE, timeout).await;
        let row = match result {
            Ok(row) => row,
            Err(e) => return self.probe_failed(e),
        };
        let in_recovery: bool = row.get(0);
        if !in_recovery {
            if self.up.load(Ordering::Acquire) {
                tracing::error!(
                    replica = self.conn.name(),
                    "this replica is not replaying (promoted, or not a replica): not read"
                );
            }
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some("not replaying (promoted, or not a replica)".into());
            }
            self.set_up(false);
            return;
        }
        self.probe_answered();
        let caught_up: bool = row.get(1);
        let now_ms = u64::try_from(row.get::<_, i64>(2)).unwrap_or(0);
        let replayed_ms = row
            .get::<_, Option<i64>>(3)
            .and_then(|v| u64::try_from(v).ok());
        let before = self.complete_to_ms.load(Ordering::Acquire);
        let (lag, complete_to) = lag_of(caught_up, now_ms, replayed_ms, before);
        self.lag_ms.store(lag, Ordering::Release);
        self.complete_to_ms.store(complete_to, Ordering::Release);
        self.lag_gauge.set(lag.min(UNKNOWN_LAG_MS) as f64 / 1e3);
        if !self.up.load(Ordering::Acquire) {
            tracing::info!(replica = self.conn.name(), lag_ms = lag, "replica answers");
        }
        self.set_up(true);
    }

    fn failed(&self, e: &StoreError) {
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(replica = self.conn.name(), error = %crate::telemetry::chain(&e), "replica read failed; skipped until its probe answers");
        }
        self.up_gauge.set(0);
    }
}

/// A probe's reading → `(lag, complete_to)` in milliseconds, given the `complete_to` of
/// the probe before. Caught up at a probe: the replica held every commit made before
/// then. Behind now: it still holds all it held then, and every commit it has replayed
/// since. (The last replayed commit alone would read a replica that is milliseconds
/// behind after a quiet second as a second behind.)
fn lag_of(caught_up: bool, now_ms: u64, replayed_ms: Option<u64>, before: u64) -> (u64, u64) {
    let complete_to = if caught_up {
        now_ms
    } else {
        replayed_ms.map_or(before, |at| at.max(before))
    };
    if complete_to == 0 {
        (UNKNOWN_LAG_MS, 0)
    } else {
        (now_ms.saturating_sub(complete_to), complete_to)
    }
}

/// Runs `sql` (one row) on `pool` within `timeout`.
async fn probe_on(pool: &Pool, sql: &str, timeout: Duration) -> Result<Row, String> {
    let attempt = async {
        // The whole chain: a refused login is "db error" at the top and the server's
        // reason ("role … does not exist") only below it.
        let why = |e: &dyn std::error::Error| crate::telemetry::chain(e);
        let c = pool.get().await.map_err(|e| why(&e))?;
        let stmt = c.prepare_cached(sql).await.map_err(|e| why(&e))?;
        c.query_one(&stmt, &[]).await.map_err(|e| why(&e))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

/// The replicas of one shard, and what the shard's reads went to.
pub struct Replicas {
    shard: String,
    /// One connection to the primary for its probe (its pool may be saturated).
    primary_probe: Pool,
    probe_timeout: Duration,
    replicas: Vec<Replica>,
    next: AtomicUsize,
    primary_up: AtomicBool,
    max_lag_ms: u64,
    /// How much later than its ID's time a link can be committed: the query timeout
    /// plus a second for clocks that disagree.
    commit_slack_ms: u64,
    reads: prometheus::IntCounterVec,
    /// `reads`' counter of each [`Read`], resolved once: a miss counts with one add.
    counts: [prometheus::IntCounter; READS.len()],
}

impl Replicas {
    /// The replicas `settings` lists (`None` when it lists none), each with its pool.
    ///
    /// # Errors
    /// When a URL does not parse or a metric cannot be made.
    pub fn new(settings: &ShardSettings, db: &DatabaseSettings) -> anyhow::Result<Option<Self>> {
        if settings.replicas.is_empty() {
            return Ok(None);
        }
        let mut replicas = Vec::with_capacity(settings.replicas.len());
        for index in 0..settings.replicas.len() {
            let conn = Shard::replica(settings, index, db)?;
            let probe = make_pool(&settings.replicas[index], db, 1, db.query_timeout_ms)?;
            let label = format!("r{index}");
            let const_labels = const_labels(&[
                ("shard", settings.name.as_str()),
                ("replica", label.as_str()),
            ]);
            let lag_gauge = prometheus::Gauge::with_opts(
                prometheus::Opts::new(
                    "replica_lag_seconds",
                    "How far the replica's replay is behind its primary, at its last probe.",
                )
                .namespace("shortener")
                .const_labels(const_labels.clone()),
            )?;
            let up_gauge = prometheus::IntGauge::with_opts(
                prometheus::Opts::new(
                    "replica_up",
                    "1 when the replica answered its last probe (and reads) and replays.",
                )
                .namespace("shortener")
                .const_labels(const_labels),
            )?;
            replicas.push(Replica {
                conn,
                probe,
                label,
                up: AtomicBool::new(false),
                lag_ms: AtomicU64::new(UNKNOWN_LAG_MS),
                complete_to_ms: AtomicU64::new(0),
                lag_gauge,
                up_gauge,
                last_error: std::sync::Mutex::new(None),
            });
        }
        let reads = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "redirect_reads_total",
                "Redirect misses of a replicated shard, by the copy that answered (source) \
                 and why (reason).",
            )
            .namespace("shortener")
            .const_label("shard", &settings.name),
            &["source", "reason"],
        )?;
        let counts = READS.map(|(source, reason)| reads.with_label_values(&[source, reason]));
        Ok(Some(Self {
            shard: settings.name.clone(),
            primary_probe: make_pool(&settings.url, db, 1, db.query_timeout_ms)?,
            probe_timeout: db.query_timeout_ms,
            replicas,
            next: AtomicUsize::new(0),
            primary_up: AtomicBool::new(true),
            max_lag_ms: whole_millis(db.replica_max_lag_ms),
            commit_slack_ms: whole_millis(db.query_timeout_ms) + 1_000,
            reads,
            counts,
        }))
    }

    /// The next replica fit to read, round robin; with `any_lag`, however far behind.
    fn pick(&self, any_lag: bool) -> Option<&Replica> {
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| &self.replicas[(start + k) % n])
            .find(|r| r.usable(self.max_lag_ms, any_lag))
    }

    fn count(&self, read: Read) {
        self.counts[read as usize].inc();
    }

    /// Whether `replica` not knowing a link minted at `minted_ms` proves it does not
    /// exist: the replica holds every commit up to a time after the link's latest
    /// possible commit.
    fn certainly_absent(&self, replica: &Replica, minted_ms: Option<u64>) -> bool {
        minted_ms.is_some_and(|t| {
            t.saturating_add(self.commit_slack_ms) < replica.complete_to_ms.load(Ordering::Acquire)
        })
    }

    /// Reads with `query` from a replica where the rules above allow, else from
    /// `primary`. `minted_ms` is the read link's minting time, when the key carries one.
    pub(super) async fn read<'a, T, F, Fut>(
        &'a self,
        primary: &'a Shard,
        minted_ms: Option<u64>,
        query: F,
    ) -> Result<Option<T>, StoreError>
    where
        F: Fn(&'a Shard) -> Fut,
        Fut: Future<Output = Result<Option<T>, StoreError>>,
    {
        let primary_up = self.primary_up.load(Ordering::Acquire);
        let reason = match self.pick(!primary_up) {
            None => Read::PrimaryNoReplica,
            Some(replica) => match query(&replica.conn).await {
                Ok(Some(v)) => {
                    self.count(if primary_up {
                        Read::ReplicaFresh
                    } else {
                        Read::ReplicaPrimaryDown
                    });
                    return Ok(Some(v));
                }
                Ok(None) if !primary_up => {
                    return self.absent_without_primary(primary, replica, minted_ms);
                }
                Ok(None) => Read::PrimaryNotReplicated,
                Err(e) => {
                    replica.failed(&e);
                    Read::PrimaryReplicaError
                }
            },
        };
        self.count(reason);
        match query(primary).await {
            Ok(v) => {
                self.primary_up.store(true, Ordering::Release);
                Ok(v)
            }
            Err(e) if e.is_unreachable() => {
                if self.primary_up.swap(false, Ordering::AcqRel) {
                    tracing::warn!(shard = %self.shard, error = %crate::telemetry::chain(&e), "primary unreachable: its redirects read its replicas");
                }
                let Some(replica) = self.pick(true) else {
                    return Err(e);
                };
                match query(&replica.conn).await {
                    Ok(Some(v)) => {
                        self.count(Read::ReplicaPrimaryDown);
                        Ok(Some(v))
                    }
                    Ok(None) => self.absent_without_primary(primary, replica, minted_ms),
                    Err(r) => {
                        replica.failed(&r);
                        Err(e)
                    }
                }
            }
            Err(e) => Err(e),
        }
    }

    fn absent_without_primary<T>(
        &self,
        primary: &Shard,
        replica: &Replica,
        minted_ms: Option<u64>,
    ) -> Result<Option<T>, StoreError> {
        if self.certainly_absent(replica, minted_ms) {
            self.count(Read::ReplicaPrimaryDown);
            return Ok(None);
        }
        self.count(Read::NonePrimaryDown);
        Err(StoreError::Unavailable {
            part: primary.name().to_owned(),
            source: anyhow::anyhow!(
                "the primary is down and replica {} may not hold this link yet",
                replica.conn.name()
            ),
        })
    }

    /// Reads with `query` from the first replica that answers, whatever its state (for
    /// startup, before any probe): the primary is down.
    pub(super) async fn read_standby<'a, T, F, Fut>(&'a self, query: F) -> Result<T, StoreError>
    where
        F: Fn(&'a Shard) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut last = None;
        for replica in &self.replicas {
            match query(&replica.conn).await {
                Ok(v) => {
                    tracing::warn!(
                        replica = replica.conn.name(),
                        "the primary is down: read from a replica"
                    );
                    return Ok(v);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("a replica set has replicas"))
    }

    /// Probes the primary and every replica once, each on a connection of its own.
    pub(super) async fn probe(&self) {
        let primary_probe = async {
            let ok = probe_on(&self.primary_probe, "SELECT 1", self.probe_timeout)
                .await
                .is_ok();
            let was = self.primary_up.swap(ok, Ordering::AcqRel);
            if was != ok {
                if ok {
                    tracing::info!(shard = %self.shard, "primary answers again");
                } else {
                    tracing::warn!(shard = %self.shard, "primary unreachable: its redirects read its replicas");
                }
            }
        };
        let replicas =
            futures::future::join_all(self.replicas.iter().map(|r| r.probe(self.probe_timeout)));
        futures::join!(primary_probe, replicas);
    }

    /// Each replica's state, for `/readyz`.
    pub(super) fn health(&self) -> Vec<ReplicaHealth> {
        let primary_up = self.primary_up.load(Ordering::Acquire);
        self.replicas
            .iter()
            .map(|r| {
                let lag = r.lag_ms.load(Ordering::Acquire);
                ReplicaHealth {
                    shard: self.shard.clone(),
                    replica: r.label.clone(),
                    url: r.conn.display_url().to_owned(),
                    up: r.up.load(Ordering::Acquire),
                    lag_ms: (lag < UNKNOWN_LAG_MS).then_some(lag),
                    read: r.usable(self.max_lag_ms, !primary_up),
                    error: r.last_error(),
                }
            })
            .collect()
    }

    pub(super) fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        let mut all: Vec<Box<dyn prometheus::core::Collector>> = vec![Box::new(self.reads.clone())];
        for r in &self.replicas {
            all.push(Box::new(r.lag_gauge.clone()));
            all.push(Box::new(r.up_gauge.clone()));
            all.extend(r.conn.collectors());
        }
        all
    }

    pub(super) fn pool_status(&self) -> impl Iterator<Item = PoolStatus> + '_ {
        self.replicas.iter().map(|r| r.conn.pool_status())
    }
}

/// What answered a redirect miss, and why: `READS[read as usize]` is its labels.
#[derive(Clone, Copy)]
enum Read {
    ReplicaFresh,
    ReplicaPrimaryDown,
    PrimaryNoReplica,
    PrimaryNotReplicated,
    PrimaryReplicaError,
    NonePrimaryDown,
}

/// The `(source, reason)` of every [`Read`], in its order (all created at 0).
const READS: [(&str, &str); 6] = [
    ("replica", "fresh"),
    ("replica", "primary_down"),
    ("primary", "no_replica"),
    ("primary", "not_replicated"),
    ("primary", "replica_error"),
    ("none", "primary_down"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_from_the_later_of_the_last_caught_up_probe_and_the_last_replayed_commit() {
        // Caught up: no lag, complete to now.
        assert_eq!(lag_of(true, 10_000, Some(2_000), 9_000), (0, 10_000));
        // Behind after a quiet spell: the last commit is old, the last caught-up probe
        // 250 ms ago bounds the lag.
        assert_eq!(lag_of(false, 10_250, Some(2_000), 10_000), (250, 10_000));
        // Behind and replaying: the newest replayed commit is the bound.
        assert_eq!(lag_of(false, 10_250, Some(10_200), 10_000), (50, 10_200));
        // Never caught up, nothing replayed: unknown.
        assert_eq!(lag_of(false, 10_000, None, 0), (UNKNOWN_LAG_MS, 0));
        // A replayed commit stamped after the replica's clock (clocks differ): no lag.
        assert_eq!(lag_of(false, 10_000, Some(10_005), 9_000), (0, 10_005));
    }
}
