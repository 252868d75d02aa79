//! User management: operators with the master key, site admins with a bearer token,
//! tenant backends with their key.

use actix_web::{guard, web};

pub(crate) mod handlers;

/// Registers the user-management and maintenance routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/sites/by-domain/users")
            .guard(guard::Get())
            .route(web::get().to(handlers::list_domain_users)),
    )
    .service(
        web::resource("/api/sites/{site_id}/users").route(web::get().to(handlers::list_site_users)),
    )
    .service(
        web::resource("/api/sites/{site_id}/users/{user_id}")
            .route(web::get().to(handlers::get_site_user)),
    )
    .service(web::resource("/api/admin/register").route(web::post().to(handlers::admin_register)))
    .service(
        web::resource("/api/admin/register-user")
            .route(web::post().to(handlers::admin_register_user)),
    )
    .service(web::resource("/api/admin/users").route(web::get().to(handlers::admin_list_users)))
    .service(
        web::resource("/api/admin/users/{user_id}")
            .route(web::delete().to(handlers::delete_user))
            .route(web::patch().to(handlers::patch_user)),
    )
    .service(
        web::resource("/api/admin/resend-verification/{user_id}")
            .route(web::post().to(handlers::resend_verification)),
    )
    .service(
        web::resource("/api/admin/cleanup-expired-tokens")
            .route(web::post().to(handlers::cleanup_expired_tokens)),
    )
    .service(
        web::resource("/api/admin/deliver-pending-webhooks")
            .route(web::post().to(handlers::deliver_pending_webhooks)),
    );
}
