//! The links' store: links and their aliases.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PartHealth, PoolStatus, ReplicaHealth, StoreError};
use crate::domain::{Link, Snowflake, TenantId};

/// Merges pages that are each newest first into the newest `limit` of all of them.
pub fn merge_newest(pages: Vec<Vec<Link>>, limit: usize) -> Vec<Link> {
    let mut all: Vec<Link> = pages.into_iter().flatten().collect();
    all.sort_unstable_by_key(|l| std::cmp::Reverse(l.id));
    all.truncate(limit);
    all
}

/// Durable storage of links. Every method returns only after its change is committed.
/// A page of one tenant's live links: those with IDs below `before` (from the newest:
/// [`Snowflake::MAX`]), at most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct ListQuery {
    pub tenant: TenantId,
    pub before: Snowflake,
    pub limit: usize,
}

#[async_trait]
pub trait LinkStore: Send + Sync + 'static {
    /// Stores a new link. When the link has an alias, the alias is reserved first and
    /// [`StoreError::AliasTaken`] is returned if another link holds it.
    async fn insert(&self, link: &Link) -> Result<(), StoreError>;

    /// The link with this ID, in whatever state it is.
    async fn get(&self, id: Snowflake) -> Result<Option<Link>, StoreError>;

    /// The link an alias names, in whatever state it is.
    async fn get_by_alias(&self, alias: &str) -> Result<Option<Link>, StoreError>;

    /// [`get`](Self::get) for the redirect path, which may read a replica (and stays
    /// up with a replica when the primary is down). Management reads use `get`.
    async fn resolve(&self, id: Snowflake) -> Result<Option<Link>, StoreError> {
        self.get(id).await
    }

    /// [`get_by_alias`](Self::get_by_alias) for the redirect path.
    async fn resolve_alias(&self, alias: &str) -> Result<Option<Link>, StoreError> {
        self.get_by_alias(alias).await
    }

    /// Stores many new links without aliases at once (bulk seeding for load tests);
    /// faster than [`insert`](Self::insert) one by one, same result.
    async fn bulk_insert(&self, links: &[Link]) -> Result<(), StoreError>;

    /// Marks a link deleted at `at`. Returns false when it was already deleted or does
    /// not exist.
    async fn mark_deleted(&self, id: Snowflake, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Writes a link's new target, expiry and redirect kind (its ID, alias, owner and
    /// creation stay). Returns false when it does not exist or is deleted.
    async fn update(&self, link: &Link) -> Result<bool, StoreError>;

    /// Takes a link down at `at` (an operator's takedown), or puts it back with `None`.
    /// Returns false when it does not exist or is in that state already.
    async fn set_disabled(
        &self,
        id: Snowflake,
        at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError>;

    /// Whether any link is stored at all (every part must answer).
    async fn has_links(&self) -> Result<bool, StoreError>;

    /// Asks every part for a trivial answer, for `/readyz`.
    async fn health(&self) -> Vec<PartHealth>;

    /// The page of live (not deleted) links `query` asks for, newest first.
    async fn list_links(&self, query: ListQuery) -> Result<Vec<Link>, StoreError>;

    /// Finishes pending writes and releases resources, at shutdown. Idempotent.
    async fn close(&self) {}

    /// Metrics the store records itself (per-shard query latency and errors), for the
    /// registry.
    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        Vec::new()
    }

    /// The replicas and how their last probe went (none without replicas).
    fn replicas(&self) -> Vec<ReplicaHealth> {
        Vec::new()
    }

    /// Connection pools as they are now.
    fn pool_status(&self) -> Vec<PoolStatus> {
        Vec::new()
    }
}
