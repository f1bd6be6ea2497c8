//! The settings of the PostgreSQL shards: where each range lives, and the pools and
//! timeouts every shard gets. They live here, with the code that uses them; the
//! configuration tree ([`crate::config`]) only composes them.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::domain::ids::{Snowflake, EPOCH_MS};

/// One range of the ID space and the database that holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ShardSettings {
    /// A short name used in logs, metrics and errors (`s0`).
    pub name: String,
    /// PostgreSQL connection URL (`postgres://user@host:5432/db`).
    pub url: String,
    /// First instant of this shard's range; the range runs until the next shard's `from`
    /// (the last one is open-ended). IDs minted from this instant on live here.
    pub from: DateTime<Utc>,
    /// Streaming replicas of this shard's database (PostgreSQL's own replication, set
    /// up with `pg_basebackup -R`): redirect misses read from them, everything else
    /// from `url`. Empty: the primary serves every read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<String>,
}

/// Pools and timeouts for every shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// Connections per shard per instance.
    pub pool_size: usize,
    /// Longest wait to open a connection, in milliseconds.
    #[serde(with = "crate::duration::ms")]
    pub connect_timeout_ms: Duration,
    /// Longest wait for a free pooled connection, in milliseconds.
    #[serde(with = "crate::duration::ms")]
    pub pool_wait_timeout_ms: Duration,
    /// Longest a query may run, in milliseconds: enforced by the client and, as
    /// `statement_timeout`, by the server.
    #[serde(with = "crate::duration::ms")]
    pub query_timeout_ms: Duration,
    /// Connections per shard per process for counting clicks: a pool of its own, so a
    /// click flush never takes a connection that a shorten waits for.
    pub clicks_pool_size: usize,
    /// Longest a click flush (one transaction on one shard) may run, in milliseconds.
    #[serde(with = "crate::duration::ms")]
    pub clicks_query_timeout_ms: Duration,
    /// Connections per replica per instance (redirect misses only).
    pub replica_pool_size: usize,
    /// A replica further behind its primary than this, in milliseconds, is not read
    /// (its shard's primary is), unless the primary is down.
    #[serde(with = "crate::duration::ms")]
    pub replica_max_lag_ms: Duration,
    /// How often each replica's lag (and each replicated shard's primary) is probed, in
    /// milliseconds.
    #[serde(with = "crate::duration::ms")]
    pub replica_probe_interval_ms: Duration,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            pool_size: 16,
            connect_timeout_ms: Duration::from_millis(2_000),
            pool_wait_timeout_ms: Duration::from_millis(1_000),
            query_timeout_ms: Duration::from_millis(2_000),
            clicks_pool_size: 2,
            clicks_query_timeout_ms: Duration::from_millis(30_000),
            replica_pool_size: 16,
            replica_max_lag_ms: Duration::from_millis(1_000),
            replica_probe_interval_ms: Duration::from_millis(250),
        }
    }
}

impl ShardSettings {
    /// The first ID of this shard's range.
    pub fn first_id(&self) -> Snowflake {
        Snowflake::first_of_ms(u64::try_from(self.from.timestamp_millis()).unwrap_or(0))
    }
}

impl DatabaseSettings {
    /// Checks the pool sizes and timeouts.
    ///
    /// # Errors
    /// A message naming the first value out of range.
    pub fn validate(&self) -> Result<(), String> {
        if self.pool_size == 0 || self.clicks_pool_size == 0 || self.replica_pool_size == 0 {
            return Err("database.pool_size, database.clicks_pool_size and \
                 database.replica_pool_size must be at least 1"
                .into());
        }
        for (name, ms) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("pool_wait_timeout_ms", self.pool_wait_timeout_ms),
            ("query_timeout_ms", self.query_timeout_ms),
            ("clicks_query_timeout_ms", self.clicks_query_timeout_ms),
            ("replica_max_lag_ms", self.replica_max_lag_ms),
            ("replica_probe_interval_ms", self.replica_probe_interval_ms),
        ] {
            if ms.is_zero() {
                return Err(format!("database.{name} must be above 0"));
            }
        }
        Ok(())
    }
}

/// Checks a shard list: unique non-empty names, PostgreSQL URLs, ranges after the ID
/// epoch in increasing order, and a `directory` that names one of them.
///
/// # Errors
/// A message naming the first problem.
pub fn validate_shards(shards: &[ShardSettings], directory: Option<&str>) -> Result<(), String> {
    let mut names = HashSet::new();
    for (i, shard) in shards.iter().enumerate() {
        if shard.name.is_empty() {
            return Err(format!("shard #{} has an empty name", i + 1));
        }
        if !names.insert(shard.name.as_str()) {
            return Err(format!("shard name {:?} is used twice", shard.name));
        }
        if !shard.url.starts_with("postgres://") && !shard.url.starts_with("postgresql://") {
            return Err(format!(
                "shard {:?}: url must start with postgres://",
                shard.name
            ));
        }
        shard
            .url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| format!("shard {:?}: bad url: {e}", shard.name))?;
        for (r, url) in shard.replicas.iter().enumerate() {
            if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
                return Err(format!(
                    "shard {:?}: replica #{} url must start with postgres://",
                    shard.name,
                    r + 1
                ));
            }
            url.parse::<tokio_postgres::Config>()
                .map_err(|e| format!("shard {:?}: replica #{}: bad url: {e}", shard.name, r + 1))?;
            if *url == shard.url {
                return Err(format!(
                    "shard {:?}: replica #{} is the shard's own url",
                    shard.name,
                    r + 1
                ));
            }
        }
        if shard.from.timestamp_millis() < EPOCH_MS as i64 {
            return Err(format!(
                "shard {:?}: from = {} is before the ID epoch 2024-01-01T00:00:00Z",
                shard.name, shard.from
            ));
        }
        if i > 0 && shard.from <= shards[i - 1].from {
            return Err(format!(
                "shard ranges must be in increasing order of `from` and must not overlap: \
                 {:?} starts at {} which is not after {:?} at {}",
                shard.name,
                shard.from,
                shards[i - 1].name,
                shards[i - 1].from
            ));
        }
    }
    if let Some(dir) = directory {
        if !names.contains(dir) {
            return Err(format!("directory = {dir:?} names no configured shard"));
        }
    }
    Ok(())
}

/// A URL with any password replaced, for logs and the `shards` command.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        Err(_) => "<unparseable url>".into(),
    }
}
