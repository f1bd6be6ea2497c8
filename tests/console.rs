//! The web console as HTTP serves it (the browser test is `scripts/console-test.sh`):
//! the page and its assets from the binary, under a strict Content-Security-Policy,
//! revalidated by `ETag`, out of the way of codes and aliases.

mod support;

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use support::TestApp;

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let app = TestApp::embedded().await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/assets/console.js", "text/javascript"),
        ("/assets/console.css", "text/css"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let r = app.request_as(None, Method::GET, path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let h = r.headers();
        assert!(
            h[header::CONTENT_TYPE].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        let etag = h[header::ETAG].to_str().unwrap().to_owned();

        // The browser's copy is current: 304 with no body.
        let again = support::client_with_key(None)
            .get(format!("{}{path}", app.address))
            .header(header::IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.bytes().await.unwrap().is_empty());
        // An old copy: the file again.
        let stale = support::client_with_key(None)
            .get(format!("{}{path}", app.address))
            .header(header::IF_NONE_MATCH, "\"old\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), StatusCode::OK);
    }
    let page = app
        .request_as(None, Method::GET, "/")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("<script src=\"/assets/console.js\""));
}

#[tokio::test]
async fn the_consoles_paths_are_no_codes_and_no_alias_can_take_them() {
    let app = TestApp::embedded().await;
    // Writing to the page is refused with 405, not taken for anything else.
    let r = app.request_as(None, Method::POST, "/").await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    for alias in ["assets", "Assets", "console", "favicon"] {
        let r = app
            .shorten(json!({"url": "https://example.com/x", "alias": alias}))
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{alias}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "alias_reserved", "{alias}");
        assert_eq!(
            body["error"]["field"], "alias",
            "{alias}: the form shows it by the field"
        );
    }
    // An unknown asset is a JSON 404, not the page.
    let r = app
        .request_as(None, Method::GET, "/assets/nothing.js")
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(support::error_code(r).await, "not_found");
}
