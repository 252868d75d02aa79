//! Header values for every transport. Nothing a site or a user stored reaches a header raw: text
//! loses its control characters, display names are quoted or RFC 2047-encoded by lettre, and an
//! address must parse as exactly one address.
//!
//! Site settings that reach headers already refuse control characters when they are written
//! (decision 30); this is the transports' own guard, for rows written before that rule and for any
//! other caller of the mail port.

use aegis_domain::MailError;
use lettre::Address;
use lettre::message::header::{self, Headers};
use lettre::message::{Mailbox, Mailboxes};

/// `value` with every control character (CR, LF, TAB, DEL, any Unicode `Cc`) and the line and
/// paragraph separators replaced by a space, so it stays on its header's line.
pub(crate) fn header_text(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Exactly one address: no display name, no list, no control character.
pub(crate) fn address(value: &str) -> Result<Address, MailError> {
    value
        .parse()
        .map_err(|e| MailError::Failed(format!("unusable address: {e}")))
}

/// A mailbox with an optional display name, cleaned as [`header_text`] cleans text; a name that is
/// blank once cleaned is left out.
pub(crate) fn mailbox(name: Option<&str>, address_value: &str) -> Result<Mailbox, MailError> {
    let name = name
        .map(|n| header_text(n).trim().to_owned())
        .filter(|n| !n.is_empty());
    Ok(Mailbox::new(name, address(address_value)?))
}

/// The `From`, `To` and `Subject` headers of a message, encoded by lettre: a display name plain,
/// quoted (with `"` and `\` escaped) or RFC 2047-encoded as its characters require, and the subject
/// encoded where it is not ASCII.
pub(crate) fn message_headers(from: Mailbox, to: Mailbox, subject: &str) -> Headers {
    let mut headers = Headers::new();
    headers.set(header::From::from(Mailboxes::from(from)));
    headers.set(header::To::from(Mailboxes::from(to)));
    headers.set(header::Subject::from(header_text(subject)));
    headers
}

/// A mailbox as one encoded header value on one line, for APIs that take the value of a `From`
/// field rather than a whole message.
pub(crate) fn encoded_mailbox(mailbox: Mailbox) -> String {
    let mut headers = Headers::new();
    headers.set(header::From::from(Mailboxes::from(mailbox)));
    let line = headers.to_string();
    // Folding only ever inserts CRLF before a space, so removing the CRLFs unfolds the value.
    line.strip_prefix("From: ")
        .unwrap_or(&line)
        .replace("\r\n", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_spaces() {
        assert_eq!(
            header_text("a\r\nBcc: x@evil.test\tb\u{7f}c\u{2028}d\u{85}e"),
            "a  Bcc: x@evil.test b c d e"
        );
        assert_eq!(header_text("Ünïcode \"Quoted\""), "Ünïcode \"Quoted\"");
    }

    #[test]
    fn display_names_are_quoted_or_encoded() {
        let at = |name: &str| encoded_mailbox(mailbox(Some(name), "noreply@example.com").unwrap());
        assert_eq!(at("Acme"), "Acme <noreply@example.com>");
        assert_eq!(at("Acme Team"), "\"Acme Team\" <noreply@example.com>");
        assert_eq!(
            at("Rogue \" User"),
            "\"Rogue \\\" User\" <noreply@example.com>"
        );
        for name in [
            "Ünïcode \"Quoted\", <Evil>\r\nBcc: x@evil.test",
            "a, b <c@d.e>",
            "x; y",
            "Acme (the team)",
        ] {
            let value = at(name);
            assert!(value.starts_with("=?utf-8?b?"), "{name:?}: {value}");
            assert!(value.ends_with("?= <noreply@example.com>"), "{value}");
            assert!(!value.contains('\r') && !value.contains('\n'), "{value}");
            assert_eq!(value.matches('<').count(), 1, "{value}");
        }
        assert_eq!(
            encoded_mailbox(mailbox(Some(" \r\n "), "a@b.co").unwrap()),
            "a@b.co"
        );
        let long = encoded_mailbox(mailbox(Some(&"Ü".repeat(80)), "a@b.co").unwrap());
        assert!(!long.contains("\r\n"), "{long}");
        assert!(long.matches("=?utf-8?b?").count() > 1, "{long}");
    }

    #[test]
    fn an_address_is_exactly_one_address() {
        for bad in [
            "a@b.co, c@evil.test",
            "A <a@b.co>",
            "a@b.co\r\nBcc: c@evil.test",
            "a b@c.de",
            "",
        ] {
            assert!(address(bad).is_err(), "{bad:?}");
        }
        for ok in [
            "a@b.co",
            "jösé@xn--bcher-kva.de",
            "a@[1.2.3.4]",
            "a@localhost",
        ] {
            assert_eq!(address(ok).unwrap().to_string(), ok);
        }
    }
}
