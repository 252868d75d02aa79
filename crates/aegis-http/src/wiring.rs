//! Choosing adapters from the configuration.

use std::sync::Arc;

use aegis_domain::Mailer;
use aegis_mailgun::{FileOutbox, MailgunMailer, SmtpMailer, SmtpSettings, SmtpTls};
use secrecy::ExposeSecret as _;

use crate::config::{MailTransport, Settings};

/// The SMTP transport of `SMTP_*`.
pub fn smtp_mailer(smtp: &crate::config::SmtpConfig) -> Result<SmtpMailer, String> {
    SmtpMailer::new(&SmtpSettings {
        host: smtp.host.clone(),
        port: smtp.port,
        tls: match smtp.tls.as_str() {
            "none" => SmtpTls::None,
            "tls" => SmtpTls::Tls,
            _ => SmtpTls::StartTls,
        },
        username: smtp.username.clone(),
        password: smtp.password.clone(),
    })
    .map_err(|e| e.to_string())
}

/// The Mailgun transport of `MAILGUN_*`.
pub fn mailgun_mailer(settings: &Settings, api_base: &str) -> Result<MailgunMailer, String> {
    MailgunMailer::new(
        api_base,
        settings.mailgun_domain.clone(),
        settings
            .mailgun_api_key
            .as_ref()
            .map(|k| k.expose_secret().to_owned()),
    )
    .map_err(|e| e.to_string())
}

/// The mail transport the settings name, or `None` when email is to stay queued.
pub fn mailer(settings: &Settings) -> Result<Option<Arc<dyn Mailer>>, String> {
    let mailer: Arc<dyn Mailer> = match &settings.mail_transport {
        MailTransport::Mailgun { api_base } => {
            if settings.mailgun_api_key.is_none() || settings.mailgun_domain.is_none() {
                tracing::warn!(
                    "Mailgun is the mail transport but MAILGUN_API_KEY or MAILGUN_DOMAIN is unset: \
                     only sites with their own Mailgun settings can send"
                );
            }
            tracing::info!(%api_base, "mail goes through the Mailgun HTTP API");
            Arc::new(mailgun_mailer(settings, api_base)?)
        }
        MailTransport::Smtp(smtp) => {
            tracing::info!(host = %smtp.host, port = smtp.port, tls = %smtp.tls, "mail goes over SMTP");
            Arc::new(smtp_mailer(smtp)?)
        }
        MailTransport::Outbox(dir) => {
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            println!("  Mail is written as .eml files to {}", dir.display());
            Arc::new(FileOutbox::new(dir))
        }
        MailTransport::None => {
            tracing::warn!("MAIL_TRANSPORT=none: email stays queued in the email_outbox table");
            return Ok(None);
        }
    };
    Ok(Some(mailer))
}
