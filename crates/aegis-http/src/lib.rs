//! The Aegis HTTP service: configuration, wiring, routes and extractors.
//!
//! [`embed::Aegis`] is the library surface for Rust services that run Aegis inside their own
//! process. `main.rs` is a thin CLI over it, and the integration tests drive [`app::build`] with
//! real adapters.

#![warn(missing_docs)]

pub mod app;
pub mod cli;
pub mod client_ip;
pub mod config;
pub mod cors;
pub mod embed;
pub mod error;
pub mod error_map;
pub mod extract;
pub mod json;
pub mod local;
pub mod metrics;
pub mod openapi;
pub mod pacing;
pub mod pages;
pub mod passwords;
pub mod ratelimit;
pub mod routes;
pub mod security;
pub mod state;
pub mod telemetry;
pub mod validation;
pub mod wiring;
pub mod workers;
