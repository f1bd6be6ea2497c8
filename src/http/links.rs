//! `POST /api/v1/links`, `GET` and `DELETE /api/v1/links/{code}`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::domain::{Link, LinkState};
use crate::error::ApiError;
use crate::service::CreateLink;

/// A link as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LinkView {
    /// The code (or alias) after the service's base URL.
    pub code: String,
    /// The short link to hand out.
    pub short_url: String,
    /// Where it redirects.
    pub url: String,
    pub created_at: DateTime<Utc>,
    /// After this instant it answers 410.
    pub expires_at: Option<DateTime<Utc>>,
    /// 301 or 302.
    #[schema(minimum = 301, maximum = 302)]
    pub redirect: u16,
    pub status: LinkState,
}

impl LinkView {
    fn new(link: Link, public_base: &str, now: DateTime<Utc>) -> Self {
        let code = link.code();
        Self {
            short_url: format!("{public_base}/{code}"),
            code,
            status: link.state(now),
            url: link.url,
            created_at: link.created_at,
            expires_at: link.expires_at,
            redirect: link.redirect.status(),
        }
    }
}

/// Shortens a URL: `201` with the link and a `Location` naming its API resource.
#[utoipa::path(
    post,
    path = "/api/v1/links",
    tag = "links",
    operation_id = "createLink",
    request_body = CreateLink,
    security((), ("api_key" = [])),
    responses(
        (status = 201, description = "Created; the short URL works from now on", body = LinkView,
         headers(("Location" = String, description = "The link's API resource"))),
        (status = 400, description = "Malformed JSON", body = crate::error::Body),
        (status = 401, description = "No valid API key (and anonymous shortening is off)", body = crate::error::Body),
        (status = 409, description = "The alias is taken", body = crate::error::Body),
        (status = 413, description = "Body too large", body = crate::error::Body),
        (status = 415, description = "Not JSON", body = crate::error::Body),
        (status = 422, description = "A value breaks a rule (URL, alias, expiry, redirect)", body = crate::error::Body),
        (status = 429, description = "Over the shortening quota", body = crate::error::Body),
        (status = 503, description = "Storage or ID clock unavailable; retry", body = crate::error::Body),
    )
)]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<CreateLink>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.auth.caller(&req).await?;
    state.limit_shorten(&req, &caller)?;
    let new = state.links.validate(body.into_inner(), caller.tenant())?;
    let link = state.links.create(new).await?;
    let view = LinkView::new(link, &state.public_base, state.links.now());
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/links/{}", view.code)))
        .json(view))
}

/// The link a code names (also when expired); `410` once deleted.
#[utoipa::path(
    get,
    path = "/api/v1/links/{code}",
    tag = "links",
    operation_id = "getLink",
    params(("code" = String, Path, description = "The link's code or alias")),
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "The link", body = LinkView),
        (status = 401, description = "No valid API key", body = crate::error::Body),
        (status = 404, description = "No such link, or another tenant's", body = crate::error::Body),
        (status = 410, description = "Deleted", body = crate::error::Body),
        (status = 503, description = "Its shard is unavailable", body = crate::error::Body),
    )
)]
pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.auth.caller(&req).await?;
    let link = state.links.find_for(&caller, &code).await?;
    let now = state.links.now();
    if link.state(now) == LinkState::Deleted {
        crate::service::check_state(&link, now)?;
    }
    Ok(HttpResponse::Ok().json(LinkView::new(link, &state.public_base, now)))
}

/// Deletes a link: `204`; the code answers `410` from then on.
#[utoipa::path(
    delete,
    path = "/api/v1/links/{code}",
    tag = "links",
    operation_id = "deleteLink",
    params(("code" = String, Path, description = "The link's code or alias")),
    security((), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid API key", body = crate::error::Body),
        (status = 403, description = "Created without a key: nobody owns it", body = crate::error::Body),
        (status = 404, description = "No such link, or another tenant's", body = crate::error::Body),
        (status = 410, description = "Already deleted", body = crate::error::Body),
        (status = 503, description = "Its shard is unavailable", body = crate::error::Body),
    )
)]
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.auth.caller(&req).await?;
    state.links.delete(&caller, &code).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Links one page holds when `limit` is not given.
pub const DEFAULT_PAGE: usize = 50;
/// The most links one page may hold.
pub const MAX_PAGE: usize = 1_000;

/// Query parameters of the listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Links per page, 1 to 1000 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9A-Za-z]{1,11}$")]
    cursor: Option<String>,
}

/// One page of the caller's links.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LinkPage {
    pub links: Vec<LinkView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The calling tenant's live links, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/links",
    tag = "links",
    operation_id = "listLinks",
    params(Page),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "A page of links", body = LinkPage),
        (status = 401, description = "No valid API key", body = crate::error::Body),
        (status = 422, description = "Bad limit or cursor", body = crate::error::Body),
        (status = 503, description = "A shard is unavailable", body = crate::error::Body),
    )
)]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    page: Result<web::Query<Page>, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.auth.require_tenant(&req).await?;
    let page = page.map_err(|e| ApiError::unprocessable("invalid_query", e.to_string()))?;
    let limit = match page.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::unprocessable(
                    "invalid_limit",
                    format!("limit must be a whole number from 1 to {MAX_PAGE}"),
                )
            })?,
    };
    let before = page
        .cursor
        .as_deref()
        .map(|c| {
            crate::domain::codes::decode_canonical(c)
                .ok()
                .and_then(crate::domain::Snowflake::from_u64)
                .ok_or_else(|| {
                    ApiError::unprocessable("invalid_cursor", "cursor is not one this API gave out")
                })
        })
        .transpose()?;
    let links = state.links.list(tenant, before, limit).await?;
    let next_cursor = (links.len() == limit)
        .then(|| links.last().map(|l| crate::domain::codes::code_for(l.id)))
        .flatten();
    let now = state.links.now();
    Ok(HttpResponse::Ok().json(LinkPage {
        links: links
            .into_iter()
            .map(|l| LinkView::new(l, &state.public_base, now))
            .collect(),
        next_cursor,
    }))
}
