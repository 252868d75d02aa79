//! With the database unreachable, or no pooled connection free in time, every route that needs the
//! database answers `503 {"error":"Service temporarily unavailable"}` with `Retry-After`, at once
//! (decision 27): never a 500, and a bearer check never a 401. Checks that need no database still
//! answer first, and health needs none. The stop-and-restart test of a real server is in
//! `outage.rs`.

use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use serde_json::{Value, json};

use crate::support::{MASTER_KEY, Reply, TestApp, request, site_body};

const SITE: &str = "0191e1a0-0000-7000-8000-0000000000ff";
const USER: &str = "0191e1a0-0000-7000-8000-0000000000ee";

#[track_caller]
fn assert_unavailable(reply: &Reply, what: &str) {
    assert_eq!(reply.status.as_u16(), 503, "{what}: {}", reply.text());
    assert_eq!(
        reply.text(),
        "{\"error\":\"Service temporarily unavailable\"}\n",
        "{what}"
    );
    assert_eq!(reply.headers.get("retry-after").unwrap(), "1", "{what}");
    assert_eq!(
        reply.headers.get("content-type").unwrap(),
        "application/json",
        "{what}"
    );
}

fn tenant(path: &str, body: Value) -> TestRequest {
    request("POST", path)
        .insert_header(("X-Tenant-Api-Key", "a".repeat(64)))
        .set_json(body)
}

fn bearer(method: &str, path: &str) -> TestRequest {
    request(method, path).insert_header(("Authorization", "Bearer some-auth-token"))
}

fn master(method: &str, path: &str, body: Option<Value>) -> TestRequest {
    let req = request(method, path).insert_header(("X-API-Key", MASTER_KEY));
    match body {
        Some(body) => req.set_json(body),
        None => req,
    }
}

/// Every route that needs the database, with a request that passes every check made before it.
fn every_route() -> Vec<(&'static str, TestRequest)> {
    let account = json!({"site_id": SITE, "email": "u@example.com", "password": "password-1"});
    vec![
        ("register", tenant("/api/auth/register", account.clone())),
        (
            "invite",
            tenant(
                "/api/auth/invite-user",
                json!({"site_id": SITE, "email": "u@example.com"}),
            ),
        ),
        ("login", tenant("/api/auth/login", account)),
        ("logout", bearer("POST", "/api/auth/logout")),
        (
            "refresh",
            request("POST", "/api/auth/refresh").set_json(json!({"refresh_token": "r"})),
        ),
        ("me", bearer("GET", "/api/auth/me")),
        (
            "verify-email",
            tenant(
                "/api/auth/verify-email",
                json!({"site_id": SITE, "token": "t"}),
            ),
        ),
        (
            "check-verification-token",
            tenant(
                "/api/auth/check-verification-token",
                json!({"site_id": SITE, "token": "t"}),
            ),
        ),
        (
            "change-password",
            bearer("POST", "/api/auth/change-password")
                .set_json(json!({"old_password": "password-1", "new_password": "password-2"})),
        ),
        (
            "request-password-reset",
            tenant(
                "/api/auth/request-password-reset",
                json!({"site_id": SITE, "email": "u@example.com"}),
            ),
        ),
        (
            "reset-password",
            tenant(
                "/api/auth/reset-password",
                json!({"site_id": SITE, "token": "t", "new_password": "password-2"}),
            ),
        ),
        (
            "request-email-change",
            bearer("POST", "/api/auth/request-email-change")
                .set_json(json!({"new_email": "v@example.com", "password": "password-1"})),
        ),
        (
            "confirm-email-change",
            request("POST", "/api/auth/confirm-email-change").set_json(json!({"token": "t"})),
        ),
        (
            "create site",
            master("POST", "/api/sites", Some(site_body("down.example.com"))),
        ),
        ("list sites", master("GET", "/api/sites", None)),
        (
            "site by domain",
            request("GET", "/api/sites/by-domain?domain=x.example.com"),
        ),
        (
            "get site",
            master("GET", &format!("/api/sites/{SITE}"), None),
        ),
        (
            "update site",
            master(
                "PUT",
                &format!("/api/sites/{SITE}"),
                Some(json!({"name": "x"})),
            ),
        ),
        (
            "delete site",
            master("DELETE", &format!("/api/sites/{SITE}"), None),
        ),
        (
            "site users",
            master("GET", &format!("/api/sites/{SITE}/users"), None),
        ),
        (
            "domain users",
            master(
                "GET",
                "/api/sites/by-domain/users?domain=x.example.com",
                None,
            ),
        ),
        (
            "site user",
            request("GET", &format!("/api/sites/{SITE}/users/{USER}"))
                .insert_header(("X-Tenant-Api-Key", "a".repeat(64))),
        ),
        (
            "admin register",
            master(
                "POST",
                "/api/admin/register",
                Some(json!({"site_id": SITE, "email": "a@example.com"})),
            ),
        ),
        (
            "admin register-user",
            bearer("POST", "/api/admin/register-user").set_json(json!({"email": "b@example.com"})),
        ),
        ("admin users", bearer("GET", "/api/admin/users")),
        (
            "delete user",
            master("DELETE", &format!("/api/admin/users/{USER}"), None),
        ),
        (
            "patch user",
            master(
                "PATCH",
                &format!("/api/admin/users/{USER}"),
                Some(json!({"deletion_protected": true})),
            ),
        ),
        (
            "resend verification",
            master(
                "POST",
                &format!("/api/admin/resend-verification/{USER}"),
                None,
            ),
        ),
        (
            "cleanup",
            master("POST", "/api/admin/cleanup-expired-tokens", None),
        ),
        (
            "webhook sweep",
            master("POST", "/api/admin/deliver-pending-webhooks", None),
        ),
    ]
}

#[actix_web::test]
async fn every_route_answers_503_at_once_while_the_database_is_unreachable() {
    let app = TestApp::with_database_down().await;
    for (what, req) in every_route() {
        let started = Instant::now();
        let reply = app.send(req).await;
        assert_unavailable(&reply, what);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{what} took {:?}",
            started.elapsed()
        );
    }
    // Checks that need no database answer first, and health needs none.
    app.master("POST", "/api/sites", Some(json!({})))
        .await
        .assert_validation(json!({
            "name": ["Missing data for required field."],
            "domain": ["Missing data for required field."],
            "frontend_url": ["Missing data for required field."],
            "email_from": ["Missing data for required field."],
            "email_from_name": ["Missing data for required field."],
        }));
    app.send(request("GET", "/api/auth/me"))
        .await
        .assert_error(401, "Missing authorization header");
    app.send(request("POST", "/api/sites"))
        .await
        .assert_error(401, "Missing X-API-Key header");
    assert_eq!(
        app.send(request("GET", "/api/health"))
            .await
            .status
            .as_u16(),
        200
    );
}

/// Limits run before the tenant gate, so even a request the gate would refuse with a 401 (no
/// tenant key) gets the 503 while the counters cannot be reached.
#[actix_web::test]
async fn rate_limited_routes_answer_503_before_the_gate() {
    let app = TestApp::with_limits_and_database_down().await;
    for path in [
        "/api/auth/login",
        "/api/auth/register",
        "/api/auth/request-password-reset",
        "/api/auth/invite-user",
    ] {
        let reply = app
            .send(request("POST", path).set_json(
                json!({"site_id": SITE, "email": "u@example.com", "password": "password-1"}),
            ))
            .await;
        assert_unavailable(&reply, path);
    }
    // Without limits the same request is the gate's 401: the 503 above is the limiter's.
    let plain = TestApp::with_database_down().await;
    plain
        .send(request("POST", "/api/auth/login").set_json(json!({"site_id": SITE})))
        .await
        .assert_error(401, "Invalid or missing tenant API key");
}

#[actix_web::test]
async fn a_pool_with_no_connection_free_in_time_answers_503() {
    let app = TestApp::with_pool_size(1).await;
    let site = app.create_site("busy.example.com").await;
    let user = app
        .verified_user(&site, "busy@example.com", "password-1")
        .await;
    let token = app.login(&site, "busy@example.com", "password-1").await["auth_token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let held = app.pool.get().await.unwrap();
    let started = Instant::now();
    let reply = app.bearer("GET", "/api/auth/me", &token, None).await;
    assert_unavailable(&reply, "me with the pool exhausted");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    drop(held);
    let reply = app.bearer("GET", "/api/auth/me", &token, None).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    assert_eq!(reply.json()["uuid"], user["uuid"]);
}
