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
    /// request-email-change (§4.13): needs the current password; the confirmation goes to the new
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
        );
        tx.accounts()
            .enqueue_email(&self.queued(&site, message, now, Some(expires_at)))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// confirm-email-change (§4.14). Uniqueness is checked again; a refused confirm keeps its
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
    use futures_util::FutureExt as _;

    use super::super::fakes::{NORMAL, Recording, TYPED, email, service, site, user_of};
    use super::*;
    use crate::ids::UserId;
    use crate::repo::{MockAccountRepository, MockSiteRepository};
    use crate::templates::EmailKind;
    use crate::token::EmailChangeRequest;

    #[test]
    fn an_email_change_request_keeps_and_mails_the_normal_form() {
        let site = site();
        let user = user_of(&site, "me@example.com");
        let mut accounts = MockAccountRepository::new();
        accounts
            .expect_email_taken()
            .withf(|_, e, _| e.as_str() == NORMAL)
            .returning(|_, _, _| Ok(false));
        let mut sites = MockSiteRepository::new();
        let found = site.clone();
        sites
            .expect_find()
            .returning(move |_| Ok(Some(found.clone())));
        // The request stands only while the user's password is the one checked.
        let uow = Recording {
            existing: Some(user.clone()),
            ..Recording::default()
        };
        let svc = service(accounts, sites, &uow);
        svc.request_email_change(&user, &email(TYPED), &PlainPassword::new("pw".into()))
            .now_or_never()
            .unwrap()
            .unwrap();
        let changes: Vec<String> = uow
            .written
            .lock()
            .unwrap()
            .email_changes
            .iter()
            .map(|r| r.new_email.clone())
            .collect();
        assert_eq!(changes, [NORMAL]);
        assert_eq!(uow.emails(), [(EmailKind::EmailChange, NORMAL.to_owned())]);
    }

    #[test]
    fn a_stored_change_to_an_address_that_no_longer_parses_is_not_confirmed() {
        let site = site();
        let mut accounts = MockAccountRepository::new();
        let request = EmailChangeRequest {
            token: StoredToken {
                digest: token::digest("presented"),
                site_id: site.id,
                user_id: UserId::from_uuid(uuid::Uuid::from_u128(7)),
                expires_at: 5_000,
                created_at: 1,
            },
            new_email: "\"q\"@x.com".into(),
        };
        accounts
            .expect_find_email_change()
            .returning(move |_| Ok(Some(request.clone())));
        let uow = Recording {
            existing: Some(user_of(&site, "me@example.com")),
            ..Recording::default()
        };
        let svc = service(accounts, MockSiteRepository::new(), &uow);
        assert!(matches!(
            svc.confirm_email_change("presented")
                .now_or_never()
                .unwrap(),
            Err(EmailChangeError::InvalidToken)
        ));
    }
}
