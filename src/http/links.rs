//! `POST /api/v1/links`, `GET` and `DELETE /api/v1/links/{code}`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::AppState;
use crate::domain::{Link, LinkState};
use crate::error::ApiError;
use crate::service::CreateLink;

/// A link as the API shows it.
#[derive(Debug, Serialize)]
pub struct LinkView {
    pub code: String,
    pub short_url: String,
    pub url: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
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
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<CreateLink>,
) -> Result<HttpResponse, ApiError> {
    state.limit(&req, crate::limits::Class::Shorten)?;
    let new = state.links.validate(body.into_inner())?;
    let link = state.links.create(new).await?;
    let view = LinkView::new(link, &state.public_base, state.links.now());
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/links/{}", view.code)))
        .json(view))
}

/// The link a code names (also when expired); `410` once deleted.
pub async fn get(
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let link = state.links.find(&code).await?;
    let now = state.links.now();
    if link.state(now) == LinkState::Deleted {
        crate::service::check_state(&link, now)?;
    }
    Ok(HttpResponse::Ok().json(LinkView::new(link, &state.public_base, now)))
}

/// Deletes a link: `204`; the code answers `410` from then on.
pub async fn delete(
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.links.delete(&code).await?;
    Ok(HttpResponse::NoContent().finish())
}
