//! Aegis as a library: everything the `aegis` binary runs, ready to use inside another Rust service.
//!
//! [`Aegis::start`] connects to PostgreSQL, migrates it, and wires the adapters into the domain
//! services. From there:
//! - call the services in-process ([`Aegis::accounts`], [`Aegis::sites`]);
//! - mount the whole HTTP API inside an existing actix-web `App` under a prefix of your choice
//!   ([`Aegis::configure`]);
//! - run the background workers that deliver email and webhooks and keep the tables tidy
//!   ([`Aegis::spawn_workers`]), and stop them gracefully ([`Workers::stop`]);
//! - expose its Prometheus metrics ([`Aegis::metrics`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), aegis_http::embed::StartError> {
//! use aegis_http::config::Settings;
//! use aegis_http::embed::Aegis;
//!
//! let settings = Settings::from_vars([
//!     ("DATABASE_URL", "postgres://aegis:secret@127.0.0.1/aegis"),
//!     ("AEGIS_ENV", "development"),
//!     ("MAIL_TRANSPORT", "none"),
//! ])?;
//! let aegis = Aegis::start(&settings).await?;
//! let workers = aegis.spawn_workers()?;
//! let app = actix_web::App::new().configure(aegis.configure("/auth"));
//! # drop(app);
//! workers.stop().await;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use actix_web::web;
use aegis_domain::delivery::EmailDelivery;
use aegis_domain::ratelimit::AccountKeyring;
use aegis_domain::service::accounts::AccountService;
use aegis_domain::{Clock, SiteService};
use aegis_postgres::{PgEmailOutbox, PgPool, PoolSettings, SealingKeys, build_pool};
use secrecy::ExposeSecret as _;

use crate::app::{self, AppConfig, AppState, Ports};
use crate::config::{ConfigError, DatabaseSource, Settings};
use crate::metrics::Metrics;
use crate::workers::Workers;

/// Why Aegis could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The settings are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The settings name no database: the managed local PostgreSQL is the binary's own (local
    /// mode); a library user passes `DATABASE_URL` or the `DB_*` variables.
    #[error("no database is configured: set DATABASE_URL or the DB_* variables")]
    NoDatabase,
    /// Migrating, connecting or setting up failed.
    #[error("{0}")]
    Setup(String),
}

/// A running Aegis: its services, its HTTP API and its workers, on one connection pool.
pub struct Aegis {
    state: web::Data<AppState>,
    pool: PgPool,
    outbox: Arc<PgEmailOutbox>,
    clock: Arc<dyn Clock>,
    settings: Settings,
}

impl Aegis {
    /// Connects to the database the settings name, applies pending migrations (under an
    /// advisory lock, so instances can start together), seals email an earlier version left in
    /// plaintext, and wires everything. `SECRET_KEY` must be set (in development a missing one is
    /// refused here, unlike the binary's local mode, which keeps one in its data directory).
    pub async fn start(settings: &Settings) -> Result<Self, StartError> {
        let DatabaseSource::Url(url) = &settings.database else {
            return Err(StartError::NoDatabase);
        };
        let secret = settings
            .secret_key
            .as_ref()
            .map(|k| k.expose_secret().to_owned())
            .ok_or_else(|| StartError::Setup("SECRET_KEY is not set".into()))?;
        Self::start_with(settings, url.expose_secret(), &secret).await
    }

    /// [`Self::start`] on an explicit database URL and secret (the binary's local mode passes the
    /// managed server's URL and the key from its data directory).
    pub async fn start_with(
        settings: &Settings,
        database_url: &str,
        secret: &str,
    ) -> Result<Self, StartError> {
        let setup = StartError::Setup;
        let migrated = aegis_postgres::run_migrations(database_url)
            .await
            .map_err(|e| setup(e.to_string()))?;
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
            database_url,
            PoolSettings {
                max_size: settings.db_pool_size,
                timeout: settings.db_pool_timeout,
                // One sub-pool per HTTP worker (actix-web starts one per core) and one for the
                // background tasks, which run on the thread that starts the service.
                shards: std::thread::available_parallelism().map_or(2, usize::from) + 1,
                ..PoolSettings::default()
            },
        )
        .map_err(setup)?;
        let outbox_keys = SealingKeys::new(
            secret,
            settings
                .secret_key_previous
                .as_ref()
                .map(|k| k.expose_secret()),
        )
        .map_err(setup)?;
        // Waiting email written by an earlier version, or under the previous SECRET_KEY, is
        // sealed under the current key before anything else runs.
        let outbox = Arc::new(PgEmailOutbox::new(pool.clone(), outbox_keys.clone()));
        let sealed = outbox
            .seal_stored()
            .await
            .map_err(|e| setup(format!("cannot seal stored email: {e}")))?;
        if sealed.sealed + sealed.resealed > 0 {
            tracing::info!(
                sealed = sealed.sealed,
                resealed = sealed.resealed,
                "stored email bodies sealed under the current SECRET_KEY"
            );
        }
        let ports = Ports::system(
            settings.argon2,
            settings.password_hash_pool,
            settings.webhook_block_private_networks,
        )
        .map_err(|e| setup(format!("cannot set up the service: {e}")))?;
        let clock = ports.clock.clone();
        let state = web::Data::new(AppState::new(
            pool.clone(),
            ports,
            AppConfig {
                master_api_key: settings.master_api_key.clone(),
                max_body_bytes: settings.max_content_length,
                version: app::read_version(&settings.version_file),
                accounts: settings.account_settings(),
                ratelimit_enabled: settings.ratelimit_enabled,
                openapi_enabled: settings.openapi_enabled,
                client_ip: settings.client_ip.clone(),
                networks: settings.client_networks,
                account_keyring: AccountKeyring::from_secret(secret),
                cors_origins: settings.cors_origins.clone(),
                cors_extra_origins: settings.cors_extra_origins.clone(),
                outbox_keys,
                pages: crate::pages::PagesConfig::new(secret, settings.hosted_pages_url.clone()),
                token_cache: settings.token_cache,
            },
        ));
        Ok(Self {
            state,
            pool,
            outbox,
            clock,
            settings: settings.clone(),
        })
    }

    /// Accounts and sessions: register, verify, login, authenticate a bearer token, refresh,
    /// password and email changes, user administration.
    pub fn accounts(&self) -> &AccountService {
        &self.state.accounts
    }

    /// Sites (tenants): create, list, update, delete.
    pub fn sites(&self) -> &SiteService {
        &self.state.sites
    }

    /// The state the HTTP handlers share, for [`app::build`] or your own handlers.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Aegis's Prometheus metrics: installs the recorder as the process's global `metrics`
    /// recorder (once per process) and returns what renders them, to serve on a listener of
    /// your own ([`Metrics::render`]) or on `addr` ([`Metrics::serve`], as the binary does with
    /// `METRICS_ADDR`). `None` when the application installed a `metrics` recorder of its own
    /// first: Aegis's metrics are then recorded there, under the same names.
    pub fn metrics(&self) -> Option<Metrics> {
        let handle = crate::metrics::install()?;
        Some(
            Metrics::new(handle, self.pool.clone(), &self.state.version)
                .with_token_cache(self.state.token_cache.clone()),
        )
    }

    /// Mounts the whole API under `prefix` (say `/auth`, giving `/auth/api/auth/login`; `""` for
    /// the paths the binary serves) inside an existing `App`, with its JSON errors, CORS, security
    /// headers, body limit and request log applied to its routes only:
    /// `App::new().configure(aegis.configure("/auth"))`. The function can be cloned into every
    /// worker's `App` of an `HttpServer`.
    pub fn configure(&self, prefix: &str) -> impl Fn(&mut web::ServiceConfig) + Clone + use<> {
        let state = self.state.clone();
        let prefix = prefix.trim_end_matches('/').to_owned();
        move |cfg| {
            cfg.service(app::scope(&prefix, state.clone()));
        }
    }

    /// Starts the background workers: email delivery (when a transport is configured), webhook
    /// delivery, password-reset requests, and housekeeping. Also times the kinds of stored
    /// password hashes once (decision 41). Call inside a Tokio runtime (actix's is one).
    pub fn spawn_workers(&self) -> Result<Workers, StartError> {
        let accounts = self.state.accounts.clone();
        tokio::spawn(async move {
            match accounts.learn_password_costs().await {
                Ok(0) => {}
                Ok(kinds) => tracing::info!(kinds, "stored password hash costs timed"),
                Err(e) => tracing::warn!(error = %e, "stored password hash costs not timed"),
            }
        });
        let mut workers = Workers::default();
        if let Some(mailer) = crate::wiring::mailer(&self.settings).map_err(StartError::Setup)? {
            workers.spawn_email(EmailDelivery::new(
                self.outbox.clone(),
                mailer,
                self.clock.clone(),
            ));
        }
        workers.spawn_email_housekeeping(self.outbox.clone(), self.clock.clone());
        workers.spawn_webhooks(self.state.webhooks.clone());
        workers.spawn_reset_requests(self.state.accounts.clone());
        workers.spawn_metrics_refresh(self.pool.clone(), self.clock.clone());
        if let Some(limiter) = &self.state.limiter {
            workers.spawn_housekeeping(limiter.counters.clone(), limiter.clock.clone());
        }
        Ok(workers)
    }
}
