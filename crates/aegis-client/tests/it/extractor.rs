//! A downstream service that protects a route with `AuthenticatedUser`.

use std::time::Duration;

use actix_web::dev::ServiceResponse;
use actix_web::{App, HttpResponse, test, web};
use aegis_api_types::{LogoutRequest, User};
use aegis_client::{AegisClient, AuthenticatedUser, TokenValidator};
use serde_json::Value;

use crate::support::Server;

async fn whoami(user: AuthenticatedUser) -> HttpResponse {
    HttpResponse::Ok().json(user.into_inner())
}

/// Calls `GET /whoami` of a downstream app guarded by `validator`, with `token` as bearer.
async fn call(validator: &web::Data<TokenValidator>, token: Option<&str>) -> ServiceResponse {
    let app = test::init_service(
        App::new()
            .app_data(validator.clone())
            .route("/whoami", web::get().to(whoami)),
    )
    .await;
    let mut request = test::TestRequest::get().uri("/whoami");
    if let Some(token) = token {
        request = request.insert_header(("Authorization", format!("Bearer {token}")));
    }
    test::call_service(&app, request.to_request()).await
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

#[actix_web::test]
async fn a_valid_token_reaches_the_handler_and_others_get_401() {
    let server = Server::start().await;
    let site = server.site("downstream.example.com").await;
    let token = server.signed_in(&site, "cy@example.com").await;
    let validator = web::Data::new(TokenValidator::new(AegisClient::new(server.url())));

    let ok = call(&validator, Some(&token)).await;
    assert_eq!(ok.status().as_u16(), 200);
    let user: User = test::read_body_json(ok).await;
    assert_eq!(user.email, "cy@example.com");
    assert_eq!(user.site_uuid, site.public.uuid);

    let none = call(&validator, None).await;
    assert_eq!(none.status().as_u16(), 401);
    let body: Value = test::read_body_json(none).await;
    assert!(!error_of(&body).is_empty(), "{body}");

    let bogus = call(&validator, Some("not-a-token")).await;
    assert_eq!(bogus.status().as_u16(), 401);
    let body: Value = test::read_body_json(bogus).await;
    assert_eq!(error_of(&body), "Invalid or expired token");
}

#[actix_web::test]
async fn a_logged_out_token_is_refused_once_the_ttl_has_run_out() {
    let server = Server::start().await;
    let site = server.site("revoked.example.com").await;
    let token = server.signed_in(&site, "dee@example.com").await;
    let client = AegisClient::new(server.url());
    // No cache: every request asks Aegis, as after the TTL.
    let uncached = web::Data::new(TokenValidator::new(client.clone()).with_ttl(Duration::ZERO));
    // A long cache: the revocation is not seen until the entry expires.
    let cached =
        web::Data::new(TokenValidator::new(client.clone()).with_ttl(Duration::from_secs(600)));

    assert_eq!(call(&uncached, Some(&token)).await.status().as_u16(), 200);
    assert_eq!(call(&cached, Some(&token)).await.status().as_u16(), 200);
    client
        .logout(&token, &LogoutRequest::default())
        .await
        .unwrap();

    assert_eq!(call(&uncached, Some(&token)).await.status().as_u16(), 401);
    assert_eq!(
        call(&cached, Some(&token)).await.status().as_u16(),
        200,
        "within the TTL the cached answer stands"
    );
    cached.forget(&token);
    assert_eq!(call(&cached, Some(&token)).await.status().as_u16(), 401);
}

#[actix_web::test]
async fn an_aegis_outage_is_a_503_not_a_401() {
    let server = Server::start().await;
    let site = server.site("outage.example.com").await;
    let token = server.signed_in(&site, "eve@example.com").await;
    let validator = web::Data::new(
        TokenValidator::new(AegisClient::new(server.url())).with_ttl(Duration::ZERO),
    );
    assert_eq!(call(&validator, Some(&token)).await.status().as_u16(), 200);

    server.stop().await;
    let down = call(&validator, Some(&token)).await;
    assert_eq!(down.status().as_u16(), 503);
    assert_eq!(down.headers().get("retry-after").unwrap(), "1");
    let body: Value = test::read_body_json(down).await;
    assert_eq!(error_of(&body), "Authentication service unavailable");
}

#[actix_web::test]
async fn an_aegis_that_never_answers_is_a_503_within_the_timeout() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = AegisClient::new(format!("http://{}", silent.local_addr().unwrap()))
        .with_timeout(Duration::from_millis(200));
    let validator = web::Data::new(TokenValidator::new(client));
    let hung = call(&validator, Some("some-token")).await;
    assert_eq!(hung.status().as_u16(), 503);
    assert_eq!(hung.headers().get("retry-after").unwrap(), "1");
}
