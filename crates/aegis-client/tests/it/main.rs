//! The client and the extractor against a real Aegis on a real database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod axum;
mod client;
mod extractor;
mod support;
