//! The embedded mode's click counts: `clicks.db` beside `shortener.db`, with a writing
//! connection of its own. Counting clicks never takes the links file's write lock, so a
//! flush never holds up a shorten.
//!
//! A flush is one `BEGIN IMMEDIATE` transaction: record the units' IDs (`INSERT OR
//! IGNORE`), the new units' distinct visitors likewise (counting the new ones per link
//! and day), then for each (link, day) of exactly the new units' clicks one upsert that
//! adds the totals and appends the flush's dimension sums to the row's JSON array (SQLite's
//! own JSON functions: no parsing in Rust); a row whose array reaches [`COMPACT_AT`]
//! partial sums is read, summed in Rust ([`Dims::sum_json`], the same rule as
//! PostgreSQL's `click_dims_sum`) and written back as one. Then the sampled raw events;
//! one commit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection};

use super::{open_connection, open_writer, SqliteSettings, DB_FILE};
use crate::domain::click::{keep_raw, ClickRecord, ClickUnit, DayCounts, Dims, Rollup};
use crate::domain::{DayRange, Snowflake};
use crate::store::clicks::{ClickStore, Recorded};
use crate::store::{PartHealth, StoreError};

mod embedded {
    refinery::embed_migrations!("migrations/sqlite_clicks");
}

/// The file inside the data directory.
pub const CLICKS_FILE: &str = "clicks.db";
const PART: &str = "sqlite-clicks";

const CLAIM_UNIT: &str = "INSERT OR IGNORE INTO click_units (id, producer) VALUES (?1, ?2)";
const ADD_DAY: &str = "INSERT INTO click_daily (link_id, day, total, bots, visitors, dims) \
    VALUES (?1, ?2, ?3, ?4, ?6, json_array(json(?5))) ON CONFLICT (link_id, day) DO UPDATE \
    SET total = total + excluded.total, bots = bots + excluded.bots, \
    visitors = visitors + excluded.visitors, \
    dims = json_insert(dims, '$[#]', json(?5)) RETURNING json_array_length(dims)";
const ADD_VISITOR: &str =
    "INSERT OR IGNORE INTO click_visitors (link_id, day, visitor) VALUES (?1, ?2, ?3)";
const SELECT_DIMS: &str = "SELECT dims FROM click_daily WHERE link_id = ?1 AND day = ?2";
const PUT_DIMS: &str =
    "UPDATE click_daily SET dims = json_array(json(?3)) WHERE link_id = ?1 AND day = ?2";
/// Partial sums a row may hold before it is summed into one.
const COMPACT_AT: i64 = 16;
const INSERT_EVENT: &str = "INSERT OR IGNORE INTO click_events \
    (event_id, link_id, at, referrer, browser, os, device, bot, client) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const SELECT_DAYS: &str = "SELECT day, total, bots, visitors, dims FROM click_daily \
    WHERE link_id = ?1 AND day BETWEEN ?2 AND ?3";
const PRUNE_EVENTS: &str = "DELETE FROM click_events WHERE event_id IN \
    (SELECT event_id FROM click_events WHERE at < ?1 LIMIT 10000)";
const PRUNE_UNITS: &str = "DELETE FROM click_units WHERE id < ?1";
const PRUNE_VISITORS: &str = "DELETE FROM click_visitors WHERE day < ?1";

/// Copies the counts that versions before clicks.db kept in shortener.db (tables
/// `click_daily`, `click_dims`, `click_events`), once, folding the dimension rows into
/// each day's JSON. Runs before the links file's migration V4 drops those tables.
const IMPORT_LEGACY: &str = "
    INSERT INTO click_daily (link_id, day, total, bots, dims)
    SELECT d.link_id, d.day, d.total, d.bots, json_array(json(COALESCE((
        SELECT json_group_object(dim, json(vals)) FROM (
            SELECT dim, json_group_object(value, total) AS vals FROM links.click_dims x
            WHERE x.link_id = d.link_id AND x.day = d.day GROUP BY dim)), '{}')))
    FROM links.click_daily d;
    INSERT OR IGNORE INTO click_events SELECT * FROM links.click_events;";

fn err(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::internal(PART, e)
}

fn unavailable(msg: &'static str) -> StoreError {
    StoreError::unavailable(PART, anyhow::anyhow!(msg))
}

/// Click counts in `clicks.db`.
pub struct SqliteClicks {
    path: PathBuf,
    writer: Arc<Mutex<Option<Connection>>>,
    reader: Arc<Mutex<Option<Connection>>>,
    raw_sample: f64,
}

impl SqliteClicks {
    /// Opens (creating when needed) `dir/clicks.db` in WAL mode, migrates it, and imports
    /// the counts an earlier version kept in `dir/shortener.db`. Open it before the
    /// links' store, whose migration drops those old tables.
    ///
    /// # Errors
    /// When the file cannot be created, migrated or imported into.
    pub fn open(dir: &Path, settings: &SqliteSettings, raw_sample: f64) -> anyhow::Result<Self> {
        let (path, mut writer) = open_writer(dir, CLICKS_FILE, settings.synchronous)?;
        embedded::migrations::runner().run(&mut writer)?;
        import_legacy(&mut writer, &dir.join(DB_FILE))?;
        let reader = open_connection(&path, settings.synchronous, true)?;
        Ok(Self {
            path,
            writer: Arc::new(Mutex::new(Some(writer))),
            reader: Arc::new(Mutex::new(Some(reader))),
            raw_sample,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn with<T: Send + 'static>(
        conn: &Arc<Mutex<Option<Connection>>>,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| unavailable("lock poisoned"))?;
            let c = guard
                .as_mut()
                .ok_or_else(|| unavailable("the click store is closed"))?;
            work(c)
        })
        .await
        .map_err(err)?
    }
}

fn import_legacy(conn: &mut Connection, links_file: &Path) -> anyhow::Result<()> {
    let done: bool = conn.query_row("SELECT count(*) > 0 FROM legacy_import", [], |r| r.get(0))?;
    if done || !links_file.exists() {
        return Ok(());
    }
    conn.execute(
        "ATTACH DATABASE ?1 AS links",
        [links_file.to_string_lossy()],
    )?;
    let result = (|| -> anyhow::Result<()> {
        let legacy: i64 = conn.query_row(
            "SELECT count(*) FROM links.sqlite_master WHERE type = 'table' AND name = 'click_daily'",
            [],
            |r| r.get(0),
        )?;
        if legacy == 0 {
            return Ok(());
        }
        let tx = conn.transaction()?;
        tx.execute_batch(IMPORT_LEGACY)?;
        let days: i64 = tx.query_row("SELECT count(*) FROM click_daily", [], |r| r.get(0))?;
        tx.execute(
            "INSERT INTO legacy_import (done_at) VALUES (?1)",
            [Utc::now().timestamp_millis()],
        )?;
        tx.commit()?;
        tracing::info!(days, "copied click counts from shortener.db into clicks.db");
        Ok(())
    })();
    conn.execute("DETACH DATABASE links", [])?;
    result
}

fn record_units(
    conn: &mut Connection,
    units: &[ClickUnit],
    raw_sample: f64,
) -> Result<Recorded, StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(err)?;
    let mut recorded = Recorded::default();
    let mut fresh: Vec<&ClickRecord> = Vec::new();
    {
        let mut claim = tx.prepare_cached(CLAIM_UNIT).map_err(err)?;
        let mut sorted: Vec<&ClickUnit> = units.iter().collect();
        sorted.sort_by_key(|u| u.id);
        for unit in sorted {
            if claim
                .execute([unit.id.first.as_i64(), unit.id.producer])
                .map_err(err)?
                == 1
            {
                fresh.extend(&unit.clicks);
            } else {
                recorded.duplicates += unit.clicks.len() as u64;
            }
        }
    }
    let mut rollup = Rollup::of(fresh.iter().copied());
    add_visitors(&tx, &mut rollup).map_err(err)?;
    recorded.rows = add_days(&tx, &rollup)?;
    recorded.events = insert_events(&tx, &fresh, raw_sample).map_err(err)?;
    tx.commit().map_err(err)?;
    recorded.counted = fresh.len() as u64;
    Ok(recorded)
}

/// Adds the batch's visitor hashes; each one new that day adds to its rollup row.
fn add_visitors(tx: &rusqlite::Transaction<'_>, rollup: &mut Rollup) -> rusqlite::Result<()> {
    let mut visit = tx.prepare_cached(ADD_VISITOR)?;
    for (link, day, visitor) in &rollup.visitors {
        let new = visit.execute(params![link.as_i64(), day.to_string(), *visitor as i64])?;
        if let Some(counts) = rollup.rows.get_mut(&(*link, *day)) {
            counts.visitors += new as i64;
        }
    }
    Ok(())
}

/// Adds the rollup's per-link, per-day counts, compacting a day's dimension parts once
/// there are `COMPACT_AT` of them; the rows written.
fn add_days(tx: &rusqlite::Transaction<'_>, rollup: &Rollup) -> Result<u64, StoreError> {
    let mut add = tx.prepare_cached(ADD_DAY).map_err(err)?;
    let mut full = Vec::new();
    let mut rows = 0;
    for ((link, day), counts) in &rollup.rows {
        let day = day.to_string();
        let parts: i64 = add
            .query_row(
                params![
                    link.as_i64(),
                    day,
                    counts.total,
                    counts.bots,
                    counts.dims.to_json(),
                    counts.visitors
                ],
                |r| r.get(0),
            )
            .map_err(err)?;
        rows += 1;
        if parts >= COMPACT_AT {
            full.push((link.as_i64(), day));
        }
    }
    let mut read = tx.prepare_cached(SELECT_DIMS).map_err(err)?;
    let mut put = tx.prepare_cached(PUT_DIMS).map_err(err)?;
    for (link, day) in full {
        let text: String = read
            .query_row(params![link, day], |r| r.get(0))
            .map_err(err)?;
        let sum = Dims::sum_json(&text).map_err(err)?;
        put.execute(params![link, day, sum.to_json()])
            .map_err(err)?;
    }
    Ok(rows)
}

/// Keeps the sampled share of the batch's clicks as raw events; how many.
fn insert_events(
    tx: &rusqlite::Transaction<'_>,
    fresh: &[&ClickRecord],
    raw_sample: f64,
) -> rusqlite::Result<u64> {
    let mut insert = tx.prepare_cached(INSERT_EVENT)?;
    let mut kept = 0;
    for c in fresh.iter().filter(|c| keep_raw(c.event_id, raw_sample)) {
        let f = &c.families;
        kept += insert.execute(params![
            c.event_id.as_i64(),
            c.link_id.as_i64(),
            c.at_ms as i64,
            &*c.referrer,
            f.browser,
            f.os,
            f.device,
            f.bot,
            c.client.to_string()
        ])? as u64;
    }
    Ok(kept)
}

#[async_trait]
impl ClickStore for SqliteClicks {
    async fn record(&self, units: &[ClickUnit]) -> Result<Recorded, StoreError> {
        let units = units.to_vec();
        let rate = self.raw_sample;
        Self::with(&self.writer, move |c| record_units(c, &units, rate)).await
    }

    async fn days(
        &self,
        link: Snowflake,
        range: DayRange,
    ) -> Result<Vec<(NaiveDate, DayCounts)>, StoreError> {
        let (from, to) = (range.from().to_string(), range.to().to_string());
        Self::with(&self.reader, move |c| {
            let rows = c
                .prepare_cached(SELECT_DAYS)
                .and_then(|mut s| {
                    s.query_map(params![link.as_i64(), from, to], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, String>(4)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(err)?;
            rows.into_iter()
                .map(|(day, total, bots, visitors, dims)| {
                    Ok((
                        day.parse().map_err(err)?,
                        DayCounts {
                            total,
                            bots,
                            visitors,
                            dims: Dims::sum_json(&dims).map_err(err)?,
                        },
                    ))
                })
                .collect()
        })
        .await
    }

    async fn prune(
        &self,
        events_before: DateTime<Utc>,
        units_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let before_ms = events_before.timestamp_millis();
        let first_kept =
            Snowflake::first_of_ms(units_before.timestamp_millis().max(0) as u64).as_i64();
        // A day's visitors stay until the day is as old as a unit may be (see PostgreSQL).
        let first_day = units_before.date_naive().to_string();
        let mut removed = 0;
        loop {
            let first_day = first_day.clone();
            let n = Self::with(&self.writer, move |c| {
                if removed == 0 {
                    c.execute(PRUNE_UNITS, [first_kept]).map_err(err)?;
                    c.execute(PRUNE_VISITORS, [&first_day]).map_err(err)?;
                }
                c.execute(PRUNE_EVENTS, [before_ms]).map_err(err)
            })
            .await? as u64;
            removed += n;
            if n < 10_000 {
                return Ok(removed);
            }
        }
    }

    async fn health(&self) -> Vec<PartHealth> {
        let started = Instant::now();
        let result = Self::with(&self.reader, |c| {
            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map_err(err)
        })
        .await;
        vec![PartHealth {
            name: PART.into(),
            ok: result.is_ok(),
            latency_ms: started.elapsed().as_secs_f64() * 1e3,
            error: result.err().map(|e| e.to_string()),
        }]
    }

    async fn close(&self) {
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        self.reader.lock().ok().and_then(|mut r| r.take());
        if let Some(conn) = writer {
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    r.get::<_, i64>(0)
                }) {
                    tracing::warn!(error = %e, "clicks.db checkpoint failed");
                }
                if let Err((_, e)) = conn.close() {
                    tracing::warn!(error = %e, "closing clicks.db failed");
                }
            })
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A links file as versions before clicks.db left it: the click tables of
    /// migrations/sqlite/V2 with some counts and raw events in them.
    fn legacy_links_file(dir: &Path, link: i64) {
        let conn = Connection::open(dir.join(DB_FILE)).unwrap();
        conn.execute_batch(include_str!("../../../migrations/sqlite/V2__clicks.sql"))
            .unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO click_daily VALUES ({link}, '2026-01-01', 5, 1), ({link}, '2026-01-02', 2, 0);
             INSERT INTO click_dims VALUES
                ({link}, '2026-01-01', 'referrer', '', 3), ({link}, '2026-01-01', 'referrer', 'a.example', 2),
                ({link}, '2026-01-01', 'browser', 'Chrome', 5), ({link}, '2026-01-02', 'browser', 'Firefox', 2);
             INSERT INTO click_events VALUES (1, {link}, 0, '', 'Chrome', 'Linux', 'pc', 0, '203.0.113.0');"
        ))
        .unwrap();
    }

    #[tokio::test]
    async fn counts_kept_in_the_links_file_by_earlier_versions_are_imported_once() {
        let dir = tempfile::tempdir().unwrap();
        let link = Snowflake::from_parts(5, 0, 0);
        legacy_links_file(dir.path(), link.as_i64());

        let clicks = SqliteClicks::open(dir.path(), &SqliteSettings::default(), 0.0).unwrap();
        let (from, to) = ("2026-01-01".parse().unwrap(), "2026-01-02".parse().unwrap());
        let days = clicks
            .days(link, DayRange::new(from, to).unwrap())
            .await
            .unwrap();
        assert_eq!(days.len(), 2);
        let first = &days.iter().find(|(d, _)| *d == from).unwrap().1;
        assert_eq!((first.total, first.bots), (5, 1));
        assert_eq!(first.dims.referrer[""], 3);
        assert_eq!(first.dims.referrer["a.example"], 2);
        assert_eq!(first.dims.browser["Chrome"], 5);
        clicks.close().await;

        // Opened again (the old tables still there): nothing is added twice.
        let again = SqliteClicks::open(dir.path(), &SqliteSettings::default(), 0.0).unwrap();
        let days = again
            .days(link, DayRange::new(from, to).unwrap())
            .await
            .unwrap();
        let totals: i64 = days.iter().map(|(_, c)| c.total).sum();
        assert_eq!(totals, 7);
        again.close().await;
    }
}
