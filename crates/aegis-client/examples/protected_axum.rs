//! A downstream axum service that protects a route with Aegis.
//!
//! ```sh
//! AEGIS_URL=http://127.0.0.1:8080 cargo run -p aegis-client --features axum --example protected_axum
//! curl -H "Authorization: Bearer <token from POST /api/auth/login>" http://127.0.0.1:8090/profile
//! ```
//!
//! `GET /profile` answers the signed-in user; without a token Aegis accepts it answers 401, and
//! while Aegis is unreachable 503. `GET /` is public.

use std::sync::Arc;
use std::time::Duration;

use aegis_client::{AegisClient, AuthenticatedUser, TokenValidator};
use axum::routing::get;
use axum::{Json, Router};

/// The protected route: only runs for a valid token.
async fn profile(user: AuthenticatedUser) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "email": user.email,
        "role": user.role,
        "site": user.site_uuid,
    }))
}

async fn public() -> &'static str {
    "anyone may read this\n"
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let aegis_url = std::env::var("AEGIS_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let addr = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:8090".into());
    let client = AegisClient::new(aegis_url).with_timeout(Duration::from_secs(5));
    // The state the extractor reads its validator from, one cache for the whole service.
    let validator = Arc::new(TokenValidator::new(client).with_ttl(Duration::from_secs(10)));
    let app = Router::new()
        .route("/", get(public))
        .route("/profile", get(profile))
        .with_state(validator);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{addr}");
    axum::serve(listener, app).await
}
