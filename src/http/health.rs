//! `GET /healthz` (the process is alive) and `GET /readyz` (every storage part answers).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::cache::breaker::BreakerState;

/// Alive: answers as long as the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "Alive", body = Object)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready: `200` when every shard answers (`"status": "degraded"` when one does not but
/// a replica of it is up: its redirects go on from there), `503` naming the ones that
/// do not. Redis is
/// reported (its breaker) but does not decide readiness: with Redis down an instance
/// still serves from L1 and the shards, and a load balancer must not pull every
/// instance because the cache failed.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses(
        (status = 200, description = "Every storage part answers, or a replica stands in for its primary (degraded)", body = Object),
        (status = 503, description = "Some part does not (named in `parts`)", body = Object),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let readiness = state.health.readiness().await;
    let ready = readiness.ready();
    let status = match (ready, readiness.degraded()) {
        (false, _) => "unavailable",
        (true, true) => "degraded",
        (true, false) => "ready",
    };
    let mut body = json!({ "status": status, "parts": readiness.parts });
    if !readiness.replicas.is_empty() {
        body["replicas"] = json!(readiness.replicas);
    }
    if let Some(state) = readiness.redis {
        let breaker = match state {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        };
        body["redis"] = json!({ "breaker": breaker });
    }
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
