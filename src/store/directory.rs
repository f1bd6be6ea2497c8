//! The directory: tenants and API keys (and, with scale-out, worker-ID leases): the
//! small global tables, in one place (the directory shard, or the embedded file).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::cipher::CodeScheme;
use crate::domain::TenantId;

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

/// A key to create: holding `secret_hash`, for the tenant named `tenant` (created when
/// new; its quota set when `shorten_per_minute` is given).
#[derive(Debug, Clone, Copy)]
pub struct NewKey<'a> {
    pub tenant: &'a str,
    pub shorten_per_minute: Option<u32>,
    pub secret_hash: &'a [u8],
}

/// Durable storage of tenants and API keys. Every method returns only after its change
/// is committed.
#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// Creates the key `key` describes (and its tenant, when new).
    async fn create_key(&self, key: NewKey<'_>) -> Result<KeyRecord, StoreError>;

    /// The key with this ID, revoked or not.
    async fn find_key(&self, id: i64) -> Result<Option<KeyRecord>, StoreError>;

    /// Every key, oldest first.
    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// The code scheme recorded for this deployment, if one is.
    async fn code_scheme(&self) -> Result<Option<CodeScheme>, StoreError>;

    /// Records `scheme` unless one is recorded already, and returns the one in force:
    /// the first recorded wins, so instances starting together agree.
    async fn record_code_scheme(&self, scheme: &CodeScheme) -> Result<CodeScheme, StoreError>;

    /// Revokes a key at `at`; false when it is unknown or already revoked.
    async fn revoke_key(&self, id: i64, at: DateTime<Utc>) -> Result<bool, StoreError>;
}
