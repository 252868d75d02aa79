//! Mail transports for Aegis, behind the domain's [`aegis_domain::Mailer`] port:
//!
//! - [`MailgunMailer`]: the Mailgun HTTP API, with per-site domain and key overrides;
//! - [`SmtpMailer`]: any SMTP server, through lettre;
//! - [`FileOutbox`]: development, each message an `.eml` file in a folder;
//!
//! and the other outbound adapter, [`HttpWebhookSender`], the HTTP client for webhooks.
//!
//! Each is used as an `Arc<dyn Mailer>` (or `Arc<dyn WebhookSender>`) by the delivery workers of
//! `aegis-domain`, which retry failed messages; a transport sends each message once and says
//! whether it went.
//!
//! # Example
//!
//! The development outbox, which any test or local setup can read back:
//!
//! ```
//! use aegis_domain::{Mailer, OutgoingEmail};
//! use aegis_mailgun::FileOutbox;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("aegis-outbox-doc-{}", std::process::id()));
//! let outbox = FileOutbox::new(dir.clone());
//! outbox
//!     .send(&OutgoingEmail {
//!         from_name: "Example".into(),
//!         from_address: "noreply@example.com".into(),
//!         to: "ada@example.com".into(),
//!         subject: "Verify your email for Example".into(),
//!         text: "https://app.example.com/verify-email?token=abc\n".into(),
//!         html: "<a href=\"https://app.example.com/verify-email?token=abc\">Verify</a>".into(),
//!         mailgun_domain: None,
//!         mailgun_api_key: None,
//!     })
//!     .await?;
//!
//! let file = std::fs::read_dir(outbox.dir())?.next().expect("one message")?.path();
//! let message = std::fs::read_to_string(&file)?;
//! assert!(message.contains("Subject: Verify your email for Example"));
//! assert!(message.contains("https://app.example.com/verify-email?token=abc"));
//! std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod headers;
mod mailgun;
mod outbox;
mod smtp;
mod webhook;

pub use mailgun::{DEFAULT_API_BASE, MailgunMailer, aligned};
pub use outbox::FileOutbox;
pub use smtp::{SmtpMailer, SmtpSettings, SmtpTls};
pub use webhook::{HttpWebhookSender, is_private};
