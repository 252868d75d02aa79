//! Email verification: checking a verification link and completing it.

use super::{AccountService, Failure};
use crate::clock::UnixTime;
use crate::password::HashError;
use crate::repo::{RepoError, Transaction};
use crate::site::Site;
use crate::token::{self, StoredToken};
use crate::user::{PlainPassword, User};
use crate::webhook::{UserEvent, user_event};

/// Why a verification token was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyEmailError {
    /// The token is unknown, expired or already used, or its user is gone or of another site.
    #[error("invalid or expired verification token")]
    InvalidToken,
    /// The user has no password yet (an invitation) and none was given; the token is kept.
    #[error("password is required to complete account setup")]
    PasswordRequired,
    /// Storage or hashing failed.
    #[error(transparent)]
    Failure(#[from] Failure),
}

failure_from!(VerifyEmailError);

/// The outcome of verify-email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The user, now verified.
    pub user: User,
    /// Where the client is sent next: the site's verification redirect, or its frontend.
    pub redirect_url: String,
}

impl AccountService {
    /// Marks `user` (locked in `tx`) verified and, when this is the transition
    /// (`newly_verified`), queues `user.verified` in the same transaction (decision 13). The one
    /// place a verification is recorded: by a link (`verify_email`) or by an operator
    /// (`verify_by_operator`).
    pub(crate) async fn mark_verified(
        &self,
        tx: &mut Box<dyn Transaction>,
        site: &Site,
        user: &mut User,
        newly_verified: bool,
        now: UnixTime,
    ) -> Result<(), RepoError> {
        user.is_verified = true;
        user.updated_at = now;
        tx.accounts().update_user(user).await?;
        if newly_verified
            && let Some(event) = user_event(
                UserEvent::Verified,
                site,
                user,
                self.generator.new_id(),
                now,
            )
        {
            tx.accounts().enqueue_webhook(&event).await?;
        }
        Ok(())
    }

    /// The live verification token `presented` of a user of `site`, with that user.
    async fn verification_target(
        &self,
        site: &Site,
        presented: &str,
    ) -> Result<(StoredToken, User), VerifyEmailError> {
        let now = self.clock.now();
        let stored = self
            .accounts
            .find_verification_token(&token::digest(presented))
            .await?
            .filter(|t| token::is_live(t.expires_at, now))
            .ok_or(VerifyEmailError::InvalidToken)?;
        let user = self
            .accounts
            .find_user(stored.user_id)
            .await?
            .filter(|u| u.site_id == site.id)
            .ok_or(VerifyEmailError::InvalidToken)?;
        Ok((stored, user))
    }

    /// check-verification-token: whether a password is still needed, and the address.
    pub async fn check_verification_token(
        &self,
        site: &Site,
        presented: &str,
    ) -> Result<User, VerifyEmailError> {
        self.verification_target(site, presented)
            .await
            .map(|(_, user)| user)
    }

    /// verify-email. The token is checked without being consumed (a cross-site or otherwise
    /// failed attempt burns nothing); the password is hashed before it is consumed; `user.verified`
    /// is queued on the transition only (decision 13).
    pub async fn verify_email(
        &self,
        site: &Site,
        presented: &str,
        password: Option<&PlainPassword>,
    ) -> Result<Verified, VerifyEmailError> {
        let (stored, user) = self.verification_target(site, presented).await?;
        let new_hash = match (&user.password_hash, password) {
            (Some(_), _) => None,
            (None, None) => return Err(VerifyEmailError::PasswordRequired),
            (None, Some(pw)) => Some(self.hasher.hash(pw).await?),
        };
        let now = self.clock.now();
        let mut tx = self.uow.begin().await?;
        if !tx
            .accounts()
            .take_verification_token(&stored.digest)
            .await?
        {
            return Err(VerifyEmailError::InvalidToken);
        }
        let mut user = tx
            .accounts()
            .lock_user(user.id)
            .await?
            .ok_or(VerifyEmailError::InvalidToken)?;
        let newly_verified = !user.is_verified;
        if user.password_hash.is_none() {
            match new_hash {
                Some(hash) => user.password_hash = Some(hash),
                None => return Err(VerifyEmailError::PasswordRequired),
            }
        }
        self.mark_verified(&mut tx, site, &mut user, newly_verified, now)
            .await?;
        tx.commit().await?;
        Ok(Verified {
            user,
            redirect_url: site.verification_redirect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fakes::{
        Call, NEW_HASH, NOW, Ports, STORED_HASH, invited_user, other_site, run, site, stored_token,
        user_of, verified_user, webhook_site,
    };
    use super::*;
    use crate::password::HashError;
    use crate::repo::RepoError;

    const PRESENTED: &str = "presented";

    /// Ports where `PRESENTED` is a verification token of `found` expiring at `expires_at`, and
    /// `found` is also the stored user the transaction locks; the token can be taken.
    fn ports_for(found: &User, expires_at: i64) -> Ports {
        let mut ports = Ports::new();
        let token = stored_token(found, PRESENTED, expires_at);
        ports
            .accounts
            .expect_find_verification_token()
            .withf(|d| d == token::digest(PRESENTED))
            .returning(move |_| Ok(Some(token.clone())));
        let user = found.clone();
        ports
            .accounts
            .expect_find_user()
            .withf({
                let id = found.id;
                move |i| *i == id
            })
            .returning(move |_| Ok(Some(user.clone())));
        ports.uow.existing = Some(found.clone());
        ports.uow.answers.verification_token_taken = true;
        ports
    }

    fn pw() -> PlainPassword {
        PlainPassword::new("pw-123456".into())
    }

    #[test]
    fn checking_a_live_token_returns_its_user_and_consumes_nothing() {
        let site = site();
        let user = invited_user(&site);
        // Live up to and including its expiry second.
        let ports = ports_for(&user, NOW);
        let uow = ports.uow.clone();
        let found = run(ports.service().check_verification_token(&site, PRESENTED)).unwrap();
        assert_eq!(found, user);
        assert_eq!(uow.calls(), []);
    }

    #[test]
    fn an_unknown_token_is_invalid() {
        let site = site();
        let mut ports = Ports::new();
        ports
            .accounts
            .expect_find_verification_token()
            .times(2)
            .returning(|_| Ok(None));
        ports.expect_hashes(0);
        let uow = ports.uow.clone();
        let svc = ports.service();
        assert!(matches!(
            run(svc.check_verification_token(&site, PRESENTED)),
            Err(VerifyEmailError::InvalidToken)
        ));
        assert!(matches!(
            run(svc.verify_email(&site, PRESENTED, Some(&pw()))),
            Err(VerifyEmailError::InvalidToken)
        ));
        assert_eq!(uow.calls(), []);
    }

    #[test]
    fn an_expired_token_is_invalid() {
        let site = site();
        let user = invited_user(&site);
        let mut ports = Ports::new();
        let token = stored_token(&user, PRESENTED, NOW - 1);
        ports
            .accounts
            .expect_find_verification_token()
            .returning(move |_| Ok(Some(token.clone())));
        ports.expect_hashes(0);
        let uow = ports.uow.clone();
        let svc = ports.service();
        assert!(matches!(
            run(svc.check_verification_token(&site, PRESENTED)),
            Err(VerifyEmailError::InvalidToken)
        ));
        assert!(matches!(
            run(svc.verify_email(&site, PRESENTED, Some(&pw()))),
            Err(VerifyEmailError::InvalidToken)
        ));
        assert_eq!(uow.calls(), []);
    }

    #[test]
    fn a_token_of_another_sites_user_is_invalid_and_burns_nothing() {
        let site = site();
        let user = invited_user(&other_site());
        let mut ports = ports_for(&user, NOW + 60);
        ports.expect_hashes(0);
        let uow = ports.uow.clone();
        let svc = ports.service();
        assert!(matches!(
            run(svc.check_verification_token(&site, PRESENTED)),
            Err(VerifyEmailError::InvalidToken)
        ));
        assert!(matches!(
            run(svc.verify_email(&site, PRESENTED, Some(&pw()))),
            Err(VerifyEmailError::InvalidToken)
        ));
        assert_eq!(uow.calls(), []);
    }

    #[test]
    fn a_token_whose_user_is_gone_is_invalid() {
        let site = site();
        let user = invited_user(&site);
        let mut ports = Ports::new();
        let token = stored_token(&user, PRESENTED, NOW + 60);
        ports
            .accounts
            .expect_find_verification_token()
            .returning(move |_| Ok(Some(token.clone())));
        ports.accounts.expect_find_user().returning(|_| Ok(None));
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().verify_email(&site, PRESENTED, Some(&pw()))),
            Err(VerifyEmailError::InvalidToken)
        ));
        assert_eq!(uow.calls(), []);
    }

    #[test]
    fn an_invited_user_without_a_password_is_told_one_is_required_and_keeps_the_token() {
        let site = site();
        let mut ports = ports_for(&invited_user(&site), NOW + 60);
        ports.expect_hashes(0);
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().verify_email(&site, PRESENTED, None)),
            Err(VerifyEmailError::PasswordRequired)
        ));
        assert_eq!(uow.calls(), []);
    }

    #[test]
    fn an_invited_user_sets_the_password_when_verifying() {
        let site = site();
        let user = invited_user(&site);
        let mut ports = ports_for(&user, NOW + 60);
        ports.expect_hashes(1);
        let uow = ports.uow.clone();
        let verified = run(ports.service().verify_email(&site, PRESENTED, Some(&pw()))).unwrap();
        let expected = User {
            password_hash: Some(NEW_HASH.into()),
            is_verified: true,
            updated_at: NOW,
            ..user.clone()
        };
        assert_eq!(verified.user, expected);
        assert_eq!(verified.redirect_url, site.frontend_url);
        // The token is taken first, then the user locked and written; no webhook is configured.
        assert_eq!(
            uow.calls(),
            [
                Call::Begin,
                Call::TakeVerificationToken(token::digest(PRESENTED)),
                Call::LockUser(user.id),
                Call::UpdateUser(expected),
                Call::Commit,
            ]
        );
    }

    #[test]
    fn a_user_with_a_password_is_verified_without_hashing_the_one_given() {
        let site = site();
        let mut ports = ports_for(&user_of(&site, "me@example.com"), NOW + 60);
        ports.expect_hashes(0);
        let verified = run(ports.service().verify_email(&site, PRESENTED, Some(&pw()))).unwrap();
        assert_eq!(verified.user.password_hash.as_deref(), Some(STORED_HASH));
        assert!(verified.user.is_verified);
    }

    #[test]
    fn a_password_gone_from_the_locked_user_is_required() {
        let site = site();
        let user = user_of(&site, "me@example.com");
        let mut ports = ports_for(&user, NOW + 60);
        ports.uow.existing = Some(User {
            password_hash: None,
            ..user
        });
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().verify_email(&site, PRESENTED, None)),
            Err(VerifyEmailError::PasswordRequired)
        ));
        assert_eq!(
            uow.writes(),
            [Call::TakeVerificationToken(token::digest(PRESENTED))]
        );
        assert!(!uow.committed());
    }

    #[test]
    fn a_token_taken_concurrently_is_invalid() {
        let site = site();
        let mut ports = ports_for(&user_of(&site, "me@example.com"), NOW + 60);
        ports.uow.answers.verification_token_taken = false;
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().verify_email(&site, PRESENTED, None)),
            Err(VerifyEmailError::InvalidToken)
        ));
        assert_eq!(
            uow.writes(),
            [Call::TakeVerificationToken(token::digest(PRESENTED))]
        );
        assert!(!uow.committed());
    }

    #[test]
    fn a_user_deleted_after_the_check_is_invalid() {
        let site = site();
        let mut ports = ports_for(&user_of(&site, "me@example.com"), NOW + 60);
        ports.uow.existing = None;
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().verify_email(&site, PRESENTED, None)),
            Err(VerifyEmailError::InvalidToken)
        ));
        assert!(!uow.committed());
    }

    #[test]
    fn the_first_verification_queues_user_verified() {
        let site = webhook_site();
        let user = user_of(&site, "me@example.com");
        let ports = ports_for(&user, NOW + 60);
        let uow = ports.uow.clone();
        run(ports.service().verify_email(&site, PRESENTED, None)).unwrap();
        let events: Vec<_> = uow
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::EnqueueWebhook(e) => Some((e.event_type, e.site_id, e.created_at)),
                _ => None,
            })
            .collect();
        assert_eq!(events, [("user.verified", site.id, NOW)]);
        assert!(uow.committed());
    }

    #[test]
    fn verifying_a_verified_user_again_queues_no_event() {
        let site = webhook_site();
        let ports = ports_for(&verified_user(&site), NOW + 60);
        let uow = ports.uow.clone();
        run(ports.service().verify_email(&site, PRESENTED, None)).unwrap();
        assert!(
            !uow.calls()
                .iter()
                .any(|c| matches!(c, Call::EnqueueWebhook(_)))
        );
        assert!(uow.committed());
    }

    #[test]
    fn the_redirect_is_the_sites_verification_url_unless_it_is_empty() {
        for (configured, expected) in [
            (
                Some("https://app.example.com/welcome"),
                "https://app.example.com/welcome",
            ),
            (Some(""), "https://app.example.com"),
        ] {
            let mut site = site();
            site.verification_redirect_url = configured.map(Into::into);
            let ports = ports_for(&verified_user(&site), NOW + 60);
            let verified = run(ports.service().verify_email(&site, PRESENTED, None)).unwrap();
            assert_eq!(verified.redirect_url, expected);
        }
    }

    #[test]
    fn a_password_that_cannot_be_hashed_consumes_nothing() {
        let site = site();
        let mut ports = ports_for(&invited_user(&site), NOW + 60);
        ports
            .hasher
            .expect_hash()
            .returning(|_| Err(HashError::Busy));
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().verify_email(&site, PRESENTED, Some(&pw()))),
            Err(VerifyEmailError::Failure(Failure::Hash(HashError::Busy)))
        ));
        assert_eq!(uow.calls(), []);
    }

    #[test]
    fn a_verification_during_a_storage_outage_fails() {
        let mut ports = Ports::new();
        ports
            .accounts
            .expect_find_verification_token()
            .returning(|_| Err(RepoError::Unavailable("down".into())));
        assert!(matches!(
            run(ports.service().verify_email(&site(), PRESENTED, None)),
            Err(VerifyEmailError::Failure(Failure::Repo(
                RepoError::Unavailable(_)
            )))
        ));
    }
}
