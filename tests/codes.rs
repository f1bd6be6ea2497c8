//! Generated codes as an attacker and an operator meet them: unguessable, stable across
//! the change to keyed codes, and bound to one key per deployment.

mod support;

use std::collections::HashSet;
use std::sync::Arc;

use reqwest::{header, StatusCode};
use serde_json::{json, Value};
use shortener::domain::codes::{decode_canonical, encode};
use shortener::domain::{ManualClock, Snowflake};
use shortener::startup::codes::{KEY_FILE, UPGRADE_GRACE};
use support::{connect, fresh_database, settings, shard, t0, TestApp};

fn one_shard(url: &str) -> shortener::config::Settings {
    settings(vec![shard(
        "s0",
        url,
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )])
}

/// The guesses an attacker makes around a code they hold, read as a Base62 number:
/// the next and previous sequence numbers, the same sequence in nearby milliseconds, and
/// the neighbouring worker IDs.
fn guesses_around(number: u64) -> Vec<u64> {
    let mut out = Vec::new();
    for step in 1..=3u64 {
        for delta in [step, step << 12, step << 22] {
            out.push(number.wrapping_add(delta));
            out.push(number.wrapping_sub(delta));
        }
    }
    out.retain(|n| *n <= i64::MAX as u64);
    out
}

#[tokio::test]
async fn an_attacker_stepping_around_300_fresh_codes_finds_no_other_link() {
    // Arrange: 300 links made as fast as the API takes them, all in one millisecond of
    // the stopped test clock: consecutive IDs, the attacker's best case.
    let app = TestApp::single().await;
    let mut codes = Vec::new();
    for i in 0..300 {
        let link = app
            .shorten_ok(json!({"url": format!("https://example.com/victim/{i}")}))
            .await;
        codes.push(link["code"].as_str().unwrap().to_owned());
    }
    let real: HashSet<&String> = codes.iter().collect();

    // Act: 2,000 guesses around the codes held, each a well-formed generated code.
    let mut guesses: Vec<String> = codes
        .iter()
        .flat_map(|c| guesses_around(decode_canonical(c).unwrap()))
        .map(encode)
        .filter(|g| !real.contains(g))
        .collect();
    guesses.sort();
    guesses.dedup();
    guesses.truncate(2_000);
    assert_eq!(guesses.len(), 2_000, "enough distinct guesses");
    let mut hits = 0;
    for guess in &guesses {
        match app.follow(guess).await.status() {
            StatusCode::NOT_FOUND => {}
            other => {
                hits += 1;
                eprintln!("{guess} answered {other}");
            }
        }
    }

    // Assert: nothing found. The same guesses made on the IDs behind the codes (what a
    // plain Base62 code of the ID exposed) would have found most of the links.
    assert_eq!(hits, 0, "guessed codes that name links");
    let ids: HashSet<u64> = codes.iter().map(|c| app.id_of_code(c).get()).collect();
    let plain_hits = ids
        .iter()
        .flat_map(|id| guesses_around(*id))
        .filter(|g| ids.contains(g))
        .count();
    assert!(
        plain_hits > 300,
        "the attack is a real one: {plain_hits} hits on IDs"
    );
    // And a code says nothing about when or where it was minted.
    let id = app.id_of_code(&codes[0]);
    let number = Snowflake::from_u64(decode_canonical(&codes[0]).unwrap()).unwrap();
    assert_ne!(number.timestamp(), id.timestamp());
}

#[tokio::test]
async fn links_made_before_codes_were_keyed_keep_their_codes() {
    // Arrange: a deployment that already holds a link with a plain code (the Base62 of
    // its ID), as earlier versions made them, and has never recorded a code scheme.
    let url = fresh_database().await;
    let old_id = Snowflake::from_parts(
        u64::try_from((t0() - chrono::Duration::days(30)).timestamp_millis()).unwrap()
            - shortener::domain::ids::EPOCH_MS,
        1,
        7,
    );
    connect(&url)
        .await
        .execute(
            "INSERT INTO links (id, url, redirect, created_at) VALUES ($1, $2, 302, now())",
            &[&old_id.as_i64(), &"https://example.com/old"],
        )
        .await
        .unwrap();
    let old_code = encode(old_id.get());

    // Act: the first start with keyed codes.
    let clock = Arc::new(ManualClock::at(t0()));
    let app = TestApp::spawn(one_shard(&url), clock.clone()).await;

    // Assert: the old code still redirects; links made in the upgrade's grace period
    // still get plain codes (old instances may still be minting them); after it, codes
    // are keyed, and every one of them redirects.
    let r = app.follow(&old_code).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(r.headers()[header::LOCATION], "https://example.com/old");
    let during = app
        .shorten_ok(json!({"url": "https://example.com/during"}))
        .await;
    let during_code = during["code"].as_str().unwrap();
    assert_eq!(
        decode_canonical(during_code).unwrap(),
        app.id_of_code(during_code).get(),
        "plain during the grace period"
    );
    clock.advance_ms(u64::try_from(UPGRADE_GRACE.as_millis()).unwrap() + 1);
    let after = app
        .shorten_ok(json!({"url": "https://example.com/after"}))
        .await;
    let after_code = after["code"].as_str().unwrap();
    assert_ne!(
        decode_canonical(after_code).unwrap(),
        app.id_of_code(after_code).get(),
        "keyed after it"
    );
    for (code, target) in [
        (old_code.as_str(), "https://example.com/old"),
        (during_code, "https://example.com/during"),
        (after_code, "https://example.com/after"),
    ] {
        let r = app.follow(code).await;
        assert_eq!(r.headers()[header::LOCATION], target, "{code}");
    }
}

#[tokio::test]
async fn an_instance_with_another_code_key_refuses_to_start() {
    // Arrange: a deployment whose codes are made with the test key.
    let url = fresh_database().await;
    let first = TestApp::spawn(one_shard(&url), Arc::new(ManualClock::at(t0()))).await;
    let link = first
        .shorten_ok(json!({"url": "https://example.com/k"}))
        .await;

    // Act: a second instance configured with another key.
    let mut other = one_shard(&url);
    other.codes.key = Some("0123456789abcdef0123456789abcdef".into());
    let refused = TestApp::try_spawn(other, Arc::new(ManualClock::at(t0())))
        .await
        .err()
        .expect("another key is refused");

    // Assert: it says why, and a second instance with the right key reads the code.
    assert!(
        refused
            .to_string()
            .contains("is not the key this deployment's codes were made with"),
        "{refused}"
    );
    let second = TestApp::spawn(one_shard(&url), Arc::new(ManualClock::at(t0()))).await;
    let code = link["code"].as_str().unwrap();
    assert_eq!(second.follow(code).await.status(), StatusCode::FOUND);
}

/// An embedded app on `dir` with no key configured; stop it with the returned closure.
async fn embedded_app(
    dir: &std::path::Path,
) -> anyhow::Result<(String, impl std::future::Future<Output = ()>)> {
    let mut s = settings(Vec::new());
    s.codes.key = None;
    s.data_dir = dir.to_owned();
    let app = shortener::startup::Application::build(s).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown();
    let running = tokio::spawn(app.run_until_stopped());
    let stop = async move {
        shutdown.begin();
        running.await.unwrap().unwrap();
    };
    Ok((base, stop))
}

#[tokio::test]
async fn the_embedded_mode_makes_its_key_on_first_start_and_refuses_a_wrong_one() {
    // Arrange: an empty data directory and no key configured.
    let dir = tempfile::tempdir().unwrap();
    let client = support::client_with_key(None);

    // Act: the first start makes the key; a link is created; the app stops.
    let (base, stop) = embedded_app(dir.path()).await.unwrap();
    let link: Value = client
        .post(format!("{base}/api/v1/links"))
        .json(&json!({"url": "https://example.com/e"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stop.await;
    let code = link["code"].as_str().unwrap().to_owned();

    // Assert: the key file holds 32 hex digits, readable by its owner only.
    let path = dir.path().join(KEY_FILE);
    let key = std::fs::read_to_string(&path).unwrap();
    assert_eq!(key.trim().len(), 32);
    assert!(key.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A restart reads the same key: the code still redirects.
    let (base, stop) = embedded_app(dir.path()).await.unwrap();
    let r = client.get(format!("{base}/{code}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    stop.await;

    // Another key beside the same database is refused, and so is a broken file.
    std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
    let err = embedded_app(dir.path()).await.err().expect("refused");
    assert!(err.to_string().contains("is not the key"), "{err}");
    std::fs::write(&path, "not a key\n").unwrap();
    let err = embedded_app(dir.path()).await.err().expect("refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains(KEY_FILE) && msg.contains("32 hexadecimal digits"),
        "{msg}"
    );
}
