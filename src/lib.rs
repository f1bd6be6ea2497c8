//! # shortener
//!
//! A URL shortener: Snowflake IDs, Base62 codes, range-sharded PostgreSQL.
//!
//! # Layout
//!
//! - [`config`]: the one configuration tree (defaults → TOML file → `SHORTENER_…` env),
//!   validated at load.
//! - [`domain`]: no I/O. [`domain::ids`] mints Snowflake IDs, [`domain::codes`] turns
//!   them into Base62 codes and parses aliases, [`domain::target_url`] checks URLs,
//!   [`domain::link`] is the link and its state, [`domain::click`] the click types that
//!   the worker and the click stores share.
//! - [`store`]: the [`store::LinkStore`] trait and the [`store::clicks::ClickStore`]
//!   trait; [`store::postgres`] shards both over PostgreSQL by ID range
//!   ([`store::shard_map`] is the routing), [`store::sqlite`] keeps them in two files.
//! - [`cache`]: the read-through cache of the redirect path: L1 in process
//!   ([`cache::local`]), L2 Redis ([`cache::redis`]) behind a circuit breaker.
//! - [`analytics`]: clicks go from the redirect path through a queue
//!   ([`analytics::queue`]: in process or Redis Streams, many clicks per entry) to the
//!   worker ([`analytics::worker`]), which classifies them ([`analytics::event`]), sums
//!   a window in process and has the click store count it exactly once; the stats are
//!   shaped in [`analytics::rollup`].
//! - [`auth`]: tenants and API keys; who may read and manage which link.
//! - [`limits`]: rate limits per client address and per API key (governor).
//! - [`service`]: what shortening, resolving and deleting mean.
//! - [`http`]: the routes. A redirect is served in [`http::redirect`], a link is stored
//!   through [`http::links`] → [`service`] → [`store`].
//! - [`error`]: the API error type; every error is JSON with a stable code.
//! - [`metrics`]: every Prometheus metric, in one struct; [`http::observe`] records
//!   requests and logs one line per request with its request ID.
//! - [`startup`]: [`startup::Application`], built by `main` and by tests alike.
//! - [`commands`]: `migrate`, `shards` and `worker`.
//! - [`shutdown`]: SIGTERM and Ctrl-C.
//! - [`telemetry`]: logging and its setup.
#![forbid(unsafe_code)]

pub mod analytics;
pub mod auth;
pub mod cache;
pub mod commands;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod service;
pub mod shutdown;
pub mod startup;
pub mod store;
pub mod telemetry;
