//! Read replicas against a real streaming replica (scripts/replica.sh: a second
//! PostgreSQL cluster made with `pg_basebackup -R` from the test server, on 5434 unless
//! `SHORTENER_TEST_REPLICA` says otherwise). Each test has its own database on the
//! primary, which the replica copies like every other.
//!
//! Redirect misses read the replica; a code it does not know yet reads the primary; a
//! replica too far behind is not read; with the primary down, redirects go on from the
//! replica, and a link it may not hold yet answers 503, never 404.
//!
//! The tests pause the replica's replay, which holds for every database on it, so they
//! run one at a time (`SERIAL`).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{header, StatusCode};
use serde_json::{json, Value};
use shortener::domain::Snowflake;
use support::{
    connect, error_code, fresh_database, metric_value as metric, pg_server, settings, shard,
    TestApp,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The replica's server: `SHORTENER_TEST_REPLICA`, or the one scripts/replica.sh keeps
/// on 5434 (run here once per test binary, so that `cargo test` alone works too; it
/// returns at once when the replica already streams).
fn replica_server() -> String {
    if let Ok(url) = std::env::var("SHORTENER_TEST_REPLICA") {
        return url;
    }
    static ENSURED: std::sync::Once = std::sync::Once::new();
    ENSURED.call_once(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/replica.sh");
        let status = std::process::Command::new(script)
            .status()
            .expect("scripts/replica.sh runs");
        assert!(status.success(), "scripts/replica.sh failed");
    });
    "postgres://postgres@127.0.0.1:5434".to_owned()
}

/// The URL of `db` (a database on the primary) on the replica.
fn on_replica(db: &str) -> String {
    let name = db.rsplit('/').next().unwrap();
    format!("{}/{name}", replica_server())
}

/// Pauses the replica's replay until dropped (then resumes it, even on a panic).
struct Paused;

fn replica_sql(sql: &str) {
    let out = std::process::Command::new("psql")
        .arg(format!("{}/postgres", replica_server()))
        .args(["-Atqc", sql])
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "{sql}: {out:?}");
}

impl Paused {
    fn replay() -> Self {
        replica_sql("SELECT pg_wal_replay_pause()");
        Paused
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        replica_sql("SELECT pg_wal_replay_resume()");
    }
}

/// Waits until `sql` (a count) on the replica's copy of `db` reaches `n`.
async fn replicated(db: &str, sql: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((c, conn)) = tokio_postgres::connect(&on_replica(db), tokio_postgres::NoTls).await
        {
            tokio::spawn(conn);
            if let Ok(row) = c.query_one(sql, &[]).await {
                if row.get::<_, i64>(0) >= n {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the replica never caught up: {sql}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn reads(metrics: &str, source: &str, reason: &str) -> u64 {
    metric(
        metrics,
        &format!(
            "shortener_redirect_reads_total{{reason=\"{reason}\",shard=\"s0\",source=\"{source}\"}}"
        ),
    )
}

/// `/readyz`'s report on the first replica.
async fn replica_state(app: &TestApp) -> Value {
    let body: Value = app
        .request(reqwest::Method::GET, "/readyz")
        .await
        .json()
        .await
        .unwrap();
    body["replicas"][0].clone()
}

/// Waits until `/readyz` says the replica is (or is not) read.
async fn until_read(app: &TestApp, read: bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // /readyz reuses its answer for a second: poll past it.
        let state = replica_state(app).await;
        if state["read"] == json!(read) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "replica never read={read}: {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A shard on `primary` with the replica of `db` as its replica, probed every 100 ms,
/// read while at most `max_lag_ms` behind.
fn replicated_settings(primary: &str, db: &str, max_lag_ms: u64) -> shortener::config::Settings {
    let mut s0 = shard("s0", primary, "2024-01-01T00:00:00Z".parse().unwrap());
    s0.replicas = vec![on_replica(db)];
    let mut s = settings(vec![s0]);
    s.database.replica_probe_interval_ms = std::time::Duration::from_millis(100);
    s.database.replica_max_lag_ms = std::time::Duration::from_millis(max_lag_ms);
    s
}

async fn shorten(app: &TestApp, url: &str) -> String {
    app.shorten_ok(json!({ "url": url })).await["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn redirects_to(app: &TestApp, code: &str, url: &str) {
    let r = app.follow(code).await;
    assert_eq!(r.status(), StatusCode::FOUND, "{code}");
    assert_eq!(r.headers()[header::LOCATION], url, "{code}");
}

/// A fresh database, an instance without replicas on it, and `n` links it wrote
/// (`https://example.com/{i}`), once the replica holds them.
async fn written_and_replicated(n: usize) -> (String, TestApp, Vec<String>) {
    let db = fresh_database().await;
    let writer = TestApp::spawn_real_time(settings(vec![shard(
        "s0",
        &db,
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )]))
    .await
    .unwrap();
    let mut codes = Vec::new();
    for i in 0..n {
        codes.push(shorten(&writer, &format!("https://example.com/{i}")).await);
    }
    replicated(&db, "SELECT count(*) FROM links", n as i64).await;
    (db, writer, codes)
}

#[tokio::test]
async fn redirect_misses_read_the_replica_a_code_it_lacks_reads_the_primary_and_a_lagging_replica_is_skipped(
) {
    let _serial = SERIAL.lock().await;
    // Arrange: links written through an instance without replicas, copied to the replica.
    let (db, writer, codes) = written_and_replicated(21).await;
    let reader = TestApp::spawn_real_time(replicated_settings(&db, &db, 2_000))
        .await
        .unwrap();
    let state = until_read(&reader, true).await;
    assert_eq!(state["up"], json!(true));
    assert!(state["lag_ms"].as_u64().unwrap() <= 2_000, "{state}");

    let scans = "SELECT COALESCE(idx_scan, 0) + COALESCE(seq_scan, 0) \
                 FROM pg_stat_user_tables WHERE relname = 'links'";
    let on_primary = connect(&db).await;
    let on_replica = connect(&on_replica(&db)).await;
    let primary_before: i64 = on_primary.query_one(scans, &[]).await.unwrap().get(0);
    let replica_before: i64 = on_replica.query_one(scans, &[]).await.unwrap().get(0);

    // Act + assert: misses on the reader are served by the replica.
    for (i, code) in codes.iter().take(20).enumerate() {
        redirects_to(&reader, code, &format!("https://example.com/{i}")).await;
    }
    // The servers' own counters say so (a backend reports its table scans within about
    // ten seconds, when idle).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now: i64 = on_replica.query_one(scans, &[]).await.unwrap().get(0);
        if now - replica_before >= 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica's links were scanned {} times",
            now - replica_before
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let primary_after: i64 = on_primary.query_one(scans, &[]).await.unwrap().get(0);
    // The primary's did not move with the redirects (the reader's startup check that
    // any link exists scans it once, reported whenever that backend goes idle).
    assert!(
        primary_after - primary_before <= 1,
        "the primary's links were scanned {} times",
        primary_after - primary_before
    );
    let m = reader.metrics().await;
    assert_eq!(reads(&m, "replica", "fresh"), 20);
    assert_eq!(reads(&m, "primary", "not_replicated"), 0);
    assert!(
        m.contains("shortener_replica_up{replica=\"r0\",shard=\"s0\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("shortener_replica_query_duration_seconds_count{replica=\"r0\",shard=\"s0\"}")
    );
    // The replica's pool has a gauge of its own; the shard pool gauges hold shards only.
    assert!(
        m.contains(
            "shortener_replica_pool_connections{replica=\"r0\",shard=\"s0\",state=\"size\"}"
        ),
        "{m}"
    );
    assert!(
        !m.contains("shard=\"s0/r0\""),
        "a replica filed as a shard: {m}"
    );

    // A link the replica has not replayed yet redirects at once, from the primary. (A
    // commit replayed just before the pause keeps the replica within its bound for the
    // next two seconds, so it is asked first.)
    shorten(&writer, "https://example.com/last-replayed").await;
    replicated(&db, "SELECT count(*) FROM links", 22).await;
    let paused = Paused::replay();
    let fresh = shorten(&writer, "https://example.com/fresh").await;
    redirects_to(&reader, &fresh, "https://example.com/fresh").await;
    let m = reader.metrics().await;
    assert_eq!(reads(&m, "primary", "not_replicated"), 1);

    // Replay stays paused while the primary commits: the replica falls behind past the
    // bound and is no longer read; a miss goes to the primary.
    let state = until_read(&reader, false).await;
    assert!(state["lag_ms"].as_u64().unwrap() > 2_000, "{state}");
    redirects_to(&reader, &codes[20], "https://example.com/20").await;
    let m = reader.metrics().await;
    assert_eq!(reads(&m, "primary", "no_replica"), 1);
    assert_eq!(reads(&m, "replica", "fresh"), 20);

    // Replay resumes: the replica catches up and is read again.
    drop(paused);
    let state = until_read(&reader, true).await;
    assert!(state["lag_ms"].as_u64().unwrap() <= 2_000, "{state}");
}

/// A TCP relay to a database server that the test can cut, as a server that goes down
/// (open connections dropped, new ones refused), and restore.
struct Relay {
    port: u16,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<CancellationToken>>,
}

impl Relay {
    async fn to(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(CancellationToken::new()));
        let (gate, live) = (open.clone(), connections.clone());
        let target = target.to_owned();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !gate.load(Ordering::Acquire) {
                    continue; // dropped: the client sees its connection closed
                }
                let token = live.lock().unwrap().clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        () = token.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        Self {
            port,
            open,
            connections,
        }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::Release);
        let mut live = self.connections.lock().unwrap();
        live.cancel();
        *live = CancellationToken::new();
    }

    fn restore(&self) {
        self.open.store(true, Ordering::Release);
    }

    /// `db` (a URL on any server) reached through the relay.
    fn url(&self, db: &str) -> String {
        let name = db.rsplit('/').next().unwrap();
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

#[tokio::test]
async fn with_its_primary_down_a_shard_redirects_from_its_replica_and_answers_503_for_what_it_may_lack(
) {
    let _serial = SERIAL.lock().await;
    // Arrange: two instances reach the primary through a relay; links (one with an
    // alias) are written and copied to the replica.
    let db = fresh_database().await;
    let relay = Relay::to(&pg_server().replace("postgres://postgres@", "")).await;
    let primary = relay.url(&db);
    let writer = TestApp::spawn_real_time(replicated_settings(&primary, &db, 500))
        .await
        .unwrap();
    let reader = TestApp::spawn_real_time(replicated_settings(&primary, &db, 500))
        .await
        .unwrap();
    let mut codes = Vec::new();
    for i in 0..10 {
        codes.push(shorten(&writer, &format!("https://example.com/{i}")).await);
    }
    let aliased = writer
        .shorten_ok(json!({"url": "https://example.com/aliased", "alias": "kept-alias"}))
        .await;
    assert_eq!(aliased["code"], "kept-alias");
    replicated(&db, "SELECT count(*) FROM links", 11).await;
    replicated(&db, "SELECT count(*) FROM aliases", 1).await;
    until_read(&reader, true).await;
    // One more link that the replica does not get before the primary goes down.
    let paused = Paused::replay();
    let unreplayed = shorten(&writer, "https://example.com/unreplayed").await;

    // Act: the primary goes down (readiness says so within its second of reuse; the
    // replicas' probe loop, every 100 ms, tells the redirect path).
    relay.cut();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = reader.request(reqwest::Method::GET, "/readyz").await;
        // Still ready (a load balancer keeps the instance: its redirects go on), degraded.
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        if body["status"] == "degraded" {
            assert_eq!(body["parts"][0]["ok"], json!(false), "{body}");
            assert_eq!(body["replicas"][0]["up"], json!(true), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness never saw the primary down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Assert: what the replica holds still redirects (the reader never cached it).
    for (i, code) in codes.iter().enumerate() {
        redirects_to(&reader, code, &format!("https://example.com/{i}")).await;
    }
    redirects_to(&reader, "kept-alias", "https://example.com/aliased").await;
    // A link the replica may lack is 503, not 404: it may exist on the primary alone.
    let r = reader.follow(&unreplayed).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(r).await, "shard_unavailable");
    // A code whose ID is older than all the replica holds in full is surely unknown: 404.
    let minted = Snowflake::first_of_ms(chrono::Utc::now().timestamp_millis() as u64 - 60_000);
    let r = reader.follow(&reader.code_of_id(minted)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // An instance started now, with the primary down, starts (the code scheme from the
    // replica, no worker ID yet) and serves redirects from the replica.
    let mut anonymous = replicated_settings(&primary, &db, 500);
    anonymous.auth.allow_anonymous = Some(true); // no key can be issued now
    let late = TestApp::spawn_real_time(anonymous)
        .await
        .expect("an instance starts with its directory's primary down");
    until_read(&late, true).await;
    redirects_to(&late, &codes[3], "https://example.com/3").await;
    let r = late
        .shorten(json!({"url": "https://example.com/late"}))
        .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(r).await, "no_worker_id");

    // Shortens for the shard's range fail as before.
    let r = reader
        .shorten(json!({"url": "https://example.com/new"}))
        .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let m = reader.metrics().await;
    assert!(reads(&m, "replica", "primary_down") >= 12, "{m}");
    assert!(reads(&m, "none", "primary_down") >= 1, "{m}");

    // Once the replica has replayed it, the last link redirects too, primary still down.
    drop(paused);
    replicated(&db, "SELECT count(*) FROM links", 12).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = reader.follow(&unreplayed).await;
        if r.status() == StatusCode::FOUND {
            assert_eq!(
                r.headers()[header::LOCATION],
                "https://example.com/unreplayed"
            );
            break;
        }
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(Instant::now() < deadline, "never served from the replica");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The primary comes back: shortens and readiness recover by themselves.
    relay.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = reader
            .shorten(json!({"url": "https://example.com/back"}))
            .await;
        if r.status() == StatusCode::CREATED {
            break;
        }
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(Instant::now() < deadline, "shortens never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let body: Value = reader
            .request(reqwest::Method::GET, "/readyz")
            .await
            .json()
            .await
            .unwrap();
        if body["status"] == "ready" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness never recovered: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    redirects_to(&writer, &codes[0], "https://example.com/0").await;
    // The late instance leases its worker ID now and shortens.
    let deadline = Instant::now() + Duration::from_secs(10);
    while late
        .shorten(json!({"url": "https://example.com/late"}))
        .await
        .status()
        != StatusCode::CREATED
    {
        assert!(
            Instant::now() < deadline,
            "the late instance never leased an ID"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_replica_that_goes_away_and_comes_back_fails_no_redirect() {
    let _serial = SERIAL.lock().await;
    // Arrange: an instance with no L1, so every redirect reads storage, whose replica is
    // reached through a relay.
    let (db, _writer, codes) = written_and_replicated(10).await;
    let relay = Relay::to(&replica_server().replace("postgres://postgres@", "")).await;
    let mut s = replicated_settings(&db, &db, 2_000);
    s.shards[0].replicas = vec![relay.url(&db)];
    s.cache.l1 = false;
    let reader = TestApp::spawn_real_time(s).await.unwrap();
    until_read(&reader, true).await;

    // Act: redirects without pause for 3 s; the replica goes away after 1 s and comes
    // back after 2 s.
    let started = Instant::now();
    let (mut cut, mut restored) = (false, false);
    let mut served = 0;
    while started.elapsed() < Duration::from_secs(3) {
        if !cut && started.elapsed() > Duration::from_secs(1) {
            relay.cut();
            cut = true;
        }
        if !restored && started.elapsed() > Duration::from_secs(2) {
            relay.restore();
            restored = true;
        }
        let i = served % codes.len();
        // Assert: every one of them redirects.
        redirects_to(&reader, &codes[i], &format!("https://example.com/{i}")).await;
        served += 1;
    }
    let before = reads(&reader.metrics().await, "replica", "fresh");
    until_read(&reader, true).await;
    redirects_to(&reader, &codes[0], "https://example.com/0").await;
    let m = reader.metrics().await;
    assert!(served > 30, "{served}");
    assert!(reads(&m, "primary", "replica_error") >= 1, "{m}");
    assert!(reads(&m, "primary", "no_replica") >= 1, "{m}");
    assert!(
        reads(&m, "replica", "fresh") > before,
        "read again once back: {m}"
    );
}

#[tokio::test]
async fn a_replica_that_refuses_the_login_says_why_in_readyz_metrics_and_counts() {
    // Arrange: the replica's URL names a role that does not exist, so it refuses every
    // connection from the start (it was never up, so no "stopped answering" is logged).
    let _serial = SERIAL.lock().await;
    let primary = fresh_database().await;
    let mut settings = replicated_settings(&primary, &primary, 1_000);
    settings.shards[0].replicas = vec![on_replica(&primary).replace("postgres@", "nobody_here@")];
    let app = TestApp::spawn(
        settings,
        Arc::new(shortener::domain::ManualClock::at(support::t0())),
    )
    .await;

    // Act: a few probes (every 100 ms).
    tokio::time::sleep(Duration::from_millis(600)).await;

    // Assert: /readyz says why, the error counter counts the probes, redirects go on.
    let deadline = Instant::now() + Duration::from_secs(5);
    let state = loop {
        let state = replica_state(&app).await;
        if state["error"].is_string() || Instant::now() > deadline {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(state["up"], false, "{state}");
    let why = state["error"].as_str().unwrap_or_default();
    assert!(why.contains("nobody_here"), "{state}");
    let errors = metric(
        &app.metrics().await,
        "shortener_replica_errors_total{kind=\"unavailable\",replica=\"r0\",shard=\"s0\"}",
    );
    assert!(errors >= 2, "{errors} probe failures counted");
    let code = shorten(&app, "https://example.com/still").await;
    redirects_to(&app, &code, "https://example.com/still").await;
}
