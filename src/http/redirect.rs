//! `GET /{code}`: the hot path. Resolve, answer with `Location`, nothing else.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::AppState;
use crate::domain::RedirectKind;
use crate::error::ApiError;
use crate::service::ClickInfo;

/// How long browsers may cache a `301` (capped by the link's expiry).
const PERMANENT_MAX_AGE_S: i64 = 86_400;

/// Redirects to the link's URL with its `301` or `302`.
#[utoipa::path(
    get,
    path = "/{code}",
    tag = "redirect",
    operation_id = "follow",
    params(("code" = String, Path, description = "The link's code or alias")),
    responses(
        (status = 301, description = "Permanent link", headers(("Location" = String))),
        (status = 302, description = "Temporary link (the default)", headers(("Location" = String))),
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
    state.limit(&req, crate::limits::Class::Redirect)?;
    let code = req.match_info().get("code").unwrap_or_default();
    let link = state.links.resolve(code).await?;
    let link = link.as_ref();
    state.links.offer_click(link.id, || {
        let headers = req.headers();
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
        ClickInfo {
            referrer: text(header::REFERER),
            user_agent: text(header::USER_AGENT),
            client: req.peer_addr().map(|a| a.ip()),
        }
    });
    let location = HeaderValue::from_str(&link.url).map_err(|e| {
        ApiError::internal(anyhow::anyhow!("stored URL is not a header value: {e}"))
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
