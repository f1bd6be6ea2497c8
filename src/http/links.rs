//! `POST /api/v1/links`, `GET`, `PATCH` and `DELETE /api/v1/links/{code}`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::domain::{Cursor, Link, LinkState, PageLimit};
use crate::error::{ApiError, Code};
use crate::service::{CreateLink, LinkChanges};

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
    fn new(link: Link, state: &AppState) -> Self {
        let code = state.links.code_of(&link);
        Self {
            short_url: format!("{}/{code}", state.public_base),
            code,
            status: link.state(state.links.now()),
            url: link.url.into_string(),
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
        (status = 400, description = "Malformed JSON", body = crate::http::error::Body),
        (status = 401, description = "No valid API key (and anonymous shortening is off)", body = crate::http::error::Body),
        (status = 409, description = "The alias is taken", body = crate::http::error::Body),
        (status = 413, description = "Body too large", body = crate::http::error::Body),
        (status = 415, description = "Not JSON", body = crate::http::error::Body),
        (status = 422, description = "A value breaks a rule (URL, alias, expiry, redirect)", body = crate::http::error::Body),
        (status = 429, description = "Over the shortening quota", body = crate::http::error::Body),
        (status = 503, description = "Storage or ID clock unavailable; retry", body = crate::http::error::Body),
    )
)]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<CreateLink>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.auth.caller(&req).await?;
    state.limit_shorten(&req, &caller)?;
    let new = state
        .shortener
        .validate(body.into_inner(), caller.tenant())?;
    let link = state.shortener.create(new).await?;
    let view = LinkView::new(link, &state);
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
        (status = 401, description = "No valid API key", body = crate::http::error::Body),
        (status = 404, description = "No such link, or another tenant's", body = crate::http::error::Body),
        (status = 410, description = "Deleted", body = crate::http::error::Body),
        (status = 503, description = "Its shard is unavailable", body = crate::http::error::Body),
    )
)]
pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.auth.caller(&req).await?;
    let link = state.links.show(&caller, &code).await?;
    Ok(HttpResponse::Ok().json(LinkView::new(link, &state)))
}

/// Edits a link of the caller's: its target, expiry (`null` clears it) or redirect
/// kind. Every instance redirects to the new target at once (through Redis; an instance
/// that missed the invalidation within `cache.l1_ttl_s`). A `301` that browsers already
/// cached keeps sending them to the old target for up to the `max-age` it was served
/// with (a day at most).
#[utoipa::path(
    patch,
    path = "/api/v1/links/{code}",
    tag = "links",
    operation_id = "updateLink",
    params(("code" = String, Path, description = "The link's code or alias")),
    request_body = LinkChanges,
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "The link as it is now", body = LinkView),
        (status = 400, description = "Malformed JSON", body = crate::http::error::Body),
        (status = 401, description = "No valid API key", body = crate::http::error::Body),
        (status = 403, description = "Created without a key: nobody owns it", body = crate::http::error::Body),
        (status = 404, description = "No such link, or another tenant's", body = crate::http::error::Body),
        (status = 410, description = "Deleted", body = crate::http::error::Body),
        (status = 413, description = "Body too large", body = crate::http::error::Body),
        (status = 415, description = "Not JSON", body = crate::http::error::Body),
        (status = 422, description = "A value breaks a rule (URL, expiry, redirect)", body = crate::http::error::Body),
        (status = 503, description = "Its shard is unavailable", body = crate::http::error::Body),
    )
)]
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    code: web::Path<String>,
    body: web::Json<LinkChanges>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.auth.caller(&req).await?;
    let link = state
        .shortener
        .update(&caller, &code, body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(LinkView::new(link, &state)))
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
        (status = 401, description = "No valid API key", body = crate::http::error::Body),
        (status = 403, description = "Created without a key: nobody owns it", body = crate::http::error::Body),
        (status = 404, description = "No such link, or another tenant's", body = crate::http::error::Body),
        (status = 410, description = "Already deleted", body = crate::http::error::Body),
        (status = 503, description = "Its shard is unavailable", body = crate::http::error::Body),
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
        (status = 401, description = "No valid API key", body = crate::http::error::Body),
        (status = 422, description = "Bad limit or cursor", body = crate::http::error::Body),
        (status = 503, description = "A shard is unavailable", body = crate::http::error::Body),
    )
)]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    page: Result<web::Query<Page>, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.auth.require_tenant(&req).await?;
    let page = page.map_err(|e| ApiError::new(Code::InvalidQuery, e.to_string()))?;
    let limit = PageLimit::parse(page.limit.as_deref())?;
    let after = page.cursor.as_deref().map(Cursor::parse).transpose()?;
    let page = state.links.list(tenant, after, limit).await?;
    let next_cursor = page.next.map(|c| c.to_string());
    let links = page.links;
    Ok(HttpResponse::Ok().json(LinkPage {
        links: links
            .into_iter()
            .map(|l| LinkView::new(l, &state))
            .collect(),
        next_cursor,
    }))
}
