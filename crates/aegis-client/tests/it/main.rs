//! The client and the extractor against a real Aegis on a real database.

mod client;
mod extractor;
mod support;
