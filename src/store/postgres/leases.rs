//! The lease table on the directory shard (`worker_leases`, migration V7).
//!
//! Taking a lease is one statement: a snapshot of the candidates (free or run out,
//! lowest first, this holder's own last ID before any), then an upsert whose conflict
//! arm only overwrites a row that has run out (or is this holder's) by the time it is
//! written. Two instances racing for one ID: one writes it, the other's upsert matches
//! nothing and it tries again. The directory's `now()` decides expiry, so the
//! instances' clocks need not agree.

use std::time::Duration;

use async_trait::async_trait;

use super::ShardedPostgres;
use crate::store::{Lease, Refusal, StoreError, WorkerLeases};

const ACQUIRE: &str = "\
WITH candidate AS (
    SELECT g::smallint AS worker_id, l.holder AS old_holder, l.minted_until_ms AS old_until
    FROM generate_series(0, 1023) AS g
    LEFT JOIN worker_leases l ON l.worker_id = g
    WHERE ($2::smallint IS NULL OR g = $2)
      AND (l.worker_id IS NULL OR l.expires_at <= now() OR l.holder = $1)
    ORDER BY (l.holder IS NOT DISTINCT FROM $1) DESC, g
    LIMIT 1
)
INSERT INTO worker_leases AS w (worker_id, holder, expires_at, minted_until_ms)
SELECT worker_id, $1, now() + make_interval(secs => $3), $4 FROM candidate
ON CONFLICT (worker_id) DO UPDATE
    SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
        minted_until_ms = EXCLUDED.minted_until_ms, acquired_at = now()
    WHERE w.expires_at <= now() OR w.holder = EXCLUDED.holder
RETURNING w.worker_id,
    (SELECT old_holder FROM candidate), (SELECT old_until FROM candidate)";

const HOLDER_OF: &str = "SELECT holder, \
    GREATEST(0, (EXTRACT(EPOCH FROM (expires_at - now())) * 1000))::bigint \
    FROM worker_leases WHERE worker_id = $1 AND expires_at > now()";

const RENEW: &str = "UPDATE worker_leases \
    SET expires_at = now() + make_interval(secs => $3), minted_until_ms = $4 \
    WHERE worker_id = $1 AND holder = $2 AND expires_at > now()";

const RELEASE: &str = "UPDATE worker_leases SET expires_at = now(), minted_until_ms = $3 \
    WHERE worker_id = $1 AND holder = $2";

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[async_trait]
impl WorkerLeases for ShardedPostgres {
    async fn acquire(
        &self,
        holder: &str,
        want: Option<u16>,
        ttl: Duration,
        minted_until_ms: u64,
    ) -> Result<Result<Lease, Refusal>, StoreError> {
        let shard = self.directory();
        let want = want.map(|w| i16::try_from(w).unwrap_or(i16::MAX));
        let secs = ttl.as_secs_f64();
        let until = ms(minted_until_ms);
        // A race lost to another instance leaves no row: look again (the loser of a race
        // for the lowest free ID finds the next one).
        for _ in 0..8 {
            let row = shard
                .run(|c| async move {
                    let stmt = c.prepare_cached(ACQUIRE).await?;
                    c.query_opt(&stmt, &[&holder, &want, &secs, &until]).await
                })
                .await?;
            if let Some(row) = row {
                let worker: i16 = row.get(0);
                let old_holder: Option<String> = row.get(1);
                let old_until: Option<i64> = row.get(2);
                let floor_ms = match old_holder {
                    Some(h) if h != holder => {
                        old_until.map_or(0, |v| u64::try_from(v).unwrap_or(0))
                    }
                    _ => 0,
                };
                return Ok(Ok(Lease {
                    worker: u16::try_from(worker).unwrap_or(0),
                    floor_ms,
                }));
            }
            if let Some(w) = want {
                let held = shard
                    .run(|c| async move { c.query_opt(HOLDER_OF, &[&w]).await })
                    .await?;
                if let Some(row) = held {
                    let remaining: i64 = row.get(1);
                    return Ok(Err(Refusal::Held {
                        holder: row.get(0),
                        remaining_ms: u64::try_from(remaining).unwrap_or(0),
                    }));
                }
            }
        }
        Ok(Err(Refusal::NoneFree))
    }

    async fn renew(
        &self,
        worker: u16,
        holder: &str,
        ttl: Duration,
        minted_until_ms: u64,
    ) -> Result<bool, StoreError> {
        let worker = i16::try_from(worker).unwrap_or(i16::MAX);
        let secs = ttl.as_secs_f64();
        let until = ms(minted_until_ms);
        let n = self
            .directory()
            .run(|c| async move {
                let stmt = c.prepare_cached(RENEW).await?;
                c.execute(&stmt, &[&worker, &holder, &secs, &until]).await
            })
            .await?;
        Ok(n == 1)
    }

    async fn release(
        &self,
        worker: u16,
        holder: &str,
        minted_until_ms: u64,
    ) -> Result<(), StoreError> {
        let worker = i16::try_from(worker).unwrap_or(i16::MAX);
        let until = ms(minted_until_ms);
        self.directory()
            .run(|c| async move { c.execute(RELEASE, &[&worker, &holder, &until]).await })
            .await?;
        Ok(())
    }
}
