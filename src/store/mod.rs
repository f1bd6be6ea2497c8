//! Where links are kept ([`LinkStore`]) and where clicks are counted
//! ([`clicks::ClickStore`]), each trait with two implementations: the range-sharded
//! PostgreSQL of the distributed mode ([`postgres`]) and the SQLite files of the
//! embedded mode ([`sqlite`]). The contract tests in `tests/contract.rs` run the same
//! functions against each.

pub mod clicks;
pub mod postgres;
pub mod shard_map;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{Link, Snowflake, TenantId};

/// What can go wrong in storage, sorted by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The alias belongs to another link.
    #[error("alias {0:?} is already taken")]
    AliasTaken(String),
    /// No configured range holds this ID (a time before the first shard's `from`).
    #[error("no shard covers id {0}")]
    NoShard(Snowflake),
    /// A part (shard) cannot be reached or is shutting down: retry later.
    #[error("storage part {part} is unavailable")]
    Unavailable {
        part: String,
        #[source]
        source: anyhow::Error,
    },
    /// A query ran past its timeout.
    #[error("storage part {part} timed out")]
    Timeout { part: String },
    /// Anything else: a bug or a schema problem.
    #[error("storage error on {part}")]
    Internal {
        part: String,
        #[source]
        source: anyhow::Error,
    },
}

impl StoreError {
    /// [`StoreError::Internal`] on `part`.
    pub fn internal(part: &str, source: impl Into<anyhow::Error>) -> Self {
        Self::Internal {
            part: part.to_owned(),
            source: source.into(),
        }
    }

    /// [`StoreError::Unavailable`] on `part`, for `reason`.
    pub fn unavailable(part: &str, reason: &str) -> Self {
        Self::Unavailable {
            part: part.to_owned(),
            source: anyhow::anyhow!(reason.to_owned()),
        }
    }
}

/// Whether one part of storage (a shard, the SQLite file) answers.
#[derive(Debug, Clone, Serialize)]
pub struct PartHealth {
    /// The part's name (`s0`).
    pub name: String,
    /// Whether it answered a trivial query in time.
    pub ok: bool,
    /// Round trip of that query, in milliseconds.
    pub latency_ms: f64,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One connection pool's state.
#[derive(Debug, Clone)]
pub struct PoolStatus {
    /// The part (shard) it connects to.
    pub name: String,
    /// What it serves: `links` or `clicks`.
    pub pool: &'static str,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

/// An API key as stored: its secret only as a hash, with its tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key's ID (its public part).
    pub id: i64,
    /// The tenant it acts for.
    pub tenant_id: TenantId,
    /// The tenant's name.
    pub tenant: String,
    /// SHA-256 of the key's secret part.
    pub secret_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    /// When it was revoked; it then authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The tenant's own shortening quota per key (`None`: the configured default).
    pub shorten_per_minute: Option<u32>,
}

/// Merges pages that are each newest first into the newest `limit` of all of them.
pub fn merge_newest(pages: Vec<Vec<Link>>, limit: usize) -> Vec<Link> {
    let mut all: Vec<Link> = pages.into_iter().flatten().collect();
    all.sort_unstable_by_key(|l| std::cmp::Reverse(l.id));
    all.truncate(limit);
    all
}

/// Durable storage of links. Every method returns only after its change is committed.
#[async_trait]
pub trait LinkStore: Send + Sync + 'static {
    /// Stores a new link. When the link has an alias, the alias is reserved first and
    /// [`StoreError::AliasTaken`] is returned if another link holds it.
    async fn insert(&self, link: &Link) -> Result<(), StoreError>;

    /// The link with this ID, in whatever state it is.
    async fn get(&self, id: Snowflake) -> Result<Option<Link>, StoreError>;

    /// The link an alias names, in whatever state it is.
    async fn get_by_alias(&self, alias: &str) -> Result<Option<Link>, StoreError>;

    /// Stores many new links without aliases at once (bulk seeding for load tests);
    /// faster than [`insert`](Self::insert) one by one, same result.
    async fn bulk_insert(&self, links: &[Link]) -> Result<(), StoreError>;

    /// Marks a link deleted at `at`. Returns false when it was already deleted or does
    /// not exist.
    async fn mark_deleted(&self, id: Snowflake, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Asks every part for a trivial answer, for `/readyz`.
    async fn health(&self) -> Vec<PartHealth>;

    /// The live (not deleted) links of `tenant` with IDs below `before` (all when
    /// `None`), newest first, at most `limit`.
    async fn list_links(
        &self,
        tenant: TenantId,
        before: Option<Snowflake>,
        limit: usize,
    ) -> Result<Vec<Link>, StoreError>;

    /// Creates a key holding `secret_hash` for the tenant named `tenant`, creating the
    /// tenant when it is new and setting its quota when one is given.
    async fn create_key(
        &self,
        tenant: &str,
        shorten_per_minute: Option<u32>,
        secret_hash: &[u8],
    ) -> Result<KeyRecord, StoreError>;

    /// The key with this ID, revoked or not.
    async fn find_key(&self, id: i64) -> Result<Option<KeyRecord>, StoreError>;

    /// Every key, oldest first.
    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// Revokes a key at `at`; false when it is unknown or already revoked.
    async fn revoke_key(&self, id: i64, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Finishes pending writes and releases resources, at shutdown. Idempotent.
    async fn close(&self) {}

    /// Metrics the store records itself (per-shard query latency and errors), for the
    /// registry.
    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        Vec::new()
    }

    /// Connection pools as they are now.
    fn pool_status(&self) -> Vec<PoolStatus> {
        Vec::new()
    }
}
