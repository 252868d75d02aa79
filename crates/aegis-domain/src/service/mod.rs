//! Use cases.

// Temporary: `accounts` is being split into a module directory, which documents its items.
#[allow(missing_docs)]
pub mod accounts;
pub mod sites;
pub mod users;
