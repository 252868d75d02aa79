//! PostgreSQL adapters for the Aegis ports, on diesel + diesel-async + deadpool.
//!
//! - [`connect`]: opening connections, with TLS as `sslmode` asks;
//! - [`pool`]: the connection pool and the database's health;
//! - [`migrate`]: the embedded migrations, run under an advisory lock;
//! - [`email_step`]: the data step that brings stored email addresses to their normal form;
//! - [`sites`] and [`uow`]: the repository and unit-of-work ports;
//! - [`local`]: a managed PostgreSQL server in a data directory (local mode and tests);
//! - [`admin`]: database-level helpers (create a database, clone a template).

pub mod accounts;
pub mod admin;
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
pub mod sites;
pub mod uow;
pub mod webhooks;

pub use accounts::PgAccountRepository;
pub use connect::{ConnectTarget, SslMode};
pub use email_step::{EmailNormalFormReport, UnresolvedEmail};
pub use local::{LocalPostgres, LocalPostgresError, LocalPostgresOptions};
pub use migrate::{Migrated, MigrationError, run_migrations};
pub use outbox::{PgEmailOutbox, SealReport};
pub use pool::{PgConnection, PgPool, PoolSettings, build_pool};
pub use ratelimit::PgRateCounters;
pub use seal::SealingKeys;
pub use sites::PgSiteRepository;
pub use uow::PgUnitOfWork;
pub use webhooks::PgWebhookOutbox;
