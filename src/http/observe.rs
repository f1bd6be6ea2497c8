//! Per-request observability: a request ID (taken from `x-request-id` when the client
//! sends a sane one, else made up), echoed in the response; the request's metrics; one
//! log line per request; and a span so every log line of the request carries its ID.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use tracing::Instrument;

use crate::metrics::Metrics;

/// The header that carries the request ID both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Whether every request is logged (`log.requests`).
#[derive(Clone, Copy)]
pub struct LogRequests(pub bool);

fn sane(id: &HeaderValue) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

/// The middleware (wrap with `actix_web::middleware::from_fn(observe)`).
///
/// # Errors
/// Only what the wrapped service returns.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = match req.headers().get(&REQUEST_ID) {
        Some(v) if sane(v) => v.clone(),
        _ => HeaderValue::from_str(&format!("{:016x}", rand::random::<u64>()))
            .expect("hex is a valid header value"),
    };
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let log = req.app_data::<LogRequests>().is_some_and(|l| l.0);
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = id.to_str().unwrap_or_default());
    let mut res = next.call(req).instrument(span.clone()).await?;
    let status = res.status().as_u16();
    // Resources are named after their templates (see `routes`): borrowing the name
    // avoids building the pattern string on every request.
    let route = res.request().match_name().unwrap_or("unmatched");
    let elapsed = started.elapsed();
    if let Some(m) = metrics {
        m.record_request(route, method.as_str(), status, elapsed.as_secs_f64());
    }
    if log {
        span.in_scope(|| {
            tracing::info!(
                method = %method,
                route,
                status,
                latency_ms = elapsed.as_secs_f64() * 1e3,
                "request"
            );
        });
    }
    res.headers_mut().insert(REQUEST_ID, id);
    Ok(res)
}

/// `GET /metrics`: the Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render())
}
