//! `GET /api/health`: no database check, never an error.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use aegis_api_types::Health;

use crate::state::AppState;

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

/// Registers `GET /api/health`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/health").route(web::get().to(health)));
}
