//! The master-key scheme on every master route.

use serde_json::json;

use crate::support::{MASTER_KEY, TestApp, request, site_body};

const ID: &str = "0191e1a0-0000-7000-8000-0000000000ff";

fn master_routes() -> Vec<(&'static str, String)> {
    vec![
        ("POST", "/api/sites".into()),
        ("GET", "/api/sites".into()),
        ("GET", format!("/api/sites/{ID}")),
        ("PUT", format!("/api/sites/{ID}")),
        ("DELETE", format!("/api/sites/{ID}")),
        ("GET", format!("/api/sites/{ID}/users")),
        (
            "GET",
            "/api/sites/by-domain/users?domain=x.example.com".into(),
        ),
        ("POST", "/api/admin/register".into()),
        ("DELETE", format!("/api/admin/users/{ID}")),
        ("PATCH", format!("/api/admin/users/{ID}")),
        ("POST", format!("/api/admin/resend-verification/{ID}")),
        ("POST", "/api/admin/cleanup-expired-tokens".into()),
    ]
}

#[actix_web::test]
async fn missing_empty_and_wrong_keys_are_refused_and_change_nothing() {
    let app = TestApp::new().await;
    for (method, path) in master_routes() {
        let with_body = |r: actix_web::test::TestRequest| r.set_json(site_body("x.example.com"));
        app.send(with_body(request(method, &path)))
            .await
            .assert_error(401, "Missing X-API-Key header");
        app.send(with_body(
            request(method, &path).insert_header(("X-API-Key", "")),
        ))
        .await
        .assert_error(401, "Missing X-API-Key header");
        for wrong in [
            format!("{MASTER_KEY}x"),
            MASTER_KEY[..10].to_owned(),
            MASTER_KEY.to_uppercase(),
        ] {
            app.send(with_body(
                request(method, &path).insert_header(("X-API-Key", wrong)),
            ))
            .await
            .assert_error(401, "Invalid API key");
        }
        // Non-ASCII bytes in the header are just a wrong key, never a 500.
        let raw = actix_web::http::header::HeaderValue::from_bytes(b"k\xc3\xa9y").unwrap();
        app.send(with_body(
            request(method, &path).insert_header(("X-API-Key", raw)),
        ))
        .await
        .assert_error(401, "Invalid API key");
        // Other credentials never stand in for the master key.
        app.send(with_body(
            request(method, &path)
                .insert_header(("Authorization", format!("Bearer {MASTER_KEY}")))
                .insert_header(("X-Tenant-Api-Key", MASTER_KEY)),
        ))
        .await
        .assert_error(401, "Missing X-API-Key header");
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM sites").await, 0);
}

#[actix_web::test]
async fn without_a_configured_key_master_routes_answer_500() {
    let app = TestApp::without_master_key().await;
    for (method, path) in master_routes() {
        let reply = app
            .send(
                request(method, &path)
                    .insert_header(("X-API-Key", "anything"))
                    .set_json(site_body("x.example.com")),
            )
            .await;
        reply.assert_error(500, "Master API key not configured");
    }
    // Public routes still work.
    let reply = app
        .send(request(
            "GET",
            "/api/sites/by-domain?domain=none.example.com",
        ))
        .await;
    reply.assert_error(404, "Site not found");
}

#[actix_web::test]
async fn the_right_key_is_accepted() {
    let app = TestApp::new().await;
    let reply = app.master("GET", "/api/sites", None).await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(reply.json(), json!([]));
}
