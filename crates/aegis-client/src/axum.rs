//! The axum extractor: [`AuthenticatedUser`] from an `Arc<TokenValidator>` in the router's state.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::validator::{AuthError, AuthenticatedUser, TokenValidator, authenticate};

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.body()).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(seconds) = self.retry_after() {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        response
    }
}

impl<S> FromRequestParts<S> for AuthenticatedUser
where
    Arc<TokenValidator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthError> {
        let validator = Arc::<TokenValidator>::from_ref(state);
        let authorization = parts.headers.get(AUTHORIZATION).map(HeaderValue::as_bytes);
        authenticate(&validator, authorization).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientError;

    #[test]
    fn an_outage_answers_503_with_retry_after_and_the_json_body() {
        let response = AuthError::Unavailable(ClientError::Timeout).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let refused = AuthError::InvalidToken.into_response();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert!(refused.headers().get(RETRY_AFTER).is_none());
    }
}
