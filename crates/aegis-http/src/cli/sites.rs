//! `aegis sites …`: the operator's site management, with the validation and the answers of the
//! master-key site routes (`routes/sites`).

use aegis_domain::site::Site;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use super::context::Context;
use super::{CliError, OrApi as _, output, prompt};
use crate::error::ApiError;
use crate::routes::sites::dto;

/// `aegis sites`: create, list, show, update and delete sites (tenants).
#[derive(Args, Debug)]
pub struct Sites {
    /// Print JSON (the API's site objects) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: SiteCommand,
}

#[derive(Subcommand, Debug)]
enum SiteCommand {
    /// Create a site; prints it with its new tenant API key. Missing required values are asked
    /// for when stdin is a terminal.
    Create(SiteFields),
    /// List every site, newest first.
    List,
    /// Show one site, with its secrets.
    Show {
        /// The site's UUID or domain.
        site: String,
    },
    /// Change the fields given; `--clear FIELD` removes an optional setting.
    Update {
        /// The site's UUID or domain.
        site: String,
        #[command(flatten)]
        fields: SiteFields,
        /// Protect the site (and so all its users) from deletion, or lift the protection.
        #[arg(long, value_name = "BOOL")]
        deletion_protected: Option<bool>,
        /// Remove an optional setting (repeatable).
        #[arg(long, value_enum, value_name = "FIELD")]
        clear: Vec<Clearable>,
    },
    /// Delete a site and all its users (refused while it or any of its users is protected).
    Delete {
        /// The site's UUID or domain.
        site: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
    /// Issue a new tenant API key; the current one stops working at once.
    RotateTenantKey {
        /// The site's UUID or domain.
        site: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
    /// Issue a new webhook signing secret; receivers must be given it.
    RotateWebhookSecret {
        /// The site's UUID or domain.
        site: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
}

/// The fields of `POST /api/sites` (and of `PUT /api/sites/{id}`), as flags.
#[derive(Args, Debug, Default)]
struct SiteFields {
    /// The site's name (shown in every email subject).
    #[arg(long)]
    name: Option<String>,
    /// The site's domain, unique across sites (stored lowercased).
    #[arg(long)]
    domain: Option<String>,
    /// The frontend's base URL: email links point there.
    #[arg(long, value_name = "URL")]
    frontend_url: Option<String>,
    /// Where a verification link sends the user (default: the frontend URL).
    #[arg(long, value_name = "URL")]
    verification_redirect_url: Option<String>,
    /// The From address of the site's email.
    #[arg(long, value_name = "ADDRESS")]
    email_from: Option<String>,
    /// The From name of the site's email.
    #[arg(long, value_name = "NAME")]
    email_from_name: Option<String>,
    /// Whether users may register themselves (default true).
    #[arg(long, value_name = "BOOL")]
    allow_self_registration: Option<bool>,
    /// Where `user.verified` and `user.deleted` are posted (a new signing secret is issued).
    #[arg(long, value_name = "URL")]
    webhook_url: Option<String>,
    /// The site's own Mailgun sending domain.
    #[arg(long, value_name = "DOMAIN")]
    mailgun_domain: Option<String>,
    /// The site's own Mailgun API key.
    #[arg(long, value_name = "KEY")]
    mailgun_api_key: Option<String>,
}

/// Optional settings `sites update --clear` removes.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Clearable {
    VerificationRedirectUrl,
    WebhookUrl,
    MailgunDomain,
    MailgunApiKey,
}

impl Clearable {
    fn field(self) -> &'static str {
        match self {
            Self::VerificationRedirectUrl => "verification_redirect_url",
            Self::WebhookUrl => "webhook_url",
            Self::MailgunDomain => "mailgun_domain",
            Self::MailgunApiKey => "mailgun_api_key",
        }
    }
}

impl SiteFields {
    /// The fields given, as the JSON body the API would receive.
    fn body(self) -> Map<String, Value> {
        let mut body = Map::new();
        let strings = [
            ("name", self.name),
            ("domain", self.domain),
            ("frontend_url", self.frontend_url),
            ("verification_redirect_url", self.verification_redirect_url),
            ("email_from", self.email_from),
            ("email_from_name", self.email_from_name),
            ("webhook_url", self.webhook_url),
            ("mailgun_domain", self.mailgun_domain),
            ("mailgun_api_key", self.mailgun_api_key),
        ];
        for (field, value) in strings {
            if let Some(value) = value {
                body.insert(field.to_owned(), Value::String(value));
            }
        }
        if let Some(allow) = self.allow_self_registration {
            body.insert("allow_self_registration".into(), Value::Bool(allow));
        }
        body
    }
}

/// The API's verdict on one site field, for inline validation of an answer.
fn check_field(field: &'static str) -> impl Fn(&str) -> Result<(), String> {
    move |value| match dto::site_patch(json!({ field: value })) {
        Ok(_) => Ok(()),
        Err(ApiError::Validation(details)) => Err(details
            .get(field)
            .map(|m| m.join(" "))
            .unwrap_or_else(|| "Invalid value".into())),
        Err(e) => Err(CliError::from(e).to_string()),
    }
}

/// Asks for the required fields `fields` lacks (stdin a terminal), else names the first missing.
fn complete(mut fields: SiteFields) -> Result<SiteFields, CliError> {
    fields.name = Some(prompt::text(
        fields.name.take(),
        "--name",
        "Site name",
        None,
        check_field("name"),
    )?);
    fields.domain = Some(prompt::text(
        fields.domain.take(),
        "--domain",
        "Domain",
        None,
        check_field("domain"),
    )?);
    let domain = fields.domain.clone().unwrap_or_default();
    fields.frontend_url = Some(prompt::text(
        fields.frontend_url.take(),
        "--frontend-url",
        "Frontend URL",
        Some(format!("https://{domain}")),
        check_field("frontend_url"),
    )?);
    fields.email_from = Some(prompt::text(
        fields.email_from.take(),
        "--email-from",
        "From address",
        Some(format!("noreply@{domain}")),
        check_field("email_from"),
    )?);
    fields.email_from_name = Some(prompt::text(
        fields.email_from_name.take(),
        "--email-from-name",
        "From name",
        fields.name.clone(),
        check_field("email_from_name"),
    )?);
    Ok(fields)
}

fn print_site(site: &Site, as_json: bool) {
    if as_json {
        return output::json(&dto::site_admin(site));
    }
    let mailgun_key = site.mailgun_api_key.as_ref().map(|_| "(set)");
    output::record(vec![
        ("uuid", site.id.to_string()),
        ("name", site.name.clone()),
        ("domain", site.domain.clone()),
        ("frontend_url", site.frontend_url.clone()),
        (
            "verification_redirect_url",
            output::opt(site.verification_redirect_url.as_deref()),
        ),
        ("email_from", site.email_from.to_string()),
        ("email_from_name", site.email_from_name.clone()),
        (
            "allow_self_registration",
            output::yes_no(site.allow_self_registration),
        ),
        ("webhook_url", output::opt(site.webhook_url.as_deref())),
        (
            "webhook_secret",
            output::opt(site.webhook_secret.as_deref()),
        ),
        ("tenant_api_key", output::opt(Some(&site.tenant_api_key))),
        (
            "mailgun_domain",
            output::opt(site.mailgun_domain.as_deref()),
        ),
        ("mailgun_api_key", output::opt(mailgun_key)),
        (
            "deletion_protected",
            output::yes_no(site.deletion_protected),
        ),
        ("created_at", output::time(site.created_at)),
        ("updated_at", output::time(site.updated_at)),
    ]);
}

fn print_message(message: &str, as_json: bool) {
    if as_json {
        output::json(&aegis_api_types::Message {
            message: message.to_owned(),
        });
    } else {
        println!("{message}");
    }
}

/// Applies an update body to `site` with the API's validation and rules.
fn update(ctx: &Context, site: &Site, body: Map<String, Value>) -> Result<Site, CliError> {
    let patch = dto::site_patch(Value::Object(body))?;
    if patch.is_empty() {
        return Err(ApiError::bad_request("At least one field must be provided").into());
    }
    ctx.block(ctx.sites().update(site.id, patch)).or_api()
}

pub(super) fn run(ctx: &Context, sites: Sites) -> Result<(), CliError> {
    let as_json = sites.json;
    match sites.command {
        SiteCommand::Create(fields) => {
            let fields = complete(fields)?;
            let new = dto::new_site(Value::Object(fields.body()))?;
            let site = ctx.block(ctx.sites().create(new)).or_api()?;
            tracing::info!(site = %site.id, "site created");
            print_site(&site, as_json);
        }
        SiteCommand::List => {
            let sites = ctx.block(ctx.sites().list()).or_api()?;
            if as_json {
                let views: Vec<_> = sites.iter().map(dto::site_admin).collect();
                output::json(&views);
            } else {
                let rows = sites
                    .iter()
                    .map(|s| {
                        vec![
                            s.id.to_string(),
                            s.domain.clone(),
                            s.name.clone(),
                            output::yes_no(s.allow_self_registration),
                            output::opt(s.webhook_url.as_deref()),
                            output::yes_no(s.deletion_protected),
                            output::time(s.created_at),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "uuid",
                        "domain",
                        "name",
                        "self-registration",
                        "webhook",
                        "protected",
                        "created",
                    ],
                    rows,
                );
            }
        }
        SiteCommand::Show { site } => print_site(&ctx.site(&site)?, as_json),
        SiteCommand::Update {
            site,
            fields,
            deletion_protected,
            clear,
        } => {
            let site = ctx.site(&site)?;
            let mut body = fields.body();
            for field in clear {
                body.insert(field.field().to_owned(), Value::Null);
            }
            if let Some(protected) = deletion_protected {
                body.insert("deletion_protected".into(), Value::Bool(protected));
            }
            let site = update(ctx, &site, body)?;
            tracing::info!(site = %site.id, "site updated");
            print_site(&site, as_json);
        }
        SiteCommand::Delete { site, yes } => {
            let site = ctx.site(&site)?;
            prompt::confirm(
                yes,
                &format!(
                    "Delete site {} ({}) and all its users?",
                    site.domain, site.id
                ),
            )?;
            ctx.block(ctx.sites().delete(site.id)).or_api()?;
            tracing::info!(site = %site.id, "site deleted");
            print_message(&format!("Site {} deleted successfully", site.id), as_json);
        }
        SiteCommand::RotateTenantKey { site, yes } => {
            let site = ctx.site(&site)?;
            prompt::confirm(
                yes,
                &format!(
                    "Issue a new tenant API key for {}? The current key stops working at once.",
                    site.domain
                ),
            )?;
            let mut body = Map::new();
            body.insert("regenerate_tenant_api_key".into(), Value::Bool(true));
            let site = update(ctx, &site, body)?;
            tracing::info!(site = %site.id, "tenant API key rotated");
            if as_json {
                print_site(&site, true);
            } else {
                println!("{}", site.tenant_api_key);
            }
        }
        SiteCommand::RotateWebhookSecret { site, yes } => {
            let site = ctx.site(&site)?;
            if site.webhook_url.as_deref().is_none_or(str::is_empty) {
                return Err(CliError::Failed(format!(
                    "site {} has no webhook_url, so no webhook secret: set one with \
                     `aegis sites update {} --webhook-url URL`",
                    site.domain, site.domain
                )));
            }
            prompt::confirm(
                yes,
                &format!(
                    "Issue a new webhook secret for {}? Receivers must be given the new one.",
                    site.domain
                ),
            )?;
            let mut body = Map::new();
            body.insert("regenerate_webhook_secret".into(), Value::Bool(true));
            let site = update(ctx, &site, body)?;
            tracing::info!(site = %site.id, "webhook secret rotated");
            if as_json {
                print_site(&site, true);
            } else {
                println!("{}", output::opt(site.webhook_secret.as_deref()));
            }
        }
    }
    Ok(())
}
