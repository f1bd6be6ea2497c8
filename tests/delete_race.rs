//! A `PATCH` racing a `DELETE` of the same cached link: whichever lands last, the link
//! stays deleted in every tier. (Before, the edit's cache write could land after the
//! delete's tombstone and the short URL redirected again for the L1 TTL.) Embedded (L1
//! only) and distributed (L1 and Redis), 1,000 racing pairs each.

mod support;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::cache::{one_shard, redis_at};
use support::{client_with_key, TestApp};

const PAIRS: usize = 1_000;

/// Races an edit and a delete on each of `PAIRS` cached links, then asks for each one
/// as a visitor; returns the codes that still redirect.
async fn stale_after_racing(app: &TestApp) -> Vec<String> {
    let client = client_with_key(Some(&app.key));
    let codes: Vec<String> = futures::stream::iter(0..PAIRS)
        .map(|i| async move {
            let link = app
                .shorten_ok(json!({"url": format!("https://example.com/{i}")}))
                .await;
            let code = link["code"].as_str().unwrap().to_owned();
            // Cached, as a link that is being visited is.
            assert_eq!(app.follow(&code).await.status(), StatusCode::FOUND);
            code
        })
        .buffer_unordered(32)
        .collect()
        .await;
    futures::stream::iter(&codes)
        .for_each_concurrent(32, |code| {
            let client = client.clone();
            async move {
                let url = format!("{}/api/v1/links/{code}", app.address);
                let edit = client
                    .patch(&url)
                    .json(&json!({"url": format!("https://example.org/{code}")}))
                    .send();
                let delete = client.delete(&url).send();
                let (edited, deleted) = tokio::join!(edit, delete);
                let edited = edited.unwrap().status();
                assert!(
                    edited == StatusCode::OK || edited == StatusCode::GONE,
                    "{edited}"
                );
                assert_eq!(deleted.unwrap().status(), StatusCode::NO_CONTENT);
            }
        })
        .await;
    let mut stale = Vec::new();
    for code in codes {
        let r = app.follow(&code).await;
        if r.status() != StatusCode::GONE {
            let body: Value = r.json().await.unwrap_or_default();
            stale.push(format!("{code}: {body}"));
        }
    }
    stale
}

#[tokio::test]
async fn an_edit_racing_a_delete_never_brings_the_link_back_embedded() {
    let app = TestApp::embedded_real_time().await;
    let stale = stale_after_racing(&app).await;
    assert!(
        stale.is_empty(),
        "{} of {PAIRS} redirect after their delete: {stale:?}",
        stale.len()
    );
}

#[tokio::test]
async fn an_edit_racing_a_delete_never_brings_the_link_back_with_redis() {
    let settings = one_shard(Some(redis_at("redis://127.0.0.1:6379")), true).await;
    let app = TestApp::spawn_real_time(settings).await.unwrap();
    let stale = stale_after_racing(&app).await;
    assert!(
        stale.is_empty(),
        "{} of {PAIRS} redirect after their delete: {stale:?}",
        stale.len()
    );
}
