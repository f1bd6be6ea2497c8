//! The directory in the embedded file: tenants and API keys.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{internal, SqliteStore, Write};
use crate::domain::cipher::CodeScheme;
use crate::domain::Snowflake;
use crate::store::sql::{
    self, INSERT_KEY, LIST_KEYS, RECORD_SCHEME, REVOKE_KEY, SELECT_KEY, SELECT_SCHEME,
    UPSERT_TENANT,
};
use crate::store::{Directory, KeyRecord, NewKey, StoreError};

/// Creates the tenant when new and a key for it, inside a savepoint.
pub(super) fn apply_create_key(
    tx: &mut rusqlite::Transaction<'_>,
    tenant: &str,
    quota: Option<u32>,
    hash: &[u8],
    at_ms: i64,
) -> Result<i64, StoreError> {
    let sp = tx.savepoint_with_name("key").map_err(internal)?;
    let tenant_id: i64 = sp
        .query_row(UPSERT_TENANT, params![tenant, quota, at_ms], |r| r.get(0))
        .map_err(internal)?;
    let id: i64 = sp
        .query_row(INSERT_KEY, params![tenant_id, hash, at_ms], |r| r.get(0))
        .map_err(internal)?;
    sp.commit().map_err(internal)?;
    Ok(id)
}

fn key_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRecord> {
    sql::key_from_row(row)
}

#[async_trait]
impl Directory for SqliteStore {
    async fn create_key(&self, key: NewKey<'_>) -> Result<KeyRecord, StoreError> {
        let (tenant, hash) = (key.tenant.to_owned(), key.secret_hash.to_vec());
        let at_ms = Utc::now().timestamp_millis();
        let id = self
            .write(|reply| Write::CreateKey {
                tenant,
                quota: key.shorten_per_minute,
                hash,
                at_ms,
                reply,
            })
            .await?;
        self.find_key(id)
            .await?
            .ok_or_else(|| internal(anyhow::anyhow!("key {id} vanished after its commit")))
    }

    async fn find_key(&self, id: i64) -> Result<Option<KeyRecord>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(SELECT_KEY)?
                .query_row([id], key_from_row)
                .optional()
        })
        .await
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached(LIST_KEYS)?
                .query_map([], key_from_row)?
                .collect()
        })
        .await
    }

    async fn code_scheme(&self) -> Result<Option<CodeScheme>, StoreError> {
        let row: Option<(String, i64)> = self
            .read(|c| {
                c.query_row(SELECT_SCHEME, [], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .await?;
        row.map(|(key_check, plain_below)| {
            Ok(CodeScheme {
                key_check,
                plain_below: Snowflake::from_i64(plain_below)
                    .ok_or_else(|| internal(anyhow::anyhow!("bad plain_below {plain_below}")))?,
            })
        })
        .transpose()
    }

    async fn record_code_scheme(&self, scheme: &CodeScheme) -> Result<CodeScheme, StoreError> {
        let values = vec![
            scheme.key_check.clone().into(),
            scheme.plain_below.as_i64().into(),
            Utc::now().timestamp_millis().into(),
        ];
        self.write(|reply| Write::Statement(RECORD_SCHEME, values, reply))
            .await?;
        self.code_scheme()
            .await?
            .ok_or_else(|| internal(anyhow::anyhow!("the code scheme vanished after its commit")))
    }

    async fn revoke_key(&self, id: i64, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let values = vec![at.timestamp_millis().into(), id.into()];
        self.write(|reply| Write::Statement(REVOKE_KEY, values, reply))
            .await
    }
}
