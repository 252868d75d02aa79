//! A typed async client for the Aegis HTTP API, and an actix-web extractor that authenticates the
//! requests of a downstream service against Aegis.
//!
//! [`AegisClient`] has one method per route of the API. Each takes the request body from
//! [`aegis_api_types`] (the very types the server answers with, so client and server cannot drift
//! apart) and returns the response body, or a [`ClientError`] that tells an error answer of the
//! API ([`ClientError::Api`], with its [`ErrorBody`](aegis_api_types::ErrorBody)) from a network
//! failure and from a body that does not parse.
//!
//! ```no_run
//! # async fn demo() -> Result<(), aegis_client::ClientError> {
//! use aegis_api_types::LoginRequest;
//! use aegis_client::AegisClient;
//!
//! let aegis = AegisClient::new("http://127.0.0.1:8080").with_tenant_key("tenant-key");
//! let session = aegis
//!     .login(&LoginRequest {
//!         site_id: uuid::Uuid::nil(),
//!         email: "ada@example.com".into(),
//!         password: "correct horse battery staple".into(),
//!     })
//!     .await?;
//! let me = aegis.me(&session.auth_token.token).await?;
//! assert_eq!(me.email, "ada@example.com");
//! # Ok(())
//! # }
//! ```
//!
//! [`AuthenticatedUser`] is an extractor for actix-web (the default feature `actix`) and for axum
//! (the feature `axum`): a handler that takes one only runs for a request carrying a bearer token
//! Aegis accepts. See [`TokenValidator`] for how tokens are checked and cached; a service on
//! another framework calls [`authenticate`] with the request's `Authorization` header.
#![warn(missing_docs)]

#[cfg(feature = "actix")]
mod actix;
#[cfg(feature = "axum")]
mod axum;
mod cache;
mod client;
mod error;
mod validator;

pub use cache::{DEFAULT_CAPACITY, DEFAULT_TTL, TokenCache, TokenKey};
pub use client::AegisClient;
pub use error::ClientError;
pub use validator::{AuthError, AuthenticatedUser, TokenValidator, authenticate};
