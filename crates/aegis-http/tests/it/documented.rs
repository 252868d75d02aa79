//! Every answer the tests receive from the API is checked against the OpenAPI document the
//! service serves: its status must be one the document lists for the route, and its body must
//! match the documented schema. So the document cannot drift from the code.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, StatusCode};
use jsonschema::Validator;
use serde_json::{Value, json};

/// The document, as served for an API mounted at the root.
pub static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    serde_json::to_value(aegis_http::openapi::document("", "test")).expect("the document")
});

/// Compiled schemas, by route, method and status.
static VALIDATORS: LazyLock<Mutex<HashMap<String, Arc<Validator>>>> =
    LazyLock::new(Default::default);

/// The documented answer of `pattern` and `method` for `status`, with `$ref`s followed.
fn documented_response(pattern: &str, method: &str, status: u16) -> Option<Option<&'static Value>> {
    let operation = DOCUMENT["paths"].get(pattern)?.get(method)?;
    let mut response = operation["responses"].get(status.to_string());
    if let Some(Value::String(reference)) = response.and_then(|r| r.get("$ref")) {
        let name = reference.trim_start_matches("#/components/responses/");
        response = DOCUMENT["components"]["responses"].get(name);
    }
    Some(response)
}

fn validator(key: &str, schema: &Value) -> Arc<Validator> {
    let mut validators = VALIDATORS.lock().unwrap_or_else(|e| e.into_inner());
    validators
        .entry(key.to_owned())
        .or_insert_with(|| {
            let mut root = schema.clone();
            root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
            root["components"] = DOCUMENT["components"].clone();
            Arc::new(jsonschema::validator_for(&root).expect("a valid schema"))
        })
        .clone()
}

/// Panics unless the answer is one the document describes for the route `pattern` matched.
/// Answers of the framework itself (no route, a method the route lacks) and bodiless `HEAD` and
/// `OPTIONS` answers are not the document's business.
#[track_caller]
pub fn check(
    method: &Method,
    pattern: Option<&str>,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) {
    let Some(pattern) = pattern else { return };
    if *method == Method::HEAD
        || *method == Method::OPTIONS
        || status == StatusCode::METHOD_NOT_ALLOWED
    {
        return;
    }
    let verb = method.as_str().to_ascii_lowercase();
    let Some(response) = documented_response(pattern, &verb, status.as_u16()) else {
        return;
    };
    let response = response.unwrap_or_else(|| {
        panic!(
            "{method} {pattern} answered {status}, which the OpenAPI document does not list: {}",
            String::from_utf8_lossy(body)
        )
    });
    let Some(schema) = response.pointer("/content/application~1json/schema") else {
        assert!(
            body.is_empty(),
            "{method} {pattern} {status}: a body the document does not describe"
        );
        return;
    };
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{method} {pattern} {status}"
    );
    let instance: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{method} {pattern} {status}: the body is not JSON ({e})"));
    let validator = validator(&format!("{verb} {pattern} {status}"), schema);
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {pattern} {status}: the body does not match the documented schema: {errors:?}\n{instance}"
    );
}
