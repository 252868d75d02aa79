//! Use cases.

pub mod sites;
