//! [`TokenValidator`] and [`AuthenticatedUser`]: checking a request's bearer token with Aegis, for
//! any web framework. The actix-web and axum extractors are thin adapters over [`authenticate`].

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aegis_api_types::{ErrorBody, User};

use crate::{AegisClient, ClientError, DEFAULT_CAPACITY, DEFAULT_TTL, TokenCache, TokenKey};

/// Validates bearer tokens by asking Aegis (`GET /api/auth/me`), with a short cache in front.
///
/// With actix-web, register it as app data, `App::new().app_data(web::Data::new(validator))`;
/// with axum, put an `Arc<TokenValidator>` in the router's state. [`AuthenticatedUser`] finds it
/// there.
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
/// It is an extractor for actix-web (feature `actix`, on by default) and for axum (feature
/// `axum`). A request without a usable header, or whose token Aegis refuses, gets a 401 and the
/// handler does not run; when Aegis cannot answer, the request gets a 503 with `Retry-After: 1`,
/// never a 401.
///
/// With actix-web, extracting one needs a `web::Data<TokenValidator>` in the app data:
///
/// ```no_run
/// # #[cfg(feature = "actix")] {
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
/// # }
/// ```
///
/// With axum, the router's state must give an `Arc<TokenValidator>` (`FromRef`):
///
/// ```no_run
/// # #[cfg(feature = "axum")] {
/// use std::sync::Arc;
/// use aegis_client::{AegisClient, AuthenticatedUser, TokenValidator};
/// use axum::{Router, routing::get};
///
/// async fn whoami(user: AuthenticatedUser) -> String {
///     user.0.email
/// }
///
/// let validator = Arc::new(TokenValidator::new(AegisClient::new("http://127.0.0.1:8080")));
/// let app: Router = Router::new().route("/whoami", get(whoami)).with_state(validator);
/// # drop(app);
/// # }
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
    /// No `web::Data<TokenValidator>` in the actix-web app data: a wiring mistake (500). The axum
    /// extractor cannot meet it, as its state is checked when the router is built.
    #[error("Authentication is not configured")]
    NotConfigured,
}

impl AuthError {
    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingToken | Self::InvalidToken => 401,
            Self::Unavailable(_) => 503,
            Self::NotConfigured => 500,
        }
    }

    /// The seconds for a `Retry-After` header: set only when Aegis could not answer.
    pub fn retry_after(&self) -> Option<&'static str> {
        matches!(self, Self::Unavailable(_)).then_some("1")
    }

    /// The JSON body of the answer, in the shape Aegis itself answers errors with.
    pub fn body(&self) -> String {
        let body = ErrorBody {
            error: self.to_string(),
            code: None,
            details: None,
        };
        serde_json::to_string(&body).unwrap_or_default()
    }
}

/// The token of an `Authorization` header value of the form `Bearer <token>`.
fn bearer_token(authorization: Option<&[u8]>) -> Option<&str> {
    let value = std::str::from_utf8(authorization?).ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then_some(token)
}

/// Authenticates a request by its `Authorization` header value, for a framework adapter.
pub async fn authenticate(
    validator: &TokenValidator,
    authorization: Option<&[u8]>,
) -> Result<AuthenticatedUser, AuthError> {
    let token = bearer_token(authorization).ok_or(AuthError::MissingToken)?;
    match validator.validate(token).await {
        Ok(user) => Ok(AuthenticatedUser(user)),
        Err(e) if e.is_unauthorized() => Err(AuthError::InvalidToken),
        Err(e) => Err(AuthError::Unavailable(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_a_bearer_header_only() {
        let token = |value: &'static str| bearer_token(Some(value.as_bytes()));
        assert_eq!(token("Bearer abc"), Some("abc"));
        assert_eq!(token("Bearer  abc "), Some("abc"));
        assert_eq!(token("Bearer "), None);
        assert_eq!(token("Basic abc"), None);
        assert_eq!(bearer_token(Some(b"Bearer \xff")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn an_outage_is_a_503_with_retry_after_and_a_refusal_a_401_without() {
        let down = AuthError::Unavailable(ClientError::Timeout);
        assert_eq!(down.status(), 503);
        assert_eq!(down.retry_after(), Some("1"));
        assert_eq!(
            down.body(),
            r#"{"error":"Authentication service unavailable"}"#
        );
        assert_eq!(AuthError::InvalidToken.status(), 401);
        assert_eq!(AuthError::InvalidToken.retry_after(), None);
        assert_eq!(AuthError::MissingToken.status(), 401);
        assert_eq!(AuthError::NotConfigured.status(), 500);
    }
}
