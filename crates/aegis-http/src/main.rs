//! `aegis`: the Aegis authentication service.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use actix_web::HttpServer;
use aegis_http::app;
use aegis_http::config::{DatabaseSource, Mode, Settings};
use aegis_http::embed::Aegis;
use aegis_http::{cli, local, telemetry};
use aegis_postgres::ConnectTarget;
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret as _, SecretString};

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

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Exit 0 when the service on APP_PORT answers /api/health (for container health checks).
    Healthcheck {
        /// Ask /api/health/ready instead: the database answers and is migrated.
        #[arg(long)]
        ready: bool,
    },
    /// Manage sites (tenants): create, list, show, update, delete, rotate keys.
    Sites(Box<cli::Sites>),
    /// Manage the users of a site: create, list, show, set-role, verify, resend-verification,
    /// delete, protect, unprotect.
    Users(cli::Users),
    /// The mail transport: `aegis mail test --to ADDRESS` sends a test email now.
    Mail(cli::Mail),
    /// Check the configuration, the database, the mail transport, webhook hosts and the clock:
    /// one line per check, exit 1 when any fails.
    Doctor {
        /// Print the checks as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // A `.env` in the working directory fills in variables the environment does not set.
    let _ = dotenvy::dotenv();
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) if matches!(command, Command::Doctor { .. }) => {
            let Command::Doctor { json } = command else {
                return ExitCode::FAILURE;
            };
            return cli::doctor::unreadable_configuration(&e.to_string(), json);
        }
        Err(e) => {
            eprintln!("aegis: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::Healthcheck { ready } = command {
        return healthcheck(
            settings.port,
            if ready {
                "/api/health/ready"
            } else {
                "/api/health"
            },
        );
    }
    let command = match command {
        Command::Sites(c) => return admin(settings, cli::Admin::Sites(c)),
        Command::Users(c) => return admin(settings, cli::Admin::Users(c)),
        Command::Mail(c) => return admin(settings, cli::Admin::Mail(c)),
        Command::Doctor { json } => {
            telemetry::init_cli(&settings);
            return cli::doctor::run(&settings, json);
        }
        other => other,
    };
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

/// The operator commands: logs (warnings only) on stderr, output on stdout.
fn admin(settings: Settings, command: cli::Admin) -> ExitCode {
    telemetry::init_cli(&settings);
    cli::run(settings, command)
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
    let database = local::ServiceDatabase::reach(&settings, false)?;
    let master_api_key = match &database.started {
        Some(mode) => {
            announce_local_mode(mode, settings.master_api_key.is_none());
            Some(
                settings
                    .master_api_key
                    .clone()
                    .unwrap_or_else(|| SecretString::from(mode.master_api_key.clone())),
            )
        }
        None => {
            if let DatabaseSource::Url(url) = &settings.database {
                warn_about_unverified_tls(&settings, url);
            }
            settings.master_api_key.clone()
        }
    };
    if master_api_key.is_none() && settings.mode == Mode::Development {
        tracing::warn!("MASTER_API_KEY is not set: master-key routes will answer 500");
    }
    let settings = Settings {
        master_api_key,
        ..settings
    };

    let result = actix_web::rt::System::new().block_on(async {
        database.ensure().await?;
        let aegis = Aegis::start_with(&settings, &database.url, &database.secret)
            .await
            .map_err(|e| e.to_string())?;
        if matches!(command, Command::Migrate) {
            tracing::info!("database is up to date");
            return Ok(());
        }
        serve(&settings, aegis).await
    });
    drop(database);
    result
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

async fn serve(settings: &Settings, aegis: Aegis) -> Result<(), String> {
    // The metrics listener first, so the workers' first counts are recorded.
    let metrics_server = match &settings.metrics_addr {
        Some(addr) => {
            let metrics = aegis
                .metrics()
                .ok_or("cannot install the metrics recorder: another one is installed")?;
            let server = metrics
                .serve(addr)
                .map_err(|e| format!("cannot listen on {addr} (METRICS_ADDR): {e}"))?;
            tracing::info!(%addr, "metrics at /metrics");
            let handle = server.handle();
            actix_web::rt::spawn(server);
            Some(handle)
        }
        None => None,
    };
    let workers = aegis.spawn_workers().map_err(|e| e.to_string())?;
    let state = aegis.state();
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
    if let Some(metrics) = metrics_server {
        metrics.stop(false).await;
    }
    aegis.pool().close();
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

/// A dependency-free HTTP probe of `path` (liveness or readiness), so slim container images need
/// no curl.
fn healthcheck(port: u16, path: &str) -> ExitCode {
    let probe = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf)?;
        Ok(buf[..n].starts_with(b"HTTP/1.1 200") || buf[..n].starts_with(b"HTTP/1.0 200"))
    };
    match probe() {
        Ok(true) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
