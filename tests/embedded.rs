//! The embedded mode: no configuration, a SQLite file, and a clean stop.

mod support;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use support::process::{binary, client, free_port, get_json, shorten_at, wait_ready, Server};
use support::TestApp;

/// The binary with no configuration at all (no file, no SHORTENER_* variables), quiet,
/// in its own working directory.
fn bare_binary(cwd: &std::path::Path) -> Command {
    let mut cmd = binary();
    cmd.current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

#[tokio::test]
async fn with_no_setup_the_binary_serves_from_data_and_keeps_every_link_across_a_sigterm() {
    // Arrange: an empty working directory, no configuration.
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let start = || {
        Server(
            bare_binary(cwd.path())
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .spawn()
                .unwrap(),
        )
    };
    let client = client();

    let mut server = start();
    wait_ready(&base).await;
    let mut links = Vec::new();
    for i in 0..50 {
        let mut body = json!({ "url": format!("https://example.com/{i}") });
        if i % 10 == 0 {
            body["alias"] = json!(format!("kept-{i}"));
        }
        let r = client
            .post(format!("{base}/api/v1/links"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let link: Value = r.json().await.unwrap();
        assert!(
            link["short_url"].as_str().unwrap().starts_with(&base),
            "public_url follows --listen"
        );
        links.push((
            link["code"].as_str().unwrap().to_owned(),
            format!("https://example.com/{i}"),
        ));
    }

    // Act: stop with SIGTERM, start again.
    let exit = server.sigterm_and_wait();
    assert!(exit.success(), "clean exit, got {exit:?}");
    let db = cwd.path().join("data/shortener.db");
    assert!(db.exists(), "the database lives under ./data");
    let wal = cwd.path().join("data/shortener.db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "the WAL was checkpointed into the database on shutdown"
    );
    let _server = start();
    wait_ready(&base).await;

    // Assert: every link created before still redirects.
    for (code, target) in links {
        let r = client.get(format!("{base}/{code}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND, "{code}");
        assert_eq!(r.headers()[header::LOCATION], target.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_shortening_for_ten_seconds_get_no_5xx() {
    let app = Arc::new(TestApp::embedded_real_time().await);
    let deadline = Instant::now() + Duration::from_secs(10);
    let created = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|client| {
            let app = app.clone();
            let created = created.clone();
            tokio::spawn(async move {
                let mut failures = Vec::new();
                let mut last = None;
                let mut n = 0;
                while Instant::now() < deadline {
                    n += 1;
                    let r = app
                        .shorten(json!({ "url": format!("https://example.com/{client}/{n}") }))
                        .await;
                    if r.status() == StatusCode::CREATED {
                        created.fetch_add(1, Ordering::Relaxed);
                        last = Some(
                            r.json::<Value>().await.unwrap()["code"]
                                .as_str()
                                .unwrap()
                                .to_owned(),
                        );
                    } else {
                        failures.push(r.status());
                    }
                }
                (failures, last)
            })
        })
        .collect();
    for task in tasks {
        let (failures, last) = task.await.unwrap();
        assert!(failures.is_empty(), "non-201 answers: {failures:?}");
        // The last link each client got resolves.
        let code = last.expect("every client created links");
        assert_eq!(app.follow(&code).await.status(), StatusCode::FOUND);
    }
    assert!(created.load(Ordering::Relaxed) > 64);
    let ready = app.request(Method::GET, "/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_embedded_api_behaves_like_the_distributed_one() {
    let app = TestApp::embedded().await;
    let link = app
        .shorten_ok(json!({"url": "https://example.com/e", "alias": "emb-alias", "redirect": 301}))
        .await;
    let r = app.follow("emb-alias").await;
    assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.headers()[header::LOCATION], "https://example.com/e");
    assert_eq!(link["short_url"], "http://sho.rt/emb-alias");
    let taken = app
        .shorten(json!({"url": "https://example.com/", "alias": "emb-alias"}))
        .await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    let deleted = app.request(Method::DELETE, "/api/v1/links/emb-alias").await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.follow("emb-alias").await.status(), StatusCode::GONE);
    let body: Value = app
        .request(Method::GET, "/readyz")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["parts"][0]["name"], "sqlite");
}

#[tokio::test]
async fn every_click_taken_before_a_sigterm_is_counted_after_a_restart() {
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // The worker would hold clicks for a minute before writing them: only the drain on
    // shutdown can have counted them by the time the process exits.
    let start = || {
        Server(
            bare_binary(cwd.path())
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .env("SHORTENER_ANALYTICS__FLUSH_INTERVAL_MS", "60000")
                .env("SHORTENER_ANALYTICS__BATCH_SIZE", "100000")
                .spawn()
                .unwrap(),
        )
    };
    let client = client();
    let mut server = start();
    wait_ready(&base).await;
    let link = shorten_at(&client, &base, "https://example.com/counted").await;
    let code = link["code"].as_str().unwrap().to_owned();

    // 200 redirects, 20 at a time, then SIGTERM straight away.
    for _ in 0..10 {
        let wave = (0..20).map(|_| client.get(format!("{base}/{code}")).send());
        for r in futures::future::join_all(wave).await {
            assert_eq!(r.unwrap().status(), StatusCode::FOUND);
        }
    }
    let exit = server.sigterm_and_wait();
    assert!(exit.success(), "{exit:?}");

    let _server = start();
    wait_ready(&base).await;
    let stats = get_json(&client, &format!("{base}/api/v1/links/{code}/stats")).await;
    assert_eq!(stats["total"], 200, "{stats}");
}

#[tokio::test]
async fn seeded_links_are_written_to_the_codes_file_and_redirect() {
    let cwd = tempfile::tempdir().unwrap();
    let codes = cwd.path().join("codes.txt");
    let out = bare_binary(cwd.path())
        .stdout(Stdio::piped())
        .args([
            "seed",
            "--count",
            "3000",
            "--url-prefix",
            "https://example.com/s/",
        ])
        .arg("--codes")
        .arg(&codes)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("seeded 3000 links"));
    let lines: Vec<String> = std::fs::read_to_string(&codes)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 3000);
    assert_eq!(
        lines.iter().collect::<std::collections::HashSet<_>>().len(),
        3000
    );

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = Server(
        bare_binary(cwd.path())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .spawn()
            .unwrap(),
    );
    wait_ready(&base).await;
    let client = client();
    for (i, code) in lines.iter().enumerate().step_by(499) {
        let r = client.get(format!("{base}/{code}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(
            r.headers()[header::LOCATION],
            format!("https://example.com/s/{i}").as_str()
        );
    }
}

#[tokio::test]
async fn beginning_the_shutdown_stops_every_part_and_counts_every_click_taken() {
    // Arrange: an embedded app with every background task there is (the Redis cache's
    // listener and replayer, the limiter's eviction, the in-process worker), whose
    // worker would hold clicks for a minute.
    let dir = tempfile::tempdir().unwrap();
    let mut s = support::settings(Vec::new());
    s.data_dir = dir.path().to_owned();
    s.analytics.flush_interval_ms = std::time::Duration::from_millis(60_000);
    s.limits.enabled = true;
    s.limits.redirect_per_second = 100_000;
    s.limits.redirect_burst = 100_000;
    s.redis = Some(shortener::cache::RedisSettings {
        url: "redis://127.0.0.1:6379".into(),
        key_prefix: format!("test:{:016x}:", rand::random::<u64>()),
        ..Default::default()
    });
    let app = shortener::startup::Application::build(s.clone())
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown();
    let state = app.state();
    let running = tokio::spawn(app.run_until_stopped());
    let client = client();
    let link = shorten_at(&client, &base, "https://example.com/stopping").await;
    let code = link["code"].as_str().unwrap().to_owned();
    for _ in 0..30 {
        let r = client.get(format!("{base}/{code}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
    }

    // Act: the one token.
    shutdown.begin();
    let stopped = tokio::time::timeout(Duration::from_secs(20), running).await;

    // Assert: everything ended (the application waits for every task it started), the
    // port is closed, and the clicks were committed before the stores closed.
    stopped
        .expect("every part stopped")
        .unwrap()
        .expect("served cleanly");
    assert!(client.get(format!("{base}/healthz")).send().await.is_err());
    let clicks = shortener::store::sqlite::SqliteClicks::open(dir.path(), &s.sqlite, 0.0).unwrap();
    let id = state
        .links
        .codec()
        .id_of_code(&code)
        .expect("a generated code");
    let today = chrono::Utc::now().date_naive();
    let days = shortener::store::clicks::ClickStore::days(
        &clicks,
        id,
        shortener::domain::DayRange::new(today - chrono::Duration::days(1), today).unwrap(),
    )
    .await
    .unwrap();
    let total: i64 = days.iter().map(|(_, d)| d.total).sum();
    assert_eq!(total, 30);
}

#[tokio::test]
async fn a_write_batch_that_cannot_begin_answers_every_caller_with_503_and_writes_resume() {
    // Arrange: another connection holds the links file's write lock past the writer's
    // busy timeout (5 s), so the writer's next batch cannot begin.
    let app = TestApp::embedded().await;
    let file = app.data_dir.as_ref().unwrap().path().join("shortener.db");
    let lock = rusqlite::Connection::open(&file).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();

    // Act: two shortens at once, likely one batch.
    let shorten = |n: usize| {
        let app = &app;
        async move {
            tokio::time::timeout(
                Duration::from_secs(20),
                app.shorten(json!({"url": format!("https://example.com/locked/{n}")})),
            )
            .await
        }
    };
    let (a, b) = tokio::join!(shorten(1), shorten(2));

    // Assert: each caller has its answer (none waits for a later write), a JSON 503.
    for r in [a, b] {
        let r = r.expect("the caller was answered, not left waiting");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(support::error_code(r).await, "shard_unavailable");
    }
    // And writes resume once the lock is gone.
    lock.execute_batch("ROLLBACK").unwrap();
    let r = app
        .shorten(json!({"url": "https://example.com/after"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}
