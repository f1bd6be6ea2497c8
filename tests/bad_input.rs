//! Every bad input the API can get, and the JSON error (status and code) it answers
//! with, against real PostgreSQL.

mod support;

use reqwest::header;
use serde_json::{json, Value};
use support::{connect, error_code, t0, TestApp};

#[tokio::test]
async fn every_bad_input_gets_a_json_error_with_its_own_code() {
    let app = TestApp::single().await;
    app.shorten_ok(json!({"url": "https://example.com/", "alias": "taken-one"}))
        .await;
    let past = t0() - chrono::Duration::seconds(1);
    let long_url = format!("https://example.com/{}", "a".repeat(3_000));
    let json_cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "javascript scheme",
            json!({"url": "javascript:alert(1)"}),
            422,
            "unsupported_scheme",
        ),
        (
            "data scheme",
            json!({"url": "data:text/html,<b>hi</b>"}),
            422,
            "unsupported_scheme",
        ),
        (
            "ftp scheme",
            json!({"url": "ftp://example.com/file"}),
            422,
            "unsupported_scheme",
        ),
        (
            "no host",
            json!({"url": "http://"}),
            422,
            "url_missing_host",
        ),
        (
            "a host of dots",
            json!({"url": "http://./"}),
            422,
            "url_missing_host",
        ),
        (
            "a host of two dots",
            json!({"url": "http://../"}),
            422,
            "url_missing_host",
        ),
        (
            "localhost",
            json!({"url": "http://localhost:8080/"}),
            422,
            "url_local_target",
        ),
        (
            "another loopback address",
            json!({"url": "http://127.0.0.2/"}),
            422,
            "url_local_target",
        ),
        (
            "the unspecified address",
            json!({"url": "http://0.0.0.0/"}),
            422,
            "url_local_target",
        ),
        (
            "IPv6 loopback",
            json!({"url": "http://[::1]/"}),
            422,
            "url_local_target",
        ),
        (
            "IPv4-mapped loopback",
            json!({"url": "http://[::ffff:127.0.0.1]/"}),
            422,
            "url_local_target",
        ),
        (
            "link-local (cloud metadata)",
            json!({"url": "http://169.254.169.254/latest/meta-data/"}),
            422,
            "url_local_target",
        ),
        (
            "not a URL",
            json!({"url": "example.com"}),
            422,
            "invalid_url",
        ),
        (
            "credentials",
            json!({"url": "https://user:pw@example.com/"}),
            422,
            "url_has_credentials",
        ),
        (
            "own host",
            json!({"url": "https://sho.rt/abc"}),
            422,
            "url_points_to_shortener",
        ),
        ("too long", json!({"url": long_url}), 422, "url_too_long"),
        (
            "alias alphabet",
            json!({"url": "https://e.com/", "alias": "a b"}),
            422,
            "invalid_alias",
        ),
        (
            "alias too short",
            json!({"url": "https://e.com/", "alias": "ab"}),
            422,
            "invalid_alias",
        ),
        (
            "alias like a code",
            json!({"url": "https://e.com/", "alias": "abcdefghij"}),
            422,
            "alias_looks_generated",
        ),
        (
            "alias on a route",
            json!({"url": "https://e.com/", "alias": "healthz"}),
            422,
            "alias_reserved",
        ),
        (
            "alias taken",
            json!({"url": "https://e.com/", "alias": "taken-one"}),
            409,
            "alias_taken",
        ),
        (
            "expiry in the past",
            json!({"url": "https://e.com/", "expires_at": past}),
            422,
            "expires_in_past",
        ),
        (
            "redirect 307",
            json!({"url": "https://e.com/", "redirect": 307}),
            422,
            "invalid_redirect",
        ),
        (
            "missing url",
            json!({"alias": "x-y-z"}),
            422,
            "invalid_body",
        ),
        ("url not a string", json!({"url": 5}), 422, "invalid_body"),
        (
            "unknown field",
            json!({"url": "https://e.com/", "colour": "red"}),
            422,
            "invalid_body",
        ),
        (
            "bad expiry format",
            json!({"url": "https://e.com/", "expires_at": "tomorrow"}),
            422,
            "invalid_body",
        ),
    ];
    for (why, body, status, code) in json_cases {
        let response = app.shorten(body).await;
        assert_eq!(response.status().as_u16(), status, "{why}");
        assert_eq!(error_code(response).await, code, "{why}");
    }
    // Every refusal of the URL names the field, so a form shows it beside the URL box
    // (unsupported_scheme named none).
    let response = app.shorten(json!({"url": "ftp://example.com/"})).await;
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "url", "{body}");

    let raw_cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "malformed JSON",
            "application/json",
            "{\"url\": ".into(),
            400,
            "malformed_json",
        ),
        (
            "wrong content type",
            "text/plain",
            "{\"url\": \"https://e.com/\"}".into(),
            415,
            "unsupported_media_type",
        ),
        (
            "body too large",
            "application/json",
            format!("{{\"url\": \"https://e.com/{}\"}}", "a".repeat(20_000)),
            413,
            "body_too_large",
        ),
    ];
    for (why, content_type, body, status, code) in raw_cases {
        let response = app
            .client
            .post(format!("{}/api/v1/links", app.address))
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{why}");
        assert_eq!(error_code(response).await, code, "{why}");
    }
    // Nothing of the refused requests was stored.
    let rows: i64 = connect(&app.settings.shards[0].url)
        .await
        .query_one("SELECT count(*) FROM links", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
}
