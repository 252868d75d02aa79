//! Email change: a request confirmed through a link mailed to the new address.

use super::{AccountService, Failure};
use crate::password::{HashError, Verification};
use crate::repo::RepoError;
use crate::templates;
use crate::token::{self, IssuedToken, StoredToken};
use crate::user::{Email, PlainPassword, User};

/// Why an email-change request or confirmation was refused.
#[derive(Debug, thiserror::Error)]
pub enum EmailChangeError {
    /// The current password does not match, or it was replaced while the request was made.
    #[error("invalid password")]
    InvalidPassword,
    /// The confirmation token is unknown, expired or already used, its user is gone, or the
    /// address it carries no longer parses.
    #[error("invalid or expired email change token")]
    InvalidToken,
    /// Another user of the site has the new address.
    #[error("email already in use")]
    EmailInUse,
    /// Storage or hashing failed.
    #[error(transparent)]
    Failure(#[from] Failure),
}

failure_from!(EmailChangeError);

impl AccountService {
    /// request-email-change: needs the current password; the confirmation goes to the new
    /// address in its normal form (decision 30), which is also what the request keeps, and states
    /// the real expiry (decision 24).
    pub async fn request_email_change(
        &self,
        user: &User,
        new_email: &Email,
        password: &PlainPassword,
    ) -> Result<(), EmailChangeError> {
        let verification = self
            .hasher
            .verify(password, user.password_hash.clone())
            .await?;
        if verification == Verification::NoMatch {
            return Err(EmailChangeError::InvalidPassword);
        }
        if self
            .accounts
            .email_taken(user.site_id, new_email, None)
            .await?
        {
            return Err(EmailChangeError::EmailInUse);
        }
        let site = self
            .sites
            .find(user.site_id)
            .await?
            .ok_or(EmailChangeError::InvalidPassword)?;
        let now = self.clock.now();
        let issued = IssuedToken::generate(self.generator.as_ref());
        let expires_at = now + self.settings.email_change_ttl;
        let mut tx = self.uow.begin().await?;
        // As in change-password: the request stands only if the checked hash is still the one.
        let current = tx.accounts().lock_user(user.id).await?;
        if current.is_none_or(|u| u.password_hash != user.password_hash) {
            return Err(EmailChangeError::InvalidPassword);
        }
        tx.accounts()
            .insert_email_change(&token::EmailChangeRequest {
                token: StoredToken {
                    digest: issued.digest.clone(),
                    site_id: user.site_id,
                    user_id: user.id,
                    expires_at,
                    created_at: now,
                },
                new_email: new_email.as_str().to_owned(),
            })
            .await?;
        let message = templates::email_change(
            &site,
            new_email.as_str(),
            &issued.plaintext,
            self.settings.email_change_ttl,
            self.hosted_pages(),
        );
        tx.accounts()
            .enqueue_email(&self.queued(&site, message, now, Some(expires_at)))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// confirm-email-change. Uniqueness is checked again; a refused confirm keeps its
    /// token, so it works once the address is free. Sessions are kept; every reset, verification
    /// and email-change link sent before the change is ended (decision 31), so a link mailed to
    /// the old address cannot be used after it. A stored address that no longer parses (a request
    /// older than decision 30) makes the token unusable.
    pub async fn confirm_email_change(&self, presented: &str) -> Result<User, EmailChangeError> {
        let now = self.clock.now();
        let digest = token::digest(presented);
        let request = self
            .accounts
            .find_email_change(&digest)
            .await?
            .filter(|r| token::is_live(r.token.expires_at, now))
            .ok_or(EmailChangeError::InvalidToken)?;
        let new_email =
            Email::parse(&request.new_email).map_err(|_| EmailChangeError::InvalidToken)?;
        let mut tx = self.uow.begin().await?;
        let mut user = tx
            .accounts()
            .lock_user(request.token.user_id)
            .await?
            .ok_or(EmailChangeError::InvalidToken)?;
        if tx
            .accounts()
            .email_taken(user.site_id, &new_email, Some(user.id))
            .await?
        {
            return Err(EmailChangeError::EmailInUse);
        }
        if !tx.accounts().take_email_change(&digest).await? {
            return Err(EmailChangeError::InvalidToken);
        }
        let old_email = std::mem::replace(&mut user.email, new_email);
        user.updated_at = now;
        match tx.accounts().update_user(&user).await {
            Ok(()) => {}
            Err(RepoError::Conflict(_)) => return Err(EmailChangeError::EmailInUse),
            Err(e) => return Err(e.into()),
        }
        let accounts = tx.accounts();
        accounts.delete_reset_tokens_of_user(user.id).await?;
        accounts
            .delete_reset_requests_for(user.site_id, &old_email)
            .await?;
        accounts.delete_verification_tokens_of_user(user.id).await?;
        accounts.delete_email_changes_of_user(user.id).await?;
        tx.commit().await?;
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fakes::{
        Call, NORMAL, NOW, Ports, STORED_HASH, TYPED, email, run, site, stored_token, verified_user,
    };
    use super::*;
    use crate::site::Site;
    use crate::templates::EmailKind;
    use crate::token::EmailChangeRequest;

    const MATCH: Verification = Verification::Match {
        needs_rehash: false,
    };

    /// Ports for a request by a user of `site` whose password is "pw": the check passes and the
    /// address is free unless the test says otherwise.
    fn request_ports(site: &Site, user: &User, new_address: &'static str) -> Ports {
        let mut ports = Ports::new();
        ports.expect_verification("pw", Some(STORED_HASH), MATCH);
        ports
            .accounts
            .expect_email_taken()
            .withf(move |_, e, except| e.as_str() == new_address && except.is_none())
            .times(1)
            .returning(|_, _, _| Ok(false));
        let found = site.clone();
        ports
            .sites
            .expect_find()
            .returning(move |_| Ok(Some(found.clone())));
        ports.uow.existing = Some(user.clone());
        ports
    }

    fn pw() -> PlainPassword {
        PlainPassword::new("pw".into())
    }

    /// Ports for confirming `request`, found by its digest, for the stored `user`.
    fn confirm_ports(request: &EmailChangeRequest, user: &User) -> Ports {
        let mut ports = Ports::new();
        let found = request.clone();
        let digest = request.token.digest.clone();
        ports
            .accounts
            .expect_find_email_change()
            .withf(move |d| d == digest)
            .returning(move |_| Ok(Some(found.clone())));
        ports.uow.existing = Some(user.clone());
        ports.uow.answers.email_change_taken = true;
        ports
    }

    fn change_request(user: &User, new_email: &str, expires_at: i64) -> EmailChangeRequest {
        EmailChangeRequest {
            token: stored_token(user, "presented", expires_at),
            new_email: new_email.into(),
        }
    }

    #[test]
    fn an_email_change_request_keeps_and_mails_the_normal_form() {
        let site = site();
        let user = verified_user(&site);
        // The request stands only while the user's password is the one checked.
        let ports = request_ports(&site, &user, NORMAL);
        let ttl = ports.settings.email_change_ttl;
        let uow = ports.uow.clone();
        run(ports
            .service()
            .request_email_change(&user, &email(TYPED), &pw()))
        .unwrap();
        let [change] = uow.email_changes().try_into().unwrap();
        assert_eq!(change.new_email, NORMAL);
        assert_eq!(
            (change.token.site_id, change.token.user_id),
            (site.id, user.id)
        );
        assert_eq!(change.token.expires_at, NOW + ttl);
        assert_eq!(uow.emails(), [(EmailKind::EmailChange, NORMAL.to_owned())]);
        assert_eq!(uow.queued()[0].link_expires_at, Some(NOW + ttl));
        assert!(uow.committed());
    }

    #[test]
    fn a_request_with_the_wrong_password_is_refused_before_any_lookup() {
        let site = site();
        let user = verified_user(&site);
        let mut ports = Ports::new();
        ports.expect_verification("pw", Some(STORED_HASH), Verification::NoMatch);
        let uow = ports.uow.clone();
        let outcome = run(ports
            .service()
            .request_email_change(&user, &email(NORMAL), &pw()));
        assert!(matches!(outcome, Err(EmailChangeError::InvalidPassword)));
        assert!(!uow.began());
    }

    #[test]
    fn a_request_for_a_taken_address_is_email_in_use() {
        let site = site();
        let user = verified_user(&site);
        let mut ports = Ports::new();
        ports.expect_verification("pw", Some(STORED_HASH), MATCH);
        ports
            .accounts
            .expect_email_taken()
            .times(1)
            .returning(|_, _, _| Ok(true));
        let uow = ports.uow.clone();
        let outcome = run(ports
            .service()
            .request_email_change(&user, &email(NORMAL), &pw()));
        assert!(matches!(outcome, Err(EmailChangeError::EmailInUse)));
        assert!(!uow.began());
    }

    #[test]
    fn a_request_whose_password_changed_or_user_went_meanwhile_stores_nothing() {
        let site = site();
        let user = verified_user(&site);
        let changed = User {
            password_hash: Some("$argon2id$other".into()),
            ..user.clone()
        };
        for stored in [Some(changed), None] {
            let mut ports = request_ports(&site, &user, NORMAL);
            ports.uow.existing = stored;
            let uow = ports.uow.clone();
            let outcome = run(ports
                .service()
                .request_email_change(&user, &email(NORMAL), &pw()));
            assert!(matches!(outcome, Err(EmailChangeError::InvalidPassword)));
            uow.assert_untouched();
        }
    }

    #[test]
    fn a_request_for_a_user_whose_site_is_gone_is_refused() {
        let site = site();
        let user = verified_user(&site);
        let mut ports = Ports::new();
        ports.expect_verification("pw", Some(STORED_HASH), MATCH);
        ports
            .accounts
            .expect_email_taken()
            .returning(|_, _, _| Ok(false));
        ports.sites.expect_find().returning(|_| Ok(None));
        let uow = ports.uow.clone();
        let outcome = run(ports
            .service()
            .request_email_change(&user, &email(NORMAL), &pw()));
        assert!(matches!(outcome, Err(EmailChangeError::InvalidPassword)));
        assert!(!uow.began());
    }

    #[test]
    fn a_request_whose_password_cannot_be_checked_fails() {
        let user = verified_user(&site());
        let mut ports = Ports::new();
        ports
            .hasher
            .expect_verify()
            .returning(|_, _| Err(HashError::Busy));
        let outcome = run(ports
            .service()
            .request_email_change(&user, &email(NORMAL), &pw()));
        assert!(matches!(
            outcome,
            Err(EmailChangeError::Failure(Failure::Hash(HashError::Busy)))
        ));
    }

    #[test]
    fn a_stored_change_to_an_address_that_no_longer_parses_is_not_confirmed() {
        let site = site();
        let user = verified_user(&site);
        let request = change_request(&user, "\"q\"@x.com", 5_000);
        let ports = confirm_ports(&request, &user);
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().confirm_email_change("presented")),
            Err(EmailChangeError::InvalidToken)
        ));
        assert!(!uow.began());
    }

    #[test]
    fn an_unknown_or_expired_change_token_is_invalid() {
        let user = verified_user(&site());
        let mut unknown = Ports::new();
        unknown
            .accounts
            .expect_find_email_change()
            .returning(|_| Ok(None));
        let expired = confirm_ports(&change_request(&user, NORMAL, NOW - 1), &user);
        for ports in [unknown, expired] {
            let uow = ports.uow.clone();
            assert!(matches!(
                run(ports.service().confirm_email_change("presented")),
                Err(EmailChangeError::InvalidToken)
            ));
            assert!(!uow.began());
        }
    }

    #[test]
    fn a_change_whose_user_is_gone_is_invalid() {
        let user = verified_user(&site());
        let mut ports = confirm_ports(&change_request(&user, NORMAL, NOW), &user);
        ports.uow.existing = None;
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().confirm_email_change("presented")),
            Err(EmailChangeError::InvalidToken)
        ));
        assert_eq!(uow.writes(), []);
    }

    #[test]
    fn a_change_to_an_address_taken_meanwhile_keeps_its_token() {
        let site = site();
        let user = verified_user(&site);
        let mut ports = confirm_ports(&change_request(&user, NORMAL, NOW), &user);
        ports.uow.answers.email_in_use = true;
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().confirm_email_change("presented")),
            Err(EmailChangeError::EmailInUse)
        ));
        assert!(
            uow.calls()
                .contains(&Call::EmailTaken(site.id, email(NORMAL), Some(user.id)))
        );
        uow.assert_untouched();
    }

    #[test]
    fn a_change_token_taken_concurrently_is_invalid() {
        let user = verified_user(&site());
        let mut ports = confirm_ports(&change_request(&user, NORMAL, NOW), &user);
        ports.uow.answers.email_change_taken = false;
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().confirm_email_change("presented")),
            Err(EmailChangeError::InvalidToken)
        ));
        assert_eq!(
            uow.writes(),
            [Call::TakeEmailChange(token::digest("presented"))]
        );
        assert!(!uow.committed());
    }

    #[test]
    fn a_change_refused_by_the_unique_address_is_email_in_use() {
        let user = verified_user(&site());
        let mut ports = confirm_ports(&change_request(&user, NORMAL, NOW), &user);
        ports.uow.answers.update_user_conflicts = true;
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().confirm_email_change("presented")),
            Err(EmailChangeError::EmailInUse)
        ));
        assert!(!uow.committed());
    }

    #[test]
    fn a_confirmed_change_ends_every_link_sent_before_it_and_keeps_sessions() {
        let site = site();
        let user = verified_user(&site);
        let old = user.email.clone();
        let ports = confirm_ports(&change_request(&user, NORMAL, NOW), &user);
        let uow = ports.uow.clone();
        let changed = run(ports.service().confirm_email_change("presented")).unwrap();
        assert_eq!(changed.email, email(NORMAL));
        assert_eq!(changed.updated_at, NOW);
        assert_eq!(
            User {
                email: old.clone(),
                updated_at: user.updated_at,
                ..changed.clone()
            },
            user
        );
        assert_eq!(
            uow.writes(),
            [
                Call::TakeEmailChange(token::digest("presented")),
                Call::UpdateUser(changed.clone()),
                Call::DeleteResetTokensOfUser(user.id),
                Call::DeleteResetRequestsFor(site.id, old),
                Call::DeleteVerificationTokensOfUser(user.id),
                Call::DeleteEmailChangesOfUser(user.id),
            ]
        );
        assert!(uow.committed());
    }

    #[test]
    fn a_confirmation_during_a_storage_outage_fails() {
        let mut ports = Ports::new();
        ports
            .accounts
            .expect_find_email_change()
            .returning(|_| Err(RepoError::Unavailable("down".into())));
        assert!(matches!(
            run(ports.service().confirm_email_change("presented")),
            Err(EmailChangeError::Failure(Failure::Repo(
                RepoError::Unavailable(_)
            )))
        ));
    }
}
