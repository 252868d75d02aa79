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

#[cfg(test)]
mod tests {
    use super::super::fakes::{NOW, Ports, invited_user, run, site, stored_token};
    use super::*;
    use crate::token::{EmailChangeRequest, ResetToken};

    const PRESENTED: &str = "presented";

    /// Ports whose site repository knows `site` only.
    fn ports_with(site: &Site) -> Ports {
        let mut ports = Ports::new();
        let known = site.clone();
        ports
            .sites
            .expect_find()
            .returning(move |id| Ok((id == known.id).then(|| known.clone())));
        ports
    }

    #[test]
    fn a_live_expired_or_used_token_names_its_site_and_consumes_nothing() {
        let site = site();
        let user = invited_user(&site);
        for (kind, expires_at, used, expected) in [
            (
                LinkKind::Verification,
                NOW,
                false,
                LinkState::Live(site.clone()),
            ),
            (
                LinkKind::Verification,
                NOW - 1,
                false,
                LinkState::Expired(site.clone()),
            ),
            (
                LinkKind::PasswordReset,
                NOW + 60,
                false,
                LinkState::Live(site.clone()),
            ),
            (
                LinkKind::PasswordReset,
                NOW + 60,
                true,
                LinkState::Used(site.clone()),
            ),
            (
                LinkKind::PasswordReset,
                NOW - 1,
                false,
                LinkState::Expired(site.clone()),
            ),
            (
                LinkKind::EmailChange,
                NOW + 60,
                false,
                LinkState::Live(site.clone()),
            ),
            (
                LinkKind::EmailChange,
                NOW - 1,
                false,
                LinkState::Expired(site.clone()),
            ),
        ] {
            let mut ports = ports_with(&site);
            let token = stored_token(&user, PRESENTED, expires_at);
            match kind {
                LinkKind::Verification => {
                    ports
                        .accounts
                        .expect_find_verification_token()
                        .withf(|d| d == token::digest(PRESENTED))
                        .returning(move |_| Ok(Some(token.clone())));
                }
                LinkKind::PasswordReset => {
                    ports
                        .accounts
                        .expect_find_reset_token()
                        .withf(|d| d == token::digest(PRESENTED))
                        .returning(move |_| {
                            Ok(Some(ResetToken {
                                token: token.clone(),
                                used,
                            }))
                        });
                }
                LinkKind::EmailChange => {
                    ports
                        .accounts
                        .expect_find_email_change()
                        .withf(|d| d == token::digest(PRESENTED))
                        .returning(move |_| {
                            Ok(Some(EmailChangeRequest {
                                token: token.clone(),
                                new_email: "new@example.com".into(),
                            }))
                        });
                }
            }
            let uow = ports.uow.clone();
            let state = run(ports.service().inspect_link(kind, PRESENTED)).unwrap();
            assert_eq!(state, expected, "{kind:?}");
            assert_eq!(uow.calls(), [], "nothing is written");
        }
    }

    #[test]
    fn an_unknown_token_or_a_token_of_a_deleted_site_is_unknown() {
        let site = site();
        let mut ports = ports_with(&site);
        ports
            .accounts
            .expect_find_verification_token()
            .returning(|_| Ok(None));
        assert_eq!(
            run(ports
                .service()
                .inspect_link(LinkKind::Verification, PRESENTED))
            .unwrap(),
            LinkState::Unknown
        );
        let mut gone = site.clone();
        gone.id = crate::ids::SiteId::from_uuid(uuid::Uuid::from_u128(42));
        let token = stored_token(&invited_user(&gone), PRESENTED, NOW + 60);
        let mut ports = ports_with(&site);
        ports
            .accounts
            .expect_find_verification_token()
            .returning(move |_| Ok(Some(token.clone())));
        assert_eq!(
            run(ports
                .service()
                .inspect_link(LinkKind::Verification, PRESENTED))
            .unwrap(),
            LinkState::Unknown
        );
    }
}
