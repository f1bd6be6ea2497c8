//! The HTTP API: one file per route group, wired together in [`routes`].

pub mod console;
pub mod error;
pub mod health;
pub mod links;
pub mod observe;
pub mod openapi;
pub mod qr;
pub mod redirect;
pub mod stats;
pub mod wire;

use actix_web::error::{JsonPayloadError, PayloadError};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::error::Category;

use crate::error::{ApiError, Code};
use crate::service::{Clicks, Health, Links, Shortener};

/// What every handler shares.
pub struct AppState {
    /// Finds, resolves, lists and deletes links.
    pub links: std::sync::Arc<Links>,
    /// Creates and edits links.
    pub shortener: Shortener,
    /// Offers redirects' clicks to the queue and reads counts back.
    pub clicks: Clicks,
    /// Readiness.
    pub health: Health,
    /// The public base URL without a trailing slash.
    pub public_base: String,
    /// Rate limits; `None` when off.
    pub limits: Option<std::sync::Arc<crate::limits::Limits>>,
    /// Who is calling.
    pub auth: crate::auth::Authenticator,
    /// Decides each request's client address.
    pub clients: crate::limits::client::ClientResolver,
    /// Where a browser asking for an unknown, deleted or expired code is sent.
    pub not_found_url: Option<url::Url>,
}

impl AppState {
    /// Applies the rate limit of `class` to the request's client.
    ///
    /// # Errors
    /// 429 when the client is over its quota.
    pub fn limit(&self, req: &HttpRequest, class: crate::limits::Class) -> Result<(), ApiError> {
        match &self.limits {
            Some(_) => self.limit_client(self.clients.resolve(req), class),
            None => Ok(()),
        }
    }

    /// Applies the rate limit of `class` to `client`, already resolved.
    ///
    /// # Errors
    /// 429 when the client is over its quota.
    pub fn limit_client(
        &self,
        client: crate::limits::client::Client,
        class: crate::limits::Class,
    ) -> Result<(), ApiError> {
        match (&self.limits, client.ip) {
            (Some(limits), Some(ip)) => limits.check(class, ip),
            _ => Ok(()),
        }
    }

    /// Applies the shortening quota: per API key for a tenant (its own quota or the
    /// default), per client address for an anonymous caller.
    ///
    /// # Errors
    /// 429 when over the quota.
    pub fn limit_shorten(
        &self,
        req: &HttpRequest,
        caller: &crate::auth::Caller,
    ) -> Result<(), ApiError> {
        match (caller, &self.limits) {
            (_, None) => Ok(()),
            (
                crate::auth::Caller::Tenant {
                    key,
                    shorten_per_minute,
                    ..
                },
                Some(limits),
            ) => limits.check_key(*key, *shorten_per_minute),
            (crate::auth::Caller::Anonymous, Some(_)) => {
                self.limit(req, crate::limits::Class::Shorten)
            }
        }
    }
}

/// Registers every route on one listener: the operations routes, then the API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    operations(cfg, true);
    api(cfg);
}

/// The public listener's routes when an admin listener serves `/metrics` and `/readyz`:
/// the API and `/healthz`.
pub fn public_routes(cfg: &mut web::ServiceConfig) {
    operations(cfg, false);
    api(cfg);
}

/// The admin listener's routes: `/metrics`, `/healthz`, `/readyz`, nothing else.
pub fn admin_routes(cfg: &mut web::ServiceConfig) {
    operations(cfg, true);
    cfg.default_service(web::to(not_found));
}

/// `/healthz`, and with `internal` `/metrics` and `/readyz` (a scrape renders every
/// metric; a readiness check asks every shard).
fn operations(cfg: &mut web::ServiceConfig, internal: bool) {
    if internal {
        cfg.service(
            web::resource("/metrics")
                .name("/metrics")
                .get(observe::metrics)
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource("/readyz")
                .name("/readyz")
                .get(health::readyz)
                .default_service(not_allowed("GET")),
        );
    }
    cfg.service(
        web::resource("/healthz")
            .name("/healthz")
            .get(health::healthz)
            .default_service(not_allowed("GET")),
    );
}

/// The API. Fixed paths come first (a string comparison each), then the redirect
/// `/{code}` (one path segment, so it cannot shadow the API's longer paths) and only
/// then the API's templated paths: actix-web matches a templated path with a regex, and
/// the redirect, the hot path, is the first one tried. Each resource is named after its
/// template: the name is the metrics' `route` label.
fn api(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/openapi.json")
            .name("/api/v1/openapi.json")
            .get(openapi::spec)
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/links")
            .name("/api/v1/links")
            .post(links::create)
            .get(links::list)
            .default_service(not_allowed("GET, POST")),
    )
    .service(
        web::resource("/{code}")
            .name("/{code}")
            .route(web::get().to(redirect::follow))
            .route(web::head().to(redirect::follow_head))
            .default_service(not_allowed("GET, HEAD")),
    );
    // The console: fixed paths, after the redirect (which never matches them: `/` has no
    // code, the assets two segments).
    for asset in &console::ASSETS {
        cfg.service(
            web::resource(asset.path)
                .name(asset.path)
                .get(move |req: HttpRequest| async move { console::serve(asset, &req) })
                .default_service(not_allowed("GET")),
        );
    }
    cfg.service(
        web::resource("/api/v1/links/{code}/qr")
            .name("/api/v1/links/{code}/qr")
            .get(qr::qr)
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/links/{code}/stats")
            .name("/api/v1/links/{code}/stats")
            .get(stats::stats)
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/links/{code}")
            .name("/api/v1/links/{code}")
            .get(links::get)
            .patch(links::update)
            .delete(links::delete)
            .default_service(not_allowed("GET, PATCH, DELETE")),
    )
    .default_service(web::to(not_found));
}

/// Body limits and JSON errors for `web::Json` extractors.
pub fn json_config(max_body_bytes: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(max_body_bytes)
        .error_handler(|err, _req| json_error(err).into())
}

fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::ContentType => ApiError::new(
            Code::UnsupportedMediaType,
            "send the body as Content-Type: application/json",
        ),
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => ApiError::new(
            Code::BodyTooLarge,
            format!("the body is larger than {limit} bytes"),
        ),
        JsonPayloadError::Deserialize(e) if e.classify() == Category::Data => ApiError::new(
            Code::InvalidBody,
            format!("the body does not describe a link: {e}"),
        ),
        JsonPayloadError::Deserialize(e) => ApiError::new(
            Code::MalformedJson,
            format!("the body is not valid JSON: {e}"),
        ),
        JsonPayloadError::Payload(PayloadError::Incomplete(_)) => ApiError::new(
            Code::IncompleteBody,
            "the body ended before its declared length or its last chunk",
        ),
        JsonPayloadError::Payload(PayloadError::EncodingCorrupted) => ApiError::new(
            Code::BadRequest,
            "the body's Content-Encoding could not be decoded",
        ),
        _ => ApiError::new(Code::BadRequest, "the body could not be read"),
    }
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(Code::NotFound, "no such resource"))
}

/// The fallback of a resource: `405` with the `Allow` header naming its methods.
fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move |req: HttpRequest| async move {
        Err::<HttpResponse, _>(
            ApiError::new(
                Code::MethodNotAllowed,
                format!("{} is not allowed here; use {allow}", req.method()),
            )
            .with_allow(allow),
        )
    })
}
