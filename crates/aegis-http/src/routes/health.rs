//! `GET /api/health`: liveness, no database check, never an error. `GET /api/health/ready`:
//! readiness, the database answers and carries every migration this binary knows.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::{HttpResponse, web};
use aegis_api_types::{Health, NotReady, Ready};

use crate::state::AppState;

/// The longest the readiness check waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

#[utoipa::path(
    get,
    path = "/api/health",
    tag = "health",
    operation_id = "health",
    summary = "Liveness: answers as long as the process serves requests; touches no database.",
    responses((status = 200, description = "The service is up", body = Health))
)]
pub(crate) async fn health(state: web::Data<AppState>) -> HttpResponse {
    crate::json::response(
        StatusCode::OK,
        &Health {
            status: "healthy".to_owned(),
            service: "auth-service".to_owned(),
            version: state.version.clone(),
        },
    )
}

/// 200 when a pooled connection reads `__diesel_schema_migrations` and finds every embedded
/// migration applied; otherwise the service's 503 (`Retry-After: 1`) with the reason.
#[utoipa::path(
    get,
    path = "/api/health/ready",
    tag = "health",
    operation_id = "ready",
    summary = "Readiness: the database answers and carries every migration this build expects.",
    responses(
        (status = 200, description = "Ready to serve", body = Ready),
        (status = 503, description = "Not ready: the database is unreachable or migrations are pending", body = NotReady,
            headers(("Retry-After" = u32, description = "Seconds to wait before asking again")))
    )
)]
pub(crate) async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let checked = tokio::time::timeout(
        READY_TIMEOUT,
        aegis_postgres::pending_migrations(&state.pool),
    )
    .await;
    let reason = match checked {
        Ok(Ok(0)) => {
            return crate::json::response(
                StatusCode::OK,
                &Ready {
                    status: "ready".to_owned(),
                    service: "auth-service".to_owned(),
                    version: state.version.clone(),
                },
            );
        }
        Ok(Ok(_)) => "database migrations pending",
        Ok(Err(e)) => {
            if !matches!(e, aegis_domain::RepoError::Unavailable(_)) {
                tracing::warn!(error = %e, "readiness check failed");
            }
            "database unavailable"
        }
        Err(_) => "database unavailable",
    };
    let mut response = crate::json::response(
        StatusCode::SERVICE_UNAVAILABLE,
        &NotReady {
            error: crate::error::UNAVAILABLE.to_owned(),
            status: "not ready".to_owned(),
            reason: reason.to_owned(),
        },
    );
    response.headers_mut().insert(
        RETRY_AFTER,
        HeaderValue::from(crate::error::RETRY_AFTER_SECONDS),
    );
    response
}

/// Registers `GET /api/health` and `GET /api/health/ready`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/health").route(web::get().to(health)))
        .service(web::resource("/api/health/ready").route(web::get().to(ready)));
}
