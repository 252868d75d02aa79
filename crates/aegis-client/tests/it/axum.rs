//! A downstream axum service, served on a port of its own, that protects a route with
//! `AuthenticatedUser`.

use std::sync::Arc;
use std::time::Duration;

use aegis_api_types::{LogoutRequest, User};
use aegis_client::{AegisClient, AuthenticatedUser, TokenValidator};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use crate::support::Server;

async fn whoami(user: AuthenticatedUser) -> Json<User> {
    Json(user.into_inner())
}

/// A downstream service guarded by `validator`, served on 127.0.0.1; returns its `/whoami` URL.
async fn downstream(validator: TokenValidator) -> String {
    let app = Router::new()
        .route("/whoami", get(whoami))
        .with_state(Arc::new(validator));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/whoami", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// `GET url` with `token` as bearer: the status, the `Retry-After` header and the JSON body.
async fn call(url: &str, token: Option<&str>) -> (u16, Option<String>, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/json"
    );
    let body = response.bytes().await.unwrap();
    (status, retry_after, serde_json::from_slice(&body).unwrap())
}

#[actix_web::test]
async fn a_valid_token_reaches_the_axum_handler_and_others_get_401() {
    let server = Server::start().await;
    let site = server.site("axum.example.com").await;
    let token = server.signed_in(&site, "fay@example.com").await;
    let url = downstream(TokenValidator::new(AegisClient::new(server.url()))).await;

    let (status, _, body) = call(&url, Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["email"], "fay@example.com");
    assert_eq!(body["site_uuid"], site.public.uuid.to_string());

    let (status, retry_after, body) = call(&url, None).await;
    assert_eq!((status, retry_after), (401, None));
    assert_eq!(body["error"], "Missing or invalid authorization header");

    let (status, _, body) = call(&url, Some("not-a-token")).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "Invalid or expired token");
}

#[actix_web::test]
async fn a_logged_out_token_is_refused_and_an_outage_is_a_503() {
    let server = Server::start().await;
    let site = server.site("axum-revoked.example.com").await;
    let token = server.signed_in(&site, "gus@example.com").await;
    let client = AegisClient::new(server.url());
    let url = downstream(TokenValidator::new(client.clone()).with_ttl(Duration::ZERO)).await;

    assert_eq!(call(&url, Some(&token)).await.0, 200);
    client
        .logout(&token, &LogoutRequest::default())
        .await
        .unwrap();
    assert_eq!(call(&url, Some(&token)).await.0, 401);

    server.stop().await;
    let (status, retry_after, body) = call(&url, Some(&token)).await;
    assert_eq!((status, retry_after.as_deref()), (503, Some("1")));
    assert_eq!(body["error"], "Authentication service unavailable");
}
