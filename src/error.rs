//! One error type for the HTTP API. Every error answers JSON,
//! `{"error": {"code": "invalid_url", "message": "…"}}`, with a stable machine-readable
//! code and the right status. 5xx bodies reveal nothing internal; the full cause chain
//! goes to the log.

use std::borrow::Cow;
use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::domain::{AliasError, IdError, UrlError};
use crate::store::StoreError;

/// An error as the API reports it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    retry_after_s: Option<u32>,
    /// `RateLimit-Limit` for a 429.
    rate_limit: Option<u32>,
    /// Whether to ask for a bearer token (`WWW-Authenticate`), for a 401.
    challenge: bool,
    /// The `Allow` header of a 405.
    allow: Option<&'static str>,
    source: Option<anyhow::Error>,
}

/// Every error's body.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct Body<'a> {
    error: Detail<'a>,
}

/// What went wrong.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorDetail)]
pub struct Detail<'a> {
    /// Stable and machine-readable (`invalid_url`, `not_found`, `rate_limited`…).
    code: &'a str,
    /// For people.
    message: &'a str,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
            rate_limit: None,
            challenge: false,
            allow: None,
            source: None,
        }
    }

    /// 401 with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            challenge: true,
            ..Self::new(StatusCode::UNAUTHORIZED, code, message)
        }
    }

    /// 429 with `Retry-After` and the `RateLimit-*` headers.
    pub fn rate_limited(limit: u32, retry_after_s: u64) -> Self {
        let secs = u32::try_from(retry_after_s).unwrap_or(u32::MAX).max(1);
        Self {
            retry_after_s: Some(secs),
            rate_limit: Some(limit),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; retry in {secs} s"),
            )
        }
    }

    /// 400: the request is not well formed.
    pub fn bad_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 422: well formed, but a value breaks a rule.
    pub fn unprocessable(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 404.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no link has this code")
    }

    /// 410 for a link that existed.
    pub fn gone(code: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::GONE, code, message)
    }

    /// 503 with a `Retry-After`, keeping the cause for the log.
    pub fn unavailable(
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
        source: anyhow::Error,
    ) -> Self {
        Self {
            retry_after_s: Some(1),
            source: Some(source),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// 500, keeping the cause for the log.
    pub fn internal(source: anyhow::Error) -> Self {
        Self {
            source: Some(source),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "an unexpected error occurred",
            )
        }
    }

    /// The same error naming the methods a resource allows (for a 405).
    #[must_use]
    pub fn with_allow(self, methods: &'static str) -> Self {
        Self {
            allow: Some(methods),
            ..self
        }
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )?;
        if let Some(source) = &self.source {
            write!(f, ": {source:#}")?;
        }
        Ok(())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), code = self.code, error = %self, "request failed");
        }
        let mut response = HttpResponse::build(self.status);
        if let Some(s) = self.retry_after_s {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(s)));
        }
        if let Some(methods) = self.allow {
            response.insert_header((header::ALLOW, methods));
        }
        if self.challenge {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"shortener\""));
        }
        if let Some(limit) = self.rate_limit {
            response.insert_header(("ratelimit-limit", HeaderValue::from(limit)));
            response.insert_header(("ratelimit-remaining", HeaderValue::from(0u32)));
            response.insert_header((
                "ratelimit-reset",
                HeaderValue::from(self.retry_after_s.unwrap_or(1)),
            ));
        }
        response.json(Body {
            error: Detail {
                code: self.code,
                message: &self.message,
            },
        })
    }
}

impl From<UrlError> for ApiError {
    fn from(e: UrlError) -> Self {
        let code = match e {
            UrlError::TooLong { .. } => "url_too_long",
            UrlError::Invalid(_) => "invalid_url",
            UrlError::UnsupportedScheme(_) => "unsupported_scheme",
            UrlError::MissingHost => "url_missing_host",
            UrlError::Credentials => "url_has_credentials",
            UrlError::OwnHost(_) => "url_points_to_shortener",
            UrlError::Blocked(_) => "url_blocked",
        };
        Self::unprocessable(code, e.to_string())
    }
}

impl From<AliasError> for ApiError {
    fn from(e: AliasError) -> Self {
        let code = match e {
            AliasError::Length | AliasError::Alphabet => "invalid_alias",
            AliasError::Reserved(_) => "alias_reserved",
            AliasError::LooksGenerated => "alias_looks_generated",
        };
        Self::unprocessable(code, e.to_string())
    }
}

impl From<IdError> for ApiError {
    fn from(e: IdError) -> Self {
        Self::unavailable(
            "clock_unavailable",
            "the server cannot issue IDs right now; retry shortly",
            e.into(),
        )
    }
}

impl ApiError {
    /// The API error for a storage error that is shared (a coalesced cache load hands
    /// the same error to every waiter). The cause chain is kept as text for the log.
    pub fn from_store(e: &StoreError) -> Self {
        let cause = || anyhow::anyhow!("{}", crate::error::chain(e));
        match e {
            StoreError::AliasTaken(alias) => Self::new(
                StatusCode::CONFLICT,
                "alias_taken",
                format!("the alias {alias:?} is already taken"),
            ),
            StoreError::NoShard(_) => Self::unavailable(
                "no_shard",
                "no storage is configured for links created now",
                cause(),
            ),
            StoreError::Unavailable { part, .. } | StoreError::Timeout { part } => {
                let message = format!("storage shard {part} is unavailable; retry shortly");
                Self::unavailable("shard_unavailable", message, cause())
            }
            StoreError::Internal { .. } => Self::internal(cause()),
        }
    }
}

/// An error and its sources, `a: b: c`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::from_store(&e)
    }
}
