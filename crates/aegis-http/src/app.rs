//! The actix application: the API as one scope (routes, JSON errors, CORS, security headers,
//! body limit, request log) and the application the binary serves.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::Service as _;
use actix_web::dev::{HttpServiceFactory, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::middleware::{DefaultHeaders, ErrorHandlerResponse, ErrorHandlers};
use actix_web::{App, Error, ResponseError as _, web};

use crate::error::ApiError;
pub use crate::state::{AppConfig, AppState, Ports, read_version};

/// The application the binary serves: the API at the root of the path space ([`scope`] with an
/// empty prefix), with one concrete body type.
pub fn build(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<BoxBody>,
        Error = Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap_fn(|req, srv| {
            let call = srv.call(req);
            async move { call.await.map(ServiceResponse::map_into_boxed_body) }
        })
        .service(scope("", state))
}

/// The whole API under `prefix` (`""` for the root): routes, JSON errors for everything the
/// framework answers itself (decision 9), CORS, security headers, the body limit and the request
/// log, applied to these routes only, so it can be mounted inside an application of its own.
pub fn scope(prefix: &str, state: web::Data<AppState>) -> impl HttpServiceFactory + 'static {
    let limit = state.max_body_bytes;
    let mut scope = web::scope(prefix)
        // The middleware read their own parts of the state.
        .app_data(web::Data::from(state.cors.clone()));
    if let Some(limiter) = &state.limiter {
        scope = scope.app_data(web::Data::from(limiter.clone()));
    }
    let openapi = state
        .openapi_enabled
        .then(|| (prefix.to_owned(), state.version.clone()));
    let scope = scope
        .app_data(state)
        .app_data(web::PayloadConfig::new(limit))
        .wrap(ErrorHandlers::new().default_handler(json_errors))
        .wrap(crate::cors::Cors::new(prefix))
        .wrap(
            DefaultHeaders::new()
                .add(("X-Content-Type-Options", "nosniff"))
                .add(("Referrer-Policy", "no-referrer"))
                .add(("Cache-Control", "no-store")),
        )
        .wrap(crate::telemetry::RequestLog)
        .configure(crate::routes::configure)
        .configure(crate::pages::configure);
    // After the API: routes are tried in order, and the UI's catch-all pattern is a regular
    // expression that every API request would otherwise be matched against first.
    let scope = match openapi {
        Some((prefix, version)) => {
            scope.configure(move |cfg| crate::openapi::configure(cfg, &prefix, &version))
        }
        None => scope,
    };
    scope.default_service(web::to(|| async {
        Err::<actix_web::HttpResponse, _>(ApiError::not_found("Not found"))
    }))
}

/// Turns any error response that is not already JSON (404 from routing, 405, payload errors) into
/// `{"error": "..."}` with the same status (decision 9). The hosted pages' own HTML answers
/// (decision 80) are left as they are.
fn json_errors<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json_or_page = res.headers().get(CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
    });
    if is_json_or_page {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let message = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::METHOD_NOT_ALLOWED => "Method not allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "Request body too large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "Content-Type must be application/json",
        StatusCode::INTERNAL_SERVER_ERROR => "Internal server error",
        s => s.canonical_reason().unwrap_or("Error"),
    };
    let (req, old) = res.into_parts();
    let mut new = ApiError::Client(status, message).error_response();
    for (name, value) in old.headers() {
        if name != CONTENT_TYPE && name != actix_web::http::header::CONTENT_LENGTH {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, new).map_into_right_body(),
    ))
}
