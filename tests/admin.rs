//! The operations endpoints under load from outside: `/metrics` and `/readyz` on an
//! admin listener of their own, and readiness that a flood cannot turn into shard load.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};
use shortener::domain::ManualClock;
use shortener::service::READINESS_TTL;
use support::hooked::HookedStore;
use support::{client_with_key, error_code, fresh_database, settings, shard, t0, TestApp};

#[tokio::test]
async fn with_an_admin_listener_metrics_and_readiness_leave_the_public_port() {
    // Arrange: an embedded app with an admin listener on a port of its own.
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(Vec::new());
    s.data_dir = dir.path().to_owned();
    s.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    let app = shortener::startup::Application::build(s).await.unwrap();
    let public = format!("http://127.0.0.1:{}", app.port());
    let admin = format!("http://127.0.0.1:{}", app.admin_port().expect("admin port"));
    let shutdown = app.shutdown();
    let running = tokio::spawn(app.run_until_stopped());
    let client = client_with_key(None);
    let get = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.unwrap() }
    };

    // Act and assert: the public port serves the API and /healthz, and answers the
    // internal paths as any unknown path (JSON 404).
    let created = client
        .post(format!("{public}/api/v1/links"))
        .json(&json!({"url": "https://example.com/admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let code = created.json::<Value>().await.unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        get(format!("{public}/{code}")).await.status(),
        StatusCode::FOUND
    );
    assert_eq!(
        get(format!("{public}/healthz")).await.status(),
        StatusCode::OK
    );
    for path in ["/metrics", "/readyz"] {
        let r = get(format!("{public}{path}")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error_code(r).await, "not_found");
    }
    // The admin port serves the internal paths and nothing else.
    let metrics = get(format!("{admin}/metrics")).await.text().await.unwrap();
    assert!(
        metrics.contains("shortener_http_requests_total"),
        "{metrics}"
    );
    assert_eq!(
        get(format!("{admin}/readyz")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get(format!("{admin}/healthz")).await.status(),
        StatusCode::OK
    );
    for path in ["/api/v1/links".to_owned(), format!("/{code}")] {
        let r = get(format!("{admin}{path}")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error_code(r).await, "not_found");
    }

    // Both listeners stop with the one shutdown.
    shutdown.begin();
    running.await.unwrap().unwrap();
    assert!(client.get(format!("{admin}/healthz")).send().await.is_err());
}

#[tokio::test]
async fn a_flood_of_readiness_checks_asks_the_shards_once_per_second() {
    // Arrange: one shard whose health checks are counted.
    let db = fresh_database().await;
    let (layer, checks) = HookedStore::counting_health();
    let app = TestApp::spawn_layered(
        settings(vec![shard(
            "s0",
            &db,
            "2024-01-01T00:00:00Z".parse().unwrap(),
        )]),
        Arc::new(ManualClock::at(t0())),
        layer,
    )
    .await;

    // Act: 300 concurrent /readyz.
    let answers =
        futures::future::join_all((0..300).map(|_| app.request(reqwest::Method::GET, "/readyz")))
            .await;

    // Assert: every one answered ready; the shard was asked once (twice if the flood
    // straddled the reuse window); a check after the window asks again.
    assert!(answers.iter().all(|r| r.status() == StatusCode::OK));
    let during = checks.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&during),
        "{during} checks for 300 requests"
    );
    tokio::time::sleep(READINESS_TTL + std::time::Duration::from_millis(100)).await;
    let r = app.request(reqwest::Method::GET, "/readyz").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(checks.load(Ordering::SeqCst), during + 1);
}
