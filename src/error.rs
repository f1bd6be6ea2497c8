//! One error type for the API, for the service and the routes alike. Each error has a
//! stable machine-readable [`Code`] (which fixes its [`Kind`], and so its HTTP status, and
//! the request field it concerns) and a message; it does not depend on the HTTP library: [`crate::http::error`] turns it into the JSON
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
    /// 408: the request's head did not arrive in time (answered by the wire layer).
    RequestTimeout,
    /// 431 (answered by the wire layer).
    HeadersTooLarge,
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
            Self::RequestTimeout => 408,
            Self::HeadersTooLarge => 431,
            Self::UnavailableForLegalReasons => 451,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

/// Declares [`Code`]: each error code with its kind (and so its status) and the request
/// field it concerns, where it is one field's.
macro_rules! codes {
    ($($variant:ident = $name:literal, $kind:ident, $field:expr;)*) => {
        /// Every error code the API answers with. The code is stable (clients match on
        /// it); the README's error table and the OpenAPI document list every one
        /// (tests/error_codes.rs).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, in the order declared.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as the JSON body spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }

            /// Its kind (and so its HTTP status).
            pub fn kind(self) -> Kind {
                match self {
                    $(Code::$variant => Kind::$kind,)*
                }
            }

            /// The request field it concerns (`url`, `alias`, …), so that a form can
            /// show the message next to that field.
            pub fn field(self) -> Option<&'static str> {
                match self {
                    $(Code::$variant => $field,)*
                }
            }
        }
    };
}

codes! {
    MalformedJson = "malformed_json", BadRequest, None;
    BadRequest = "bad_request", BadRequest, None;
    DuplicateAuthorization = "duplicate_authorization", BadRequest, None;
    MalformedRequest = "malformed_request", BadRequest, None;
    IncompleteBody = "incomplete_body", BadRequest, None;
    AuthenticationRequired = "authentication_required", Unauthorized, None;
    InvalidAuthorization = "invalid_authorization", Unauthorized, None;
    InvalidApiKey = "invalid_api_key", Unauthorized, None;
    ApiKeyRevoked = "api_key_revoked", Unauthorized, None;
    LinkHasNoOwner = "link_has_no_owner", Forbidden, None;
    NotFound = "not_found", NotFound, None;
    MethodNotAllowed = "method_not_allowed", MethodNotAllowed, None;
    RequestTimeout = "request_timeout", RequestTimeout, None;
    AliasTaken = "alias_taken", Conflict, Some("alias");
    LinkDeleted = "link_deleted", Gone, None;
    LinkExpired = "link_expired", Gone, None;
    LinkDisabled = "link_disabled", Gone, None;
    BodyTooLarge = "body_too_large", PayloadTooLarge, None;
    UnsupportedMediaType = "unsupported_media_type", UnsupportedMediaType, None;
    InvalidBody = "invalid_body", Unprocessable, None;
    NoChanges = "no_changes", Unprocessable, None;
    InvalidUrl = "invalid_url", Unprocessable, Some("url");
    UnsupportedScheme = "unsupported_scheme", Unprocessable, Some("url");
    UrlMissingHost = "url_missing_host", Unprocessable, Some("url");
    UrlHasCredentials = "url_has_credentials", Unprocessable, Some("url");
    UrlPointsToShortener = "url_points_to_shortener", Unprocessable, Some("url");
    UrlTooLong = "url_too_long", Unprocessable, Some("url");
    UrlBlocked = "url_blocked", Unprocessable, Some("url");
    UrlLocalTarget = "url_local_target", Unprocessable, Some("url");
    InvalidAlias = "invalid_alias", Unprocessable, Some("alias");
    AliasLooksGenerated = "alias_looks_generated", Unprocessable, Some("alias");
    AliasReserved = "alias_reserved", Unprocessable, Some("alias");
    ExpiresInPast = "expires_in_past", Unprocessable, Some("expires_at");
    InvalidRedirect = "invalid_redirect", Unprocessable, Some("redirect");
    InvalidRange = "invalid_range", Unprocessable, Some("range");
    InvalidLimit = "invalid_limit", Unprocessable, Some("limit");
    InvalidCursor = "invalid_cursor", Unprocessable, Some("cursor");
    InvalidQuery = "invalid_query", Unprocessable, None;
    InvalidSize = "invalid_size", Unprocessable, Some("size");
    InvalidFormat = "invalid_format", Unprocessable, Some("format");
    QrTooLarge = "qr_too_large", Unprocessable, None;
    RateLimited = "rate_limited", RateLimited, None;
    HeadersTooLarge = "headers_too_large", HeadersTooLarge, None;
    LinkBlocked = "link_blocked", UnavailableForLegalReasons, None;
    Internal = "internal", Internal, None;
    ShardUnavailable = "shard_unavailable", Unavailable, None;
    NoShard = "no_shard", Unavailable, None;
    IdConflict = "id_conflict", Unavailable, None;
    NoWorkerId = "no_worker_id", Unavailable, None;
    ClockUnavailable = "clock_unavailable", Unavailable, None;
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as the API reports it.
#[derive(Debug)]
pub struct ApiError {
    code: Code,
    message: Cow<'static, str>,
    retry_after_s: Option<u32>,
    /// `RateLimit-Limit` for a 429.
    rate_limit: Option<u32>,
    /// The `Allow` header of a 405.
    allow: Option<&'static str>,
    source: Option<anyhow::Error>,
}

impl ApiError {
    /// An error with the given code (which fixes its status) and message.
    pub fn new(code: Code, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_s: None,
            rate_limit: None,
            allow: None,
            source: None,
        }
    }

    /// 429 with `Retry-After` and the `RateLimit-*` headers.
    pub fn rate_limited(limit: u32, retry_after_s: u64) -> Self {
        let secs = u32::try_from(retry_after_s).unwrap_or(u32::MAX).max(1);
        Self {
            retry_after_s: Some(secs),
            rate_limit: Some(limit),
            ..Self::new(
                Code::RateLimited,
                format!("too many requests; retry in {secs} s"),
            )
        }
    }

    /// 404.
    pub fn not_found() -> Self {
        Self::new(Code::NotFound, "no link has this code")
    }

    /// 503 with a `Retry-After`, keeping the cause for the log.
    pub fn unavailable(
        code: Code,
        message: impl Into<Cow<'static, str>>,
        source: anyhow::Error,
    ) -> Self {
        Self {
            retry_after_s: Some(1),
            source: Some(source),
            ..Self::new(code, message)
        }
    }

    /// 500, keeping the cause for the log.
    pub fn internal(source: anyhow::Error) -> Self {
        Self {
            source: Some(source),
            ..Self::new(Code::Internal, "an unexpected error occurred")
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
    pub fn code(&self) -> Code {
        self.code
    }

    /// Its kind (and so its status).
    pub fn kind(&self) -> Kind {
        self.code.kind()
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

    /// Whether the answer asks for a bearer token (`WWW-Authenticate`): every 401 does.
    pub fn challenge(&self) -> bool {
        self.kind() == Kind::Unauthorized
    }

    /// The methods allowed (`Allow`), for a 405.
    pub fn allow(&self) -> Option<&'static str> {
        self.allow
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.kind().status(),
            self.code,
            self.message
        )?;
        if let Some(source) = &self.source {
            write!(f, ": {source:#}")?;
        }
        Ok(())
    }
}

impl From<UrlError> for ApiError {
    fn from(e: UrlError) -> Self {
        let code = match e {
            UrlError::TooLong { .. } => Code::UrlTooLong,
            UrlError::Invalid(_) => Code::InvalidUrl,
            UrlError::UnsupportedScheme(_) => Code::UnsupportedScheme,
            UrlError::MissingHost => Code::UrlMissingHost,
            UrlError::Credentials => Code::UrlHasCredentials,
            UrlError::OwnHost(_) => Code::UrlPointsToShortener,
            UrlError::Blocked(_) => Code::UrlBlocked,
            UrlError::Local(_) => Code::UrlLocalTarget,
        };
        Self::new(code, e.to_string())
    }
}

impl From<AliasError> for ApiError {
    fn from(e: AliasError) -> Self {
        let code = match e {
            AliasError::Length | AliasError::Alphabet => Code::InvalidAlias,
            AliasError::Reserved(_) => Code::AliasReserved,
            AliasError::LooksGenerated => Code::AliasLooksGenerated,
        };
        Self::new(code, e.to_string())
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let code = match e {
            QueryError::Limit => Code::InvalidLimit,
            QueryError::Cursor => Code::InvalidCursor,
            QueryError::Day(_) | QueryError::Reversed | QueryError::TooLong => Code::InvalidRange,
        };
        Self::new(code, e.to_string())
    }
}

impl From<IdError> for ApiError {
    fn from(e: IdError) -> Self {
        if e == IdError::NoWorkerId {
            return Self::unavailable(
                Code::NoWorkerId,
                "this instance is renewing its worker ID lease and cannot shorten; retry shortly",
                e.into(),
            );
        }
        Self::unavailable(
            Code::ClockUnavailable,
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
                Code::AliasTaken,
                format!("the alias {alias:?} is already taken"),
            ),
            StoreError::DuplicateId(_) => Self::unavailable(
                Code::IdConflict,
                "another instance issued the same ID; retry",
                cause(),
            ),
            StoreError::NoShard(_) => Self::unavailable(
                Code::NoShard,
                "no storage is configured for links created now",
                cause(),
            ),
            StoreError::Unavailable { part, .. } | StoreError::Timeout { part } => {
                let message = format!("storage shard {part} is unavailable; retry shortly");
                Self::unavailable(Code::ShardUnavailable, message, cause())
            }
            StoreError::Internal { .. } => Self::internal(cause()),
        }
    }
}

pub use crate::telemetry::chain;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::from_store(&e)
    }
}
