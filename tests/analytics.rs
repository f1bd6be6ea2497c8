//! Click analytics end to end, on real PostgreSQL and Redis: exact counts in both queue
//! modes, redelivery, a worker dying, a full queue, and the daily series at midnight.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use shortener::analytics::queue::{
    decode_entry, ClickQueue, QueueKind, QueueSettings, RedisStreamQueue,
};
use shortener::analytics::rollup::Stats;
use shortener::analytics::worker::{Ack, AnalyticsSettings, Worker};
use shortener::cache::RedisSettings;
use shortener::config::Settings;
use shortener::domain::click::{ClientNet, RawClick};
use shortener::domain::{ManualClock, Snowflake};
use shortener::store::clicks::ClickStore;
use shortener::store::postgres::ShardedClicks;
use support::hooked::HookedClicks;
use support::{fresh_database, settings, shard, t0, TestApp};
use tokio_util::sync::CancellationToken;

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
    s.analytics.flush_interval_ms = 50;
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

async fn stats(app: &TestApp, code: &str, query: &str) -> Value {
    let r = app
        .request(Method::GET, &format!("/api/v1/links/{code}/stats{query}"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// Polls the stats until they show `total` clicks (the worker flushes every 50 ms).
async fn stats_when(app: &TestApp, code: &str, query: &str, total: i64) -> Value {
    let started = Instant::now();
    loop {
        let s = stats(app, code, query).await;
        if s["total"] == total {
            return s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "stats stuck at {s}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
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

    let s = stats_when(&app, &code, "", 50).await;
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
        json!({"day": "2026-06-01", "total": 50, "bots": 20})
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
    assert_eq!(stats(&app, &code, "").await["total"], 50);
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

    let s = stats_when(&app, &code, "?from=2026-05-31&to=2026-06-03", 5).await;
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

    let queue = app.app.links.click_queue().cloned().unwrap();
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
    let s = stats_when(&app, &code, "", enqueued as i64).await;
    assert_eq!(s["total"].as_u64(), Some(enqueued));
}

/// A Redis-Streams queue and a worker on it, outside any HTTP server.
fn stream_worker(
    store: Arc<dyn ClickStore>,
    prefix: &str,
    consumer: &str,
) -> (Arc<RedisStreamQueue>, Worker) {
    let q = Arc::new(
        RedisStreamQueue::new(
            REDIS,
            prefix,
            &QueueSettings {
                kind: QueueKind::Redis,
                claim_idle_ms: 50,
                consumer: Some(consumer.into()),
                ..QueueSettings::default()
            },
        )
        .unwrap(),
    );
    let settings = AnalyticsSettings {
        flush_interval_ms: 100,
        ..AnalyticsSettings::default()
    };
    let worker = Worker::new(q.clone(), store, settings);
    (q, worker)
}

async fn pg_store() -> Arc<dyn ClickStore> {
    let db = fresh_database().await;
    let s = settings(vec![shard(
        "s0",
        &db,
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )]);
    Arc::new(ShardedClicks::connect(&s.shards, &s.database, s.analytics.raw_events).unwrap())
}

/// Puts `n` clicks on the stream through the producer, returns the link clicked.
async fn produce(q: &Arc<RedisStreamQueue>, n: u64) -> Snowflake {
    let link = Snowflake::first_of_ms(t0().timestamp_millis() as u64);
    let stop = CancellationToken::new();
    let producer = tokio::spawn(q.clone().run_producer(stop.clone()));
    for i in 0..n {
        assert!(q.offer(RawClick {
            event_id: Snowflake::from_parts(
                t0().timestamp_millis() as u64 - shortener::domain::ids::EPOCH_MS,
                7,
                i
            ),
            link_id: link,
            at_ms: t0().timestamp_millis() as u64,
            referrer: String::new(),
            user_agent: "Mozilla/5.0 Firefox/121.0".into(),
            client: ClientNet::parse("203.0.113.0"),
        }));
    }
    q.close();
    stop.cancel();
    producer.await.unwrap();
    link
}

async fn total(store: &Arc<dyn ClickStore>, link: Snowflake) -> i64 {
    let day = t0().date_naive();
    Stats::build(day, day, store.days(link, day, day).await.unwrap()).total
}

/// Clicks in the stream entries that were read and not acknowledged.
async fn pending(stream: &str) -> i64 {
    use redis::AsyncCommands as _;
    let client = redis::Client::open(REDIS).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let entries: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(stream)
        .arg("workers")
        .arg("-")
        .arg("+")
        .arg(100_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut clicks = 0;
    for (id, ..) in entries {
        let range: redis::streams::StreamRangeReply = conn.xrange(stream, &id, &id).await.unwrap();
        for entry in range.ids {
            let payload: Vec<u8> = entry.get("k").unwrap();
            clicks += decode_entry(&payload).unwrap().len() as i64;
        }
    }
    clicks
}

#[tokio::test]
async fn a_batch_redelivered_after_its_commit_is_not_counted_twice() {
    let store = pg_store().await;
    let prefix = prefix();
    let (q1, first) = stream_worker(store.clone(), &prefix, "first");
    let link = produce(&q1, 40).await;

    // The first worker commits, then dies before XACK.
    let batch = first.gather(&CancellationToken::new()).await;
    assert_eq!(batch.len(), 40);
    assert_eq!(first.process(&batch, Ack::Never).await.unwrap(), 40);
    assert_eq!(
        pending(q1.stream()).await,
        40,
        "committed but not acknowledged"
    );

    // Another worker takes the stale entries over and processes them again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, second) = stream_worker(store.clone(), &prefix, "second");
    let again = second.gather(&CancellationToken::new()).await;
    assert_eq!(again.len(), 40, "every entry is delivered again");
    assert_eq!(
        second.process(&again, Ack::AfterCommit).await.unwrap(),
        0,
        "none counted twice"
    );

    assert_eq!(total(&store, link).await, 40);
    assert_eq!(pending(q1.stream()).await, 0);
    assert_eq!(second.stats().duplicates.load(Ordering::Relaxed), 40);
}

#[tokio::test]
async fn a_worker_killed_mid_batch_loses_nothing() {
    let store = pg_store().await;
    let prefix = prefix();
    let (q1, first) = stream_worker(store.clone(), &prefix, "doomed");
    let link = produce(&q1, 25).await;

    // Read, then killed before the commit: nothing counted, nothing acknowledged.
    let batch = first.gather(&CancellationToken::new()).await;
    assert_eq!(batch.len(), 25);
    drop(first);
    assert_eq!(total(&store, link).await, 0);

    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, survivor) = stream_worker(store.clone(), &prefix, "survivor");
    let taken = survivor.gather(&CancellationToken::new()).await;
    assert_eq!(
        survivor.process(&taken, Ack::AfterCommit).await.unwrap(),
        25
    );
    assert_eq!(total(&store, link).await, 25);
    assert_eq!(pending(q1.stream()).await, 0);
}

/// Forwards connections on `listener` to the test Redis, holding every chunk for
/// `delay` each way: a slow network to Redis.
async fn slow_proxy(listener: tokio::net::TcpListener, delay: Duration) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    async fn pipe(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        delay: Duration,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 {
                break;
            }
            tokio::time::sleep(delay).await;
            if to.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    }
    while let Ok((inbound, _)) = listener.accept().await {
        tokio::spawn(async move {
            let outbound = tokio::net::TcpStream::connect("127.0.0.1:6379")
                .await
                .unwrap();
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            tokio::spawn(pipe(ri, wo, delay));
            pipe(ro, wi, delay).await;
        });
    }
}

/// Every click in the stream `stream`, decoded, and the number of entries.
async fn stream_contents(stream: &str) -> (usize, Vec<RawClick>) {
    use redis::AsyncCommands as _;
    let client = redis::Client::open(REDIS).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let range: redis::streams::StreamRangeReply = conn.xrange_all(stream).await.unwrap();
    let mut clicks = Vec::new();
    for entry in &range.ids {
        let payload: Vec<u8> = entry.get("k").unwrap();
        clicks.extend(decode_entry(&payload).unwrap());
    }
    (range.ids.len(), clicks)
}

fn offer_clicks(q: &RedisStreamQueue, from: u64, n: u64) {
    for i in from..from + n {
        assert!(q.offer(RawClick {
            event_id: Snowflake::from_parts(1_000_000 + i, 7, i % 4096),
            link_id: Snowflake::from_parts(1_000_000, 0, 0),
            at_ms: t0().timestamp_millis() as u64,
            referrer: String::new(),
            user_agent: format!("agent/{}", i % 5),
            client: ClientNet::parse("203.0.113.0"),
        }));
    }
}

#[tokio::test]
async fn the_producer_packs_many_clicks_per_entry_while_redis_is_down_then_slow() {
    // Arrange: a port where nothing listens yet, standing for Redis being down.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let prefix = prefix();
    let q = Arc::new(
        RedisStreamQueue::new(
            &format!("redis://127.0.0.1:{port}"),
            &prefix,
            &QueueSettings {
                kind: QueueKind::Redis,
                ..QueueSettings::default()
            },
        )
        .unwrap(),
    );
    let stop = CancellationToken::new();
    let producer = tokio::spawn(q.clone().run_producer(stop.clone()));

    // Act: clicks arrive while Redis cannot be reached...
    offer_clicks(&q, 0, 3_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(q.stats().entries.load(Ordering::Relaxed), 0);
    // ...then Redis answers, slowly (50 ms each way), while more clicks arrive.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(slow_proxy(listener, Duration::from_millis(50)));
    for wave in 0..10 {
        offer_clicks(&q, 3_000 + wave * 100, 100);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let started = Instant::now();
    while q.depth() > 0 || q.stats().entries.load(Ordering::Relaxed) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "producer stuck"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    q.close();
    stop.cancel();
    producer.await.unwrap();

    // Assert: every click is in the stream exactly once, in few entries.
    let (entries, clicks) = stream_contents(&format!("{prefix}clicks")).await;
    assert_eq!(
        clicks.len(),
        4_000,
        "nothing lost while Redis was down or slow"
    );
    let distinct: std::collections::HashSet<_> = clicks.iter().map(|c| c.event_id).collect();
    assert_eq!(distinct.len(), 4_000, "nothing appended twice");
    assert!(
        entries <= 20,
        "{entries} entries for 4,000 clicks: Redis should append a batch, not a click"
    );
    assert_eq!(q.stats().dropped.load(Ordering::Relaxed), 0);
}
