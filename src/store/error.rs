//! What storage answers besides data: its errors, the health of its parts, the state
//! of its pools. Shared by every store trait and every backend.

use serde::Serialize;

use crate::domain::Snowflake;

/// What can go wrong in storage, sorted by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The alias belongs to another link.
    #[error("alias {0:?} is already taken")]
    AliasTaken(String),
    /// A link with this ID exists already: another instance minted it too, so two
    /// instances share a worker ID. The caller retries with a fresh ID.
    #[error("a link with id {0} exists already: two instances share a worker ID")]
    DuplicateId(Snowflake),
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

    /// [`StoreError::Unavailable`] on `part`, caused by `source`.
    pub fn unavailable(part: &str, source: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable {
            part: part.to_owned(),
            source: source.into(),
        }
    }
}

impl StoreError {
    /// Whether the part could not be reached or did not answer in time (rather than
    /// refusing or failing a query).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Timeout { .. })
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

/// A shard's streaming replica as its last probe saw it (reported in `/readyz`). A
/// replica that is up keeps the instance ready while its primary is down (`degraded`:
/// redirects go on from it); a replica that is down never makes the instance unready.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaHealth {
    /// The shard it copies (`s0`).
    pub shard: String,
    /// Its name in metrics (`r0`: the first of the shard's `replicas`).
    pub replica: String,
    /// Its URL, password hidden.
    pub url: String,
    /// Whether it answered its last probe and replays.
    pub up: bool,
    /// How far behind its primary it was, in milliseconds (absent: not known yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_ms: Option<u64>,
    /// Whether redirect misses read from it now.
    pub read: bool,
    /// Why its last probe failed (absent while it answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a connection pool serves: each kind is reported under a gauge of its own, so
/// the gauges of a shard's pools never mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// Links, aliases, keys: a shard's primary (or the SQLite file).
    Links,
    /// Click counts: a shard's primary, through a pool of their own.
    Clicks,
    /// Redirect misses read from a streaming replica.
    Replica,
}

impl PoolKind {
    /// The name in metrics' help text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Links => "links",
            Self::Clicks => "clicks",
            Self::Replica => "replica",
        }
    }
}

/// One connection pool's state.
#[derive(Debug, Clone)]
pub struct PoolStatus {
    /// The part it connects to: the shard (`s0`), or for a replica the shard and the
    /// replica (`s0/r0`).
    pub name: String,
    /// What it serves.
    pub pool: PoolKind,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}
