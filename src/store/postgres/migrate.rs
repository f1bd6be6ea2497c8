//! Schema migrations for the shards (refinery, files in `migrations/postgres/`).

use std::sync::LazyLock;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::settings::{redact_url, ShardSettings};

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

static LATEST_VERSION: LazyLock<i64> =
    LazyLock::new(|| crate::store::newest_migration(&embedded::migrations::runner()));

/// The newest schema version this binary carries.
pub fn latest_version() -> i64 {
    *LATEST_VERSION
}

/// A lock key so that concurrent `migrate` runs on one database take turns.
const MIGRATION_LOCK: i64 = 0x0053_484f_5254_454e; // "SHORTEN"

/// The schema version of the database behind `client`; `None` when never migrated.
///
/// # Errors
/// When the query fails.
pub async fn schema_version(client: &Client) -> Result<Option<i64>, tokio_postgres::Error> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_one(
            "SELECT MAX(version)::BIGINT FROM refinery_schema_history",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

async fn connect(config: &tokio_postgres::Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "migration connection closed");
        }
    });
    Ok(client)
}

/// Migrates the database at `url`, creating the database first when the server is up
/// but the database does not exist yet. Safe to run again and concurrently.
///
/// # Errors
/// When the server cannot be reached or a migration fails.
pub async fn migrate_url(url: &str) -> anyhow::Result<i64> {
    let config: tokio_postgres::Config = url.parse()?;
    let mut client = match connect(&config).await {
        Ok(c) => c,
        Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            let name = config
                .get_dbname()
                .ok_or_else(|| anyhow::anyhow!("{}: no database name", redact_url(url)))?;
            let mut admin = config.clone();
            admin.dbname("postgres");
            let admin = connect(&admin).await?;
            let quoted = format!("\"{}\"", name.replace('"', "\"\""));
            match admin
                .batch_execute(&format!("CREATE DATABASE {quoted}"))
                .await
            {
                Ok(()) => tracing::info!(database = name, "created database"),
                // Another migrate created it in the meantime.
                Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
                Err(e) => return Err(e.into()),
            }
            connect(&config).await?
        }
        Err(e) => return Err(e.into()),
    };
    client
        .query_one("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let report = embedded::migrations::runner().run_async(&mut client).await;
    client
        .query_one("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    let report = report?;
    for m in report.applied_migrations() {
        tracing::info!(database = %redact_url(url), version = m.version(), name = m.name(), "applied migration");
    }
    Ok(schema_version(&client).await?.unwrap_or(0))
}

/// Migrates every shard of the configuration; stops at the first failure.
///
/// # Errors
/// Naming the shard that failed.
pub async fn migrate_all(shards: &[ShardSettings]) -> anyhow::Result<Vec<(String, i64)>> {
    let mut done = Vec::new();
    for shard in shards {
        let version = migrate_url(&shard.url)
            .await
            .map_err(|e| anyhow::anyhow!("migrating shard {}: {e:#}", shard.name))?;
        done.push((shard.name.clone(), version));
    }
    Ok(done)
}
