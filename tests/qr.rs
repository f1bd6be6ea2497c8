//! QR codes (`GET /api/v1/links/{code}/qr`) against real PostgreSQL: the image decodes
//! back to the short URL, in both formats and at the bounds of `size`, with the access
//! rules of reading the link.

mod support;

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use support::{error_code, TestApp};

/// Reads the QR code in a PNG back to its text.
fn decode_png(bytes: &[u8]) -> String {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(frame.color_type, png::ColorType::Grayscale);
    let (w, h) = (frame.width as usize, frame.height as usize);
    let stride = frame.line_size;
    // EXPAND widens 1-bit samples to 8 bits (0 or 255).
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| pixels[y * stride + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("the QR code decodes").1
}

#[tokio::test]
async fn the_png_decodes_to_the_short_url_at_every_size() {
    let app = TestApp::single().await;
    let link = app
        .shorten_ok(json!({"url": "https://example.com/qr"}))
        .await;
    let code = link["code"].as_str().unwrap();
    let short_url = link["short_url"].as_str().unwrap();

    for size in ["64", "256", "2048"] {
        let r = app
            .request(
                Method::GET,
                &format!("/api/v1/links/{code}/qr?format=png&size={size}"),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "image/png");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "private, max-age=86400");
        let bytes = r.bytes().await.unwrap();
        let text = decode_png(&bytes);
        assert_eq!(text, short_url, "size {size}");
    }
}

#[tokio::test]
async fn the_default_is_an_svg_of_the_same_code_and_aliases_work_too() {
    let app = TestApp::single().await;
    let link = app
        .shorten_ok(json!({"url": "https://example.com/qr-alias", "alias": "qr-alias"}))
        .await;

    let r = app.request(Method::GET, "/api/v1/links/qr-alias/qr").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "image/svg+xml");
    let svg = r.text().await.unwrap();
    assert!(
        svg.starts_with("<?xml") && svg.contains("<svg"),
        "{svg:.80}"
    );
    // The default size bounds the drawing.
    let width: u32 = svg
        .split("width=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .expect("a width");
    assert!((128..=256).contains(&width), "width {width}");

    let png = app
        .request(Method::GET, "/api/v1/links/qr-alias/qr?format=png")
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(decode_png(&png), link["short_url"].as_str().unwrap());
}

#[tokio::test]
async fn bad_parameters_get_json_errors_naming_the_field() {
    let app = TestApp::single().await;
    let link = app
        .shorten_ok(json!({"url": "https://example.com/q"}))
        .await;
    let code = link["code"].as_str().unwrap();

    for (query, expected, field) in [
        ("size=63", "invalid_size", "size"),
        ("size=2049", "invalid_size", "size"),
        ("size=big", "invalid_size", "size"),
        ("format=gif", "invalid_format", "format"),
        ("colour=red", "invalid_query", ""),
    ] {
        let r = app
            .request(Method::GET, &format!("/api/v1/links/{code}/qr?{query}"))
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], expected, "{query}");
        assert_eq!(
            body["error"]["field"].as_str().unwrap_or(""),
            field,
            "{query}"
        );
    }
}

#[tokio::test]
async fn a_qr_code_follows_the_links_access_rules() {
    let mut settings = support::settings(vec![support::shard(
        "s0",
        &support::fresh_database().await,
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )]);
    settings.auth.allow_anonymous = Some(true);
    let app = TestApp::spawn(
        settings,
        std::sync::Arc::new(shortener::domain::ManualClock::at(support::t0())),
    )
    .await;
    let mine = app
        .shorten_ok(json!({"url": "https://example.com/mine"}))
        .await;
    let code = mine["code"].as_str().unwrap();
    let qr = format!("/api/v1/links/{code}/qr");
    let other = app.key_for("someone-else").await;

    // The owner may; another tenant and an anonymous caller see no such link.
    assert_eq!(app.request(Method::GET, &qr).await.status(), StatusCode::OK);
    let r = app.request_as(Some(&other), Method::GET, &qr).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.request_as(None, Method::GET, &qr).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // An anonymous link's code anybody may draw; an unknown one is 404.
    let anon: Value = app
        .shorten_as(None, json!({"url": "https://example.com/anon"}))
        .await
        .json()
        .await
        .unwrap();
    let anon = anon["code"].as_str().expect("anonymous shortening is on");
    let r = app
        .request_as(None, Method::GET, &format!("/api/v1/links/{anon}/qr"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .request(Method::GET, "/api/v1/links/nosuchlink/qr")
        .await;
    assert_eq!(error_code(r).await, "not_found");

    // Deleted: 410.
    let r = app
        .request(Method::DELETE, &format!("/api/v1/links/{code}"))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app.request(Method::GET, &qr).await;
    assert_eq!(r.status(), StatusCode::GONE);
}
