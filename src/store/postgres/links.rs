//! The links' store on the shards: links on the shard their ID falls in, aliases in the
//! directory shard.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::shard::{copy_escape, Shard};
use super::ShardedPostgres;
use crate::domain::{Alias, Link, Snowflake, TenantId};
use crate::store::sql::{
    link_from_row, Columns, ANY_LINK, INSERT_LINK, LIST_LINKS, MARK_DELETED, RESERVE_ALIAS,
    SELECT_LINK, SET_DISABLED, UPDATE_LINK,
};
use crate::store::{
    merge_newest, LinkStore, ListQuery, PartHealth, PoolStatus, ReplicaHealth, StoreError,
};

const RELEASE_ALIAS: &str = "DELETE FROM aliases WHERE alias = $1 AND link_id = $2";

const ALIAS_TARGET: &str = "SELECT link_id FROM aliases WHERE alias = $1";

#[async_trait]
impl LinkStore for ShardedPostgres {
    async fn insert(&self, link: &Link) -> Result<(), StoreError> {
        let shard = self.shard_for(link.id)?;
        let Some(alias) = &link.alias else {
            return shard.insert_link(link).await;
        };
        let directory = self.directory();
        if !directory
            .reserve_alias(alias.as_str(), link.id, link.created_at)
            .await?
        {
            return Err(StoreError::AliasTaken(alias.to_string()));
        }
        if let Err(e) = shard.insert_link(link).await {
            // Give the alias back so the caller can retry with it. If even that fails the
            // alias points at no row and answers 404: nothing was handed out, so nothing
            // that was promised is lost.
            if let Err(undo) = directory.release_alias(alias.as_str(), link.id).await {
                tracing::error!(%alias, error = %undo, "could not release alias after a failed insert");
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

    async fn resolve(&self, id: Snowflake) -> Result<Option<Link>, StoreError> {
        let Some(i) = self.map.shard_for(id) else {
            return Ok(None);
        };
        let shard = self.shards[i].as_ref();
        match &self.replicas[i] {
            None => shard.get_link(id).await,
            Some(replicas) => {
                replicas
                    .read(shard, Some(id.unix_ms()), |s| s.get_link(id))
                    .await
            }
        }
    }

    async fn resolve_alias(&self, alias: &str) -> Result<Option<Link>, StoreError> {
        let directory = self.directory();
        let target = match &self.replicas[self.directory] {
            None => directory.alias_target(alias).await?,
            Some(replicas) => {
                replicas
                    .read(directory, None, |s| s.alias_target(alias))
                    .await?
            }
        };
        match target {
            Some(id) => self.resolve(id).await,
            None => Ok(None),
        }
    }

    fn replicas(&self) -> Vec<ReplicaHealth> {
        self.replicas
            .iter()
            .flatten()
            .flat_map(|r| r.health())
            .collect()
    }

    async fn mark_deleted(&self, id: Snowflake, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.shard_for(id)?.mark_deleted(id, at).await
    }

    async fn update(&self, link: &Link) -> Result<bool, StoreError> {
        let shard = self.shard_for(link.id)?;
        let redirect = link.redirect.status() as i16;
        let n = shard
            .run(|c| async move {
                let stmt = c.prepare_cached(UPDATE_LINK).await?;
                c.execute(
                    &stmt,
                    &[
                        &link.url.as_str(),
                        &redirect,
                        &link.expires_at,
                        &link.id.as_i64(),
                    ],
                )
                .await
            })
            .await?;
        Ok(n == 1)
    }

    async fn set_disabled(
        &self,
        id: Snowflake,
        at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let shard = self.shard_for(id)?;
        let n = shard
            .run(|c| async move { c.execute(SET_DISABLED, &[&at, &id.as_i64()]).await })
            .await?;
        Ok(n == 1)
    }

    async fn has_links(&self) -> Result<bool, StoreError> {
        let any = futures::future::try_join_all(self.shards.iter().map(|s| async move {
            let row = s
                .run(|c| async move { c.query_one(ANY_LINK, &[]).await })
                .await?;
            Ok::<bool, StoreError>(row.get(0))
        }))
        .await?;
        Ok(any.into_iter().any(|a| a))
    }

    async fn health(&self) -> Vec<PartHealth> {
        futures::future::join_all(self.shards.iter().map(|s| s.health())).await
    }

    async fn list_links(&self, query: ListQuery) -> Result<Vec<Link>, StoreError> {
        let ListQuery {
            tenant,
            before,
            limit,
        } = query;
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

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        let replicas = self.replicas.iter().flatten().flat_map(|r| r.collectors());
        self.shards
            .iter()
            .flat_map(|s| s.collectors())
            .chain(replicas)
            .collect()
    }

    fn pool_status(&self) -> Vec<PoolStatus> {
        let replicas = self.replicas.iter().flatten().flat_map(|r| r.pool_status());
        self.shards
            .iter()
            .map(|s| s.pool_status())
            .chain(replicas)
            .collect()
    }
}

/// [`StoreError::DuplicateId`] for a primary-key violation on `links`, else `e`.
fn duplicate_id(e: StoreError, id: Snowflake) -> StoreError {
    let duplicate = match &e {
        StoreError::Internal { source, .. } => source
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::as_db_error)
            .is_some_and(|db| {
                *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                    && db.constraint() == Some("links_pkey")
            }),
        _ => false,
    };
    if duplicate {
        StoreError::DuplicateId(id)
    } else {
        e
    }
}

/// The links' queries, on one shard.
impl Shard {
    pub(super) async fn insert_link(&self, link: &Link) -> Result<(), StoreError> {
        let redirect = link.redirect.status() as i16;
        self.run(|c| async move {
            let stmt = c.prepare_cached(INSERT_LINK).await?;
            c.execute(
                &stmt,
                &[
                    &link.id.as_i64(),
                    &link.alias.as_ref().map(Alias::as_str),
                    &link.url.as_str(),
                    &redirect,
                    &link.created_at,
                    &link.expires_at,
                    &link.tenant.map(TenantId::get),
                ],
            )
            .await
        })
        .await
        .map_err(|e| duplicate_id(e, link.id))?;
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
                copy_escape(l.url.as_str()),
                l.redirect.status(),
                l.created_at.to_rfc3339()
            );
        }
        let client = self.pool().get().await.map_err(|e| self.pool_error(e))?;
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
        row.map(|r| self.link(&r)).transpose()
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
                c.query(&stmt, &[&tenant.get(), &before.as_i64(), &limit])
                    .await
            })
            .await?;
        rows.iter().map(|r| self.link(r)).collect()
    }

    pub(super) async fn mark_deleted(
        &self,
        id: Snowflake,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self
            .run(|c| async move {
                let stmt = c.prepare_cached(MARK_DELETED).await?;
                c.execute(&stmt, &[&at, &id.as_i64()]).await
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

    /// A link row read back, an invalid value named with this shard.
    fn link(&self, row: &Row) -> Result<Link, StoreError> {
        link_from_row(row).map_err(|e| StoreError::internal(self.name(), e))
    }
}

/// PostgreSQL's columns: times are `TIMESTAMPTZ`, the redirect a `SMALLINT`.
impl Columns for Row {
    type Error = anyhow::Error;

    fn int(&self, column: &str) -> anyhow::Result<Option<i64>> {
        use tokio_postgres::types::Type;
        let index = self
            .columns()
            .iter()
            .position(|c| c.name() == column)
            .ok_or_else(|| anyhow::anyhow!("no column {column}"))?;
        Ok(match *self.columns()[index].type_() {
            Type::INT2 => self.try_get::<_, Option<i16>>(index)?.map(i64::from),
            Type::INT4 => self.try_get::<_, Option<i32>>(index)?.map(i64::from),
            _ => self.try_get::<_, Option<i64>>(index)?,
        })
    }

    fn text(&self, column: &str) -> anyhow::Result<Option<String>> {
        Ok(self.try_get(column)?)
    }

    fn bytes(&self, column: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.try_get(column)?)
    }

    fn time(&self, column: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
        Ok(self.try_get(column)?)
    }

    fn invalid(column: &str, why: String) -> anyhow::Error {
        anyhow::anyhow!("{column} {why}")
    }
}
