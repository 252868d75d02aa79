//! The wire types of the Aegis HTTP API: every JSON body a client sends and every JSON body the
//! server answers with.
//!
//! The server serialises its responses with these types, and a typed client deserialises them
//! with the same types, so the two cannot drift apart. Request types describe the bodies the
//! server accepts; the server still validates what it receives on its own (unknown fields, lengths,
//! formats), so a request built from these types is well formed but may still be refused.
//!
//! The crate depends only on `serde` and `uuid`: no domain logic, no HTTP framework.
//!
//! # Conventions
//!
//! - Identifiers are UUIDs, serialised lowercase and hyphenated.
//! - Times are Unix timestamps in whole seconds (`i64`).
//! - A field that the server always sends but may be `null` is an `Option` that serialises as
//!   `null`; an optional request field is an `Option` that is left out when `None`.
//! - Every error answer has the body [`ErrorBody`].
//!
//! ```
//! use aegis_api_types::{Health, Message};
//!
//! let health: Health =
//!     serde_json::from_str(r#"{"service":"auth-service","status":"healthy","version":"1.2.3"}"#)
//!         .unwrap();
//! assert_eq!(health.status, "healthy");
//! let message: Message = serde_json::from_str(r#"{"message":"Logged out successfully"}"#).unwrap();
//! assert_eq!(message.message, "Logged out successfully");
//! ```
#![warn(missing_docs)]

mod requests;
mod responses;

pub use requests::*;
pub use responses::*;

use serde::{Deserialize, Serialize};

/// A user's role within their site.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An ordinary user (`"user"`).
    User,
    /// A site administrator (`"admin"`), who may manage the site's users.
    Admin,
}

#[cfg(test)]
mod tests;
