//! `GET /api/health`: no database check, never an error.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::app::AppState;

#[derive(Serialize)]
struct Health<'a> {
    status: &'static str,
    service: &'static str,
    version: &'a str,
}

async fn health(state: web::Data<AppState>) -> HttpResponse {
    crate::json::response(
        StatusCode::OK,
        &Health {
            status: "healthy",
            service: "auth-service",
            version: &state.version,
        },
    )
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/health").route(web::get().to(health)));
}
