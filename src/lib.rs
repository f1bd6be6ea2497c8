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
//!   [`domain::link`] is the link and its state.
//! - [`store`]: the [`store::LinkStore`] trait; [`store::postgres`] shards links over
//!   PostgreSQL by ID range ([`store::shard_map`] is the routing).
//! - [`cache`]: the read-through cache of the redirect path: L1 in process
//!   ([`cache::local`]), L2 Redis ([`cache::redis`]) behind a circuit breaker.
//! - [`service`]: what shortening, resolving and deleting mean.
//! - [`http`]: the routes. A redirect is served in [`http::redirect`], a link is stored
//!   through [`http::links`] → [`service`] → [`store`].
//! - [`error`]: the API error type; every error is JSON with a stable code.
//! - [`startup`]: [`startup::Application`], built by `main` and by tests alike.
//! - [`commands`]: `migrate` and `shards`.
//! - [`telemetry`]: logging and its setup.
#![forbid(unsafe_code)]

pub mod cache;
pub mod commands;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
