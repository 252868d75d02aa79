//! Bodies clients send.
//!
//! Optional fields are left out of the JSON when `None`. The server refuses fields it does not
//! know, so these types carry exactly the fields each route accepts.

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::Role;

/// Deserialises a field that may be absent, `null` or a value: absent stays `None` (through
/// `#[serde(default)]`), `null` becomes `Some(None)`.
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `POST /api/auth/register` (tenant key required).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"site_id": "0190a3c4-6f1e-7cc2-9a51-3c1f1d2b4e5f", "email": "ada@example.com", "password": "correct horse battery staple"}))))]
pub struct RegisterRequest {
    /// The site to register with.
    pub site_id: Uuid,
    /// The address to register.
    pub email: String,
    /// The password; without one, the user chooses it when verifying their address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `POST /api/auth/invite-user` (tenant key required).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"site_id": "0190a3c4-6f1e-7cc2-9a51-3c1f1d2b4e5f", "email": "ada@example.com"}))))]
pub struct InviteUserRequest {
    /// The site to invite the user to.
    pub site_id: Uuid,
    /// The address to invite.
    pub email: String,
}

/// `POST /api/auth/login` (tenant key required).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"site_id": "0190a3c4-6f1e-7cc2-9a51-3c1f1d2b4e5f", "email": "ada@example.com", "password": "correct horse battery staple"}))))]
pub struct LoginRequest {
    /// The user's site.
    pub site_id: Uuid,
    /// The user's address.
    pub email: String,
    /// The user's password.
    pub password: String,
}

/// `POST /api/auth/logout` (bearer token required). The body is optional.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"refresh_token": "r1Gm0W4w…"}))))]
pub struct LogoutRequest {
    /// A refresh token of the same session, revoked with the bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// `POST /api/auth/refresh`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"refresh_token": "r1Gm0W4w…"}))))]
pub struct RefreshRequest {
    /// The refresh token of the session to renew.
    pub refresh_token: String,
}

/// `POST /api/auth/verify-email` (tenant key required).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"site_id": "0190a3c4-6f1e-7cc2-9a51-3c1f1d2b4e5f", "token": "vQ3kP…", "password": "correct horse battery staple"}))))]
pub struct VerifyEmailRequest {
    /// The user's site.
    pub site_id: Uuid,
    /// The token from the verification email.
    pub token: String,
    /// The password to set; required when [`TokenStatus::password_required`](crate::TokenStatus)
    /// says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `POST /api/auth/check-verification-token` (tenant key required).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"site_id": "0190a3c4-6f1e-7cc2-9a51-3c1f1d2b4e5f", "token": "vQ3kP…"}))))]
pub struct CheckVerificationTokenRequest {
    /// The user's site.
    pub site_id: Uuid,
    /// The token from the verification email.
    pub token: String,
}

/// `POST /api/auth/change-password` (bearer token required).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"old_password": "correct horse battery staple", "new_password": "a new and longer passphrase"}))))]
pub struct ChangePasswordRequest {
    /// The current password.
    pub old_password: String,
    /// The password to set.
    pub new_password: String,
}

/// `POST /api/auth/request-password-reset` (tenant key required).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"site_id": "0190a3c4-6f1e-7cc2-9a51-3c1f1d2b4e5f", "email": "ada@example.com"}))))]
pub struct PasswordResetRequest {
    /// The user's site.
    pub site_id: Uuid,
    /// The user's address.
    pub email: String,
}

/// `POST /api/auth/reset-password` (tenant key required).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"site_id": "0190a3c4-6f1e-7cc2-9a51-3c1f1d2b4e5f", "token": "pR7x…", "new_password": "a new and longer passphrase"}))))]
pub struct ResetPasswordRequest {
    /// The user's site.
    pub site_id: Uuid,
    /// The token from the reset email.
    pub token: String,
    /// The password to set.
    pub new_password: String,
}

/// `POST /api/auth/request-email-change` (bearer token required).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"new_email": "ada.lovelace@example.org", "password": "correct horse battery staple"}))))]
pub struct EmailChangeRequest {
    /// The address to change to.
    pub new_email: String,
    /// The user's current password.
    pub password: String,
}

/// `POST /api/auth/confirm-email-change`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"token": "eC9m…"}))))]
pub struct ConfirmEmailChangeRequest {
    /// The token from the confirmation email.
    pub token: String,
}

/// `POST /api/admin/register` (master key required): creates a user in any site.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"site_id": "0190a3c4-6f1e-7cc2-9a51-3c1f1d2b4e5f", "email": "grace@example.com", "role": "admin"}))))]
pub struct AdminRegisterRequest {
    /// The site to create the user in.
    pub site_id: Uuid,
    /// The user's address.
    pub email: String,
    /// The user's role; [`Role::User`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// `POST /api/admin/register-user` (site admin's bearer token required): creates a user in the
/// admin's site.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"email": "grace@example.com", "role": "user"}))))]
pub struct AdminRegisterUserRequest {
    /// The user's address.
    pub email: String,
    /// The user's role; [`Role::User`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// `PATCH /api/admin/users/{user_id}` (master key required).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"deletion_protected": true}))))]
pub struct PatchUserRequest {
    /// Whether the user is protected from deletion.
    pub deletion_protected: bool,
}

/// `POST /api/sites` (master key required).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"name": "Example", "domain": "example.com", "frontend_url": "https://app.example.com", "email_from": "noreply@example.com", "email_from_name": "Example Team", "webhook_url": "https://api.example.com/hooks/aegis"}))))]
pub struct CreateSiteRequest {
    /// The site's display name.
    pub name: String,
    /// The site's domain; stored lowercase.
    pub domain: String,
    /// The site's frontend, which links in emails point to.
    pub frontend_url: String,
    /// Where users go after verifying their address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_redirect_url: Option<String>,
    /// The sender address of the site's emails.
    pub email_from: String,
    /// The sender name of the site's emails.
    pub email_from_name: String,
    /// Whether users may register themselves; `true` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_self_registration: Option<bool>,
    /// Where events about the site's users are posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// The site's own Mailgun domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailgun_domain: Option<String>,
    /// The site's own Mailgun API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailgun_api_key: Option<String>,
}

/// `PUT /api/sites/{id}` (master key required): changes only the fields that are present, and at
/// least one must be.
///
/// The settings a site may be without take two levels of `Option`: `None` leaves the setting
/// alone (the field is left out), `Some(None)` clears it (the field is sent as `null`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"name": "Example Inc.", "webhook_url": null, "regenerate_tenant_api_key": true}))))]
pub struct UpdateSiteRequest {
    /// The site's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The site's domain; stored lowercase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The site's frontend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend_url: Option<String>,
    /// Where users go after verifying their address; `Some(None)` clears it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub verification_redirect_url: Option<Option<String>>,
    /// The sender address of the site's emails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_from: Option<String>,
    /// The sender name of the site's emails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_from_name: Option<String>,
    /// Whether users may register themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_self_registration: Option<bool>,
    /// Where events about the site's users are posted; `Some(None)` clears it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub webhook_url: Option<Option<String>>,
    /// `Some(true)` replaces the webhook signing secret with a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regenerate_webhook_secret: Option<bool>,
    /// `Some(true)` replaces the tenant API key with a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regenerate_tenant_api_key: Option<bool>,
    /// The site's own Mailgun domain; `Some(None)` clears it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub mailgun_domain: Option<Option<String>>,
    /// The site's own Mailgun API key; `Some(None)` clears it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub mailgun_api_key: Option<Option<String>>,
    /// Whether the site is protected from deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_protected: Option<bool>,
}
