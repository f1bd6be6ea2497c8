//! `GET /healthz` (the process is alive) and `GET /readyz` (every storage part answers).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

/// Alive: answers as long as the process serves HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready: `200` when every shard answers, `503` naming the ones that do not.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let parts = state.links.store().health().await;
    let ready = parts.iter().all(|p| p.ok);
    let body = json!({ "status": if ready { "ready" } else { "unavailable" }, "parts": parts });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
