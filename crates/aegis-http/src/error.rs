//! `ApiError`: the one place where outcomes become HTTP status codes and error bodies.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use aegis_api_types::ErrorBody;
use aegis_domain::RepoError;
use aegis_domain::password::HashError;
use aegis_domain::validation::FieldErrors;

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
    Conflict {
        /// The `error` text.
        message: String,
        /// The machine-readable `code`.
        code: &'static str,
    },
    /// 4xx with a message built at run time.
    #[error("{1}")]
    ClientOwned(StatusCode, String),
    /// 500 with a fixed, client-safe message; the cause is logged, never sent.
    #[error("{message}: {cause}")]
    Internal {
        /// The text the client sees.
        message: &'static str,
        /// What went wrong, for the log only.
        cause: String,
    },
    /// 503 `{"error":"Service temporarily unavailable"}` with `Retry-After` (decision 27): the
    /// database cannot be reached or has no connection free in time, or every password-hashing
    /// thread is busy. Not logged per request: the database's health and the hashing pool report
    /// outages themselves.
    #[error("service temporarily unavailable")]
    Unavailable,
}

/// The body of every 503.
pub const UNAVAILABLE: &str = "Service temporarily unavailable";

/// Seconds a client is asked to wait after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// Whether `error` or anything in its source chain is an outage rather than a failure: storage
/// unavailable, or hashing saturated.
pub fn is_outage(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if matches!(e.downcast_ref(), Some(RepoError::Unavailable(_)))
            || matches!(e.downcast_ref(), Some(HashError::Busy))
        {
            return true;
        }
        next = e.source();
    }
    false
}

impl ApiError {
    /// A 400 with this message.
    pub fn bad_request(message: &'static str) -> Self {
        Self::Client(StatusCode::BAD_REQUEST, message)
    }

    /// A 401 with this message.
    pub fn unauthorized(message: &'static str) -> Self {
        Self::Client(StatusCode::UNAUTHORIZED, message)
    }

    /// A 404 with this message.
    pub fn not_found(message: &'static str) -> Self {
        Self::Client(StatusCode::NOT_FOUND, message)
    }

    /// A failure on the server's side: [`ApiError::Unavailable`] when `cause` is an outage (see
    /// [`is_outage`]), else a 500 with `message`.
    pub fn internal(message: &'static str, cause: impl std::error::Error + 'static) -> Self {
        if is_outage(&cause) {
            return Self::Unavailable;
        }
        Self::Internal {
            message,
            cause: cause.to_string(),
        }
    }

    /// A 500 for a state the code should never reach.
    pub fn bug(message: &'static str, cause: &'static str) -> Self {
        Self::Internal {
            message,
            cause: cause.to_owned(),
        }
    }

    /// A validation error on one field.
    pub fn field(field: &str, message: &str) -> Self {
        let mut details = BTreeMap::new();
        details.insert(field.to_owned(), vec![message.to_owned()]);
        Self::Validation(details)
    }
}

/// The body of an error answer: `{"error"}`, plus `"code"` or `"details"` when there are any.
fn error_body(error: &str, code: Option<&str>, details: Option<&FieldErrors>) -> ErrorBody {
    ErrorBody {
        error: error.to_owned(),
        code: code.map(str::to_owned),
        details: details.cloned(),
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::BAD_REQUEST,
            Self::Client(status, _) | Self::ClientOwned(status, _) => *status,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = match self {
            Self::Validation(details) => error_body("Validation error", None, Some(details)),
            Self::Client(_, message) => error_body(message, None, None),
            Self::ClientOwned(_, message) => error_body(message, None, None),
            Self::Conflict { message, code } => error_body(message, Some(code), None),
            Self::Internal { message, cause } => {
                tracing::error!(%cause, "{message}");
                error_body(message, None, None)
            }
            Self::Unavailable => {
                let mut response =
                    crate::json::response(self.status_code(), &error_body(UNAVAILABLE, None, None));
                response.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    actix_web::http::header::HeaderValue::from(RETRY_AFTER_SECONDS),
                );
                return response;
            }
        };
        crate::json::response(self.status_code(), &body)
    }
}
