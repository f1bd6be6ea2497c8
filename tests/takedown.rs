//! Links that must stop redirecting after they were made: an operator's takedown
//! (`shortener links disable|enable`) and a domain blocked since, against real
//! PostgreSQL and Redis, with two instances that both cached the link.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use shortener::commands::set_link_disabled;
use shortener::domain::ManualClock;
use support::cache::{code, one_shard, redis_at};
use support::{error_code, t0, TestApp};

const REDIS: &str = "redis://127.0.0.1:6379";

/// Follows `code` on `app` until it answers `status` (invalidations travel through
/// Redis), for at most two seconds; returns the last answer's error code, if any.
async fn answers(app: &TestApp, code: &str, status: StatusCode) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let r = app.follow(code).await;
        if r.status() == status {
            return if status.is_success() || status.is_redirection() {
                None
            } else {
                Some(error_code(r).await)
            };
        }
        assert!(
            Instant::now() < deadline,
            "{code} still answers {} instead of {status}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_takedown_answers_410_on_every_instance_until_the_link_is_enabled_again() {
    // Arrange: two instances on one shard and one Redis; both hold the link in L1.
    let settings = one_shard(Some(redis_at(REDIS)), true).await;
    let clock = Arc::new(ManualClock::at(t0()));
    let a = TestApp::spawn(settings.clone(), clock.clone()).await;
    let b = TestApp::spawn(settings.clone(), clock).await;
    let link = a
        .shorten_ok(json!({"url": "https://example.com/phish"}))
        .await;
    let other = a
        .shorten_ok(json!({"url": "https://example.com/fine"}))
        .await;
    let (code, other) = (code(&link), code(&other));
    for app in [&a, &b] {
        assert_eq!(app.follow(&code).await.status(), StatusCode::FOUND);
    }

    // Act: the operator's command, from a process of its own (its own store and Redis
    // connections, as `shortener links disable` has).
    let said = set_link_disabled(&settings, &code, true).await.unwrap();

    // Assert: both instances answer 410 link_disabled; the owner sees the state; other
    // links are untouched; doing it twice is harmless.
    assert!(said.contains("on every instance now"), "{said}");
    for app in [&a, &b] {
        let error = answers(app, &code, StatusCode::GONE).await;
        assert_eq!(error.as_deref(), Some("link_disabled"));
        assert_eq!(app.follow(&other).await.status(), StatusCode::FOUND);
    }
    let view: Value = a
        .request(reqwest::Method::GET, &format!("/api/v1/links/{code}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "disabled");
    let again = set_link_disabled(&settings, &code, true).await.unwrap();
    assert!(again.contains("was disabled already"), "{again}");

    // Act and assert: enabled again, it redirects everywhere.
    set_link_disabled(&settings, &code, false).await.unwrap();
    for app in [&a, &b] {
        answers(app, &code, StatusCode::FOUND).await;
    }

    // An unknown code is an error that says so.
    let err = set_link_disabled(&settings, "no-such-link", true)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no link has this code"), "{err}");
}

#[tokio::test]
async fn a_link_made_before_its_domain_was_blocked_answers_451() {
    // Arrange: a link to a domain nobody has blocked yet, cached in Redis by a first
    // instance.
    let settings = one_shard(Some(redis_at(REDIS)), true).await;
    let clock = Arc::new(ManualClock::at(t0()));
    let before = TestApp::spawn(settings.clone(), clock.clone()).await;
    let bad = before
        .shorten_ok(json!({"url": "https://cdn.Evil.example/login"}))
        .await;
    let good = before
        .shorten_ok(json!({"url": "https://example.com/ok"}))
        .await;
    assert_eq!(before.follow(&code(&bad)).await.status(), StatusCode::FOUND);

    // Act: an instance started with the domain on its blocklist (the Redis entry of the
    // link is still there, unscreened).
    let mut blocking = settings.clone();
    blocking.links.blocked_domains = vec!["evil.example".into()];
    let after = TestApp::spawn(blocking, clock).await;

    // Assert: 451 link_blocked, from L2 and then from L1 alike; other links redirect;
    // a new link to the domain is refused as before.
    for _ in 0..2 {
        let r = after.follow(&code(&bad)).await;
        assert_eq!(r.status(), StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
        assert_eq!(error_code(r).await, "link_blocked");
    }
    assert_eq!(after.follow(&code(&good)).await.status(), StatusCode::FOUND);
    let r = after
        .shorten(json!({"url": "https://evil.example/again"}))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(r).await, "url_blocked");
}
