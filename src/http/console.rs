//! The web console: `/` and the files under `/assets/`, compiled into the binary from
//! `console/` (plain HTML, CSS and JavaScript, no build step), so the service needs
//! nothing installed to serve it.
//!
//! The page is only a client of the public API, with the same requests a program makes.
//! Every answer carries a strict Content-Security-Policy: scripts, styles and fetches
//! from this origin only, no inline script or style, images from this origin or the
//! `blob:` URLs the page makes of QR codes it fetched, no framing, no form posting
//! anywhere. Assets are revalidated with an `ETag` (a hash of their bytes) so a new
//! binary's console is picked up at once.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

/// The policy every console answer carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' blob:; connect-src 'self'; manifest-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
pub struct Asset {
    /// Its path on the public listener.
    pub path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    etag: LazyLock<String>,
}

macro_rules! asset {
    ($path:literal, $file:literal, $type:literal) => {
        Asset {
            path: $path,
            content_type: $type,
            bytes: include_bytes!(concat!("../../console/", $file)),
            etag: LazyLock::new(|| etag_of(include_bytes!(concat!("../../console/", $file)))),
        }
    };
}

/// Every file of the console, the page first.
pub static ASSETS: [Asset; 4] = [
    asset!("/", "index.html", "text/html; charset=utf-8"),
    asset!(
        "/assets/console.js",
        "console.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "/assets/console.css",
        "console.css",
        "text/css; charset=utf-8"
    ),
    asset!("/assets/icon.svg", "icon.svg", "image/svg+xml"),
];

fn etag_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Serves one asset: `200`, or `304` when the browser's copy is current.
pub fn serve(asset: &'static Asset, req: &HttpRequest) -> HttpResponse {
    let etag = asset.etag.as_str();
    let current = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if current {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    if current {
        response.finish()
    } else {
        response.content_type(asset.content_type).body(asset.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_assets_and_no_inline_script() {
        let page = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        for asset in &ASSETS[1..] {
            assert!(page.contains(asset.path), "{} is not used", asset.path);
        }
        // Every script is an external file of this origin; no inline handlers.
        let scripts: Vec<&str> = page.split("<script").skip(1).collect();
        assert!(!scripts.is_empty());
        for script in scripts {
            let tag = &script[..script.find('>').unwrap()];
            assert!(tag.contains(" src=\"/"), "an inline script: <script{tag}>");
            assert!(
                script[tag.len()..].starts_with("></script>"),
                "<script{tag}> has a body"
            );
        }
        assert!(!page.contains("javascript:"));
        assert!(!page.contains(" onclick=") && !page.contains(" onload="));
        assert!(!page.contains(" style="));
        for external in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
            assert!(!page.contains(external), "the page loads {external}…");
        }
    }

    #[test]
    fn the_script_never_writes_html() {
        let script = std::str::from_utf8(ASSETS[1].bytes).unwrap();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!script.contains(sink), "console.js uses {sink}");
        }
    }

    #[test]
    fn every_asset_has_its_own_etag() {
        let tags: std::collections::HashSet<&str> =
            ASSETS.iter().map(|a| a.etag.as_str()).collect();
        assert_eq!(tags.len(), ASSETS.len());
    }
}
