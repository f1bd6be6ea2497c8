//! The real `shortener` binary: `migrate`, `shards`, config errors, and serving across a
//! shard boundary that passes while it runs.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{header, StatusCode};
use serde_json::{json, Value};
use support::process::{
    binary, client, free_port, get_json, migrate, shorten_at, wait_ready, Server,
};
use support::{admin, connect, pg_server, TEST_CODE_KEY};

fn write_config(body: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(body.as_bytes()).unwrap();
    file
}

fn two_shard_config(port: u16, db0: &str, db1: &str, boundary: &str) -> String {
    let pg = pg_server();
    format!(
        r#"
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
worker_id = 1
directory = "s0"
[[shards]]
name = "s0"
url  = "{pg}/{db0}"
from = "2024-01-01T00:00:00Z"
[[shards]]
name = "s1"
url  = "{pg}/{db1}"
from = "{boundary}"
[codes]
key = "{TEST_CODE_KEY}"
"#
    )
}

#[tokio::test]
async fn migrate_then_serve_across_a_boundary_a_few_seconds_in_the_future() {
    // Arrange: two databases that do not exist yet; s1 starts 3 s from now.
    let suffix = format!("{:x}", rand::random::<u64>());
    let (db0, db1) = (
        format!("shortener_test_b0_{suffix}"),
        format!("shortener_test_b1_{suffix}"),
    );
    let boundary_at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let boundary = boundary_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let port = free_port();
    let config = write_config(&two_shard_config(port, &db0, &db1, &boundary));

    // `migrate` creates and migrates both; running it twice is harmless.
    for _ in 0..2 {
        let stdout = migrate(config.path());
        let v = shortener::store::postgres::latest_version();
        assert!(
            stdout.contains(&format!("s0: schema version {v}"))
                && stdout.contains(&format!("s1: schema version {v}")),
            "{stdout}"
        );
    }

    // `shards` prints the map.
    let out = binary()
        .arg("shards")
        .env("SHORTENER_CONFIG", config.path())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let s1_first_id =
        shortener::domain::Snowflake::first_of_ms(boundary_at.timestamp_millis() as u64).get();
    assert!(table.contains(&s1_first_id.to_string()), "{table}");
    assert!(table.lines().nth(1).unwrap().starts_with("s0"), "{table}");

    // `keys create` prints a new key once, on its second line.
    let out = binary()
        .args(["keys", "create", "--tenant", "e2e"])
        .env("SHORTENER_CONFIG", config.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let key = printed
        .lines()
        .find(|l| l.starts_with("shk_"))
        .unwrap_or_else(|| panic!("no key in {printed}"))
        .to_owned();

    // Act: serve; shorten before and after the boundary.
    let base = format!("http://127.0.0.1:{port}");
    let _server = Server(
        binary()
            .arg("serve")
            .arg("--config")
            .arg(config.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_ready(&base).await;
    let client = client();
    // The distributed mode refuses anonymous shortening by default.
    let anonymous = client
        .post(format!("{base}/api/v1/links"))
        .json(&json!({ "url": "https://example.com/anonymous" }))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let shorten = |url: &'static str| {
        let client = client.clone();
        let base = base.clone();
        let key = key.clone();
        async move {
            let r = client
                .post(format!("{base}/api/v1/links"))
                .bearer_auth(&key)
                .json(&json!({ "url": url }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
            r.json::<Value>().await.unwrap()
        }
    };
    let before = shorten("https://example.com/before").await;
    let wait = (boundary_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default()
        + Duration::from_millis(200);
    tokio::time::sleep(wait).await;
    let after = shorten("https://example.com/after").await;

    // Assert: different shards, both redirect.
    let count = |db: String| async move {
        let c = connect(&format!("{}/{db}", pg_server())).await;
        c.query_one("SELECT count(*) FROM links", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(count(db0.clone()).await, 1, "the early link is on s0");
    assert_eq!(count(db1.clone()).await, 1, "the late link is on s1");
    for (link, target) in [
        (before, "https://example.com/before"),
        (after, "https://example.com/after"),
    ] {
        let r = client
            .get(link["short_url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(r.headers()[header::LOCATION], target);
    }
    drop(_server);
    let admin = admin().await;
    for db in [db0, db1] {
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await;
    }
}

#[test]
fn a_bad_configuration_stops_startup_with_a_clear_message() {
    let cases = [
        (
            two_shard_config(1, "a", "b", "2023-01-01T00:00:00Z"),
            "before the ID epoch",
        ),
        (
            two_shard_config(1, "a", "b", "2024-01-01T00:00:00Z"),
            "must not overlap",
        ),
        (
            two_shard_config(1, "a", "b", "2027-01-01T00:00:00Z")
                .replace("directory = \"s0\"", "directory = \"s9\""),
            "names no configured shard",
        ),
        (
            two_shard_config(1, "a", "b", "2027-01-01T00:00:00Z")
                .replace("postgres://", "mysql://"),
            "must start with postgres://",
        ),
        (
            two_shard_config(1, "a", "b", "2027-01-01T00:00:00Z")
                .replace(TEST_CODE_KEY, "not-a-key"),
            "codes.key: a code key is 32 hexadecimal digits",
        ),
        (
            format!(
                "{}\n[geo]\ndatabase = \"/nonexistent/countries.mmdb\"\n",
                two_shard_config(1, "a", "b", "2027-01-01T00:00:00Z")
            ),
            "geo.database /nonexistent/countries.mmdb",
        ),
        (
            format!(
                "{}\n[links]\nnot_found_url = \"ftp://example.com/\"\n",
                two_shard_config(1, "a", "b", "2027-01-01T00:00:00Z")
            ),
            "links.not_found_url must be an http(s) URL",
        ),
        // A value of the wrong type names its key (parsed once, at load).
        (
            format!(
                "{}\n[database]\nquery_timeout_ms = \"soon\"\n",
                two_shard_config(1, "a", "b", "2027-01-01T00:00:00Z")
            ),
            "database.query_timeout_ms",
        ),
        (
            format!(
                "{}\n[limits]\ntrusted_proxies = [\"proxy.local\"]\n",
                two_shard_config(1, "a", "b", "2027-01-01T00:00:00Z")
            ),
            "limits.trusted_proxies",
        ),
    ];
    /// `serve` on a config of this text, to its exit.
    fn serve_on(body: &str) -> std::process::Output {
        let config = write_config(body);
        binary()
            .arg("serve")
            .arg("--config")
            .arg(config.path())
            .output()
            .unwrap()
    }
    for (body, expected) in cases {
        let out = serve_on(&body);
        assert_eq!(out.status.code(), Some(2), "{expected}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr}"
        );
    }
    let out = binary()
        .args(["serve", "--config", "/nonexistent/shortener.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));

    // The distributed mode without a code key: the instance would make codes no other
    // instance can read, so serve refuses before it listens.
    let keyless = two_shard_config(free_port(), "a", "b", "2027-01-01T00:00:00Z")
        .replace(&format!("[codes]\nkey = \"{TEST_CODE_KEY}\"\n"), "");
    let out = serve_on(&keyless);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("codes.key is required in the distributed mode"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_separate_worker_process_counts_the_clicks_of_a_serve_process() {
    // Arrange: serve with Redis Streams and no worker of its own, and a worker process.
    let suffix = format!("{:x}", rand::random::<u64>());
    let db = format!("shortener_test_w_{suffix}");
    let port = free_port();
    let metrics_port = free_port();
    let mut body = two_shard_config(port, &db, &format!("{db}_1"), "2090-01-01T00:00:00Z");
    body = body.replacen(
        "[[shards]]",
        &format!(
            "worker_metrics_listen = \"127.0.0.1:{metrics_port}\"\n\
             [redis]\nkey_prefix = \"test:{suffix}:\"\n[queue]\nkind = \"redis\"\n\
             [analytics]\nworker_in_serve = false\nflush_interval_ms = 50\n\
             [auth]\nallow_anonymous = true\n[[shards]]"
        ),
        1,
    );
    let config = write_config(&body);
    migrate(config.path());
    let base = format!("http://127.0.0.1:{port}");
    let quiet = |mut c: Command| {
        c.arg("--config")
            .arg(config.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let mut serve = binary();
    serve.arg("serve");
    let _serve = Server(quiet(serve).spawn().unwrap());
    let mut worker = binary();
    worker.arg("worker");
    let mut worker = Server(quiet(worker).spawn().unwrap());
    wait_ready(&base).await;

    // Act: 30 redirects.
    let client = client();
    let link = shorten_at(&client, &base, "https://example.com/w").await;
    let code = link["code"].as_str().unwrap();
    for _ in 0..30 {
        let r = client.get(format!("{base}/{code}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
    }

    // Assert: the worker process counts all of them, and stops cleanly on SIGTERM.
    let started = Instant::now();
    loop {
        let stats = get_json(&client, &format!("{base}/api/v1/links/{code}/stats")).await;
        if stats["total"] == 30 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The worker serves its own metrics.
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("shortener_clicks_counted_total 30"),
        "{metrics}"
    );
    let exit = worker.sigterm_and_wait();
    assert!(exit.success(), "{exit:?}");
    let admin = admin().await;
    for d in [db.clone(), format!("{db}_1")] {
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {d} WITH (FORCE)"))
            .await;
    }
}
