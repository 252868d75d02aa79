//! A downstream service that protects a route with Aegis.
//!
//! ```sh
//! AEGIS_URL=http://127.0.0.1:8080 cargo run -p aegis-client --example protected
//! curl -H "Authorization: Bearer <token from POST /api/auth/login>" http://127.0.0.1:8090/profile
//! ```
//!
//! `GET /profile` answers the signed-in user; without a token Aegis accepts it answers 401, and
//! while Aegis is unreachable 503. `GET /` is public.

use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use aegis_client::{AegisClient, AuthenticatedUser, TokenValidator};

/// The protected route: only runs for a valid token.
async fn profile(user: AuthenticatedUser) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "email": user.email,
        "role": user.role,
        "site": user.site_uuid,
    }))
}

async fn public() -> HttpResponse {
    HttpResponse::Ok().body("anyone may read this\n")
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let aegis_url = std::env::var("AEGIS_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let addr = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:8090".into());
    let client = AegisClient::new(aegis_url).with_timeout(Duration::from_secs(5));
    // One validator, so one cache, shared by every worker.
    let validator = web::Data::new(TokenValidator::new(client).with_ttl(Duration::from_secs(10)));
    println!("listening on http://{addr}");
    HttpServer::new(move || {
        App::new()
            .app_data(validator.clone())
            .route("/", web::get().to(public))
            .route("/profile", web::get().to(profile))
    })
    .bind(addr)?
    .run()
    .await
}
