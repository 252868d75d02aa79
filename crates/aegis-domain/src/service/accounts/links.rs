//! What a mailed link's token leads to, for Aegis's own hosted pages (decision 80): they receive
//! a token and nothing else, so they find the site from it, and they tell an expired or used link
//! from one that never existed. Nothing here consumes a token; the flows themselves
//! ([`AccountService::verify_email`], [`AccountService::reset_password`],
//! [`AccountService::confirm_email_change`]) check it again when it is used.

use super::{AccountService, Failure};
use crate::site::Site;
use crate::token;

/// The kinds of token a mailed link carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// An email-verification (or invitation) link.
    Verification,
    /// A password-reset link.
    PasswordReset,
    /// An email-change confirmation link.
    EmailChange,
}

/// What a presented token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Live, issued for a user of this site.
    Live(Site),
    /// Issued for this site, but past its expiry.
    Expired(Site),
    /// Issued for this site and already used (only reset tokens are kept once used; other kinds
    /// are deleted when used, and are then [`LinkState::Unknown`]).
    Used(Site),
    /// No such token, or its site is gone.
    Unknown,
}

impl AccountService {
    /// Looks `presented` up as a token of `kind`, with its site. Reads only.
    pub async fn inspect_link(
        &self,
        kind: LinkKind,
        presented: &str,
    ) -> Result<LinkState, Failure> {
        let digest = token::digest(presented);
        let found = match kind {
            LinkKind::Verification => self
                .accounts
                .find_verification_token(&digest)
                .await?
                .map(|t| (t, false)),
            LinkKind::PasswordReset => self
                .accounts
                .find_reset_token(&digest)
                .await?
                .map(|t| (t.token, t.used)),
            LinkKind::EmailChange => self
                .accounts
                .find_email_change(&digest)
                .await?
                .map(|r| (r.token, false)),
        };
        let Some((stored, used)) = found else {
            return Ok(LinkState::Unknown);
        };
        let Some(site) = self.sites.find(stored.site_id).await? else {
            return Ok(LinkState::Unknown);
        };
        Ok(if used {
            LinkState::Used(site)
        } else if !token::is_live(stored.expires_at, self.clock.now()) {
            LinkState::Expired(site)
        } else {
            LinkState::Live(site)
        })
    }
}
