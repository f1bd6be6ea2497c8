//! What the server answers before any handler runs, over raw TCP: requests that are not
//! HTTP/1.1 the parser accepts, and heads that never finish. Each answer is JSON.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{metric_value, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request` as it is and reads until the server closes (at most 10 s).
async fn exchange(app: &TestApp, request: &[u8]) -> String {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .unwrap();
    String::from_utf8(answer).unwrap()
}

/// The status and the JSON error code of the last response in `answer`.
fn last_error(answer: &str) -> (u16, String) {
    let start = answer.rfind("HTTP/1.1 4").expect("an error response");
    let response = &answer[start..];
    let status = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    assert!(
        head.contains("content-type: application/json"),
        "not JSON: {response}"
    );
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("a content-length")
        .parse()
        .unwrap();
    assert_eq!(body.len(), length, "the length matches the body");
    let json: Value = serde_json::from_str(body).unwrap();
    (status, json["error"]["code"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn requests_the_parser_refuses_answer_json_errors() {
    let app = TestApp::embedded().await;
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(Vec<u8>, u16, &str, &str)> = vec![
        (
            b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n".to_vec(),
            400,
            "malformed_request",
            "a header without a colon",
        ),
        (
            [
                b"GET /".as_slice(),
                &[b'a'; 70_000],
                b" HTTP/1.1\r\nHost: a\r\n\r\n",
            ]
            .concat(),
            400,
            "malformed_request",
            "a request line over 64 KB",
        ),
        (
            format!("GET /x HTTP/1.1\r\nHost: a\r\n{many_headers}\r\n").into_bytes(),
            431,
            "headers_too_large",
            "more headers than the parser holds",
        ),
        (
            b"GET /x HTTP/1.1\r\nHost: a\r\nX-Bad: \x01\r\n\r\n".to_vec(),
            400,
            "malformed_request",
            "a control character in a header value",
        ),
    ];
    let refused = |metrics: &str, code: &str| {
        metric_value(
            metrics,
            &format!("shortener_http_refused_total{{code=\"{code}\"}}"),
        )
    };
    let before = app.metrics().await;
    for (request, status, code, why) in &cases {
        let answer = exchange(&app, request).await;
        assert_eq!(last_error(&answer), (*status, (*code).to_owned()), "{why}");
    }
    // Counted, not logged (any client can send them). Other tests of this binary may
    // refuse requests at the same time (the count is per process): at least these.
    let after = app.metrics().await;
    assert!(refused(&after, "malformed_request") >= refused(&before, "malformed_request") + 3);
    assert!(refused(&after, "headers_too_large") > refused(&before, "headers_too_large"));
}

#[tokio::test]
async fn a_bad_request_after_a_good_one_on_one_connection_still_gets_json() {
    let app = TestApp::embedded().await;
    let answer = exchange(
        &app,
        b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nBad\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(last_error(&answer), (400, "malformed_request".into()));
}

#[tokio::test]
async fn a_head_that_never_finishes_gets_a_json_408() {
    let app = TestApp::embedded().await;
    let answer = exchange(&app, b"GET /slow HTTP/1.1\r\nHost: a\r\n").await;
    assert_eq!(last_error(&answer), (408, "request_timeout".into()));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_does_not_hold_the_shutdown() {
    // Arrange: a connection that made one request and stays open, idle.
    let dir = tempfile::tempdir().unwrap();
    let mut s = support::settings(Vec::new());
    s.data_dir = dir.path().to_owned();
    let app = shortener::startup::Application::build(s).await.unwrap();
    let port = app.port();
    let shutdown = app.shutdown();
    let running = tokio::spawn(app.run_until_stopped());
    let mut idle = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 15];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200 OK");

    // Act
    shutdown.begin();

    // Assert: the server stops well before the 5 s keep-alive would have run out.
    tokio::time::timeout(Duration::from_secs(3), running)
        .await
        .expect("stopped without waiting for the idle connection")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_body_that_ends_early_gets_its_own_code_not_the_frameworks_text() {
    let app = TestApp::embedded().await;
    let head = "POST /api/v1/links HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n";
    for (request, why) in [
        (
            format!("{head}Transfer-Encoding: chunked\r\n\r\n10\r\n{{\"url\": \"https:/"),
            "a chunk cut short, no last chunk",
        ),
        (
            format!("{head}Content-Length: 60\r\n\r\n{{\"url\": \"https://e.com/\""),
            "fewer bytes than Content-Length",
        ),
    ] {
        // The client sends part of the body and closes its side.
        let address = app.address.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("the server answers and closes")
            .unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert_eq!(
            last_error(&answer),
            (400, "incomplete_body".to_owned()),
            "{why}: {answer}"
        );
        assert!(!answer.contains("payload reached EOF"), "{why}: {answer}");
    }
}
