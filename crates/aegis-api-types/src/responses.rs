//! Bodies the server answers with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Role;

/// A user, as every route that returns one shows it. Never carries the password hash.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"uuid": "0190a3c5-0b2d-7d4e-8f10-2a3b4c5d6e7f", "site_uuid": "0190a3c4-6f1e-7cc2-9a51-3c1f1d2b4e5f", "email": "ada@example.com", "is_verified": true, "role": "user", "created_at": 1767225600, "updated_at": 1767225600, "deletion_protected": false}))))]
pub struct User {
    /// The user's identifier.
    pub uuid: Uuid,
    /// The site the user belongs to.
    pub site_uuid: Uuid,
    /// The address in its normal form.
    pub email: String,
    /// Whether the address has been verified.
    pub is_verified: bool,
    /// The user's role within the site.
    pub role: Role,
    /// When the user was created (Unix seconds).
    pub created_at: i64,
    /// When the user last changed (Unix seconds).
    pub updated_at: i64,
    /// Whether the user is protected from deletion.
    pub deletion_protected: bool,
}

/// The short-lived bearer token of a [`Session`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"token": "aT5q…", "user_uuid": "0190a3c5-0b2d-7d4e-8f10-2a3b4c5d6e7f", "expires_at": 1767229200}))))]
pub struct AuthToken {
    /// The token to send as `Authorization: Bearer …`.
    pub token: String,
    /// The user the token authenticates.
    pub user_uuid: Uuid,
    /// When the token expires (Unix seconds).
    pub expires_at: i64,
}

/// The long-lived token of a [`Session`], exchanged for a new session at `POST /api/auth/refresh`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"token": "r1Gm0W4w…", "user_uuid": "0190a3c5-0b2d-7d4e-8f10-2a3b4c5d6e7f", "site_uuid": "0190a3c4-6f1e-7cc2-9a51-3c1f1d2b4e5f", "expires_at": 1769817600}))))]
pub struct RefreshToken {
    /// The token to send in a [`RefreshRequest`](crate::RefreshRequest).
    pub token: String,
    /// The user the token belongs to.
    pub user_uuid: Uuid,
    /// The site the user belongs to.
    pub site_uuid: Uuid,
    /// When the token expires (Unix seconds).
    pub expires_at: i64,
}

/// The answer to a login or a refresh.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"auth_token": {"token": "aT5q…", "user_uuid": "0190a3c5-0b2d-7d4e-8f10-2a3b4c5d6e7f", "expires_at": 1767229200}, "refresh_token": {"token": "r1Gm0W4w…", "user_uuid": "0190a3c5-0b2d-7d4e-8f10-2a3b4c5d6e7f", "site_uuid": "0190a3c4-6f1e-7cc2-9a51-3c1f1d2b4e5f", "expires_at": 1769817600}}))))]
pub struct Session {
    /// The bearer token.
    pub auth_token: AuthToken,
    /// The refresh token; `null` when the server issues none.
    pub refresh_token: Option<RefreshToken>,
}

/// The answer to a successful email verification.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"user": {"uuid": "0190a3c5-0b2d-7d4e-8f10-2a3b4c5d6e7f", "site_uuid": "0190a3c4-6f1e-7cc2-9a51-3c1f1d2b4e5f", "email": "ada@example.com", "is_verified": true, "role": "user", "created_at": 1767225600, "updated_at": 1767225700, "deletion_protected": false}, "redirect_url": "https://app.example.com/welcome"}))))]
pub struct Verified {
    /// The user, now verified.
    pub user: User,
    /// Where the site wants the user sent next.
    pub redirect_url: String,
}

/// What a verification token leads to, before it is used.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"password_required": true, "email": "ada@example.com"}))))]
pub struct TokenStatus {
    /// Whether the user has no password yet and must choose one when verifying.
    pub password_required: bool,
    /// The address being verified.
    pub email: String,
}

/// A site as anyone may see it (`GET /api/sites/by-domain`): no secrets, no webhook or mail
/// settings.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"uuid": "0190a3c4-6f1e-7cc2-9a51-3c1f1d2b4e5f", "name": "Example", "domain": "example.com", "frontend_url": "https://app.example.com", "verification_redirect_url": null, "email_from": "noreply@example.com", "email_from_name": "Example Team", "created_at": 1767225600, "updated_at": 1767225600, "allow_self_registration": true}))))]
pub struct SitePublic {
    /// The site's identifier.
    pub uuid: Uuid,
    /// The site's display name.
    pub name: String,
    /// The site's domain, lowercase.
    pub domain: String,
    /// The site's frontend, which links in emails point to.
    pub frontend_url: String,
    /// Where users go after verifying their address; `null` when unset.
    pub verification_redirect_url: Option<String>,
    /// The sender address of the site's emails.
    pub email_from: String,
    /// The sender name of the site's emails.
    pub email_from_name: String,
    /// When the site was created (Unix seconds).
    pub created_at: i64,
    /// When the site last changed (Unix seconds).
    pub updated_at: i64,
    /// Whether users may register themselves.
    pub allow_self_registration: bool,
}

/// A site as operators see it (master-key routes): the public view plus secrets and settings.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"uuid": "0190a3c4-6f1e-7cc2-9a51-3c1f1d2b4e5f", "name": "Example", "domain": "example.com", "frontend_url": "https://app.example.com", "verification_redirect_url": null, "email_from": "noreply@example.com", "email_from_name": "Example Team", "created_at": 1767225600, "updated_at": 1767225600, "allow_self_registration": true, "webhook_url": "https://api.example.com/hooks/aegis", "webhook_secret": "whsec…", "tenant_api_key": "tk…", "mailgun_domain": null, "mailgun_api_key": null, "deletion_protected": false}))))]
pub struct SiteAdmin {
    /// The fields everyone may see; on the wire they sit beside the others, not nested.
    #[serde(flatten)]
    pub public: SitePublic,
    /// Where events about the site's users are posted; `null` when unset.
    pub webhook_url: Option<String>,
    /// The secret webhook deliveries are signed with; `null` when unset.
    pub webhook_secret: Option<String>,
    /// The key the site's backend authenticates with; `null` when the site has none.
    pub tenant_api_key: Option<String>,
    /// The site's own Mailgun domain; `null` when it uses the service's.
    pub mailgun_domain: Option<String>,
    /// The site's own Mailgun API key; `null` when it uses the service's.
    pub mailgun_api_key: Option<String>,
    /// Whether the site is protected from deletion.
    pub deletion_protected: bool,
}

/// A plain confirmation.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"message": "Logged out successfully"}))))]
pub struct Message {
    /// What happened, for people.
    pub message: String,
}

/// `GET /api/health`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"status": "healthy", "service": "auth-service", "version": "1.4.0"}))))]
pub struct Health {
    /// Always `"healthy"`.
    pub status: String,
    /// The service's name.
    pub service: String,
    /// The running version.
    pub version: String,
}

/// `GET /api/health/ready` when the service can serve.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"status": "ready", "service": "auth-service", "version": "1.4.0"}))))]
pub struct Ready {
    /// Always `"ready"`.
    pub status: String,
    /// The service's name.
    pub service: String,
    /// The running version.
    pub version: String,
}

/// `GET /api/health/ready` when the service cannot serve yet (503): an error body that also says
/// why.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"error": "Service temporarily unavailable", "status": "not ready", "reason": "database unavailable"}))))]
pub struct NotReady {
    /// The service's usual 503 text.
    pub error: String,
    /// Always `"not ready"`.
    pub status: String,
    /// `"database unavailable"` or `"database migrations pending"`.
    pub reason: String,
}

/// How many expired rows `POST /api/admin/cleanup-expired-tokens` removed.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"auth_tokens": 12, "refresh_tokens": 3, "email_verification_tokens": 1, "password_reset_tokens": 0, "email_change_requests": 0, "total": 16}))))]
pub struct CleanupReport {
    /// Bearer tokens removed.
    pub auth_tokens: u64,
    /// Refresh tokens removed.
    pub refresh_tokens: u64,
    /// Email verification tokens removed.
    pub email_verification_tokens: u64,
    /// Password reset tokens removed.
    pub password_reset_tokens: u64,
    /// Email change requests removed.
    pub email_change_requests: u64,
    /// The sum of the above.
    pub total: u64,
}

/// What one webhook sweep (`POST /api/admin/deliver-pending-webhooks`) did.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"attempted": 4, "delivered": 3, "retrying": 1, "exhausted": 0, "still_due": 0, "pruned": 10}))))]
pub struct WebhookSweep {
    /// Deliveries attempted.
    pub attempted: u64,
    /// Deliveries that succeeded.
    pub delivered: u64,
    /// Deliveries that failed and will be retried.
    pub retrying: u64,
    /// Deliveries that failed for the last time.
    pub exhausted: u64,
    /// Deliveries due but left for a later sweep.
    pub still_due: u64,
    /// Old delivery records removed.
    pub pruned: u64,
}

/// Field name → the messages explaining why its value was refused.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// The body of every error answer.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!({"error": "Validation error", "details": {"email": ["Not a valid email address."]}}))))]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// A stable code for errors a client may want to tell apart; absent on most errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Per-field messages; present only on validation errors (`"error": "Validation error"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub details: Option<FieldErrors>,
}
