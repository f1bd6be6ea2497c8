//! The cache when Redis goes away and comes back, on a redis-server of each test's
//! own: redirects keep working from the database, and what could not reach Redis is
//! replayed.

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use shortener::cache::breaker::BreakerState;
use shortener::domain::ManualClock;
use support::cache::{code, counted, one_shard, redis_at};
use support::{t0, TestApp};

/// A redis-server of the test's own, on a free port, that the test can stop.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Self { port, child: None };
        r.restart();
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/services.sh)");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn redirects_keep_working_while_redis_is_down_and_the_cache_recovers() {
    let mut redis = PrivateRedis::start();
    let s = one_shard(Some(redis_at(&redis.url())), false).await;
    let (app, loads) = counted(s, Arc::new(ManualClock::at(t0()))).await;
    let links: Vec<String> = futures::future::join_all(
        (0..5).map(|i| app.shorten_ok(json!({"url": format!("https://example.com/{i}")}))),
    )
    .await
    .iter()
    .map(code)
    .collect();
    let tier = app.app.links.cache().redis().unwrap().clone();

    // Redis goes away: every redirect still answers from the database.
    redis.stop();
    for round in 0..20 {
        for c in &links {
            let r = app.follow(c).await;
            assert_eq!(r.status(), StatusCode::FOUND, "round {round}");
        }
    }
    assert_eq!(tier.breaker_state(), BreakerState::Open);
    assert!(
        app.app
            .links
            .cache()
            .stats()
            .l2_skipped
            .load(Ordering::Relaxed)
            > 0
    );
    assert_eq!(
        loads.load(Ordering::SeqCst),
        100,
        "every redirect went to the database"
    );

    // Redis comes back (empty): the breaker closes by itself and Redis serves again.
    redis.restart();
    let started = Instant::now();
    while tier.breaker_state() != BreakerState::Closed {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "breaker did not close"
        );
        assert_eq!(app.follow(&links[0]).await.status(), StatusCode::FOUND);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for c in &links {
        assert_eq!(app.follow(c).await.status(), StatusCode::FOUND);
    }
    let before = loads.load(Ordering::SeqCst);
    for c in &links {
        assert_eq!(app.follow(c).await.status(), StatusCode::FOUND);
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        before,
        "refilled Redis answers again"
    );
}

#[tokio::test]
async fn a_delete_while_redis_is_unreachable_is_replayed_when_it_returns() {
    // Redis paused (SIGSTOP) rather than restarted, so it still holds the live entry
    // when it comes back: without the replay that entry would be served as a redirect.
    let redis = PrivateRedis::start();
    let s = one_shard(Some(redis_at(&redis.url())), false).await;
    let clock = Arc::new(ManualClock::at(t0()));
    let (app, _) = counted(s.clone(), clock.clone()).await;
    let c = code(
        &app.shorten_ok(json!({"url": "https://example.com/paused"}))
            .await,
    );
    assert_eq!(app.follow(&c).await.status(), StatusCode::FOUND);

    redis.signal("-STOP");
    let deleted = app
        .request(Method::DELETE, &format!("/api/v1/links/{c}"))
        .await;
    assert_eq!(
        deleted.status(),
        StatusCode::NO_CONTENT,
        "deletes do not need Redis"
    );
    redis.signal("-CONT");

    // A second instance that reads Redis only after it is back must see the deletion.
    let started = Instant::now();
    let other = TestApp::spawn(s, clock).await;
    loop {
        let status = other.follow(&c).await.status();
        if status == StatusCode::GONE {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
