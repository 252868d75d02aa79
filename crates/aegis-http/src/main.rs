//! `aegis`: the Aegis authentication service.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use actix_web::{HttpServer, web};
use aegis_domain::delivery::EmailDelivery;
use aegis_domain::ratelimit::AccountKeyring;
use aegis_http::app::{self, AppConfig, AppState, Ports};
use aegis_http::config::{DatabaseSource, Mode, Settings};
use aegis_http::workers::Workers;
use aegis_http::{local, telemetry};
use aegis_postgres::{
    ConnectTarget, PgEmailOutbox, PgPool, PoolSettings, SealingKeys, build_pool, run_migrations,
};
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret as _, SecretString};
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "aegis",
    version,
    about = "Aegis: multi-tenant authentication service"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Clone, Copy, PartialEq, Eq)]
enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Exit 0 when the service on APP_PORT answers /api/health (for container health checks).
    Healthcheck,
}

fn main() -> ExitCode {
    // A `.env` in the working directory fills in variables the environment does not set.
    let _ = dotenvy::dotenv();
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("aegis: {e}");
            return ExitCode::from(2);
        }
    };
    if command == Command::Healthcheck {
        return healthcheck(settings.port);
    }
    telemetry::init(&settings);
    match run(command, settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("aegis: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, settings: Settings) -> Result<(), String> {
    tracing::info!(
        "mode: {} ({})",
        match settings.mode {
            Mode::Production => "production",
            Mode::Development => "development",
        },
        settings.mode_reason
    );
    if settings.loki_endpoint.is_some() {
        tracing::warn!(
            "LOKI_ENDPOINT is set, but Aegis does not ship logs itself: set LOG_FORMAT=json and \
             collect stdout (see docs/operations.md)"
        );
    }
    // Local mode owns the managed server for the whole run; dropping it stops the server.
    let mut local_mode = None;
    let (database_url, master_api_key) = match &settings.database {
        DatabaseSource::Url(url) => {
            warn_about_unverified_tls(&settings, url);
            (url.clone(), settings.master_api_key.clone())
        }
        DatabaseSource::Managed => {
            let mode = local::start(&settings.data_dir)?;
            let url = SecretString::from(mode.server.url(local::DATABASE));
            let admin_url = mode.server.url("postgres");
            let key = settings
                .master_api_key
                .clone()
                .unwrap_or_else(|| SecretString::from(mode.master_api_key.clone()));
            announce_local_mode(&mode, settings.master_api_key.is_none());
            local_mode = Some((mode, admin_url));
            (url, Some(key))
        }
    };
    if master_api_key.is_none() && settings.mode == Mode::Development {
        tracing::warn!("MASTER_API_KEY is not set: master-key routes will answer 500");
    }
    let (outbox_keys, account_keyring) = secret_keys(&settings)?;

    let result = actix_web::rt::System::new().block_on(async {
        if let Some((_, admin_url)) = &local_mode {
            aegis_postgres::admin::ensure_database(admin_url, local::DATABASE)
                .await
                .map_err(|e| format!("cannot create the local database: {e}"))?;
        }
        let migrated = run_migrations(database_url.expose_secret())
            .await
            .map_err(|e| e.to_string())?;
        for name in &migrated.applied {
            tracing::info!(migration = %name, "migration applied");
        }
        if let Some(report) = &migrated.email_normal_form {
            // Each row left as stored was logged as a warning, naming its site and users.
            tracing::info!(
                users = report.users_normalised,
                email_changes = report.changes_normalised,
                left_as_stored = report.unresolved.len(),
                "stored email addresses brought to their normal form"
            );
        }
        let pool = build_pool(
            database_url.expose_secret(),
            PoolSettings {
                max_size: settings.db_pool_size,
                timeout: settings.db_pool_timeout,
                ..PoolSettings::default()
            },
        )?;
        // Waiting email written by an earlier version, or under the previous SECRET_KEY, is
        // sealed under the current key before anything else runs.
        let sealed = PgEmailOutbox::new(pool.clone(), outbox_keys.clone())
            .seal_stored()
            .await
            .map_err(|e| format!("cannot seal stored email: {e}"))?;
        if sealed.sealed + sealed.resealed > 0 {
            tracing::info!(
                sealed = sealed.sealed,
                resealed = sealed.resealed,
                "stored email bodies sealed under the current SECRET_KEY"
            );
        }
        if command == Command::Migrate {
            tracing::info!(applied = migrated.applied.len(), "database is up to date");
            return Ok(());
        }
        serve(
            &settings,
            pool,
            master_api_key,
            (outbox_keys, account_keyring),
        )
        .await
    });
    drop(local_mode);
    result
}

/// The keys derived from `SECRET_KEY` (required in production; in development generated into the
/// data directory): the ones that seal queued email, and the one that names accounts in rate-limit
/// buckets and the security log.
fn secret_keys(settings: &Settings) -> Result<(SealingKeys, AccountKeyring), String> {
    let secret = match &settings.secret_key {
        Some(key) => key.expose_secret().to_owned(),
        None => local::development_secret_key(&settings.data_dir)?,
    };
    let sealing = SealingKeys::new(
        &secret,
        settings
            .secret_key_previous
            .as_ref()
            .map(|k| k.expose_secret()),
    )?;
    Ok((sealing, AccountKeyring::from_secret(&secret)))
}

/// Production over the network should check who it talks to: says so once when no `sslmode`
/// was chosen for a database on another host (a chosen one is the operator's decision).
fn warn_about_unverified_tls(settings: &Settings, url: &SecretString) {
    let Ok(target) = ConnectTarget::parse(url.expose_secret()) else {
        return;
    };
    if settings.mode == Mode::Production && !target.ssl_mode_given() && !target.is_local() {
        tracing::warn!(
            "no sslmode is set for a database on another host: TLS is used if the server offers \
             it, without checking its certificate; set sslmode=verify-full (DB_SSLMODE) and, for \
             a private CA, sslrootcert (DB_SSLROOTCERT)"
        );
    }
}

fn announce_local_mode(mode: &local::LocalMode, key_from_data_dir: bool) {
    println!(
        "Aegis local mode: PostgreSQL data in {}/postgres",
        mode.data_dir.display()
    );
    println!(
        "  (a managed server on 127.0.0.1:{}; stopped when Aegis exits)",
        mode.server.port()
    );
    if key_from_data_dir {
        let note = if mode.key_generated {
            "generated now and saved"
        } else {
            "kept"
        };
        println!(
            "  Master API key ({note} in {}/master_api_key): {}",
            mode.data_dir.display(),
            mode.master_api_key
        );
    } else {
        println!("  Master API key: from MASTER_API_KEY");
    }
}

async fn serve(
    settings: &Settings,
    pool: PgPool,
    master_api_key: Option<SecretString>,
    (outbox_keys, account_keyring): (SealingKeys, AccountKeyring),
) -> Result<(), String> {
    let ports = Ports::system(
        settings.argon2,
        settings.password_hash_pool,
        settings.webhook_block_private_networks,
    )
    .map_err(|e| format!("cannot set up the service: {e}"))?;
    let clock = ports.clock.clone();
    let state = web::Data::new(AppState::new(
        pool.clone(),
        ports,
        AppConfig {
            master_api_key,
            max_body_bytes: settings.max_content_length,
            version: app::read_version(&settings.version_file),
            accounts: settings.account_settings(),
            ratelimit_enabled: settings.ratelimit_enabled,
            client_ip: settings.client_ip.clone(),
            networks: settings.client_networks,
            account_keyring,
            cors_origins: settings.cors_origins.clone(),
            cors_extra_origins: settings.cors_extra_origins.clone(),
            outbox_keys: outbox_keys.clone(),
        },
    ));
    // Time each kind of stored password hash before its first failed login (decision 20).
    let accounts = state.accounts.clone();
    actix_web::rt::spawn(async move {
        match accounts.learn_password_costs().await {
            Ok(0) => {}
            Ok(kinds) => tracing::info!(kinds, "stored password hash costs timed"),
            Err(e) => tracing::warn!(error = %e, "stored password hash costs not timed"),
        }
    });
    let mut workers = Workers::default();
    let outbox = Arc::new(PgEmailOutbox::new(pool.clone(), outbox_keys));
    if let Some(mailer) = aegis_http::wiring::mailer(settings)? {
        workers.spawn_email(EmailDelivery::new(outbox.clone(), mailer, clock.clone()));
    }
    workers.spawn_email_housekeeping(outbox, clock);
    workers.spawn_webhooks(state.webhooks.clone());
    workers.spawn_reset_requests(state.accounts.clone());
    if let Some(limiter) = &state.limiter {
        workers.spawn_housekeeping(limiter.counters.clone(), limiter.clock.clone());
    }
    let host = settings.bind_host().to_owned();
    let server = HttpServer::new(move || app::build(state.clone()))
        .bind((host.as_str(), settings.port))
        .map_err(|e| format!("cannot listen on {host}:{}: {e}", settings.port))?
        .shutdown_timeout(30)
        // Signals are handled below, so the workers stop together with the server.
        .disable_signals()
        // A client has 10 s to send its request head; idle keep-alive connections close after 30 s.
        .client_request_timeout(Duration::from_secs(10))
        .client_disconnect_timeout(Duration::from_secs(2))
        .keep_alive(Duration::from_secs(30))
        .run();
    tracing::info!(%host, port = settings.port, "Aegis listening");
    println!("Aegis is listening on http://{host}:{}", settings.port);
    let handle = server.handle();
    let mut server = actix_web::rt::spawn(server);
    let served = tokio::select! {
        served = &mut server => Some(served),
        () = shutdown_signal() => None,
    };
    // SIGINT/SIGTERM: stop accepting connections and let in-flight requests finish (up to 30 s),
    // while the workers finish the message in hand and stop.
    let served = match served {
        Some(served) => {
            workers.stop().await;
            served
        }
        None => {
            tracing::info!("stopping: finishing in-flight requests and deliveries");
            tokio::join!(handle.stop(true), workers.stop());
            server.await
        }
    };
    pool.close();
    served
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    tracing::info!("Aegis stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match terminate.as_mut() {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminated => {}
    }
}

/// A dependency-free HTTP probe, so slim container images need no curl.
fn healthcheck(port: u16) -> ExitCode {
    let probe = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        stream.write_all(b"GET /api/health HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf)?;
        Ok(buf[..n].starts_with(b"HTTP/1.1 200") || buf[..n].starts_with(b"HTTP/1.0 200"))
    };
    match probe() {
        Ok(true) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
