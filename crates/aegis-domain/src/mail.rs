//! The mail port: how the domain hands a rendered message to a transport.

use std::fmt;

use async_trait::async_trait;

/// A rendered message, ready for a transport.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// Display name of the sender (the site's `email_from_name`).
    pub from_name: String,
    /// Sender address (the site's `email_from`).
    pub from_address: String,
    /// Recipient address, in the normal form the account stores. Personal data: log it only
    /// through [`redact_email`].
    pub to: String,
    /// Subject line, already rendered (no placeholders left).
    pub subject: String,
    /// Plain-text body. It may carry a live verification or reset link, so it is a secret while
    /// the link is valid.
    pub text: String,
    /// HTML body, with the same content and the same secrecy as `text`.
    pub html: String,
    /// Per-site Mailgun sending domain, overriding the global one.
    pub mailgun_domain: Option<String>,
    /// Per-site Mailgun API key, overriding the global one.
    pub mailgun_api_key: Option<String>,
}

impl fmt::Debug for OutgoingEmail {
    // Bodies carry live tokens and the recipient is personal data: neither is printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingEmail")
            .field("to", &redact_email(&self.to))
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Delivering a message failed.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The transport is not configured (for example no Mailgun key or domain at all).
    #[error("mail transport not configured: {0}")]
    NotConfigured(String),
    /// The provider or the transport refused or failed; a retry may succeed.
    #[error("mail delivery failed: {0}")]
    Failed(String),
}

/// A mail transport.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Delivers one message.
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError>;
}

/// An address as logs may show it: first character of the local part, then the domain
/// (`x***@example.com`).
pub fn redact_email(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_redacted_for_logs() {
        assert_eq!(redact_email("xavier@example.com"), "x***@example.com");
        assert_eq!(redact_email("@example.com"), "***@example.com");
        assert_eq!(redact_email("nobody"), "***");
    }

    #[test]
    fn debug_output_hides_the_recipient_and_the_body() {
        let email = OutgoingEmail {
            from_name: "Site".into(),
            from_address: "noreply@site.com".into(),
            to: "victim@example.com".into(),
            subject: "Verify".into(),
            text: "token=secret-token".into(),
            html: "<a href=\"?token=secret-token\">".into(),
            mailgun_domain: None,
            mailgun_api_key: Some("key-x".into()),
        };
        let shown = format!("{email:?}");
        assert!(!shown.contains("victim"));
        assert!(!shown.contains("secret-token"));
        assert!(!shown.contains("key-x"));
    }
}
