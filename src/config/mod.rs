//! One configuration tree: defaults, then an optional TOML file, then `SHORTENER_…`
//! environment variables (`__` separates nesting: `SHORTENER_DATABASE__POOL_SIZE=32`).
//! Everything is validated at load, so a bad value stops startup with a clear message
//! instead of failing the first request that needs it.
//!
//! The tree is made of the parts' own settings (the shards' in
//! [`crate::store::postgres`], the cache's in [`crate::cache`], the queue's and the
//! worker's in [`crate::analytics`], logging's in [`crate::telemetry`], …): each part
//! owns its settings and checks what only it knows; this module composes them and
//! checks what spans parts. Nothing below it imports it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::analytics::geo::GeoSettings;
use crate::analytics::queue::{QueueKind, QueueSettings};
use crate::analytics::worker::AnalyticsSettings;
use crate::cache::{CacheSettings, RedisSettings};
use crate::domain::cipher::{CodeKey, CodeSettings};
use crate::domain::ids::MAX_WORKER_ID;
use crate::domain::target_url::{normalise_host, parse_blocklist};
use crate::limits::LimitSettings;
use crate::store::postgres::validate_shards;
pub use crate::store::postgres::{redact_url, DatabaseSettings, ShardSettings};
use crate::store::sqlite::SqliteSettings;
pub use crate::telemetry::{LogFormat, LogSettings};

/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "SHORTENER_";

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address the HTTP server binds (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// An admin listener for `/metrics`, `/readyz` and `/healthz` (for example
    /// `127.0.0.1:9090`, not exposed to the public). When set, the public listener no
    /// longer serves `/metrics` and `/readyz`; unset, it serves them as before.
    pub admin_listen: Option<SocketAddr>,
    /// The public base URL short links are built on (`{public_url}/{code}`). Its host is
    /// also refused as a link target. Default: `http://{listen}`.
    pub public_url: Option<Url>,
    /// Embedded mode: the directory of the SQLite file (created when missing).
    pub data_dir: PathBuf,
    /// Embedded mode: the SQLite store.
    pub sqlite: SqliteSettings,
    /// This instance's Snowflake worker ID, 0–1023. Unset: leased from the directory in
    /// the distributed mode (`ids.lease`), 1 in the embedded mode. A configured ID is
    /// leased too, and a start with an ID another instance holds is refused.
    pub worker_id: Option<u16>,
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
    pub worker_metrics_listen: SocketAddr,
    /// Rate limits, and the trusted proxies that decide a request's client address.
    pub limits: LimitSettings,
    /// Where clicks come from: a location database and the headers of a CDN in front.
    pub geo: GeoSettings,
    /// API keys and anonymous use.
    pub auth: crate::auth::AuthSettings,
    /// Limits on what a link may be.
    pub links: LinkSettings,
    /// Snowflake ID issuing.
    pub ids: IdSettings,
    /// Generated codes: the key of their permutation.
    pub codes: CodeSettings,
    /// The HTTP server.
    pub http: HttpSettings,
    /// Logging.
    pub log: LogSettings,
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
    /// Whether links may point to loopback, unspecified and link-local hosts
    /// (`localhost`, 127.0.0.1, `[::1]`, 0.0.0.0, 169.254.x.x, fe80::…): for intranet
    /// deployments only.
    pub allow_local_targets: bool,
    /// Where a browser (`Accept: text/html`) asking for an unknown, deleted or expired
    /// code is sent (302) instead of getting the JSON error; API clients keep the JSON.
    /// An http(s) URL; unset: everyone gets the JSON error.
    pub not_found_url: Option<Url>,
}

/// Snowflake ID issuing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdSettings {
    /// A backward clock step up to this many milliseconds is waited out; a larger one
    /// fails the request with 503 and is counted.
    #[serde(with = "crate::duration::ms")]
    pub max_clock_wait_ms: Duration,
    /// Distributed mode: whether worker IDs are leased from the directory
    /// (`worker_leases`), so no two instances ever hold one. `false` trusts a configured
    /// `worker_id` unchecked (an orchestrator that assigns unique ones).
    pub lease: bool,
    /// How long a lease lasts without renewal, in seconds; it is renewed every third of
    /// that, and an instance stops minting a tenth of it before it would run out.
    #[serde(with = "crate::duration::secs")]
    pub lease_ttl_s: Duration,
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
    #[serde(with = "crate::duration::secs")]
    pub shutdown_timeout_s: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: None,
            public_url: None,
            data_dir: PathBuf::from("data"),
            sqlite: SqliteSettings::default(),
            worker_id: None,
            directory: None,
            shards: Vec::new(),
            database: DatabaseSettings::default(),
            cache: CacheSettings::default(),
            redis: None,
            queue: QueueSettings::default(),
            analytics: AnalyticsSettings::default(),
            worker_metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
            limits: LimitSettings::default(),
            geo: GeoSettings::default(),
            auth: crate::auth::AuthSettings::default(),
            links: LinkSettings::default(),
            ids: IdSettings::default(),
            codes: CodeSettings::default(),
            http: HttpSettings::default(),
            log: LogSettings::default(),
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
            allow_local_targets: false,
            not_found_url: None,
        }
    }
}

impl Default for IdSettings {
    fn default() -> Self {
        Self {
            max_clock_wait_ms: Duration::from_millis(50),
            lease: true,
            lease_ttl_s: Duration::from_secs(30),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            workers: 0,
            max_body_bytes: 16 * 1024,
            shutdown_timeout_s: Duration::from_secs(10),
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
        self.validate_addresses()
            .and_then(|()| self.validate_ids())
            .and_then(|()| self.validate_cache_and_queue())
            .and_then(|()| self.validate_links())
            .and_then(|()| self.validate_geo())
            .and_then(|()| self.validate_storage())
            .map_err(invalid)
    }

    /// Listeners and the public URL.
    fn validate_addresses(&self) -> Result<(), String> {
        // Port 0 picks a free port for each, so two of them never clash.
        if self.admin_listen == Some(self.listen) && self.listen.port() != 0 {
            return Err("admin_listen must differ from listen".into());
        }
        let public = self.public_url();
        if !matches!(public.scheme(), "http" | "https") || public.host_str().is_none() {
            return Err("public_url must be an http(s) URL with a host".into());
        }
        Ok(())
    }

    /// `worker_id`, `[ids]` and `[codes]`.
    fn validate_ids(&self) -> Result<(), String> {
        if let Some(worker) = self.worker_id.filter(|w| *w > MAX_WORKER_ID) {
            return Err(format!(
                "worker_id = {worker} is out of range 0..={MAX_WORKER_ID}"
            ));
        }
        if self.ids.lease_ttl_s < Duration::from_secs(1) {
            return Err("ids.lease_ttl_s must be at least 1".into());
        }
        if self.mode() == Mode::Distributed && !self.ids.lease && self.worker_id.is_none() {
            return Err(
                "ids.lease = false needs a worker_id (or lease worker IDs: ids.lease = true)"
                    .into(),
            );
        }
        // Required in the distributed mode, but only by the commands that make or read
        // codes (`serve`, `seed`, `links`): `migrate` and `shards` run without it.
        if let Some(key) = &self.codes.key {
            CodeKey::parse(key).map_err(|e| format!("codes.key: {e}"))?;
        }
        Ok(())
    }

    /// `[redis]`, `[cache]`, `[queue]`, `[analytics]` and `[limits]`.
    fn validate_cache_and_queue(&self) -> Result<(), String> {
        if let Some(redis) = &self.redis {
            let url = Url::parse(&redis.url)
                .map_err(|e| format!("redis.url = {:?}: {e}", redact_url(&redis.url)))?;
            if !matches!(url.scheme(), "redis" | "rediss" | "redis+unix" | "unix") {
                return Err("redis.url must start with redis://".into());
            }
            if redis.timeout_ms.is_zero() || redis.pool_size == 0 {
                return Err("redis.timeout_ms and redis.pool_size must be above 0".into());
            }
        }
        if self.cache.l1 && (self.cache.l1_capacity == 0 || self.cache.l1_ttl_s.is_zero()) {
            return Err(
                "cache.l1_capacity and cache.l1_ttl_s must be above 0 (or set cache.l1 = false)"
                    .into(),
            );
        }
        if self.queue.kind == QueueKind::Redis && self.redis.is_none() {
            return Err("queue.kind = \"redis\" needs a [redis] section".into());
        }
        if self.analytics.batch_size == 0 || self.queue.capacity == 0 {
            return Err("analytics.batch_size and queue.capacity must be above 0".into());
        }
        if !(0.0..=1.0).contains(&self.analytics.raw_events) {
            return Err("analytics.raw_events is the share of raw events kept, from 0 to 1".into());
        }
        if self.queue.kind == QueueKind::Redis {
            if self.queue.entry_clicks == 0 {
                return Err("queue.entry_clicks must be above 0".into());
            }
            // A live worker holds its entries for a window before acknowledging them;
            // taking them over sooner would only make two workers do the same work.
            if self.queue.claim_idle_ms <= 2 * self.analytics.flush_interval_ms {
                return Err(format!(
                    "queue.claim_idle_ms ({}) must be more than twice \
                     analytics.flush_interval_ms ({})",
                    humantime::format_duration(self.queue.claim_idle_ms),
                    humantime::format_duration(self.analytics.flush_interval_ms)
                ));
            }
        }
        if !(1..=128).contains(&self.limits.ipv6_prefix) {
            return Err("limits.ipv6_prefix must be from 1 to 128".into());
        }
        Ok(())
    }

    /// `[links]` and the body limit that must hold a link.
    fn validate_links(&self) -> Result<(), String> {
        for (list, entries) in [
            ("links.own_hosts", &self.links.own_hosts),
            ("links.blocked_domains", &self.links.blocked_domains),
        ] {
            for entry in entries {
                normalise_host(entry).map_err(|e| format!("{list}: {e}"))?;
            }
        }
        if let Some(file) = &self.links.blocklist_file {
            if !file.is_file() {
                return Err(format!(
                    "links.blocklist_file {} does not exist",
                    file.display()
                ));
            }
        }
        if let Some(url) = &self.links.not_found_url {
            if !matches!(url.scheme(), "http" | "https") {
                return Err("links.not_found_url must be an http(s) URL".into());
            }
        }
        if self.links.max_url_length < 16 {
            return Err("links.max_url_length must be at least 16".into());
        }
        if self.http.max_body_bytes < self.links.max_url_length {
            return Err("http.max_body_bytes must be at least links.max_url_length".into());
        }
        Ok(())
    }

    /// `[sqlite]`, `[[shards]]` and `[database]`.
    fn validate_storage(&self) -> Result<(), String> {
        if self.sqlite.readers == 0 {
            return Err("sqlite.readers must be at least 1".into());
        }
        validate_shards(&self.shards, self.directory.as_deref())?;
        self.database.validate()
    }

    /// `[geo]`: header names that are header names, and a database that opens (a
    /// configured one that does not is a startup error, not a silent lack of countries).
    fn validate_geo(&self) -> Result<(), String> {
        for name in self.geo.headers.iter().chain(&self.geo.city_headers) {
            actix_web::http::header::HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| format!("geo.headers: {name:?} is not a header name"))?;
        }
        if self.geo.reload_check_s.is_zero() {
            return Err("geo.reload_check_s must be at least 1".into());
        }
        if let Some(path) = &self.geo.database {
            crate::analytics::geo::open_reader(path).map_err(|e| format!("{e:#}"))?;
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

    /// Whether this instance leases its worker ID (the distributed mode with
    /// `ids.lease`); otherwise it mints with [`fixed_worker_id`](Self::fixed_worker_id).
    pub fn leases_worker_id(&self) -> bool {
        self.mode() == Mode::Distributed && self.ids.lease
    }

    /// The worker ID of an instance that leases none: the configured one, or 1.
    pub fn fixed_worker_id(&self) -> u16 {
        self.worker_id.unwrap_or(1)
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
    pub fn public_url(&self) -> Url {
        self.public_url.clone().unwrap_or_else(|| {
            Url::parse(&format!("http://{}", self.listen)).expect("an address makes a URL")
        })
    }

    /// The public base URL without a trailing slash.
    pub fn public_base(&self) -> String {
        self.public_url().as_str().trim_end_matches('/').to_owned()
    }

    /// Host names a link may not point at: the public URL's and `links.own_hosts`, in
    /// the form targets are compared in.
    ///
    /// # Errors
    /// An entry that is not a host, so could never match.
    pub fn own_hosts(&self) -> Result<Vec<String>, ConfigError> {
        let mut hosts = self
            .links
            .own_hosts
            .iter()
            .map(|h| normalise_host(h).map_err(|e| invalid(format!("links.own_hosts: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(host) = self
            .public_url()
            .host_str()
            .and_then(|h| normalise_host(h).ok())
        {
            hosts.push(host);
        }
        Ok(hosts)
    }

    /// The blocked domains: `links.blocked_domains` plus the blocklist file.
    ///
    /// # Errors
    /// When the blocklist file cannot be read or holds an entry that is not a host.
    pub fn blocked_domains(&self) -> std::io::Result<std::collections::HashSet<String>> {
        let mut blocked: std::collections::HashSet<String> = self
            .links
            .blocked_domains
            .iter()
            .map(|d| {
                normalise_host(d).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("links.blocked_domains: {e}"),
                    )
                })
            })
            .collect::<std::io::Result<_>>()?;
        if let Some(file) = &self.links.blocklist_file {
            let text = std::fs::read_to_string(file)?;
            let entries = parse_blocklist(&text).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("links.blocklist_file {}: {e}", file.display()),
                )
            })?;
            blocked.extend(entries);
        }
        Ok(blocked)
    }
}

#[cfg(test)]
mod tests;
