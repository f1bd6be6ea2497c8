//! Where clicks come from, end to end on real PostgreSQL and Redis: the client behind a
//! trusted proxy, countries and cities from a location database (reloaded when its file
//! changes) or a CDN's header, unique visitors across flushes and instances, campaigns,
//! and unknown codes sent to `links.not_found_url` for browsers.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use shortener::cache::RedisSettings;
use shortener::config::Settings;
use shortener::domain::ManualClock;
use support::mmdb::{self, Network, Shape};
use support::{error_code, fresh_database, metric_value, settings, shard, t0, TestApp};

const REDIS: &str = "redis://127.0.0.1:6379";

/// 203.0.113.0/24 is Paris (GeoLite2's shape), 198.51.100.0/24 Germany
/// (ip-location-db's shape, no city); 127.0.0.1 is nowhere.
fn write_db(path: &Path, first_country: &str) {
    mmdb::write(
        path,
        &[
            Network {
                cidr: "203.0.113.0/24",
                country: first_country,
                city: Some("Paris"),
                shape: Shape::GeoLite2,
            },
            Network {
                cidr: "198.51.100.0/24",
                country: "DE",
                city: None,
                shape: Shape::IpLocationDb,
            },
        ],
    );
}

/// One shard, clicks flushed every 50 ms, the database at `db` if any, and 127.0.0.1
/// trusted as a proxy when `trusted`.
async fn geo_settings(db: Option<&Path>, trusted: bool) -> Settings {
    let url = fresh_database().await;
    let mut s = settings(vec![shard(
        "s0",
        &url,
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )]);
    s.analytics.flush_interval_ms = std::time::Duration::from_millis(50);
    s.geo.database = db.map(Path::to_owned);
    s.geo.reload_check_s = std::time::Duration::from_secs(1);
    if trusted {
        s.limits.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    }
    s
}

/// An app placing clicks with a database at `dir/countries.mmdb` (France first), behind
/// 127.0.0.1 as a trusted proxy.
async fn app_with_db(dir: &Path) -> TestApp {
    let db = dir.join("countries.mmdb");
    write_db(&db, "FR");
    TestApp::spawn(
        geo_settings(Some(&db), true).await,
        Arc::new(ManualClock::at(t0())),
    )
    .await
}

async fn link(app: &TestApp) -> String {
    app.shorten_ok(json!({"url": "https://example.com/"})).await["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A redirect of `code` (with `path_tail` after it) with these headers, as Firefox.
async fn click(app: &TestApp, code: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = app.client.get(format!("{}/{code}", app.address)).header(
        header::USER_AGENT,
        "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    );
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

fn counts(list: &Value) -> Vec<(String, i64)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["value"].as_str().unwrap().to_owned(),
                c["total"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn named(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(v, n)| ((*v).to_owned(), *n)).collect()
}

#[tokio::test]
async fn a_forwarded_client_through_a_trusted_proxy_is_placed_and_a_cdn_header_wins() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_db(dir.path()).await;
    let code = link(&app).await;

    let clicks: &[&[(&str, &str)]] = &[
        &[("x-forwarded-for", "203.0.113.7")],
        // The client's own claim on the left is not believed: the proxy's hop is.
        &[("x-forwarded-for", "203.0.113.9, 198.51.100.20")],
        &[("x-forwarded-for", "203.0.113.7"), ("cf-ipcountry", "JP")],
        &[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-vercel-ip-country", "BR"),
            ("x-vercel-ip-city", "S%C3%A3o%20Paulo"),
        ],
        // The proxy itself, in no network of the database.
        &[],
    ];
    for headers in clicks {
        assert_eq!(
            click(&app, &code, headers).await.status(),
            StatusCode::FOUND
        );
    }
    let s = app.stats_when(&code, "", 5).await;
    assert_eq!(
        counts(&s["countries"]),
        named(&[("(unknown)", 1), ("BR", 1), ("DE", 1), ("FR", 1), ("JP", 1)]),
        "{s}"
    );
    assert_eq!(
        counts(&s["cities"]),
        named(&[("Paris, FR", 1), ("São Paulo, BR", 1)])
    );
    assert_eq!(s["visitors"], 4, "four addresses with one browser: {s}");
}

#[tokio::test]
async fn forwarding_and_cdn_headers_from_an_untrusted_peer_mean_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("countries.mmdb");
    write_db(&db, "FR");
    let mut s = geo_settings(Some(&db), false).await;
    // A quota of one redirect: the forged address must not buy a second one.
    s.limits.enabled = true;
    s.limits.redirect_per_second = 1;
    s.limits.redirect_burst = 1;
    let app = TestApp::spawn(s, Arc::new(ManualClock::at(t0()))).await;
    let code = link(&app).await;
    let forged = [
        ("x-forwarded-for", "203.0.113.7"),
        ("forwarded", "for=198.51.100.1"),
        ("cf-ipcountry", "JP"),
    ];
    assert_eq!(
        click(&app, &code, &forged).await.status(),
        StatusCode::FOUND
    );
    let forged2 = [("x-forwarded-for", "203.0.113.99")];
    assert_eq!(
        click(&app, &code, &forged2).await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the limit key is the peer"
    );
    let s = app.stats_when(&code, "", 1).await;
    assert_eq!(counts(&s["countries"]), named(&[("(unknown)", 1)]), "{s}");
    assert_eq!(s["cities"], json!([]));
}

#[tokio::test]
async fn a_changed_database_file_is_picked_up_and_a_broken_one_keeps_the_old_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("countries.mmdb");
    let app = app_with_db(dir.path()).await;
    let code = link(&app).await;
    let from = [("x-forwarded-for", "203.0.113.7")];
    click(&app, &code, &from).await;
    app.stats_when(&code, "", 1).await;

    write_db(&db, "IT");
    // Clicks until one is placed in Italy (the file is checked every second).
    let started = Instant::now();
    let mut total = 1;
    loop {
        click(&app, &code, &from).await;
        total += 1;
        let s = app.stats_when(&code, "", total).await;
        if counts(&s["countries"]).iter().any(|(c, _)| c == "IT") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never reloaded: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A file that no longer reads: the loaded data stays.
    std::fs::write(&db, b"not a database").unwrap();
    let started = Instant::now();
    loop {
        let m = app.metrics().await;
        if metric_value(&m, "shortener_geo_reloads_total{result=\"failed\"}") >= 1 {
            assert!(metric_value(&m, "shortener_geo_reloads_total{result=\"ok\"}") >= 1);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no failed reload seen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = counts(&app.stats_when(&code, "", total).await["countries"]);
    let italy = before.iter().find(|(c, _)| c == "IT").unwrap().1;
    click(&app, &code, &from).await;
    let after = counts(&app.stats_when(&code, "", total + 1).await["countries"]);
    assert_eq!(after.iter().find(|(c, _)| c == "IT").unwrap().1, italy + 1);
}

#[tokio::test]
async fn a_visitor_counts_once_a_day_across_flushes_and_two_instances() {
    // Two instances on one database and one Redis (which shares the day's salt).
    let url = fresh_database().await;
    let prefix = format!("test:{:016x}:", rand::random::<u64>());
    let make = || {
        let mut s = settings(vec![shard(
            "s0",
            &url,
            "2024-01-01T00:00:00Z".parse().unwrap(),
        )]);
        s.analytics.flush_interval_ms = std::time::Duration::from_millis(50);
        s.limits.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.redis = Some(RedisSettings {
            url: REDIS.into(),
            key_prefix: prefix.clone(),
            ..RedisSettings::default()
        });
        s
    };
    let a = TestApp::spawn(make(), Arc::new(ManualClock::at(t0()))).await;
    let mut s_b = make();
    s_b.worker_id = Some(2);
    let b = TestApp::spawn(s_b, Arc::new(ManualClock::at(t0()))).await;
    let code = link(&a).await;
    let x = [("x-forwarded-for", "203.0.113.7")];
    let y = [("x-forwarded-for", "198.51.100.8")];

    click(&a, &code, &x).await;
    click(&a, &code, &x).await;
    a.stats_when(&code, "", 2).await;
    // Another flush, and the other instance.
    click(&a, &code, &x).await;
    click(&b, &code, &x).await;
    click(&b, &code, &y).await;
    // A bot is no visitor.
    b.client
        .get(format!("{}/{code}", b.address))
        .header(header::USER_AGENT, "curl/8.5.0")
        .header("x-forwarded-for", "192.0.2.1")
        .send()
        .await
        .unwrap();
    let s = a.stats_when(&code, "", 6).await;
    assert_eq!(
        (s["visitors"].as_i64(), s["humans"].as_i64()),
        (Some(2), Some(5)),
        "{s}"
    );
    assert_eq!(s["daily"][29]["visitors"], 2);
}

#[tokio::test]
async fn campaign_parameters_of_the_short_url_are_counted() {
    let app = TestApp::spawn(
        geo_settings(None, false).await,
        Arc::new(ManualClock::at(t0())),
    )
    .await;
    let code = link(&app).await;
    for query in [
        "?utm_source=newsletter&utm_medium=email&utm_campaign=launch",
        "?utm_source=newsletter&utm_campaign=launch",
        "?utm_source=twitter",
        "?ref=nothing",
        "",
    ] {
        let r = click(&app, &format!("{code}{query}"), &[]).await;
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(
            r.headers()[header::LOCATION],
            "https://example.com/",
            "the target is unchanged"
        );
    }
    let s = app.stats_when(&code, "", 5).await;
    assert_eq!(
        counts(&s["utm_sources"]),
        named(&[("newsletter", 2), ("twitter", 1)])
    );
    assert_eq!(counts(&s["utm_mediums"]), named(&[("email", 1)]));
    assert_eq!(counts(&s["utm_campaigns"]), named(&[("launch", 2)]));
    assert_eq!(
        counts(&s["countries"]),
        named(&[("(unknown)", 5)]),
        "no database, no header"
    );
}

#[tokio::test]
async fn a_browser_asking_for_a_code_that_leads_nowhere_goes_to_not_found_url_and_curl_gets_json() {
    let mut s = geo_settings(None, false).await;
    s.links.not_found_url = Some("https://example.com/not-found".parse().unwrap());
    let app = TestApp::spawn(s, Arc::new(ManualClock::at(t0()))).await;
    let browser = [("accept", "text/html,application/xhtml+xml,*/*;q=0.8")];

    let r = click(&app, "nosuchcode", &browser).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        r.headers()[header::LOCATION],
        "https://example.com/not-found"
    );
    let r = click(&app, "nosuchcode", &[("accept", "*/*")]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "not_found");

    let code = link(&app).await;
    let r = app
        .request(Method::DELETE, &format!("/api/v1/links/{code}"))
        .await;
    assert!(r.status().is_success());
    let r = click(&app, &code, &browser).await;
    assert_eq!(r.status(), StatusCode::FOUND, "a deleted link too");
    let r = click(&app, &code, &[]).await;
    assert_eq!(r.status(), StatusCode::GONE);

    let m = app.metrics().await;
    assert_eq!(
        metric_value(&m, "shortener_orphan_visits_total{kind=\"unknown\"}"),
        2
    );
    assert_eq!(
        metric_value(&m, "shortener_orphan_visits_total{kind=\"deleted\"}"),
        2
    );
    assert_eq!(
        metric_value(&m, "shortener_orphan_visits_total{kind=\"expired\"}"),
        0
    );
}
