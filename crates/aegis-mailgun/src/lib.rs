//! Mail transports for Aegis, behind the domain's [`aegis_domain::Mailer`] port:
//!
//! - [`MailgunMailer`]: the Mailgun HTTP API, with per-site domain and key overrides;
//! - [`SmtpMailer`]: any SMTP server, through lettre;
//! - [`FileOutbox`]: development, each message an `.eml` file in a folder;
//!
//! and the other outbound adapter, [`HttpWebhookSender`], the HTTP client for webhooks.

mod headers;
mod mailgun;
mod outbox;
mod smtp;
mod webhook;

pub use mailgun::{DEFAULT_API_BASE, MailgunMailer, aligned};
pub use outbox::FileOutbox;
pub use smtp::{SmtpMailer, SmtpSettings, SmtpTls};
pub use webhook::{HttpWebhookSender, is_private};
