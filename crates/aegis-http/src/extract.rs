//! Extractors: the JSON body and the authentication schemes. A handler's signature shows who may
//! call it and what it reads.

use std::future::{Ready, ready};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, web};
use aegis_domain::secret_eq;
use secrecy::ExposeSecret as _;
use serde_json::Value;

use crate::app::AppState;
use crate::error::ApiError;

/// A parsed JSON request body, before schema validation.
///
/// - a content type other than `application/json` (or `application/*+json`) is 415;
/// - a body over `MAX_CONTENT_LENGTH` is 413, refused from `Content-Length` before reading;
/// - an empty or malformed body is 400.
#[derive(Debug)]
pub struct JsonBody(pub Value);

fn is_json_content_type(req: &HttpRequest) -> bool {
    match req.mime_type() {
        Ok(Some(mime)) => {
            mime.type_() == "application"
                && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"))
        }
        _ => false,
    }
}

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if !is_json_content_type(req) {
            return Box::pin(ready(Err(ApiError::Client(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            ))));
        }
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map_or(65_536, |s| s.max_body_bytes);
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Box::pin(ready(Err(too_large())));
        }
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|e| {
                if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::bad_request("Could not read the request body")
                }
            })?;
            serde_json::from_slice(&bytes)
                .map(JsonBody)
                .map_err(|_| ApiError::bad_request("The request body is not valid JSON"))
        })
    }
}

fn too_large() -> ApiError {
    ApiError::Client(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
}

/// The operator: `X-API-Key` equal to `MASTER_API_KEY`, compared in constant time.
#[derive(Debug, Clone, Copy)]
pub struct MasterKey;

impl FromRequest for MasterKey {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(check_master_key(req))
    }
}

fn check_master_key(req: &HttpRequest) -> Result<MasterKey, ApiError> {
    let not_configured = ApiError::Client(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Master API key not configured",
    );
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("Internal server error", "application state missing"))?;
    let expected = state.master_api_key.as_ref().ok_or(not_configured)?;
    let presented = req
        .headers()
        .get("X-API-Key")
        .map(|v| v.as_bytes())
        .filter(|v| !v.is_empty())
        .ok_or(ApiError::unauthorized("Missing X-API-Key header"))?;
    if secret_eq(presented, expected.expose_secret().as_bytes()) {
        Ok(MasterKey)
    } else {
        Err(ApiError::unauthorized("Invalid API key"))
    }
}
