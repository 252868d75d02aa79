//! `ApiError`: the one place where outcomes become HTTP status codes and error bodies.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use aegis_domain::validation::FieldErrors;
use serde::Serialize;

/// Every error a handler or extractor returns. The body is always JSON (decision 9).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `{"error":"Validation error","details":{…}}`.
    #[error("validation error")]
    Validation(FieldErrors),
    /// 4xx `{"error": message}`.
    #[error("{1}")]
    Client(StatusCode, &'static str),
    /// 409 `{"error": message, "code": code}`.
    #[error("{message}")]
    Conflict { message: String, code: &'static str },
    /// 4xx with a message built at run time.
    #[error("{1}")]
    ClientOwned(StatusCode, String),
    /// 500 with a fixed, client-safe message; the cause is logged, never sent.
    #[error("{message}: {cause}")]
    Internal {
        message: &'static str,
        cause: String,
    },
}

impl ApiError {
    pub fn bad_request(message: &'static str) -> Self {
        Self::Client(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: &'static str) -> Self {
        Self::Client(StatusCode::UNAUTHORIZED, message)
    }

    pub fn not_found(message: &'static str) -> Self {
        Self::Client(StatusCode::NOT_FOUND, message)
    }

    pub fn internal(message: &'static str, cause: impl std::fmt::Display) -> Self {
        Self::Internal {
            message,
            cause: cause.to_string(),
        }
    }

    /// A validation error on one field.
    pub fn field(field: &str, message: &str) -> Self {
        let mut details = BTreeMap::new();
        details.insert(field.to_owned(), vec![message.to_owned()]);
        Self::Validation(details)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a FieldErrors>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::BAD_REQUEST,
            Self::Client(status, _) | Self::ClientOwned(status, _) => *status,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = match self {
            Self::Validation(details) => ErrorBody {
                error: "Validation error",
                code: None,
                details: Some(details),
            },
            Self::Client(_, message) => ErrorBody {
                error: message,
                code: None,
                details: None,
            },
            Self::ClientOwned(_, message) => ErrorBody {
                error: message,
                code: None,
                details: None,
            },
            Self::Conflict { message, code } => ErrorBody {
                error: message,
                code: Some(code),
                details: None,
            },
            Self::Internal { message, cause } => {
                tracing::error!(%cause, "{message}");
                ErrorBody {
                    error: message,
                    code: None,
                    details: None,
                }
            }
        };
        crate::json::response(self.status_code(), &body)
    }
}
