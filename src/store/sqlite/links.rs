//! The links' store in the embedded file.

use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{internal, SqliteStore, Write, PART};
use crate::domain::clock::ms_to_datetime;
use crate::domain::{Alias, Link, Snowflake, TenantId};
use crate::store::sql::{
    self, Columns, ANY_LINK, INSERT_LINK, LIST_LINKS, RESERVE_ALIAS, SELECT_LINK, SET_DISABLED,
    UPDATE_LINK,
};
use crate::store::{LinkStore, ListQuery, PartHealth, StoreError};

/// Finds a link by its alias with one join (aliases live in this file; see
/// [`crate::store::sql`] for why PostgreSQL asks its directory instead).
const SELECT_BY_ALIAS: &str = "SELECT l.id, l.alias, l.url, l.redirect, l.created_at, \
    l.expires_at, l.deleted_at, l.tenant_id, l.disabled_at \
    FROM aliases a JOIN links l ON l.id = a.link_id WHERE a.alias = $1";

/// Inserts one link (and its alias) inside a savepoint, so a taken alias undoes only
/// this link.
pub(super) fn apply_insert(
    tx: &mut rusqlite::Transaction<'_>,
    link: &Link,
) -> Result<(), StoreError> {
    let mut sp = tx.savepoint_with_name("link").map_err(internal)?;
    if let Some(alias) = &link.alias {
        let reserved = sp
            .prepare_cached(RESERVE_ALIAS)
            .and_then(|mut s| {
                s.execute(params![
                    alias.as_str(),
                    link.id.as_i64(),
                    link.created_at.timestamp_millis()
                ])
            })
            .map_err(internal)?;
        if reserved == 0 {
            sp.set_drop_behavior(rusqlite::DropBehavior::Rollback);
            return Err(StoreError::AliasTaken(alias.to_string()));
        }
    }
    sp.prepare_cached(INSERT_LINK)
        .and_then(|mut s| {
            s.execute(params![
                link.id.as_i64(),
                link.alias.as_ref().map(Alias::as_str),
                link.url.as_str(),
                link.redirect.status(),
                link.created_at.timestamp_millis(),
                link.expires_at.map(|t| t.timestamp_millis()),
                link.tenant.map(TenantId::get),
            ])
        })
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                StoreError::DuplicateId(link.id)
            }
            e => internal(e),
        })?;
    sp.commit().map_err(internal)
}

/// SQLite's columns: times are Unix milliseconds.
impl Columns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;

    fn int(&self, column: &str) -> rusqlite::Result<Option<i64>> {
        self.get(column)
    }

    fn text(&self, column: &str) -> rusqlite::Result<Option<String>> {
        self.get(column)
    }

    fn bytes(&self, column: &str) -> rusqlite::Result<Option<Vec<u8>>> {
        self.get(column)
    }

    fn time(&self, column: &str) -> rusqlite::Result<Option<DateTime<Utc>>> {
        let ms: Option<i64> = self.get(column)?;
        Ok(ms.map(|v| ms_to_datetime(u64::try_from(v).unwrap_or(0))))
    }

    fn invalid(column: &str, why: String) -> rusqlite::Error {
        let why = format!("{column} {why}");
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Null, why.into())
    }
}

fn link_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Link> {
    sql::link_from_row(row)
}

#[async_trait]
impl LinkStore for SqliteStore {
    async fn insert(&self, link: &Link) -> Result<(), StoreError> {
        let link = link.clone();
        self.write(|reply| Write::Insert(link, reply)).await
    }

    async fn bulk_insert(&self, links: &[Link]) -> Result<(), StoreError> {
        // Through the writer in chunks: each chunk is one write of many inserts, and
        // the writer group-commits it like any other.
        for chunk in links.chunks(10_000) {
            let chunk = chunk.to_vec();
            self.write(|reply| Write::Bulk(chunk, reply)).await?;
        }
        Ok(())
    }

    async fn get(&self, id: Snowflake) -> Result<Option<Link>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(SELECT_LINK)?
                .query_row([id.as_i64()], link_from_row)
                .optional()
        })
        .await
    }

    async fn get_by_alias(&self, alias: &str) -> Result<Option<Link>, StoreError> {
        let alias = alias.to_owned();
        self.read(move |c| {
            c.prepare_cached(SELECT_BY_ALIAS)?
                .query_row([alias], link_from_row)
                .optional()
        })
        .await
    }

    async fn mark_deleted(&self, id: Snowflake, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.write(|reply| Write::Delete(id, at, reply)).await
    }

    async fn update(&self, link: &Link) -> Result<bool, StoreError> {
        let values = vec![
            link.url.as_str().to_owned().into(),
            i64::from(link.redirect.status()).into(),
            link.expires_at.map(|t| t.timestamp_millis()).into(),
            link.id.as_i64().into(),
        ];
        self.write(|reply| Write::Statement(UPDATE_LINK, values, reply))
            .await
    }

    async fn set_disabled(
        &self,
        id: Snowflake,
        at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let values = vec![at.map(|t| t.timestamp_millis()).into(), id.as_i64().into()];
        self.write(|reply| Write::Statement(SET_DISABLED, values, reply))
            .await
    }

    async fn has_links(&self) -> Result<bool, StoreError> {
        self.read(|c| c.query_row(ANY_LINK, [], |r| r.get(0))).await
    }

    async fn health(&self) -> Vec<PartHealth> {
        let started = Instant::now();
        let result = self
            .read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
            .await;
        vec![PartHealth {
            name: PART.into(),
            ok: result.is_ok(),
            latency_ms: started.elapsed().as_secs_f64() * 1e3,
            error: result.err().map(|e| e.to_string()),
        }]
    }

    async fn list_links(&self, query: ListQuery) -> Result<Vec<Link>, StoreError> {
        let (tenant, before) = (query.tenant, query.before.as_i64());
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            c.prepare_cached(LIST_LINKS)?
                .query_map(params![tenant.get(), before, limit], link_from_row)?
                .collect()
        })
        .await
    }

    async fn close(&self) {
        SqliteStore::close(self).await;
    }
}
