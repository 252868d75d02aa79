//! Routes, one module per area.

use actix_web::web;

pub mod health;
pub mod sites;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(health::configure).configure(sites::configure);
}
