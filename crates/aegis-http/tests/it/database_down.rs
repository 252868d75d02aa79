//! With the database unreachable, every route answers a clear JSON error: the contract's 500 texts
//! where it names them, and no panic. Health does not touch the database.

use serde_json::json;

use crate::support::{TestApp, request, site_body};

const ID: &str = "0191e1a0-0000-7000-8000-0000000000ff";

#[actix_web::test]
async fn storage_failures_are_reported_without_details() {
    let app = TestApp::with_database_down().await;
    app.master("POST", "/api/sites", Some(site_body("down.example.com")))
        .await
        .assert_error(500, "Failed to create site");
    app.master(
        "PUT",
        &format!("/api/sites/{ID}"),
        Some(json!({"name": "x"})),
    )
    .await
    .assert_error(500, "Failed to update site");
    app.master("DELETE", &format!("/api/sites/{ID}"), None)
        .await
        .assert_error(500, "Failed to delete site");
    for path in ["/api/sites".to_owned(), format!("/api/sites/{ID}")] {
        app.master("GET", &path, None)
            .await
            .assert_error(500, "Internal server error");
    }
    app.send(request("GET", "/api/sites/by-domain?domain=x.example.com"))
        .await
        .assert_error(500, "Internal server error");
    // Validation still answers first, and health needs no database.
    app.master("POST", "/api/sites", Some(json!({})))
        .await
        .assert_validation(json!({
            "name": ["Missing data for required field."],
            "domain": ["Missing data for required field."],
            "frontend_url": ["Missing data for required field."],
            "email_from": ["Missing data for required field."],
            "email_from_name": ["Missing data for required field."],
        }));
    assert_eq!(
        app.send(request("GET", "/api/health"))
            .await
            .status
            .as_u16(),
        200
    );
}
