//! The operator CLI on the `aegis` binary: `aegis sites …` and `aegis users …`.
//!
//! Each command reads the configuration `serve` reads ([`Settings`]), reaches the same database
//! (in local mode the managed PostgreSQL, reusing the server of a running `aegis serve`), and
//! calls the same domain services through [`crate::embed::Aegis`], with the API's validation and
//! the API's error texts ([`crate::error_map`]). It serves no HTTP and runs no workers: email and
//! webhooks are queued in the outboxes, and the service's workers deliver them.
//!
//! Exit codes: 0 success, 1 failure (refused by the service's rules, not found, database
//! unreachable, aborted at a confirmation), 2 usage (clap's errors, and a value that is missing
//! while stdin is not a terminal to ask for it).

use std::process::ExitCode;

use crate::config::Settings;
use crate::error::ApiError;

mod context;
pub mod doctor;
mod mail;
mod output;
mod prompt;
mod sites;
mod transfer;
mod users;

pub use context::Context;
pub use mail::Mail;
pub use sites::Sites;
pub use users::Users;

/// Why a command did not succeed.
#[derive(Debug)]
pub enum CliError {
    /// Exit 2: the command line lacks something and it could not be asked for.
    Usage(String),
    /// Exit 1: the command ran and failed; the text is what the API would answer.
    Failed(String),
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) => ExitCode::from(2),
            Self::Failed(_) => ExitCode::FAILURE,
        }
    }

    fn message(&self) -> &str {
        match self {
            Self::Usage(m) | Self::Failed(m) => m,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// A field name of the API as the CLI spells its flag (`email_from` → `--email-from`).
fn flag_name(field: &str) -> String {
    if field.starts_with('_') {
        return field.to_owned();
    }
    format!("--{}", field.replace('_', "-"))
}

impl From<ApiError> for CliError {
    /// The API's text for the error, on one line. Validation errors name the flags.
    fn from(e: ApiError) -> Self {
        let text = match e {
            ApiError::Validation(details) => {
                let fields: Vec<String> = details
                    .iter()
                    .map(|(field, messages)| {
                        format!("{}: {}", flag_name(field), messages.join(" "))
                    })
                    .collect();
                format!("Validation error: {}", fields.join("; "))
            }
            ApiError::Client(_, message) => message.to_owned(),
            ApiError::ClientOwned(_, message) => message,
            ApiError::Conflict { message, .. } => message,
            ApiError::Internal { message, cause } => format!("{message}: {cause}"),
            ApiError::Unavailable => format!(
                "{}: the database cannot be reached",
                crate::error::UNAVAILABLE
            ),
        };
        Self::Failed(text)
    }
}

/// A domain outcome as the CLI reports it: through the API's error map.
trait OrApi<T> {
    fn or_api(self) -> Result<T, CliError>;
}

impl<T, E: Into<ApiError>> OrApi<T> for Result<T, E> {
    fn or_api(self) -> Result<T, CliError> {
        self.map_err(|e| CliError::from(e.into()))
    }
}

/// An operator command.
pub enum Admin {
    /// `aegis sites …`.
    Sites(Box<Sites>),
    /// `aegis users …`.
    Users(Users),
    /// `aegis mail …`.
    Mail(Mail),
}

/// Runs an operator command and reports its failure on stderr, as one line.
pub fn run(settings: Settings, command: Admin) -> ExitCode {
    let result = match command {
        Admin::Sites(c) => Context::open(&settings).and_then(|ctx| sites::run(&ctx, *c)),
        Admin::Users(c) => Context::open(&settings).and_then(|ctx| users::run(&ctx, c)),
        Admin::Mail(c) => mail::run(&settings, c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aegis: {}", e.message());
            e.exit_code()
        }
    }
}
