//! Field rules of the wire contract (§1.3): the formats and lengths a request field must meet and the
//! exact messages a client sees when it does not. The JSON-level checks (types, nulls, unknown
//! fields) belong to the HTTP adapter, which collects these messages into one `details` object.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

/// Field name → messages, in the order the rules ran. Serialises as the contract's `details` object.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// Exact messages of the contract.
pub mod msg {
    pub const REQUIRED: &str = "Missing data for required field.";
    pub const UNKNOWN_FIELD: &str = "Unknown field.";
    pub const NULL: &str = "Field may not be null.";
    pub const NOT_STRING: &str = "Not a valid string.";
    pub const EMAIL: &str = "Not a valid email address.";
    pub const URL: &str = "Not a valid URL.";
    pub const MAX_255: &str = "Longer than maximum length 255.";
    pub const LENGTH_1_255: &str = "Length must be between 1 and 255.";
    pub const NOT_BOOL: &str = "Not a valid boolean (expected true or false).";
    pub const INVALID_INPUT: &str = "Invalid input type.";
    pub const UNKNOWN_SITE: &str = "Unknown or invalid site identifier";
    pub const PASSWORD_MIN: &str = "Shorter than minimum length 8.";
    pub const PASSWORD_MAX_BYTES: &str = "Password must be at most 72 bytes.";
    pub const ROLE: &str = "Must be one of: user, admin.";
    /// Not in the reference (which fails with a 500 when PostgreSQL refuses the byte): text fields
    /// never hold NUL characters.
    pub const NUL: &str = "Field may not contain NUL characters.";
}

/// The longest string most fields accept, counted in characters (Unicode scalar values).
pub const MAX_LEN: usize = 255;

/// `name`-style fields: 1 to 255 characters.
pub fn check_length_1_255(value: &str) -> Result<(), &'static str> {
    let n = value.chars().count();
    if (1..=MAX_LEN).contains(&n) {
        Ok(())
    } else {
        Err(msg::LENGTH_1_255)
    }
}

/// Fields capped at 255 characters with no minimum.
pub fn check_max_255(value: &str) -> Result<(), &'static str> {
    if value.chars().count() <= MAX_LEN {
        Ok(())
    } else {
        Err(msg::MAX_255)
    }
}

/// Email format as the reference validates it (marshmallow's `Email` validator): a dot-atom or
/// quoted local part, and a domain that is `localhost`, a dotted name with a TLD, a bracketed IPv4
/// literal, or an internationalised name that becomes one after IDNA encoding. Not trimmed.
pub fn is_valid_email(value: &str) -> bool {
    static USER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r#"(?i)^(?:[-!#$%&'*+/=?^`{}|~\w]+(?:\.[-!#$%&'*+/=?^`{}|~\w]+)*"#,
            r#"|"(?:[\x01-\x08\x0b\x0c\x0e-\x1f!#-\[\]-\x7f]|\\[\x01-\x09\x0b\x0c\x0e-\x7f])*")\z"#,
        ))
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
    });
    let Some((user, domain)) = value.rsplit_once('@') else {
        return false;
    };
    if !USER.is_match(user) {
        return false;
    }
    if domain == "localhost" || is_valid_email_domain(domain) {
        return true;
    }
    !domain.is_ascii()
        && idna::domain_to_ascii(domain).is_ok_and(|ascii| is_valid_email_domain(&ascii))
}

fn is_valid_email_domain(domain: &str) -> bool {
    static DOMAIN: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"(?i)^(?:(?:[A-Z0-9](?:[A-Z0-9-]{0,61}[A-Z0-9])?\.)+(?:[A-Z]{2,6}|[A-Z0-9-]{2,})",
            r"|\[(?:25[0-5]|2[0-4]\d|[0-1]?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|[0-1]?\d?\d)){3}\])\z",
        ))
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
    });
    // The reference's TLD alternative ends in a negative look-behind for '-'.
    !domain.ends_with('-') && DOMAIN.is_match(domain)
}

/// URL format as the reference validates it (marshmallow's `URL` validator with a required TLD):
/// absolute `http`, `https`, `ftp` or `ftps`; the host a dotted name with a TLD, `localhost`, an IPv4
/// address or a bracketed IPv6 address; an optional port; no whitespace in the rest.
pub fn is_valid_url(value: &str) -> bool {
    static URL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"(?i)^(?:[a-z0-9.\-+]*)://",
            r"(?:(?:[a-z0-9\-._~!$&'()*+,;=:]|%[0-9a-f]{2})*@)?",
            r"(?:(?:[A-Z0-9](?:[A-Z0-9-]{0,61}[A-Z0-9])?\.)+(?:[A-Z]{2,6}\.?|[A-Z0-9-]{2,}\.?)",
            r"|localhost|\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[[A-F0-9]*:[A-F0-9:]+\])",
            r"(?::\d+)?(?:/?|[/?]\S+)\z",
        ))
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
    });
    let Some((scheme, _)) = value.split_once("://") else {
        return false;
    };
    matches!(
        scheme.to_lowercase().as_str(),
        "http" | "https" | "ftp" | "ftps"
    ) && URL.is_match(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_the_reference_accepts() {
        for ok in [
            "a@b.co",
            "user+tag@example.com",
            "a@localhost",
            "A@B.COM",
            "\"q\"@x.com",
            "a@[1.2.3.4]",
            "jösé@example.com",
            "user@exämple.de",
            "first.last@sub.example.org",
        ] {
            assert!(is_valid_email(ok), "{ok}");
        }
    }

    #[test]
    fn emails_the_reference_rejects() {
        for bad in [
            "",
            "a@b",
            "a..b@x.com",
            " a@b.co",
            "a@b.co ",
            "a@b.co\n",
            "plainaddress",
            "@example.com",
            "a@",
            ".a@x.com",
            "a.@x.com",
            "a@-x.com",
            "a@x.com-",
            "a@[1.2.3.256]",
            "a b@x.com",
        ] {
            assert!(!is_valid_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn urls_the_reference_accepts() {
        for ok in [
            "http://localhost",
            "http://localhost:3000",
            "https://app.example.com/login?next=/x",
            "http://10.0.0.5:8080/hook",
            "ftp://files.example.org",
            "ftps://user:pw@files.example.org/",
            "HTTPS://EXAMPLE.COM",
            "http://[::1]:8080/",
            "http://test.example.com",
            "https://example.com.",
        ] {
            assert!(is_valid_url(ok), "{ok}");
        }
    }

    #[test]
    fn urls_the_reference_rejects() {
        for bad in [
            "",
            "example.com",
            "http://aegis-backend:5678/hook",
            "javascript://example.com",
            "file:///etc/passwd",
            "http://exämple.de",
            "http://example.com/a b",
            "http://",
            "not a url",
            "mailto:a@b.co",
        ] {
            assert!(!is_valid_url(bad), "{bad:?}");
        }
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert!(check_length_1_255(&"é".repeat(255)).is_ok());
        assert_eq!(check_length_1_255(""), Err(msg::LENGTH_1_255));
        assert_eq!(check_length_1_255(&"a".repeat(256)), Err(msg::LENGTH_1_255));
        assert!(check_max_255("").is_ok());
        assert_eq!(check_max_255(&"a".repeat(256)), Err(msg::MAX_255));
    }
}
