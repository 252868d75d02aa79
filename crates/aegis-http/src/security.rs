//! The security event log: one WARN line per event, under the `aegis::security` target, with an
//! `event` field an operator can alert on. Each line names the site, the client address and the
//! account as a keyed digest (the one the rate limits use), never a token, a password or an email
//! address. The events are listed in `docs/operations.md`.

use std::fmt;
use std::net::IpAddr;

use aegis_domain::ratelimit::{AccountDigest, SiteKey};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A login with a wrong password, an unknown address or an account without a password.
    LoginFailed,
    /// A wrong current password on a bearer route (change-password, request-email-change).
    PasswordCheckFailed,
    /// A request refused with 429.
    RateLimited,
    /// An account reached the failed-login bound for a client network.
    AccountBlocked,
    /// A refresh token was presented again after its grace period: its family and the user's
    /// sessions were revoked.
    RefreshTokenReuse,
    /// A wrong `X-API-Key` on an operator route.
    MasterKeyRejected,
    /// A request the tenant gate refused (wrong or missing key, or no such site).
    TenantKeyRejected,
}

impl Event {
    /// The `event` field's value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::LoginFailed => "login_failed",
            Self::PasswordCheckFailed => "password_check_failed",
            Self::RateLimited => "rate_limited",
            Self::AccountBlocked => "account_blocked",
            Self::RefreshTokenReuse => "refresh_token_reuse",
            Self::MasterKeyRejected => "master_key_rejected",
            Self::TenantKeyRejected => "tenant_key_rejected",
        }
    }
}

/// Who an event concerns, as far as the request says.
#[derive(Debug, Clone, Default)]
pub struct Who {
    /// The site the request named, in canonical form.
    pub site: Option<SiteKey>,
    /// The client address.
    pub client: Option<IpAddr>,
    /// The account digest (never the address).
    pub account: Option<AccountDigest>,
}

struct OrDash<'a, T>(&'a Option<T>);

impl<T: fmt::Display> fmt::Display for OrDash<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(value) => value.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// Writes one event. `detail` is fixed text chosen by the caller, never client input.
pub fn record(event: Event, who: &Who, detail: &str) {
    tracing::warn!(
        target: "aegis::security",
        event = event.as_str(),
        site = %OrDash(&who.site),
        client = %OrDash(&who.client),
        account = %OrDash(&who.account),
        detail,
        "security event: {}",
        event.as_str()
    );
}
