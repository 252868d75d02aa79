//! Tokens: random values handed to clients once and stored only as SHA-256 digests
//! (decision 21). A stolen copy of the token tables therefore lets no one act as a user; look a
//! presented token up by its [`digest`].

use crate::clock::UnixTime;
use crate::ids::{SiteId, UserId};
use crate::secrets::{SecretGenerator, sha256_hex};

/// A freshly issued token: the plaintext for the client, the digest for storage.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token as the client receives it (in a response or an email link). Never store or log it.
    pub plaintext: String,
    /// SHA-256 of `plaintext` in lowercase hex: the only form that is stored.
    pub digest: String,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IssuedToken(<redacted>)")
    }
}

impl IssuedToken {
    /// 32 random bytes, URL-safe base64 without padding (43 characters), and its digest.
    pub fn generate(generator: &dyn SecretGenerator) -> Self {
        let plaintext = generator.token();
        let digest = sha256_hex(&plaintext);
        Self { plaintext, digest }
    }
}

/// The digest under which a presented token is looked up.
pub fn digest(presented: &str) -> String {
    sha256_hex(presented)
}

/// The expiry rule: valid while `now <= expires_at`.
pub const fn is_live(expires_at: UnixTime, now: UnixTime) -> bool {
    now <= expires_at
}

/// A stored single-purpose token (email verification, password reset or email change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// SHA-256 of the token in lowercase hex; the key it is looked up by.
    pub digest: String,
    /// The site of the user it was issued for.
    pub site_id: SiteId,
    /// The user the token acts for.
    pub user_id: UserId,
    /// The last second at which the token is accepted (see [`is_live`]).
    pub expires_at: UnixTime,
    /// When the token was issued (Unix seconds).
    pub created_at: UnixTime,
}

/// A password-reset request waiting to be handled: the address as the request gave it,
/// normalised. Whether it has an account is decided off the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetRequest {
    /// The request's row id, used to claim and finish it.
    pub id: uuid::Uuid,
    /// The site the request was made on.
    pub site_id: SiteId,
    /// The address the request named, which may or may not have an account on the site.
    pub email: crate::user::Email,
    /// When the request was made (Unix seconds).
    pub created_at: UnixTime,
}

/// A stored password-reset token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetToken {
    /// The token itself.
    pub token: StoredToken,
    /// Whether it has already reset a password; a used token is refused even before it expires.
    pub used: bool,
}

/// A pending email change: the new address in its normal form (requests written before decision 30
/// hold it as the user typed it, unless the migration's data step could normalise it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailChangeRequest {
    /// The confirmation token sent to the new address.
    pub token: StoredToken,
    /// The address the user asked to move to; parse it with [`crate::user::Email::parse`] before
    /// use, since older rows may not be in the normal form.
    pub new_email: String,
}

/// A stored refresh token. With rotation on, each refresh marks the presented token used and
/// issues a successor in the same family; presenting a used token again after the grace window
/// revokes the whole family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// SHA-256 of the token in lowercase hex; the key it is looked up by.
    pub digest: String,
    /// The site of the user.
    pub site_id: SiteId,
    /// The user the token refreshes sessions for.
    pub user_id: UserId,
    /// The chain of rotations this token belongs to, started at login; revoked as a whole on
    /// reuse.
    pub family_id: String,
    /// The last second at which the token is accepted (see [`is_live`]).
    pub expires_at: UnixTime,
    /// When the token was issued (Unix seconds).
    pub created_at: UnixTime,
    /// When a refresh first used it; `None` while unused.
    pub used_at: Option<UnixTime>,
    /// Whether its family was revoked (by a logout or on reuse); a revoked token is refused.
    /// Credential changes delete a user's refresh tokens instead.
    pub revoked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::RandomSecretGenerator;

    #[test]
    fn issued_tokens_store_only_the_digest() {
        let t = IssuedToken::generate(&RandomSecretGenerator);
        assert_eq!(t.plaintext.len(), 43);
        assert_eq!(t.digest, digest(&t.plaintext));
        assert_ne!(t.digest, t.plaintext);
        assert!(!format!("{t:?}").contains(&t.plaintext));
    }

    #[test]
    fn expiry_is_inclusive() {
        assert!(is_live(100, 100));
        assert!(!is_live(100, 101));
    }
}
