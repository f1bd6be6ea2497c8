//! Operator commands other than `serve`: `code-key`, `shards`, `migrate`, `worker`,
//! `seed`, `links disable|enable` and `keys create|list|revoke`.

use std::fmt::Write as _;

use crate::analytics::queue::QueueKind;
use crate::analytics::worker::Worker;
use crate::analytics::StreamAt;
use crate::config::{redact_url, Mode, Settings};
use crate::shutdown::Shutdown;
use crate::store::postgres::migrate_all;
use crate::store::sqlite::{SqliteStore, CLICKS_FILE};

/// A fresh random code key, as `codes.key` takes it.
pub fn new_code_key() -> String {
    crate::domain::cipher::CodeKey::from_bytes(rand::random()).to_hex()
}

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
        let stores = crate::startup::open_stores(settings).await?;
        let _ = writeln!(
            out,
            "sqlite: schema version {} in {}; clicks in {}",
            SqliteStore::latest_version(),
            settings
                .data_dir
                .join(crate::store::sqlite::DB_FILE)
                .display(),
            settings.data_dir.join(CLICKS_FILE).display()
        );
        stores.close().await;
        return Ok(out);
    }
    let done = migrate_all(&settings.shards).await?;
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
    let stores = crate::startup::open_stores(settings).await?;
    stores.links.close().await;
    let store = stores.clicks;
    let redis = settings.redis.as_ref().map(|r| StreamAt {
        url: &r.url,
        key_prefix: &r.key_prefix,
    });
    let (queue, _) = crate::analytics::build_queue(&settings.queue, redis)?;
    let (geo, every) = crate::analytics::geo::open_configured(&settings.geo)?
        .map_or((None, std::time::Duration::ZERO), |(g, e)| (Some(g), e));
    let worker =
        Worker::new(queue.clone(), store.clone(), settings.analytics.clone()).with_geo(geo, every);
    let metrics = actix_web::web::Data::new(crate::metrics::Metrics::new());
    metrics.observe_worker(&store, &queue, worker.stats());
    let listen = settings.worker_metrics_listen;
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
    // One shutdown (see `crate::shutdown`): no request feeds this queue, so it closes
    // as soon as the shutdown begins, and the worker finishes the batch in hand.
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    let closer = {
        let (shutdown, queue) = (shutdown.clone(), queue.clone());
        tokio::spawn(async move {
            shutdown.begun().await;
            tracing::info!("stopping: finishing the batch in hand");
            queue.close();
        })
    };
    tracing::info!("analytics worker running");
    worker.run(shutdown.token()).await;
    let _ = closer.await;
    metrics_server.stop(true).await;
    store.close().await;
    Ok(())
}

/// Bulk-loads `count` links (no aliases, 302, no expiry) straight into storage — COPY
/// on the shards, batched transactions in SQLite — and writes their codes, one per
/// line, to `codes` for the load tests. IDs come from the configured worker ID and
/// the clock, so the links land on the shard whose range holds "now".
///
/// # Errors
/// When storage cannot be opened or written, or the codes file cannot be written.
pub async fn seed(
    settings: &Settings,
    count: u64,
    codes: &std::path::Path,
    url_prefix: &str,
) -> anyhow::Result<String> {
    use std::io::Write as _;
    const CHUNK: u64 = 100_000;
    let stores = crate::startup::open_stores(settings).await?;
    let codec =
        crate::startup::codes::open_codec(settings, &stores, &crate::domain::SystemClock).await?;
    let store = stores.links.clone();
    // Seeding mints IDs like an instance does: on a leased worker ID when leasing.
    let (ids, keeper) = crate::startup::worker_ids(
        settings,
        &stores,
        std::sync::Arc::new(crate::domain::SystemClock),
    )
    .await?;
    let lease = keeper.map(crate::startup::leases::LeaseKeeper::spawn);
    let mut out = std::io::BufWriter::new(std::fs::File::create(codes)?);
    let started = std::time::Instant::now();
    let mut done = 0;
    while done < count {
        let n = CHUNK.min(count - done);
        let mut links = Vec::with_capacity(n as usize);
        for i in done..done + n {
            let id = ids.next_id_blocking()?;
            links.push(crate::domain::Link {
                id,
                alias: None,
                url: crate::domain::TargetUrl::stored(format!("{url_prefix}{i}"))?,
                redirect: crate::domain::RedirectKind::Temporary,
                created_at: id.timestamp(),
                expires_at: None,
                deleted_at: None,
                disabled_at: None,
                tenant: None,
            });
        }
        store.bulk_insert(&links).await?;
        for l in &links {
            writeln!(out, "{}", codec.code(l.id))?;
        }
        done += n;
        tracing::info!(done, count, "seeded");
    }
    out.flush()?;
    if let Some(lease) = lease {
        lease.release().await;
    }
    stores.close().await;
    let secs = started.elapsed().as_secs_f64();
    Ok(format!(
        "seeded {count} links in {secs:.1} s ({:.0} links/s); codes in {}\n",
        count as f64 / secs.max(1e-9),
        codes.display()
    ))
}

/// Takes a link down (`disabled`) or puts it back, as `shortener links disable|enable
/// CODE` does: the store first, then every cache tier on every instance (Redis, and
/// through it each instance's L1). Without Redis, a running instance drops its cached
/// copy within `cache.l1_ttl_s`.
///
/// # Errors
/// When the code names no link, the link is deleted, or storage cannot be reached.
pub async fn set_link_disabled(
    settings: &Settings,
    code: &str,
    disabled: bool,
) -> anyhow::Result<String> {
    use crate::cache::{CacheTier, Cached, LinkCache, RedisTier};
    use std::sync::Arc;
    let stores = crate::startup::open_stores(settings).await?;
    let result = async {
        let clock: Arc<dyn crate::domain::Clock> = Arc::new(crate::domain::SystemClock);
        let codec = crate::startup::codes::open_codec(settings, &stores, clock.as_ref()).await?;
        let negative = settings.cache.negative_ttl_s;
        let l2 = match &settings.redis {
            Some(redis) => Some(Arc::new(RedisTier::new(redis, negative)?)),
            None => None,
        };
        let service = crate::service::Links::new(
            stores.links.clone(),
            LinkCache::new(None, l2.clone()),
            codec,
            clock,
            &crate::startup::url_policy(settings)?,
        );
        let changed = service
            .set_disabled(code, disabled)
            .await
            .map_err(|e| anyhow::anyhow!("{code}: {e}"))?;
        let (verb, answer) = if disabled {
            ("disabled", "answers 410 link_disabled")
        } else {
            ("enabled", "redirects again")
        };
        let mut out = if changed {
            format!("{verb} {code}: it {answer}")
        } else {
            format!("{code} was {verb} already: it {answer}")
        };
        let told = match &l2 {
            Some(l2) => match l2.get(code).await {
                Ok(Some(Cached::Disabled)) => disabled,
                Ok(Some(Cached::Active(_))) => !disabled,
                _ => false,
            },
            None => false,
        };
        if told {
            out.push_str(" on every instance now\n");
        } else {
            out.push_str(&format!(
                "; instances that cached it {} drop it within cache.l1_ttl_s ({})\n",
                if l2.is_some() {
                    "(Redis did not take the change)"
                } else {
                    "(no Redis)"
                },
                humantime::format_duration(settings.cache.l1_ttl_s)
            ));
        }
        anyhow::Ok(out)
    }
    .await;
    stores.close().await;
    result
}

/// What `shortener keys …` does (the command line parses into it).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key for a tenant (the tenant is created when new) and print it once.
    Create {
        /// The tenant's name.
        #[arg(long)]
        tenant: String,
        /// Links each of the tenant's keys may create per minute (sets the tenant's
        /// quota; default: limits.key_shorten_per_minute).
        #[arg(long)]
        shorten_per_minute: Option<u32>,
    },
    /// List every key (the secrets are not stored, so never shown).
    List,
    /// Revoke a key by its ID.
    Revoke {
        /// The key's ID (the number in shk_{id}_…).
        id: i64,
    },
}

/// What `shortener links …` does (the command line parses into it).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum LinksCommand {
    /// Take a link down: it answers 410 link_disabled on every instance until enabled.
    Disable {
        /// The link's code or alias.
        code: String,
    },
    /// Put a link that was taken down back: it redirects again.
    Enable {
        /// The link's code or alias.
        code: String,
    },
}

/// Runs `shortener links disable|enable CODE` (see [`set_link_disabled`]).
///
/// # Errors
/// As [`set_link_disabled`]'s.
pub async fn links(settings: &Settings, command: LinksCommand) -> anyhow::Result<String> {
    match command {
        LinksCommand::Disable { code } => set_link_disabled(settings, &code, true).await,
        LinksCommand::Enable { code } => set_link_disabled(settings, &code, false).await,
    }
}

/// Manages API keys in the directory (the directory shard, or the embedded file). The
/// token of a new key is printed once and cannot be shown again.
///
/// # Errors
/// When storage cannot be opened or written, or the key to revoke does not exist.
pub async fn keys(settings: &Settings, command: KeysCommand) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    anyhow::ensure!(
        !matches!(&command, KeysCommand::Create { tenant, .. } if !valid_tenant(tenant)),
        "a tenant name is 1 to 64 characters: letters, digits, '-', '_' or '.'"
    );
    let stores = crate::startup::open_stores(settings).await?;
    let store = stores.directory.clone();
    let result = async {
        let mut out = String::new();
        match command {
            KeysCommand::Create {
                tenant,
                shorten_per_minute,
            } => {
                let issued =
                    crate::auth::issue_key(store.as_ref(), &tenant, shorten_per_minute).await?;
                let quota = issued
                    .record
                    .shorten_per_minute
                    .map_or_else(|| "default".to_owned(), |q| format!("{q}/min"));
                writeln!(
                    out,
                    "created key {} for tenant {} (shortening quota: {quota})\n\
                     {}\nkeep it now: it is stored only as a hash and cannot be shown again",
                    issued.record.id, issued.record.tenant, issued.token
                )?;
            }
            KeysCommand::List => {
                writeln!(
                    out,
                    "{:>6}  {:<24}  {:<25}  {:<25}  quota/min",
                    "id", "tenant", "created", "revoked"
                )?;
                for k in store.list_keys().await? {
                    writeln!(
                        out,
                        "{:>6}  {:<24}  {:<25}  {:<25}  {}",
                        k.id,
                        k.tenant,
                        k.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
                        k.revoked_at.map_or_else(
                            || "-".to_owned(),
                            |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
                        ),
                        k.shorten_per_minute
                            .map_or_else(|| "default".to_owned(), |q| q.to_string()),
                    )?;
                }
            }
            KeysCommand::Revoke { id } => {
                if store.revoke_key(id, chrono::Utc::now()).await? {
                    writeln!(
                        out,
                        "revoked key {id}; instances stop accepting it within {} s",
                        settings.auth.key_cache_ttl().as_secs()
                    )?;
                } else {
                    anyhow::bail!("no key {id}, or it is already revoked");
                }
            }
        }
        anyhow::Ok(out)
    }
    .await;
    stores.close().await;
    result
}

fn valid_tenant(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}
