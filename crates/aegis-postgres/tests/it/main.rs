//! The PostgreSQL adapters against a real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod migrations;
mod outbox;
mod sites;
mod tls;

use aegis_postgres::{PgPool, PoolSettings, build_pool};

/// Sealing keys for tests.
pub fn keys() -> aegis_postgres::SealingKeys {
    aegis_postgres::SealingKeys::new("test-secret-key-0123456789abcdef0123456789", None).unwrap()
}

pub fn pool(url: &str) -> PgPool {
    build_pool(url, PoolSettings::default()).unwrap()
}
mod ratelimit;
