//! The Mailgun HTTP API: `POST {base}/v3/{domain}/messages`, HTTP Basic `api:{key}`,
//! form fields `from`, `to`, `subject`, `html`, `text`; 10 s timeout; only 200 is success.

use std::time::Duration;

use aegis_domain::{MailError, Mailer, OutgoingEmail, redact_email};
use async_trait::async_trait;

use crate::headers::{address, encoded_mailbox, header_text, mailbox};

/// The US endpoint; EU accounts use `https://api.eu.mailgun.net`.
pub const DEFAULT_API_BASE: &str = "https://api.mailgun.net";

/// Sends through Mailgun. Each message may carry its site's domain and key, each falling back
/// independently to the global one; empty counts as unset.
pub struct MailgunMailer {
    client: reqwest::Client,
    api_base: String,
    domain: Option<String>,
    api_key: Option<String>,
}

impl std::fmt::Debug for MailgunMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailgunMailer")
            .field("api_base", &self.api_base)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// Whether `from` is the sending domain, or either is a subdomain of the other (DMARC alignment).
/// A message whose sender is not aligned is still sent, with a warning in the log, since
/// receivers may then file it as spam.
///
/// ```
/// use aegis_mailgun::aligned;
///
/// assert!(aligned("noreply@example.com", "mg.example.com"));
/// assert!(aligned("noreply@mail.example.com", "example.com"));
/// assert!(!aligned("noreply@example.org", "mg.example.com"));
/// ```
pub fn aligned(from_address: &str, sending_domain: &str) -> bool {
    let from = from_address
        .rsplit_once('@')
        .map_or("", |(_, d)| d)
        .to_ascii_lowercase();
    let sending = sending_domain.to_ascii_lowercase();
    from == sending
        || from.ends_with(&format!(".{sending}"))
        || sending.ends_with(&format!(".{from}"))
}

impl MailgunMailer {
    /// A client for `api_base` with the global `domain` and `api_key` (either may be unset when
    /// every site has its own).
    pub fn new(
        api_base: &str,
        domain: Option<String>,
        api_key: Option<String>,
    ) -> Result<Self, MailError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| MailError::NotConfigured(e.to_string()))?;
        Ok(Self {
            client,
            api_base: api_base.trim_end_matches('/').to_owned(),
            domain,
            api_key,
        })
    }
}

impl MailgunMailer {
    /// Whether Mailgun accepts the global key for the global domain: an authenticated
    /// `GET {base}/v3/domains/{domain}`, which sends nothing. Sites with their own domain and key
    /// are not checked.
    pub async fn check(&self) -> Result<(), MailError> {
        let domain = non_empty(self.domain.as_deref())
            .ok_or_else(|| MailError::NotConfigured("MAILGUN_DOMAIN is not set".into()))?;
        let key = non_empty(self.api_key.as_deref())
            .ok_or_else(|| MailError::NotConfigured("MAILGUN_API_KEY is not set".into()))?;
        let response = self
            .client
            .get(format!("{}/v3/domains/{domain}", self.api_base))
            .basic_auth("api", Some(key))
            .send()
            .await
            .map_err(|e| MailError::Failed(format!("Mailgun request failed: {e}")))?;
        match response.status().as_u16() {
            200 => Ok(()),
            401 | 403 => Err(MailError::Failed(format!(
                "Mailgun refused the API key (HTTP {})",
                response.status().as_u16()
            ))),
            404 => Err(MailError::Failed(format!(
                "Mailgun does not know the domain {domain} (HTTP 404)"
            ))),
            other => Err(MailError::Failed(format!("Mailgun answered HTTP {other}"))),
        }
    }
}

#[async_trait]
impl Mailer for MailgunMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError> {
        let domain = non_empty(email.mailgun_domain.as_deref())
            .or(non_empty(self.domain.as_deref()))
            .ok_or_else(|| MailError::NotConfigured("no Mailgun domain for this site".into()))?;
        let key = non_empty(email.mailgun_api_key.as_deref())
            .or(non_empty(self.api_key.as_deref()))
            .ok_or_else(|| MailError::NotConfigured("no Mailgun API key for this site".into()))?;
        if !aligned(&email.from_address, domain) {
            tracing::warn!(
                sending_domain = %domain,
                from = %redact_email(&email.from_address),
                "sender domain mismatch: the From domain is not aligned with the Mailgun domain (DMARC)"
            );
        }
        // Mailgun reads `from` as an address list and `to` as a list of recipients: the display
        // name is quoted or encoded, and the recipient must be exactly one address.
        let from = encoded_mailbox(mailbox(Some(&email.from_name), &email.from_address)?);
        let to = address(&email.to)?.to_string();
        let subject = header_text(&email.subject);
        let form = [
            ("from", from.as_str()),
            ("to", to.as_str()),
            ("subject", subject.as_str()),
            ("html", email.html.as_str()),
            ("text", email.text.as_str()),
        ];
        let response = self
            .client
            .post(format!("{}/v3/{domain}/messages", self.api_base))
            .basic_auth("api", Some(key))
            .form(&form)
            .send()
            .await
            .map_err(|e| MailError::Failed(format!("Mailgun request failed: {e}")))?;
        let status = response.status();
        if status.as_u16() == 200 {
            tracing::info!(to = %redact_email(&email.to), "email sent through Mailgun");
            return Ok(());
        }
        let body: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        Err(MailError::Failed(format!(
            "Mailgun answered {status}: {body}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_accepts_equal_and_sub_domains_either_way() {
        assert!(aligned("a@example.com", "example.com"));
        assert!(aligned("a@mail.example.com", "example.com"));
        assert!(aligned("a@example.com", "mg.example.com"));
        assert!(aligned("a@EXAMPLE.com", "example.COM"));
        assert!(!aligned("a@example.org", "example.com"));
        assert!(!aligned("a@badexample.com", "example.com"));
    }
}
