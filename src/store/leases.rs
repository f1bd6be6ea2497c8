//! Leased worker IDs: which instance may mint Snowflake IDs with which worker ID, and
//! until when. Only the distributed mode leases (the embedded mode is one process); the
//! implementation is the directory shard's `worker_leases` table
//! ([`super::postgres::leases`]), so leasing works with or without Redis, and expiry is
//! decided by the directory's clock alone.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;

/// A worker ID just taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub worker: u16,
    /// The last Unix millisecond another holder of this ID may have stamped into an ID
    /// (0 when this holder held it last, or nobody did): mint nothing at or before it.
    pub floor_ms: u64,
}

/// Why a lease was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The wanted ID is held by another instance, for this many more milliseconds.
    Held { holder: String, remaining_ms: u64 },
    /// Every worker ID is held.
    NoneFree,
}

/// The lease table.
#[async_trait]
pub trait WorkerLeases: Send + Sync {
    /// Takes worker ID `want`, or with `None` the lowest free one (the one `holder`
    /// held last first), for `ttl`; `minted_until_ms` is the last millisecond this
    /// holder may stamp under the lease.
    ///
    /// # Errors
    /// When the directory cannot be reached.
    async fn acquire(
        &self,
        holder: &str,
        want: Option<u16>,
        ttl: Duration,
        minted_until_ms: u64,
    ) -> Result<Result<Lease, Refusal>, StoreError>;

    /// Extends `holder`'s lease of `worker` by `ttl` from now: `false` when it had run
    /// out (another instance may hold the ID since).
    ///
    /// # Errors
    /// When the directory cannot be reached.
    async fn renew(
        &self,
        worker: u16,
        holder: &str,
        ttl: Duration,
        minted_until_ms: u64,
    ) -> Result<bool, StoreError>;

    /// Gives the lease up at once, recording the last millisecond actually used.
    ///
    /// # Errors
    /// When the directory cannot be reached (the lease then runs out by itself).
    async fn release(
        &self,
        worker: u16,
        holder: &str,
        minted_until_ms: u64,
    ) -> Result<(), StoreError>;
}
