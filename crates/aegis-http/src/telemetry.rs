//! Logging: the subscriber, and one line per request with the route template (never the raw path,
//! which can carry identifiers), status, duration and client address; request ids; and the HTTP
//! metrics.
//!
//! Every request runs inside a `request` span carrying its `request_id` (the client's
//! `X-Request-Id` when well formed, else a new UUID v7, returned on every answer), and the `site`
//! and `user` once the tenant gate or a bearer check has established them, so every line logged
//! while it is handled carries them.

use std::future::{Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{Error, web};
use tracing::Instrument as _;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, Settings};

/// Requests slower than this are logged at WARN.
const SLOW_MS: u128 = 1_000;

/// Installs the global subscriber: `RUST_LOG` if set, else `LOG_LEVEL`; text or JSON lines.
pub fn init(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(settings.log_directive()));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The subscriber of the operator commands: warnings and errors only (unless `RUST_LOG` says
/// otherwise), on stderr, so that stdout carries the command's output alone.
pub fn init_cli(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,aegis_postgres::pool=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The request-id header, read and answered.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id accepted from a client.
pub const MAX_REQUEST_ID: usize = 64;

/// Routes answered without an access line (probes called every few seconds).
const QUIET: [&str; 2] = ["/api/health", "/api/health/ready"];

/// A client's request id is kept when it is 1 to [`MAX_REQUEST_ID`] characters of
/// `[A-Za-z0-9._-]`; anything else is replaced, so a log line never carries what a client chose
/// to inject.
pub fn acceptable_request_id(value: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&value.len())
        && value
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

fn request_id(req: &ServiceRequest) -> HeaderValue {
    if let Some(id) = req
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| acceptable_request_id(v.as_bytes()))
    {
        return id.clone();
    }
    let mut buffer = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buffer);
    HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("-"))
}

/// Records what a request is about in its span, once known: the site (the tenant gate, a bearer
/// check) and the user (a bearer check). The ids only, never an address or a token.
pub fn identify(site: &aegis_domain::SiteId, user: Option<&aegis_domain::UserId>) {
    let span = tracing::Span::current();
    span.record("site", tracing::field::display(site));
    if let Some(user) = user {
        span.record("user", tracing::field::display(user));
    }
}

/// The access-log middleware: request id, span, access line and HTTP metrics.
pub struct RequestLog;

impl<S, B> Transform<S, ServiceRequest> for RequestLog
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RequestLogMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestLogMiddleware {
            service: Rc::new(service),
        }))
    }
}

/// The access-log middleware around the application.
pub struct RequestLogMiddleware<S> {
    service: Rc<S>,
}

impl<S, B> Service<ServiceRequest> for RequestLogMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let id = request_id(&req);
        let span = tracing::info_span!(
            "request",
            request_id = id.to_str().unwrap_or("-"),
            site = tracing::field::Empty,
            user = tracing::field::Empty,
        );
        let method = req.method().clone();
        let route = req.match_pattern();
        let quiet = route.as_deref().is_some_and(|r| QUIET.contains(&r));
        // The client address is found as the limits find it (trusted proxies only).
        let client = if quiet {
            None
        } else {
            req.app_data::<web::Data<crate::state::AppState>>()
                .and_then(|state| state.clients.policy.client_ip(req.request()))
        };
        let call = span.in_scope(|| self.service.call(req));
        Box::pin(
            async move {
                let mut result = call.await;
                let status = match &mut result {
                    Ok(res) => {
                        res.headers_mut().insert(REQUEST_ID, id);
                        res.status().as_u16()
                    }
                    Err(e) => e.as_response_error().status_code().as_u16(),
                };
                let elapsed = started.elapsed();
                crate::metrics::record_request(
                    route.as_deref(),
                    &method,
                    status,
                    elapsed.as_secs_f64(),
                );
                if quiet {
                    return result;
                }
                let route = route.as_deref().unwrap_or("<unmatched>");
                let ms = elapsed.as_millis() as u64;
                let method = method.as_str();
                let client = client.map(tracing::field::display);
                if u128::from(ms) >= SLOW_MS {
                    tracing::warn!(
                        method,
                        route,
                        status,
                        duration_ms = ms,
                        client,
                        "slow request"
                    );
                } else {
                    tracing::info!(method, route, status, duration_ms = ms, client, "request");
                }
                result
            }
            .instrument(span),
        )
    }
}
