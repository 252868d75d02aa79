//! `aegis users export` and `aegis users import`: a site's users as JSON Lines (with their
//! password hashes), and users brought in from JSON Lines or CSV, in batched transactions.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use aegis_domain::password::is_verifiable_hash;
use aegis_domain::service::users::{Imported, ImportedUser};
use aegis_domain::site::Site;
use aegis_domain::user::Role;
use aegis_domain::validation::msg;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::context::Context;
use super::{CliError, OrApi as _, output};
use crate::error::ApiError;
use crate::validation::Schema;

/// The fields of a record, exported and imported.
const FIELDS: &[&str] = &["email", "role", "verified", "password_hash", "created_at"];

/// One user as exported: what an import reads back.
#[derive(Serialize, Deserialize)]
struct Record {
    email: String,
    role: String,
    verified: bool,
    password_hash: Option<String>,
    created_at: i64,
}

/// An import file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// A header line naming the columns, then one user per line.
    Csv,
}

/// Writes every user of `site` as JSON Lines to `output` (created readable by its owner only:
/// it holds password hashes), or to stdout.
pub fn export(ctx: &Context, site: &Site, output: Option<&Path>) -> Result<(), CliError> {
    let users = ctx.block(ctx.accounts().list_users(site.id)).or_api()?;
    let mut text = String::new();
    for u in &users {
        let record = Record {
            email: u.email.to_string(),
            role: u.role.as_str().to_owned(),
            verified: u.is_verified,
            password_hash: u.password_hash.clone(),
            created_at: u.created_at,
        };
        let line = serde_json::to_string(&record)
            .map_err(|e| CliError::Failed(format!("cannot write JSON: {e}")))?;
        text.push_str(&line);
        text.push('\n');
    }
    match output {
        None => print!("{text}"),
        Some(path) => {
            let failed = |e: std::io::Error| {
                CliError::Failed(format!("cannot write {}: {e}", path.display()))
            };
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .map_err(failed)?;
            file.write_all(text.as_bytes()).map_err(failed)?;
            eprintln!(
                "{} users of {} written to {}",
                users.len(),
                site.domain,
                path.display()
            );
        }
    }
    Ok(())
}

/// A record of the file, as the JSON object it is or stands for, with its line number.
struct Line {
    number: usize,
    value: Result<Value, String>,
}

fn jsonl(text: &str) -> Vec<Line> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| Line {
            number: i + 1,
            value: serde_json::from_str::<Value>(l).map_err(|e| format!("not JSON: {e}")),
        })
        .collect()
}

fn csv(text: &str) -> Result<Vec<Line>, CliError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| CliError::Failed(format!("line 1: cannot read the header: {e}")))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    if let Some(unknown) = header.iter().find(|h| !FIELDS.contains(&h.as_str())) {
        return Err(CliError::Failed(format!(
            "line 1: unknown column {unknown:?} (the columns are {})",
            FIELDS.join(", ")
        )));
    }
    let mut lines = Vec::new();
    for record in reader.records() {
        let (number, value) = match record {
            Ok(record) => {
                let number = record.position().map_or(0, |p| p.line() as usize);
                if record.len() != header.len() {
                    let message = format!(
                        "{} columns where the header has {}",
                        record.len(),
                        header.len()
                    );
                    (number, Err(message))
                } else {
                    let mut object = Map::new();
                    for (column, cell) in header.iter().zip(record.iter()) {
                        if cell.is_empty() {
                            continue;
                        }
                        let value = match column.as_str() {
                            "verified" => match cell {
                                "true" => Value::Bool(true),
                                "false" => Value::Bool(false),
                                other => Value::String(other.to_owned()),
                            },
                            "created_at" => cell
                                .parse::<i64>()
                                .map_or_else(|_| Value::String(cell.to_owned()), Value::from),
                            _ => Value::String(cell.to_owned()),
                        };
                        object.insert(column.clone(), value);
                    }
                    (number, Ok(Value::Object(object)))
                }
            }
            Err(e) => (
                e.position().map_or(0, |p| p.line() as usize),
                Err(e.to_string()),
            ),
        };
        lines.push(Line { number, value });
    }
    Ok(lines)
}

/// A record → an [`ImportedUser`], with the API's messages for what is wrong.
fn user(value: Value) -> Result<ImportedUser, String> {
    let mut value = value;
    let created_at = match value.as_object_mut().and_then(|o| o.remove("created_at")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(()),
        Some(_) => Err(()),
    };
    let mut s = Schema::new(value, FIELDS).map_err(describe)?;
    let email = s.required_email("email");
    let role = match s.optional_str("role", &[]) {
        None => Some(Role::User),
        Some(raw) => Role::parse(&raw).or_else(|| {
            s.fail("role", msg::ROLE);
            None
        }),
    };
    let verified = s.strict_bool("verified").unwrap_or(false);
    let password_hash = s.nullable_str("password_hash", &[]).flatten();
    if let Some(hash) = &password_hash
        && !is_verifiable_hash(hash)
    {
        s.fail("password_hash", "Not a bcrypt or Argon2 hash.");
    }
    if created_at.is_err() {
        s.fail("created_at", "Not a valid integer.");
    }
    s.finish().map_err(describe)?;
    match (email, role) {
        (Some(email), Some(role)) => Ok(ImportedUser {
            email,
            role,
            verified,
            password_hash,
            created_at: created_at.unwrap_or(None),
        }),
        _ => Err("Validation error".into()),
    }
}

/// An API error as a line of the report.
fn describe(e: ApiError) -> String {
    match e {
        ApiError::Validation(details) => {
            let fields: Vec<String> = details
                .iter()
                .map(|(f, m)| format!("{f}: {}", m.join(" ")))
                .collect();
            format!("Validation error: {}", fields.join("; "))
        }
        other => CliError::from(other).to_string(),
    }
}

#[derive(Serialize, Default)]
struct Report {
    dry_run: bool,
    created: usize,
    existing: Vec<Existing>,
    refused: Vec<Refused>,
}

#[derive(Serialize)]
struct Existing {
    line: usize,
    email: String,
}

#[derive(Serialize)]
struct Refused {
    line: usize,
    error: String,
}

/// Options of an import.
pub struct ImportOptions<'a> {
    /// The file.
    pub file: &'a Path,
    /// Its format; from the extension or the first character when `None`.
    pub format: Option<Format>,
    /// Roll every batch back.
    pub dry_run: bool,
    /// Users per transaction.
    pub batch: usize,
    /// `--json`.
    pub as_json: bool,
}

/// Imports the file into `site`: bad lines are reported with their numbers while the good ones
/// are imported, batch by batch; exit 1 when any line was refused.
pub fn import(ctx: &Context, site: &Site, options: &ImportOptions<'_>) -> Result<(), CliError> {
    let path = options.file;
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Failed(format!("cannot read {}: {e}", path.display())))?;
    let format = options.format.unwrap_or_else(|| {
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if extension.eq_ignore_ascii_case("csv") {
            Format::Csv
        } else if extension.eq_ignore_ascii_case("jsonl")
            || extension.eq_ignore_ascii_case("ndjson")
            || text.trim_start().starts_with('{')
        {
            Format::Jsonl
        } else {
            Format::Csv
        }
    });
    let lines = match format {
        Format::Jsonl => jsonl(&text),
        Format::Csv => csv(&text)?,
    };
    let mut report = Report {
        dry_run: options.dry_run,
        ..Report::default()
    };
    let mut good = Vec::new();
    for line in lines {
        match line.value.and_then(user) {
            Ok(u) => good.push((line.number, u)),
            Err(error) => report.refused.push(Refused {
                line: line.number,
                error,
            }),
        }
    }
    let progress = indicatif::ProgressBar::new(good.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} users {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    for chunk in good.chunks(options.batch.max(1)) {
        let users: Vec<ImportedUser> = chunk.iter().map(|(_, u)| u.clone()).collect();
        let outcomes = ctx
            .block(ctx.accounts().import_users(site, &users, options.dry_run))
            .or_api()?;
        for ((number, user), outcome) in chunk.iter().zip(outcomes) {
            match outcome {
                Imported::Created => report.created += 1,
                Imported::Exists => report.existing.push(Existing {
                    line: *number,
                    email: user.email.to_string(),
                }),
            }
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();
    if options.as_json {
        output::json(&report);
    } else {
        for e in &report.existing {
            println!("line {}: {} already exists: skipped", e.line, e.email);
        }
        for r in &report.refused {
            eprintln!("line {}: {}", r.line, r.error);
        }
        let verb = if options.dry_run {
            "would be created (dry run: nothing was written)"
        } else {
            "created"
        };
        println!(
            "{} users {verb}, {} already existed, {} lines refused",
            report.created,
            report.existing.len(),
            report.refused.len()
        );
    }
    if report.refused.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{} lines of {} were refused",
            report.refused.len(),
            path.display()
        )))
    }
}
