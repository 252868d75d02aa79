//! The Aegis domain: multi-tenant sites, users and tokens, the ports the service needs from the
//! outside world, and the services that implement the use cases.
//!
//! This crate is pure: it performs no I/O and depends on no database, HTTP or async-runtime crate.
//! Adapters (`aegis-postgres`, `aegis-mailgun`) implement its ports; `aegis-http` wires them.
//! Rust services that embed Aegis can use the services here with their own adapters.

pub mod clock;
pub mod delivery;
pub mod ids;
pub mod mail;
pub mod password;
pub mod ratelimit;
pub mod repo;
pub mod secrets;
pub mod service;
pub mod site;
pub mod templates;
pub mod timing;
pub mod token;
pub mod user;
pub mod validation;
pub mod webhook;
pub mod webhook_delivery;

pub use clock::{Clock, ManualClock, SystemClock, UnixTime};
pub use ids::{SiteId, UserId, parse_identifier};
pub use mail::{MailError, Mailer, OutgoingEmail, redact_email};
pub use repo::{RepoError, SiteRepository, SiteTxRepository, Transaction, UnitOfWork};
pub use secrets::{RandomSecretGenerator, SecretGenerator, secret_eq, sha256_hex};
pub use service::sites::{CreateSiteError, DeleteSiteError, SiteService, UpdateSiteError};
pub use site::{NewSite, Site, SitePatch};
