//! Building the application from settings, for `main` and for tests alike.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App};

use crate::analytics::{Analytics, StreamAt};
use crate::cache::{LinkCache, LocalTier, RedisTier};
use crate::config::{redact_url, Mode, Settings};
use crate::domain::{Clock, SnowflakeGenerator, SystemClock, UrlPolicy, WorkerSlot};
use crate::http::observe::{observe, LogRequests};
use crate::http::{self, AppState};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::service::{Clicks, Health, Links, Shortener};
use crate::shutdown::Shutdown;
use crate::store::clicks::ClickStore;
use crate::store::postgres::{ShardedClicks, ShardedPostgres};
use crate::store::sqlite::{SqliteClicks, SqliteStore};
use crate::store::{Directory, LinkStore, WorkerLeases};
use actix_web::middleware::from_fn;

pub mod codes;
pub mod leases;

/// Wraps the store before the service uses it (tests count loads this way).
pub type StoreLayer = Box<dyn FnOnce(Arc<dyn LinkStore>) -> Arc<dyn LinkStore> + Send>;

/// Wraps the click store before the worker and the service use it.
pub type ClickLayer = Box<dyn FnOnce(Arc<dyn ClickStore>) -> Arc<dyn ClickStore> + Send>;

/// What tests (and tools) may swap in when building the application.
#[derive(Default)]
pub struct Hooks {
    /// The clock; the system clock when absent.
    pub clock: Option<Arc<dyn Clock>>,
    /// A layer around the links' store.
    pub store_layer: Option<StoreLayer>,
    /// A layer around the click store.
    pub click_layer: Option<ClickLayer>,
}

/// A built, bound, not yet running service.
pub struct Application {
    port: u16,
    server: Server,
    /// The admin listener's port and server, when `admin_listen` is set.
    admin: Option<Listener>,
    state: web::Data<AppState>,
    stores: Stores,
    shutdown: Shutdown,
    background: Vec<tokio::task::JoinHandle<()>>,
    analytics: Option<Analytics>,
    /// The worker ID lease's keeper, when leasing.
    lease: Option<leases::LeaseHandle>,
}

impl Application {
    /// Builds the service on the system clock.
    ///
    /// # Errors
    /// When storage cannot be set up, a reachable shard has an unknown schema, or the
    /// listen address cannot be bound.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Hooks::default()).await
    }

    /// Builds the service with [`Hooks`]: a clock (tests step it to cross shard
    /// boundaries and expiry times without sleeping) and a layer around the store.
    ///
    /// # Errors
    /// As for [`build`](Self::build).
    pub async fn build_with(settings: Settings, hooks: Hooks) -> anyhow::Result<Self> {
        log_decisions(&settings);
        let shutdown = Shutdown::new();
        let clock = hooks.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let mut stores = open_stores(&settings).await?;
        if let Some(layer) = hooks.store_layer {
            stores.links = layer(stores.links);
        }
        if let Some(layer) = hooks.click_layer {
            stores.clicks = layer(stores.clicks);
        }
        let codec = codes::open_codec(&settings, &stores, clock.as_ref()).await?;
        let (cache, mut background) = build_cache(&settings, &shutdown)?;
        if let Some(pg) = &stores.replicated {
            background.push(shutdown.spawn_until(pg.clone().probe_replicas()));
        }
        let (ids, keeper) = worker_ids(&settings, &stores, clock.clone()).await?;
        let policy = url_policy(&settings)?;
        if !policy.blocked.is_empty() {
            tracing::info!(domains = policy.blocked.len(), "domain blocklist loaded");
        }
        let analytics = start_analytics(&settings, &stores, &shutdown)?;
        let metrics = web::Data::new(Metrics::new());
        let limits = start_limits(&settings, &metrics, &shutdown, &mut background);
        let auth = crate::auth::Authenticator::new(
            stores.directory.clone(),
            settings.allow_anonymous(),
            settings.auth.key_cache_ttl(),
        );
        metrics.observe(
            &cache,
            &ids,
            &stores.links,
            &stores.clicks,
            analytics.as_ref().map(|a| a.queue()),
            analytics.as_ref().and_then(|a| a.worker_stats()),
        );
        let links = Arc::new(Links::new(
            stores.links.clone(),
            cache,
            codec,
            clock.clone(),
            &policy,
        ));
        let salts = match &analytics {
            Some(_) => visitor_salts(&settings, &clock, &shutdown, &mut background).await?,
            None => Arc::default(),
        };
        let clicks = Clicks::new(
            links.clone(),
            stores.clicks.clone(),
            ids.clone(),
            analytics.as_ref().map(|a| a.queue().clone()),
            salts,
        );
        let state = web::Data::new(AppState {
            shortener: Shortener::new(links.clone(), ids, policy),
            clicks,
            health: Health::new(links.clone()),
            links,
            public_base: settings.public_base(),
            limits: limits.clone(),
            auth,
            clients: client_resolver(&settings),
            not_found_url: settings.links.not_found_url.clone(),
        });

        let (port, server, admin) = serve_http(&settings, &state, &metrics)?;
        let lease = keeper.map(leases::LeaseKeeper::spawn);
        Ok(Self {
            lease,
            port,
            server,
            admin,
            state,
            stores,
            shutdown,
            background,
            analytics,
        })
    }

    /// The port bound (useful with `listen = "127.0.0.1:0"`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin listener's port, when `admin_listen` is set.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin.as_ref().map(|(port, _)| *port)
    }

    /// The process's shutdown: [`Shutdown::begin`] stops the application in order.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The shared state (tests inspect the ID counters through it).
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until the shutdown begins (SIGINT/SIGTERM once
    /// [`Shutdown::on_signals`] is listening, or [`Shutdown::begin`]), then stops in
    /// the order [`crate::shutdown`] documents: requests in flight get
    /// `http.shutdown_timeout_s` to finish, the click queue is closed, drained and
    /// counted, the background tasks end, and storage is closed.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Self {
            server,
            admin,
            stores,
            shutdown,
            background,
            mut analytics,
            lease,
            ..
        } = self;
        // The admin listener serves until storage closes: the drain can be watched.
        let admin = admin.map(|(_, server)| (server.handle(), tokio::spawn(server)));
        let handle = server.handle();
        let mut server = tokio::spawn(server);
        // 1. HTTP: stop accepting, let requests in flight finish.
        let served = tokio::select! {
            served = &mut server => served,
            () = shutdown.begun() => {
                handle.stop(true).await;
                server.await
            }
        };
        shutdown.begin();
        // No shorten is in flight any more: the worker ID goes back at once.
        if let Some(lease) = lease {
            lease.release().await;
        }
        // 2. Clicks: no request is in flight any more; count every click taken.
        if let Some(analytics) = analytics.as_mut() {
            analytics.close().await;
        }
        // 3. Background tasks: they watch the token and end on their own.
        for task in background {
            let _ = task.await;
        }
        if let Some((handle, task)) = admin {
            handle.stop(true).await;
            let _ = task.await;
        }
        // 4. Storage.
        stores.close().await;
        served.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// The ID generator: on a leased worker ID (taken now) in the distributed mode with
/// `ids.lease`, else on the configured one (1 by default).
///
/// # Errors
/// When no lease can be taken: the configured ID is another instance's, every ID is
/// held, or the directory cannot be reached.
pub async fn worker_ids(
    settings: &Settings,
    stores: &Stores,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(Arc<SnowflakeGenerator>, Option<leases::LeaseKeeper>)> {
    let wait = settings.ids.max_clock_wait_ms;
    match (&stores.leases, settings.leases_worker_id()) {
        (Some(table), true) => {
            let slot = Arc::new(WorkerSlot::vacant());
            let ids = Arc::new(SnowflakeGenerator::with_slot(slot, clock, wait));
            let keeper = leases::LeaseKeeper::new(
                table.clone(),
                ids.clone(),
                settings.worker_id,
                settings.ids.lease_ttl_s,
            );
            keeper
                .acquire_at_startup()
                .await
                .map_err(|e| anyhow::anyhow!("no worker ID: {e}"))?;
            Ok((ids, Some(keeper)))
        }
        _ => Ok((
            Arc::new(SnowflakeGenerator::new(
                settings.fixed_worker_id(),
                clock,
                wait,
            )),
            None,
        )),
    }
}

/// What a link's URL may be, from the configuration (the blocklist file read now).
///
/// # Errors
/// When the blocklist file cannot be read, or a configured host could never match.
pub fn url_policy(settings: &Settings) -> anyhow::Result<UrlPolicy> {
    Ok(UrlPolicy {
        max_length: settings.links.max_url_length,
        own_hosts: settings.own_hosts()?,
        blocked: settings.blocked_domains()?,
        allow_local: settings.links.allow_local_targets,
    })
}

/// The cache tiers the configuration asks for, and their background tasks.
fn build_cache(
    settings: &Settings,
    shutdown: &Shutdown,
) -> anyhow::Result<(LinkCache, Vec<tokio::task::JoinHandle<()>>)> {
    let l1 = settings.cache.l1.then(|| LocalTier::new(&settings.cache));
    let negative = settings.cache.negative_ttl_s;
    let l2 = match &settings.redis {
        Some(redis) => Some(Arc::new(RedisTier::new(redis, negative)?)),
        None => None,
    };
    let background = l2
        .as_ref()
        .map(|tier| tier.spawn_background(l1.clone(), shutdown))
        .unwrap_or_default();
    tracing::info!(
        l1 = settings.cache.l1,
        l1_capacity = settings.cache.l1_capacity,
        l1_ttl_s = settings.cache.l1_ttl_s.as_secs(),
        l2 = settings
            .redis
            .as_ref()
            .map(|r| redact_url(&r.url))
            .unwrap_or_else(|| "off".into()),
        "cache tiers"
    );
    Ok((LinkCache::new(l1, l2), background))
}

/// The stores of one process, by concern.
#[derive(Clone)]
pub struct Stores {
    /// Links and aliases.
    pub links: Arc<dyn LinkStore>,
    /// Tenants and API keys.
    pub directory: Arc<dyn Directory>,
    /// Click counts.
    pub clicks: Arc<dyn ClickStore>,
    /// Worker ID leases (the distributed mode only).
    pub leases: Option<Arc<dyn WorkerLeases>>,
    /// The shards, when some list replicas: their probe loop runs with the service.
    pub replicated: Option<Arc<ShardedPostgres>>,
}

impl Stores {
    /// Closes every store (pending writes committed, files checkpointed).
    pub async fn close(&self) {
        self.links.close().await;
        self.clicks.close().await;
    }
}

/// Opens the stores the configuration asks for. In the embedded mode the click file is
/// opened first: it takes over the click tables that earlier versions kept in the
/// links' file before the links' migrations drop them.
///
/// # Errors
/// When a SQLite file cannot be opened or migrated, or a reachable shard has an unknown
/// schema.
pub async fn open_stores(settings: &Settings) -> anyhow::Result<Stores> {
    Ok(match settings.mode() {
        Mode::Embedded => {
            let dir = settings.data_dir.clone();
            let sqlite = settings.sqlite.clone();
            let raw = settings.analytics.raw_events;
            let (store, clicks) = tokio::task::spawn_blocking(move || {
                let clicks = SqliteClicks::open(&dir, &sqlite, raw)?;
                anyhow::Ok((SqliteStore::open(&dir, &sqlite)?, clicks))
            })
            .await??;
            tracing::info!(
                file = %store.path().display(),
                clicks = %clicks.path().display(),
                "embedded storage ready"
            );
            let store = Arc::new(store);
            Stores {
                links: store.clone(),
                directory: store,
                clicks: Arc::new(clicks),
                leases: None,
                replicated: None,
            }
        }
        Mode::Distributed => {
            let (shards, db) = (&settings.shards, &settings.database);
            let store = ShardedPostgres::connect(shards, db, settings.directory_name())?;
            store.check_schema().await?;
            let clicks = ShardedClicks::connect(shards, db, settings.analytics.raw_events)?;
            let store = Arc::new(store);
            Stores {
                links: store.clone(),
                directory: store.clone(),
                clicks: Arc::new(clicks),
                replicated: store.has_replicas().then(|| store.clone()),
                leases: Some(store),
            }
        }
    })
}

/// The click queue and, unless a separate worker counts, the worker (`analytics.enabled`).
fn start_analytics(
    settings: &Settings,
    stores: &Stores,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<Analytics>> {
    if !settings.analytics.enabled {
        return Ok(None);
    }
    let redis = settings.redis.as_ref().map(|r| StreamAt {
        url: &r.url,
        key_prefix: &r.key_prefix,
    });
    Ok(Some(Analytics::start(
        &settings.queue,
        redis,
        &settings.analytics,
        &settings.geo,
        stores.clicks.clone(),
        shutdown,
    )?))
}

/// The rate limiters (`limits.enabled`), observed by the metrics and evicted now and then.
fn start_limits(
    settings: &Settings,
    metrics: &Metrics,
    shutdown: &Shutdown,
    background: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Option<Arc<Limits>> {
    if !settings.limits.enabled {
        return None;
    }
    let limits = Arc::new(Limits::new(&settings.limits));
    metrics.observe_limits(limits.stats());
    let every = settings.limits.evict_every_s.max(Duration::from_secs(1));
    background.push(limits.spawn_eviction(every, shutdown));
    Some(limits)
}

/// A bound port and the server on it.
type Listener = (u16, Server);

/// The public listener and, with `admin_listen`, the admin one: the same app (state,
/// metrics, request log, JSON limits) with their own routes. Neither server watches
/// signals itself: the one shutdown token stops them.
fn serve_http(
    settings: &Settings,
    state: &web::Data<AppState>,
    metrics: &web::Data<Metrics>,
) -> anyhow::Result<(u16, Server, Option<Listener>)> {
    let app = {
        let (state, metrics) = (state.clone(), metrics.clone());
        let json = http::json_config(settings.http.max_body_bytes);
        let log_requests = LogRequests(settings.log.requests);
        move |routes: fn(&mut web::ServiceConfig)| {
            let (state, metrics, json) = (state.clone(), metrics.clone(), json.clone());
            move || {
                App::new()
                    .wrap(from_fn(observe))
                    .app_data(state.clone())
                    .app_data(metrics.clone())
                    .app_data(log_requests)
                    .app_data(json.clone())
                    .configure(routes)
            }
        }
    };
    let bind = |address: std::net::SocketAddr| {
        let listener = TcpListener::bind(address)
            .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
        let port = listener.local_addr()?.port();
        anyhow::Ok((listener, port))
    };
    let admin = match settings.admin_listen {
        Some(address) => {
            let (listener, port) = bind(address)?;
            let server =
                http::wire::serve(listener, 1, Duration::from_secs(1), app(http::admin_routes))?;
            tracing::info!(listen = %address, port, "admin listener: /metrics, /readyz, /healthz");
            Some((port, server))
        }
        None => None,
    };
    let routes = if admin.is_some() {
        http::public_routes
    } else {
        http::routes
    };
    let (listener, port) = bind(settings.listen)?;
    let server = http::wire::serve(
        listener,
        settings.http.workers,
        settings.http.shutdown_timeout_s,
        app(routes),
    )?;
    tracing::info!(listen = %settings.listen, port, "listening");
    Ok((port, server, admin))
}

/// The client resolver of `limits` and `geo`: trusted proxies, their forwarding header
/// and the location headers believed from them.
fn client_resolver(settings: &Settings) -> crate::limits::client::ClientResolver {
    crate::limits::client::ClientResolver::new(
        settings.limits.trusted_proxies.clone(),
        settings.limits.client_header,
        &settings.geo.headers,
        &settings.geo.city_headers,
    )
}

/// The visitor salts: with Redis, today's and tomorrow's shared with every instance
/// before the first request (a Redis that does not answer in time leaves this instance
/// on its own salts until it does), then kept in step in the background.
async fn visitor_salts(
    settings: &Settings,
    clock: &Arc<dyn crate::domain::Clock>,
    shutdown: &Shutdown,
    background: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<Arc<crate::domain::visitor::VisitorSalts>> {
    let salts = Arc::new(crate::domain::visitor::VisitorSalts::new());
    if let Some(redis) = &settings.redis {
        let timeout = redis.timeout_ms.max(Duration::from_millis(200)) * 4;
        let sharing =
            crate::analytics::salts::SaltSharing::new(&redis.url, &redis.key_prefix, timeout)?;
        if let Err(e) = sharing.sync(&salts, clock.now_ms()).await {
            tracing::warn!(error = %format!("{e:#}"), "visitor salts not shared yet: this instance uses its own until Redis answers");
        }
        background.push(sharing.spawn(salts.clone(), clock.clone(), shutdown));
    }
    Ok(salts)
}

/// Logs, once, what the service decided at startup (without secrets).
fn log_decisions(settings: &Settings) {
    if settings.mode() == Mode::Embedded {
        tracing::info!(
            mode = "embedded",
            worker_id = settings.fixed_worker_id(),
            public_url = %settings.public_url(),
            data_dir = %settings.data_dir.display(),
            synchronous = ?settings.sqlite.synchronous,
            "starting: SQLite storage (configure [[shards]] for the distributed mode)"
        );
        log_geo(settings);
        return;
    }
    tracing::info!(
        mode = "distributed",
        worker_id = ?settings.worker_id,
        worker_id_leased = settings.ids.lease,
        public_url = %settings.public_url(),
        directory = settings.directory_name(),
        "starting"
    );
    for shard in &settings.shards {
        tracing::info!(
            shard = %shard.name,
            from = %shard.from,
            first_id = shard.first_id().get(),
            url = %redact_url(&shard.url),
            "shard range"
        );
    }
    log_geo(settings);
}

fn log_geo(settings: &Settings) {
    tracing::info!(
        database = ?settings.geo.database,
        trusted_proxies = settings.limits.trusted_proxies.len(),
        client_header = ?settings.limits.client_header,
        "click locations: the database (if any) in the worker, CDN headers from trusted proxies only"
    );
}
