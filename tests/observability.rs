//! `/metrics` after real traffic, and request IDs.

mod support;

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::json;
use shortener::cache::RedisSettings;
use shortener::domain::ManualClock;
use support::{fresh_database, settings, shard, t0, TestApp};

/// The value of the first sample line that starts with `prefix`.
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {prefix} in\n{text}"))
}

#[tokio::test]
async fn metrics_show_requests_cache_tiers_ids_shards_clicks_and_the_process() {
    let db = fresh_database().await;
    let mut s = settings(vec![shard(
        "s0",
        &db,
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )]);
    s.redis = Some(RedisSettings {
        key_prefix: format!("test:{:016x}:", rand::random::<u64>()),
        ..RedisSettings::default()
    });
    s.analytics.flush_interval_ms = std::time::Duration::from_millis(20);
    let app = TestApp::spawn(s, Arc::new(ManualClock::at(t0()))).await;
    let code = app
        .shorten_ok(json!({"url": "https://example.com/m"}))
        .await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..3 {
        assert_eq!(app.follow(&code).await.status(), StatusCode::FOUND);
    }
    assert_eq!(
        app.follow("no-such-link").await.status(),
        StatusCode::NOT_FOUND
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await; // the worker flushes

    let r = app.request(Method::GET, "/metrics").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();

    let checks: &[(&str, f64)] = &[
        (
            r#"shortener_http_requests_total{method="GET",route="/{code}",status="302"}"#,
            3.0,
        ),
        (
            r#"shortener_http_requests_total{method="GET",route="/{code}",status="404"}"#,
            1.0,
        ),
        (
            r#"shortener_http_requests_total{method="POST",route="/api/v1/links",status="201"}"#,
            1.0,
        ),
        (
            r#"shortener_http_request_duration_seconds_count{route="/{code}"}"#,
            4.0,
        ),
        (
            r#"shortener_cache_requests_total{result="hit",tier="l1"}"#,
            3.0,
        ),
        (r#"shortener_cache_loads_total"#, 1.0),
        ("shortener_ids_issued_total", 4.0), // one link, three clicks
        ("shortener_clicks_enqueued_total", 3.0),
        ("shortener_clicks_counted_total", 3.0),
        ("shortener_redis_breaker_state", 0.0),
    ];
    for (prefix, expected) in checks {
        assert_eq!(sample(&text, prefix), *expected, "{prefix}");
    }
    assert!(
        sample(
            &text,
            r#"shortener_shard_query_duration_seconds_count{shard="s0"}"#
        ) >= 2.0
    );
    assert!(
        sample(
            &text,
            r#"shortener_shard_pool_connections{shard="s0",state="size"}"#
        ) >= 1.0
    );
    assert!(sample(&text, "process_resident_memory_bytes") > 0.0);
    assert!(!text.contains(&code), "a code must never be a label");
}

#[tokio::test]
async fn a_request_id_is_echoed_or_made_up() {
    let app = TestApp::single().await;
    let echoed = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", "trace-42.a_b")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-42.a_b");

    let made = app.request(Method::GET, "/healthz").await;
    let id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 16);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));

    let odd = app
        .client
        .get(format!("{}/nothing/here", app.address))
        .header("x-request-id", "has spaces & symbols")
        .send()
        .await
        .unwrap();
    assert_eq!(odd.status(), StatusCode::NOT_FOUND, "errors carry it too");
    assert_ne!(odd.headers()["x-request-id"], "has spaces & symbols");
}
