//! Users: each belongs to exactly one site, identified there by a normalised email address.

use std::fmt;

use crate::clock::UnixTime;
use crate::ids::{SiteId, UserId};
use crate::validation::{self, EmailError};

/// A user's role on their site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// An ordinary account: it manages only itself.
    User,
    /// A site administrator: may also list the users of their own site and create new ones
    /// there, never in another site. A site's last admin cannot be deleted.
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

/// An email address in Aegis's normal form (decisions 4 and 30): Unicode NFC, lowercase, the domain
/// in IDNA ASCII. This form is what is stored, compared and delivered to. Addresses from outside
/// become an `Email` only through [`Email::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses an address as a client or an operator typed it, and brings it to its normal form.
    /// See [`validation::email_normal_form`] for the rules; the error says which field messages
    /// to report.
    ///
    /// Two spellings of one address parse to equal values, so compare and look up `Email`s,
    /// never raw strings.
    ///
    /// ```
    /// use aegis_domain::user::Email;
    /// use aegis_domain::validation::EmailError;
    ///
    /// let email = Email::parse("Ada.Lovelace@BÜCHER.example").unwrap();
    /// assert_eq!(email.as_str(), "ada.lovelace@xn--bcher-kva.example");
    /// assert_eq!(Email::parse("ada.lovelace@bücher.example"), Ok(email));
    ///
    /// // Never trimmed: surrounding whitespace makes the address invalid.
    /// let refused = Email::parse(" ada@example.com").unwrap_err();
    /// assert_eq!(refused, EmailError::Invalid);
    /// assert_eq!(refused.messages(), ["Not a valid email address."]);
    /// ```
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        validation::email_normal_form(raw).map(Self)
    }

    /// An address read back from storage, where Aegis wrote it in its normal form. Not for input:
    /// nothing is checked.
    pub fn from_stored(stored: String) -> Self {
        Self(stored)
    }

    /// The normal form, as stored and as mail is addressed to.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normal form, by value (for storage or a message's recipient).
    pub fn into_string(self) -> String {
        self.0
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
    /// Wraps a password exactly as received: nothing is trimmed or normalised, since the same
    /// bytes must verify later. Length rules are the caller's (see
    /// [`validation::msg::PASSWORD_MIN`] and [`validation::msg::PASSWORD_MAX_BYTES`]).
    pub fn new(raw: String) -> Self {
        Self(raw)
    }

    /// The password itself, for hashing or verifying only; never log or store it.
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
    /// The user's identifier, unique across all sites.
    pub id: UserId,
    /// The one site the user belongs to; every lookup of the user is scoped to it.
    pub site_id: SiteId,
    /// The address the user logs in with, unique within the site.
    pub email: Email,
    /// PHC string (Argon2id) or a bcrypt hash adopted from the reference; `None` until the user
    /// sets one (invited and admin-created users).
    pub password_hash: Option<String>,
    /// Whether the user has proved they own `email` by following a verification or invitation
    /// link. Logins are refused with [`EmailNotVerified`] until it is set.
    ///
    /// [`EmailNotVerified`]: crate::service::accounts::LoginError::EmailNotVerified
    pub is_verified: bool,
    /// What the user may do on their site.
    pub role: Role,
    /// When the user was created (Unix seconds).
    pub created_at: UnixTime,
    /// When the row last changed (Unix seconds).
    pub updated_at: UnixTime,
    /// While set, deleting the user fails with [`UserProtected`]; it is changed with
    /// [`AccountService::set_user_protection`].
    ///
    /// [`UserProtected`]: crate::service::users::DeleteUserError::UserProtected
    /// [`AccountService::set_user_protection`]: crate::service::accounts::AccountService::set_user_protection
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

    fn parsed(raw: &str) -> String {
        Email::parse(raw)
            .unwrap_or_else(|e| panic!("{raw:?}: {e}"))
            .into_string()
    }

    #[test]
    fn emails_are_lowercased_and_never_trimmed() {
        assert_eq!(parsed("Mixed.Case@Example.COM"), "mixed.case@example.com");
        assert_eq!(
            Email::parse("  Mixed.Case@Example.COM "),
            Err(EmailError::Invalid)
        );
    }

    #[test]
    fn composed_and_decomposed_spellings_are_one_address() {
        let nfc = "jos\u{e9}@example.com";
        let nfd = "jose\u{301}@example.com";
        assert_ne!(nfc, nfd);
        assert_eq!(Email::parse(nfc), Email::parse(nfd));
        assert_eq!(parsed(nfd), nfc);
        assert_eq!(parsed("JOSE\u{301}@EXAMPLE.COM"), nfc);
        // Lowercase first and the pair would stay apart; composed again it is one character.
        assert_eq!(parsed("\u{3aa}\u{301}@x.gr"), "\u{390}@x.gr");
        assert_eq!(parsed("\u{390}@x.gr"), "\u{390}@x.gr");
    }

    #[test]
    fn uppercase_internationalised_domains_become_punycode() {
        assert_eq!(parsed("User@BÜCHER.DE"), "user@xn--bcher-kva.de");
        assert_eq!(parsed("user@bücher.de"), "user@xn--bcher-kva.de");
        assert_eq!(parsed("user@XN--BCHER-KVA.DE"), "user@xn--bcher-kva.de");
        assert_eq!(
            parsed("ΧΡΉΣΤΗΣ@ΠΑΡΆΔΕΙΓΜΑ.ΔΟΚΙΜΉ"),
            "χρήστης@xn--hxajbheg2az3al.xn--jxalpdlp"
        );
    }

    #[test]
    fn literal_domains_and_localhost_are_kept() {
        assert_eq!(parsed("A@[1.2.3.4]"), "a@[1.2.3.4]");
        assert_eq!(parsed("A@LOCALHOST"), "a@localhost");
    }

    #[test]
    fn addresses_that_grow_when_lowercased_are_measured_after() {
        // 'İ' is one character and two octets; lowercased it is 'i' and a combining dot (three
        // octets). 255 characters as sent: within the raw limit, far over the normal form's.
        let raw = format!("{}@a.co", "\u{130}".repeat(250));
        assert_eq!(raw.chars().count(), 255);
        assert_eq!(Email::parse(&raw), Err(EmailError::Invalid));
        assert_eq!(
            Email::parse(&format!("{}@a.co", "\u{130}".repeat(21))).map(|e| e.as_str().len()),
            Ok(63 + 5)
        );
        assert_eq!(
            Email::parse(&format!("{}@a.co", "\u{130}".repeat(22))),
            Err(EmailError::Invalid)
        );
    }

    #[test]
    fn refused_classes() {
        for bad in [
            "\"q\"@x.com",
            "\"a,b\"@example.com",
            "a\r\nbcc@x.com",
            "a\u{0}@x.com",
            "a b@x.com",
            "a\u{a0}b@x.com",
            "a\u{3000}b@x.com",
            "a,b@x.com",
            "<a@x.com>",
            "a\u{200b}@x.com",
            "a@x\u{200d}.com",
            "a@x.com\u{feff}",
            "\u{202e}moc.x@a",
            "a\u{2066}@x.com",
            "a@xn--a.com",
            "a@b",
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError::Invalid), "{bad:?}");
        }
        assert_eq!(
            Email::parse(&format!("{}@example.com", "a".repeat(250))),
            Err(EmailError::TooLong)
        );
    }

    #[test]
    fn accepted_classes() {
        for (raw, normal) in [
            ("a@b.co", "a@b.co"),
            ("user+tag@example.com", "user+tag@example.com"),
            ("a@localhost", "a@localhost"),
            ("a@[1.2.3.4]", "a@[1.2.3.4]"),
            ("Jösé@Example.com", "jösé@example.com"),
            ("user@exämple.de", "user@xn--exmple-cua.de"),
            ("first.last@sub.example.org", "first.last@sub.example.org"),
        ] {
            assert_eq!(parsed(raw), normal, "{raw}");
        }
    }

    #[test]
    fn stored_values_are_taken_as_they_are() {
        assert_eq!(
            Email::from_stored("legacy@example.com".into()).as_str(),
            "legacy@example.com"
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
            Email::from_stored("a@b.co".into()),
            Some("$argon2id$secret".into()),
            Role::User,
            1,
        );
        let shown = format!("{user:?}");
        assert!(!shown.contains("argon2id"));
        assert!(!shown.contains("a@b.co"));
    }
}
