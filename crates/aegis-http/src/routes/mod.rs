//! Routes, one module per area.

use actix_web::web;

pub mod auth;
pub mod health;
pub mod sites;
pub mod users;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(health::configure)
        .configure(auth::configure)
        .configure(users::configure)
        .configure(sites::configure);
}
