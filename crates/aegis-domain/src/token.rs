//! Tokens (§5): random values handed to clients once and stored only as SHA-256 digests
//! (decision 21).

use crate::clock::UnixTime;
use crate::ids::{SiteId, UserId};
use crate::secrets::{SecretGenerator, sha256_hex};

/// A freshly issued token: the plaintext for the client, the digest for storage.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub plaintext: String,
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
    pub digest: String,
    pub site_id: SiteId,
    pub user_id: UserId,
    pub expires_at: UnixTime,
    pub created_at: UnixTime,
}

/// A password-reset request waiting to be handled: the address as the request gave it,
/// normalised. Whether it has an account is decided off the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetRequest {
    pub id: uuid::Uuid,
    pub site_id: SiteId,
    pub email: crate::user::Email,
    pub created_at: UnixTime,
}

/// A stored password-reset token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetToken {
    pub token: StoredToken,
    pub used: bool,
}

/// A pending email change: the new address in its normal form (requests written before decision 30
/// hold it as the user typed it, unless the migration's data step could normalise it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailChangeRequest {
    pub token: StoredToken,
    pub new_email: String,
}

/// A stored refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub digest: String,
    pub site_id: SiteId,
    pub user_id: UserId,
    pub family_id: String,
    pub expires_at: UnixTime,
    pub created_at: UnixTime,
    pub used_at: Option<UnixTime>,
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
