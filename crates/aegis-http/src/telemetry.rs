//! Logging: the subscriber, and one line per request with the route template (never the raw path,
//! which can carry identifiers), status and duration.

use std::future::{Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::time::Instant;

use actix_web::Error;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
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

/// The access-log middleware.
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
        let method = req.method().to_string();
        let route = req.match_pattern();
        let service = self.service.clone();
        Box::pin(async move {
            let result = service.call(req).await;
            let route = route.as_deref().unwrap_or("<unmatched>");
            if route == "/api/health" {
                return result;
            }
            let ms = started.elapsed().as_millis();
            let status = match &result {
                Ok(res) => res.status().as_u16(),
                Err(e) => e.as_response_error().status_code().as_u16(),
            };
            if ms >= SLOW_MS {
                tracing::warn!(%method, %route, status, duration_ms = ms as u64, "slow request");
            } else {
                tracing::info!(%method, %route, status, duration_ms = ms as u64, "request");
            }
            result
        })
    }
}
