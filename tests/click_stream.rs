//! The Redis Streams click pipeline outside any HTTP server, on real PostgreSQL and
//! Redis: a batch redelivered after its commit, a worker killed mid-batch, and the
//! producer packing clicks while Redis is down, then slow.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shortener::analytics::queue::{
    decode_entry, ClickQueue, QueueKind, QueueSettings, RedisStreamQueue,
};
use shortener::analytics::rollup::Stats;
use shortener::analytics::worker::{Ack, AnalyticsSettings, Worker};
use shortener::domain::click::{ClientNet, RawClick};
use shortener::domain::{DayRange, Snowflake};
use shortener::store::clicks::ClickStore;
use shortener::store::postgres::ShardedClicks;
use support::{fresh_database, settings, shard, t0};
use tokio_util::sync::CancellationToken;

const REDIS: &str = "redis://127.0.0.1:6379";

fn prefix() -> String {
    format!("test:{:016x}:", rand::random::<u64>())
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
                claim_idle_ms: std::time::Duration::from_millis(50),
                consumer: Some(consumer.into()),
                ..QueueSettings::default()
            },
        )
        .unwrap(),
    );
    let settings = AnalyticsSettings {
        flush_interval_ms: std::time::Duration::from_millis(100),
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
            visitor: 0,
            extra: None,
        }));
    }
    q.close();
    stop.cancel();
    producer.await.unwrap();
    link
}

async fn total(store: &Arc<dyn ClickStore>, link: Snowflake) -> i64 {
    let day = t0().date_naive();
    Stats::build(
        day,
        day,
        store
            .days(link, DayRange::new(day, day).unwrap())
            .await
            .unwrap(),
    )
    .total
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
            visitor: 0,
            extra: None,
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
