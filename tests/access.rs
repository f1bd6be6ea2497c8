//! Tenants and API keys over real HTTP: isolation, revocation, anonymous use, listing.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use shortener::domain::ManualClock;
use support::{error_code, fresh_database, settings, shard, t0, TestApp};

async fn two_shards() -> TestApp {
    let (s0, s1) = (fresh_database().await, fresh_database().await);
    TestApp::spawn(
        settings(vec![
            shard("s0", &s0, "2024-01-01T00:00:00Z".parse().unwrap()),
            shard("s1", &s1, t0() + chrono::Duration::seconds(5)),
        ]),
        Arc::new(ManualClock::at(t0())),
    )
    .await
}

async fn status_as(app: &TestApp, key: Option<&str>, method: Method, path: &str) -> StatusCode {
    app.request_as(key, method, path).await.status()
}

#[tokio::test]
async fn a_tenant_cannot_get_list_delete_or_read_stats_of_another_tenants_link() {
    let app = two_shards().await;
    let (a, b) = (app.key_for("tenant-a").await, app.key_for("tenant-b").await);
    let generated = app
        .shorten_as(Some(&a), json!({"url": "https://example.com/a"}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let aliased = app
        .shorten_as(
            Some(&a),
            json!({"url": "https://example.com/a2", "alias": "a-only"}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();

    for link in [&generated, &aliased] {
        let code = link["code"].as_str().unwrap();
        let resource = format!("/api/v1/links/{code}");
        let stats = format!("{resource}/stats");
        // B, and a caller without a key, learn nothing: the same 404 as an unknown code.
        for (method, path) in [
            (Method::GET, &resource),
            (Method::GET, &stats),
            (Method::DELETE, &resource),
        ] {
            let r = app.request_as(Some(&b), method.clone(), path).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "B: {method} {path}");
            assert_eq!(error_code(r).await, "not_found");
            let r = app.request_as(None, method.clone(), path).await;
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "none: {method} {path}"
            );
            assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
            assert_eq!(error_code(r).await, "authentication_required");
        }
        // A reads both, and the redirect stays public.
        assert_eq!(status_as(&app, Some(&a), Method::GET, &resource).await, 200);
        assert_eq!(status_as(&app, Some(&a), Method::GET, &stats).await, 200);
        assert_eq!(app.follow(code).await.status(), StatusCode::FOUND);
    }
    // B's listing is empty, A's holds both.
    let list_of = |key: String| {
        let app = &app;
        async move {
            let r = app
                .request_as(Some(&key), Method::GET, "/api/v1/links")
                .await;
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.unwrap()["links"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["code"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert!(list_of(b.clone()).await.is_empty());
    assert_eq!(
        list_of(a.clone()).await,
        vec![
            aliased["code"].as_str().unwrap().to_owned(),
            generated["code"].as_str().unwrap().to_owned()
        ]
    );
    // A deletes its own link; B's attempt above changed nothing.
    let resource = format!("/api/v1/links/{}", generated["code"].as_str().unwrap());
    assert_eq!(
        status_as(&app, Some(&a), Method::DELETE, &resource).await,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_revoked_key_gets_401_within_the_key_cache_lifetime_and_a_wrong_secret_at_once() {
    let db = fresh_database().await;
    let mut s = settings(vec![shard(
        "s0",
        &db,
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )]);
    s.auth.key_cache_ttl_s = Some(std::time::Duration::from_secs(1));
    let app = TestApp::spawn(s, Arc::new(ManualClock::at(t0()))).await;
    let key = app.key_for("soon-gone").await;
    let (id, secret) = shortener::auth::parse_token(&key).unwrap();
    assert_eq!(
        app.shorten_as(Some(&key), json!({"url": "https://example.com/"}))
            .await
            .status(),
        StatusCode::CREATED
    );

    // The right ID with another secret of the right shape.
    let forged = format!("shk_{id}_{}", secret.chars().rev().collect::<String>());
    let r = app
        .shorten_as(Some(&forged), json!({"url": "https://example.com/"}))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(r).await, "invalid_api_key");
    for bad in ["Basic abc", "Bearer", "Bearer shk_1_short"] {
        let r = support::client_with_key(None)
            .post(format!("{}/api/v1/links", app.address))
            .header(header::AUTHORIZATION, bad)
            .json(&json!({"url": "https://example.com/"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{bad}");
    }

    assert!(app
        .app
        .auth
        .directory()
        .revoke_key(id, chrono::Utc::now())
        .await
        .unwrap());
    let started = Instant::now();
    loop {
        let r = app
            .shorten_as(Some(&key), json!({"url": "https://example.com/"}))
            .await;
        if r.status() == StatusCode::UNAUTHORIZED {
            assert_eq!(error_code(r).await, "api_key_revoked");
            break;
        }
        assert_eq!(r.status(), StatusCode::CREATED);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still accepted after the cache lifetime"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn listing_merges_the_shards_newest_first_a_page_at_a_time() {
    let app = two_shards().await;
    let (a, b) = (app.key_for("lister").await, app.key_for("other").await);
    let mut mine = Vec::new();
    // Seven links of A on s0, then (past the boundary) six on s1, with B's in between
    // and one of A's deleted.
    for n in 0..13 {
        if n == 7 {
            app.clock.advance_ms(10_000);
        }
        let link: Value = app
            .shorten_as(
                Some(&a),
                json!({ "url": format!("https://example.com/{n}") }),
            )
            .await
            .json()
            .await
            .unwrap();
        mine.push(link["code"].as_str().unwrap().to_owned());
        app.shorten_as(Some(&b), json!({"url": "https://example.com/b"}))
            .await;
        app.clock.advance_ms(1);
    }
    let gone = mine.remove(3);
    assert_eq!(
        status_as(
            &app,
            Some(&a),
            Method::DELETE,
            &format!("/api/v1/links/{gone}")
        )
        .await,
        StatusCode::NO_CONTENT
    );
    mine.reverse();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/links?limit=5&cursor={c}"),
            None => "/api/v1/links?limit=5".to_owned(),
        };
        let page: Value = app
            .request_as(Some(&a), Method::GET, &path)
            .await
            .json()
            .await
            .unwrap();
        pages += 1;
        let links = page["links"].as_array().unwrap();
        assert!(links.len() <= 5);
        seen.extend(links.iter().map(|l| l["code"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 10, "the cursor does not advance");
    }
    assert_eq!(seen, mine, "every live link once, newest first");
    assert_eq!(pages, 3, "12 links in pages of 5");

    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=1001", "invalid_limit"),
        ("limit=x", "invalid_limit"),
        ("cursor=!!", "invalid_cursor"),
        ("colour=red", "invalid_query"),
    ] {
        let r = app
            .request_as(Some(&a), Method::GET, &format!("/api/v1/links?{query}"))
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(error_code(r).await, code, "{query}");
    }
}

#[tokio::test]
async fn anonymous_links_are_public_to_read_and_owned_by_nobody() {
    // The embedded mode allows anonymous shortening by default.
    let app = TestApp::embedded().await;
    let link: Value = app
        .shorten_as(None, json!({"url": "https://example.com/anon"}))
        .await
        .json()
        .await
        .unwrap();
    let code = link["code"].as_str().unwrap();
    let resource = format!("/api/v1/links/{code}");
    for key in [None, Some(app.key.as_str())] {
        assert_eq!(status_as(&app, key, Method::GET, &resource).await, 200);
        assert_eq!(
            status_as(&app, key, Method::GET, &format!("{resource}/stats")).await,
            200
        );
        let r = app.request_as(key, Method::DELETE, &resource).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(error_code(r).await, "link_has_no_owner");
    }
    let r = app.request_as(None, Method::GET, "/api/v1/links").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A tenant's link made in the same instance stays the tenant's.
    let own = app
        .shorten_ok(json!({"url": "https://example.com/own"}))
        .await;
    let own_resource = format!("/api/v1/links/{}", own["code"].as_str().unwrap());
    assert_eq!(status_as(&app, None, Method::GET, &own_resource).await, 404);
}

#[tokio::test]
async fn anonymous_shortening_is_a_switch_off_by_default_in_the_distributed_mode() {
    let app = TestApp::single().await;
    let r = app
        .shorten_as(None, json!({"url": "https://example.com/"}))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()[header::WWW_AUTHENTICATE],
        "Bearer realm=\"shortener\""
    );
    assert_eq!(error_code(r).await, "authentication_required");

    let db = fresh_database().await;
    let mut s = settings(vec![shard(
        "s0",
        &db,
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )]);
    s.auth.allow_anonymous = Some(true);
    let open = TestApp::spawn(s, Arc::new(ManualClock::at(t0()))).await;
    let r = open
        .shorten_as(None, json!({"url": "https://example.com/"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_key_has_one_spelling_and_one_authorization_header_counts() {
    let app = two_shards().await;
    let (id, secret) = app.key["shk_".len()..].split_once('_').unwrap();
    assert_eq!(
        status_as(&app, Some(&app.key), Method::GET, "/api/v1/links").await,
        StatusCode::OK,
        "the key as issued"
    );
    for spelling in [format!("shk_+{id}_{secret}"), format!("shk_0{id}_{secret}")] {
        assert_eq!(
            status_as(&app, Some(&spelling), Method::GET, "/api/v1/links").await,
            StatusCode::UNAUTHORIZED,
            "{spelling} names the same ID in another spelling"
        );
    }

    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/links", app.address))
        .header(header::AUTHORIZATION, format!("Bearer {}", app.key))
        .header(header::AUTHORIZATION, "Bearer shk_1_x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "duplicate_authorization");
}
