//! The actix-web extractor: [`AuthenticatedUser`] from a `web::Data<TokenValidator>`.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, web};

use crate::validator::{AuthError, AuthenticatedUser, TokenValidator, authenticate};

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response
            .insert_header((CONTENT_TYPE, "application/json"))
            .insert_header(("Cache-Control", "no-store"));
        if let Some(seconds) = self.retry_after() {
            response.insert_header((RETRY_AFTER, seconds));
        }
        response.body(self.body())
    }
}

impl FromRequest for AuthenticatedUser {
    type Error = AuthError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AuthError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let validator = req.app_data::<web::Data<TokenValidator>>().cloned();
        let authorization = req
            .headers()
            .get(AUTHORIZATION)
            .map(|value| value.as_bytes().to_vec());
        Box::pin(async move {
            let validator = validator.ok_or(AuthError::NotConfigured)?;
            authenticate(&validator, authorization.as_deref()).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientError;

    #[test]
    fn an_outage_answers_503_with_retry_after_and_the_json_body() {
        let response = AuthError::Unavailable(ClientError::Timeout).error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(header(RETRY_AFTER).as_deref(), Some("1"));
        assert_eq!(header(CONTENT_TYPE).as_deref(), Some("application/json"));
        let refused = AuthError::InvalidToken.error_response();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert!(refused.headers().get(RETRY_AFTER).is_none());
    }
}
