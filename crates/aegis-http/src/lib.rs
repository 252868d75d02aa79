//! The Aegis HTTP service: configuration, wiring, routes and extractors.
//!
//! `main.rs` is a thin CLI over this library, and the integration tests drive [`app::build`] with
//! real adapters.

pub mod app;
pub mod client_ip;
pub mod config;
pub mod cors;
pub mod embed;
pub mod error;
pub mod error_map;
pub mod extract;
pub mod json;
pub mod local;
pub mod pacing;
pub mod passwords;
pub mod ratelimit;
pub mod routes;
pub mod security;
pub mod telemetry;
pub mod validation;
pub mod wiring;
pub mod workers;
