//! PostgreSQL adapters for the Aegis ports, on diesel + diesel-async + deadpool.
//!
//! - [`connect`]: opening connections, with TLS as `sslmode` asks;
//! - [`pool`]: the connection pool and the database's health;
//! - [`migrate`]: the embedded migrations, run under an advisory lock;
//! - [`email_step`]: the data step that brings stored email addresses to their normal form;
//! - [`sites`] and [`uow`]: the repository and unit-of-work ports;
//! - [`local`]: a managed PostgreSQL server in a data directory (local mode and tests);
//! - [`admin`]: database-level helpers (create a database, clone a template);
//! - [`backlog`]: how much email and how many webhooks wait, for metrics;
//! - [`token_cache`] and [`token_listener`]: the in-process cache of bearer checks and the
//!   `LISTEN` connection that invalidates it.
//!
//! The repositories, the unit of work, the outboxes and the rate counters all share one
//! [`PgPool`]. Build the [`PgUnitOfWork`] and the [`PgEmailOutbox`] with the same
//! [`SealingKeys`]: the first seals queued email bodies, the second opens them.
//!
//! # Example
//!
//! Migrating, then wiring the site service of `aegis-domain` to PostgreSQL:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use aegis_domain::{RandomSecretGenerator, SiteService, SystemClock};
//! use aegis_postgres::{
//!     PgSiteRepository, PgUnitOfWork, PoolSettings, SealingKeys, build_pool, run_migrations,
//! };
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "postgres://aegis@db.internal/aegis?sslmode=verify-full";
//! // Safe to run from every instance at start-up: they take turns under an advisory lock.
//! let migrated = run_migrations(url).await?;
//! println!("{} migrations applied", migrated.applied.len());
//!
//! // Opens no connection yet, so it succeeds while the database is down.
//! let pool = build_pool(url, PoolSettings::default())?;
//! let keys = SealingKeys::new("the service's SECRET_KEY", None)?;
//! let sites = SiteService::new(
//!     Arc::new(PgSiteRepository::new(pool.clone())),
//!     Arc::new(PgUnitOfWork::new(pool.clone(), keys)),
//!     Arc::new(SystemClock),
//!     Arc::new(RandomSecretGenerator),
//! );
//! for site in sites.list().await? {
//!     println!("{} {}", site.id, site.domain);
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod accounts;
pub mod admin;
pub mod backlog;
mod batch;
pub mod connect;
pub mod email_step;
mod error;
pub mod local;
pub mod migrate;
pub mod outbox;
pub mod pool;
pub mod ratelimit;
mod schema;
pub mod seal;
mod session;
pub mod sites;
pub mod token_cache;
pub mod token_listener;
pub mod uow;
pub mod webhooks;

pub use accounts::PgAccountRepository;
pub use connect::{ConnectTarget, SslMode};
pub use email_step::{EmailNormalFormReport, UnresolvedEmail};
pub use local::{LocalPostgres, LocalPostgresError, LocalPostgresOptions};
pub use migrate::{Migrated, MigrationError, database_clock, pending_migrations, run_migrations};
pub use outbox::{PgEmailOutbox, SealReport};
pub use pool::{PgConnection, PgPool, PoolSettings, PoolStatus, build_pool};
pub use ratelimit::PgRateCounters;
pub use seal::SealingKeys;
pub use sites::PgSiteRepository;
pub use token_cache::{CachedAccountRepository, TokenCache, TokenCacheSettings};
pub use token_listener::TokenListener;
pub use uow::PgUnitOfWork;
pub use webhooks::PgWebhookOutbox;
