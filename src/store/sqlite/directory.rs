//! The directory in the embedded file: tenants and API keys.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{internal, SqliteStore, Write};
use crate::domain::cipher::CodeScheme;
use crate::domain::clock::ms_to_datetime;
use crate::domain::Snowflake;
use crate::store::{Directory, KeyRecord, StoreError};

const UPSERT_TENANT: &str = "INSERT INTO tenants (name, shorten_per_minute, created_at) \
    VALUES (?1, ?2, ?3) ON CONFLICT (name) DO UPDATE \
    SET shorten_per_minute = COALESCE(excluded.shorten_per_minute, shorten_per_minute) \
    RETURNING id";
const INSERT_KEY: &str =
    "INSERT INTO api_keys (tenant_id, secret_hash, created_at) VALUES (?1, ?2, ?3) RETURNING id";
const SELECT_KEYS: &str = "SELECT k.id, k.tenant_id, t.name, k.secret_hash, k.created_at, \
    k.revoked_at, t.shorten_per_minute FROM api_keys k JOIN tenants t ON t.id = k.tenant_id";
const REVOKE_KEY: &str = "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL";
const SELECT_SCHEME: &str = "SELECT key_check, plain_below FROM code_scheme WHERE id = 1";
const RECORD_SCHEME: &str = "INSERT INTO code_scheme (id, key_check, plain_below, recorded_at) \
    VALUES (1, ?1, ?2, ?3) ON CONFLICT (id) DO NOTHING";

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
    let ms = |v: i64| ms_to_datetime(u64::try_from(v).unwrap_or(0));
    Ok(KeyRecord {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        tenant: row.get(2)?,
        secret_hash: row.get(3)?,
        created_at: ms(row.get(4)?),
        revoked_at: row.get::<_, Option<i64>>(5)?.map(ms),
        shorten_per_minute: row.get(6)?,
    })
}

#[async_trait]
impl Directory for SqliteStore {
    async fn create_key(
        &self,
        tenant: &str,
        shorten_per_minute: Option<u32>,
        secret_hash: &[u8],
    ) -> Result<KeyRecord, StoreError> {
        let (tenant, hash) = (tenant.to_owned(), secret_hash.to_vec());
        let at_ms = Utc::now().timestamp_millis();
        let id = self
            .write(|reply| Write::CreateKey {
                tenant,
                quota: shorten_per_minute,
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
            c.prepare_cached(&format!("{SELECT_KEYS} WHERE k.id = ?1"))?
                .query_row([id], key_from_row)
                .optional()
        })
        .await
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(|c| {
            c.prepare(&format!("{SELECT_KEYS} ORDER BY k.id"))?
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
        let values = vec![id.into(), at.timestamp_millis().into()];
        self.write(|reply| Write::Statement(REVOKE_KEY, values, reply))
            .await
    }
}
