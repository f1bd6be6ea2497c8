//! The OpenAPI 3.1 description of the whole HTTP API, generated from the handlers and
//! the types they read and write (utoipa), served at `/api/v1/openapi.json`.
//! `tests/openapi.rs` checks every documented operation against the running routes,
//! and CI runs schemathesis against it.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{health, links, observe, qr, redirect, stats};

/// The spec.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "shortener",
        description = "A URL shortener: create short links, follow them, read their click \
                       stats. API calls authenticate with `Authorization: Bearer shk_…` \
                       (keys come from `shortener keys create`); redirects are public.",
        license(name = "MIT")
    ),
    paths(
        links::create,
        links::list,
        links::get,
        links::update,
        links::delete,
        stats::stats,
        qr::qr,
        redirect::follow,
        redirect::follow_head,
        health::healthz,
        health::readyz,
        observe::metrics,
        spec,
    ),
    modifiers(&BearerKey),
    tags(
        (name = "links", description = "Create, read, edit, list and delete links; click stats; QR codes"),
        (name = "redirect", description = "Following a short link"),
        (name = "operations", description = "Health, readiness, metrics, this spec"),
    )
)]
pub struct ApiDoc;

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("shk_{id}_{secret}")
                    .description(Some("An API key from `shortener keys create`"))
                    .build(),
            ),
        );
    }
}

/// The spec as JSON (rendered once).
pub fn json() -> &'static str {
    static SPEC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SPEC.get_or_init(|| {
        let mut spec = serde_json::to_value(ApiDoc::openapi()).expect("the spec serialises");
        // A created link's code feeds the operations on it (OpenAPI links), so tools such
        // as schemathesis can test create → read → stats → delete. Written here because
        // utoipa 5.5 serialises a link's `operationId` as `operation_id`.
        let links: serde_json::Map<String, serde_json::Value> =
            ["getLink", "getLinkStats", "deleteLink", "follow"]
                .into_iter()
                .map(|op| {
                    (
                        op.to_owned(),
                        serde_json::json!({
                            "operationId": op,
                            "parameters": { "code": "$response.body#/code" }
                        }),
                    )
                })
                .collect();
        if let Some(created) = spec.pointer_mut("/paths/~1api~1v1~1links/post/responses/201") {
            created["links"] = serde_json::Value::Object(links);
        }
        serde_json::to_string_pretty(&spec).expect("the spec serialises")
    })
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", operation_id = "openapi",
    responses((status = 200, description = "This document", body = Object)))]
pub async fn spec() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json())
}
