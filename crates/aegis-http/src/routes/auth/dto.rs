//! Users and sessions as the API shows them: conversions from domain records into the shared wire
//! types of `aegis-api-types`.

use aegis_api_types as api;
use aegis_domain::service::accounts::Session;
use aegis_domain::user::{Role, User};

/// A role's wire form.
pub fn role(role: Role) -> api::Role {
    match role {
        Role::User => api::Role::User,
        Role::Admin => api::Role::Admin,
    }
}

/// A user as every route returns it: never the password hash.
pub fn user(u: &User) -> api::User {
    api::User {
        uuid: u.id.as_uuid(),
        site_uuid: u.site_id.as_uuid(),
        email: u.email.as_str().to_owned(),
        is_verified: u.is_verified,
        role: role(u.role),
        created_at: u.created_at,
        updated_at: u.updated_at,
        deletion_protected: u.deletion_protected,
    }
}

/// The answer to a login or a refresh.
pub fn session(s: &Session) -> api::Session {
    api::Session {
        auth_token: api::AuthToken {
            token: s.auth.token.plaintext.clone(),
            user_uuid: s.user_id.as_uuid(),
            expires_at: s.auth.expires_at,
        },
        refresh_token: s.refresh.as_ref().map(|r| api::RefreshToken {
            token: r.token.plaintext.clone(),
            user_uuid: s.user_id.as_uuid(),
            site_uuid: s.site_id.as_uuid(),
            expires_at: r.expires_at,
        }),
    }
}

/// A fixed confirmation.
pub fn message(text: &str) -> api::Message {
    api::Message {
        message: text.to_owned(),
    }
}
