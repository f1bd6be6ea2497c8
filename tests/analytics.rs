//! Click analytics end to end, on real PostgreSQL and Redis: exact counts in both queue
//! modes, a full queue, and the daily series at midnight. The stream's own behaviour
//! (redelivery, a worker dying, the producer) is in `click_stream.rs`.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{header, Method, StatusCode};
use serde_json::json;
use shortener::analytics::queue::QueueKind;
use shortener::cache::RedisSettings;
use shortener::config::Settings;
use shortener::domain::ManualClock;
use support::hooked::HookedClicks;
use support::{fresh_database, settings, shard, t0, TestApp};

const REDIS: &str = "redis://127.0.0.1:6379";

fn prefix() -> String {
    format!("test:{:016x}:", rand::random::<u64>())
}

async fn one_shard(kind: QueueKind) -> Settings {
    let db = fresh_database().await;
    let mut s = settings(vec![shard(
        "s0",
        &db,
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )]);
    s.analytics.flush_interval_ms = std::time::Duration::from_millis(50);
    s.queue.kind = kind;
    if kind == QueueKind::Redis {
        s.redis = Some(RedisSettings {
            url: REDIS.into(),
            key_prefix: prefix(),
            ..RedisSettings::default()
        });
    }
    s
}

const AGENTS: [(&str, bool); 5] = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", false),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", false),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1", false),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", true),
    ("curl/8.5.0", true),
];

async fn counts_are_exact_after_n_redirects(kind: QueueKind) {
    let app = TestApp::spawn(one_shard(kind).await, Arc::new(ManualClock::at(t0()))).await;
    let code = app.shorten_ok(json!({"url": "https://example.com/"})).await["code"]
        .as_str()
        .unwrap()
        .to_owned();

    for round in 0..10 {
        for (ua, _) in AGENTS {
            let mut request = app
                .client
                .get(format!("{}/{code}", app.address))
                .header(header::USER_AGENT, ua);
            if round < 8 {
                request = request.header(header::REFERER, "https://News.Example.com/story?id=1");
            }
            assert_eq!(request.send().await.unwrap().status(), StatusCode::FOUND);
        }
    }

    let s = app.stats_when(&code, "", 50).await;
    assert_eq!(
        (s["humans"].as_i64(), s["bots"].as_i64()),
        (Some(30), Some(20)),
        "{s}"
    );
    assert_eq!(
        s["daily"].as_array().unwrap().len(),
        30,
        "the default range is 30 days"
    );
    assert_eq!(
        s["daily"][29],
        json!({"day": "2026-06-01", "total": 50, "bots": 20, "visitors": 3}),
        "one client address, three human user agents: three visitors"
    );
    assert_eq!(
        s["referrers"][0],
        json!({"value": "news.example.com", "total": 40})
    );
    assert_eq!(s["referrers"][1], json!({"value": "(direct)", "total": 10}));
    let browsers: Vec<&str> = s["browsers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["value"].as_str().unwrap())
        .collect();
    assert!(
        browsers.contains(&"Chrome")
            && browsers.contains(&"Firefox")
            && browsers.contains(&"Googlebot"),
        "{browsers:?}"
    );
    // Nothing more arrives later: exactly N.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.stats(&code, "").await["total"], 50);
}

#[tokio::test]
async fn counts_are_exact_after_n_redirects_through_the_in_process_queue() {
    counts_are_exact_after_n_redirects(QueueKind::Memory).await;
}

#[tokio::test]
async fn counts_are_exact_after_n_redirects_through_redis_streams() {
    counts_are_exact_after_n_redirects(QueueKind::Redis).await;
}

#[tokio::test]
async fn the_daily_series_splits_at_utc_midnight() {
    let clock = Arc::new(ManualClock::at("2026-06-01T23:59:59Z".parse().unwrap()));
    let app = TestApp::spawn(one_shard(QueueKind::Memory).await, clock.clone()).await;
    let code = app.shorten_ok(json!({"url": "https://example.com/"})).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..3 {
        app.follow(&code).await;
    }
    clock.advance_ms(2_000);
    for _ in 0..2 {
        app.follow(&code).await;
    }

    let s = app
        .stats_when(&code, "?from=2026-05-31&to=2026-06-03", 5)
        .await;
    let series: Vec<(String, i64)> = s["daily"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["day"].as_str().unwrap().to_owned(),
                d["total"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        series,
        vec![
            ("2026-05-31".into(), 0),
            ("2026-06-01".into(), 3),
            ("2026-06-02".into(), 2),
            ("2026-06-03".into(), 0)
        ]
    );
}

#[tokio::test]
async fn a_deleted_links_stats_answer_410_like_the_link_itself() {
    let app = TestApp::spawn(
        one_shard(QueueKind::Memory).await,
        Arc::new(ManualClock::at(t0())),
    )
    .await;
    let code = app.shorten_ok(json!({"url": "https://example.com/"})).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.stats(&code, "").await["total"], 0);
    let r = app
        .request(Method::DELETE, &format!("/api/v1/links/{code}"))
        .await;
    assert!(r.status().is_success());
    for path in [
        format!("/api/v1/links/{code}"),
        format!("/api/v1/links/{code}/stats"),
    ] {
        let r = app.request(Method::GET, &path).await;
        assert_eq!(r.status(), StatusCode::GONE, "{path}");
        assert_eq!(support::error_code(r).await, "link_deleted", "{path}");
    }
}

#[tokio::test]
async fn stats_refuse_bad_ranges_and_unknown_links() {
    let app = TestApp::spawn(
        one_shard(QueueKind::Memory).await,
        Arc::new(ManualClock::at(t0())),
    )
    .await;
    let code = app.shorten_ok(json!({"url": "https://example.com/"})).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    for (query, why) in [
        ("?from=2026-06-02&to=2026-06-01", "from after to"),
        ("?from=yesterday", "not a date"),
        ("?from=2024-01-01&to=2026-06-01", "over a year"),
        (
            "?from=-9999-01-01&to=-9999-01-02",
            "a year no database holds",
        ),
        ("?from=+10000-01-01&to=+10000-01-02", "past the year 9999"),
        ("?colour=red", "unknown parameter"),
    ] {
        let r = app
            .request(Method::GET, &format!("/api/v1/links/{code}/stats{query}"))
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{why}");
        assert_eq!(support::error_code(r).await, "invalid_range", "{why}");
    }
    let r = app
        .request(Method::GET, "/api/v1/links/no-such-link/stats")
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_full_in_process_queue_drops_and_counts_while_redirects_keep_answering() {
    let mut s = one_shard(QueueKind::Memory).await;
    s.queue.capacity = 5;
    s.analytics.batch_size = 1;
    let (layer, gate) = HookedClicks::gated();
    let app = TestApp::spawn_click_layered(s, Arc::new(ManualClock::at(t0())), layer).await;
    let code = app.shorten_ok(json!({"url": "https://example.com/"})).await["code"]
        .as_str()
        .unwrap()
        .to_owned();

    for _ in 0..100 {
        assert_eq!(app.follow(&code).await.status(), StatusCode::FOUND);
    }

    let queue = app.app.clicks.queue().cloned().unwrap();
    let (enqueued, dropped) = (
        queue.stats().enqueued.load(Ordering::Relaxed),
        queue.stats().dropped.load(Ordering::Relaxed),
    );
    assert_eq!(enqueued + dropped, 100);
    assert!(
        enqueued <= 6,
        "the stuck worker holds one, the queue five: {enqueued}"
    );
    assert!(dropped >= 94, "{dropped}");

    // The database comes back: what was queued is counted, nothing more.
    gate.add_permits(1_000);
    let s = app.stats_when(&code, "", enqueued as i64).await;
    assert_eq!(s["total"].as_u64(), Some(enqueued));
}

#[tokio::test]
async fn two_instances_sharing_a_worker_id_lose_no_click_to_each_other() {
    for kind in [QueueKind::Memory, QueueKind::Redis] {
        // Arrange: two instances with one worker ID on one shard (and one stream), whose
        // clocks then stand at the same millisecond: both mint the same event IDs.
        let mut s = one_shard(kind).await;
        // Leases would refuse the second instance: this is the unchecked mode.
        s.ids.lease = false;
        s.worker_id = Some(1);
        let (ca, cb) = (
            Arc::new(ManualClock::at(t0())),
            Arc::new(ManualClock::at(t0() + chrono::Duration::seconds(1))),
        );
        let a = TestApp::spawn(s.clone(), ca.clone()).await;
        let b = TestApp::spawn(s, cb.clone()).await;
        let la = a.shorten_ok(json!({"url": "https://example.com/a"})).await;
        let lb = b.shorten_ok(json!({"url": "https://example.com/b"})).await;
        let both = u64::try_from((t0() + chrono::Duration::seconds(2)).timestamp_millis()).unwrap();
        ca.set_ms(both);
        cb.set_ms(both);

        // Act: ten clicks on each, with the same ten event IDs.
        let (ca_code, cb_code) = (la["code"].as_str().unwrap(), lb["code"].as_str().unwrap());
        for _ in 0..10 {
            assert_eq!(a.follow(ca_code).await.status(), StatusCode::FOUND);
            assert_eq!(b.follow(cb_code).await.status(), StatusCode::FOUND);
        }

        // Assert: every click counted, none taken for the other instance's duplicate.
        a.stats_when(ca_code, "", 10).await;
        b.stats_when(cb_code, "", 10).await;
    }
}
