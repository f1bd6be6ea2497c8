//! `GET /api/v1/links/{code}/stats?from=YYYY-MM-DD&to=YYYY-MM-DD`: clicks from the
//! rollups (fast however many clicks a link has). Counts lag the clicks by the worker's
//! flush interval.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::analytics::rollup::Stats;
use crate::domain::DayRange;
use crate::error::{ApiError, Code};

/// Query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// First UTC day (default: 29 days before `to`).
    #[param(value_type = Option<chrono::NaiveDate>)]
    from: Option<String>,
    /// Last UTC day (default: today). At most 366 days from `from`.
    #[param(value_type = Option<chrono::NaiveDate>)]
    to: Option<String>,
}

/// A link's clicks over a range of days.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = LinkStats)]
pub struct Body {
    code: String,
    #[serde(flatten)]
    stats: Stats,
}

/// The stats of a link over a range of UTC days.
#[utoipa::path(
    get,
    path = "/api/v1/links/{code}/stats",
    tag = "links",
    operation_id = "getLinkStats",
    params(("code" = String, Path, description = "The link's code or alias"), Range),
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "Clicks: totals, every day of the range, top values", body = Body),
        (status = 401, description = "No valid API key", body = crate::http::error::Body),
        (status = 404, description = "No such link, or another tenant's", body = crate::http::error::Body),
        (status = 410, description = "Deleted", body = crate::http::error::Body),
        (status = 422, description = "Bad range", body = crate::http::error::Body),
        (status = 503, description = "Its shard is unavailable", body = crate::http::error::Body),
    )
)]
pub async fn stats(
    req: HttpRequest,
    state: web::Data<AppState>,
    code: web::Path<String>,
    range: Result<web::Query<Range>, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.auth.caller(&req).await?;
    let range = range.map_err(|e| ApiError::new(Code::InvalidRange, e.to_string()))?;
    let today = state.links.now().date_naive();
    let range = DayRange::parse(range.from.as_deref(), range.to.as_deref(), today)?;
    let (link, stats) = state.clicks.clicks(&caller, &code, range).await?;
    Ok(HttpResponse::Ok().json(Body {
        code: state.links.code_of(&link),
        stats,
    }))
}
