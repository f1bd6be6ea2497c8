//! Rate limits over real HTTP.

mod support;

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use shortener::domain::ManualClock;
use support::{error_code, fresh_database, settings, shard, t0, TestApp};

async fn limited_app(trusted: Vec<String>) -> TestApp {
    let db = fresh_database().await;
    let mut s = settings(vec![shard(
        "s0",
        &db,
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )]);
    s.limits.enabled = true;
    s.limits.shorten_per_minute = 60; // one a second
    s.limits.shorten_burst = 2;
    s.limits.redirect_per_second = 1;
    s.limits.redirect_burst = 3;
    s.limits.trusted_proxies = trusted.iter().map(|t| t.parse().unwrap()).collect();
    s.limits.key_shorten_per_minute = 3;
    s.auth.allow_anonymous = Some(true);
    TestApp::spawn(s, Arc::new(ManualClock::at(t0()))).await
}

async fn shorten_anonymously(app: &TestApp, n: u32) -> reqwest::Response {
    app.shorten_as(None, json!({ "url": format!("https://example.com/{n}") }))
        .await
}

#[tokio::test]
async fn over_quota_answers_429_with_the_headers_and_is_served_again_after_the_window() {
    let app = limited_app(Vec::new()).await;
    for n in 1..=2 {
        assert_eq!(
            shorten_anonymously(&app, n).await.status(),
            StatusCode::CREATED
        );
    }

    let refused = shorten_anonymously(&app, 3).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let h = refused.headers().clone();
    assert_eq!(h["retry-after"], "1");
    assert_eq!(h["ratelimit-limit"], "2");
    assert_eq!(h["ratelimit-remaining"], "0");
    assert_eq!(h["ratelimit-reset"], "1");
    assert_eq!(error_code(refused).await, "rate_limited");

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        shorten_anonymously(&app, 4).await.status(),
        StatusCode::CREATED
    );

    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"shortener_rate_limited_total{class="shorten"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn each_api_key_has_its_own_shortening_quota_and_a_tenant_may_have_its_own() {
    let app = limited_app(Vec::new()).await;
    // The default key quota is 3 a minute: the client's address is not what counts.
    for n in 0..3 {
        app.shorten_ok(json!({ "url": format!("https://example.com/k{n}") }))
            .await;
    }
    let refused = app.shorten(json!({"url": "https://example.com/k3"})).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["ratelimit-limit"], "3");
    assert_eq!(refused.headers()["retry-after"], "20", "a minute / 3");

    // Another tenant's key from the same address has its own quota; a tenant with a
    // quota of its own gets that.
    let generous = shortener::auth::issue_key(app.app.auth.directory().as_ref(), "big", Some(10))
        .await
        .unwrap()
        .token;
    for n in 0..10 {
        let r = app
            .shorten_as(
                Some(&generous),
                json!({ "url": format!("https://example.com/g{n}") }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "{n}");
    }
    let refused = app
        .shorten_as(Some(&generous), json!({"url": "https://example.com/g10"}))
        .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["ratelimit-limit"], "10");
}

/// Creates a link and returns its code.
async fn one_link(app: &TestApp) -> String {
    app.shorten_ok(json!({"url": "https://example.com/"})).await["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn redirect_statuses(app: &TestApp, code: &str, forwarded_for: &[&str]) -> Vec<u16> {
    let mut out = Vec::new();
    for xff in forwarded_for {
        let r = app
            .client
            .get(format!("{}/{code}", app.address))
            .header("x-forwarded-for", *xff)
            .send()
            .await
            .unwrap();
        out.push(r.status().as_u16());
    }
    out
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_does_not_change_the_limit_key() {
    let app = limited_app(Vec::new()).await;
    let code = one_link(&app).await;
    let statuses = redirect_statuses(
        &app,
        &code,
        &[
            "198.51.100.1",
            "198.51.100.2",
            "198.51.100.3",
            "198.51.100.4",
        ],
    )
    .await;
    assert_eq!(
        statuses,
        vec![302, 302, 302, 429],
        "all four count against 127.0.0.1"
    );
}

#[tokio::test]
async fn a_trusted_proxy_forwards_the_client_address() {
    let app = limited_app(vec!["127.0.0.0/8".into()]).await;
    let code = one_link(&app).await;
    let distinct = redirect_statuses(
        &app,
        &code,
        &[
            "198.51.100.1",
            "198.51.100.2",
            "198.51.100.3",
            "198.51.100.4",
        ],
    )
    .await;
    assert_eq!(
        distinct,
        vec![302, 302, 302, 302],
        "four clients, one request each"
    );
    // The rightmost untrusted hop counts: a client cannot pick its own key by
    // prepending addresses.
    let same = redirect_statuses(
        &app,
        &code,
        &[
            "1.1.1.1, 203.0.113.9",
            "2.2.2.2, 203.0.113.9",
            "3.3.3.3, 203.0.113.9",
            "4.4.4.4, 203.0.113.9",
        ],
    )
    .await;
    assert_eq!(same, vec![302, 302, 302, 429]);
}

#[tokio::test]
async fn ipv6_clients_are_limited_per_slash_64_and_mapped_ipv4_as_ipv4() {
    let app = limited_app(vec!["127.0.0.0/8".into()]).await;
    let code = one_link(&app).await;
    // Four addresses of one /64: one quota (a burst of 3).
    let one_prefix = redirect_statuses(
        &app,
        &code,
        &[
            "2001:db8:1:2::1",
            "2001:db8:1:2::2",
            "2001:db8:1:2:ffff::3",
            "2001:db8:1:2:abcd:ef01:2345:6789",
        ],
    )
    .await;
    assert_eq!(one_prefix, vec![302, 302, 302, 429], "one /64, one quota");
    // The next /64 is another client.
    let next = redirect_statuses(&app, &code, &["2001:db8:1:3::1"]).await;
    assert_eq!(next, vec![302]);
    // An IPv4 client cannot double its quota by writing its address IPv4-mapped.
    let mapped = redirect_statuses(
        &app,
        &code,
        &[
            "198.51.100.7",
            "::ffff:198.51.100.7",
            "198.51.100.7",
            "::ffff:198.51.100.7",
        ],
    )
    .await;
    assert_eq!(
        mapped,
        vec![302, 302, 302, 429],
        "one client in two spellings"
    );
}
