//! The directory on PostgreSQL: tenants and API keys, in the directory shard.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::shard::Shard;
use super::ShardedPostgres;
use crate::domain::cipher::CodeScheme;
use crate::domain::Snowflake;
use crate::store::sql::{
    self, INSERT_KEY, LIST_KEYS, RECORD_SCHEME, REVOKE_KEY, SELECT_KEY, SELECT_SCHEME,
    UPSERT_TENANT,
};
use crate::store::{Directory, KeyRecord, NewKey, StoreError};

impl Shard {
    async fn scheme_row(&self) -> Result<Option<Row>, StoreError> {
        self.run(|c| async move { c.query_opt(SELECT_SCHEME, &[]).await })
            .await
    }
}

#[async_trait]
impl Directory for ShardedPostgres {
    async fn create_key(&self, key: NewKey<'_>) -> Result<KeyRecord, StoreError> {
        self.directory().create_key(key).await
    }

    async fn find_key(&self, id: i64) -> Result<Option<KeyRecord>, StoreError> {
        self.directory().find_key(id).await
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.directory().list_keys().await
    }

    async fn revoke_key(&self, id: i64, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.directory().revoke_key(id, at).await
    }

    async fn code_scheme(&self) -> Result<Option<CodeScheme>, StoreError> {
        // Read at startup: with the directory's primary down, a replica of it answers,
        // so that an instance can start and serve redirects from the replicas.
        let shard = self.directory();
        let row = match (shard.scheme_row().await, &self.replicas[self.directory]) {
            (Err(e), Some(replicas)) if e.is_unreachable() => replicas
                .read_standby(|s| s.scheme_row())
                .await
                .map_err(|_| e)?,
            (row, _) => row?,
        };
        row.map(|r| {
            let plain_below: i64 = r.get(1);
            Ok(CodeScheme {
                key_check: r.get(0),
                plain_below: Snowflake::from_i64(plain_below).ok_or_else(|| {
                    StoreError::Internal {
                        part: shard.name().to_owned(),
                        source: anyhow::anyhow!("bad plain_below {plain_below}"),
                    }
                })?,
            })
        })
        .transpose()
    }

    async fn record_code_scheme(&self, scheme: &CodeScheme) -> Result<CodeScheme, StoreError> {
        let (check, below) = (&scheme.key_check, scheme.plain_below.as_i64());
        self.directory()
            .run(|c| async move {
                c.execute(RECORD_SCHEME, &[check, &below, &Utc::now()])
                    .await
            })
            .await?;
        self.code_scheme()
            .await?
            .ok_or_else(|| StoreError::Internal {
                part: self.directory().name().to_owned(),
                source: anyhow::anyhow!("the code scheme vanished after its commit"),
            })
    }
}

/// The directory's queries, on the directory shard.
impl Shard {
    /// Creates the tenant when new (setting its quota when one is given) and a key for
    /// it holding `secret_hash`.
    pub(super) async fn create_key(&self, key: NewKey<'_>) -> Result<KeyRecord, StoreError> {
        let NewKey {
            tenant,
            shorten_per_minute,
            secret_hash,
        } = key;
        let quota = shorten_per_minute.map(|q| i32::try_from(q).unwrap_or(i32::MAX));
        let now = Utc::now();
        let id = self
            .run(|mut c| async move {
                let tx = c.transaction().await?;
                let tenant_id: i64 = tx
                    .query_one(UPSERT_TENANT, &[&tenant, &quota, &now])
                    .await?
                    .get(0);
                let id: i64 = tx
                    .query_one(INSERT_KEY, &[&tenant_id, &secret_hash, &now])
                    .await?
                    .get(0);
                tx.commit().await?;
                Ok(id)
            })
            .await?;
        self.find_key(id)
            .await?
            .ok_or_else(|| StoreError::Internal {
                part: self.name().to_owned(),
                source: anyhow::anyhow!("key {id} vanished after its commit"),
            })
    }

    /// One key with its tenant.
    pub(super) async fn find_key(&self, id: i64) -> Result<Option<KeyRecord>, StoreError> {
        let row = self
            .run(|c| async move {
                let stmt = c.prepare_cached(SELECT_KEY).await?;
                c.query_opt(&stmt, &[&id]).await
            })
            .await?;
        row.as_ref().map(|r| self.key(r)).transpose()
    }

    /// Every key, oldest first.
    pub(super) async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = self
            .run(|c| async move { c.query(LIST_KEYS, &[]).await })
            .await?;
        rows.iter().map(|r| self.key(r)).collect()
    }

    /// Revokes a key; false when unknown or already revoked.
    pub(super) async fn revoke_key(&self, id: i64, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let n = self
            .run(|c| async move { c.execute(REVOKE_KEY, &[&at, &id]).await })
            .await?;
        Ok(n == 1)
    }
}

impl Shard {
    /// A key row read back, an invalid value named with this shard.
    fn key(&self, row: &Row) -> Result<KeyRecord, StoreError> {
        sql::key_from_row(row).map_err(|e| StoreError::internal(self.name(), e))
    }
}
