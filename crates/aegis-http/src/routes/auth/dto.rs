//! Views of users and sessions.

use aegis_domain::service::accounts::{Session, SessionToken};
use aegis_domain::user::User;
use serde::Serialize;

/// A user as every route returns it (§2): never the password hash.
#[derive(Serialize)]
pub struct UserView<'a> {
    uuid: String,
    site_uuid: String,
    email: &'a str,
    is_verified: bool,
    role: &'static str,
    created_at: i64,
    updated_at: i64,
    deletion_protected: bool,
}

impl<'a> From<&'a User> for UserView<'a> {
    fn from(u: &'a User) -> Self {
        Self {
            uuid: u.id.to_string(),
            site_uuid: u.site_id.to_string(),
            email: u.email.as_str(),
            is_verified: u.is_verified,
            role: u.role.as_str(),
            created_at: u.created_at,
            updated_at: u.updated_at,
            deletion_protected: u.deletion_protected,
        }
    }
}

#[derive(Serialize)]
struct AuthTokenView<'a> {
    token: &'a str,
    user_uuid: String,
    expires_at: i64,
}

#[derive(Serialize)]
struct RefreshTokenView<'a> {
    token: &'a str,
    user_uuid: String,
    site_uuid: String,
    expires_at: i64,
}

/// LoginResult (§2): login and refresh.
#[derive(Serialize)]
pub struct SessionView<'a> {
    auth_token: AuthTokenView<'a>,
    refresh_token: Option<RefreshTokenView<'a>>,
}

impl<'a> From<&'a Session> for SessionView<'a> {
    fn from(s: &'a Session) -> Self {
        Self {
            auth_token: AuthTokenView {
                token: &s.auth.token.plaintext,
                user_uuid: s.user_id.to_string(),
                expires_at: s.auth.expires_at,
            },
            refresh_token: s
                .refresh
                .as_ref()
                .map(|r: &'a SessionToken| RefreshTokenView {
                    token: &r.token.plaintext,
                    user_uuid: s.user_id.to_string(),
                    site_uuid: s.site_id.to_string(),
                    expires_at: r.expires_at,
                }),
        }
    }
}

#[derive(Serialize)]
pub struct Message {
    pub message: &'static str,
}

#[derive(Serialize)]
pub struct VerifiedView<'a> {
    pub user: UserView<'a>,
    pub redirect_url: &'a str,
}

#[derive(Serialize)]
pub struct TokenStatusView<'a> {
    pub password_required: bool,
    pub email: &'a str,
}
