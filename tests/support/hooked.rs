//! Store wrappers for tests: one counts the reads that reach the links' store, the
//! other holds click writes at a gate (a worker stuck on a slow database).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use shortener::domain::click::{ClickUnit, DayCounts};
use shortener::domain::{Link, Snowflake};
use shortener::startup::{ClickLayer, StoreLayer};
use shortener::store::clicks::{ClickStore, Recorded};
use shortener::store::{LinkStore, ListQuery, PartHealth, StoreError};
use tokio::sync::Semaphore;

/// Wraps a store.
pub struct HookedStore {
    inner: Arc<dyn LinkStore>,
    loads: Arc<AtomicU64>,
    healths: Arc<AtomicU64>,
}

impl HookedStore {
    /// A layer that counts `get` and `get_by_alias` calls into the returned counter.
    pub fn counting() -> (StoreLayer, Arc<AtomicU64>) {
        let loads = Arc::new(AtomicU64::new(0));
        let counter = loads.clone();
        let layer: StoreLayer = Box::new(move |inner| {
            Arc::new(HookedStore {
                inner,
                loads: counter,
                healths: Arc::default(),
            })
        });
        (layer, loads)
    }

    /// A layer that counts `health` calls (one per readiness check of the shards).
    pub fn counting_health() -> (StoreLayer, Arc<AtomicU64>) {
        let healths = Arc::new(AtomicU64::new(0));
        let counter = healths.clone();
        let layer: StoreLayer = Box::new(move |inner| {
            Arc::new(HookedStore {
                inner,
                loads: Arc::default(),
                healths: counter,
            })
        });
        (layer, healths)
    }
}

/// Wraps a click store: every write needs a permit of a gate.
pub struct HookedClicks {
    inner: Arc<dyn ClickStore>,
    gate: Arc<Semaphore>,
}

impl HookedClicks {
    /// A layer whose click writes each need a permit of the returned semaphore.
    pub fn gated() -> (ClickLayer, Arc<Semaphore>) {
        let gate = Arc::new(Semaphore::new(0));
        let g = gate.clone();
        let layer: ClickLayer = Box::new(move |inner| Arc::new(HookedClicks { inner, gate: g }));
        (layer, gate)
    }
}

#[async_trait]
impl ClickStore for HookedClicks {
    async fn record(&self, units: &[ClickUnit]) -> Result<Recorded, StoreError> {
        let _pass = self.gate.acquire().await.expect("gate open");
        self.inner.record(units).await
    }
    async fn days(
        &self,
        link: Snowflake,
        range: shortener::domain::DayRange,
    ) -> Result<Vec<(NaiveDate, DayCounts)>, StoreError> {
        self.inner.days(link, range).await
    }
    async fn prune(&self, events: DateTime<Utc>, units: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.prune(events, units).await
    }
    async fn health(&self) -> Vec<PartHealth> {
        self.inner.health().await
    }
}

#[async_trait]
impl LinkStore for HookedStore {
    async fn insert(&self, link: &Link) -> Result<(), StoreError> {
        self.inner.insert(link).await
    }
    async fn bulk_insert(&self, links: &[Link]) -> Result<(), StoreError> {
        self.inner.bulk_insert(links).await
    }
    async fn get(&self, id: Snowflake) -> Result<Option<Link>, StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(id).await
    }
    async fn get_by_alias(&self, alias: &str) -> Result<Option<Link>, StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_by_alias(alias).await
    }
    async fn mark_deleted(&self, id: Snowflake, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.inner.mark_deleted(id, at).await
    }
    async fn update(&self, link: &Link) -> Result<bool, StoreError> {
        self.inner.update(link).await
    }
    async fn set_disabled(
        &self,
        id: Snowflake,
        at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        self.inner.set_disabled(id, at).await
    }
    async fn has_links(&self) -> Result<bool, StoreError> {
        self.inner.has_links().await
    }
    async fn health(&self) -> Vec<PartHealth> {
        self.healths.fetch_add(1, Ordering::SeqCst);
        self.inner.health().await
    }
    async fn list_links(&self, query: ListQuery) -> Result<Vec<Link>, StoreError> {
        self.inner.list_links(query).await
    }
}
