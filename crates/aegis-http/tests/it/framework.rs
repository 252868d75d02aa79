//! What the framework answers itself is JSON too (decision 9), and no input produces a 500.

use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::test::TestRequest;
use serde_json::json;

use crate::support::{MASTER_KEY, TestApp, request, site_body};

const ID: &str = "0191e1a0-0000-7000-8000-0000000000ff";

fn master(method: &str, path: &str) -> TestRequest {
    request(method, path).insert_header(("X-API-Key", MASTER_KEY))
}

#[actix_web::test]
async fn unknown_routes_and_trailing_slashes_are_json_404s() {
    let app = TestApp::new().await;
    for path in [
        "/",
        "/api",
        "/api/sites/",
        "/api/health/",
        "/nope",
        "/api/sites/x/y/z",
    ] {
        app.send(request("GET", path))
            .await
            .assert_error(404, "Not found");
    }
}

#[actix_web::test]
async fn wrong_methods_are_json_405s() {
    let app = TestApp::new().await;
    for (method, path) in [
        ("POST", "/api/health"),
        ("DELETE", "/api/sites"),
        ("PATCH", "/api/sites"),
        ("PATCH", &format!("/api/sites/{ID}") as &str),
        ("POST", &format!("/api/sites/{ID}")),
    ] {
        app.send(master(method, path))
            .await
            .assert_error(405, "Method not allowed");
    }
}

#[actix_web::test]
async fn bodies_must_be_json_objects_of_reasonable_size() {
    let app = TestApp::new().await;
    let id_path = format!("/api/sites/{ID}");
    for (method, path) in [("POST", "/api/sites"), ("PUT", id_path.as_str())] {
        // No content type, or another one: 415.
        app.send(master(method, path))
            .await
            .assert_error(415, "Content-Type must be application/json");
        app.send(
            master(method, path)
                .insert_header((CONTENT_TYPE, "text/plain"))
                .set_payload("{}"),
        )
        .await
        .assert_error(415, "Content-Type must be application/json");
        app.send(
            master(method, path)
                .insert_header((CONTENT_TYPE, "application/x-www-form-urlencoded"))
                .set_payload("name=x"),
        )
        .await
        .assert_error(415, "Content-Type must be application/json");

        // Declared JSON that is not JSON: 400.
        for payload in [
            &b""[..],
            b"{",
            b"{\"name\": }",
            b"\xff\xfe{}",
            b"{\"name\": \"\xc3\x28\"}",
            b"nul\x00",
            b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
            b"1e999",
        ] {
            app.send(
                master(method, path)
                    .insert_header((CONTENT_TYPE, "application/json"))
                    .set_payload(payload.to_vec()),
            )
            .await
            .assert_error(400, "The request body is not valid JSON");
        }

        // A non-object JSON value: 400 with the schema error.
        for payload in ["[1]", "\"x\"", "7", "true"] {
            app.send(
                master(method, path)
                    .insert_header((CONTENT_TYPE, "application/json"))
                    .set_payload(payload),
            )
            .await
            .assert_validation(json!({"_schema": ["Invalid input type."]}));
        }

        // Over 64 KiB: 413, whether or not the length is declared.
        let big = format!("{{\"name\": \"{}\"}}", "a".repeat(128 * 1024));
        app.send(
            master(method, path)
                .insert_header((CONTENT_TYPE, "application/json"))
                .set_payload(big.clone()),
        )
        .await
        .assert_error(413, "Request body too large");
        app.send(
            master(method, path)
                .insert_header((CONTENT_TYPE, "application/json"))
                .set_payload("{}")
                .insert_header((CONTENT_LENGTH, "999999999")),
        )
        .await
        .assert_error(413, "Request body too large");
    }
    // `application/*+json` and parameters are JSON.
    let reply = app
        .send(
            master("POST", "/api/sites")
                .insert_header((CONTENT_TYPE, "application/merge-patch+json; charset=utf-8"))
                .set_payload(site_body("ct.example.com").to_string()),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text());
}

#[actix_web::test]
async fn hostile_values_get_4xx_and_change_nothing() {
    let app = TestApp::new().await;
    let long = "x".repeat(10_000);
    let bodies = [
        json!({"name": "a\u{0000}b", "domain": "nul.example.com", "frontend_url": "http://a.com",
               "email_from": "a@b.co", "email_from_name": "x"}),
        json!({"name": long, "domain": long, "frontend_url": long, "email_from": long,
               "email_from_name": long}),
        json!({"name": {"nested": [1, 2]}, "domain": [], "frontend_url": 1.5,
               "email_from": true, "email_from_name": -1}),
        json!({"name": "x", "domain": "d\u{0000}", "frontend_url": "http://a.com/\u{0000}",
               "email_from": "a\u{0000}@b.co", "email_from_name": "x"}),
        json!({"name": "😀", "domain": "emoji.example.com", "frontend_url": "http://exämple.com",
               "email_from": "a@b.co", "email_from_name": "x", "webhook_url": "javascript://x.com"}),
    ];
    for body in bodies {
        let reply = app.master("POST", "/api/sites", Some(body.clone())).await;
        assert_eq!(reply.status.as_u16(), 400, "{body}: {}", reply.text());
        assert_eq!(reply.json()["error"], "Validation error");
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM sites").await, 0);

    for path in [
        "/api/sites/by-domain?domain=%00",
        "/api/sites/by-domain?domain=a%00b",
        "/api/sites/%00",
        "/api/sites/%FF%FE",
        "/api/sites/%7B%7D",
    ] {
        let reply = app.send(master("GET", path)).await;
        assert!(
            reply.status.is_client_error(),
            "{path}: {} {}",
            reply.status,
            reply.text()
        );
        assert!(reply.json()["error"].is_string());
    }
}
