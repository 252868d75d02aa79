//! Sites (tenants): each has its own user base, sender identity, tenant API key and webhook.

use std::fmt;

use crate::clock::UnixTime;
use crate::ids::SiteId;
use crate::secrets::SecretGenerator;
use crate::user::Email;

/// A site as stored. Secret fields are redacted from `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Site {
    /// The site's identifier; clients name the site with it in every tenant request.
    pub id: SiteId,
    /// Display name, used in email subjects and bodies (1 to 255 characters).
    pub name: String,
    /// Lowercased on write and on lookup (decision 17); unique. A free-form string that the
    /// tenant looks its site up by, not checked as a hostname.
    pub domain: String,
    /// The tenant's frontend: every link in the site's emails is built on it (trailing slashes
    /// removed), e.g. `{frontend_url}/reset-password?token=…`.
    pub frontend_url: String,
    /// Where the frontend should send a user after verifying their email; when `None`, clients
    /// are pointed at `frontend_url` instead.
    pub verification_redirect_url: Option<String>,
    /// The sender address: in its normal form when Aegis wrote it (decision 30).
    pub email_from: String,
    /// The sender's display name in the site's emails.
    pub email_from_name: String,
    /// When the site was created (Unix seconds).
    pub created_at: UnixTime,
    /// When the site last changed (Unix seconds); every [`Site::apply`] moves it.
    pub updated_at: UnixTime,
    /// Whether anyone may register on the site; when `false`, users arrive only by invitation or
    /// creation by an operator or admin.
    pub allow_self_registration: bool,
    /// Where user events are posted (see [`crate::webhook`]); `None` sends no webhooks.
    pub webhook_url: Option<String>,
    /// Present exactly when a webhook URL was set through the API; signs webhook deliveries.
    pub webhook_secret: Option<String>,
    /// Authenticates the tenant's backend (`X-Tenant-Api-Key`).
    pub tenant_api_key: String,
    /// Mailgun sending domain for this site's emails, overriding the service-wide one.
    pub mailgun_domain: Option<String>,
    /// Mailgun API key for this site's emails, overriding the service-wide one. A secret.
    pub mailgun_api_key: Option<String>,
    /// While set, neither the site nor any of its users can be deleted.
    pub deletion_protected: bool,
}

impl fmt::Debug for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Site")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("domain", &self.domain)
            .field("frontend_url", &self.frontend_url)
            .field("allow_self_registration", &self.allow_self_registration)
            .field("webhook_url", &self.webhook_url)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("tenant_api_key", &"<redacted>")
            .field("mailgun_domain", &self.mailgun_domain)
            .field(
                "mailgun_api_key",
                &self.mailgun_api_key.as_ref().map(|_| "<redacted>"),
            )
            .field("deletion_protected", &self.deletion_protected)
            .finish_non_exhaustive()
    }
}

/// Normalises a site domain for storage and lookup: lowercase (decision 17). Domains are otherwise
/// free-form strings, as in the reference; they are not validated as hostnames.
pub fn normalize_domain(raw: &str) -> String {
    raw.to_lowercase()
}

/// A validated request to create a site. Build it from checked input (lengths with
/// [`crate::validation::check_length_1_255`] and [`crate::validation::check_max_255`], URLs with
/// [`crate::validation::is_valid_url`]); [`Site::create`] turns it into a [`Site`] with fresh
/// secrets. Each field means what the [`Site`] field of the same name means.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewSite {
    /// See [`Site::name`].
    pub name: String,
    /// See [`Site::domain`]; lowercased by [`Site::create`].
    pub domain: String,
    /// See [`Site::frontend_url`].
    pub frontend_url: String,
    /// See [`Site::verification_redirect_url`].
    pub verification_redirect_url: Option<String>,
    /// See [`Site::email_from`]; already in its normal form, being an [`Email`].
    pub email_from: Email,
    /// See [`Site::email_from_name`].
    pub email_from_name: String,
    /// See [`Site::allow_self_registration`].
    pub allow_self_registration: bool,
    /// See [`Site::webhook_url`]. A non-empty URL makes [`Site::create`] issue a webhook secret.
    pub webhook_url: Option<String>,
    /// See [`Site::mailgun_domain`].
    pub mailgun_domain: Option<String>,
    /// See [`Site::mailgun_api_key`].
    pub mailgun_api_key: Option<String>,
}

/// A validated partial update of a site, applied with [`Site::apply`]. `None` leaves a field alone;
/// for nullable fields `Some(None)` clears it. Each field means what the [`Site`] field of the same
/// name means.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SitePatch {
    /// New [`Site::name`].
    pub name: Option<String>,
    /// New [`Site::domain`]; lowercased by [`Site::apply`].
    pub domain: Option<String>,
    /// New [`Site::frontend_url`].
    pub frontend_url: Option<String>,
    /// New [`Site::verification_redirect_url`], or `Some(None)` to clear it.
    pub verification_redirect_url: Option<Option<String>>,
    /// New [`Site::email_from`].
    pub email_from: Option<Email>,
    /// New [`Site::email_from_name`].
    pub email_from_name: Option<String>,
    /// New [`Site::allow_self_registration`].
    pub allow_self_registration: Option<bool>,
    /// New [`Site::webhook_url`], or `Some(None)` (or an empty URL) to stop webhooks. Setting a
    /// non-empty URL always issues a new webhook secret, even when the URL is unchanged.
    pub webhook_url: Option<Option<String>>,
    /// `Some(true)` rotates [`Site::webhook_secret`], if the site still has a webhook URL after
    /// this patch.
    pub regenerate_webhook_secret: Option<bool>,
    /// `Some(true)` issues a new [`Site::tenant_api_key`]; the old one stops working at once.
    pub regenerate_tenant_api_key: Option<bool>,
    /// New [`Site::mailgun_domain`], or `Some(None)` to fall back to the service-wide one.
    pub mailgun_domain: Option<Option<String>>,
    /// New [`Site::mailgun_api_key`], or `Some(None)` to fall back to the service-wide one.
    pub mailgun_api_key: Option<Option<String>>,
    /// New [`Site::deletion_protected`].
    pub deletion_protected: Option<bool>,
}

impl SitePatch {
    /// True when the request named no field at all ("At least one field must be provided").
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn non_empty(value: Option<&str>) -> bool {
    value.is_some_and(|v| !v.is_empty())
}

impl Site {
    /// Where a user goes once verified: the verification redirect, or the frontend when that is
    /// unset or empty.
    pub fn verification_redirect(&self) -> String {
        self.verification_redirect_url
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| self.frontend_url.clone())
    }

    /// A new site: a fresh id and tenant API key, a webhook secret only when a webhook URL is given,
    /// not deletion-protected, created and updated now.
    pub fn create(new: NewSite, now: UnixTime, generator: &dyn SecretGenerator) -> Self {
        let webhook_secret = non_empty(new.webhook_url.as_deref()).then(|| generator.hex_secret());
        Self {
            id: SiteId::from_uuid(generator.new_id()),
            name: new.name,
            domain: normalize_domain(&new.domain),
            frontend_url: new.frontend_url,
            verification_redirect_url: new.verification_redirect_url,
            email_from: new.email_from.into_string(),
            email_from_name: new.email_from_name,
            created_at: now,
            updated_at: now,
            allow_self_registration: new.allow_self_registration,
            webhook_url: new.webhook_url,
            webhook_secret,
            tenant_api_key: generator.hex_secret(),
            mailgun_domain: new.mailgun_domain,
            mailgun_api_key: new.mailgun_api_key,
            deletion_protected: false,
        }
    }

    /// Applies a partial update with the reference's semantics: setting a non-empty webhook URL
    /// issues a new signing secret (even for the same URL), clearing it clears the secret,
    /// `regenerate_webhook_secret` rotates the secret only when a webhook URL remains, and
    /// `updated_at` always moves to `now`.
    pub fn apply(&mut self, patch: SitePatch, now: UnixTime, generator: &dyn SecretGenerator) {
        if let Some(name) = patch.name {
            self.name = name;
        }
        if let Some(domain) = patch.domain {
            self.domain = normalize_domain(&domain);
        }
        if let Some(url) = patch.frontend_url {
            self.frontend_url = url;
        }
        if let Some(url) = patch.verification_redirect_url {
            self.verification_redirect_url = url;
        }
        if let Some(email) = patch.email_from {
            self.email_from = email.into_string();
        }
        if let Some(name) = patch.email_from_name {
            self.email_from_name = name;
        }
        if let Some(allow) = patch.allow_self_registration {
            self.allow_self_registration = allow;
        }
        let mut secret_issued = false;
        if let Some(url) = patch.webhook_url {
            self.webhook_secret = if non_empty(url.as_deref()) {
                secret_issued = true;
                Some(generator.hex_secret())
            } else {
                None
            };
            self.webhook_url = url;
        }
        if patch.regenerate_webhook_secret == Some(true)
            && !secret_issued
            && non_empty(self.webhook_url.as_deref())
        {
            self.webhook_secret = Some(generator.hex_secret());
        }
        if patch.regenerate_tenant_api_key == Some(true) {
            self.tenant_api_key = generator.hex_secret();
        }
        if let Some(domain) = patch.mailgun_domain {
            self.mailgun_domain = domain;
        }
        if let Some(key) = patch.mailgun_api_key {
            self.mailgun_api_key = key;
        }
        if let Some(protected) = patch.deletion_protected {
            self.deletion_protected = protected;
        }
        self.updated_at = now;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use uuid::Uuid;

    use super::*;

    /// Deterministic generator: secrets are "secret-1", "secret-2", …
    #[derive(Default)]
    pub(crate) struct CountingGenerator(AtomicU32);

    impl SecretGenerator for CountingGenerator {
        fn new_id(&self) -> Uuid {
            Uuid::from_u128(0x0191_e1a0_0000_7000_8000_0000_0000_0000 + u128::from(self.next()))
        }
        fn token(&self) -> String {
            format!("token-{}", self.next())
        }
        fn hex_secret(&self) -> String {
            format!("secret-{}", self.next())
        }
    }

    impl CountingGenerator {
        fn next(&self) -> u32 {
            self.0.fetch_add(1, Ordering::SeqCst) + 1
        }
    }

    pub(crate) fn new_site(webhook_url: Option<&str>) -> NewSite {
        NewSite {
            name: "Example".into(),
            domain: "Example.COM".into(),
            frontend_url: "https://app.example.com".into(),
            verification_redirect_url: None,
            email_from: Email::parse("noreply@example.com").unwrap(),
            email_from_name: "Example".into(),
            allow_self_registration: true,
            webhook_url: webhook_url.map(Into::into),
            mailgun_domain: None,
            mailgun_api_key: None,
        }
    }

    #[test]
    fn create_generates_key_and_no_webhook_secret_without_url() {
        let g = CountingGenerator::default();
        let site = Site::create(new_site(None), 100, &g);
        assert_eq!(site.domain, "example.com");
        assert_eq!(site.tenant_api_key, "secret-2");
        assert_eq!(site.webhook_secret, None);
        assert_eq!((site.created_at, site.updated_at), (100, 100));
        assert!(!site.deletion_protected);
    }

    #[test]
    fn create_with_webhook_url_generates_a_secret() {
        let g = CountingGenerator::default();
        let site = Site::create(new_site(Some("https://hooks.example.com/x")), 100, &g);
        assert!(site.webhook_secret.is_some());
        assert_ne!(
            site.webhook_secret.as_deref(),
            Some(site.tenant_api_key.as_str())
        );
    }

    #[test]
    fn setting_the_same_webhook_url_rotates_the_secret() {
        let g = CountingGenerator::default();
        let mut site = Site::create(new_site(Some("https://h.example.com")), 1, &g);
        let before = site.webhook_secret.clone();
        site.apply(
            SitePatch {
                webhook_url: Some(Some("https://h.example.com".into())),
                ..SitePatch::default()
            },
            2,
            &g,
        );
        assert!(site.webhook_secret.is_some());
        assert_ne!(site.webhook_secret, before);
        assert_eq!(site.updated_at, 2);
    }

    #[test]
    fn clearing_the_webhook_url_clears_the_secret_and_regenerate_then_does_nothing() {
        let g = CountingGenerator::default();
        let mut site = Site::create(new_site(Some("https://h.example.com")), 1, &g);
        site.apply(
            SitePatch {
                webhook_url: Some(None),
                regenerate_webhook_secret: Some(true),
                ..SitePatch::default()
            },
            2,
            &g,
        );
        assert_eq!(
            (site.webhook_url.as_deref(), site.webhook_secret.as_deref()),
            (None, None)
        );
    }

    #[test]
    fn regenerate_flags_rotate_only_when_true() {
        let g = CountingGenerator::default();
        let mut site = Site::create(new_site(Some("https://h.example.com")), 1, &g);
        let (secret, key) = (site.webhook_secret.clone(), site.tenant_api_key.clone());
        site.apply(
            SitePatch {
                regenerate_webhook_secret: Some(false),
                regenerate_tenant_api_key: Some(false),
                ..SitePatch::default()
            },
            2,
            &g,
        );
        assert_eq!(
            (&site.webhook_secret, &site.tenant_api_key),
            (&secret, &key)
        );
        site.apply(
            SitePatch {
                regenerate_webhook_secret: Some(true),
                regenerate_tenant_api_key: Some(true),
                ..SitePatch::default()
            },
            3,
            &g,
        );
        assert_ne!(site.webhook_secret, secret);
        assert_ne!(site.tenant_api_key, key);
    }

    #[test]
    fn nullable_fields_clear_and_present_fields_apply() {
        let g = CountingGenerator::default();
        let mut site = Site::create(new_site(None), 1, &g);
        site.verification_redirect_url = Some("https://x.example.com".into());
        site.mailgun_domain = Some("mg.example.com".into());
        site.apply(
            SitePatch {
                name: Some("New".into()),
                domain: Some("NEW.example.com".into()),
                verification_redirect_url: Some(None),
                mailgun_domain: Some(None),
                mailgun_api_key: Some(Some(String::new())),
                allow_self_registration: Some(false),
                deletion_protected: Some(true),
                ..SitePatch::default()
            },
            5,
            &g,
        );
        assert_eq!(site.name, "New");
        assert_eq!(site.domain, "new.example.com");
        assert_eq!(site.verification_redirect_url, None);
        assert_eq!(site.mailgun_domain, None);
        assert_eq!(site.mailgun_api_key.as_deref(), Some(""));
        assert!(!site.allow_self_registration);
        assert!(site.deletion_protected);
        assert_eq!(site.frontend_url, "https://app.example.com");
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let g = CountingGenerator::default();
        let mut site = Site::create(new_site(Some("https://h.example.com")), 1, &g);
        site.mailgun_api_key = Some("key-mailgun".into());
        let shown = format!("{site:?}");
        assert!(!shown.contains(&site.tenant_api_key));
        assert!(!shown.contains("key-mailgun"));
        assert!(!shown.contains(site.webhook_secret.as_deref().unwrap()));
    }

    #[test]
    fn an_empty_patch_is_empty_and_a_false_flag_is_not() {
        assert!(SitePatch::default().is_empty());
        let patch = SitePatch {
            regenerate_tenant_api_key: Some(false),
            ..SitePatch::default()
        };
        assert!(!patch.is_empty());
    }
}
