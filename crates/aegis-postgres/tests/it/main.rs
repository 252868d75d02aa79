//! The PostgreSQL adapters against a real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod migrations;
mod sites;

use aegis_postgres::{PgPool, PoolSettings, build_pool};

pub fn pool(url: &str) -> PgPool {
    build_pool(url, PoolSettings::default()).unwrap()
}
mod ratelimit;
