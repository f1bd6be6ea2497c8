//! Operator commands other than `serve`: `migrate` and `shards`.

use std::fmt::Write as _;

use crate::config::{redact_url, Mode, Settings};
use crate::store::postgres::migrate_all;
use crate::store::sqlite::SqliteStore;

/// The shard map as a table: name, first ID, first time, URL; the directory is marked.
pub fn shard_table(settings: &Settings) -> String {
    let mut out = String::new();
    if settings.mode() == Mode::Embedded {
        let _ = writeln!(
            out,
            "embedded mode: no shards; links live in {}",
            settings
                .data_dir
                .join(crate::store::sqlite::DB_FILE)
                .display()
        );
        return out;
    }
    let _ = writeln!(
        out,
        "{:<12} {:>20}  {:<25} {:<9} URL",
        "SHARD", "FIRST_ID", "FIRST_TIME", "DIRECTORY"
    );
    for shard in &settings.shards {
        let directory = if shard.name == settings.directory_name() {
            "yes"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{:<12} {:>20}  {:<25} {:<9} {}",
            shard.name,
            shard.first_id().get(),
            shard
                .from
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            directory,
            redact_url(&shard.url)
        );
    }
    out
}

/// Migrates every shard and reports the version each is at.
///
/// # Errors
/// Naming the first shard that could not be migrated.
pub async fn migrate(settings: &Settings) -> anyhow::Result<String> {
    let mut out = String::new();
    if settings.mode() == Mode::Embedded {
        let (dir, sqlite) = (settings.data_dir.clone(), settings.sqlite.clone());
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&dir, &sqlite)).await??;
        let _ = writeln!(
            out,
            "sqlite: schema version {} in {}",
            SqliteStore::latest_version(),
            store.path().display()
        );
        store.close().await;
        return Ok(out);
    }
    let done = migrate_all(settings).await?;
    for (name, version) in done {
        let _ = writeln!(out, "{name}: schema version {version}");
    }
    Ok(out)
}
