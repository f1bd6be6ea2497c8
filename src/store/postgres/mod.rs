//! Range-sharded PostgreSQL: a pool per shard, routing by ID range, aliases in the
//! directory shard.
//!
//! Each shard is a bulkhead: its own pool, its own timeouts, and errors that name it. A
//! shard that is down fails only the links on it; the rest keep being served.

mod clicks;
mod migrate;
mod shard;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use clicks::ShardedClicks;
pub use migrate::{latest_version, migrate_all, migrate_url, schema_version};
pub use shard::Shard;

use super::shard_map::ShardMap;
use super::{merge_newest, KeyRecord, LinkStore, PartHealth, PoolStatus, StoreError};
use crate::config::Settings;
use crate::domain::{Link, Snowflake, TenantId};

/// Links spread over PostgreSQL shards by ID range.
pub struct ShardedPostgres {
    map: ShardMap,
    shards: Vec<Arc<Shard>>,
    directory: usize,
}

impl ShardedPostgres {
    /// Builds a pool per shard. Pools connect lazily, so a shard that is down now does
    /// not stop startup.
    ///
    /// # Errors
    /// When the configuration cannot be turned into pools (it was validated, so rarely).
    pub fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let shards = settings
            .shards
            .iter()
            .map(|s| {
                let db = &settings.database;
                Shard::new(s, db, "links", db.pool_size, db.query_timeout_ms).map(Arc::new)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let map = ShardMap::new(settings.shards.iter().map(|s| s.first_id()).collect())?;
        let directory = settings
            .shards
            .iter()
            .position(|s| s.name == settings.directory_name())
            .ok_or_else(|| anyhow::anyhow!("directory shard not found"))?;
        Ok(Self {
            map,
            shards,
            directory,
        })
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

    fn directory(&self) -> &Shard {
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
                    error = %e,
                    "shard unreachable at startup; its links fail until it answers"
                ),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl LinkStore for ShardedPostgres {
    async fn insert(&self, link: &Link) -> Result<(), StoreError> {
        let shard = self.shard_for(link.id)?;
        let Some(alias) = &link.alias else {
            return shard.insert_link(link).await;
        };
        let directory = self.directory();
        if !directory
            .reserve_alias(alias, link.id, link.created_at)
            .await?
        {
            return Err(StoreError::AliasTaken(alias.clone()));
        }
        if let Err(e) = shard.insert_link(link).await {
            // Give the alias back so the caller can retry with it. If even that fails the
            // alias points at no row and answers 404: nothing was handed out, so nothing
            // that was promised is lost.
            if let Err(undo) = directory.release_alias(alias, link.id).await {
                tracing::error!(alias, error = %undo, "could not release alias after a failed insert");
            }
            return Err(e);
        }
        Ok(())
    }

    async fn bulk_insert(&self, links: &[Link]) -> Result<(), StoreError> {
        let mut by_shard: Vec<Vec<&Link>> = vec![Vec::new(); self.shards.len()];
        for link in links {
            let i = self
                .map
                .shard_for(link.id)
                .ok_or(StoreError::NoShard(link.id))?;
            by_shard[i].push(link);
        }
        for (i, links) in by_shard.iter().enumerate() {
            if !links.is_empty() {
                self.shards[i].copy_links(links).await?;
            }
        }
        Ok(())
    }

    async fn get(&self, id: Snowflake) -> Result<Option<Link>, StoreError> {
        match self.shard_for(id) {
            Ok(shard) => shard.get_link(id).await,
            Err(StoreError::NoShard(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn get_by_alias(&self, alias: &str) -> Result<Option<Link>, StoreError> {
        match self.directory().alias_target(alias).await? {
            Some(id) => self.get(id).await,
            None => Ok(None),
        }
    }

    async fn mark_deleted(&self, id: Snowflake, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.shard_for(id)?.mark_deleted(id, at).await
    }

    async fn health(&self) -> Vec<PartHealth> {
        futures::future::join_all(self.shards.iter().map(|s| s.health())).await
    }

    async fn list_links(
        &self,
        tenant: TenantId,
        before: Option<Snowflake>,
        limit: usize,
    ) -> Result<Vec<Link>, StoreError> {
        let before = before.unwrap_or(Snowflake::MAX);
        // Fan out: each shard returns its newest `limit` below the cursor, in parallel;
        // the merge keeps the newest `limit` of all. A shard that is down fails the
        // listing (a partial page would silently skip links).
        let pages = futures::future::try_join_all(
            self.shards
                .iter()
                .map(|s| s.list_links(tenant, before, limit)),
        )
        .await?;
        Ok(merge_newest(pages, limit))
    }

    async fn create_key(
        &self,
        tenant: &str,
        shorten_per_minute: Option<u32>,
        secret_hash: &[u8],
    ) -> Result<KeyRecord, StoreError> {
        self.directory()
            .create_key(tenant, shorten_per_minute, secret_hash)
            .await
    }

    async fn find_key(&self, id: i64) -> Result<Option<KeyRecord>, StoreError> {
        self.directory().find_key(id).await
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.directory().list_keys().await
    }

    async fn revoke_key(&self, id: i64, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.directory().revoke_key(id, at).await
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        self.shards.iter().flat_map(|s| s.collectors()).collect()
    }

    fn pool_status(&self) -> Vec<PoolStatus> {
        self.shards.iter().map(|s| s.pool_status()).collect()
    }
}
