//! [`AuthenticatedUser`]: an actix-web extractor that checks the request's bearer token with Aegis.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, web};
use aegis_api_types::{ErrorBody, User};

use crate::{AegisClient, ClientError, DEFAULT_CAPACITY, DEFAULT_TTL, TokenCache, TokenKey};

/// Validates bearer tokens by asking Aegis (`GET /api/auth/me`), with a short cache in front.
///
/// Register it as app data, `App::new().app_data(web::Data::new(validator))`, and
/// [`AuthenticatedUser`] finds it there.
///
/// The cache is keyed by the SHA-256 of the token (never the token itself) and trusts an answer for
/// [`DEFAULT_TTL`] (10 s) unless [`Self::with_ttl`] says otherwise: a token revoked in Aegis keeps
/// working on this service for at most that long. It holds at most [`DEFAULT_CAPACITY`] (10,000)
/// users unless [`Self::with_capacity`] says otherwise. Only accepted tokens are cached; a refused
/// token is asked about again every time.
pub struct TokenValidator {
    client: AegisClient,
    cache: Mutex<TokenCache>,
}

impl std::fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cache = self.cache();
        f.debug_struct("TokenValidator")
            .field("client", &self.client)
            .field("ttl", &cache.ttl())
            .field("capacity", &cache.capacity())
            .field("cached", &cache.len())
            .finish()
    }
}

impl TokenValidator {
    /// A validator asking the Aegis `client` talks to, with the default TTL and capacity. The
    /// client needs no key: `/api/auth/me` takes only the bearer token. Its timeout
    /// ([`AegisClient::with_timeout`]) bounds how long a request waits for Aegis.
    pub fn new(client: AegisClient) -> Self {
        Self {
            client,
            cache: Mutex::new(TokenCache::new(DEFAULT_TTL, DEFAULT_CAPACITY)),
        }
    }

    /// How long an accepted token is trusted without asking again; zero turns the cache off.
    pub fn with_ttl(self, ttl: Duration) -> Self {
        let capacity = self.cache().capacity();
        Self {
            cache: Mutex::new(TokenCache::new(ttl, capacity)),
            client: self.client,
        }
    }

    /// How many accepted tokens the cache holds at most.
    pub fn with_capacity(self, capacity: usize) -> Self {
        let ttl = self.cache().ttl();
        Self {
            cache: Mutex::new(TokenCache::new(ttl, capacity)),
            client: self.client,
        }
    }

    /// The client the validator asks with.
    pub fn client(&self) -> &AegisClient {
        &self.client
    }

    /// The user `token` authenticates, from the cache or from Aegis.
    pub async fn validate(&self, token: &str) -> Result<User, ClientError> {
        let key = TokenKey::of(token);
        if let Some(user) = self.cache().get(&key, Instant::now()) {
            return Ok(user);
        }
        let user = self.client.me(token).await?;
        self.cache().insert(key, user.clone(), Instant::now());
        Ok(user)
    }

    /// Forgets a token, for a service that learns of a logout before the TTL runs out.
    pub fn forget(&self, token: &str) {
        self.cache().remove(&TokenKey::of(token));
    }

    fn cache(&self) -> MutexGuard<'_, TokenCache> {
        // The cache stays consistent whatever panicked while holding the lock.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The user behind the request's `Authorization: Bearer <token>`, as Aegis sees them.
///
/// Extracting one needs a `web::Data<TokenValidator>` in the app data. A request without a
/// usable header, or whose token Aegis refuses, gets a 401 and the handler does not run; when
/// Aegis cannot answer, the request gets a 503 with `Retry-After: 1`, never a 401.
///
/// ```no_run
/// use actix_web::{App, HttpResponse, web};
/// use aegis_client::{AegisClient, AuthenticatedUser, TokenValidator};
///
/// async fn whoami(user: AuthenticatedUser) -> HttpResponse {
///     HttpResponse::Ok().body(user.0.email)
/// }
///
/// let validator = web::Data::new(TokenValidator::new(AegisClient::new("http://127.0.0.1:8080")));
/// let app = App::new()
///     .app_data(validator)
///     .route("/whoami", web::get().to(whoami));
/// # drop(app);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AuthenticatedUser(pub User);

impl AuthenticatedUser {
    /// The user.
    pub fn into_inner(self) -> User {
        self.0
    }
}

impl std::ops::Deref for AuthenticatedUser {
    type Target = User;

    fn deref(&self) -> &User {
        &self.0
    }
}

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer <token>` header, or an unreadable one (401).
    #[error("Missing or invalid authorization header")]
    MissingToken,
    /// Aegis refused the token (401).
    #[error("Invalid or expired token")]
    InvalidToken,
    /// Aegis could not be asked or did not answer properly (503, `Retry-After: 1`).
    #[error("Authentication service unavailable")]
    Unavailable(#[source] ClientError),
    /// No `web::Data<TokenValidator>` in the app data: a wiring mistake (500).
    #[error("Authentication is not configured")]
    NotConfigured,
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = ErrorBody {
            error: self.to_string(),
            code: None,
            details: None,
        };
        let mut response = HttpResponse::build(self.status_code());
        response
            .insert_header((CONTENT_TYPE, "application/json"))
            .insert_header(("Cache-Control", "no-store"));
        if let Self::Unavailable(_) = self {
            response.insert_header((RETRY_AFTER, "1"));
        }
        response.body(serde_json::to_string(&body).unwrap_or_default())
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

impl FromRequest for AuthenticatedUser {
    type Error = AuthError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AuthError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let validator = req.app_data::<web::Data<TokenValidator>>().cloned();
        let token = bearer_token(req);
        Box::pin(async move {
            let validator = validator.ok_or(AuthError::NotConfigured)?;
            let token = token.ok_or(AuthError::MissingToken)?;
            match validator.validate(&token).await {
                Ok(user) => Ok(Self(user)),
                Err(e) if e.is_unauthorized() => Err(AuthError::InvalidToken),
                Err(e) => Err(AuthError::Unavailable(e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn the_token_comes_from_a_bearer_header_only() {
        let token = |value: &str| {
            bearer_token(
                &TestRequest::default()
                    .insert_header((AUTHORIZATION, value))
                    .to_http_request(),
            )
        };
        assert_eq!(token("Bearer abc"), Some("abc".to_owned()));
        assert_eq!(token("Bearer "), None);
        assert_eq!(token("Basic abc"), None);
        assert_eq!(
            bearer_token(&TestRequest::default().to_http_request()),
            None
        );
    }

    #[test]
    fn an_outage_is_a_503_with_retry_after() {
        let response = AuthError::Unavailable(ClientError::Timeout).error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        assert_eq!(
            AuthError::InvalidToken.status_code(),
            StatusCode::UNAUTHORIZED
        );
    }
}
