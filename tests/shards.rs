//! Shards as bulkheads, and schema checks at startup.

mod support;

use std::sync::Arc;

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use shortener::domain::ManualClock;
use support::{empty_database, error_code, fresh_database, settings, shard, t0, TestApp};

#[tokio::test]
async fn a_shard_that_is_down_fails_only_its_own_links() {
    // Arrange: links on both shards, created while both are up.
    let (s0, s1) = (fresh_database().await, fresh_database().await);
    let boundary = t0() + chrono::Duration::seconds(5);
    let both_up = settings(vec![
        shard("s0", &s0, "2024-01-01T00:00:00Z".parse().unwrap()),
        shard("s1", &s1, boundary),
    ]);
    let clock = Arc::new(ManualClock::at(t0()));
    let healthy = TestApp::spawn(both_up.clone(), clock.clone()).await;
    let on_s0 = healthy
        .shorten_ok(json!({"url": "https://example.com/0"}))
        .await;
    clock.advance_ms(10_000);
    let on_s1 = healthy
        .shorten_ok(json!({"url": "https://example.com/1"}))
        .await;

    // Act: a second instance whose s1 is unreachable (nothing listens on port 1).
    let mut s1_down = both_up;
    s1_down.shards[1].url = "postgres://postgres@127.0.0.1:1/unreachable".into();
    let degraded = TestApp::spawn(s1_down, clock.clone()).await;

    // Assert: s0's link is served, s1's answers a JSON 503 naming the shard.
    let ok = degraded.follow(on_s0["code"].as_str().unwrap()).await;
    assert_eq!(ok.status(), StatusCode::FOUND);
    assert_eq!(ok.headers()[header::LOCATION], "https://example.com/0");

    let failed = degraded.follow(on_s1["code"].as_str().unwrap()).await;
    assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(failed.headers()[header::RETRY_AFTER], "1");
    assert_eq!(error_code(failed).await, "shard_unavailable");

    // Writes for the down shard's range fail cleanly; aliases (directory on s0) of links
    // that would land on s1 fail too and leave the alias free.
    let write = degraded
        .shorten(json!({"url": "https://example.com/2", "alias": "later"}))
        .await;
    assert_eq!(write.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready = degraded.request(Method::GET, "/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["parts"][0]["ok"], true);
    assert_eq!(body["parts"][1]["ok"], false);

    // The healthy instance can still take the alias: the failed write gave it back.
    let retry = healthy
        .shorten(json!({"url": "https://example.com/2", "alias": "later"}))
        .await;
    assert_eq!(retry.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn serve_refuses_a_shard_without_the_schema() {
    let migrated = fresh_database().await;
    let empty = empty_database().await;
    let result = TestApp::try_spawn(
        settings(vec![
            shard("s0", &migrated, "2024-01-01T00:00:00Z".parse().unwrap()),
            shard("s1", &empty, "2027-01-01T00:00:00Z".parse().unwrap()),
        ]),
        Arc::new(ManualClock::at(t0())),
    )
    .await;
    let err = result.err().expect("startup must fail").to_string();
    assert!(err.contains("s1") && err.contains("no schema"), "{err}");
}

#[tokio::test]
async fn a_large_backward_clock_step_fails_shortening_with_503_until_the_clock_catches_up() {
    let app = TestApp::single().await;
    app.shorten_ok(json!({"url": "https://example.com/"})).await;

    app.clock.rewind_ms(10_000);
    let response = app.shorten(json!({"url": "https://example.com/"})).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(response).await, "clock_unavailable");
    let ids = app.app.shortener.ids().stats();
    assert_eq!(
        ids.clock_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // Back to normal: the clock catches up and shortening works again.
    app.clock.advance_ms(10_001);
    app.shorten_ok(json!({"url": "https://example.com/"})).await;
}
