//! Accounts and sessions (§4.2–§4.9).

use actix_web::web;

mod dto;
mod handlers;

pub use dto::UserView;

pub fn configure(cfg: &mut web::ServiceConfig) {
    for (path, route) in [
        ("/api/auth/register", web::post().to(handlers::register)),
        (
            "/api/auth/invite-user",
            web::post().to(handlers::invite_user),
        ),
        ("/api/auth/login", web::post().to(handlers::login)),
        ("/api/auth/logout", web::post().to(handlers::logout)),
        ("/api/auth/refresh", web::post().to(handlers::refresh)),
        ("/api/auth/me", web::get().to(handlers::me)),
        (
            "/api/auth/verify-email",
            web::post().to(handlers::verify_email),
        ),
        (
            "/api/auth/check-verification-token",
            web::post().to(handlers::check_verification_token),
        ),
    ] {
        cfg.service(web::resource(path).route(route));
    }
}
