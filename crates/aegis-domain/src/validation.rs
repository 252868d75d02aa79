//! Field rules of the HTTP API: the formats and lengths a request field must meet and the exact
//! messages a client sees when it does not. The JSON-level checks (types, nulls, unknown
//! fields) belong to the HTTP adapter, which collects these messages into one `details` object.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

/// Field name → messages, in the order the rules ran. Serialises as the `details` object of a 400
/// validation answer.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// The exact field messages clients see in [`FieldErrors`]. Clients may match on these strings, so
/// they are part of the API: never reword one.
pub mod msg {
    /// A required field is absent from the request body.
    pub const REQUIRED: &str = "Missing data for required field.";
    /// The body has a field the route does not declare.
    pub const UNKNOWN_FIELD: &str = "Unknown field.";
    /// A field that must hold a value is JSON `null`.
    pub const NULL: &str = "Field may not be null.";
    /// A string field holds another JSON type.
    pub const NOT_STRING: &str = "Not a valid string.";
    /// An email field that [`super::email_normal_form`] refuses (see [`super::EmailError`]).
    pub const EMAIL: &str = "Not a valid email address.";
    /// A URL field that [`super::is_valid_url`] refuses.
    pub const URL: &str = "Not a valid URL.";
    /// A field longer than [`super::MAX_LEN`] characters; from [`super::check_max_255`].
    pub const MAX_255: &str = "Longer than maximum length 255.";
    /// A name-style field that is empty or longer than [`super::MAX_LEN`] characters; from
    /// [`super::check_length_1_255`].
    pub const LENGTH_1_255: &str = "Length must be between 1 and 255.";
    /// A boolean field holds another JSON type.
    pub const NOT_BOOL: &str = "Not a valid boolean (expected true or false).";
    /// The body is not a JSON object (reported under the `_schema` key).
    pub const INVALID_INPUT: &str = "Invalid input type.";
    /// A `site_id` field that is not an identifier or names no existing site.
    pub const UNKNOWN_SITE: &str = "Unknown or invalid site identifier";
    /// A new password shorter than 8 characters.
    pub const PASSWORD_MIN: &str = "Shorter than minimum length 8.";
    /// A password longer than 72 bytes of UTF-8 (bcrypt's input limit), whether it is being set
    /// or presented.
    pub const PASSWORD_MAX_BYTES: &str = "Password must be at most 72 bytes.";
    /// A `role` field other than `user` or `admin` (see [`crate::user::Role::parse`]).
    pub const ROLE: &str = "Must be one of: user, admin.";
    /// Not in the reference (which fails with a 500 when PostgreSQL refuses the byte): text fields
    /// never hold NUL characters.
    pub const NUL: &str = "Field may not contain NUL characters.";
    /// Not in the reference: text that reaches a mail header never holds control characters
    /// (decision 30).
    pub const CONTROL: &str = "Field may not contain control characters.";
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

/// The shortest password that can be set, in characters.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// The longest password accepted anywhere, in UTF-8 bytes: bcrypt, which adopted accounts still
/// use, reads no further, and the cap is checked before any lookup, so an over-long password
/// never tells whether an account exists.
pub const PASSWORD_MAX_BYTES: usize = 72;

/// A password being set (register, verify, reset, the new one on change): at least
/// [`PASSWORD_MIN_CHARS`] characters and at most [`PASSWORD_MAX_BYTES`] bytes.
///
/// ```
/// use aegis_domain::validation::{check_password_to_set, msg};
/// assert_eq!(check_password_to_set("short"), Err(msg::PASSWORD_MIN));
/// assert!(check_password_to_set("long enough").is_ok());
/// ```
pub fn check_password_to_set(value: &str) -> Result<(), &'static str> {
    if value.chars().count() < PASSWORD_MIN_CHARS {
        return Err(msg::PASSWORD_MIN);
    }
    check_password_presented(value)
}

/// A password being presented (login, the current one on a change): no minimum, at most
/// [`PASSWORD_MAX_BYTES`] bytes.
pub fn check_password_presented(value: &str) -> Result<(), &'static str> {
    if value.len() > PASSWORD_MAX_BYTES {
        Err(msg::PASSWORD_MAX_BYTES)
    } else {
        Ok(())
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

/// Why a raw email address was refused. [`EmailError::messages`] gives what a client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Not an address Aegis accepts: its format, a refused character, a domain IDNA refuses, or a
    /// normal form longer than SMTP allows (64 octets before the `@`, 254 in all).
    #[error("not a valid email address")]
    Invalid,
    /// Longer than 255 characters as sent, and otherwise well formed.
    #[error("longer than 255 characters")]
    TooLong,
    /// Both of the above.
    #[error("not a valid email address, and longer than 255 characters")]
    InvalidAndTooLong,
}

impl EmailError {
    /// The field messages, format first, as the other string rules report them.
    pub const fn messages(self) -> &'static [&'static str] {
        match self {
            Self::Invalid => &[msg::EMAIL],
            Self::TooLong => &[msg::MAX_255],
            Self::InvalidAndTooLong => &[msg::EMAIL, msg::MAX_255],
        }
    }
}

/// The longest local part, in octets of its normal form (RFC 5321, section 4.5.3.1.1).
pub const EMAIL_LOCAL_MAX_OCTETS: usize = 64;
/// The longest address, in octets of its normal form (the forward-path limit of RFC 5321, less
/// the angle brackets).
pub const EMAIL_MAX_OCTETS: usize = 254;

/// The normal form of an address (decision 30), or why there is none. This is the whole rule set
/// behind [`crate::user::Email::parse`]:
///
/// 1. refused anywhere: control and format characters, any whitespace, other default-ignorable
///    code points (invisible in a mail client, so two addresses would look alike), and `"`, `,`,
///    `<`, `>` (quoted local parts and anything that could read as a list or a display name);
/// 2. Unicode NFC, then lowercase (composed again where lowercasing undid a composition, so that
///    the normal form is its own normal form), then the domain to IDNA ASCII (UTS 46);
///    `localhost` and a bracketed IPv4 literal are kept as they are;
/// 3. the local part a dot-atom, the domain `localhost`, a dotted name with a TLD or the literal;
/// 4. the normal form at most [`EMAIL_LOCAL_MAX_OCTETS`] before the `@` and [`EMAIL_MAX_OCTETS`]
///    in all.
///
/// Input over 255 characters is also refused (reported alongside a format failure, as the other
/// string fields report theirs); the raw input is never trimmed.
pub fn email_normal_form(raw: &str) -> Result<String, EmailError> {
    let too_long = raw.chars().count() > MAX_LEN;
    match (normalize_email(raw), too_long) {
        (Ok(normal), false) => Ok(normal),
        // Over 255 characters the octet limits add nothing a client needs to hear.
        (Ok(_) | Err(EmailRefusal::Length), true) => Err(EmailError::TooLong),
        (Err(_), false) => Err(EmailError::Invalid),
        (Err(EmailRefusal::Format), true) => Err(EmailError::InvalidAndTooLong),
    }
}

enum EmailRefusal {
    Format,
    Length,
}

fn normalize_email(raw: &str) -> Result<String, EmailRefusal> {
    use unicode_normalization::UnicodeNormalization as _;

    if raw.chars().any(is_refused_in_email) {
        return Err(EmailRefusal::Format);
    }
    // Lowercasing can leave a composable pair behind (`Ϊ` and an acute become `ϊ` and an acute,
    // which NFC writes `ΐ`), so the lowercase text is composed again.
    let lowered: String = raw.nfc().collect::<String>().to_lowercase().nfc().collect();
    let (local, domain) = lowered.rsplit_once('@').ok_or(EmailRefusal::Format)?;
    if !is_valid_local_part(local) {
        return Err(EmailRefusal::Format);
    }
    let domain = if domain == "localhost" || is_ipv4_literal(domain) {
        domain.to_owned()
    } else {
        let ascii = idna::domain_to_ascii(domain).map_err(|_| EmailRefusal::Format)?;
        if !is_valid_email_domain(&ascii) {
            return Err(EmailRefusal::Format);
        }
        ascii
    };
    let normal = format!("{local}@{domain}");
    if local.len() > EMAIL_LOCAL_MAX_OCTETS || normal.len() > EMAIL_MAX_OCTETS {
        return Err(EmailRefusal::Length);
    }
    Ok(normal)
}

/// See [`email_normal_form`], rule 1.
fn is_refused_in_email(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

    matches!(c, '"' | ',' | '<' | '>')
        || c.is_whitespace()
        || matches!(
            c.general_category(),
            GeneralCategory::Control
                | GeneralCategory::Format
                | GeneralCategory::SpaceSeparator
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
        || is_default_ignorable(c)
}

/// Unicode's `Default_Ignorable_Code_Point`: characters a renderer shows as nothing (soft hyphen,
/// zero-width characters, bidi controls, variation selectors, Hangul fillers, tags…). Most are
/// format characters; the rest are listed here so that none can make two addresses look alike.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// A dot-atom (marshmallow's unquoted local part); `\w` is Unicode-aware.
fn is_valid_local_part(local: &str) -> bool {
    static USER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)^[-!#$%&'*+/=?^`{}|~\w]+(?:\.[-!#$%&'*+/=?^`{}|~\w]+)*\z")
            .unwrap_or_else(|e| unreachable!("static regex: {e}"))
    });
    USER.is_match(local)
}

fn is_ipv4_literal(domain: &str) -> bool {
    static LITERAL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"^\[(?:25[0-5]|2[0-4]\d|[0-1]?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|[0-1]?\d?\d)){3}\]\z",
        )
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
    });
    LITERAL.is_match(domain)
}

/// A dotted ASCII name with a TLD (marshmallow's domain rule).
fn is_valid_email_domain(domain: &str) -> bool {
    static DOMAIN: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?i)^(?:[A-Z0-9](?:[A-Z0-9-]{0,61}[A-Z0-9])?\.)+(?:[A-Z]{2,6}|[A-Z0-9-]{2,})\z",
        )
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
    });
    // The reference's TLD alternative ends in a negative look-behind for '-'.
    !domain.ends_with('-') && DOMAIN.is_match(domain)
}

/// Text that ends up in a mail header (a site's name, sender name, sender address, Mailgun
/// domain) refuses control characters: any Unicode `Cc` (CR, LF, TAB, DEL…) and the line and
/// paragraph separators, so nothing a tenant stores can start a header of its own.
pub fn check_no_control(value: &str) -> Result<(), &'static str> {
    if value
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        Err(msg::CONTROL)
    } else {
        Ok(())
    }
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
    fn emails_the_reference_accepts_are_accepted_in_their_normal_form() {
        for (raw, normal) in [
            ("a@b.co", "a@b.co"),
            ("user+tag@example.com", "user+tag@example.com"),
            ("a@localhost", "a@localhost"),
            ("a@LocalHost", "a@localhost"),
            ("A@B.COM", "a@b.com"),
            ("a@[1.2.3.4]", "a@[1.2.3.4]"),
            ("jösé@example.com", "jösé@example.com"),
            ("user@exämple.de", "user@xn--exmple-cua.de"),
            ("first.last@sub.example.org", "first.last@sub.example.org"),
            (
                "o'brien!#$%&*/=?^`{}|~-@x.com",
                "o'brien!#$%&*/=?^`{}|~-@x.com",
            ),
            ("a@xn--exmple-cua.de", "a@xn--exmple-cua.de"),
            ("a@a-b.example.com", "a@a-b.example.com"),
            (
                "δοκιμή@παράδειγμα.δοκιμή",
                "δοκιμή@xn--hxajbheg2az3al.xn--jxalpdlp",
            ),
            ("用户@例子.广告", "用户@xn--fsqu00a.xn--4rr70v"),
        ] {
            assert_eq!(email_normal_form(raw).as_deref(), Ok(normal), "{raw}");
        }
    }

    #[test]
    fn emails_the_reference_rejects_are_still_rejected() {
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
            "a@b@x.com",
            "a@x..com",
            "a@x.com.",
        ] {
            assert_eq!(email_normal_form(bad), Err(EmailError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn quoted_local_parts_and_header_punctuation_are_refused() {
        for bad in [
            "\"q\"@x.com",
            "\"a,b\"@example.com",
            "\"a b\"@example.com",
            "a,b@example.com",
            "a@example.com,b@example.com",
            "<a@example.com>",
            "A <a@example.com>",
            "a>@example.com",
            "a@exa<mple.com",
        ] {
            assert_eq!(email_normal_form(bad), Err(EmailError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn control_characters_and_whitespace_are_refused_anywhere() {
        for c in [
            '\0', '\t', '\n', '\r', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}', '\u{a0}', '\u{1680}',
            '\u{2000}', '\u{2007}', '\u{200a}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}',
            '\u{3000}', ' ',
        ] {
            for bad in [
                format!("a{c}b@example.com"),
                format!("ab@exa{c}mple.com"),
                format!("{c}ab@example.com"),
                format!("ab@example.com{c}"),
            ] {
                assert_eq!(email_normal_form(&bad), Err(EmailError::Invalid), "{bad:?}");
            }
        }
    }

    #[test]
    fn invisible_characters_are_refused_anywhere() {
        // IDNA would silently drop several of these from a domain, so an address that looks like
        // another (or is another) would pass.
        for c in [
            '\u{ad}',
            '\u{34f}',
            '\u{61c}',
            '\u{115f}',
            '\u{180e}',
            '\u{200b}',
            '\u{200c}',
            '\u{200d}',
            '\u{200e}',
            '\u{200f}',
            '\u{202a}',
            '\u{202b}',
            '\u{202c}',
            '\u{202d}',
            '\u{202e}',
            '\u{2060}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{3164}',
            '\u{fe0f}',
            '\u{feff}',
            '\u{e0041}',
            '\u{e0100}',
        ] {
            for bad in [
                format!("a{c}b@example.com"),
                format!("ab@exa{c}mple.com"),
                format!("ab@example.com{c}"),
            ] {
                assert_eq!(email_normal_form(&bad), Err(EmailError::Invalid), "{bad:?}");
            }
        }
    }

    #[test]
    fn domains_idna_refuses_are_refused() {
        for bad in [
            "a@xn--a.com",
            "a@xn--zz-.com",
            "a@ex\u{fffd}ample.com",
            "a@exa\u{e000}mple.com",
            "a@\u{0378}.com",
            "a@a\u{2488}.com",
        ] {
            assert_eq!(email_normal_form(bad), Err(EmailError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn lengths_are_those_of_the_normal_form() {
        let local = "a".repeat(EMAIL_LOCAL_MAX_OCTETS);
        assert!(email_normal_form(&format!("{local}@x.com")).is_ok());
        assert_eq!(
            email_normal_form(&format!("{local}a@x.com")),
            Err(EmailError::Invalid)
        );
        // 64 octets of 'é' is 32 characters.
        assert!(email_normal_form(&format!("{}@x.com", "é".repeat(32))).is_ok());
        assert_eq!(
            email_normal_form(&format!("{}@x.com", "é".repeat(33))),
            Err(EmailError::Invalid)
        );
        let domain = format!("{}.com", vec!["a".repeat(62); 3].join("."));
        let exact = format!(
            "{}@{domain}",
            "b".repeat(EMAIL_MAX_OCTETS - 1 - domain.len())
        );
        assert_eq!(exact.len(), EMAIL_MAX_OCTETS);
        assert!(email_normal_form(&exact).is_ok());
        assert_eq!(
            email_normal_form(&format!("b{exact}")),
            Err(EmailError::Invalid)
        );
    }

    #[test]
    fn over_255_characters_is_reported_with_any_format_failure() {
        let long_ok = format!("{}@example.com", "a".repeat(250));
        assert_eq!(email_normal_form(&long_ok), Err(EmailError::TooLong));
        assert_eq!(EmailError::TooLong.messages(), [msg::MAX_255]);
        let long_bad = format!("{}@", "a".repeat(300));
        assert_eq!(
            email_normal_form(&long_bad),
            Err(EmailError::InvalidAndTooLong)
        );
        assert_eq!(
            EmailError::InvalidAndTooLong.messages(),
            [msg::EMAIL, msg::MAX_255]
        );
        assert_eq!(EmailError::Invalid.messages(), [msg::EMAIL]);
    }

    #[test]
    fn the_normal_form_is_its_own_normal_form() {
        for raw in [
            "JOSÉ@Example.COM",
            "jose\u{301}@example.com",
            "İ@x.com",
            "ΟΔΟΣ@ΠΑΡΆΔΕΙΓΜΑ.GR",
            "ẞ@STRASSE.DE",
            "\u{212a}elvin@x.com",
            "Ω@Ω.com",
            "a@ＥＸＡＭＰＬＥ.com",
            "a@example\u{3002}com",
            "\u{3aa}\u{301}@x.com",
        ] {
            let normal = email_normal_form(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(
                email_normal_form(&normal).as_deref(),
                Ok(normal.as_str()),
                "{raw}"
            );
        }
    }

    #[test]
    fn header_text_refuses_control_characters_only() {
        for bad in [
            "a\rb",
            "a\nb",
            "a\tb",
            "a\u{7f}",
            "a\u{85}",
            "a\u{2028}",
            "a\u{2029}",
            "\u{1b}[31m",
        ] {
            assert_eq!(check_no_control(bad), Err(msg::CONTROL), "{bad:?}");
        }
        for ok in ["Acme Team", "Ünïcode \"Quoted\", <Evil>", "", "a\u{200b}b"] {
            assert!(check_no_control(ok).is_ok(), "{ok:?}");
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
    fn passwords_are_set_with_8_characters_and_never_exceed_72_bytes() {
        assert_eq!(check_password_to_set("1234567"), Err(msg::PASSWORD_MIN));
        assert!(check_password_to_set("12345678").is_ok());
        // Characters, not bytes, for the minimum.
        assert!(check_password_to_set(&"é".repeat(8)).is_ok());
        // Bytes, not characters, for the maximum.
        assert!(check_password_to_set(&"a".repeat(72)).is_ok());
        assert_eq!(
            check_password_to_set(&"a".repeat(73)),
            Err(msg::PASSWORD_MAX_BYTES)
        );
        assert_eq!(
            check_password_to_set(&"é".repeat(37)),
            Err(msg::PASSWORD_MAX_BYTES)
        );
        assert!(check_password_presented("").is_ok());
        assert_eq!(
            check_password_presented(&"é".repeat(37)),
            Err(msg::PASSWORD_MAX_BYTES)
        );
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
