//! Site management: master key, except the public lookup by domain.

use actix_web::{guard, web};

pub(crate) mod dto;
pub(crate) mod handlers;

/// Registers the site routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg
        // Fixed segments before the parameter. The by-domain resource answers GET only; other methods
        // fall through to `{site_id}`, where "by-domain" is an unknown site (404), as in the reference.
        .service(
            web::resource("/api/sites/by-domain")
                .guard(guard::Get())
                .route(web::get().to(handlers::get_by_domain)),
        )
        .service(
            web::resource("/api/sites")
                .route(web::post().to(handlers::create))
                .route(web::get().to(handlers::list)),
        )
        .service(
            web::resource("/api/sites/{site_id}")
                .route(web::get().to(handlers::get))
                .route(web::put().to(handlers::update))
                .route(web::delete().to(handlers::delete)),
        );
}
