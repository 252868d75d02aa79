use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use aegis_api_types::{
    AdminRegisterRequest, AdminRegisterUserRequest, CleanupReport, ErrorBody, Message,
    PatchUserRequest, WebhookSweep,
};
use aegis_domain::site::Site;
use aegis_domain::user::{Email, Role, User};
use aegis_domain::validation::msg;
use aegis_domain::{SiteId, UserId};
use serde_json::Value;

use crate::error::ApiError;
use crate::error_map::{SITE_NOT_FOUND, USER_NOT_FOUND};
use crate::extract::{BearerAdmin, JsonBody, MasterKey, TENANT_GATE_ERROR, TenantPath};
use crate::json;
use crate::routes::auth::dto;
use crate::state::AppState;
use crate::validation::Schema;

// The fields each route's body may carry, as its schema declares them.
pub(crate) const ADMIN_REGISTER_FIELDS: &[&str] = &["site_id", "email", "role"];
pub(crate) const ADMIN_REGISTER_USER_FIELDS: &[&str] = &["email", "role"];
pub(crate) const PATCH_USER_FIELDS: &[&str] = &["deletion_protected"];

fn users_response(users: &[User]) -> HttpResponse {
    let views: Vec<aegis_api_types::User> = users.iter().map(dto::user).collect();
    json::response(StatusCode::OK, &views)
}

fn user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).ok_or(ApiError::not_found(USER_NOT_FOUND))
}

#[utoipa::path(
    get,
    path = "/api/sites/{site_id}/users",
    tag = "users",
    operation_id = "list_site_users",
    summary = "The users of a site.",
    params(("site_id" = String, Path, description = "The site's UUID")),
    responses((status = 200, description = "The site's users", body = Vec<aegis_api_types::User>), (status = 404, description = "Site not found", body = ErrorBody)),
    security(("master_key" = []))
)]
pub async fn list_site_users(
    _: MasterKey,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = SiteId::parse(&path).ok_or(ApiError::not_found(SITE_NOT_FOUND))?;
    let site = state
        .sites
        .get(id)
        .await?
        .ok_or(ApiError::not_found(SITE_NOT_FOUND))?;
    let users = state.accounts.list_users(site.id).await?;
    Ok(users_response(&users))
}

#[utoipa::path(
    get,
    path = "/api/sites/by-domain/users",
    tag = "users",
    operation_id = "list_domain_users",
    summary = "The users of a site, by domain.",
    params(("domain" = String, Query, description = "The site's domain")),
    responses((status = 200, description = "The site's users", body = Vec<aegis_api_types::User>), (status = 400, description = "No `domain` parameter", body = ErrorBody), (status = 404, description = "Site not found", body = ErrorBody)),
    security(("master_key" = []))
)]
pub async fn list_domain_users(
    _: MasterKey,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let domain = crate::routes::domain_param(&req)?;
    let site = state
        .sites
        .get_by_domain(&domain)
        .await?
        .ok_or(ApiError::not_found(SITE_NOT_FOUND))?;
    let users = state.accounts.list_users(site.id).await?;
    Ok(users_response(&users))
}

/// Every failure here is the gate's 401, never a 404: a tenant learns nothing about other sites.
#[utoipa::path(
    get,
    path = "/api/sites/{site_id}/users/{user_id}",
    tag = "users",
    operation_id = "get_site_user",
    summary = "A user of the tenant's own site. An unknown user is the tenant gate's 401, like an unknown site.",
    params(("site_id" = String, Path, description = "The site's UUID"), ("user_id" = String, Path, description = "The user's UUID")),
    responses((status = 200, description = "The user", body = aegis_api_types::User)),
    security(("tenant_key" = []))
)]
pub async fn get_site_user(
    gate: TenantPath,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let denied = || ApiError::unauthorized(TENANT_GATE_ERROR);
    let id = UserId::parse(&path.1).ok_or_else(denied)?;
    let user = state
        .accounts
        .user_in_site(gate.site.id, id)
        .await?
        .ok_or_else(denied)?;
    Ok(json::response(StatusCode::OK, &dto::user(&user)))
}

/// The optional `role` field: `user` or `admin`.
fn role(s: &mut Schema) -> Option<Role> {
    match s.optional_str("role", &[]) {
        None => Some(Role::User),
        Some(raw) => match Role::parse(&raw) {
            Some(role) => Some(role),
            None => {
                s.fail("role", msg::ROLE);
                None
            }
        },
    }
}

async fn create_user(
    state: &AppState,
    site: &Site,
    email: &Email,
    role: Role,
) -> Result<HttpResponse, ApiError> {
    let user = state.accounts.create_by_admin(site, email, role).await?;
    Ok(json::response(StatusCode::CREATED, &dto::user(&user)))
}

#[utoipa::path(
    post,
    path = "/api/admin/register",
    tag = "users",
    operation_id = "admin_register",
    summary = "Creates a verified user in any site, with no password: they set one through a password reset.",
    request_body = AdminRegisterRequest,
    responses((status = 201, description = "The new user", body = aegis_api_types::User), (status = 400, description = "Validation error, or no such site", body = ErrorBody)),
    security(("master_key" = []))
)]
pub async fn admin_register(
    _: MasterKey,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let mut s = Schema::new(body.0, ADMIN_REGISTER_FIELDS)?;
    let raw_site = s.required_value("site_id");
    let email = s.required_email("email");
    let role = role(&mut s);
    let site = match raw_site {
        Some(Value::String(raw)) => match SiteId::parse(&raw) {
            Some(id) => state.sites.get(id).await?,
            None => None,
        },
        _ => None,
    };
    if site.is_none() && s.is_unset_or_ok("site_id") {
        s.fail("site_id", msg::UNKNOWN_SITE);
    }
    s.finish()?;
    match (site, email, role) {
        (Some(site), Some(email), Some(role)) => create_user(&state, &site, &email, role).await,
        _ => Err(ApiError::bug(
            "Internal server error",
            "validated fields missing",
        )),
    }
}

#[utoipa::path(
    post,
    path = "/api/admin/register-user",
    tag = "users",
    operation_id = "admin_register_user",
    summary = "A site admin creates a user in their own site.",
    request_body = AdminRegisterUserRequest,
    responses((status = 201, description = "The new user", body = aegis_api_types::User), (status = 403, description = "The bearer is not an admin of the site", body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn admin_register_user(
    admin: BearerAdmin,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let (email, role) = new_user(body.0)?;
    let site = state
        .sites
        .get(admin.0.user.site_id)
        .await?
        .ok_or(ApiError::bad_request(SITE_NOT_FOUND))?;
    create_user(&state, &site, &email, role).await
}

/// A `POST /api/admin/register-user` body (`email`, optional `role`) → the address and the role.
/// The operator CLI's `users create` validates its flags through it too.
pub(crate) fn new_user(body: Value) -> Result<(Email, Role), ApiError> {
    let mut s = Schema::new(body, ADMIN_REGISTER_USER_FIELDS)?;
    let email = s.required_email("email");
    let role = role(&mut s);
    s.finish()?;
    match (email, role) {
        (Some(email), Some(role)) => Ok((email, role)),
        _ => Err(ApiError::bug(
            "Internal server error",
            "validated fields missing",
        )),
    }
}

#[utoipa::path(
    get,
    path = "/api/admin/users",
    tag = "users",
    operation_id = "admin_list_users",
    summary = "A site admin lists the users of their own site.",
    responses((status = 200, description = "The site's users", body = Vec<aegis_api_types::User>), (status = 403, description = "The bearer is not an admin of the site", body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn admin_list_users(
    admin: BearerAdmin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let users = state.accounts.list_users(admin.0.user.site_id).await?;
    Ok(users_response(&users))
}

#[utoipa::path(
    delete,
    path = "/api/admin/users/{user_id}",
    tag = "users",
    operation_id = "delete_user",
    summary = "Deletes a user; a `user.deleted` webhook follows.",
    params(("user_id" = String, Path, description = "The user's UUID")),
    responses((status = 200, description = "Deleted", body = Message), (status = 404, description = "User not found", body = ErrorBody), (status = 409, response = crate::openapi::UserDeletionConflict)),
    security(("master_key" = []))
)]
pub async fn delete_user(
    _: MasterKey,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&path)?;
    let user = state.accounts.delete_user(id).await?;
    tracing::info!(user = %user.id, site = %user.site_id, "user deleted");
    Ok(json::response(
        StatusCode::OK,
        &aegis_api_types::Message {
            message: format!("User {} deleted successfully", user.id),
        },
    ))
}

#[utoipa::path(
    patch,
    path = "/api/admin/users/{user_id}",
    tag = "users",
    operation_id = "patch_user",
    summary = "Protects a user from deletion, or lifts the protection.",
    params(("user_id" = String, Path, description = "The user's UUID")),
    request_body = PatchUserRequest,
    responses((status = 200, description = "The user", body = aegis_api_types::User), (status = 404, description = "User not found", body = ErrorBody)),
    security(("master_key" = []))
)]
pub async fn patch_user(
    _: MasterKey,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let mut s = Schema::new(body.0, PATCH_USER_FIELDS)?;
    let protected = s.required_bool("deletion_protected");
    s.finish()?;
    let protected = protected
        .ok_or_else(|| ApiError::bug("Internal server error", "validated field missing"))?;
    let id = user_id(&path)?;
    let user = state
        .accounts
        .set_user_protection(id, protected)
        .await?
        .ok_or(ApiError::not_found(USER_NOT_FOUND))?;
    Ok(json::response(StatusCode::OK, &dto::user(&user)))
}

#[utoipa::path(
    post,
    path = "/api/admin/resend-verification/{user_id}",
    tag = "users",
    operation_id = "resend_verification",
    summary = "Emails a new verification link to an unverified user.",
    params(("user_id" = String, Path, description = "The user's UUID")),
    responses((status = 200, description = "Sent", body = Message), (status = 400, description = "The user is already verified", body = ErrorBody), (status = 404, description = "User not found", body = ErrorBody)),
    security(("master_key" = []))
)]
pub async fn resend_verification(
    _: MasterKey,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&path)?;
    state.accounts.resend_verification(id).await?;
    Ok(json::response(
        StatusCode::OK,
        &dto::message("Verification email sent successfully"),
    ))
}

#[utoipa::path(
    post,
    path = "/api/admin/cleanup-expired-tokens",
    tag = "maintenance",
    operation_id = "cleanup_expired_tokens",
    summary = "Removes expired tokens and requests now rather than at the next scheduled sweep.",
    responses((status = 200, description = "What was removed", body = CleanupReport)),
    security(("master_key" = []))
)]
pub async fn cleanup_expired_tokens(
    _: MasterKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let c = state.accounts.cleanup_expired_tokens().await?;
    Ok(json::response(
        StatusCode::OK,
        &aegis_api_types::CleanupReport {
            auth_tokens: c.auth_tokens,
            refresh_tokens: c.refresh_tokens,
            email_verification_tokens: c.email_verification_tokens,
            password_reset_tokens: c.password_reset_tokens,
            email_change_requests: c.email_change_requests,
            total: c.total(),
        },
    ))
}

/// One webhook sweep on demand; the service also sweeps by itself every few seconds.
#[utoipa::path(
    post,
    path = "/api/admin/deliver-pending-webhooks",
    tag = "maintenance",
    operation_id = "deliver_pending_webhooks",
    summary = "Delivers due webhooks now rather than at the next scheduled sweep.",
    responses((status = 200, description = "What the sweep did", body = WebhookSweep)),
    security(("master_key" = []))
)]
pub async fn deliver_pending_webhooks(
    _: MasterKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let r = state.webhooks.sweep().await?;
    Ok(json::response(
        StatusCode::OK,
        &aegis_api_types::WebhookSweep {
            attempted: r.attempted,
            delivered: r.delivered,
            retrying: r.retrying,
            exhausted: r.exhausted,
            still_due: r.still_due,
            pruned: r.pruned,
        },
    ))
}
