//! Request schemas for sites, and sites as the API shows them (the shared wire types of
//! `aegis-api-types`).

use aegis_api_types as api;
use aegis_domain::site::normalize_domain;
use aegis_domain::{NewSite, Site, SitePatch};
use serde_json::Value;

use crate::error::ApiError;
use crate::validation::{Rule, Schema};

/// The fields a `POST /api/sites` body may carry.
pub(crate) const CREATE_FIELDS: &[&str] = &[
    "name",
    "domain",
    "frontend_url",
    "verification_redirect_url",
    "email_from",
    "email_from_name",
    "allow_self_registration",
    "webhook_url",
    "mailgun_domain",
    "mailgun_api_key",
];

/// The fields a `PUT /api/sites/{id}` body may carry.
pub(crate) const UPDATE_FIELDS: &[&str] = &[
    "name",
    "domain",
    "frontend_url",
    "verification_redirect_url",
    "email_from",
    "email_from_name",
    "allow_self_registration",
    "webhook_url",
    "regenerate_webhook_secret",
    "regenerate_tenant_api_key",
    "mailgun_domain",
    "mailgun_api_key",
    "deletion_protected",
];

const URL: &[Rule] = &[Rule::Url, Rule::Max255];
const NAME: &[Rule] = &[Rule::Length1To255];
const TEXT: &[Rule] = &[Rule::Max255];
/// Names that reach mail headers (the site's name is in every subject).
const HEADER_NAME: &[Rule] = &[Rule::NoControl, Rule::Length1To255];
/// The Mailgun domain is part of the API path the message is posted to.
const HEADER_TEXT: &[Rule] = &[Rule::NoControl, Rule::Max255];

/// Domains are validated as they will be stored: lowercased.
fn lowercase_domain(body: &mut Value) {
    if let Some(Value::String(d)) = body.get_mut("domain") {
        *d = normalize_domain(d);
    }
}

/// `POST /api/sites` body → [`NewSite`].
pub fn new_site(mut body: Value) -> Result<NewSite, ApiError> {
    lowercase_domain(&mut body);
    let mut s = Schema::new(body, CREATE_FIELDS)?;
    let name = s.required_str("name", HEADER_NAME);
    let domain = s.required_str("domain", NAME);
    let frontend_url = s.required_str("frontend_url", URL);
    let verification_redirect_url = s.nullable_str("verification_redirect_url", URL);
    let email_from = s.required_email("email_from");
    let email_from_name = s.required_str("email_from_name", HEADER_NAME);
    let allow_self_registration = s.strict_bool("allow_self_registration");
    let webhook_url = s.nullable_str("webhook_url", URL);
    let mailgun_domain = s.nullable_str("mailgun_domain", HEADER_TEXT);
    let mailgun_api_key = s.nullable_str("mailgun_api_key", TEXT);
    s.finish()?;
    match (name, domain, frontend_url, email_from, email_from_name) {
        (Some(name), Some(domain), Some(frontend_url), Some(email_from), Some(email_from_name)) => {
            Ok(NewSite {
                name,
                domain,
                frontend_url,
                verification_redirect_url: verification_redirect_url.flatten(),
                email_from,
                email_from_name,
                allow_self_registration: allow_self_registration.unwrap_or(true),
                webhook_url: webhook_url.flatten(),
                mailgun_domain: mailgun_domain.flatten(),
                mailgun_api_key: mailgun_api_key.flatten(),
            })
        }
        _ => Err(ApiError::bug(
            "Internal server error",
            "validated site fields missing",
        )),
    }
}

/// `PUT /api/sites/{id}` body → [`SitePatch`].
pub fn site_patch(mut body: Value) -> Result<SitePatch, ApiError> {
    lowercase_domain(&mut body);
    let mut s = Schema::new(body, UPDATE_FIELDS)?;
    let patch = SitePatch {
        name: s.optional_str("name", HEADER_NAME),
        domain: s.optional_str("domain", NAME),
        frontend_url: s.optional_str("frontend_url", URL),
        verification_redirect_url: s.nullable_str("verification_redirect_url", URL),
        email_from: s.optional_email("email_from"),
        email_from_name: s.optional_str("email_from_name", HEADER_NAME),
        allow_self_registration: s.strict_bool("allow_self_registration"),
        webhook_url: s.nullable_str("webhook_url", URL),
        regenerate_webhook_secret: s.strict_bool("regenerate_webhook_secret"),
        regenerate_tenant_api_key: s.strict_bool("regenerate_tenant_api_key"),
        mailgun_domain: s.nullable_str("mailgun_domain", HEADER_TEXT),
        mailgun_api_key: s.nullable_str("mailgun_api_key", TEXT),
        deletion_protected: s.strict_bool("deletion_protected"),
    };
    s.finish()?;
    Ok(patch)
}

/// A site as anyone may see it (`GET /api/sites/by-domain`): no secrets, no webhook or mail settings.
pub fn site_public(s: &Site) -> api::SitePublic {
    api::SitePublic {
        uuid: s.id.as_uuid(),
        name: s.name.clone(),
        domain: s.domain.clone(),
        frontend_url: s.frontend_url.clone(),
        verification_redirect_url: s.verification_redirect_url.clone(),
        email_from: s.email_from.clone(),
        email_from_name: s.email_from_name.clone(),
        created_at: s.created_at,
        updated_at: s.updated_at,
        allow_self_registration: s.allow_self_registration,
    }
}

/// A site as operators see it (master-key routes): the public view plus secrets and settings. A
/// site without a tenant key shows `null`.
pub fn site_admin(s: &Site) -> api::SiteAdmin {
    api::SiteAdmin {
        public: site_public(s),
        webhook_url: s.webhook_url.clone(),
        webhook_secret: s.webhook_secret.clone(),
        tenant_api_key: Some(s.tenant_api_key.clone()).filter(|k| !k.is_empty()),
        mailgun_domain: s.mailgun_domain.clone(),
        mailgun_api_key: s.mailgun_api_key.clone(),
        deletion_protected: s.deletion_protected,
    }
}
