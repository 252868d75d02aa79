//! Routes, one module per area.

use actix_web::web;

pub mod auth;
pub mod health;
pub mod sites;
pub mod users;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(health::configure)
        .configure(auth::configure)
        .configure(users::configure)
        .configure(sites::configure);
}

/// The `domain` query parameter of the by-domain routes: the first one, as Flask's `args.get`
/// reads it; missing or empty is a 400.
pub(crate) fn domain_param(req: &actix_web::HttpRequest) -> Result<String, crate::error::ApiError> {
    form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "domain")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
        .ok_or(crate::error::ApiError::bad_request(
            "Domain parameter is required",
        ))
}

#[cfg(test)]
mod request_fields;
