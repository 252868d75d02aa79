//! Accounts and sessions.

use actix_web::web;

use crate::ratelimit::{Limited, RateLimit};

pub(crate) mod dto;
pub(crate) mod handlers;

/// Registers the account and session routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/auth/register")
            .wrap(RateLimit(Limited::Register))
            .route(web::post().to(handlers::register)),
    )
    .service(
        web::resource("/api/auth/invite-user")
            .wrap(RateLimit(Limited::Invite))
            .route(web::post().to(handlers::invite_user)),
    )
    .service(
        web::resource("/api/auth/login")
            .wrap(RateLimit(Limited::Login))
            .route(web::post().to(handlers::login)),
    )
    .service(
        web::resource("/api/auth/request-password-reset")
            .wrap(RateLimit(Limited::PasswordReset))
            .route(web::post().to(handlers::request_password_reset)),
    );
    for (path, route) in [
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
