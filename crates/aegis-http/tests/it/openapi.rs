//! The OpenAPI document: served, switchable, and true to the routes the application registers.
//! (Every answer of every test is also checked against it: see `documented.rs`.)

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use serde_json::Value;

use crate::documented::DOCUMENT;
use crate::support::{TestApp, request};

/// The documented operations: (path, upper-case method).
fn documented() -> BTreeSet<(String, String)> {
    DOCUMENT["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (path.clone(), method.to_ascii_uppercase()))
        })
        .collect()
}

/// The documented methods of `path`.
fn methods_of(path: &str) -> BTreeSet<String> {
    documented()
        .into_iter()
        .filter(|(p, _)| p == path)
        .map(|(_, m)| m)
        .collect()
}

/// An `Allow` value as a set of methods.
fn allow_set(value: &str) -> BTreeSet<String> {
    value.split(',').map(|m| m.trim().to_owned()).collect()
}

/// `path` with every `{parameter}` filled in with an identifier no row has.
fn concrete(path: &str) -> String {
    path.replace("{site_id}", "0190a3c4-6f1e-7cc2-9a51-3c1f1d2b4e5f")
        .replace("{user_id}", "0190a3c5-0b2d-7d4e-8f10-2a3b4c5d6e7f")
}

#[actix_web::test]
async fn the_document_is_served_with_its_ui_and_both_can_be_switched_off() {
    let app = TestApp::new().await;
    let served = app.send(request("GET", "/api/openapi.json")).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.header("content-type"), "application/json");
    let mut doc = served.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], "1.2.3");
    doc["info"]["version"] = Value::from("test");
    assert_eq!(
        doc, *DOCUMENT,
        "the served document is the one the tests check against"
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["master_key"]["name"], "X-API-Key");
    assert_eq!(schemes["tenant_key"]["name"], "X-Tenant-Api-Key");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");

    let redirect = app.send(request("GET", "/api/docs")).await;
    assert_eq!(redirect.status, StatusCode::FOUND);
    assert_eq!(redirect.header("location"), "/api/docs/");
    let ui = app.send(request("GET", "/api/docs/")).await;
    assert_eq!(ui.status, StatusCode::OK);
    assert!(ui.header("content-type").starts_with("text/html"));
    assert!(ui.text().contains("swagger-ui"), "{}", ui.text());
    let script = app
        .send(request("GET", "/api/docs/swagger-initializer.js"))
        .await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(
        script.text().contains("/api/openapi.json"),
        "{}",
        script.text()
    );

    let off = TestApp::without_openapi().await;
    for path in ["/api/openapi.json", "/api/docs", "/api/docs/"] {
        off.send(request("GET", path))
            .await
            .assert_error(404, "Not found");
    }
}

#[actix_web::test]
async fn every_documented_operation_is_registered_with_exactly_its_methods() {
    let app = TestApp::new().await;
    let ops = documented();
    assert_eq!(ops.len(), 32, "{ops:?}");
    for (path, method) in &ops {
        let reply = app.send(request(method, &concrete(path))).await;
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_ne!(
            reply.text(),
            r#"{"error":"Not found"}"#,
            "{method} {path} is not routed"
        );
    }
    for path in ops.iter().map(|(p, _)| p).collect::<BTreeSet<_>>() {
        // The by-domain paths answer GET only, and pass any other method on to the `{site_id}`
        // route they also match, whose own methods `Allow` then names.
        if path.contains("by-domain") {
            continue;
        }
        let mut expected = methods_of(path);
        let refused = app.send(request("TRACE", &concrete(path))).await;
        assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(
            allow_set(&refused.header("allow")),
            expected,
            "405 on {path}"
        );

        if expected.contains("GET") {
            expected.insert("HEAD".into());
        }
        expected.insert("OPTIONS".into());
        let options = app.send(request("OPTIONS", &concrete(path))).await;
        assert_eq!(options.status, StatusCode::OK, "{path}");
        assert_eq!(
            allow_set(&options.header("allow")),
            expected,
            "OPTIONS on {path}"
        );
    }
}

/// Every path the route modules register is documented: they name their paths as `"/api/…"`
/// literals, and each must be a path of the document.
#[test]
fn every_registered_path_is_documented() {
    let documented: BTreeSet<String> = documented().into_iter().map(|(p, _)| p).collect();
    let routes = concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes");
    let mut registered = BTreeSet::new();
    let mut dirs = vec![std::path::PathBuf::from(routes)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            for (start, _) in source.match_indices("\"/api/") {
                let literal = &source[start + 1..];
                let end = literal.find('"').unwrap();
                registered.insert(literal[..end].to_owned());
            }
        }
    }
    assert!(registered.len() >= 27, "{registered:?}");
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "registered but not documented: {undocumented:?}"
    );
}
