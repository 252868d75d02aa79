use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError as _, web};
use aegis_api_types::{
    ChangePasswordRequest, CheckVerificationTokenRequest, ConfirmEmailChangeRequest,
    EmailChangeRequest, ErrorBody, InviteUserRequest, LoginRequest, LogoutRequest, Message,
    PasswordResetRequest, RefreshRequest, RegisterRequest, ResetPasswordRequest, Session,
    TokenStatus, User, Verified, VerifyEmailRequest,
};
use aegis_domain::ratelimit::SiteKey;
use aegis_domain::service::accounts::{
    ChangePasswordError, EmailChangeError, LoginError, RefreshError, Registration,
};
use aegis_domain::user::PlainPassword;
use serde_json::Value;

use super::dto;
use crate::error::ApiError;
use crate::extract::{Bearer, JsonBody, LenientJson, TenantBody};
use crate::json;
use crate::ratelimit::{Limited, LoginAttempt, password_checked};
use crate::security::{self, Event};
use crate::state::AppState;
use crate::validation::{Rule, Schema};

// The fields each route's body may carry, as its schema declares them.
pub(crate) const REGISTER_FIELDS: &[&str] = &["site_id", "email", "password"];
pub(crate) const INVITE_USER_FIELDS: &[&str] = &["site_id", "email"];
pub(crate) const LOGIN_FIELDS: &[&str] = &["site_id", "email", "password"];
pub(crate) const REFRESH_FIELDS: &[&str] = &["refresh_token"];
pub(crate) const VERIFY_EMAIL_FIELDS: &[&str] = &["site_id", "token", "password"];
pub(crate) const CHECK_VERIFICATION_TOKEN_FIELDS: &[&str] = &["site_id", "token"];
pub(crate) const CHANGE_PASSWORD_FIELDS: &[&str] = &["old_password", "new_password"];
pub(crate) const PASSWORD_RESET_REQUEST_FIELDS: &[&str] = &["site_id", "email"];
pub(crate) const RESET_PASSWORD_FIELDS: &[&str] = &["site_id", "token", "new_password"];
pub(crate) const EMAIL_CHANGE_FIELDS: &[&str] = &["new_email", "password"];
pub(crate) const CONFIRM_EMAIL_CHANGE_FIELDS: &[&str] = &["token"];

/// A response carrying a token or a secret: never cached.
fn no_store(mut response: HttpResponse) -> HttpResponse {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Validates a gated body: `site_id` was checked by the gate, the rest by the schema.
fn schema(body: Value, declared: &[&str]) -> Result<Schema, ApiError> {
    let mut s = Schema::new(body, declared)?;
    s.skip("site_id");
    Ok(s)
}

fn validated<T>(value: Option<T>) -> Result<T, ApiError> {
    value.ok_or_else(missing)
}

/// A field the schema passed is absent: cannot happen.
fn missing() -> ApiError {
    ApiError::bug("Internal server error", "validated field missing")
}

#[utoipa::path(
    post,
    path = "/api/auth/register",
    tag = "auth",
    operation_id = "register",
    summary = "Registers a user and emails a verification link.",
    request_body = RegisterRequest,
    responses((status = 201, description = "Registration started; a verification email is queued", body = Message), (status = 429, response = crate::openapi::TooManyRequests)),
    security(("tenant_key" = []))
)]
pub async fn register(
    gate: TenantBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut s = schema(gate.body, REGISTER_FIELDS)?;
    let email = s.required_email("email");
    let password = s.optional_str("password", &[Rule::PasswordSet]);
    s.finish()?;
    let password = password.map(PlainPassword::new);
    let started = std::time::Instant::now();
    let outcome = state
        .accounts
        .register(&gate.site, &validated(email)?, password.as_ref())
        .await?;
    // A taken address writes less than a new account: it answers no sooner (decision 44).
    let took = started.elapsed();
    let with_password = password.is_some();
    state.registrations.record((outcome, with_password), took);
    if outcome == Registration::AddressTaken
        && let Some(typical) = state
            .registrations
            .median(&(Registration::Created, with_password))
    {
        state.pacer.wait(typical.saturating_sub(took)).await;
    }
    Ok(json::response(
        StatusCode::CREATED,
        &dto::message("Registration initiated. Please check your email to continue."),
    ))
}

#[utoipa::path(
    post,
    path = "/api/auth/invite-user",
    tag = "auth",
    operation_id = "invite_user",
    summary = "Creates an unverified user without a password and emails an invitation to set one.",
    request_body = InviteUserRequest,
    responses((status = 201, description = "The invited user", body = User), (status = 429, response = crate::openapi::TooManyRequests)),
    security(("tenant_key" = []))
)]
pub async fn invite_user(
    gate: TenantBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut s = schema(gate.body, INVITE_USER_FIELDS)?;
    let email = s.required_email("email");
    s.finish()?;
    let user = state
        .accounts
        .invite(&gate.site, &validated(email)?)
        .await?;
    Ok(json::response(StatusCode::CREATED, &dto::user(&user)))
}

#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    operation_id = "login",
    summary = "Exchanges an address and password for a bearer token and a refresh token.",
    request_body = LoginRequest,
    responses((status = 200, description = "A new session", body = Session), (status = 403, description = "The address is not verified yet", body = ErrorBody), (status = 429, response = crate::openapi::TooManyRequests)),
    security(("tenant_key" = []))
)]
pub async fn login(
    req: HttpRequest,
    gate: TenantBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut s = schema(gate.body, LOGIN_FIELDS)?;
    let email = s.required_email("email");
    let password = s.required_str("password", &[Rule::PasswordPresented]);
    s.finish()?;
    let email = validated(email)?;
    let result = state
        .accounts
        .login(
            &gate.site,
            &email,
            &PlainPassword::new(validated(password)?),
        )
        .await;
    if matches!(result, Err(LoginError::InvalidCredentials)) {
        let who = state
            .clients
            .who(&req, SiteKey::Site(gate.site.id), Some(&email));
        security::record(Event::LoginFailed, &who, "invalid credentials");
    }
    // The limiter counts failed logins per account from this mark.
    let (mut response, attempt) = match result {
        Ok(session) => (
            no_store(json::response(StatusCode::OK, &dto::session(&session))),
            LoginAttempt::Succeeded,
        ),
        Err(e @ LoginError::InvalidCredentials) => {
            (ApiError::from(e).error_response(), LoginAttempt::Failed)
        }
        Err(e) => return Err(e.into()),
    };
    response.extensions_mut().insert(attempt);
    Ok(response)
}

#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    operation_id = "logout",
    summary = "Revokes the bearer token and, when given, a refresh token of the same user.",
    request_body = Option<LogoutRequest>,
    responses(
        (status = 200, description = "Logged out", body = Message),
        (status = 404, description = "The bearer token was revoked meanwhile", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn logout(
    bearer: Bearer,
    body: LenientJson,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let refresh = match body.0.get("refresh_token") {
        Some(Value::String(t)) => Some(t.as_str()),
        _ => None,
    };
    let deleted = state
        .accounts
        .logout(&bearer.user, &bearer.token, refresh)
        .await?;
    if !deleted {
        return Err(ApiError::not_found("Token not found"));
    }
    Ok(json::response(
        StatusCode::OK,
        &dto::message("Logged out successfully"),
    ))
}

#[utoipa::path(
    post,
    path = "/api/auth/refresh",
    tag = "auth",
    operation_id = "refresh",
    summary = "Exchanges a refresh token for a new session; the old refresh token stops working. Presenting a used one revokes every session of the user.",
    request_body = RefreshRequest,
    responses((status = 200, description = "A new session", body = Session), (status = 401, description = "The refresh token is unknown, expired or revoked, or its user is gone or unverified", body = ErrorBody, example = json!({"error": "Invalid or expired refresh token"})),
        (status = 403, description = "A used refresh token was presented again: every session of the user is revoked", body = ErrorBody))
)]
pub async fn refresh(
    req: HttpRequest,
    body: JsonBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut s = Schema::new(body.0, REFRESH_FIELDS)?;
    let token = s.required_str("refresh_token", &[]);
    s.finish()?;
    let session = state
        .accounts
        .refresh(&validated(token)?)
        .await
        .inspect_err(|e| {
            if let RefreshError::ReuseDetected(user) = e {
                let who = state
                    .clients
                    .who(&req, SiteKey::Site(user.site_id), Some(&user.email));
                security::record(
                    Event::RefreshTokenReuse,
                    &who,
                    "family and sessions revoked",
                );
            }
        })?;
    Ok(no_store(json::response(
        StatusCode::OK,
        &dto::session(&session),
    )))
}

#[utoipa::path(
    get,
    path = "/api/auth/me",
    tag = "auth",
    operation_id = "me",
    summary = "The signed-in user.",
    responses((status = 200, description = "The user the bearer token authenticates", body = User)),
    security(("bearer" = []))
)]
pub async fn me(bearer: Bearer) -> HttpResponse {
    no_store(json::response(StatusCode::OK, &dto::user(&bearer.user)))
}

#[utoipa::path(
    post,
    path = "/api/auth/verify-email",
    tag = "auth",
    operation_id = "verify_email",
    summary = "Verifies an address with the token from the verification email; an invited user sets a password here.",
    request_body = VerifyEmailRequest,
    responses((status = 200, description = "The verified user and where the site wants them sent", body = Verified)),
    security(("tenant_key" = []))
)]
pub async fn verify_email(
    gate: TenantBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut s = schema(gate.body, VERIFY_EMAIL_FIELDS)?;
    let token = s.required_str("token", &[]);
    let password = s.optional_str("password", &[Rule::PasswordSet]);
    s.finish()?;
    let password = password.map(PlainPassword::new);
    let verified = state
        .accounts
        .verify_email(&gate.site, &validated(token)?, password.as_ref())
        .await?;
    Ok(json::response(
        StatusCode::OK,
        &aegis_api_types::Verified {
            user: dto::user(&verified.user),
            redirect_url: verified.redirect_url,
        },
    ))
}

#[utoipa::path(
    post,
    path = "/api/auth/check-verification-token",
    tag = "auth",
    operation_id = "check_verification_token",
    summary = "Tells what a verification token leads to without using it.",
    request_body = CheckVerificationTokenRequest,
    responses((status = 200, description = "The token is valid", body = TokenStatus)),
    security(("tenant_key" = []))
)]
pub async fn check_verification_token(
    gate: TenantBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut s = schema(gate.body, CHECK_VERIFICATION_TOKEN_FIELDS)?;
    let token = s.required_str("token", &[]);
    s.finish()?;
    let user = state
        .accounts
        .check_verification_token(&gate.site, &validated(token)?)
        .await?;
    Ok(json::response(
        StatusCode::OK,
        &aegis_api_types::TokenStatus {
            password_required: user.password_hash.is_none(),
            email: user.email.into_string(),
        },
    ))
}

#[utoipa::path(
    post,
    path = "/api/auth/change-password",
    tag = "auth",
    operation_id = "change_password",
    summary = "Changes the signed-in user's password; other sessions end.",
    request_body = ChangePasswordRequest,
    responses((status = 200, description = "The user", body = User), (status = 429, response = crate::openapi::TooManyRequests)),
    security(("bearer" = []))
)]
pub async fn change_password(
    req: HttpRequest,
    bearer: Bearer,
    body: JsonBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let run = async {
        let mut s = match Schema::new(body.0, CHANGE_PASSWORD_FIELDS) {
            Ok(s) => s,
            Err(e) => return (Err(e), None),
        };
        let old = s.required_str("old_password", &[Rule::PasswordPresented]);
        let new = s.required_str("new_password", &[Rule::PasswordSet]);
        if let Err(e) = s.finish() {
            return (Err(e), None);
        }
        let (Some(old), Some(new)) = (old, new) else {
            return (Err(missing()), None);
        };
        let result = state
            .accounts
            .change_password(
                &bearer.user,
                &PlainPassword::new(old),
                &PlainPassword::new(new),
            )
            .await;
        let attempt = match &result {
            Ok(_) => Some(LoginAttempt::Succeeded),
            Err(ChangePasswordError::IncorrectPassword) => Some(LoginAttempt::Failed),
            Err(_) => None,
        };
        let response = result
            .map(|user| json::response(StatusCode::OK, &dto::user(&user)))
            .map_err(ApiError::from);
        (response, attempt)
    };
    password_checked(
        state.limiter.as_deref(),
        &state.clients,
        &req,
        Limited::ChangePassword,
        &bearer.user,
        run,
    )
    .await
}

#[utoipa::path(
    post,
    path = "/api/auth/request-password-reset",
    tag = "auth",
    operation_id = "request_password_reset",
    summary = "Emails a password reset link when the address belongs to a user of the site; the answer is the same either way.",
    request_body = PasswordResetRequest,
    responses((status = 200, description = "Accepted", body = Message), (status = 429, response = crate::openapi::TooManyRequests)),
    security(("tenant_key" = []))
)]
pub async fn request_password_reset(
    gate: TenantBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut s = schema(gate.body, PASSWORD_RESET_REQUEST_FIELDS)?;
    let email = s.required_email("email");
    s.finish()?;
    state
        .accounts
        .request_password_reset(&gate.site, &validated(email)?)
        .await?;
    Ok(json::response(
        StatusCode::OK,
        &dto::message("If the email exists, a password reset link has been sent"),
    ))
}

#[utoipa::path(
    post,
    path = "/api/auth/reset-password",
    tag = "auth",
    operation_id = "reset_password",
    summary = "Sets a new password with the token from the reset email; every session of the user ends.",
    request_body = ResetPasswordRequest,
    responses((status = 200, description = "The user", body = User)),
    security(("tenant_key" = []))
)]
pub async fn reset_password(
    gate: TenantBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut s = schema(gate.body, RESET_PASSWORD_FIELDS)?;
    let token = s.required_str("token", &[]);
    let new = s.required_str("new_password", &[Rule::PasswordSet]);
    s.finish()?;
    let user = state
        .accounts
        .reset_password(
            &gate.site,
            &validated(token)?,
            &PlainPassword::new(validated(new)?),
        )
        .await?;
    Ok(json::response(StatusCode::OK, &dto::user(&user)))
}

#[utoipa::path(
    post,
    path = "/api/auth/request-email-change",
    tag = "auth",
    operation_id = "request_email_change",
    summary = "Emails a confirmation link to the new address.",
    request_body = EmailChangeRequest,
    responses((status = 200, description = "Confirmation sent", body = Message), (status = 429, response = crate::openapi::TooManyRequests)),
    security(("bearer" = []))
)]
pub async fn request_email_change(
    req: HttpRequest,
    bearer: Bearer,
    body: JsonBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let run = async {
        let mut s = match Schema::new(body.0, EMAIL_CHANGE_FIELDS) {
            Ok(s) => s,
            Err(e) => return (Err(e), None),
        };
        let new_email = s.required_email("new_email");
        let password = s.required_str("password", &[Rule::PasswordPresented]);
        if let Err(e) = s.finish() {
            return (Err(e), None);
        }
        let (Some(new_email), Some(password)) = (new_email, password) else {
            return (Err(missing()), None);
        };
        let result = state
            .accounts
            .request_email_change(&bearer.user, &new_email, &PlainPassword::new(password))
            .await;
        let attempt = match &result {
            Err(EmailChangeError::InvalidPassword) => Some(LoginAttempt::Failed),
            Ok(()) | Err(EmailChangeError::EmailInUse) => Some(LoginAttempt::Succeeded),
            Err(_) => None,
        };
        let response = result.map_err(ApiError::from).map(|()| {
            json::response(
                StatusCode::OK,
                &dto::message("Email change confirmation sent"),
            )
        });
        (response, attempt)
    };
    password_checked(
        state.limiter.as_deref(),
        &state.clients,
        &req,
        Limited::EmailChange,
        &bearer.user,
        run,
    )
    .await
}

#[utoipa::path(
    post,
    path = "/api/auth/confirm-email-change",
    tag = "auth",
    operation_id = "confirm_email_change",
    summary = "Confirms an email change with the token from the confirmation email.",
    request_body = ConfirmEmailChangeRequest,
    responses((status = 200, description = "The user, with the new address", body = User))
)]
pub async fn confirm_email_change(
    body: JsonBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut s = Schema::new(body.0, CONFIRM_EMAIL_CHANGE_FIELDS)?;
    let token = s.required_str("token", &[]);
    s.finish()?;
    let user = state
        .accounts
        .confirm_email_change(&validated(token)?)
        .await?;
    Ok(json::response(StatusCode::OK, &dto::user(&user)))
}
