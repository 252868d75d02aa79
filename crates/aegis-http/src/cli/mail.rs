//! `aegis mail test --to ADDRESS`: one real message through the configured transport, sent now
//! (not queued), so that a transport problem shows at once.

use aegis_domain::user::Email;
use aegis_domain::validation::msg;
use aegis_domain::{OutgoingEmail, redact_email};
use clap::{Args, Subcommand};

use super::context::{Context, runtime};
use super::{CliError, prompt};
use crate::config::Settings;
use crate::error::ApiError;

/// `aegis mail`: the mail transport.
#[derive(Args, Debug)]
pub struct Mail {
    #[command(subcommand)]
    command: MailCommand,
}

#[derive(Subcommand, Debug)]
enum MailCommand {
    /// Send a test email through the configured transport (MAIL_TRANSPORT) now.
    Test {
        /// The recipient.
        #[arg(long)]
        to: Option<String>,
        /// Send as this site (UUID or domain): its From address and name, and its own Mailgun
        /// domain and key when it has them.
        #[arg(long)]
        site: Option<String>,
        /// The From address, when no site is named.
        #[arg(long, value_name = "ADDRESS")]
        from: Option<String>,
    },
}

fn address(field: &str, raw: &str) -> Result<Email, CliError> {
    Email::parse(raw).map_err(|_| ApiError::field(field, msg::EMAIL).into())
}

pub(super) fn run(settings: &Settings, mail: Mail) -> Result<(), CliError> {
    let MailCommand::Test { to, site, from } = mail.command;
    let check = |v: &str| Email::parse(v).map(drop).map_err(|_| msg::EMAIL.to_owned());
    let to = address(
        "to",
        &prompt::text(to, "--to", "Send a test email to", None, check)?,
    )?;
    let mut email = OutgoingEmail {
        from_name: "Aegis".into(),
        from_address: String::new(),
        to: to.into_string(),
        subject: "Aegis test email".into(),
        text: "This is a test email sent by `aegis mail test`: the mail transport works.\n".into(),
        html: "<p>This is a test email sent by <code>aegis mail test</code>: the mail transport \
               works.</p>\n"
            .into(),
        mailgun_domain: None,
        mailgun_api_key: None,
    };
    let (runtime, _ctx) = match site {
        Some(site) => {
            let ctx = Context::open(settings)?;
            let site = ctx.site(&site)?;
            email.from_name = site.email_from_name.clone();
            email.from_address = site.email_from.to_string();
            email.mailgun_domain = site.mailgun_domain.clone();
            email.mailgun_api_key = site.mailgun_api_key.clone();
            (runtime()?, Some(ctx))
        }
        None => {
            let from = from
                .or_else(|| {
                    settings
                        .mailgun_domain
                        .as_ref()
                        .map(|d| format!("aegis@{d}"))
                })
                .ok_or_else(|| {
                    CliError::Usage(
                        "missing --from (or --site, to send as a site): the test email needs a \
                         From address"
                            .into(),
                    )
                })?;
            email.from_address = address("from", &from)?.into_string();
            (runtime()?, None)
        }
    };
    // The SMTP transport's connection pool lives on the runtime: built, used and dropped there.
    runtime.block_on(async {
        let mailer = crate::wiring::mailer(settings)
            .map_err(CliError::Failed)?
            .ok_or_else(|| {
                CliError::Failed(
                    "MAIL_TRANSPORT=none: there is no transport to send through".into(),
                )
            })?;
        mailer
            .send(&email)
            .await
            .map_err(|e| CliError::Failed(format!("the test email was not sent: {e}")))
    })?;
    println!("Test email sent to {}", redact_email(&email.to));
    Ok(())
}
