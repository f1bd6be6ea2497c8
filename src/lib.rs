//! # shortener
//!
//! A URL shortener: Snowflake IDs, Base62 codes, range-sharded PostgreSQL.
//!
//! # Layout
//!
//! Modules by layer, lowest first; a module imports only its own and lower layers
//! (docs/architecture.md lists the layers; `tests/layers.rs` checks them).
//!
//! **0: no I/O, no crate imports**
//! - [`domain`]: the types and rules. [`domain::ids`] mints Snowflake IDs,
//!   [`domain::cipher`] is the keyed permutation (FF1) that hides them in codes,
//!   [`domain::codes`] spells codes in Base62 and parses aliases,
//!   [`domain::target_url`] checks URLs, [`domain::link`] is the link and its state,
//!   [`domain::click`] the click types the worker and the click stores share,
//!   [`domain::query`] the page and day-range parameters, [`domain::clock`] time,
//!   [`domain::visitor`] the keyed hash of a day's visitor.
//! - [`duration`]: durations in the configuration (a number in the key's unit, or
//!   `"250ms"`).
//! - [`telemetry`]: logging, its settings, and the latency buckets every histogram uses.
//! - [`shutdown`]: the one shutdown token and the order in which the parts stop.
//!
//! **1: the I/O adapters**
//! - [`store`]: storage by concern, each a trait: [`store::links`] (links and aliases),
//!   [`store::directory`] (tenants and API keys), [`store::clicks`] (click counts);
//!   [`store::error`] is what they share; [`store::leases`] leases worker IDs to
//!   instances. [`store::postgres`] shards all three over
//!   PostgreSQL by ID range ([`store::shard_map`] is the routing,
//!   [`store::postgres::shard`] the pool, timeouts and metrics of one shard,
//!   [`store::postgres::replica`] its streaming replicas and where a redirect reads,
//!   [`store::postgres::settings`] the shards' settings, [`store::postgres::migrate`]
//!   the schema; [`store::postgres::links`], [`store::postgres::directory`],
//!   [`store::postgres::clicks`], [`store::postgres::leases`] the queries). [`store::sqlite`] keeps them in two
//!   files ([`store::sqlite::links`], [`store::sqlite::directory`],
//!   [`store::sqlite::clicks`]). [`store::sql`] is the links' and the directory's SQL and
//!   row mappings, written once for both backends.
//! - [`cache`]: the read-through cache of the redirect path: L1 in process
//!   ([`cache::local`]), L2 Redis ([`cache::redis`]) behind a circuit breaker
//!   ([`cache::breaker`]).
//!
//! **2**
//! - [`error`]: the API error type and its kinds; every error has a stable code.
//! - [`analytics`]: clicks go from the redirect path through a queue
//!   ([`analytics::queue`]: in process or Redis Streams ([`analytics::queue::stream`]),
//!   many clicks per entry ([`analytics::queue::entry`])) to the worker
//!   ([`analytics::worker`]), which classifies them ([`analytics::event`]; places them
//!   with the location database of [`analytics::geo`]), sums a window in process and
//!   has the click store count it exactly once; the stats are shaped in
//!   [`analytics::rollup`]; [`analytics::salts`] shares the visitor salts through Redis.
//!
//! **3**
//! - [`auth`]: tenants and API keys; who may read and manage which link.
//! - [`limits`]: rate limits per client address and per API key (governor);
//!   [`limits::client`] decides a request's client address (trusted proxies) for the
//!   limits and the clicks alike.
//!
//! **4**
//! - [`service`]: what shortening, resolving, listing, deleting mean, and the click
//!   side ([`service::clicks`]): the only way the routes reach storage, the cache, IDs
//!   and the click queue.
//!
//! **5**
//! - [`metrics`]: every Prometheus metric, in one struct, read from each part's
//!   counters at scrape time.
//!
//! **6**
//! - [`http`]: the routes, one file per group: [`http::redirect`] (a redirect is served
//!   here), [`http::links`] (a link is created, read, edited, listed, deleted),
//!   [`http::stats`], [`http::qr`] (a link's QR code), [`http::console`] (the web console
//!   at `/`, files from `console/` compiled in), [`http::health`], [`http::observe`]
//!   (request metrics, access log, `/metrics`), [`http::openapi`]; [`http::error`] is how an error answers, and [`http::wire`] the
//!   server on the wire (so that even the HTTP parser's own errors are JSON).
//!
//! **7**
//! - [`config`]: the one configuration tree (defaults → TOML file → `SHORTENER_…`
//!   env), composed of each part's settings, validated at load.
//!
//! **8**
//! - [`startup`]: [`startup::Application`], built by `main` and by tests alike;
//!   [`startup::codes`] is the code key's life cycle and the deployment's code scheme,
//!   [`startup::leases`] keeps this instance's worker ID leased.
//!
//! **9**
//! - [`commands`]: `migrate`, `shards`, `worker`, `seed`, `links` and `keys`.
#![forbid(unsafe_code)]
#![warn(clippy::too_many_lines)]

pub mod analytics;
pub mod auth;
pub mod cache;
pub mod commands;
pub mod config;
pub mod domain;
pub mod duration;
pub mod error;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod service;
pub mod shutdown;
pub mod startup;
pub mod store;
pub mod telemetry;
