//! One shard: a pool, its timeouts, its metrics and its health: the plumbing that the
//! links' store, the directory and the click store share. The queries live with each
//! store ([`super::links`], [`super::directory`], [`super::clicks`]).

use std::future::Future;
use std::time::{Duration, Instant};

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use super::settings::{redact_url, DatabaseSettings, ShardSettings};
use crate::domain::Snowflake;
use crate::store::{PartHealth, PoolKind, PoolStatus, StoreError};

/// What a pool is built from.
struct PoolSpec<'a> {
    name: String,
    url: &'a str,
    first_id: Snowflake,
    pool_kind: PoolKind,
    pool_size: usize,
    query_timeout: Duration,
}

/// A PostgreSQL database holding one range of the ID space.
pub struct Shard {
    name: String,
    /// What this pool serves: a shard has one pool for links and one for clicks, so a
    /// click flush never takes a connection a shorten is waiting for.
    pool_kind: PoolKind,
    display_url: String,
    first_id: Snowflake,
    pool: Pool,
    query_timeout: Duration,
    /// Query latency (pool wait included), labelled with this shard.
    latency: prometheus::Histogram,
    /// Failed queries by kind (unavailable, timeout, internal).
    errors: prometheus::IntCounterVec,
}

impl Shard {
    /// A shard with a lazily connecting pool of `pool_size` connections for `pool_kind`
    /// work (`links` or `clicks`), whose queries may run `query_timeout_ms`.
    ///
    /// # Errors
    /// When the URL does not parse or the pool cannot be built.
    pub fn new(
        settings: &ShardSettings,
        db: &DatabaseSettings,
        pool_kind: PoolKind,
        pool_size: usize,
        query_timeout: Duration,
    ) -> anyhow::Result<Self> {
        // The links' pool reports as shard_…, the clicks' pool as click_shard_….
        let prefix = if pool_kind == PoolKind::Clicks {
            "click_"
        } else {
            ""
        };
        Self::build(
            PoolSpec {
                name: settings.name.clone(),
                url: &settings.url,
                first_id: settings.first_id(),
                pool_kind,
                pool_size,
                query_timeout,
            },
            db,
            &format!("{prefix}shard"),
            &[("shard", &settings.name)],
        )
    }

    /// The pool of replica number `index` (from 0) of `settings`' shard, for redirect
    /// misses: its own connections, timeouts and metrics
    /// (`shortener_replica_query_duration_seconds{shard, replica}` …). It answers as
    /// part `s0/r0` in errors.
    ///
    /// # Errors
    /// When the URL does not parse or the pool cannot be built.
    pub fn replica(
        settings: &ShardSettings,
        index: usize,
        db: &DatabaseSettings,
    ) -> anyhow::Result<Self> {
        let replica = format!("r{index}");
        Self::build(
            PoolSpec {
                name: format!("{}/{replica}", settings.name),
                url: &settings.replicas[index],
                first_id: settings.first_id(),
                pool_kind: PoolKind::Replica,
                pool_size: db.replica_pool_size,
                query_timeout: db.query_timeout_ms,
            },
            db,
            "replica",
            &[("shard", &settings.name), ("replica", &replica)],
        )
    }

    fn build(
        spec: PoolSpec<'_>,
        db: &DatabaseSettings,
        metric: &str,
        labels: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let PoolSpec {
            name,
            url,
            first_id,
            pool_kind,
            pool_size,
            query_timeout,
        } = spec;
        let pool = make_pool(url, db, pool_size, query_timeout)?;
        let const_labels = const_labels(labels);
        let latency = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new(
                format!("{metric}_query_duration_seconds"),
                format!(
                    "Shard query latency ({} pool), pool wait included.",
                    pool_kind.as_str()
                ),
            )
            .namespace("shortener")
            .const_labels(const_labels.clone())
            .buckets(crate::telemetry::LATENCY_BUCKETS.to_vec()),
        )?;
        let errors = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                format!("{metric}_errors_total"),
                format!(
                    "Failed shard queries ({} pool) by kind.",
                    pool_kind.as_str()
                ),
            )
            .namespace("shortener")
            .const_labels(const_labels),
            &["kind"],
        )?;
        // Every kind exists from the start at 0, so rates and alerts see the first error.
        for kind in ["unavailable", "timeout", "internal"] {
            errors.with_label_values(&[kind]);
        }
        Ok(Self {
            name,
            pool_kind,
            display_url: redact_url(url),
            first_id,
            pool,
            query_timeout,
            latency,
            errors,
        })
    }

    /// The shard's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The connection URL with any password hidden.
    pub fn display_url(&self) -> &str {
        &self.display_url
    }

    /// The first ID of the shard's range.
    pub fn first_id(&self) -> Snowflake {
        self.first_id
    }

    /// The connection pool (for tooling such as bulk seeding).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Runs `work` on a pooled connection under the shard's query timeout, turning every
    /// failure into a [`StoreError`] that names this shard.
    pub(super) async fn run<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(Object) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let attempt = async {
            let client = self.pool.get().await.map_err(|e| self.pool_error(e))?;
            work(client).await.map_err(|e| self.query_error(e))
        };
        let started = Instant::now();
        let result = tokio::time::timeout(self.query_timeout, attempt)
            .await
            .map_err(|_| StoreError::Timeout {
                part: self.name.clone(),
            })
            .and_then(|r| r);
        self.latency.observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            let kind = match e {
                StoreError::Timeout { .. } => "timeout",
                StoreError::Unavailable { .. } => "unavailable",
                _ => "internal",
            };
            self.errors.with_label_values(&[kind]).inc();
        }
        result
    }

    /// This shard's collectors.
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.latency.clone()),
            Box::new(self.errors.clone()),
        ]
    }

    /// The pool's state now.
    pub fn pool_status(&self) -> PoolStatus {
        let st = self.pool.status();
        PoolStatus {
            name: self.name.clone(),
            pool: self.pool_kind,
            size: st.size,
            available: st.available,
            waiting: st.waiting,
        }
    }

    pub(super) fn pool_error(&self, e: PoolError) -> StoreError {
        match e {
            PoolError::Backend(e) => self.query_error(e),
            other => StoreError::Unavailable {
                part: self.name.clone(),
                source: other.into(),
            },
        }
    }

    /// Counts a failure of `kind` (`unavailable`, `timeout`, `internal`) that did not go
    /// through [`run`](Self::run), such as a replica's probe on its own connection.
    pub(super) fn count_error(&self, kind: &str) {
        self.errors.with_label_values(&[kind]).inc();
    }

    pub(super) fn query_error(&self, e: tokio_postgres::Error) -> StoreError {
        let part = self.name.clone();
        let Some(db) = e.as_db_error() else {
            // No server error: the connection failed or closed under us.
            return StoreError::Unavailable {
                part,
                source: e.into(),
            };
        };
        let code = db.code();
        if *code == SqlState::QUERY_CANCELED {
            StoreError::Timeout { part }
        } else if code.code().starts_with("08")
            || code.code().starts_with("57P")
            || *code == SqlState::INVALID_CATALOG_NAME
            || *code == SqlState::TOO_MANY_CONNECTIONS
        {
            StoreError::Unavailable {
                part,
                source: e.into(),
            }
        } else {
            StoreError::Internal {
                part,
                source: e.into(),
            }
        }
    }

    /// The schema version the shard is at (`None` when unmigrated).
    ///
    /// # Errors
    /// When the shard cannot be reached.
    pub async fn schema_version(&self) -> Result<Option<i64>, StoreError> {
        self.run(|c| async move { super::migrate::schema_version(&c).await })
            .await
    }

    pub(super) async fn health(&self) -> PartHealth {
        let started = Instant::now();
        let result = self
            .run(|c| async move { c.simple_query("SELECT 1").await })
            .await;
        PartHealth {
            name: self.name.clone(),
            ok: result.is_ok(),
            latency_ms: started.elapsed().as_secs_f64() * 1e3,
            error: result.err().map(|e| e.to_string()),
        }
    }
}

/// Prometheus constant labels from `(name, value)` pairs.
pub(super) fn const_labels(labels: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A lazily connecting pool of `size` connections to `url`, whose statements may run
/// `query_timeout_ms`.
///
/// # Errors
/// When the URL does not parse or the pool cannot be built.
pub(super) fn make_pool(
    url: &str,
    db: &DatabaseSettings,
    size: usize,
    query_timeout: Duration,
) -> anyhow::Result<Pool> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config
        .connect_timeout(db.connect_timeout_ms)
        .application_name("shortener")
        .options(format!(
            "-c statement_timeout={}",
            query_timeout.as_millis()
        ));
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(db.pool_wait_timeout_ms))
        .create_timeout(Some(db.connect_timeout_ms))
        .recycle_timeout(Some(db.connect_timeout_ms))
        .build()?)
}

/// Escapes a value for `COPY` text format.
pub(super) fn copy_escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}
