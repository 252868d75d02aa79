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
        (
            "/api/auth/change-password",
            web::post().to(handlers::change_password),
        ),
        (
            "/api/auth/request-password-reset",
            web::post().to(handlers::request_password_reset),
        ),
        (
            "/api/auth/reset-password",
            web::post().to(handlers::reset_password),
        ),
        (
            "/api/auth/request-email-change",
            web::post().to(handlers::request_email_change),
        ),
        (
            "/api/auth/confirm-email-change",
            web::post().to(handlers::confirm_email_change),
        ),
    ] {
        cfg.service(web::resource(path).route(route));
    }
}
