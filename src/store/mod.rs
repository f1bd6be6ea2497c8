//! Where things are kept, by concern, each a trait with two implementations: the
//! range-sharded PostgreSQL of the distributed mode ([`postgres`]) and the SQLite files
//! of the embedded mode ([`sqlite`]).
//!
//! - [`links::LinkStore`]: links and their aliases.
//! - [`directory::Directory`]: tenants and API keys.
//! - [`clicks::ClickStore`]: click counts (and sampled raw clicks).
//! - [`leases::WorkerLeases`]: leased worker IDs (PostgreSQL only: the embedded mode is
//!   one process and leases nothing).
//!
//! [`error`] holds what they share (errors, part health, pool state); the shard object
//! ([`postgres::Shard`]) is the plumbing under all three on PostgreSQL, not a trait.
//! The contract tests (`tests/link_contract.rs`, `tests/directory_contract.rs`,
//! `tests/click_contract.rs`) run the same functions against each backend.

pub mod clicks;
pub mod directory;
pub mod error;
pub mod leases;
pub mod links;
pub mod postgres;
pub mod shard_map;
pub mod sql;
pub mod sqlite;

pub use directory::{Directory, KeyRecord, NewKey};
pub use error::{PartHealth, PoolKind, PoolStatus, ReplicaHealth, StoreError};
pub use leases::{Lease, Refusal, WorkerLeases};
pub use links::{merge_newest, LinkStore, ListQuery};

/// The newest schema version among a backend's embedded migrations (0 for none).
pub(crate) fn newest_migration(runner: &refinery::Runner) -> i64 {
    runner
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}
