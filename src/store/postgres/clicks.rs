//! Clicks on PostgreSQL: every shard counts the clicks of its own links, through a
//! small pool of its own (`database.clicks_pool_size`), so a flush never holds a
//! connection a shorten is waiting for.
//!
//! One flush is one transaction per shard, with a fixed number of statements whatever
//! its size: record the units' IDs (`INSERT … ON CONFLICT DO NOTHING RETURNING`), record
//! the new units' distinct visitors the same way and count the new ones per (link,
//! day), add the per-(link, day) sums of exactly the new units' clicks (one multi-row
//! upsert that appends the dimension sums to the row, summing the row up every 16
//! flushes), `COPY` the sampled raw events, commit.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::settings::{DatabaseSettings, ShardSettings};
use super::shard::{copy_escape, Shard};
use crate::domain::click::MAX_DIM_VALUES;
use crate::domain::click::{keep_raw, ClickRecord, ClickUnit, DayCounts, Dims, Rollup, UnitId};
use crate::domain::clock::ms_to_datetime;
use crate::domain::{DayRange, Snowflake};
use crate::store::clicks::{ClickStore, Recorded};
use crate::store::shard_map::ShardMap;
use crate::store::{PartHealth, PoolKind, PoolStatus, StoreError};

const CLAIM_UNITS: &str = "INSERT INTO click_units (id, producer) \
    SELECT * FROM UNNEST($1::int8[], $2::int8[]) ON CONFLICT DO NOTHING RETURNING id, producer";
/// The flush's sums are appended to the row's array of partial sums; a row whose array
/// has reached `$7` elements is summed into one (`click_dims_sum`, migration V4).
/// Appending is nearly free for PostgreSQL, summing is not: this way a row is summed
/// once every [`COMPACT_AT`] flushes, not at every one.
const ADD_DAYS: &str = "INSERT INTO click_daily AS d (link_id, day, total, bots, visitors, dims) \
    SELECT l, day, t, b, v, j::jsonb \
    FROM UNNEST($1::int8[], $2::date[], $3::int8[], $4::int8[], $5::int8[], $6::text[]) \
    AS u(l, day, t, b, v, j) \
    ON CONFLICT (link_id, day) DO UPDATE SET total = d.total + EXCLUDED.total, \
    bots = d.bots + EXCLUDED.bots, visitors = d.visitors + EXCLUDED.visitors, \
    dims = CASE WHEN jsonb_array_length(d.dims) < $8 \
    THEN d.dims || EXCLUDED.dims ELSE click_dims_sum(d.dims || EXCLUDED.dims, $7) END";
/// The flush's distinct visitors; answers how many were new, per (link, day).
const ADD_VISITORS: &str = "WITH new AS (INSERT INTO click_visitors (link_id, day, visitor) \
    SELECT * FROM UNNEST($1::int8[], $2::date[], $3::int8[]) ON CONFLICT DO NOTHING \
    RETURNING link_id, day) SELECT link_id, day, count(*)::int8 FROM new GROUP BY 1, 2";
/// Partial sums a row may hold before it is summed into one.
const COMPACT_AT: i32 = 16;
const COPY_EVENTS: &str = "COPY click_events \
    (event_id, link_id, at, referrer, browser, os, device, bot, client) FROM STDIN";
const SELECT_DAYS: &str = "SELECT day, total, bots, visitors, dims::text FROM click_daily \
    WHERE link_id = $1 AND day BETWEEN $2 AND $3";
const PRUNE_EVENTS: &str = "DELETE FROM click_events WHERE ctid = ANY(ARRAY(\
    SELECT ctid FROM click_events WHERE at < $1 LIMIT 10000))";
const PRUNE_UNITS: &str = "DELETE FROM click_units WHERE id < $1";
const PRUNE_VISITORS: &str = "DELETE FROM click_visitors WHERE day < $1";

/// Click counts spread over the shards of the links they belong to.
pub struct ShardedClicks {
    map: ShardMap,
    shards: Vec<Arc<Shard>>,
    raw_sample: f64,
}

impl ShardedClicks {
    /// A click pool per shard (connecting lazily) and the sampling rate of raw events.
    ///
    /// # Errors
    /// When the configuration cannot be turned into pools.
    pub fn connect(
        shards: &[ShardSettings],
        db: &DatabaseSettings,
        raw_sample: f64,
    ) -> anyhow::Result<Self> {
        let map = ShardMap::new(shards.iter().map(|s| s.first_id()).collect())?;
        let shards = shards
            .iter()
            .map(|s| {
                Shard::new(
                    s,
                    db,
                    PoolKind::Clicks,
                    db.clicks_pool_size,
                    db.clicks_query_timeout_ms,
                )
                .map(Arc::new)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            map,
            shards,
            raw_sample,
        })
    }

    fn shard_for(&self, id: Snowflake) -> Result<&Shard, StoreError> {
        self.map
            .shard_for(id)
            .map(|i| self.shards[i].as_ref())
            .ok_or(StoreError::NoShard(id))
    }
}

/// The units as each shard sees them: only the clicks of its links, and only units
/// with any.
fn split(map: &ShardMap, shards: usize, units: &[ClickUnit]) -> Vec<Vec<ClickUnit>> {
    let mut per_shard: Vec<Vec<ClickUnit>> = vec![Vec::new(); shards];
    for unit in units {
        let mut parts: Vec<Vec<ClickRecord>> = vec![Vec::new(); shards];
        for click in &unit.clicks {
            match map.shard_for(click.link_id) {
                Some(i) => parts[i].push(click.clone()),
                None => {
                    tracing::warn!(link = %click.link_id, "click for a link outside every range skipped")
                }
            }
        }
        for (i, clicks) in parts.into_iter().enumerate() {
            if !clicks.is_empty() {
                per_shard[i].push(ClickUnit {
                    id: unit.id,
                    clicks,
                });
            }
        }
    }
    per_shard
}

/// Text-format `COPY` rows of the raw events to keep.
fn event_rows(clicks: &[&ClickRecord]) -> String {
    use std::fmt::Write as _;
    let mut buf = String::with_capacity(clicks.len() * 96);
    for c in clicks {
        let f = &c.families;
        let _ = writeln!(
            buf,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            c.event_id.as_i64(),
            c.link_id.as_i64(),
            ms_to_datetime(c.at_ms).to_rfc3339(),
            copy_escape(&c.referrer),
            copy_escape(&f.browser),
            copy_escape(&f.os),
            copy_escape(&f.device),
            if f.bot { 't' } else { 'f' },
            c.client
        );
    }
    buf
}

/// Adds the batch's visitor hashes; each day's count of distinct visitors, as the
/// database has it after the insert, goes into its rollup row.
async fn add_visitors(
    tx: &deadpool_postgres::Transaction<'_>,
    rollup: &mut Rollup,
) -> Result<(), tokio_postgres::Error> {
    if rollup.visitors.is_empty() {
        return Ok(());
    }
    let (l, d, v): (Vec<i64>, Vec<NaiveDate>, Vec<i64>) = rollup
        .visitors
        .iter()
        .map(|(link, day, v)| (link.as_i64(), *day, *v as i64))
        .collect();
    let add = tx.prepare_cached(ADD_VISITORS).await?;
    for row in tx.query(&add, &[&l, &d, &v]).await? {
        let key = (Snowflake::from_i64(row.get(0)), row.get::<_, NaiveDate>(1));
        if let (Some(link), day) = key {
            if let Some(counts) = rollup.rows.get_mut(&(link, day)) {
                counts.visitors = row.get(2);
            }
        }
    }
    Ok(())
}

/// Adds the rollup's per-link, per-day counts in one statement; the rows written.
async fn add_days(
    tx: &deadpool_postgres::Transaction<'_>,
    rollup: &Rollup,
) -> Result<u64, tokio_postgres::Error> {
    if rollup.is_empty() {
        return Ok(0);
    }
    let n = rollup.len();
    let (mut l, mut d, mut t, mut b, mut v, mut j) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for ((link, day), counts) in &rollup.rows {
        l.push(link.as_i64());
        d.push(*day);
        t.push(counts.total);
        b.push(counts.bots);
        v.push(counts.visitors);
        j.push(format!("[{}]", counts.dims.to_json()));
    }
    let keep = MAX_DIM_VALUES as i32;
    let add = tx.prepare_cached(ADD_DAYS).await?;
    tx.execute(&add, &[&l, &d, &t, &b, &v, &j, &keep, &COMPACT_AT])
        .await
}

async fn record_on(
    shard: &Shard,
    units: Vec<ClickUnit>,
    raw_sample: f64,
) -> Result<Recorded, StoreError> {
    let mut keys: Vec<UnitId> = units.iter().map(|u| u.id).collect();
    // Sorted, so concurrent workers take the unique index's locks in one order.
    keys.sort_unstable();
    keys.dedup();
    let ids: Vec<i64> = keys.iter().map(|k| k.first.as_i64()).collect();
    let producers: Vec<i64> = keys.iter().map(|k| k.producer).collect();
    let units = &units;
    shard
        .run(|mut c| async move {
            use futures::SinkExt;
            let tx = c.transaction().await?;
            let claim = tx.prepare_cached(CLAIM_UNITS).await?;
            let new: HashSet<(i64, i64)> = tx
                .query(&claim, &[&ids, &producers])
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let mut recorded = Recorded::default();
            let mut fresh: Vec<&ClickRecord> = Vec::new();
            for unit in units {
                if new.contains(&(unit.id.first.as_i64(), unit.id.producer)) {
                    fresh.extend(&unit.clicks);
                } else {
                    recorded.duplicates += unit.clicks.len() as u64;
                }
            }
            let mut rollup = Rollup::of(fresh.iter().copied());
            add_visitors(&tx, &mut rollup).await?;
            recorded.rows = add_days(&tx, &rollup).await?;
            let kept: Vec<&ClickRecord> = fresh
                .iter()
                .copied()
                .filter(|c| keep_raw(c.event_id, raw_sample))
                .collect();
            if !kept.is_empty() {
                let sink = tx.copy_in(COPY_EVENTS).await?;
                futures::pin_mut!(sink);
                sink.send(bytes::Bytes::from(event_rows(&kept))).await?;
                recorded.events = sink.finish().await?;
            }
            tx.commit().await?;
            recorded.counted = fresh.len() as u64;
            Ok(recorded)
        })
        .await
}

#[async_trait]
impl ClickStore for ShardedClicks {
    async fn record(&self, units: &[ClickUnit]) -> Result<Recorded, StoreError> {
        let per_shard = split(&self.map, self.shards.len(), units);
        // One transaction per shard, in parallel. If one fails the flush fails as a
        // whole and is retried or delivered again: the shards that did commit know its
        // units and count nothing twice.
        let results = futures::future::join_all(
            per_shard
                .into_iter()
                .enumerate()
                .filter(|(_, u)| !u.is_empty())
                .map(|(i, u)| record_on(&self.shards[i], u, self.raw_sample)),
        )
        .await;
        let mut total = Recorded::default();
        for r in results {
            total += r?;
        }
        Ok(total)
    }

    async fn days(
        &self,
        link: Snowflake,
        range: DayRange,
    ) -> Result<Vec<(NaiveDate, DayCounts)>, StoreError> {
        let (from, to) = (range.from(), range.to());
        let shard = self.shard_for(link)?;
        let rows = shard
            .run(|c| async move {
                let stmt = c.prepare_cached(SELECT_DAYS).await?;
                c.query(&stmt, &[&link.as_i64(), &from, &to]).await
            })
            .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.get(4);
                let dims = Dims::sum_json(&text).map_err(|e| StoreError::Internal {
                    part: shard.name().to_owned(),
                    source: e.into(),
                })?;
                Ok((
                    r.get(0),
                    DayCounts {
                        total: r.get(1),
                        bots: r.get(2),
                        visitors: r.get(3),
                        dims,
                    },
                ))
            })
            .collect()
    }

    async fn prune(
        &self,
        events_before: DateTime<Utc>,
        units_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let first_kept = Snowflake::first_of_ms(units_before.timestamp_millis().max(0) as u64);
        // A day's visitors are kept until the day is as old as a unit may be: until then
        // a late or redelivered click of that day still finds its visitor.
        let first_day = units_before.date_naive();
        let results = futures::future::join_all(self.shards.iter().map(|s| async move {
            s.run(|c| async move { c.execute(PRUNE_UNITS, &[&first_kept.as_i64()]).await })
                .await?;
            s.run(|c| async move { c.execute(PRUNE_VISITORS, &[&first_day]).await })
                .await?;
            let mut removed = 0;
            loop {
                let n = s
                    .run(|c| async move {
                        let stmt = c.prepare_cached(PRUNE_EVENTS).await?;
                        c.execute(&stmt, &[&events_before]).await
                    })
                    .await?;
                removed += n;
                if n < 10_000 {
                    return Ok::<u64, StoreError>(removed);
                }
            }
        }))
        .await;
        results.into_iter().sum()
    }

    async fn health(&self) -> Vec<PartHealth> {
        futures::future::join_all(self.shards.iter().map(|s| s.health())).await
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        self.shards.iter().flat_map(|s| s.collectors()).collect()
    }

    fn pool_status(&self) -> Vec<PoolStatus> {
        self.shards.iter().map(|s| s.pool_status()).collect()
    }
}
