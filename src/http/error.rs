//! How an [`ApiError`] answers over HTTP: its status, its headers (`Retry-After`,
//! `Allow`, `WWW-Authenticate`, `RateLimit-*`) and its JSON body, which the OpenAPI
//! document describes as [`Body`].

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::error::{ApiError, Code};

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
    /// Stable and machine-readable: one of the values listed (the README's error table
    /// says when each is answered).
    #[schema(schema_with = code_schema)]
    code: &'a str,
    /// For people.
    message: &'a str,
    /// The request field the error concerns, when it is one field's (`url`, `alias`,
    /// `expires_at`, `redirect`, `from`/`to` as `range`, `limit`, `cursor`, `size`,
    /// `format`): a form can show the message next to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
}

/// The `code` property: a string that is one of [`Code::ALL`].
fn code_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(Code::ALL.iter().map(|c| c.as_str())))
        .build()
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.kind().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        if self.kind().status() >= 500 {
            tracing::error!(status = self.kind().status(), code = self.code().as_str(), error = %self, "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Some(s) = self.retry_after_s() {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(s)));
        }
        if let Some(methods) = self.allow() {
            response.insert_header((header::ALLOW, methods));
        }
        if self.challenge() {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"shortener\""));
        }
        if let Some(limit) = self.rate_limit() {
            response.insert_header(("ratelimit-limit", HeaderValue::from(limit)));
            response.insert_header(("ratelimit-remaining", HeaderValue::from(0u32)));
            response.insert_header((
                "ratelimit-reset",
                HeaderValue::from(self.retry_after_s().unwrap_or(1)),
            ));
        }
        response.json(Body {
            error: Detail {
                code: self.code().as_str(),
                message: self.message(),
                field: self.code().field(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody as _;
    use actix_web::ResponseError as _;

    use crate::error::ApiError;
    use crate::store::StoreError;

    #[test]
    fn a_5xx_keeps_its_whole_cause_for_the_log_and_shows_the_client_only_its_code() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "disk is read-only");
        let source = anyhow::Error::new(io).context("the database cannot be written now");
        let error = ApiError::from(StoreError::unavailable("sqlite", source));
        let logged = error.to_string();
        for part in [
            "shard_unavailable",
            "storage part sqlite is unavailable",
            "the database cannot be written now",
            "disk is read-only",
        ] {
            assert!(logged.contains(part), "{part:?} missing from {logged:?}");
        }
        let body = error.error_response().into_body().try_into_bytes().unwrap();
        let body = std::str::from_utf8(&body).unwrap();
        assert!(body.contains("\"code\":\"shard_unavailable\""), "{body}");
        assert!(
            !body.contains("read-only") && !body.contains("cannot be written"),
            "{body}"
        );
    }
}
