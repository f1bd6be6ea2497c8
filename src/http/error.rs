//! How an [`ApiError`] answers over HTTP: its status, its headers (`Retry-After`,
//! `Allow`, `WWW-Authenticate`, `RateLimit-*`) and its JSON body, which the OpenAPI
//! document describes as [`Body`].

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::error::ApiError;

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
    /// The request field the error concerns, when it is one field's (`url`, `alias`,
    /// `expires_at`, `redirect`, `from`/`to` as `range`, `limit`, `cursor`, `size`,
    /// `format`): a form can show the message next to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
}

/// The field an error code concerns (see [`Detail::field`]).
pub fn field_of(code: &str) -> Option<&'static str> {
    Some(match code {
        "alias_taken" | "invalid_alias" | "alias_reserved" | "alias_looks_generated" => "alias",
        "expires_in_past" => "expires_at",
        "invalid_redirect" => "redirect",
        "invalid_range" => "range",
        "invalid_limit" => "limit",
        "invalid_cursor" => "cursor",
        "invalid_size" => "size",
        "invalid_format" => "format",
        c if c == "invalid_url" || c.starts_with("url_") => "url",
        _ => return None,
    })
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.kind().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        if self.kind().status() >= 500 {
            tracing::error!(status = self.kind().status(), code = self.code(), error = %self, "request failed");
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
                code: self.code(),
                message: self.message(),
                field: field_of(self.code()),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn every_rule_of_a_field_names_it_and_other_errors_name_none() {
        for (code, field) in [
            ("invalid_url", "url"),
            ("url_too_long", "url"),
            ("url_local_target", "url"),
            ("url_points_to_shortener", "url"),
            ("alias_taken", "alias"),
            ("alias_reserved", "alias"),
            ("alias_looks_generated", "alias"),
            ("invalid_alias", "alias"),
            ("expires_in_past", "expires_at"),
            ("invalid_redirect", "redirect"),
            ("invalid_range", "range"),
            ("invalid_cursor", "cursor"),
            ("invalid_limit", "limit"),
            ("invalid_size", "size"),
            ("invalid_format", "format"),
        ] {
            assert_eq!(field_of(code), Some(field), "{code}");
        }
        for code in [
            "not_found",
            "invalid_api_key",
            "rate_limited",
            "malformed_json",
            "invalid_body",
        ] {
            assert_eq!(field_of(code), None, "{code}");
        }
    }
}
