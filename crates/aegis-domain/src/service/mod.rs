//! Use cases.

pub mod accounts;
pub mod sites;
pub mod users;
