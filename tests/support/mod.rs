//! Test helpers: per-test PostgreSQL databases cloned from a template that is migrated
//! once, and an in-process app on a free port driven over real HTTP.
#![allow(dead_code)] // each test binary uses a different subset

/// Runs each named contract function as a test against `postgres()` and against
/// `sqlite()`, which the test file defines (each returns a subject with a `store`).
#[allow(unused_macros)] // only the contract test binaries use it
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let subject = super::postgres().await;
                    super::$case(&*subject.store).await;
                    subject.close().await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let subject = super::sqlite().await;
                    super::$case(&*subject.store).await;
                    subject.close().await;
                }
            )*
        }
    };
}

pub mod cache;
pub mod hooked;
pub mod mmdb;
pub mod process;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use reqwest::{Method, Response};
use serde_json::Value;
use shortener::config::{Settings, ShardSettings};
use shortener::domain::ManualClock;
use shortener::startup::{Application, ClickLayer, Hooks, StoreLayer};
use shortener::store::postgres::migrate_url;
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

/// The PostgreSQL server tests use: `SHORTENER_TEST_PG` or the local one.
pub fn pg_server() -> String {
    std::env::var("SHORTENER_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// An admin connection to the server's `postgres` database.
pub async fn admin() -> tokio_postgres::Client {
    connect(&format!("{}/postgres", pg_server())).await
}

/// A connection to `url`, its driver spawned on the current runtime.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    tokio::spawn(conn);
    client
}

fn migrations_fingerprint() -> u64 {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut hasher = DefaultHasher::new();
    for f in files {
        f.file_name().hash(&mut hasher);
        std::fs::read(&f).unwrap().hash(&mut hasher);
    }
    hasher.finish()
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// The migrated template database, built once per schema (shared across test binaries,
/// guarded by an advisory lock so concurrent binaries do not race).
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = format!("shortener_tpl_{:016x}", migrations_fingerprint());
            // A private thread and runtime: the template outlives any one test's runtime.
            let n = name.clone();
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(build_template(&n))
            })
            .join()
            .unwrap();
            name
        })
        .await
}

async fn build_template(name: &str) {
    let admin = admin().await;
    admin
        .execute("SELECT pg_advisory_lock(7421)", &[])
        .await
        .unwrap();
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some();
    if !exists {
        migrate_url(&format!("{}/{name}", pg_server()))
            .await
            .unwrap();
    }
    // Nobody may stay connected to a template, or cloning it fails.
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await
        .unwrap();
    admin
        .execute("SELECT pg_advisory_unlock(7421)", &[])
        .await
        .unwrap();
}

/// A fresh, migrated database of its own; returns its URL.
pub async fn fresh_database() -> String {
    let template = template().await;
    let name = format!("shortener_test_{:016x}", rand::random::<u64>());
    let admin = admin().await;
    let mut attempt = 0;
    loop {
        match admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
        {
            Ok(()) => break,
            // Another clone of the same template is in progress: retry.
            Err(e)
                if attempt < 50
                    && e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) =>
            {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("create {name}: {e}"),
        }
    }
    format!("{}/{name}", pg_server())
}

/// An empty (unmigrated) database of its own; returns its URL.
pub async fn empty_database() -> String {
    let name = format!("shortener_test_{:016x}", rand::random::<u64>());
    admin()
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    format!("{}/{name}", pg_server())
}

/// The instant test clocks start at.
pub fn t0() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

/// The code key of test apps.
pub const TEST_CODE_KEY: &str = "5e5e0b1e5ee5c0de5e5e0b1e5ee5c0de";

/// Settings for a test app: a free port, `http://sho.rt` as the public URL, one worker.
pub fn settings(shards: Vec<ShardSettings>) -> Settings {
    let mut s = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        public_url: Some("http://sho.rt".parse().unwrap()),
        shards,
        ..Settings::default()
    };
    s.http.workers = 1;
    // One code key for every test app, so that apps sharing a database agree.
    s.codes.key = Some(TEST_CODE_KEY.into());
    // Every test client is 127.0.0.1: rate limits are off unless a test is about them.
    s.limits.enabled = false;
    s.database.pool_size = 4;
    s.database.connect_timeout_ms = std::time::Duration::from_millis(1_000);
    s
}

/// A shard spec.
pub fn shard(name: &str, url: &str, from: DateTime<Utc>) -> ShardSettings {
    ShardSettings {
        name: name.into(),
        url: url.into(),
        from,
        replicas: Vec::new(),
    }
}

/// A running app and a client with redirects off that sends the API key of tenant
/// `test` with every request.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// The API key `client` sends.
    pub key: String,
    pub clock: Arc<ManualClock>,
    pub settings: Settings,
    pub app: actix_web::web::Data<shortener::http::AppState>,
    /// The embedded mode's data directory, removed with the app.
    pub data_dir: Option<tempfile::TempDir>,
}

impl TestApp {
    /// One shard on a fresh database, the clock at [`t0`].
    pub async fn single() -> Self {
        let url = fresh_database().await;
        Self::spawn(
            settings(vec![shard(
                "s0",
                &url,
                "2024-01-01T00:00:00Z".parse().unwrap(),
            )]),
            Arc::new(ManualClock::at(t0())),
        )
        .await
    }

    /// The embedded mode (no shards) on a SQLite file in a temporary directory.
    pub async fn embedded() -> Self {
        Self::embedded_on(None).await
    }

    /// The embedded mode on the system clock, for tests that mint more than the 4,096
    /// IDs one stopped millisecond allows. `clock` is then not the app's clock.
    pub async fn embedded_real_time() -> Self {
        Self::embedded_on(Some(Arc::new(shortener::domain::SystemClock))).await
    }

    async fn embedded_on(clock: Option<Arc<dyn shortener::domain::Clock>>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(Vec::new());
        s.data_dir = dir.path().to_owned();
        let manual = Arc::new(ManualClock::at(t0()));
        let clock = clock.unwrap_or_else(|| manual.clone());
        let mut app = Self::try_spawn_on(s, manual, clock).await.unwrap();
        app.data_dir = Some(dir);
        app
    }

    /// Builds and starts an app with these settings on the system clock (for tests that
    /// mint more IDs than one stopped millisecond allows). `clock` is then not the
    /// app's clock.
    pub async fn spawn_real_time(settings: Settings) -> anyhow::Result<Self> {
        Self::try_spawn_on(
            settings,
            Arc::new(ManualClock::at(t0())),
            Arc::new(shortener::domain::SystemClock),
        )
        .await
    }

    /// Builds and starts an app with these settings and clock.
    pub async fn spawn(settings: Settings, clock: Arc<ManualClock>) -> Self {
        Self::try_spawn(settings, clock).await.expect("app builds")
    }

    /// Like [`spawn`](Self::spawn), returning the build error instead of panicking.
    pub async fn try_spawn(settings: Settings, clock: Arc<ManualClock>) -> anyhow::Result<Self> {
        Self::try_spawn_on(settings, clock.clone(), clock).await
    }

    async fn try_spawn_on(
        settings: Settings,
        manual: Arc<ManualClock>,
        clock: Arc<dyn shortener::domain::Clock>,
    ) -> anyhow::Result<Self> {
        Self::try_spawn_with(settings, manual, clock, None, None).await
    }

    /// Builds and starts an app whose store is wrapped by `layer`.
    pub async fn spawn_layered(
        settings: Settings,
        clock: Arc<ManualClock>,
        layer: StoreLayer,
    ) -> Self {
        Self::try_spawn_with(settings, clock.clone(), clock, Some(layer), None)
            .await
            .expect("app builds")
    }

    /// Builds and starts an app whose click store is wrapped by `layer`.
    pub async fn spawn_click_layered(
        settings: Settings,
        clock: Arc<ManualClock>,
        layer: ClickLayer,
    ) -> Self {
        Self::try_spawn_with(settings, clock.clone(), clock, None, Some(layer))
            .await
            .expect("app builds")
    }

    async fn try_spawn_with(
        settings: Settings,
        manual: Arc<ManualClock>,
        clock: Arc<dyn shortener::domain::Clock>,
        store_layer: Option<StoreLayer>,
        click_layer: Option<ClickLayer>,
    ) -> anyhow::Result<Self> {
        if std::env::var_os("TEST_LOG").is_some() {
            shortener::telemetry::init(&settings.log);
        }
        let hooks = Hooks {
            clock: Some(clock),
            store_layer,
            click_layer,
        };
        let app = Application::build_with(settings.clone(), hooks).await?;
        let address = format!("http://127.0.0.1:{}", app.port());
        let state = app.state();
        tokio::spawn(app.run_until_stopped());
        // No key when the directory cannot take one (a test with its primary down).
        let key =
            match shortener::auth::issue_key(state.auth.directory().as_ref(), "test", None).await {
                Ok(issued) => issued.token,
                Err(e) if settings.auth.allow_anonymous == Some(true) => {
                    let _ = e; // the client sends no key
                    String::new()
                }
                Err(e) => return Err(e.into()),
            };
        let client = client_with_key(Some(key.as_str()).filter(|k| !k.is_empty()));
        Ok(Self {
            address,
            client,
            key,
            clock: manual,
            settings,
            app: state,
            data_dir: None,
        })
    }

    /// A new key for `tenant` (created when new).
    pub async fn key_for(&self, tenant: &str) -> String {
        shortener::auth::issue_key(self.app.auth.directory().as_ref(), tenant, None)
            .await
            .unwrap()
            .token
    }

    /// A request to `path` with `key` (or none) instead of the default key.
    pub async fn request_as(&self, key: Option<&str>, method: Method, path: &str) -> Response {
        client_with_key(key)
            .request(method, format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }

    /// `POST /api/v1/links` with `key` (or none).
    pub async fn shorten_as(&self, key: Option<&str>, body: Value) -> Response {
        client_with_key(key)
            .post(format!("{}/api/v1/links", self.address))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `POST /api/v1/links` with a JSON body.
    pub async fn shorten(&self, body: Value) -> Response {
        self.client
            .post(format!("{}/api/v1/links", self.address))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Shortens `url` and returns the created link, asserting `201`.
    pub async fn shorten_ok(&self, body: Value) -> Value {
        let response = self.shorten(body).await;
        let status = response.status();
        let json: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "shorten failed: {json}");
        json
    }

    /// The ID a generated code names, in this app's code scheme.
    pub fn id_of_code(&self, code: &str) -> shortener::domain::Snowflake {
        self.app
            .links
            .codec()
            .id_of_code(code)
            .unwrap_or_else(|| panic!("{code} is not a generated code"))
    }

    /// The generated code of an ID, in this app's code scheme.
    pub fn code_of_id(&self, id: shortener::domain::Snowflake) -> String {
        self.app.links.codec().code(id)
    }

    /// `GET /{code}` without following the redirect.
    pub async fn follow(&self, code: &str) -> Response {
        self.request(Method::GET, &format!("/{code}")).await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.request(Method::GET, "/metrics")
            .await
            .text()
            .await
            .unwrap()
    }

    /// A link's stats, `query` being `""` or `?from=…&to=…`.
    pub async fn stats(&self, code: &str, query: &str) -> Value {
        let r = self
            .request(Method::GET, &format!("/api/v1/links/{code}/stats{query}"))
            .await;
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        r.json().await.unwrap()
    }

    /// Polls the stats until they show `total` clicks (at most 10 s; test apps flush
    /// their clicks within tens of milliseconds).
    pub async fn stats_when(&self, code: &str, query: &str, total: i64) -> Value {
        let started = std::time::Instant::now();
        loop {
            let s = self.stats(code, query).await;
            if s["total"] == total {
                return s;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "stats stuck at {s}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// Any request to a path.
    pub async fn request(&self, method: Method, path: &str) -> Response {
        self.client
            .request(method, format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }
}

/// A client with redirects off that sends `key` as a bearer token, if any.
pub fn client_with_key(key: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = key {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {key}").parse().unwrap(),
        );
    }
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

/// The `error.code` of a JSON error response, asserting the body is one.
pub async fn error_code(response: Response) -> String {
    let body: Value = response.json().await.expect("error bodies are JSON");
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.code in {body}"))
        .to_owned()
}

/// The value of the metric line that starts with `line_start` (a name, with its labels
/// in Prometheus' order when it has any) in a `/metrics` text.
pub fn metric_value(metrics: &str, line_start: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line_start).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{line_start} exported"))
        .trim()
        .parse()
        .unwrap()
}
