//! `GET /{code}`: the hot path. Resolve, answer with `Location`, nothing else.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::AppState;
use crate::domain::RedirectKind;
use crate::error::{ApiError, Code};
use crate::service::ClickInfo;

/// How long browsers may cache a `301` (capped by the link's expiry).
const PERMANENT_MAX_AGE_S: i64 = 86_400;

/// A visit to a code that leads nowhere: counted by kind, and a browser is sent to
/// `links.not_found_url` when one is set (for an unknown, deleted or expired code; a
/// takedown keeps its 410, and an API client always gets the JSON error).
fn orphan(req: &HttpRequest, state: &AppState, e: ApiError) -> Result<HttpResponse, ApiError> {
    let kind = match e.code() {
        Code::NotFound => "unknown",
        Code::LinkDeleted => "deleted",
        Code::LinkExpired => "expired",
        Code::LinkDisabled => "disabled",
        _ => return Err(e),
    };
    if let Some(m) = req.app_data::<web::Data<crate::metrics::Metrics>>() {
        m.orphan_visits.with_label_values(&[kind]).inc();
    }
    match &state.not_found_url {
        Some(url) if kind != "disabled" && wants_html(req) => Ok(HttpResponse::Found()
            .insert_header((header::LOCATION, url.as_str()))
            .insert_header((header::CACHE_CONTROL, "private, no-store"))
            .finish()),
        _ => Err(e),
    }
}

/// Whether the client is a browser navigating (its `Accept` names `text/html`).
fn wants_html(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

/// Redirects to the link's URL with its `301` or `302`.
#[utoipa::path(
    get,
    path = "/{code}",
    tag = "redirect",
    operation_id = "follow",
    params(("code" = String, Path, description = "The link's code or alias")),
    responses(
        (status = 301, description = "Permanent link", headers(("Location" = String))),
        (status = 302, description = "Temporary link (the default), or `links.not_found_url` for a browser asking for an unknown, deleted or expired code", headers(("Location" = String))),
        (status = 404, description = "No such link", body = crate::http::error::Body),
        (status = 410, description = "Expired, deleted, or taken down by an operator", body = crate::http::error::Body),
        (status = 429, description = "Over the redirect quota", body = crate::http::error::Body),
        (status = 451, description = "Points to a domain blocked since it was made", body = crate::http::error::Body),
        (status = 503, description = "Its shard is unavailable", body = crate::http::error::Body),
    )
)]
pub async fn follow(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    redirect(req, state).await
}

/// `HEAD`: the same answer as `GET`, without a body (and the click counts too).
#[utoipa::path(
    head,
    path = "/{code}",
    tag = "redirect",
    operation_id = "followHead",
    params(("code" = String, Path, description = "The link's code or alias")),
    responses(
        (status = 301, description = "Permanent link", headers(("Location" = String))),
        (status = 302, description = "Temporary link (the default)", headers(("Location" = String))),
        (status = 404, description = "No such link"),
        (status = 410, description = "Expired, deleted, or taken down by an operator"),
        (status = 429, description = "Over the redirect quota"),
        (status = 451, description = "Points to a domain blocked since it was made"),
        (status = 503, description = "Its shard is unavailable"),
    )
)]
pub async fn follow_head(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    redirect(req, state).await
}

async fn redirect(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let client = state.clients.resolve(&req);
    state.limit_client(client, crate::limits::Class::Redirect)?;
    let code = req.match_info().get("code").unwrap_or_default();
    let link = match state.links.resolve(code).await {
        Ok(link) => link,
        Err(e) => return orphan(&req, &state, e),
    };
    let link = link.as_ref();
    state.clicks.offer_click(link.id, || {
        let headers = req.headers();
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let (country, city) = state.clients.edge_place(&client, headers);
        ClickInfo {
            referrer: text(header::REFERER),
            user_agent: text(header::USER_AGENT),
            client: client.ip,
            query: req.query_string(),
            country,
            city,
        }
    });
    // A TargetUrl is visible ASCII (checked when it was parsed, stored or read from
    // Redis), so this cannot fail; it is not unwrapped all the same.
    let location = HeaderValue::from_str(link.url.as_str()).map_err(|e| {
        ApiError::internal(anyhow::anyhow!("a target URL is not a header value: {e}"))
    })?;
    let (status, cache) = match link.redirect {
        // A 302 must come back to us on every click, so that clicks can be counted.
        RedirectKind::Temporary => (
            StatusCode::FOUND,
            HeaderValue::from_static("private, no-store"),
        ),
        RedirectKind::Permanent => {
            let mut max_age = PERMANENT_MAX_AGE_S;
            if let Some(at) = link.expires_at {
                max_age = max_age.min((at - state.links.now()).num_seconds().max(0));
            }
            let value = HeaderValue::from_str(&format!("public, max-age={max_age}"))
                .unwrap_or_else(|_| HeaderValue::from_static("no-store"));
            (StatusCode::MOVED_PERMANENTLY, value)
        }
    };
    Ok(HttpResponse::build(status)
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, cache))
        .finish())
}
