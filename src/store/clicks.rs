//! Where clicks are counted: a store of their own, apart from the links' store, with
//! its own connections (PostgreSQL: a small pool per shard; SQLite: its own file and
//! writer), so a flush of clicks never holds up a shorten.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::{PartHealth, PoolStatus, StoreError};
use crate::domain::click::{ClickUnit, DayCounts};
use crate::domain::{DayRange, Snowflake};

/// What recording a flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Clicks counted now.
    pub counted: u64,
    /// Clicks of units this store had already counted (redelivered), not counted again.
    pub duplicates: u64,
    /// Rows of per-link, per-day counts written (inserted or updated).
    pub rows: u64,
    /// Raw events kept (see the sampling rate).
    pub events: u64,
}

impl std::ops::AddAssign for Recorded {
    fn add_assign(&mut self, other: Self) {
        self.counted += other.counted;
        self.duplicates += other.duplicates;
        self.rows += other.rows;
        self.events += other.events;
    }
}

/// Durable click counts. Every method returns only after its change is committed.
#[async_trait]
pub trait ClickStore: Send + Sync + 'static {
    /// Counts the clicks of every unit not counted before, exactly once: each unit's ID
    /// is recorded in the same transaction as its counts (one transaction per part), and
    /// the clicks of a unit already recorded there add nothing. The clicks are summed in
    /// process first, so the rows written are one per (link, day), not one per click.
    /// Raw events are kept for the sampled clicks. A click whose link lies outside every
    /// range is skipped.
    async fn record(&self, units: &[ClickUnit]) -> Result<Recorded, StoreError>;

    /// A link's counts on each day of `range` that has any.
    async fn days(
        &self,
        link: Snowflake,
        range: DayRange,
    ) -> Result<Vec<(NaiveDate, DayCounts)>, StoreError>;

    /// Deletes raw events from before `events_before` and the record of units made before
    /// `units_before` (a unit delivered again after that would count twice); the
    /// counts stay. Returns how many raw events went.
    async fn prune(
        &self,
        events_before: DateTime<Utc>,
        units_before: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Asks every part for a trivial answer.
    async fn health(&self) -> Vec<PartHealth>;

    /// Finishes pending writes and releases resources, at shutdown. Idempotent.
    async fn close(&self) {}

    /// Metrics the store records itself, for the registry.
    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        Vec::new()
    }

    /// Connection pools as they are now.
    fn pool_status(&self) -> Vec<PoolStatus> {
        Vec::new()
    }
}
