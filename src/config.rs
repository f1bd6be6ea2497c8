//! One configuration tree: defaults, then an optional TOML file, then `SHORTENER_…`
//! environment variables (`__` separates nesting: `SHORTENER_DATABASE__POOL_SIZE=32`).
//! Everything is validated at load, so a bad value stops startup with a clear message
//! instead of failing the first request that needs it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::analytics::queue::{QueueKind, QueueSettings};
use crate::analytics::worker::AnalyticsSettings;
use crate::cache::{CacheSettings, RedisSettings};
use crate::domain::ids::{Snowflake, EPOCH_MS, MAX_WORKER_ID};
use crate::limits::LimitSettings;
use crate::store::sqlite::SqliteSettings;

/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "SHORTENER_";

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address the HTTP server binds (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// The public base URL short links are built on (`{public_url}/{code}`). Its host is
    /// also refused as a link target. Default: `http://{listen}`.
    pub public_url: Option<String>,
    /// Embedded mode: the directory of the SQLite file (created when missing).
    pub data_dir: PathBuf,
    /// Embedded mode: the SQLite store.
    pub sqlite: SqliteSettings,
    /// This instance's Snowflake worker ID, 0–1023. Two running instances must never
    /// share one, or they could mint the same ID.
    pub worker_id: u16,
    /// Name of the shard that holds the directory: aliases (later API keys, tenants).
    /// Defaults to the first shard.
    pub directory: Option<String>,
    /// The range-sharded PostgreSQL databases, ordered by `from`. None configured means
    /// the embedded mode.
    pub shards: Vec<ShardSettings>,
    /// Database pools and timeouts, applied to every shard.
    pub database: DatabaseSettings,
    /// The in-process L1 cache of the redirect path.
    pub cache: CacheSettings,
    /// Redis, the shared L2 cache (and the click stream); absent means no L2.
    pub redis: Option<RedisSettings>,
    /// The click queue.
    pub queue: QueueSettings,
    /// Click analytics and its worker.
    pub analytics: AnalyticsSettings,
    /// Where `shortener worker` serves its own `/metrics`.
    pub worker_metrics_listen: String,
    /// Rate limits.
    pub limits: LimitSettings,
    /// API keys and anonymous use.
    pub auth: crate::auth::AuthSettings,
    /// Limits on what a link may be.
    pub links: LinkSettings,
    /// Snowflake ID issuing.
    pub ids: IdSettings,
    /// The HTTP server.
    pub http: HttpSettings,
    /// Logging.
    pub log: LogSettings,
}

/// One range of the ID space and the database that holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ShardSettings {
    /// A short name used in logs, metrics and errors (`s0`).
    pub name: String,
    /// PostgreSQL connection URL (`postgres://user@host:5432/db`).
    pub url: String,
    /// First instant of this shard's range; the range runs until the next shard's `from`
    /// (the last one is open-ended). IDs minted from this instant on live here.
    pub from: DateTime<Utc>,
}

/// Pools and timeouts for every shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// Connections per shard per instance.
    pub pool_size: usize,
    /// Longest wait to open a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Longest wait for a free pooled connection, in milliseconds.
    pub pool_wait_timeout_ms: u64,
    /// Longest a query may run, in milliseconds: enforced by the client and, as
    /// `statement_timeout`, by the server.
    pub query_timeout_ms: u64,
    /// Connections per shard per process for counting clicks: a pool of its own, so a
    /// click flush never takes a connection that a shorten waits for.
    pub clicks_pool_size: usize,
    /// Longest a click flush (one transaction on one shard) may run, in milliseconds.
    pub clicks_query_timeout_ms: u64,
}

/// Limits on links.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkSettings {
    /// Longest target URL accepted, in bytes.
    pub max_url_length: usize,
    /// More host names of this service (besides `public_url`'s) that may not be targets.
    pub own_hosts: Vec<String>,
    /// Domains no link may point to (their subdomains included).
    pub blocked_domains: Vec<String>,
    /// A file of more blocked domains, one per line (`#` comments), read at startup.
    pub blocklist_file: Option<PathBuf>,
}

/// Snowflake ID issuing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdSettings {
    /// A backward clock step up to this many milliseconds is waited out; a larger one
    /// fails the request with 503 and is counted.
    pub max_clock_wait_ms: u64,
}

/// The HTTP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Largest request body accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Seconds in-flight requests get to finish on shutdown.
    pub shutdown_timeout_s: u64,
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter (`info`, `shortener=debug,actix_web=warn`); `RUST_LOG` wins.
    pub filter: String,
    /// One line per request (method, route, status, latency, request ID).
    pub requests: bool,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            data_dir: PathBuf::from("data"),
            sqlite: SqliteSettings::default(),
            worker_id: 1,
            directory: None,
            shards: Vec::new(),
            database: DatabaseSettings::default(),
            cache: CacheSettings::default(),
            redis: None,
            queue: QueueSettings::default(),
            analytics: AnalyticsSettings::default(),
            worker_metrics_listen: "127.0.0.1:9100".into(),
            limits: LimitSettings::default(),
            auth: crate::auth::AuthSettings::default(),
            links: LinkSettings::default(),
            ids: IdSettings::default(),
            http: HttpSettings::default(),
            log: LogSettings::default(),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            pool_size: 16,
            connect_timeout_ms: 2_000,
            pool_wait_timeout_ms: 1_000,
            query_timeout_ms: 2_000,
            clicks_pool_size: 2,
            clicks_query_timeout_ms: 30_000,
        }
    }
}

impl Default for LinkSettings {
    fn default() -> Self {
        Self {
            max_url_length: 2_048,
            own_hosts: Vec::new(),
            blocked_domains: Vec::new(),
            blocklist_file: None,
        }
    }
}

impl Default for IdSettings {
    fn default() -> Self {
        Self {
            max_clock_wait_ms: 50,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            workers: 0,
            max_body_bytes: 16 * 1024,
            shutdown_timeout_s: 10,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
            requests: true,
        }
    }
}

/// A configuration that cannot be used, with what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(String),
    #[error("cannot read the configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// Where links are kept, decided by the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No shards configured: one SQLite file under `data_dir`.
    Embedded,
    /// PostgreSQL shards.
    Distributed,
}

/// Command-line flags that override the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
}

impl Settings {
    /// Loads defaults, then `file` if given, then the environment, and validates.
    ///
    /// # Errors
    /// A [`ConfigError`] saying what is missing, unreadable or inconsistent.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, &Overrides::default())
    }

    /// Like [`load`](Self::load), with command-line flags applied last.
    ///
    /// # Errors
    /// As for [`load`](Self::load).
    pub fn load_with(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.display().to_string()));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&["config"]));
        if let Some(listen) = &overrides.listen {
            figment = figment.merge(Serialized::default("listen", listen));
        }
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(Serialized::default("data_dir", dir));
        }
        let settings: Settings = figment.extract().map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks everything that can be checked without a network.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen
            .parse::<SocketAddr>()
            .map_err(|e| invalid(format!("listen = {:?}: {e}", self.listen)))?;
        let public_url = self.public_url();
        let public = Url::parse(&public_url)
            .map_err(|e| invalid(format!("public_url = {public_url:?}: {e}")))?;
        if !matches!(public.scheme(), "http" | "https") || public.host_str().is_none() {
            return Err(invalid("public_url must be an http(s) URL with a host"));
        }
        if self.worker_id > MAX_WORKER_ID {
            return Err(invalid(format!(
                "worker_id = {} is out of range 0..={MAX_WORKER_ID}",
                self.worker_id
            )));
        }
        if let Some(redis) = &self.redis {
            let url = Url::parse(&redis.url)
                .map_err(|e| invalid(format!("redis.url = {:?}: {e}", redis.url)))?;
            if !matches!(url.scheme(), "redis" | "rediss" | "redis+unix" | "unix") {
                return Err(invalid("redis.url must start with redis://"));
            }
            if redis.timeout_ms == 0 || redis.pool_size == 0 {
                return Err(invalid(
                    "redis.timeout_ms and redis.pool_size must be above 0",
                ));
            }
        }
        if self.cache.l1 && (self.cache.l1_capacity == 0 || self.cache.l1_ttl_s == 0) {
            return Err(invalid(
                "cache.l1_capacity and cache.l1_ttl_s must be above 0 (or set cache.l1 = false)",
            ));
        }
        if self.queue.kind == QueueKind::Redis && self.redis.is_none() {
            return Err(invalid("queue.kind = \"redis\" needs a [redis] section"));
        }
        if self.analytics.batch_size == 0 || self.queue.capacity == 0 {
            return Err(invalid(
                "analytics.batch_size and queue.capacity must be above 0",
            ));
        }
        if !(0.0..=1.0).contains(&self.analytics.raw_events) {
            return Err(invalid(
                "analytics.raw_events is the share of raw events kept, from 0 to 1",
            ));
        }
        if self.queue.kind == QueueKind::Redis {
            if self.queue.entry_clicks == 0 {
                return Err(invalid("queue.entry_clicks must be above 0"));
            }
            // A live worker holds its entries for a window before acknowledging them;
            // taking them over sooner would only make two workers do the same work.
            if self.queue.claim_idle_ms <= 2 * self.analytics.flush_interval_ms {
                return Err(invalid(format!(
                    "queue.claim_idle_ms ({}) must be more than twice \
                     analytics.flush_interval_ms ({})",
                    self.queue.claim_idle_ms, self.analytics.flush_interval_ms
                )));
            }
        }
        crate::limits::parse_proxies(&self.limits.trusted_proxies).map_err(invalid)?;
        if let Some(file) = &self.links.blocklist_file {
            if !file.is_file() {
                return Err(invalid(format!(
                    "links.blocklist_file {} does not exist",
                    file.display()
                )));
            }
        }
        if self.sqlite.readers == 0 {
            return Err(invalid("sqlite.readers must be at least 1"));
        }
        let mut names = HashSet::new();
        for (i, shard) in self.shards.iter().enumerate() {
            if shard.name.is_empty() {
                return Err(invalid(format!("shard #{} has an empty name", i + 1)));
            }
            if !names.insert(shard.name.as_str()) {
                return Err(invalid(format!(
                    "shard name {:?} is used twice",
                    shard.name
                )));
            }
            if !shard.url.starts_with("postgres://") && !shard.url.starts_with("postgresql://") {
                return Err(invalid(format!(
                    "shard {:?}: url must start with postgres://",
                    shard.name
                )));
            }
            shard
                .url
                .parse::<tokio_postgres::Config>()
                .map_err(|e| invalid(format!("shard {:?}: bad url: {e}", shard.name)))?;
            if shard.from.timestamp_millis() < EPOCH_MS as i64 {
                return Err(invalid(format!(
                    "shard {:?}: from = {} is before the ID epoch 2024-01-01T00:00:00Z",
                    shard.name, shard.from
                )));
            }
            if i > 0 && shard.from <= self.shards[i - 1].from {
                return Err(invalid(format!(
                    "shard ranges must be in increasing order of `from` and must not overlap: \
                     {:?} starts at {} which is not after {:?} at {}",
                    shard.name,
                    shard.from,
                    self.shards[i - 1].name,
                    self.shards[i - 1].from
                )));
            }
        }
        if let Some(dir) = &self.directory {
            if !names.contains(dir.as_str()) {
                return Err(invalid(format!(
                    "directory = {dir:?} names no configured shard"
                )));
            }
        }
        if self.database.pool_size == 0 || self.database.clicks_pool_size == 0 {
            return Err(invalid(
                "database.pool_size and database.clicks_pool_size must be at least 1",
            ));
        }
        for (name, ms) in [
            ("connect_timeout_ms", self.database.connect_timeout_ms),
            ("pool_wait_timeout_ms", self.database.pool_wait_timeout_ms),
            ("query_timeout_ms", self.database.query_timeout_ms),
            (
                "clicks_query_timeout_ms",
                self.database.clicks_query_timeout_ms,
            ),
        ] {
            if ms == 0 {
                return Err(invalid(format!("database.{name} must be above 0")));
            }
        }
        if self.links.max_url_length < 16 {
            return Err(invalid("links.max_url_length must be at least 16"));
        }
        if self.http.max_body_bytes < self.links.max_url_length {
            return Err(invalid(
                "http.max_body_bytes must be at least links.max_url_length",
            ));
        }
        Ok(())
    }

    /// Embedded without shards, distributed with them.
    pub fn mode(&self) -> Mode {
        if self.shards.is_empty() {
            Mode::Embedded
        } else {
            Mode::Distributed
        }
    }

    /// Whether links may be created without an API key: `auth.allow_anonymous`, by
    /// default on in the embedded mode and off in the distributed one.
    pub fn allow_anonymous(&self) -> bool {
        self.auth
            .allow_anonymous
            .unwrap_or(self.mode() == Mode::Embedded)
    }

    /// The name of the directory shard (empty in the embedded mode).
    pub fn directory_name(&self) -> &str {
        self.directory
            .as_deref()
            .or_else(|| self.shards.first().map(|s| s.name.as_str()))
            .unwrap_or_default()
    }

    /// The public base URL as configured, or `http://{listen}`.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// The public base URL without a trailing slash.
    pub fn public_base(&self) -> String {
        self.public_url().trim_end_matches('/').to_owned()
    }

    /// Host names a link may not point at: the public URL's and `links.own_hosts`.
    pub fn own_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .links
            .own_hosts
            .iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        if let Some(host) = Url::parse(&self.public_url())
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        {
            hosts.push(host);
        }
        hosts
    }

    /// The blocked domains: `links.blocked_domains` plus the blocklist file.
    ///
    /// # Errors
    /// When the blocklist file cannot be read.
    pub fn blocked_domains(&self) -> std::io::Result<std::collections::HashSet<String>> {
        let mut blocked: std::collections::HashSet<String> = self
            .links
            .blocked_domains
            .iter()
            .flat_map(|d| crate::domain::target_url::parse_blocklist(d).collect::<Vec<_>>())
            .collect();
        if let Some(file) = &self.links.blocklist_file {
            let text = std::fs::read_to_string(file)?;
            blocked.extend(crate::domain::target_url::parse_blocklist(&text));
        }
        Ok(blocked)
    }

    /// Shortcuts to the durations.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.database.connect_timeout_ms)
    }
}

impl ShardSettings {
    /// The first ID of this shard's range.
    pub fn first_id(&self) -> Snowflake {
        Snowflake::first_of_ms(u64::try_from(self.from.timestamp_millis()).unwrap_or(0))
    }
}

/// A URL with any password replaced, for logs and the `shards` command.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        Err(_) => "<unparseable url>".into(),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    fn shard(name: &str, from: &str) -> ShardSettings {
        ShardSettings {
            name: name.into(),
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            from: from.parse().unwrap(),
        }
    }

    fn two_shards() -> Settings {
        Settings {
            shards: vec![
                shard("s0", "2024-01-01T00:00:00Z"),
                shard("s1", "2027-01-01T00:00:00Z"),
            ],
            ..Settings::default()
        }
    }

    fn error_of(s: &Settings) -> String {
        s.validate().unwrap_err().to_string()
    }

    #[test]
    fn a_sound_configuration_passes() {
        let s = two_shards();
        s.validate().unwrap();
        assert_eq!(s.directory_name(), "s0");
        assert_eq!(s.shards[0].first_id().get(), 0);
    }

    #[test]
    fn broken_configurations_are_refused_with_a_reason() {
        type Breaker = Box<dyn Fn(&mut Settings)>;
        let cases: Vec<(Breaker, &str)> = vec![
            (Box::new(|s| s.shards.swap(0, 1)), "increasing order"),
            (
                Box::new(|s| s.shards[1].from = s.shards[0].from),
                "must not overlap",
            ),
            (
                Box::new(|s| s.directory = Some("nope".into())),
                "names no configured shard",
            ),
            (
                Box::new(|s| s.shards[1].url = "mysql://x/y".into()),
                "postgres://",
            ),
            (
                Box::new(|s| s.shards[1].url = "postgres://host:notaport/db".into()),
                "bad url",
            ),
            (Box::new(|s| s.shards[1].name = "s0".into()), "used twice"),
            (Box::new(|s| s.sqlite.readers = 0), "sqlite.readers"),
            (
                Box::new(|s| s.shards[0].from = "2023-06-01T00:00:00Z".parse().unwrap()),
                "before the ID epoch",
            ),
            (Box::new(|s| s.worker_id = 1024), "worker_id"),
            (Box::new(|s| s.listen = "localhost".into()), "listen"),
            (
                Box::new(|s| s.public_url = Some("ftp://x".into())),
                "public_url",
            ),
            (
                Box::new(|s| s.database.query_timeout_ms = 0),
                "query_timeout_ms",
            ),
        ];
        for (break_it, expected) in cases {
            let mut s = two_shards();
            break_it(&mut s);
            let msg = error_of(&s);
            assert!(msg.contains(expected), "expected {expected:?} in {msg:?}");
        }
    }

    #[test]
    fn a_file_and_the_environment_layer_over_the_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "shortener.toml",
                r#"
                listen = "127.0.0.1:9000"
                worker_id = 5
                [[shards]]
                name = "s0"
                url = "postgres://postgres@127.0.0.1:5432/a"
                from = "2024-01-01T00:00:00Z"
                "#,
            )?;
            jail.set_env("SHORTENER_WORKER_ID", "9");
            jail.set_env("SHORTENER_DATABASE__POOL_SIZE", "3");
            let s = Settings::load(Some(Path::new("shortener.toml"))).unwrap();
            assert_eq!(s.listen, "127.0.0.1:9000", "from the file");
            assert_eq!(s.worker_id, 9, "the environment wins over the file");
            assert_eq!(s.database.pool_size, 3, "nested keys use __");
            assert_eq!(s.links.max_url_length, 2048, "defaults fill the rest");
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_is_an_error_not_a_silent_default() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "lisen = \"127.0.0.1:1\"\n")?;
            let err = Settings::load(Some(Path::new("c.toml"))).unwrap_err();
            assert!(err.to_string().contains("lisen"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn no_shards_means_embedded_and_the_public_url_follows_listen() {
        let s = Settings {
            listen: "127.0.0.1:9001".into(),
            ..Settings::default()
        };
        s.validate().unwrap();
        assert_eq!(s.mode(), Mode::Embedded);
        assert_eq!(s.public_base(), "http://127.0.0.1:9001");
        assert_eq!(two_shards().mode(), Mode::Distributed);
    }

    #[test]
    fn command_line_flags_win_over_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SHORTENER_LISTEN", "127.0.0.1:7000");
            jail.set_env("SHORTENER_DATA_DIR", "/tmp/from-env");
            let s = Settings::load(None).unwrap();
            assert_eq!(s.listen, "127.0.0.1:7000");
            assert_eq!(s.data_dir, PathBuf::from("/tmp/from-env"));
            let flags = Overrides {
                listen: Some("127.0.0.1:7001".into()),
                data_dir: Some("/tmp/from-flag".into()),
            };
            let s = Settings::load_with(None, &flags).unwrap();
            assert_eq!(s.listen, "127.0.0.1:7001");
            assert_eq!(s.data_dir, PathBuf::from("/tmp/from-flag"));
            Ok(())
        });
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/d"),
            "postgres://u:***@h:5432/d"
        );
    }
}
