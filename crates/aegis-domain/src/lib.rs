//! The Aegis domain: multi-tenant sites, users and tokens, the ports the service needs from the
//! outside world, and the services that implement the use cases.
//!
//! This crate is pure: it performs no I/O and depends on no database, HTTP or async-runtime crate.
//! Adapters (`aegis-postgres`, `aegis-mailgun`) implement its ports; `aegis-http` wires them.
//! Rust services that embed Aegis can use the services here with their own adapters.
//!
//! # Layout
//!
//! - Values parsed once at the edge: [`SiteId`] and [`UserId`] ([`parse_identifier`]),
//!   [`user::Email`] (the normal form of an address), [`user::PlainPassword`], [`user::Role`].
//! - Records: [`Site`], [`user::User`], the [`token`] types.
//! - Ports, the traits adapters implement: storage ([`repo`]: [`SiteRepository`], [`UnitOfWork`]
//!   and the repositories inside a [`Transaction`]), [`Mailer`], [`password::PasswordHasher`],
//!   [`ratelimit::RateCounters`], the delivery outboxes ([`delivery::EmailOutbox`],
//!   [`webhook_delivery::WebhookOutbox`]) and [`webhook_delivery::WebhookSender`], and the
//!   [`Clock`] and [`SecretGenerator`] that tests pin.
//! - Use cases: [`SiteService`] and [`service::accounts::AccountService`], plus the delivery
//!   workers [`delivery::EmailDelivery`] and [`webhook_delivery::WebhookDelivery`].
//! - Policy as pure functions: [`ratelimit`] (which buckets a request counts against, and what the
//!   counts mean), [`validation`] (field rules and their exact messages), [`templates`] (the
//!   account emails).
//!
//! Every error enum names the outcomes a caller must tell apart; storage failures arrive as
//! [`RepoError`], kept in the error's source chain so that an outage
//! ([`RepoError::Unavailable`]) can be told from a fault.
//!
//! With the `mocks` feature, every port marked for it also has a `mockall` mock (`MockClock`,
//! `MockMailer`, …) for the tests of code built on this crate.
//!
//! # Example
//!
//! Parsing what a client sent, comparing a key, naming a client's network for the rate limits,
//! and hashing a password:
//!
//! ```
//! use aegis_domain::password::{Argon2Settings, PasswordAlgorithms, Verification};
//! use aegis_domain::ratelimit::{ClientNetwork, NetworkPrefixes, Rate};
//! use aegis_domain::user::{Email, PlainPassword};
//! use aegis_domain::{SiteId, secret_eq, sha256_hex};
//!
//! // Identifiers and addresses are parsed once; afterwards they cannot be invalid.
//! let site = SiteId::parse("{0192F1B4-5A6E-7C3D-8E9F-0A1B2C3D4E5F}").expect("a UUID");
//! assert_eq!(site.to_string(), "0192f1b4-5a6e-7c3d-8e9f-0a1b2c3d4e5f");
//! assert!(SiteId::parse("42").is_none());
//!
//! let email = Email::parse("Grace.Hopper@Example.COM").expect("a valid address");
//! assert_eq!(email.as_str(), "grace.hopper@example.com");
//!
//! // Keys are compared in constant time; tokens are stored only as digests.
//! assert!(secret_eq(b"tenant-key", b"tenant-key"));
//! assert!(!secret_eq(b"tenant-key", b"tenant-kez"));
//! assert_eq!(sha256_hex("abc").len(), 64);
//!
//! // Rate limits count per client network: an IPv6 client is one /64.
//! let prefixes = NetworkPrefixes::default();
//! let client = ClientNetwork::of("2001:db8::7".parse().unwrap(), prefixes);
//! assert_eq!(client.to_string(), "2001:db8::/64");
//! assert_eq!(Rate::per_minute(10).describe(), "10 per 1 minute");
//!
//! // Passwords: Argon2id, here at tiny test costs.
//! let algorithms =
//!     PasswordAlgorithms::new(Argon2Settings { memory_kib: 64, iterations: 1, parallelism: 1 })?;
//! let password = PlainPassword::new("correct horse battery staple".to_owned());
//! let stored = algorithms.hash(&password)?;
//! assert_eq!(
//!     algorithms.verify(&password, Some(&stored)),
//!     Verification::Match { needs_rehash: false },
//! );
//! # Ok::<(), aegis_domain::password::HashError>(())
//! ```

#![warn(missing_docs)]

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
