//! Range-sharded PostgreSQL: a pool per shard, routing by ID range, aliases in the
//! directory shard.
//!
//! Each shard is a bulkhead: its own pool, its own timeouts, and errors that name it. A
//! shard that is down fails only the links on it; the rest keep being served.

mod clicks;
mod directory;
mod leases;
mod links;
mod migrate;
mod replica;
mod settings;
mod shard;

use std::sync::Arc;

pub use clicks::ShardedClicks;
pub use migrate::{latest_version, migrate_all, migrate_url, schema_version};
pub use settings::{redact_url, validate_shards, DatabaseSettings, ShardSettings};
pub use shard::Shard;

use super::shard_map::ShardMap;
use super::StoreError;
use crate::domain::Snowflake;
use replica::Replicas;

/// Links spread over PostgreSQL shards by ID range.
pub struct ShardedPostgres {
    map: ShardMap,
    shards: Vec<Arc<Shard>>,
    /// Each shard's replicas, when it lists any (same order as `shards`).
    replicas: Vec<Option<Replicas>>,
    probe_every: std::time::Duration,
    directory: usize,
}

impl ShardedPostgres {
    /// Builds a pool per shard. Pools connect lazily, so a shard that is down now does
    /// not stop startup.
    ///
    /// # Errors
    /// When the configuration cannot be turned into pools (it was validated, so rarely).
    pub fn connect(
        settings: &[ShardSettings],
        db: &DatabaseSettings,
        directory: &str,
    ) -> anyhow::Result<Self> {
        let shards = settings
            .iter()
            .map(|s| {
                Shard::new(
                    s,
                    db,
                    crate::store::PoolKind::Links,
                    db.pool_size,
                    db.query_timeout_ms,
                )
                .map(Arc::new)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let replicas = settings
            .iter()
            .map(|s| Replicas::new(s, db))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let map = ShardMap::new(settings.iter().map(|s| s.first_id()).collect())?;
        let directory = settings
            .iter()
            .position(|s| s.name == directory)
            .ok_or_else(|| anyhow::anyhow!("directory shard not found"))?;
        Ok(Self {
            map,
            shards,
            replicas,
            probe_every: db.replica_probe_interval_ms,
            directory,
        })
    }

    /// Whether any shard lists replicas (then [`probe_replicas`](Self::probe_replicas)
    /// must run).
    pub fn has_replicas(&self) -> bool {
        self.replicas.iter().any(Option::is_some)
    }

    /// Probes every replica and every replicated shard's primary each
    /// `database.replica_probe_interval_ms`, for ever: run it until the shutdown.
    pub async fn probe_replicas(self: Arc<Self>) {
        let mut every = tokio::time::interval(self.probe_every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let probes = self.replicas.iter().flatten().map(Replicas::probe);
            futures::future::join_all(probes).await;
        }
    }

    /// The shards, in range order.
    pub fn shards(&self) -> &[Arc<Shard>] {
        &self.shards
    }

    /// The shard that holds `id`.
    ///
    /// # Errors
    /// [`StoreError::NoShard`] for an ID before the first range.
    pub fn shard_for(&self, id: Snowflake) -> Result<&Shard, StoreError> {
        self.map
            .shard_for(id)
            .map(|i| self.shards[i].as_ref())
            .ok_or(StoreError::NoShard(id))
    }

    pub(super) fn directory(&self) -> &Shard {
        &self.shards[self.directory]
    }

    /// Checks that every reachable shard runs the schema this binary was built for.
    /// An unreachable shard is logged and skipped (it fails only its own links); a shard
    /// on an unknown schema is an error, so a mismatched deploy never serves.
    ///
    /// # Errors
    /// When a reachable shard is unmigrated or on a version this binary does not know.
    pub async fn check_schema(&self) -> anyhow::Result<()> {
        for shard in &self.shards {
            match shard.schema_version().await {
                Ok(Some(v)) if v == latest_version() => {}
                Ok(Some(v)) => anyhow::bail!(
                    "shard {} is at schema version {v}, this binary knows version {}: \
                     run `shortener migrate` with the matching binary",
                    shard.name(),
                    latest_version()
                ),
                Ok(None) => anyhow::bail!(
                    "shard {} has no schema: run `shortener migrate --config …` first",
                    shard.name()
                ),
                Err(e) => tracing::warn!(
                    shard = shard.name(),
                    error = %crate::telemetry::chain(&e),
                    "shard unreachable at startup; its links fail until it answers"
                ),
            }
        }
        Ok(())
    }
}
