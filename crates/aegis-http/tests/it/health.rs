use actix_web::http::StatusCode;
use serde_json::json;

use crate::support::{TestApp, request};

#[actix_web::test]
async fn health_reports_the_version_without_authentication() {
    let app = TestApp::new().await;
    let reply = app.send(request("GET", "/api/health")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.text(),
        "{\"service\":\"auth-service\",\"status\":\"healthy\",\"version\":\"1.2.3\"}\n"
    );
    assert_eq!(
        reply.json(),
        json!({"status": "healthy", "service": "auth-service", "version": "1.2.3"})
    );
}

#[test]
fn the_version_is_the_trimmed_file_or_unknown() {
    let dir = std::env::temp_dir().join(format!("aegis-version-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("VERSION");
    std::fs::write(&file, " 2.0.1\n").unwrap();
    assert_eq!(aegis_http::app::read_version(&file), "2.0.1");
    std::fs::write(&file, "\n").unwrap();
    assert_eq!(aegis_http::app::read_version(&file), "unknown");
    std::fs::remove_file(&file).unwrap();
    assert_eq!(aegis_http::app::read_version(&file), "unknown");
}
