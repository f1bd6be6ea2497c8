//! The HTTP API against real PostgreSQL: each test on databases of its own. Every bad
//! input and its error is in `bad_input.rs`.

mod support;

use std::sync::Arc;

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use shortener::domain::ManualClock;
use support::{connect, error_code, fresh_database, settings, shard, t0, TestApp};

async fn ids_on(url: &str) -> Vec<i64> {
    connect(url)
        .await
        .query("SELECT id FROM links ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn id_of(app: &TestApp, link: &Value) -> i64 {
    app.id_of_code(link["code"].as_str().unwrap()).as_i64()
}

#[tokio::test]
async fn links_on_either_side_of_a_range_boundary_land_on_their_own_shard_and_redirect() {
    // Arrange: s1 starts five seconds after the test clock.
    let (s0, s1) = (fresh_database().await, fresh_database().await);
    let boundary = t0() + chrono::Duration::seconds(5);
    let app = TestApp::spawn(
        settings(vec![
            shard("s0", &s0, "2024-01-01T00:00:00Z".parse().unwrap()),
            shard("s1", &s1, boundary),
        ]),
        Arc::new(ManualClock::at(t0())),
    )
    .await;

    // Act: one link before the boundary, one after.
    let before = app
        .shorten_ok(json!({"url": "https://example.com/before"}))
        .await;
    app.clock.advance_ms(10_000);
    let after = app
        .shorten_ok(json!({"url": "https://example.com/after"}))
        .await;

    // Assert: each row sits on the shard the map names, and each code redirects.
    assert_eq!(ids_on(&s0).await, vec![id_of(&app, &before)]);
    assert_eq!(ids_on(&s1).await, vec![id_of(&app, &after)]);
    for (link, target) in [
        (&before, "https://example.com/before"),
        (&after, "https://example.com/after"),
    ] {
        let response = app.follow(link["code"].as_str().unwrap()).await;
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(response.headers()[header::LOCATION], target);
    }
}

#[tokio::test]
async fn shorten_answers_201_with_the_link_and_its_location() {
    let app = TestApp::single().await;
    let response = app
        .shorten(json!({"url": "https://Example.com/path?q=1"}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let link: Value = response.json().await.unwrap();
    let code = link["code"].as_str().unwrap();
    assert!((10..=11).contains(&code.len()), "generated code {code}");
    assert_eq!(location, format!("/api/v1/links/{code}"));
    assert_eq!(link["short_url"], format!("http://sho.rt/{code}"));
    assert_eq!(link["url"], "https://example.com/path?q=1", "normalised");
    assert_eq!(link["redirect"], 302);
    assert_eq!(link["expires_at"], Value::Null);
    assert_eq!(link["created_at"], "2026-06-01T12:00:00Z");
    let fetched: Value = app
        .request(Method::GET, &location)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["url"], link["url"]);
    assert_eq!(fetched["status"], "active");
}

#[tokio::test]
async fn an_alias_redirects_and_a_second_claim_on_it_conflicts() {
    let app = TestApp::single().await;
    let link = app
        .shorten_ok(json!({"url": "https://example.com/sale", "alias": "spring-sale"}))
        .await;
    assert_eq!(link["code"], "spring-sale");
    assert_eq!(link["short_url"], "http://sho.rt/spring-sale");

    let response = app.follow("spring-sale").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()[header::LOCATION],
        "https://example.com/sale"
    );

    let again = app
        .shorten(json!({"url": "https://example.com/other", "alias": "spring-sale"}))
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(again).await, "alias_taken");
    // The first link is untouched.
    let response = app.follow("spring-sale").await;
    assert_eq!(
        response.headers()[header::LOCATION],
        "https://example.com/sale"
    );
}

#[tokio::test]
async fn an_aliased_link_is_not_reachable_by_its_generated_code() {
    let app = TestApp::single().await;
    app.shorten_ok(json!({"url": "https://example.com/", "alias": "only-alias"}))
        .await;
    let id: i64 = connect(&app.settings.shards[0].url)
        .await
        .query_one(
            "SELECT link_id FROM aliases WHERE alias = 'only-alias'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let code = app.code_of_id(shortener::domain::Snowflake::from_i64(id).unwrap());
    assert_eq!(app.follow(&code).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_expired_link_answers_410_but_can_still_be_read() {
    let app = TestApp::single().await;
    let expires = t0() + chrono::Duration::seconds(60);
    let link = app
        .shorten_ok(json!({"url": "https://example.com/", "expires_at": expires}))
        .await;
    let code = link["code"].as_str().unwrap();
    assert_eq!(app.follow(code).await.status(), StatusCode::FOUND);

    app.clock.advance_ms(61_000);
    let response = app.follow(code).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert_eq!(error_code(response).await, "link_expired");
    let fetched: Value = app
        .request(Method::GET, &format!("/api/v1/links/{code}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["status"], "expired");
}

#[tokio::test]
async fn a_deleted_link_answers_410_everywhere() {
    let app = TestApp::single().await;
    for body in [
        json!({"url": "https://example.com/a"}),
        json!({"url": "https://example.com/b", "alias": "gone-soon"}),
    ] {
        let link = app.shorten_ok(body).await;
        let code = link["code"].as_str().unwrap();
        let path = format!("/api/v1/links/{code}");

        let deleted = app.request(Method::DELETE, &path).await;
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

        let response = app.follow(code).await;
        assert_eq!(response.status(), StatusCode::GONE, "{code}");
        assert_eq!(error_code(response).await, "link_deleted");
        assert_eq!(
            app.request(Method::GET, &path).await.status(),
            StatusCode::GONE
        );
        assert_eq!(
            app.request(Method::DELETE, &path).await.status(),
            StatusCode::GONE
        );
    }
    // A deleted alias stays reserved.
    let reuse = app
        .shorten(json!({"url": "https://example.com/c", "alias": "gone-soon"}))
        .await;
    assert_eq!(reuse.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_permanent_link_answers_301_and_head_works_like_get() {
    let app = TestApp::single().await;
    let link = app
        .shorten_ok(json!({"url": "https://example.com/p", "redirect": 301}))
        .await;
    let code = link["code"].as_str().unwrap();
    assert_eq!(link["redirect"], 301);

    let response = app.follow(code).await;
    assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        response.headers()[header::LOCATION],
        "https://example.com/p"
    );
    assert_eq!(
        response.headers()[header::CACHE_CONTROL],
        "public, max-age=86400"
    );

    let head = app.request(Method::HEAD, &format!("/{code}")).await;
    assert_eq!(head.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(head.headers()[header::LOCATION], "https://example.com/p");
}

#[tokio::test]
async fn unknown_codes_and_paths_answer_404_as_json() {
    let app = TestApp::single().await;
    let unknown_generated = app.code_of_id(shortener::domain::Snowflake::from_parts(
        80_000_000_000,
        1,
        1,
    ));
    for path in [
        format!("/{unknown_generated}"),
        "/no-such-alias".to_owned(),
        "/0000000000".to_owned(),
        "/%E2%9C%93".to_owned(),
        "/api/v1/nothing".to_owned(),
        "/api/v1/links/no-such-alias".to_owned(),
    ] {
        let response = app.request(Method::GET, &path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error_code(response).await, "not_found", "{path}");
    }
    let response = app.request(Method::PUT, "/api/v1/links").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(response).await, "method_not_allowed");
}

#[tokio::test]
async fn readiness_reports_every_shard() {
    let (s0, s1) = (fresh_database().await, fresh_database().await);
    let app = TestApp::spawn(
        settings(vec![
            shard("s0", &s0, "2024-01-01T00:00:00Z".parse().unwrap()),
            shard("s1", &s1, "2027-01-01T00:00:00Z".parse().unwrap()),
        ]),
        Arc::new(ManualClock::at(t0())),
    )
    .await;
    let response = app.request(Method::GET, "/readyz").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let names: Vec<_> = body["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, vec!["s0", "s1"]);
    assert_eq!(
        app.request(Method::GET, "/healthz").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_blocklisted_domain_and_its_subdomains_are_refused() {
    let db = fresh_database().await;
    let mut s = settings(vec![shard(
        "s0",
        &db,
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )]);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, b"# from the abuse desk\nphish.test\n").unwrap();
    s.links.blocklist_file = Some(file.path().to_owned());
    s.links.blocked_domains = vec!["Malware.Example".into()];
    let app = TestApp::spawn(s, Arc::new(ManualClock::at(t0()))).await;

    for url in [
        "https://phish.test/login",
        "https://secure.phish.test/login",
        "http://malware.example/x",
        "http://cdn.MALWARE.example./x",
    ] {
        let r = app.shorten(json!({ "url": url })).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        assert_eq!(error_code(r).await, "url_blocked", "{url}");
    }
    app.shorten_ok(json!({"url": "https://notphish.test/"}))
        .await;
}

#[tokio::test]
async fn configured_hosts_match_targets_however_either_is_written() {
    let db = fresh_database().await;
    let mut s = settings(vec![shard(
        "s0",
        &db,
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )]);
    s.public_url = Some("https://Sho.RT:8443/".parse().unwrap());
    s.links.own_hosts = vec!["Go.Example.:443".into()];
    s.links.blocked_domains = vec!["Bücher.example".into(), "[::ffff:198.51.100.7]".into()];
    let app = TestApp::spawn(s.clone(), Arc::new(ManualClock::at(t0()))).await;

    for (url, code) in [
        ("https://sho.rt/x", "url_points_to_shortener"),
        ("http://SHO.RT.:80/x", "url_points_to_shortener"),
        ("https://go.example/x", "url_points_to_shortener"),
        ("http://xn--bcher-kva.example/", "url_blocked"),
        ("http://shop.BÜCHER.example/", "url_blocked"),
        ("http://198.51.100.7/", "url_blocked"),
    ] {
        let r = app.shorten(json!({ "url": url })).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        assert_eq!(error_code(r).await, code, "{url}");
    }

    // An entry that can never match a host stops startup instead of protecting nothing.
    s.links.blocked_domains = vec!["https://evil.example/path".into()];
    let err = TestApp::try_spawn(s, Arc::new(ManualClock::at(t0())))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("links.blocked_domains"), "{err}");
}

#[tokio::test]
async fn two_instances_sharing_a_worker_id_never_answer_500_and_say_so() {
    // Arrange: two instances on one shard with the same worker ID and the same
    // (stopped) clock, so the second mints exactly the ID the first used.
    let db = fresh_database().await;
    let mut s = settings(vec![shard(
        "s0",
        &db,
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )]);
    // Leases would refuse the second instance: this is the unchecked mode.
    s.ids.lease = false;
    s.worker_id = Some(1);
    let clock = Arc::new(ManualClock::at(t0()));
    let first = TestApp::spawn(s.clone(), clock.clone()).await;
    let second = TestApp::spawn(s, clock).await;

    // Act
    let a = first
        .shorten_ok(json!({"url": "https://example.com/a"}))
        .await;
    let r = second
        .shorten_as(Some(&second.key), json!({"url": "https://example.com/b"}))
        .await;

    // Assert: the second got a fresh ID instead of a 500, both links resolve to their
    // own targets, and the collision is counted where an operator will see it.
    assert_eq!(r.status(), StatusCode::CREATED);
    let b: Value = r.json().await.unwrap();
    assert_ne!(id_of(&first, &a), id_of(&first, &b));
    for (link, url) in [(&a, "https://example.com/a"), (&b, "https://example.com/b")] {
        let r = first.follow(link["code"].as_str().unwrap()).await;
        assert_eq!(r.headers()[header::LOCATION], url);
    }
    let metrics = second.metrics().await;
    assert!(
        metrics.contains("shortener_id_duplicates_total 1"),
        "{metrics}"
    );
}
