//! Asking for what the command line left out, only when stdin is a terminal: values with defaults
//! and inline validation, and confirmation before anything destructive. Otherwise a missing value
//! is a usage error naming its flag.

use std::io::IsTerminal as _;

use dialoguer::{Confirm, Input, Select};

use super::CliError;

/// Whether there is someone to ask.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

fn missing(flag: &str) -> CliError {
    CliError::Usage(format!(
        "missing {flag} (stdin is not a terminal, so it cannot be asked for)"
    ))
}

fn prompt_failed(e: dialoguer::Error) -> CliError {
    CliError::Failed(format!("cannot read the answer: {e}"))
}

/// `value`, or asked for with `label` (offering `default`, re-asking until `check` passes).
pub fn text(
    value: Option<String>,
    flag: &str,
    label: &str,
    default: Option<String>,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<String, CliError> {
    if let Some(value) = value {
        return Ok(value);
    }
    if !interactive() {
        return Err(missing(flag));
    }
    let mut input = Input::<String>::new()
        .with_prompt(label)
        .validate_with(|v: &String| check(v));
    if let Some(default) = default {
        input = input.default(default);
    }
    input.interact_text().map_err(prompt_failed)
}

/// `value`, or one of `choices` picked from a list (showing `labels`).
pub fn choose(
    value: Option<String>,
    flag: &str,
    label: &str,
    choices: Vec<String>,
    labels: Vec<String>,
) -> Result<String, CliError> {
    if let Some(value) = value {
        return Ok(value);
    }
    if !interactive() {
        return Err(missing(flag));
    }
    let picked = Select::new()
        .with_prompt(label)
        .items(&labels)
        .default(0)
        .interact()
        .map_err(prompt_failed)?;
    choices
        .into_iter()
        .nth(picked)
        .ok_or_else(|| CliError::Failed("nothing was chosen".into()))
}

/// Goes on when `yes` (`--yes`) or when the operator confirms `question`; a refusal is a
/// failure, and without a terminal to ask, a usage error naming `--yes`.
pub fn confirm(yes: bool, question: &str) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    if !interactive() {
        return Err(CliError::Usage(format!(
            "{question} Pass --yes to confirm (stdin is not a terminal, so it cannot be asked)"
        )));
    }
    let confirmed = Confirm::new()
        .with_prompt(question)
        .default(false)
        .wait_for_newline(true)
        .interact()
        .map_err(prompt_failed)?;
    if confirmed {
        Ok(())
    } else {
        Err(CliError::Failed("aborted: nothing was changed".into()))
    }
}
