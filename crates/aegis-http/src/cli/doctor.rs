//! `aegis doctor`: one line per check, ✔ or ✘, and exit 1 when any check fails. Reads only: it
//! applies no migration and sends no email.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aegis_domain::SiteRepository as _;
use aegis_postgres::{PgPool, PgSiteRepository, PoolSettings};
use secrecy::ExposeSecret as _;
use serde::Serialize;

use super::context::runtime;
use super::output;
use crate::config::{DatabaseSource, MailTransport, Mode, Settings, check_production_secret};
use crate::local::ServiceDatabase;

/// The largest difference between this machine's clock and the database's that passes: token
/// lifetimes are computed here and compared there.
const MAX_SKEW: Duration = Duration::from_secs(2);

/// One check's outcome.
#[derive(Serialize)]
struct Check {
    check: String,
    ok: bool,
    detail: String,
}

#[derive(Default)]
struct Report(Vec<Check>);

impl Report {
    fn ok(&mut self, check: &str, detail: impl Into<String>) {
        self.push(check, true, detail);
    }

    fn fail(&mut self, check: &str, detail: impl Into<String>) {
        self.push(check, false, detail);
    }

    fn push(&mut self, check: &str, ok: bool, detail: impl Into<String>) {
        self.0.push(Check {
            check: check.to_owned(),
            ok,
            detail: detail.into(),
        });
    }

    fn print(&self, as_json: bool) -> ExitCode {
        if as_json {
            output::json(&self.0);
        } else {
            for c in &self.0 {
                println!("{} {}: {}", if c.ok { "✔" } else { "✘" }, c.check, c.detail);
            }
        }
        if self.0.iter().all(|c| c.ok) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// Settings that could not be read: the one failed check.
pub fn unreadable_configuration(error: &str, as_json: bool) -> ExitCode {
    let mut report = Report::default();
    report.fail("configuration", error);
    report.print(as_json)
}

fn secret_check(report: &mut Report, settings: &Settings, name: &str, key: Option<&str>) {
    let generated = matches!(settings.database, DatabaseSource::Managed);
    match key {
        None if generated => report.ok(
            name,
            format!(
                "generated and kept in {} (local mode)",
                settings.data_dir.display()
            ),
        ),
        None if name == "SECRET_KEY" => report.ok(
            name,
            format!(
                "generated and kept in {} (development)",
                settings.data_dir.display()
            ),
        ),
        None => report.fail(name, "not set: the master-key routes answer 500"),
        Some(key) => match check_production_secret(name, Some(&key.to_owned().into())) {
            Ok(()) => report.ok(name, "set, strong"),
            Err(e) if settings.mode == Mode::Development => {
                report.ok(name, format!("accepted in development only: {e}"));
            }
            Err(e) => report.fail(name, e.to_string()),
        },
    }
}

fn configuration(report: &mut Report, settings: &Settings) {
    let mode = match settings.mode {
        Mode::Production => "production",
        Mode::Development => "development",
    };
    report.ok("mode", format!("{mode} ({})", settings.mode_reason));
    secret_check(
        report,
        settings,
        "MASTER_API_KEY",
        settings.master_api_key.as_ref().map(|k| k.expose_secret()),
    );
    secret_check(
        report,
        settings,
        "SECRET_KEY",
        settings.secret_key.as_ref().map(|k| k.expose_secret()),
    );
    let mut contradictions = Vec::new();
    if settings.client_ip.header.is_some() && settings.client_ip.proxies.is_empty() {
        contradictions.push(
            "TRUSTED_CLIENT_IP_HEADER is set but TRUSTED_PROXIES is not: the header is believed \
             from nobody",
        );
    }
    if settings.cors_origins.is_some() && !settings.cors_extra_origins.is_empty() {
        contradictions.push("CORS_EXTRA_ORIGINS is ignored because CORS_ORIGINS replaces the set");
    }
    if settings.loki_endpoint.is_some() {
        contradictions.push(
            "LOKI_ENDPOINT is set, but Aegis does not ship logs: set LOG_FORMAT=json and \
             collect stdout",
        );
    }
    if let MailTransport::Smtp(_) = settings.mail_transport
        && (settings.mailgun_api_key.is_some() || settings.mailgun_domain.is_some())
    {
        contradictions.push("MAILGUN_* is set but mail goes over SMTP (SMTP_HOST wins)");
    }
    if contradictions.is_empty() {
        report.ok("settings", "no contradicting settings");
    } else {
        report.fail("settings", contradictions.join("; "));
    }
}

async fn mail(report: &mut Report, settings: &Settings) {
    const CHECK: &str = "mail transport";
    match &settings.mail_transport {
        MailTransport::Mailgun { api_base } => {
            let checked = match crate::wiring::mailgun_mailer(settings, api_base) {
                Ok(mailer) => mailer.check().await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match checked {
                Ok(()) => report.ok(
                    CHECK,
                    format!("Mailgun at {api_base} accepts the key for the domain"),
                ),
                Err(e) => report.fail(CHECK, format!("Mailgun at {api_base}: {e}")),
            }
        }
        MailTransport::Smtp(smtp) => {
            let target = format!("SMTP {}:{} ({})", smtp.host, smtp.port, smtp.tls);
            let checked = match crate::wiring::smtp_mailer(smtp) {
                Ok(mailer) => mailer.check().await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match checked {
                Ok(()) => report.ok(CHECK, format!("{target} answers")),
                Err(e) => report.fail(CHECK, format!("{target}: {e}")),
            }
        }
        MailTransport::Outbox(dir) => {
            let writable = std::fs::create_dir_all(dir).and_then(|()| {
                let probe = dir.join(".aegis-doctor");
                std::fs::write(&probe, b"")?;
                std::fs::remove_file(probe)
            });
            match writable {
                Ok(()) => report.ok(
                    CHECK,
                    format!("outbox: .eml files in {} (writable)", dir.display()),
                ),
                Err(e) => report.fail(CHECK, format!("outbox {}: {e}", dir.display())),
            }
        }
        MailTransport::None => report.ok(CHECK, "none: email stays queued in email_outbox"),
    }
}

/// Whether each site's webhook URL names a host that resolves (and, with
/// `WEBHOOK_BLOCK_PRIVATE_NETWORKS`, to an address that may be called).
async fn webhooks(report: &mut Report, settings: &Settings, pool: &PgPool) {
    const CHECK: &str = "webhooks";
    let sites = match PgSiteRepository::new(pool.clone()).list().await {
        Ok(sites) => sites,
        Err(e) => return report.fail(CHECK, format!("cannot read the sites: {e}")),
    };
    let mut checked = 0;
    for site in &sites {
        let Some(raw) = site.webhook_url.as_deref().filter(|u| !u.is_empty()) else {
            continue;
        };
        checked += 1;
        let name = format!("webhook of {}", site.domain);
        let Some((host, port)) = url::Url::parse(raw).ok().and_then(|u| {
            let host = u.host_str()?.trim_matches(['[', ']']).to_owned();
            Some((host, u.port_or_known_default()?))
        }) else {
            report.fail(&name, format!("{raw} is not a URL with a host"));
            continue;
        };
        let resolved = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await;
        match resolved {
            Ok(Ok(addresses)) => {
                let addresses: Vec<_> = addresses.map(|a| a.ip()).collect();
                let public = addresses.iter().any(|ip| !aegis_mailgun::is_private(*ip));
                if addresses.is_empty() {
                    report.fail(&name, format!("{host} resolves to no address"));
                } else if settings.webhook_block_private_networks && !public {
                    report.fail(
                        &name,
                        format!(
                            "{host} resolves only to private addresses, which \
                             WEBHOOK_BLOCK_PRIVATE_NETWORKS refuses"
                        ),
                    );
                } else {
                    report.ok(&name, format!("{host} resolves"));
                }
            }
            Ok(Err(e)) => report.fail(&name, format!("{host} does not resolve: {e}")),
            Err(_) => report.fail(&name, format!("{host}: no DNS answer within 5 s")),
        }
    }
    if checked == 0 {
        report.ok(CHECK, "no site has a webhook URL");
    }
}

async fn database(report: &mut Report, settings: &Settings, database: &ServiceDatabase) -> bool {
    if let Err(e) = database.ensure().await {
        report.fail("database", e.to_string());
        return false;
    }
    let pool = match aegis_postgres::build_pool(
        &database.url,
        PoolSettings {
            max_size: 2,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            shards: 1,
        },
    ) {
        Ok(pool) => pool,
        Err(e) => {
            report.fail("database", e);
            return false;
        }
    };
    // Host, port and database only: never the credentials.
    let target = url::Url::parse(&database.url)
        .ok()
        .and_then(|u| {
            Some(format!(
                "{}:{}{}",
                u.host_str()?,
                u.port().unwrap_or(5432),
                u.path()
            ))
        })
        .unwrap_or_else(|| "the configured database".into());
    match pool.get().await {
        Ok(_) => report.ok("database", format!("{target} answers")),
        Err(e) => {
            report.fail("database", format!("cannot reach {target}: {e}"));
            return false;
        }
    }
    let current = match aegis_postgres::pending_migrations(&pool).await {
        Ok(0) => {
            report.ok("migrations", "up to date");
            true
        }
        Ok(n) => {
            report.fail("migrations", format!("{n} pending: run `aegis migrate`"));
            false
        }
        Err(e) => {
            report.fail("migrations", format!("cannot read them: {e}"));
            false
        }
    };
    match aegis_postgres::database_clock(&pool).await {
        Ok(there) => {
            let here = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            let skew = here - there;
            let detail = format!("this machine is {skew:+.3} s from the database's clock");
            if skew.abs() <= MAX_SKEW.as_secs_f64() {
                report.ok("clock", detail);
            } else {
                report.fail(
                    "clock",
                    format!("{detail} (more than {} s)", MAX_SKEW.as_secs()),
                );
            }
        }
        Err(e) => report.fail("clock", format!("cannot read the database's clock: {e}")),
    }
    if current {
        webhooks(report, settings, &pool).await;
    }
    pool.close();
    true
}

/// Runs every check and prints them; exit 1 when any fails.
pub fn run(settings: &Settings, as_json: bool) -> ExitCode {
    let mut report = Report::default();
    configuration(&mut report, settings);
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            report.fail("runtime", e.to_string());
            return report.print(as_json);
        }
    };
    match ServiceDatabase::reach(settings, true) {
        Ok(db) => {
            runtime.block_on(async {
                database(&mut report, settings, &db).await;
                mail(&mut report, settings).await;
            });
            drop(runtime);
            drop(db);
        }
        Err(e) => {
            report.fail("database", e.to_string());
            runtime.block_on(mail(&mut report, settings));
        }
    }
    report.print(as_json)
}
