//! Aegis as a library: the in-process example end to end, and the API mounted under a prefix inside
//! an application of its own.

use actix_web::{App, HttpResponse, test, web};
use aegis_http::config::Settings;
use aegis_http::embed::Aegis;
use aegis_test_support::fresh_database;
use serde_json::Value;

use crate::support::{MASTER_KEY, SECRET_KEY, site_body};

#[allow(dead_code)]
#[path = "../../examples/in_process.rs"]
mod in_process;

#[actix_web::test]
async fn the_in_process_example_signs_a_user_in() {
    let db = fresh_database().await;
    let outbox = std::env::temp_dir().join(format!("aegis-example-{}", uuid::Uuid::now_v7()));
    let email = in_process::run(db.url(), SECRET_KEY, outbox.to_str().unwrap())
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&outbox);
    assert_eq!(email, "ada@example.com");
}

#[actix_web::test]
async fn the_api_mounts_under_a_prefix_beside_the_host_routes() {
    let db = fresh_database().await;
    let settings = Settings::from_vars([
        ("DATABASE_URL", db.url()),
        ("SECRET_KEY", SECRET_KEY),
        ("MASTER_API_KEY", MASTER_KEY),
        ("AEGIS_ENV", "development"),
        ("MAIL_TRANSPORT", "none"),
    ])
    .unwrap();
    let aegis = Aegis::start(&settings).await.unwrap();
    // The embedder serves the metrics where it likes: here, rendered in-process.
    let metrics = aegis.metrics().expect("no other recorder is installed");
    let app = test::init_service(
        App::new()
            .route(
                "/hello",
                web::get().to(|| async { HttpResponse::Ok().body("host") }),
            )
            .configure(aegis.configure("/auth/")),
    )
    .await;

    let created: Value = test::call_and_read_body_json(
        &app,
        test::TestRequest::post()
            .uri("/auth/api/sites")
            .insert_header(("X-API-Key", MASTER_KEY))
            .set_json(site_body("mounted.example.com"))
            .to_request(),
    )
    .await;
    assert_eq!(created["domain"], "mounted.example.com");
    // In-process and over HTTP, one Aegis.
    assert_eq!(aegis.sites().list().await.unwrap().len(), 1);

    let unknown = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/auth/api/nothing")
            .to_request(),
    )
    .await;
    assert_eq!(unknown.status().as_u16(), 404);
    assert_eq!(unknown.headers().get("cache-control").unwrap(), "no-store");
    let body: Value = test::read_body_json(unknown).await;
    assert_eq!(body, serde_json::json!({"error": "Not found"}));

    // The host's own routes are its own: no Aegis headers, not under its body rules.
    let hello = test::call_service(&app, test::TestRequest::get().uri("/hello").to_request()).await;
    assert_eq!(hello.status().as_u16(), 200);
    assert!(hello.headers().get("cache-control").is_none());
    // And the API is not at the root.
    let root = test::call_service(
        &app,
        test::TestRequest::get().uri("/api/health").to_request(),
    )
    .await;
    assert_eq!(root.status().as_u16(), 404);

    // Under the prefix, the route label is the mounted template.
    let text = metrics.render();
    assert!(
        text.lines()
            .any(|l| l.starts_with("aegis_http_requests_total{")
                && l.contains("route=\"/auth/api/sites\"")
                && l.contains("method=\"POST\"")
                && l.contains("status=\"201\"")),
        "{text}"
    );
    assert!(text.contains("aegis_db_pool_max_connections"), "{text}");
}
