//! Users: each belongs to exactly one site, identified there by a normalised email address.

use std::fmt;

use crate::clock::UnixTime;
use crate::ids::{SiteId, UserId};

/// A user's role on their site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    User,
    Admin,
}

impl Role {
    /// The wire and database spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    /// Parses the wire spelling (exact, lowercase).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "user" => Some(Self::User),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// An email address as Aegis stores and compares it: trimmed and lowercased (decision 4). Build it
/// from a value that passed the format check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Normalises a validated address.
    pub fn normalize(raw: &str) -> Self {
        Self(raw.trim().to_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password as the client sent it. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainPassword(String);

impl PlainPassword {
    pub fn new(raw: String) -> Self {
        Self(raw)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PlainPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainPassword(<redacted>)")
    }
}

/// A user as stored. The password hash is redacted from `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub site_id: SiteId,
    pub email: Email,
    /// PHC string (Argon2id) or a bcrypt hash adopted from the reference; `None` until the user
    /// sets one (invited and admin-created users).
    pub password_hash: Option<String>,
    pub is_verified: bool,
    pub role: Role,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
    pub deletion_protected: bool,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("site_id", &self.site_id)
            .field("has_password", &self.password_hash.is_some())
            .field("is_verified", &self.is_verified)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl User {
    /// A new, unverified user.
    pub fn new(
        id: UserId,
        site_id: SiteId,
        email: Email,
        password_hash: Option<String>,
        role: Role,
        now: UnixTime,
    ) -> Self {
        Self {
            id,
            site_id,
            email,
            password_hash,
            is_verified: false,
            role,
            created_at: now,
            updated_at: now,
            deletion_protected: false,
        }
    }

    /// An invitation not yet taken up: no password and not verified. Such a user can be re-invited.
    pub fn is_pending_invite(&self) -> bool {
        self.password_hash.is_none() && !self.is_verified
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(
            Email::normalize("  Mixed.Case@Example.COM ").as_str(),
            "mixed.case@example.com"
        );
    }

    #[test]
    fn roles_parse_exactly() {
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("user"), Some(Role::User));
        assert_eq!(Role::parse("Admin"), None);
        assert_eq!(Role::Admin.as_str(), "admin");
    }

    #[test]
    fn passwords_and_hashes_never_print() {
        assert!(!format!("{:?}", PlainPassword::new("hunter22".into())).contains("hunter22"));
        let user = User::new(
            UserId::from_uuid(uuid::Uuid::nil()),
            SiteId::from_uuid(uuid::Uuid::nil()),
            Email::normalize("a@b.co"),
            Some("$argon2id$secret".into()),
            Role::User,
            1,
        );
        let shown = format!("{user:?}");
        assert!(!shown.contains("argon2id"));
        assert!(!shown.contains("a@b.co"));
    }
}
