//! Readiness (`/api/health/ready`) and request ids: what a probe and a client see, and what the
//! log carries.

use std::time::{Duration, Instant};

use aegis_http::client_ip::ClientIpPolicy;
use aegis_test_support::fresh_database;
use serde_json::{Value, json};

use crate::service::{Service, signed_in_user};
use crate::support::{Reply, TestApp, request};

#[track_caller]
fn assert_not_ready(reply: &Reply, reason: &str) {
    assert_eq!(reply.status.as_u16(), 503, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"error": "Service temporarily unavailable", "status": "not ready", "reason": reason})
    );
    assert_eq!(reply.header("retry-after"), "1");
    assert_eq!(reply.header("content-type"), "application/json");
}

#[actix_web::test]
async fn ready_on_a_migrated_database() {
    let app = TestApp::new().await;
    let reply = app.send(request("GET", "/api/health/ready")).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"status": "ready", "service": "auth-service", "version": "1.2.3"})
    );
}

#[actix_web::test]
async fn not_ready_while_the_database_is_down_but_still_alive() {
    let app = TestApp::with_database_down().await;
    let reply = app.send(request("GET", "/api/health/ready")).await;
    assert_not_ready(&reply, "database unavailable");
    // Liveness does not depend on the database: no restart for an outage Aegis rides out.
    let live = app.send(request("GET", "/api/health")).await;
    assert_eq!(live.status.as_u16(), 200);
}

#[actix_web::test]
async fn not_ready_while_a_migration_is_missing() {
    let app = TestApp::new().await;
    app.sql(
        "DELETE FROM __diesel_schema_migrations \
         WHERE version = (SELECT max(version) FROM __diesel_schema_migrations)",
    )
    .await;
    let reply = app.send(request("GET", "/api/health/ready")).await;
    assert_not_ready(&reply, "database migrations pending");
}

#[actix_web::test]
async fn a_well_formed_request_id_is_echoed_and_anything_else_replaced() {
    let app = TestApp::new().await;
    let with_id = |id: &str| request("GET", "/api/health").insert_header(("X-Request-Id", id));

    let echoed = app.send(with_id("trace-01.AB_cd")).await;
    assert_eq!(echoed.header("x-request-id"), "trace-01.AB_cd");
    let longest = "a".repeat(64);
    assert_eq!(
        app.send(with_id(&longest)).await.header("x-request-id"),
        longest
    );

    let mut seen = Vec::new();
    for bad in [
        "a".repeat(65).as_str(),
        "has space",
        "semi;colon",
        "new\tline",
        "ünïcode",
        "",
    ] {
        let reply = app
            .send(request("GET", "/api/health").insert_header((
                "X-Request-Id",
                actix_web::http::header::HeaderValue::from_bytes(bad.as_bytes()).unwrap(),
            )))
            .await;
        let id = reply.header("x-request-id");
        assert_ne!(id, bad);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{bad:?} gave {id:?}");
        seen.push(id);
    }
    // Without one, each request gets its own.
    let a = app.send(request("GET", "/api/health")).await;
    let b = app.send(request("GET", "/api/health")).await;
    assert!(uuid::Uuid::parse_str(&a.header("x-request-id")).is_ok());
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6);
}

#[actix_web::test]
async fn every_answer_carries_a_request_id() {
    let app = TestApp::with_limits(ClientIpPolicy::default()).await;
    let site = app.create_site("ids.example.com").await;
    let id = ("X-Request-Id", "every-answer");
    let login = || {
        request("POST", "/api/auth/login")
            .insert_header(("X-Tenant-Api-Key", site["tenant_api_key"].as_str().unwrap()))
            .insert_header(id)
            .set_json(
                json!({"site_id": site["uuid"], "email": "x@example.com", "password": "pw-123456"}),
            )
    };
    for _ in 0..10 {
        app.send(login()).await;
    }
    let answers = [
        (
            "404",
            app.send(request("GET", "/api/nothing").insert_header(id))
                .await,
        ),
        (
            "405",
            app.send(request("DELETE", "/api/health").insert_header(id))
                .await,
        ),
        (
            "OPTIONS",
            app.send(
                request("OPTIONS", "/api/auth/login")
                    .insert_header(id)
                    .insert_header(("Origin", "https://extra.example.com"))
                    .insert_header(("Access-Control-Request-Method", "POST")),
            )
            .await,
        ),
        (
            "401",
            app.send(request("GET", "/api/sites").insert_header(id))
                .await,
        ),
        ("429", app.send(login()).await),
    ];
    let statuses: Vec<u16> = answers.iter().map(|(_, r)| r.status.as_u16()).collect();
    assert_eq!(statuses, [404, 405, 200, 401, 429]);
    for (what, reply) in &answers {
        assert_eq!(reply.header("x-request-id"), "every-answer", "{what}");
    }

    let down = TestApp::with_database_down().await;
    let reply = down
        .send(
            request("GET", "/api/sites")
                .insert_header(("X-API-Key", crate::support::MASTER_KEY))
                .insert_header(id),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 503);
    assert_eq!(reply.header("x-request-id"), "every-answer");
}

/// The lines the service logged while `request_id` was handled.
fn lines_of(service: &Service, request_id: &str) -> Vec<Value> {
    service
        .log()
        .into_iter()
        .filter(|l| l["span"]["request_id"] == request_id)
        .collect()
}

/// Waits (a few seconds at most) until the service has logged the access line of `request_id`.
async fn access_line(service: &Service, request_id: &str) -> (Value, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = lines_of(service, request_id);
        let access: Vec<&Value> = lines
            .iter()
            .filter(|l| l["fields"]["message"] == "request")
            .collect();
        if let [line] = access[..] {
            return (line.clone(), lines.clone());
        }
        assert!(access.len() < 2, "one access line per request: {access:?}");
        assert!(Instant::now() < deadline, "no access line for {request_id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The real binary's JSON log: every line logged while a request is handled carries its id in the
/// `request` span, and the access line says who called (the client address, the site, the user).
#[actix_web::test]
async fn every_line_of_a_request_carries_its_id_and_the_access_line_says_who() {
    let db = fresh_database().await;
    let service = Service::start(
        db.url(),
        &[
            ("MAIL_TRANSPORT", "none"),
            ("PASSWORD_HASH_MEMORY_KIB", "64"),
            ("PASSWORD_HASH_ITERATIONS", "1"),
        ],
    )
    .await;
    let (site_id, key, auth) = signed_in_user(
        &service,
        db.url(),
        "access.example.com",
        "reader@example.com",
    )
    .await;
    let bearer = format!("Bearer {auth}");
    let me = service
        .call(
            "GET",
            "/api/auth/me",
            &[("Authorization", bearer.as_str())],
            None,
        )
        .await
        .json();
    let user_id = me["uuid"].as_str().unwrap().to_owned();

    // A failed login: the security event and the access line both carry the request id.
    let wrong = json!({"site_id": site_id, "email": "reader@example.com", "password": "wrong-one"});
    let reply = service
        .call(
            "POST",
            "/api/auth/login",
            &[
                ("X-Tenant-Api-Key", key.as_str()),
                ("X-Request-Id", "login-attempt-1"),
            ],
            Some(&wrong),
        )
        .await;
    assert_eq!(reply.status, 401);
    let (access, lines) = access_line(&service, "login-attempt-1").await;
    let event = lines
        .iter()
        .find(|l| l["fields"]["event"] == "login_failed")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert_eq!(event["span"]["site"], site_id.as_str());
    assert_eq!(access["level"], "INFO");
    assert_eq!(access["fields"]["method"], "POST");
    assert_eq!(access["fields"]["route"], "/api/auth/login");
    assert_eq!(access["fields"]["status"], 401);
    assert_eq!(access["fields"]["client"], "127.0.0.1");
    assert_eq!(access["span"]["site"], site_id.as_str());
    assert!(access["span"]["user"].is_null());

    // A bearer request: the access line names the user by id.
    service
        .call(
            "GET",
            "/api/auth/me",
            &[("Authorization", bearer.as_str()), ("X-Request-Id", "me-1")],
            None,
        )
        .await;
    let (access, _) = access_line(&service, "me-1").await;
    assert_eq!(access["span"]["user"], user_id.as_str());
    assert_eq!(access["span"]["site"], site_id.as_str());
    assert_eq!(access["fields"]["route"], "/api/auth/me");
    assert_eq!(access["fields"]["status"], 200);

    // A request without an id gets one, and its line carries the one returned.
    let res = reqwest::get(format!("http://127.0.0.1:{}/api/nothing", service.port))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let (access, _) = access_line(&service, &id).await;
    assert_eq!(access["fields"]["route"], "<unmatched>");

    // No token, password or address anywhere in the log.
    let text: String = service
        .log()
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
        .to_lowercase();
    for secret in ["reader@", "wrong-one", auth.as_str(), key.as_str()] {
        assert!(!text.contains(&secret.to_lowercase()), "{secret} logged");
    }
}
