//! Operator commands other than `serve`: `migrate` and `shards`.

use std::fmt::Write as _;

use crate::config::{redact_url, Settings};
use crate::store::postgres::migrate_all;

/// The shard map as a table: name, first ID, first time, URL; the directory is marked.
pub fn shard_table(settings: &Settings) -> String {
    let mut out = String::new();
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
    let done = migrate_all(settings).await?;
    let mut out = String::new();
    for (name, version) in done {
        let _ = writeln!(out, "{name}: schema version {version}");
    }
    Ok(out)
}
