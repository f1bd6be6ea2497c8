//! One error type for the API, for the service and the routes alike. Each error has a
//! [`Kind`] (which fixes its HTTP status), a stable machine-readable code and a message;
//! it does not depend on the HTTP library: [`crate::http::error`] turns it into the JSON
//! answer, `{"error": {"code": "invalid_url", "message": "…"}}`. 5xx bodies reveal
//! nothing internal; the full cause chain goes to the log.

use std::borrow::Cow;
use std::fmt;

use crate::domain::{AliasError, IdError, QueryError, UrlError};
use crate::store::StoreError;

/// What kind of failure: each answers with one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    Gone,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable,
    RateLimited,
    /// 451: withheld by policy (a link into a blocked domain).
    UnavailableForLegalReasons,
    Unavailable,
    Internal,
}

impl Kind {
    /// The HTTP status it answers with.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::Gone => 410,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Unprocessable => 422,
            Self::RateLimited => 429,
            Self::UnavailableForLegalReasons => 451,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

/// An error as the API reports it.
#[derive(Debug)]
pub struct ApiError {
    kind: Kind,
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

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(kind: Kind, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
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
            ..Self::new(Kind::Unauthorized, code, message)
        }
    }

    /// 429 with `Retry-After` and the `RateLimit-*` headers.
    pub fn rate_limited(limit: u32, retry_after_s: u64) -> Self {
        let secs = u32::try_from(retry_after_s).unwrap_or(u32::MAX).max(1);
        Self {
            retry_after_s: Some(secs),
            rate_limit: Some(limit),
            ..Self::new(
                Kind::RateLimited,
                "rate_limited",
                format!("too many requests; retry in {secs} s"),
            )
        }
    }

    /// 400: the request is not well formed.
    pub fn bad_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::BadRequest, code, message)
    }

    /// 422: well formed, but a value breaks a rule.
    pub fn unprocessable(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::Unprocessable, code, message)
    }

    /// 404.
    pub fn not_found() -> Self {
        Self::new(Kind::NotFound, "not_found", "no link has this code")
    }

    /// 410 for a link that existed.
    pub fn gone(code: &'static str, message: &'static str) -> Self {
        Self::new(Kind::Gone, code, message)
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
            ..Self::new(Kind::Unavailable, code, message)
        }
    }

    /// 500, keeping the cause for the log.
    pub fn internal(source: anyhow::Error) -> Self {
        Self {
            source: Some(source),
            ..Self::new(Kind::Internal, "internal", "an unexpected error occurred")
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

    /// Its kind (and so its status).
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The message for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Seconds to wait before retrying (`Retry-After`), when it says.
    pub fn retry_after_s(&self) -> Option<u32> {
        self.retry_after_s
    }

    /// The limit that was hit (`RateLimit-Limit`), for a 429.
    pub fn rate_limit(&self) -> Option<u32> {
        self.rate_limit
    }

    /// Whether the answer asks for a bearer token (`WWW-Authenticate`).
    pub fn challenge(&self) -> bool {
        self.challenge
    }

    /// The methods allowed (`Allow`), for a 405.
    pub fn allow(&self) -> Option<&'static str> {
        self.allow
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind.status(), self.code, self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source:#}")?;
        }
        Ok(())
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
            UrlError::Local(_) => "url_local_target",
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

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let code = match e {
            QueryError::Limit => "invalid_limit",
            QueryError::Cursor => "invalid_cursor",
            QueryError::Day(_) | QueryError::Reversed | QueryError::TooLong => "invalid_range",
        };
        Self::unprocessable(code, e.to_string())
    }
}

impl From<IdError> for ApiError {
    fn from(e: IdError) -> Self {
        if e == IdError::NoWorkerId {
            return Self::unavailable(
                "no_worker_id",
                "this instance is renewing its worker ID lease and cannot shorten; retry shortly",
                e.into(),
            );
        }
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
                Kind::Conflict,
                "alias_taken",
                format!("the alias {alias:?} is already taken"),
            ),
            StoreError::DuplicateId(_) => Self::unavailable(
                "id_conflict",
                "another instance issued the same ID; retry",
                cause(),
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
