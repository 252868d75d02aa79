//! The HTTP API through the real application, real adapters and a real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod adoption;
mod auth;
mod cli;
mod cors;
mod crash;
mod credentials;
mod database_down;
mod delivery;
mod email_input;
mod embedding;
mod framework;
mod health;
mod master_key;
mod outage;
mod races;
mod ratelimits;
mod security_log;
mod service;
mod sites;
mod support;
mod sweep;
mod users;
mod webhooks;
