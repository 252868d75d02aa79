//! `aegis users …`: the operator's user management, through the account use cases the admin
//! routes call (`routes/users`), with their validation, protections, email and webhooks.

use aegis_domain::site::Site;
use aegis_domain::user::{Role, User};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::context::Context;
use super::{CliError, OrApi as _, output, prompt};
use crate::error::ApiError;
use crate::routes::auth::dto;
use crate::routes::users::handlers::new_user;

/// `aegis users`: create, list, inspect and manage the users of a site.
#[derive(Args, Debug)]
pub struct Users {
    /// Print JSON (the API's user objects) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: UserCommand,
}

/// A user named on the command line.
#[derive(Args, Debug)]
struct Named {
    /// The user's UUID, or their email address (which needs --site).
    user: String,
    /// The site (UUID or domain): needed to name a user by email; with a UUID, checked.
    #[arg(long)]
    site: Option<String>,
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create a user with no password and queue their verification email (as
    /// `POST /api/admin/register`); they choose a password through the link.
    Create {
        /// The site (UUID or domain); chosen from a list when stdin is a terminal.
        #[arg(long)]
        site: Option<String>,
        /// The user's email address; asked for when stdin is a terminal.
        #[arg(long)]
        email: Option<String>,
        /// The user's role.
        #[arg(long, value_enum, default_value = "user")]
        role: RoleArg,
    },
    /// List the users of a site, oldest first.
    List {
        /// The site (UUID or domain); chosen from a list when stdin is a terminal.
        #[arg(long)]
        site: Option<String>,
    },
    /// Show one user.
    Show(Named),
    /// Make a user an admin of their site, or an ordinary user (a site keeps its last admin).
    SetRole {
        #[command(flatten)]
        named: Named,
        /// The new role.
        #[arg(value_enum)]
        role: RoleArg,
    },
    /// Mark a user verified without a link; `user.verified` is sent as on verify-email.
    Verify(Named),
    /// Queue a new verification email, revoking earlier links.
    ResendVerification(Named),
    /// Delete a user; `user.deleted` is sent (refused for protected users, users of protected
    /// sites and a site's last admin).
    Delete {
        #[command(flatten)]
        named: Named,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
    /// Protect a user from deletion.
    Protect(Named),
    /// Lift a user's protection from deletion.
    Unprotect(Named),
    /// Write a site's users as JSON Lines, password hashes included (a file is created readable
    /// by its owner only); `users import` reads it back.
    Export {
        /// The site (UUID or domain); chosen from a list when stdin is a terminal.
        #[arg(long)]
        site: Option<String>,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Import users from JSON Lines or CSV (email, role, verified, password_hash, created_at):
    /// existing addresses are skipped and reported, bad lines reported with their numbers while
    /// the good ones are imported. No email is sent and no webhook fires.
    Import {
        /// The file to read.
        file: std::path::PathBuf,
        /// The site (UUID or domain); chosen from a list when stdin is a terminal.
        #[arg(long)]
        site: Option<String>,
        /// The file's format (default: from its extension, else from its first character).
        #[arg(long, value_enum)]
        format: Option<super::transfer::Format>,
        /// Check and report, but write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Users per transaction.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RoleArg {
    User,
    Admin,
}

impl RoleArg {
    fn as_str(self) -> &'static str {
        match self {
            Self::User => Role::User.as_str(),
            Self::Admin => Role::Admin.as_str(),
        }
    }
}

/// The site named by `--site`, or one picked from the list of sites.
fn site(ctx: &Context, named: Option<String>) -> Result<Site, CliError> {
    if let Some(name) = named {
        return ctx.site(&name);
    }
    if !prompt::interactive() {
        return prompt::choose(None, "--site", "", vec![], vec![]).and_then(|s| ctx.site(&s));
    }
    let sites = ctx.block(ctx.sites().list()).or_api()?;
    if sites.is_empty() {
        return Err(CliError::Failed(
            "there are no sites yet: create one with `aegis sites create`".into(),
        ));
    }
    let labels = sites
        .iter()
        .map(|s| format!("{} ({})", s.domain, s.name))
        .collect();
    let ids = sites.iter().map(|s| s.id.to_string()).collect();
    let picked = prompt::choose(None, "--site", "Site", ids, labels)?;
    ctx.site(&picked)
}

fn named(ctx: &Context, named: Named) -> Result<User, CliError> {
    let site = named.site.map(|s| ctx.site(&s)).transpose()?;
    ctx.user(&named.user, site.as_ref())
}

fn print_user(user: &User, as_json: bool) {
    if as_json {
        return output::json(&dto::user(user));
    }
    output::record(vec![
        ("uuid", user.id.to_string()),
        ("site_uuid", user.site_id.to_string()),
        ("email", user.email.to_string()),
        ("role", user.role.as_str().to_owned()),
        ("is_verified", output::yes_no(user.is_verified)),
        ("has_password", output::yes_no(user.password_hash.is_some())),
        (
            "deletion_protected",
            output::yes_no(user.deletion_protected),
        ),
        ("created_at", output::time(user.created_at)),
        ("updated_at", output::time(user.updated_at)),
    ]);
}

fn print_message(message: &str, as_json: bool) {
    if as_json {
        output::json(&dto::message(message));
    } else {
        println!("{message}");
    }
}

/// The API's verdict on an address, for inline validation of an answer.
fn check_email(value: &str) -> Result<(), String> {
    match new_user(json!({ "email": value })) {
        Ok(_) => Ok(()),
        Err(ApiError::Validation(details)) => Err(details
            .get("email")
            .map(|m| m.join(" "))
            .unwrap_or_else(|| "Invalid value".into())),
        Err(e) => Err(CliError::from(e).to_string()),
    }
}

fn set_protection(ctx: &Context, user: &User, protected: bool) -> Result<User, CliError> {
    ctx.block(ctx.accounts().set_user_protection(user.id, protected))
        .or_api()?
        .ok_or_else(|| ApiError::not_found(crate::error_map::USER_NOT_FOUND).into())
}

pub(super) fn run(ctx: &Context, users: Users) -> Result<(), CliError> {
    let as_json = users.json;
    match users.command {
        UserCommand::Create {
            site: site_name,
            email,
            role,
        } => {
            let site = site(ctx, site_name)?;
            let email = prompt::text(email, "--email", "Email address", None, check_email)?;
            let (email, role) = new_user(json!({ "email": email, "role": role.as_str() }))?;
            let user = ctx
                .block(ctx.accounts().create_by_admin(&site, &email, role))
                .or_api()?;
            tracing::info!(user = %user.id, site = %site.id, "user created");
            print_user(&user, as_json);
        }
        UserCommand::List { site: site_name } => {
            let site = site(ctx, site_name)?;
            let users = ctx.block(ctx.accounts().list_users(site.id)).or_api()?;
            if as_json {
                let views: Vec<_> = users.iter().map(dto::user).collect();
                output::json(&views);
            } else {
                let rows = users
                    .iter()
                    .map(|u| {
                        vec![
                            u.id.to_string(),
                            u.email.to_string(),
                            u.role.as_str().to_owned(),
                            output::yes_no(u.is_verified),
                            output::yes_no(u.deletion_protected),
                            output::time(u.created_at),
                        ]
                    })
                    .collect();
                output::table(
                    &["uuid", "email", "role", "verified", "protected", "created"],
                    rows,
                );
            }
        }
        UserCommand::Show(n) => print_user(&named(ctx, n)?, as_json),
        UserCommand::SetRole { named: n, role } => {
            let user = named(ctx, n)?;
            let role = Role::parse(role.as_str()).unwrap_or(Role::User);
            let user = ctx
                .block(ctx.accounts().set_user_role(user.id, role))
                .or_api()?;
            tracing::info!(user = %user.id, role = role.as_str(), "user role set");
            print_user(&user, as_json);
        }
        UserCommand::Verify(n) => {
            let user = named(ctx, n)?;
            let user = ctx
                .block(ctx.accounts().verify_by_operator(user.id))
                .or_api()?;
            tracing::info!(user = %user.id, "user verified by an operator");
            print_user(&user, as_json);
        }
        UserCommand::ResendVerification(n) => {
            let user = named(ctx, n)?;
            ctx.block(ctx.accounts().resend_verification(user.id))
                .or_api()?;
            print_message("Verification email sent successfully", as_json);
        }
        UserCommand::Delete { named: n, yes } => {
            let user = named(ctx, n)?;
            prompt::confirm(yes, &format!("Delete user {} ({})?", user.email, user.id))?;
            let user = ctx.block(ctx.accounts().delete_user(user.id)).or_api()?;
            tracing::info!(user = %user.id, site = %user.site_id, "user deleted");
            print_message(&format!("User {} deleted successfully", user.id), as_json);
        }
        UserCommand::Protect(n) => {
            let user = named(ctx, n)?;
            print_user(&set_protection(ctx, &user, true)?, as_json);
        }
        UserCommand::Unprotect(n) => {
            let user = named(ctx, n)?;
            print_user(&set_protection(ctx, &user, false)?, as_json);
        }
        UserCommand::Export {
            site: site_name,
            output,
        } => {
            let site = site(ctx, site_name)?;
            super::transfer::export(ctx, &site, output.as_deref())?;
        }
        UserCommand::Import {
            file,
            site: site_name,
            format,
            dry_run,
            batch,
        } => {
            let site = site(ctx, site_name)?;
            super::transfer::import(
                ctx,
                &site,
                &super::transfer::ImportOptions {
                    file: &file,
                    format,
                    dry_run,
                    batch,
                    as_json,
                },
            )?;
        }
    }
    Ok(())
}
