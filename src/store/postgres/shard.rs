//! One shard: a pool, its timeouts, and the repository queries that run on it.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

use crate::config::{redact_url, DatabaseSettings, ShardSettings};
use crate::domain::{Link, RedirectKind, Snowflake, TenantId};
use crate::store::{KeyRecord, PartHealth, PoolStatus, StoreError};

const INSERT_LINK: &str =
    "INSERT INTO links (id, alias, url, redirect, created_at, expires_at, tenant_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
const SELECT_LINK: &str = "SELECT id, alias, url, redirect, created_at, expires_at, deleted_at, \
                           tenant_id FROM links WHERE id = $1";
const LIST_LINKS: &str = "SELECT id, alias, url, redirect, created_at, expires_at, deleted_at, \
    tenant_id FROM links WHERE tenant_id = $1 AND deleted_at IS NULL AND id < $2 \
    ORDER BY tenant_id, id DESC LIMIT $3";
const UPSERT_TENANT: &str = "INSERT INTO tenants (name, shorten_per_minute) VALUES ($1, $2) \
    ON CONFLICT (name) DO UPDATE \
    SET shorten_per_minute = COALESCE(EXCLUDED.shorten_per_minute, tenants.shorten_per_minute) \
    RETURNING id";
const INSERT_KEY: &str =
    "INSERT INTO api_keys (tenant_id, secret_hash) VALUES ($1, $2) RETURNING id";
const SELECT_KEYS: &str = "SELECT k.id, k.tenant_id, t.name, k.secret_hash, k.created_at, \
    k.revoked_at, t.shorten_per_minute FROM api_keys k JOIN tenants t ON t.id = k.tenant_id";
const REVOKE_KEY: &str = "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
const MARK_DELETED: &str = "UPDATE links SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL";
const RESERVE_ALIAS: &str = "INSERT INTO aliases (alias, link_id, created_at) VALUES ($1, $2, $3) \
                             ON CONFLICT (alias) DO NOTHING";
const RELEASE_ALIAS: &str = "DELETE FROM aliases WHERE alias = $1 AND link_id = $2";
const ALIAS_TARGET: &str = "SELECT link_id FROM aliases WHERE alias = $1";
/// A PostgreSQL database holding one range of the ID space.
pub struct Shard {
    name: String,
    /// What this pool serves (`links` or `clicks`): a shard has one pool for each, so a
    /// click flush never takes a connection a shorten is waiting for.
    pool_kind: &'static str,
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
        pool_kind: &'static str,
        pool_size: usize,
        query_timeout_ms: u64,
    ) -> anyhow::Result<Self> {
        let mut config: tokio_postgres::Config = settings.url.parse()?;
        config
            .connect_timeout(Duration::from_millis(db.connect_timeout_ms))
            .application_name("shortener")
            .options(format!("-c statement_timeout={query_timeout_ms}"));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_millis(db.pool_wait_timeout_ms)))
            .create_timeout(Some(Duration::from_millis(db.connect_timeout_ms)))
            .recycle_timeout(Some(Duration::from_millis(db.connect_timeout_ms)))
            .build()?;
        // The links' pool reports as shard_…, the clicks' pool as click_shard_….
        let metric = |name: &str| {
            if pool_kind == "links" {
                name.to_owned()
            } else {
                format!("{pool_kind}_{name}").replacen("clicks_", "click_", 1)
            }
        };
        let latency = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new(
                metric("shard_query_duration_seconds"),
                format!("Shard query latency ({pool_kind} pool), pool wait included."),
            )
            .namespace("shortener")
            .const_label("shard", &settings.name)
            .buckets(crate::metrics::LATENCY_BUCKETS.to_vec()),
        )?;
        let errors = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                metric("shard_errors_total"),
                format!("Failed shard queries ({pool_kind} pool) by kind."),
            )
            .namespace("shortener")
            .const_label("shard", &settings.name),
            &["kind"],
        )?;
        // Every kind exists from the start at 0, so rates and alerts see the first error.
        for kind in ["unavailable", "timeout", "internal"] {
            errors.with_label_values(&[kind]);
        }
        Ok(Self {
            name: settings.name.clone(),
            pool_kind,
            display_url: redact_url(&settings.url),
            first_id: settings.first_id(),
            pool,
            query_timeout: Duration::from_millis(query_timeout_ms),
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

    fn pool_error(&self, e: PoolError) -> StoreError {
        match e {
            PoolError::Backend(e) => self.query_error(e),
            other => StoreError::Unavailable {
                part: self.name.clone(),
                source: other.into(),
            },
        }
    }

    fn query_error(&self, e: tokio_postgres::Error) -> StoreError {
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

    pub(super) async fn insert_link(&self, link: &Link) -> Result<(), StoreError> {
        let redirect = link.redirect.status() as i16;
        self.run(|c| async move {
            let stmt = c.prepare_cached(INSERT_LINK).await?;
            c.execute(
                &stmt,
                &[
                    &link.id.as_i64(),
                    &link.alias,
                    &link.url,
                    &redirect,
                    &link.created_at,
                    &link.expires_at,
                    &link.tenant,
                ],
            )
            .await
        })
        .await?;
        Ok(())
    }

    /// Loads links with `COPY … FROM STDIN` (text format), in one statement. Not under
    /// the query timeout: a bulk load of millions of rows is expected to take a while.
    pub(super) async fn copy_links(&self, links: &[&Link]) -> Result<(), StoreError> {
        use futures::SinkExt;
        let mut buf = String::with_capacity(links.len() * 96);
        for l in links {
            use std::fmt::Write as _;
            let _ = writeln!(
                buf,
                "{}\t{}\t{}\t{}",
                l.id.as_i64(),
                copy_escape(&l.url),
                l.redirect.status(),
                l.created_at.to_rfc3339()
            );
        }
        let client = self.pool.get().await.map_err(|e| self.pool_error(e))?;
        let sink = client
            .copy_in("COPY links (id, url, redirect, created_at) FROM STDIN")
            .await
            .map_err(|e| self.query_error(e))?;
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from(buf))
            .await
            .map_err(|e| self.query_error(e))?;
        sink.finish().await.map_err(|e| self.query_error(e))?;
        Ok(())
    }

    pub(super) async fn get_link(&self, id: Snowflake) -> Result<Option<Link>, StoreError> {
        let row = self
            .run(|c| async move {
                let stmt = c.prepare_cached(SELECT_LINK).await?;
                c.query_opt(&stmt, &[&id.as_i64()]).await
            })
            .await?;
        row.map(|r| self.link_from_row(&r)).transpose()
    }

    /// A tenant's live links with IDs below `before`, newest first.
    pub(super) async fn list_links(
        &self,
        tenant: TenantId,
        before: Snowflake,
        limit: usize,
    ) -> Result<Vec<Link>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .run(|c| async move {
                let stmt = c.prepare_cached(LIST_LINKS).await?;
                c.query(&stmt, &[&tenant, &before.as_i64(), &limit]).await
            })
            .await?;
        rows.iter().map(|r| self.link_from_row(r)).collect()
    }

    /// Creates the tenant when new (setting its quota when one is given) and a key for
    /// it holding `secret_hash`.
    pub(super) async fn create_key(
        &self,
        tenant: &str,
        shorten_per_minute: Option<u32>,
        secret_hash: &[u8],
    ) -> Result<KeyRecord, StoreError> {
        let quota = shorten_per_minute.map(|q| i32::try_from(q).unwrap_or(i32::MAX));
        let id = self
            .run(|mut c| async move {
                let tx = c.transaction().await?;
                let tenant_id: i64 = tx
                    .query_one(UPSERT_TENANT, &[&tenant, &quota])
                    .await?
                    .get(0);
                let id: i64 = tx
                    .query_one(INSERT_KEY, &[&tenant_id, &secret_hash])
                    .await?
                    .get(0);
                tx.commit().await?;
                Ok(id)
            })
            .await?;
        self.find_key(id)
            .await?
            .ok_or_else(|| StoreError::Internal {
                part: self.name.clone(),
                source: anyhow::anyhow!("key {id} vanished after its commit"),
            })
    }

    /// One key with its tenant.
    pub(super) async fn find_key(&self, id: i64) -> Result<Option<KeyRecord>, StoreError> {
        let row = self
            .run(|c| async move {
                let stmt = c
                    .prepare_cached(&format!("{SELECT_KEYS} WHERE k.id = $1"))
                    .await?;
                c.query_opt(&stmt, &[&id]).await
            })
            .await?;
        Ok(row.as_ref().map(key_from_row))
    }

    /// Every key, oldest first.
    pub(super) async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = self
            .run(|c| async move { c.query(&format!("{SELECT_KEYS} ORDER BY k.id"), &[]).await })
            .await?;
        Ok(rows.iter().map(key_from_row).collect())
    }

    /// Revokes a key; false when unknown or already revoked.
    pub(super) async fn revoke_key(&self, id: i64, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let n = self
            .run(|c| async move { c.execute(REVOKE_KEY, &[&id, &at]).await })
            .await?;
        Ok(n == 1)
    }

    pub(super) async fn mark_deleted(
        &self,
        id: Snowflake,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self
            .run(|c| async move {
                let stmt = c.prepare_cached(MARK_DELETED).await?;
                c.execute(&stmt, &[&id.as_i64(), &at]).await
            })
            .await?;
        Ok(n == 1)
    }

    /// Reserves `alias` for `id`; false when another link holds it.
    pub(super) async fn reserve_alias(
        &self,
        alias: &str,
        id: Snowflake,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self
            .run(|c| async move {
                let stmt = c.prepare_cached(RESERVE_ALIAS).await?;
                c.execute(&stmt, &[&alias, &id.as_i64(), &at]).await
            })
            .await?;
        Ok(n == 1)
    }

    pub(super) async fn release_alias(&self, alias: &str, id: Snowflake) -> Result<(), StoreError> {
        self.run(|c| async move {
            let stmt = c.prepare_cached(RELEASE_ALIAS).await?;
            c.execute(&stmt, &[&alias, &id.as_i64()]).await
        })
        .await?;
        Ok(())
    }

    pub(super) async fn alias_target(&self, alias: &str) -> Result<Option<Snowflake>, StoreError> {
        let row = self
            .run(|c| async move {
                let stmt = c.prepare_cached(ALIAS_TARGET).await?;
                c.query_opt(&stmt, &[&alias]).await
            })
            .await?;
        Ok(row.and_then(|r| Snowflake::from_i64(r.get(0))))
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

    fn link_from_row(&self, row: &Row) -> Result<Link, StoreError> {
        let internal = |msg: String| StoreError::Internal {
            part: self.name.clone(),
            source: anyhow::anyhow!(msg),
        };
        let raw_id: i64 = row.get(0);
        let id = Snowflake::from_i64(raw_id).ok_or_else(|| internal(format!("bad id {raw_id}")))?;
        let status: i16 = row.get(3);
        let redirect = u16::try_from(status)
            .map_err(|e| e.to_string())
            .and_then(RedirectKind::try_from)
            .map_err(internal)?;
        Ok(Link {
            id,
            alias: row.get(1),
            url: row.get(2),
            redirect,
            created_at: row.get(4),
            expires_at: row.get(5),
            deleted_at: row.get(6),
            tenant: row.get(7),
        })
    }
}

fn key_from_row(row: &Row) -> KeyRecord {
    KeyRecord {
        id: row.get(0),
        tenant_id: row.get(1),
        tenant: row.get(2),
        secret_hash: row.get(3),
        created_at: row.get(4),
        revoked_at: row.get(5),
        shorten_per_minute: row
            .get::<_, Option<i32>>(6)
            .and_then(|q| u32::try_from(q).ok()),
    }
}

/// Escapes a value for `COPY` text format.
pub(super) fn copy_escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}
