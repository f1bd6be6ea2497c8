//! Helpers of the cache tests (`cache.rs`, `cache_outage.rs`).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use serde_json::Value;
use shortener::cache::RedisSettings;
use shortener::config::Settings;
use shortener::domain::ManualClock;

use super::hooked::HookedStore;
use super::{fresh_database, settings, shard, TestApp};

/// Redis at `url` under a key prefix of the test's own, with a quick breaker.
pub fn redis_at(url: &str) -> RedisSettings {
    RedisSettings {
        url: url.into(),
        key_prefix: format!("test:{:016x}:", rand::random::<u64>()),
        breaker_open_ms: std::time::Duration::from_millis(200),
        timeout_ms: std::time::Duration::from_millis(200),
        ..RedisSettings::default()
    }
}

/// One fresh shard, with Redis as given and L1 on or off.
pub async fn one_shard(redis: Option<RedisSettings>, l1: bool) -> Settings {
    let db = fresh_database().await;
    let mut s = settings(vec![shard(
        "s0",
        &db,
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )]);
    s.redis = redis;
    s.cache.l1 = l1;
    s
}

/// An app whose store reads are counted.
pub async fn counted(settings: Settings, clock: Arc<ManualClock>) -> (TestApp, Arc<AtomicU64>) {
    let (layer, loads) = HookedStore::counting();
    (TestApp::spawn_layered(settings, clock, layer).await, loads)
}

/// The code of a link as the API returned it.
pub fn code(link: &Value) -> String {
    link["code"].as_str().unwrap().to_owned()
}
