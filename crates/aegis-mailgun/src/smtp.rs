//! SMTP through lettre: any provider, or a local Mailpit.

use aegis_domain::{MailError, Mailer, OutgoingEmail, redact_email};
use async_trait::async_trait;
use lettre::message::MultiPart;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::headers::{header_text, mailbox};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (a local relay or Mailpit only).
    None,
    /// STARTTLS, required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// SMTP server settings.
#[derive(Clone)]
pub struct SmtpSettings {
    /// The server's host name; with TLS it is also the name the certificate must carry.
    pub host: String,
    /// The server's port: usually 587 with [`SmtpTls::StartTls`], 465 with [`SmtpTls::Tls`].
    pub port: u16,
    /// How the connection is secured.
    pub tls: SmtpTls,
    /// The login for SMTP authentication; used only together with `password`.
    pub username: Option<String>,
    /// The password for SMTP authentication; used only together with `username`. A secret,
    /// left out of `Debug`.
    pub password: Option<String>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Sends through an SMTP server; messages carry a text and an HTML part.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmtpMailer")
    }
}

impl SmtpMailer {
    /// A mailer for `settings`, with a 10 s timeout per command. No connection is opened until
    /// the first message, so a wrong host or password shows up as [`MailError::Failed`] then; an
    /// error here ([`MailError::NotConfigured`]) means the TLS settings could not be built for
    /// `host`.
    pub fn new(settings: &SmtpSettings) -> Result<Self, MailError> {
        let builder = match settings.tls {
            SmtpTls::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            }
            SmtpTls::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)
                    .map_err(|e| MailError::NotConfigured(e.to_string()))?
            }
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)
                .map_err(|e| MailError::NotConfigured(e.to_string()))?,
        };
        let mut builder = builder
            .port(settings.port)
            .timeout(Some(std::time::Duration::from_secs(10)));
        if let (Some(user), Some(pass)) = (&settings.username, &settings.password) {
            builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        Ok(Self {
            transport: builder.build(),
        })
    }
}

impl SmtpMailer {
    /// Whether the server answers: connects, says EHLO, negotiates TLS as configured, and
    /// authenticates when credentials are set; sends nothing.
    pub async fn check(&self) -> Result<(), MailError> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(MailError::Failed(
                "the server did not answer the connection test".into(),
            )),
            Err(e) => Err(MailError::Failed(e.to_string())),
        }
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError> {
        let message = Message::builder()
            .from(mailbox(Some(&email.from_name), &email.from_address)?)
            .to(mailbox(None, &email.to)?)
            .subject(header_text(&email.subject))
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|e| MailError::Failed(format!("cannot build the message: {e}")))?;
        self.transport
            .send(message)
            .await
            .map_err(|e| MailError::Failed(format!("SMTP delivery failed: {e}")))?;
        tracing::info!(to = %redact_email(&email.to), "email sent over SMTP");
        Ok(())
    }
}
