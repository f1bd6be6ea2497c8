//! Operator commands other than `serve`: `migrate` and `shards`.

use std::fmt::Write as _;

use crate::analytics::queue::QueueKind;
use crate::analytics::worker::Worker;
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

/// Runs the analytics worker as its own process until SIGTERM or Ctrl-C, then finishes
/// the batch in hand (commit, then `XACK`) and exits. Entries it read but did not
/// acknowledge are taken over by another worker after `queue.claim_idle_ms`.
///
/// # Errors
/// When the queue is not Redis Streams (the in-process queue is consumed by `serve`),
/// or storage cannot be opened.
pub async fn worker(settings: &Settings) -> anyhow::Result<()> {
    anyhow::ensure!(
        settings.queue.kind == QueueKind::Redis,
        "`shortener worker` needs queue.kind = \"redis\": the in-process queue is consumed inside `serve`"
    );
    let store = crate::startup::open_store(settings).await?;
    let (queue, _) = crate::analytics::build_queue(settings)?;
    let worker = Worker::new(queue.clone(), store.clone(), settings.analytics.clone());
    let metrics = actix_web::web::Data::new(crate::metrics::Metrics::new());
    metrics.observe_worker(&store, &queue, worker.stats());
    let listen = settings.worker_metrics_listen.clone();
    let m = metrics.clone();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new().app_data(m.clone()).route(
            "/metrics",
            actix_web::web::get().to(crate::http::observe::metrics),
        )
    })
    .workers(1)
    .disable_signals()
    .bind(&listen)
    .map_err(|e| anyhow::anyhow!("cannot listen on {listen} for metrics: {e}"))?
    .run();
    let metrics_server = server.handle();
    tokio::spawn(server);
    tracing::info!(%listen, "worker metrics at /metrics");
    let stop = tokio_util::sync::CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        crate::shutdown::signalled().await;
        tracing::info!("stopping: finishing the batch in hand");
        on_signal.cancel();
    });
    tracing::info!("analytics worker running");
    worker.run(stop).await;
    metrics_server.stop(true).await;
    store.close().await;
    Ok(())
}
