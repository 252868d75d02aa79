//! JSON responses shaped like the reference's: keys sorted at every level, compact, and ending in a
//! newline. Clients ignore key order, but tests compare some bodies byte for byte (the uniform
//! tenant-gate 401), so every body is deterministic.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use serde::Serialize;
use serde_json::{Map, Value};

/// Serialises `body` with sorted keys and a trailing newline. Going through a `Value` sorts them:
/// serde_json's map is ordered by key (its `preserve_order` feature, which would keep insertion
/// order, is off; the test below fails if a dependency ever turns it on).
pub fn to_body<T: Serialize + ?Sized>(body: &T) -> String {
    let value = serde_json::to_value(body).unwrap_or_else(|e| {
        tracing::error!(error = %e, "response serialisation failed");
        Value::Object(Map::new())
    });
    let mut text = value.to_string();
    text.push('\n');
    text
}

/// A JSON response with `status` and `body`.
pub fn response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .body(to_body(body))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Fields declared out of order, as structs are.
    #[derive(Serialize)]
    struct Outer {
        b: u8,
        a: Inner,
    }

    #[derive(Serialize)]
    struct Inner {
        z: Option<u8>,
        y: Vec<serde_json::Value>,
    }

    #[test]
    fn keys_are_sorted_at_every_level_and_the_body_ends_in_a_newline() {
        let body = to_body(&Outer {
            b: 1,
            a: Inner {
                z: None,
                y: vec![json!({"d": 1, "c": 2})],
            },
        });
        assert_eq!(
            body,
            "{\"a\":{\"y\":[{\"c\":2,\"d\":1}],\"z\":null},\"b\":1}\n"
        );
    }
}
