//! The read-through cache against real PostgreSQL and Redis: each test on its own
//! databases and under its own Redis key prefix. Redis going away and coming back is
//! in `cache_outage.rs`.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{header, Method, StatusCode};
use serde_json::json;
use shortener::domain::{ManualClock, Snowflake};
use support::cache::{code, counted, one_shard, redis_at};
use support::{t0, TestApp};

async fn redis_cmd(url: &str, args: &[&str]) -> redis::Value {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut conn).await.unwrap()
}

async fn redis_get(url: &str, key: &str) -> Option<String> {
    match redis_cmd(url, &["GET", key]).await {
        redis::Value::BulkString(b) => Some(String::from_utf8(b).unwrap()),
        _ => None,
    }
}

const REDIS: &str = "redis://127.0.0.1:6379";

#[tokio::test]
async fn an_l1_hit_touches_neither_redis_nor_the_database() {
    let redis = redis_at(REDIS);
    let (app, loads) = counted(
        one_shard(Some(redis), true).await,
        Arc::new(ManualClock::at(t0())),
    )
    .await;
    let c = code(
        &app.shorten_ok(json!({"url": "https://example.com/l1"}))
            .await,
    );

    for _ in 0..5 {
        assert_eq!(app.follow(&c).await.status(), StatusCode::FOUND);
    }

    let stats = app.app.links.cache().stats();
    assert_eq!(
        loads.load(Ordering::SeqCst),
        0,
        "created links are written through"
    );
    assert_eq!(stats.l1_hits.load(Ordering::Relaxed), 5);
    assert_eq!(
        stats.l2_hits.load(Ordering::Relaxed) + stats.l2_misses.load(Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn with_l1_off_a_redis_hit_does_not_touch_the_database() {
    let redis = redis_at(REDIS);
    let prefix = redis.key_prefix.clone();
    let (app, loads) = counted(
        one_shard(Some(redis), false).await,
        Arc::new(ManualClock::at(t0())),
    )
    .await;
    let c = code(
        &app.shorten_ok(json!({"url": "https://example.com/l2"}))
            .await,
    );
    // Make it cold: forget the written-through entry.
    redis_cmd(REDIS, &["DEL", &format!("{prefix}link:v1:{c}")]).await;

    let first = app.follow(&c).await;
    assert_eq!(first.status(), StatusCode::FOUND);
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "a miss in both tiers loads once"
    );
    let stored = redis_get(REDIS, &format!("{prefix}link:v1:{c}"))
        .await
        .expect("the miss filled Redis");
    assert!(
        stored.starts_with("a|302||") && stored.ends_with("|https://example.com/l2"),
        "{stored}"
    );
    let ttl = match redis_cmd(REDIS, &["PTTL", &format!("{prefix}link:v1:{c}")]).await {
        redis::Value::Int(ms) => ms,
        other => panic!("{other:?}"),
    };
    assert!(
        (77_760_000..=95_040_000).contains(&ttl),
        "about a day with jitter: {ttl} ms"
    );

    for _ in 0..3 {
        let r = app.follow(&c).await;
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(r.headers()[header::LOCATION], "https://example.com/l2");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1, "Redis hits do not load");
    assert_eq!(
        app.app
            .links
            .cache()
            .stats()
            .l2_hits
            .load(Ordering::Relaxed),
        3
    );
}

#[tokio::test]
async fn an_instance_that_did_not_create_a_link_finds_it_in_redis() {
    let redis = redis_at(REDIS);
    let s = one_shard(Some(redis), true).await;
    let clock = Arc::new(ManualClock::at(t0()));
    let (creator, _) = counted(s.clone(), clock.clone()).await;
    let (reader, loads) = counted(s, clock).await;
    let c = code(
        &creator
            .shorten_ok(json!({"url": "https://example.com/shared"}))
            .await,
    );

    assert_eq!(reader.follow(&c).await.status(), StatusCode::FOUND);
    assert_eq!(reader.follow(&c).await.status(), StatusCode::FOUND);

    let stats = reader.app.links.cache().stats();
    assert_eq!(loads.load(Ordering::SeqCst), 0);
    assert_eq!(stats.l1_misses.load(Ordering::Relaxed), 1, "first: L1 miss");
    assert_eq!(stats.l2_hits.load(Ordering::Relaxed), 1, "first: L2 hit");
    assert_eq!(stats.l1_hits.load(Ordering::Relaxed), 1, "second: L1 hit");
}

#[tokio::test]
async fn unknown_codes_are_remembered_briefly_in_both_tiers() {
    let redis = redis_at(REDIS);
    let prefix = redis.key_prefix.clone();
    // A well-formed code that names no link.
    let unknown =
        shortener::domain::codes::encode(Snowflake::from_parts(80_000_000_000, 9, 9).get());

    // L1 and L2 off in turn: each tier alone stops the repeats.
    for l1 in [true, false] {
        let (app, loads) = counted(
            one_shard(Some(redis.clone()), l1).await,
            Arc::new(ManualClock::at(t0())),
        )
        .await;
        redis_cmd(REDIS, &["DEL", &format!("{prefix}link:v1:{unknown}")]).await;
        for _ in 0..20 {
            assert_eq!(app.follow(&unknown).await.status(), StatusCode::NOT_FOUND);
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "l1={l1}: one load, then tombstones"
        );
        assert_eq!(
            redis_get(REDIS, &format!("{prefix}link:v1:{unknown}"))
                .await
                .as_deref(),
            Some("m")
        );
        let ttl = match redis_cmd(REDIS, &["PTTL", &format!("{prefix}link:v1:{unknown}")]).await {
            redis::Value::Int(ms) => ms,
            other => panic!("{other:?}"),
        };
        assert!(ttl <= 33_000, "tombstones are short-lived: {ttl} ms");
    }
}

#[tokio::test]
async fn an_alias_claimed_after_it_was_tombstoned_redirects_at_once() {
    let redis = redis_at(REDIS);
    let s = one_shard(Some(redis), true).await;
    let clock = Arc::new(ManualClock::at(t0()));
    let a = TestApp::spawn(s.clone(), clock.clone()).await;
    let b = TestApp::spawn(s, clock).await;
    assert_eq!(b.follow("fresh-name").await.status(), StatusCode::NOT_FOUND);

    a.shorten_ok(json!({"url": "https://example.com/fresh", "alias": "fresh-name"}))
        .await;

    let started = Instant::now();
    loop {
        let status = b.follow("fresh-name").await.status();
        if status == StatusCode::FOUND {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "B still answers {status}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_hundred_concurrent_requests_for_one_cold_code_load_it_once() {
    let (app, loads) = counted(one_shard(None, true).await, Arc::new(ManualClock::at(t0()))).await;
    let c = code(
        &app.shorten_ok(json!({"url": "https://example.com/cold"}))
            .await,
    );
    app.app.links.cache().local().unwrap().clear();

    let follows = (0..100).map(|_| app.follow(&c));
    let statuses: Vec<_> = futures::future::join_all(follows)
        .await
        .iter()
        .map(|r| r.status())
        .collect();

    assert!(
        statuses.iter().all(|s| *s == StatusCode::FOUND),
        "{statuses:?}"
    );
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_expired_link_is_not_served_from_either_tier() {
    let redis = redis_at(REDIS);
    for l1 in [true, false] {
        let clock = Arc::new(ManualClock::at(t0()));
        let (app, _) = counted(one_shard(Some(redis.clone()), l1).await, clock.clone()).await;
        let expires = t0() + chrono::Duration::seconds(60);
        let c = code(
            &app.shorten_ok(json!({"url": "https://example.com/", "expires_at": expires}))
                .await,
        );
        assert_eq!(app.follow(&c).await.status(), StatusCode::FOUND);

        clock.advance_ms(60_000);

        let r = app.follow(&c).await;
        assert_eq!(r.status(), StatusCode::GONE, "l1={l1}");
        assert_eq!(support::error_code(r).await, "link_expired");
    }
}

#[tokio::test]
async fn a_delete_on_one_instance_reaches_the_other_within_the_bound() {
    let redis = redis_at(REDIS);
    let s = one_shard(Some(redis), true).await;
    let clock = Arc::new(ManualClock::at(t0()));
    let a = TestApp::spawn(s.clone(), clock.clone()).await;
    let b = TestApp::spawn(s, clock).await;
    let c = code(
        &a.shorten_ok(json!({"url": "https://example.com/doomed"}))
            .await,
    );
    assert_eq!(
        b.follow(&c).await.status(),
        StatusCode::FOUND,
        "B now holds it in L1"
    );
    assert_eq!(b.follow(&c).await.status(), StatusCode::FOUND);

    let deleted = a
        .request(Method::DELETE, &format!("/api/v1/links/{c}"))
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    // The documented bound is the L1 TTL (60 s) if the pub/sub message were lost; with
    // pub/sub working it is a round trip, so demand well under a second.
    let started = Instant::now();
    loop {
        let status = b.follow(&c).await.status();
        if status == StatusCode::GONE {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "B still answers {status}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The tier contract: the same function against each `CacheTier`.
async fn tier_contract(tier: &dyn shortener::cache::CacheTier) {
    use shortener::cache::{Cached, Target};
    let code = format!("contract-{:x}", rand::random::<u32>());
    assert_eq!(tier.get(&code).await.unwrap(), None, "nothing cached yet");
    tier.fill(&code, &Cached::Missing).await.unwrap();
    assert_eq!(tier.get(&code).await.unwrap(), Some(Cached::Missing));
    let live = Cached::Active(Arc::new(Target {
        id: Snowflake::from_parts(1, 2, 3),
        url: shortener::domain::TargetUrl::stored("https://example.com/".into()).unwrap(),
        redirect: shortener::domain::RedirectKind::Temporary,
        expires_at: None,
    }));
    tier.fill(&code, &live).await.unwrap();
    assert_eq!(
        tier.get(&code).await.unwrap(),
        Some(Cached::Missing),
        "fill never overwrites"
    );
    tier.put(&code, &live).await.unwrap();
    assert_eq!(
        tier.get(&code).await.unwrap(),
        Some(live.clone()),
        "put does"
    );
    tier.put(&code, &Cached::Gone).await.unwrap();
    assert_eq!(tier.get(&code).await.unwrap(), Some(Cached::Gone));
}

#[tokio::test]
async fn the_local_tier_keeps_the_tier_contract() {
    let tier = shortener::cache::LocalTier::new(&shortener::cache::CacheSettings::default());
    tier_contract(&tier).await;
}

#[tokio::test]
async fn the_redis_tier_keeps_the_tier_contract() {
    let tier = shortener::cache::RedisTier::new(&redis_at(REDIS), Duration::from_secs(30)).unwrap();
    tier_contract(&tier).await;
}
