//! Editing a link (`PATCH /api/v1/links/{code}`) against real PostgreSQL and Redis: the
//! owner changes where it points, when it expires and how it redirects, with the rules
//! of creation, and every instance follows the change.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use shortener::domain::ManualClock;
use support::cache::{code, one_shard, redis_at};
use support::{client_with_key, error_code, t0, TestApp};

async fn patch(app: &TestApp, key: Option<&str>, code: &str, body: Value) -> reqwest::Response {
    client_with_key(key)
        .patch(format!("{}/api/v1/links/{code}", app.address))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_owner_retargets_a_link_and_every_instance_follows_at_once() {
    // Arrange: two instances on one shard and one Redis; both hold the link in L1.
    let settings = one_shard(Some(redis_at("redis://127.0.0.1:6379")), true).await;
    let clock = Arc::new(ManualClock::at(t0()));
    let a = TestApp::spawn(settings.clone(), clock.clone()).await;
    let b = TestApp::spawn(settings, clock).await;
    let link = a
        .shorten_ok(json!({"url": "https://example.com/old"}))
        .await;
    let code = code(&link);
    for app in [&a, &b] {
        assert_eq!(
            app.follow(&code).await.headers()[header::LOCATION],
            "https://example.com/old"
        );
    }

    // Act
    let r = patch(
        &a,
        Some(&a.key),
        &code,
        json!({"url": "https://example.com/new"}),
    )
    .await;

    // Assert: the new link comes back, and both instances redirect to it (the other one
    // through the invalidation Redis carries).
    assert_eq!(r.status(), StatusCode::OK);
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["url"], "https://example.com/new");
    assert_eq!(view["code"], code.as_str(), "the code stays");
    for app in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let r = app.follow(&code).await;
            if r.headers()[header::LOCATION] == "https://example.com/new" {
                break;
            }
            assert!(Instant::now() < deadline, "still the old target");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn an_edit_sets_or_clears_the_expiry_and_changes_the_redirect_kind() {
    let app = TestApp::single().await;
    let link = app
        .shorten_ok(json!({"url": "https://example.com/e", "expires_at": t0() + chrono::Duration::hours(1)}))
        .await;
    let code = code(&link);

    // 301, and no expiry any more.
    let r = patch(
        &app,
        Some(&app.key),
        &code,
        json!({"redirect": 301, "expires_at": null}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["redirect"], 301);
    assert_eq!(view["expires_at"], Value::Null);
    assert_eq!(view["url"], "https://example.com/e", "fields left out stay");
    app.clock.advance_ms(2 * 3_600_000);
    let r = app.follow(&code).await;
    assert_eq!(
        r.status(),
        StatusCode::MOVED_PERMANENTLY,
        "it no longer expires"
    );

    // An expiry again, which then passes.
    let at = t0() + chrono::Duration::hours(3);
    let r = patch(&app, Some(&app.key), &code, json!({"expires_at": at})).await;
    assert_eq!(r.status(), StatusCode::OK);
    app.clock.advance_ms(2 * 3_600_000);
    let r = app.follow(&code).await;
    assert_eq!(r.status(), StatusCode::GONE);
    assert_eq!(error_code(r).await, "link_expired");

    // The stored link says the same as the answers did.
    let stored: Value = app
        .request(Method::GET, &format!("/api/v1/links/{code}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored["redirect"], 301);
    assert_eq!(stored["status"], "expired");
}

#[tokio::test]
async fn edits_follow_the_rules_of_creation_and_of_ownership() {
    // Arrange: a link of tenant "test", one of tenant "other", one made anonymously,
    // and one deleted.
    let mut s = support::settings(vec![support::shard(
        "s0",
        &support::fresh_database().await,
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )]);
    s.auth.allow_anonymous = Some(true);
    let app = TestApp::spawn(s, Arc::new(ManualClock::at(t0()))).await;
    let mine = code(
        &app.shorten_ok(json!({"url": "https://example.com/m"}))
            .await,
    );
    let other_key = app.key_for("other").await;
    let theirs: Value = app
        .shorten_as(Some(&other_key), json!({"url": "https://example.com/t"}))
        .await
        .json()
        .await
        .unwrap();
    let anonymous: Value = app
        .shorten_as(None, json!({"url": "https://example.com/a"}))
        .await
        .json()
        .await
        .unwrap();
    let gone = code(
        &app.shorten_ok(json!({"url": "https://example.com/g"}))
            .await,
    );
    app.request(Method::DELETE, &format!("/api/v1/links/{gone}"))
        .await;

    let key = Some(app.key.as_str());
    let cases: Vec<(&str, Option<&str>, Value, StatusCode, &str)> = vec![
        (
            &mine,
            key,
            json!({"url": "ftp://example.com/"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_scheme",
        ),
        (
            &mine,
            key,
            json!({"url": "http://localhost/"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "url_local_target",
        ),
        (
            &mine,
            key,
            json!({"url": "http://sho.rt/x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "url_points_to_shortener",
        ),
        (
            &mine,
            key,
            json!({"expires_at": t0() - chrono::Duration::seconds(1)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expires_in_past",
        ),
        (
            &mine,
            key,
            json!({"redirect": 307}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_redirect",
        ),
        (
            &mine,
            key,
            json!({"alias": "new-name"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        // A body that changes nothing is refused, not answered 200.
        (
            &mine,
            key,
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_changes",
        ),
        (
            &mine,
            key,
            json!([]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_changes",
        ),
        // A link always has a target and a redirect kind: null cannot clear them.
        (
            &mine,
            key,
            json!({"url": null}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            &mine,
            key,
            json!({"redirect": null, "url": "https://example.com/x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            &mine,
            None,
            json!({"url": "https://example.com/x"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &mine,
            Some("shk_1_wrong"),
            json!({"url": "https://example.com/x"}),
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        ),
        (
            theirs["code"].as_str().unwrap(),
            key,
            json!({"url": "https://example.com/x"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            anonymous["code"].as_str().unwrap(),
            key,
            json!({"url": "https://example.com/x"}),
            StatusCode::FORBIDDEN,
            "link_has_no_owner",
        ),
        (
            &gone,
            key,
            json!({"url": "https://example.com/x"}),
            StatusCode::GONE,
            "link_deleted",
        ),
        (
            "no-such-link",
            key,
            json!({"url": "https://example.com/x"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (code, key, body, status, error) in cases {
        let r = patch(&app, key, code, body.clone()).await;
        assert_eq!(r.status(), status, "{code} {body}");
        assert_eq!(error_code(r).await, error, "{code} {body}");
    }
    // Nothing changed: the link still goes where it went.
    let r = app.follow(&mine).await;
    assert_eq!(r.headers()[header::LOCATION], "https://example.com/m");
}
