//! CORS (decision 11) and the headers every response carries (decision 24, hardening).

use serde_json::json;

use crate::support::{Reply, TestApp, request};

fn header(reply: &Reply, name: &str) -> Option<String> {
    reply
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[actix_web::test]
async fn a_sites_frontend_origin_is_echoed_and_others_get_nothing() {
    let app = TestApp::new().await;
    app.create_site("cors.example.com").await; // frontend_url http://test.example.com
    let ok = app
        .send(request("GET", "/api/health").insert_header(("Origin", "http://test.example.com")))
        .await;
    assert_eq!(
        header(&ok, "access-control-allow-origin").as_deref(),
        Some("http://test.example.com")
    );
    assert_eq!(header(&ok, "vary").as_deref(), Some("Origin"));
    assert_eq!(header(&ok, "access-control-allow-credentials"), None);

    let evil = app
        .send(request("GET", "/api/health").insert_header(("Origin", "https://evil.example.com")))
        .await;
    assert_eq!(
        evil.status.as_u16(),
        200,
        "the request itself is still served"
    );
    assert_eq!(header(&evil, "access-control-allow-origin"), None);

    let preflight = app
        .send(
            request("OPTIONS", "/api/auth/login")
                .insert_header(("Origin", "https://evil.example.com"))
                .insert_header(("Access-Control-Request-Method", "POST")),
        )
        .await;
    assert_eq!(preflight.status.as_u16(), 200);
    assert_eq!(header(&preflight, "access-control-allow-origin"), None);
    assert_eq!(header(&preflight, "access-control-allow-methods"), None);

    let extra = app
        .send(request("GET", "/api/health").insert_header(("Origin", "https://extra.example.com")))
        .await;
    assert_eq!(
        header(&extra, "access-control-allow-origin").as_deref(),
        Some("https://extra.example.com")
    );
}

#[actix_web::test]
async fn preflights_for_allowed_origins_list_patch_and_the_credential_headers() {
    let app = TestApp::new().await;
    let site = app.create_site("pre.example.com").await;
    let preflight = app
        .send(
            request(
                "OPTIONS",
                &format!("/api/admin/users/{}", site["uuid"].as_str().unwrap()),
            )
            .insert_header(("Origin", "http://test.example.com"))
            .insert_header(("Access-Control-Request-Method", "PATCH")),
        )
        .await;
    assert_eq!(preflight.status.as_u16(), 200);
    assert!(preflight.body.is_empty());
    assert_eq!(
        header(&preflight, "access-control-allow-origin").as_deref(),
        Some("http://test.example.com")
    );
    assert_eq!(
        header(&preflight, "access-control-allow-methods").as_deref(),
        Some("GET, POST, PUT, PATCH, DELETE, OPTIONS")
    );
    assert_eq!(
        header(&preflight, "access-control-allow-headers").as_deref(),
        Some("Content-Type, Authorization, X-API-Key, X-Tenant-Api-Key")
    );
    assert_eq!(
        header(&preflight, "access-control-max-age").as_deref(),
        Some("600")
    );
    assert!(header(&preflight, "allow").unwrap().contains("PATCH"));
}

#[actix_web::test]
async fn a_new_sites_origin_is_allowed_without_a_restart() {
    let app = TestApp::new().await;
    let probe = || {
        request("GET", "/api/health").insert_header(("Origin", "https://fresh.example.com:8443"))
    };
    assert_eq!(
        header(&app.send(probe()).await, "access-control-allow-origin"),
        None
    );
    let mut body = crate::support::site_body("fresh.example.com");
    body["frontend_url"] = json!("https://fresh.example.com:8443/app/login?next=/x");
    app.master("POST", "/api/sites", Some(body)).await;
    assert_eq!(
        header(&app.send(probe()).await, "access-control-allow-origin").as_deref(),
        Some("https://fresh.example.com:8443")
    );
}

#[actix_web::test]
async fn every_response_carries_the_hardening_headers() {
    let app = TestApp::new().await;
    let site = app.create_site("hard.example.com").await;
    for reply in [
        app.send(request("GET", "/api/health")).await,
        app.send(request("GET", "/nowhere")).await,
        app.master("GET", "/api/sites", None).await,
        app.master(
            "GET",
            &format!("/api/sites/{}", site["uuid"].as_str().unwrap()),
            None,
        )
        .await,
        app.send(request("POST", "/api/auth/login").set_json(json!({})))
            .await,
    ] {
        assert_eq!(
            header(&reply, "x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(
            header(&reply, "referrer-policy").as_deref(),
            Some("no-referrer")
        );
        assert_eq!(header(&reply, "cache-control").as_deref(), Some("no-store"));
    }
}

#[actix_web::test]
async fn head_is_a_get_without_a_body() {
    let app = TestApp::new().await;
    let reply = app.send(request("HEAD", "/api/health")).await;
    assert_eq!(reply.status.as_u16(), 200);
    assert!(reply.body.is_empty());
    assert_eq!(
        header(&reply, "content-type").as_deref(),
        Some("application/json")
    );
    let reply = app.send(request("HEAD", "/api/sites")).await;
    assert_eq!(reply.status.as_u16(), 401);
    assert!(reply.body.is_empty());
}
