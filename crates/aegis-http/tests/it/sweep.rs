//! Hostile input on every route: every answer is a 4xx JSON error, never a 500, and nothing changes.

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};

use crate::support::{MASTER_KEY, TestApp, request};

const ID: &str = "0191e1a0-0000-7000-8000-0000000000ff";

#[actix_web::test]
async fn no_input_produces_a_server_error() {
    let app = TestApp::new().await;
    let site = app.create_site("sweep.example.com").await;
    let user = app
        .verified_user(&site, "s@example.com", "password-1")
        .await;
    let auth = app.login(&site, "s@example.com", "password-1").await["auth_token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, u) = (
        site["uuid"].as_str().unwrap(),
        user["uuid"].as_str().unwrap(),
    );
    let key = site["tenant_api_key"].as_str().unwrap();
    let routes: Vec<(&str, String)> = vec![
        ("POST", "/api/auth/register".into()),
        ("POST", "/api/auth/invite-user".into()),
        ("POST", "/api/auth/login".into()),
        ("POST", "/api/auth/refresh".into()),
        ("GET", "/api/auth/me".into()),
        ("POST", "/api/auth/verify-email".into()),
        ("POST", "/api/auth/check-verification-token".into()),
        ("POST", "/api/auth/change-password".into()),
        ("POST", "/api/auth/request-password-reset".into()),
        ("POST", "/api/auth/reset-password".into()),
        ("POST", "/api/auth/request-email-change".into()),
        ("POST", "/api/auth/confirm-email-change".into()),
        ("POST", "/api/sites".into()),
        ("PUT", format!("/api/sites/{s}")),
        ("GET", format!("/api/sites/{s}/users/{u}")),
        ("POST", "/api/admin/register".into()),
        ("POST", "/api/admin/register-user".into()),
        ("PATCH", format!("/api/admin/users/{u}")),
        ("POST", format!("/api/admin/resend-verification/{ID}")),
        // Last: it ends the session the others use.
        ("POST", "/api/auth/logout".into()),
    ];
    let long = "x".repeat(20_000);
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"[1]".to_vec(),
        b"\"x\"".to_vec(),
        b"null".to_vec(),
        b"\xff\xfe\xfd".to_vec(),
        json!({"site_id": s, "email": null, "password": null, "token": null, "refresh_token": null,
               "new_password": null, "old_password": null, "new_email": null, "name": null,
               "deletion_protected": null, "role": null}).to_string().into_bytes(),
        json!({"site_id": s, "email": 1, "password": [], "token": {}, "refresh_token": 5,
               "new_password": true, "old_password": 1.5, "new_email": [1], "role": 7}).to_string().into_bytes(),
        json!({"site_id": s, "email": format!("{long}@example.com"), "password": long, "token": long,
               "refresh_token": long, "new_password": long, "old_password": long, "new_email": long,
               "name": long}).to_string().into_bytes(),
        json!({"site_id": s, "email": "a\u{0}@example.com", "password": "pass\u{0}word", "token": "t\u{0}",
               "refresh_token": "r\u{0}", "new_password": "new\u{0}password", "old_password": "o\u{0}",
               "new_email": "n\u{0}@example.com", "name": "n\u{0}"}).to_string().into_bytes(),
        json!({"site_id": "urn:uuid:0191e1a0-0000-7000-8000-0000000000ff", "email": "a@example.com"}).to_string().into_bytes(),
        json!({"site_id": 99999999999999999999.0_f64, "extra": {"deep": [[[[1]]]]}}).to_string().into_bytes(),
        format!("{{\"email\": \"{}\"}}", "x".repeat(70_000)).into_bytes(),
    ];
    let users_before = app.count("SELECT count(*) AS n FROM users").await;
    for (method, path) in &routes {
        for (i, body) in bodies.iter().enumerate() {
            for content_type in ["application/json", "text/plain"] {
                let reply = app
                    .send(
                        request(method, path)
                            .insert_header(("X-API-Key", MASTER_KEY))
                            .insert_header(("X-Tenant-Api-Key", key))
                            .insert_header(("Authorization", format!("Bearer {auth}")))
                            .insert_header((CONTENT_TYPE, HeaderValue::from_static(content_type)))
                            .set_payload(body.clone()),
                    )
                    .await;
                let status = reply.status.as_u16();
                assert!(
                    (200..500).contains(&status),
                    "{method} {path} body #{i} ({content_type}): {status} {}",
                    reply.text()
                );
                if status >= 400 {
                    let error: Value = reply.json();
                    assert!(
                        error["error"].is_string(),
                        "{method} {path} #{i}: {}",
                        reply.text()
                    );
                }
            }
        }
    }
    assert_eq!(
        app.count("SELECT count(*) AS n FROM users").await,
        users_before
    );
}

#[actix_web::test]
async fn hostile_headers_and_nesting_get_4xx_and_change_nothing() {
    use aegis_http::client_ip::{Cidr, ClientIpPolicy};
    let app = TestApp::with_limits(ClientIpPolicy {
        header: Some("CF-Connecting-IP".into()),
        proxies: vec![Cidr::parse("10.0.0.0/8").unwrap()],
    })
    .await;
    let site = app.create_site("headers.example.com").await;
    let s = site["uuid"].as_str().unwrap().to_owned();
    let key = site["tenant_api_key"].as_str().unwrap().to_owned();
    let routes = [
        ("POST", "/api/auth/login"),
        ("POST", "/api/auth/register"),
        ("POST", "/api/auth/request-password-reset"),
        ("POST", "/api/auth/invite-user"),
        ("POST", "/api/auth/change-password"),
        ("POST", "/api/auth/request-email-change"),
        ("GET", "/api/auth/me"),
        ("GET", "/api/sites"),
        ("POST", "/api/sites"),
    ];
    let deep_array = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000));
    let body =
        json!({"site_id": s, "email": "h@example.com", "password": "password-1"}).to_string();
    let bytes = |b: &[u8]| HeaderValue::from_bytes(b).unwrap();
    let junk_values = [
        bytes(b"\xff\xfe\xfd"),
        bytes(b"caf\xc3\xa9"),
        bytes(b"\x80"),
        bytes("x".repeat(6_000).as_bytes()),
        bytes(b"Bearer \xff"),
    ];
    let users_before = app.count("SELECT count(*) AS n FROM users").await;
    for (method, path) in routes {
        for payload in [deep_array.as_str(), deep_object.as_str(), body.as_str()] {
            // A new window for every kind of payload, so valid bodies reach the routes rather than
            // a 429.
            app.clock.advance(3_601);
            for junk in &junk_values {
                for header in [
                    "X-Tenant-Api-Key",
                    "Authorization",
                    "X-API-Key",
                    "CF-Connecting-IP",
                    "X-Forwarded-For",
                    "Origin",
                    "Content-Type",
                ] {
                    let reply = app
                        .send(
                            request(method, path)
                                .peer_addr("10.0.0.9:4000".parse().unwrap())
                                .insert_header(("X-Tenant-Api-Key", key.as_str()))
                                .insert_header((CONTENT_TYPE, "application/json"))
                                .insert_header((header, junk.clone()))
                                .set_payload(payload.to_owned()),
                        )
                        .await;
                    let status = reply.status.as_u16();
                    assert!(
                        status < 500,
                        "{method} {path} {header}={junk:?}: {status} {}",
                        reply.text()
                    );
                    if status >= 400 {
                        assert!(reply.json()["error"].is_string(), "{}", reply.text());
                    } else {
                        // Only a valid body goes through (register, request a reset), whatever
                        // junk sits beside it in a header the route does not need.
                        assert_eq!(payload, body.as_str(), "{method} {path} {header}: {status}");
                    }
                }
            }
        }
    }
    // The one account a valid body could create, and no other.
    assert_eq!(
        app.count("SELECT count(*) AS n FROM users WHERE email <> 'h@example.com'")
            .await,
        users_before
    );
    // No counter was named after a header value: bucket names are route names, UUIDs, hex
    // digests and networks only. (A plain `LIKE '%caf%'` would also match a hex digest or the
    // random site UUID, and did.)
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM rate_limit_counters \
             WHERE bucket !~ '^[a-z0-9:./-]+$' OR bucket LIKE '%xxxx%' OR length(bucket) > 128"
        )
        .await,
        0
    );
}
