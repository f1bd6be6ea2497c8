//! Leased worker IDs against real PostgreSQL: instances with no `worker_id` lease
//! distinct ones from the directory, a configured ID in use is refused, an instance
//! whose lease cannot be renewed stops minting until it holds one again, and an ID taken
//! over from another holder starts after the last millisecond that holder could use.

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::{header, StatusCode};
use serde_json::json;
use shortener::store::{Lease, Refusal, WorkerLeases};
use support::process::{binary, client, free_port, wait_ready, Server};
use support::{
    connect, error_code, fresh_database, metric_value as metric, settings, shard, TestApp,
    TEST_CODE_KEY,
};

/// The `shortener_worker_id` gauge of an instance.
fn worker_of(metrics: &str) -> i64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("shortener_worker_id "))
        .expect("shortener_worker_id exported")
        .trim()
        .parse()
        .unwrap()
}

fn config(db: &str, port: u16, worker_id: Option<u16>) -> tempfile::NamedTempFile {
    let worker = worker_id.map_or(String::new(), |w| format!("worker_id = {w}\n"));
    let body = format!(
        r#"
listen = "127.0.0.1:{port}"
public_url = "http://sho.rt"
{worker}
[[shards]]
name = "s0"
url  = "{db}"
from = "2024-01-01T00:00:00Z"
[codes]
key = "{TEST_CODE_KEY}"
[auth]
allow_anonymous = true
[limits]
enabled = false
[log]
requests = false
"#
    );
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(body.as_bytes()).unwrap();
    file
}

/// Starts `shortener serve` on the database and waits until it is ready.
async fn start(db: &str, worker_id: Option<u16>) -> (Server, String, tempfile::NamedTempFile) {
    let port = free_port();
    let file = config(db, port, worker_id);
    let child = binary()
        .arg("serve")
        .arg("--config")
        .arg(file.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base).await;
    (Server(child), base, file)
}

async fn metrics_of(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn three_instances_lease_three_ids_mint_20000_links_without_a_duplicate_and_a_fourth_gets_a_free_one(
) {
    // Arrange: three instances with no worker_id on one shard.
    let db = fresh_database().await;
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(start(&db, None).await);
    }
    let mut workers = BTreeSet::new();
    for (_, base, _) in &servers {
        workers.insert(worker_of(&metrics_of(base).await));
    }
    assert_eq!(workers.len(), 3, "three distinct worker IDs: {workers:?}");
    assert!(workers.iter().all(|w| (0..1024).contains(w)), "{workers:?}");

    // Act: 20,000 shortens spread over the three, 96 at a time.
    let http = client();
    let bases: Vec<String> = servers.iter().map(|(_, b, _)| b.clone()).collect();
    let statuses: Vec<Result<StatusCode, String>> = futures::stream::iter(0..20_000)
        .map(|i| {
            let (http, base) = (http.clone(), bases[i % 3].clone());
            async move {
                http.post(format!("{base}/api/v1/links"))
                    .json(&json!({"url": format!("https://example.com/{i}")}))
                    .send()
                    .await
                    .map(|r| r.status())
                    .map_err(|e| format!("{e:?}"))
            }
        })
        .buffer_unordered(96)
        .collect()
        .await;

    // Assert: every one created, 20,000 distinct IDs in the table, minted by exactly
    // the three leased worker IDs, and no instance ever met a duplicate.
    let failed: Vec<&Result<StatusCode, String>> = statuses
        .iter()
        .filter(|s| **s != Ok(StatusCode::CREATED))
        .collect();
    assert!(
        failed.is_empty(),
        "{} shortens failed: {failed:?}",
        failed.len()
    );
    let pg = connect(&db).await;
    let row = pg
        .query_one(
            "SELECT count(*), count(DISTINCT id), \
             array_agg(DISTINCT ((id >> 12) & 1023)::bigint ORDER BY ((id >> 12) & 1023)::bigint) \
             FROM links",
            &[],
        )
        .await
        .unwrap();
    let (rows, distinct, minted_by): (i64, i64, Vec<i64>) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((rows, distinct), (20_000, 20_000));
    assert_eq!(minted_by.into_iter().collect::<BTreeSet<_>>(), workers);
    for base in &bases {
        let m = metrics_of(base).await;
        assert_eq!(metric(&m, "shortener_id_duplicates_total"), 0, "{base}");
    }

    // Kill one (no release: its lease stays until it runs out) and start another: it
    // leases an ID none of the three holds.
    drop(servers.remove(0));
    let (_fourth, fourth_base, _f) = start(&db, None).await;
    let fourth = worker_of(&metrics_of(&fourth_base).await);
    assert!(!workers.contains(&fourth), "{fourth} in {workers:?}");

    // An instance configured with an ID that a live instance holds refuses to start.
    let taken = worker_of(&metrics_of(&bases[1]).await);
    let file = config(&db, free_port(), Some(u16::try_from(taken).unwrap()));
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            binary()
                .arg("serve")
                .arg("--config")
                .arg(file.path())
                .output()
                .unwrap()
        }),
    )
    .await
    .expect("refused at once, not served")
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("worker_id = {taken} is held by another instance")),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_configured_id_is_leased_too_and_a_second_claim_is_refused_until_it_is_released() {
    let db = fresh_database().await;
    let mut s = settings(vec![shard(
        "s0",
        &db,
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )]);
    s.worker_id = Some(700);
    let first = TestApp::spawn_real_time(s.clone()).await.unwrap();
    assert_eq!(worker_of(&first.metrics().await), 700);

    let err = TestApp::spawn_real_time(s.clone())
        .await
        .err()
        .expect("a second instance on worker_id 700 is refused");
    assert!(
        err.to_string()
            .contains("worker_id = 700 is held by another instance"),
        "{err}"
    );

    // An instance with no worker_id next to it leases another.
    let mut free = s.clone();
    free.worker_id = None;
    let other = TestApp::spawn_real_time(free).await.unwrap();
    assert_ne!(worker_of(&other.metrics().await), 700);
}

#[tokio::test]
async fn a_lease_that_cannot_be_renewed_stops_shortens_but_not_redirects_until_renewed() {
    // Arrange: a two-second lease, renewed every 667 ms.
    let db = fresh_database().await;
    let mut s = settings(vec![shard(
        "s0",
        &db,
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )]);
    s.ids.lease_ttl_s = std::time::Duration::from_secs(2);
    s.database.query_timeout_ms = std::time::Duration::from_millis(500);
    let app = TestApp::spawn_real_time(s).await.unwrap();
    let link = app
        .shorten_ok(json!({"url": "https://example.com/kept"}))
        .await;
    let code = link["code"].as_str().unwrap().to_owned();
    let held = worker_of(&app.metrics().await);
    assert!(held >= 0);

    // Act: the directory's lease table is locked (as a directory that stops answering
    // would be) for 4 s, past the lease's expiry.
    let mut pg = connect(&db).await;
    let tx = pg.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE worker_leases IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let locked = Instant::now();

    // Assert: within the lease, shortens go on; then they answer 503 no_worker_id and
    // redirects still work.
    let mut stopped_after = None;
    let mut created_late = 0;
    while locked.elapsed() < Duration::from_millis(3_800) {
        let r = app
            .shorten(json!({"url": "https://example.com/during"}))
            .await;
        match r.status() {
            StatusCode::CREATED => {
                created_late += u32::from(locked.elapsed() > Duration::from_secs(2));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(error_code(r).await, "no_worker_id");
                stopped_after.get_or_insert(locked.elapsed());
            }
            other => panic!("shorten answered {other}"),
        }
        let r = app.follow(&code).await;
        assert_eq!(r.status(), StatusCode::FOUND, "redirects go on");
        assert_eq!(r.headers()[header::LOCATION], "https://example.com/kept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped_after =
        stopped_after.expect("shortens stopped while the lease could not be renewed");
    assert!(stopped_after <= Duration::from_secs(2), "{stopped_after:?}");
    assert_eq!(created_late, 0, "nothing minted past the lease's expiry");
    assert_eq!(
        worker_of(&app.metrics().await),
        -1,
        "holds no ID, and says so"
    );

    // The directory answers again: the instance takes an ID and shortens resume.
    tx.commit().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = app
            .shorten(json!({"url": "https://example.com/after"}))
            .await;
        if r.status() == StatusCode::CREATED {
            break;
        }
        assert!(Instant::now() < deadline, "shortens never resumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = app.metrics().await;
    assert!(worker_of(&m) >= 0);
    assert!(
        metric(&m, "shortener_worker_lease_renewals_total{result=\"lost\"}") >= 1,
        "{m}"
    );
    assert_eq!(metric(&m, "shortener_id_duplicates_total"), 0);
}

#[tokio::test]
async fn an_id_taken_over_starts_after_the_last_millisecond_its_holder_could_use() {
    let db = fresh_database().await;
    let s = settings(vec![shard(
        "s0",
        &db,
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )]);
    let store = shortener::store::postgres::ShardedPostgres::connect(
        &s.shards,
        &s.database,
        s.directory_name(),
    )
    .unwrap();
    let ttl = Duration::from_secs(1);

    // A takes 5, B is refused it, A gives it up having used up to millisecond 1234.
    let a = store.acquire("a", Some(5), ttl, 9_999).await.unwrap();
    assert_eq!(
        a,
        Ok(Lease {
            worker: 5,
            floor_ms: 0
        })
    );
    let b = store.acquire("b", Some(5), ttl, 0).await.unwrap();
    assert!(
        matches!(b, Err(Refusal::Held { ref holder, .. }) if holder == "a"),
        "{b:?}"
    );
    assert!(store.renew(5, "a", ttl, 9_999).await.unwrap());
    assert!(
        !store.renew(5, "b", ttl, 0).await.unwrap(),
        "only the holder renews"
    );
    store.release(5, "a", 1_234).await.unwrap();

    // B takes it over and must start after 1234; A taking it back later needs no floor
    // of its own making, but B's.
    let b = store.acquire("b", Some(5), ttl, 50_000).await.unwrap();
    assert_eq!(
        b,
        Ok(Lease {
            worker: 5,
            floor_ms: 1_234
        })
    );
    assert!(
        !store.renew(5, "a", ttl, 0).await.unwrap(),
        "A's lease is gone"
    );

    // Without a wish, the lowest free ID; the holder's own last one first.
    let any = store.acquire("c", None, ttl, 0).await.unwrap().unwrap();
    assert_eq!(any.worker, 0);
    let again = store.acquire("b", None, ttl, 0).await.unwrap().unwrap();
    assert_eq!(
        again,
        Lease {
            worker: 5,
            floor_ms: 0
        },
        "b keeps its own"
    );

    // A lease runs out by the directory's clock.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(
        !store.renew(0, "c", ttl, 0).await.unwrap(),
        "c's lease ran out"
    );
    let d = store.acquire("d", Some(0), ttl, 0).await.unwrap();
    assert!(d.is_ok(), "{d:?}");
}

#[tokio::test]
async fn a_generator_floor_delays_ids_past_the_previous_holders_last_millisecond() {
    use shortener::domain::{ManualClock, SnowflakeGenerator};
    let clock = std::sync::Arc::new(ManualClock::at(support::t0()));
    let ids = SnowflakeGenerator::new(3, clock.clone(), Duration::from_millis(50));
    let now = ids.now_ms();

    // A floor 20 ms ahead: waited out, the ID after it.
    ids.raise_floor(now + 20);
    let waiting = tokio::spawn(async move {
        let id = ids.next_id().await;
        (id, ids)
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    clock.set_ms(now + 21);
    let (id, ids) = waiting.await.unwrap();
    assert_eq!(id.unwrap().unix_ms(), now + 21);

    // One far ahead of the clock fails as a backward clock does: 503, nothing reused.
    ids.raise_floor(now + 10_000);
    assert!(ids.next_id().await.is_err());
}
