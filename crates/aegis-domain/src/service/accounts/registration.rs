//! Self-registration, invitation by the tenant backend and creation by an administrator.

use super::{AccountService, Failure};
use crate::ids::UserId;
use crate::password::HashError;
use crate::repo::RepoError;
use crate::site::Site;
use crate::templates;
use crate::user::{Email, PlainPassword, Role, User};

/// Why [`AccountService::register`] refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The site does not let users sign themselves up; nothing was hashed or looked up.
    #[error("self-registration is not enabled for this site")]
    SelfRegistrationDisabled,
    /// Storage or hashing failed.
    #[error(transparent)]
    Failure(#[from] Failure),
}

/// Why [`AccountService::invite`] or [`AccountService::create_by_admin`] refused.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    /// The address already has an account on the site (for an invitation: one that is no
    /// longer a pending invite).
    #[error("email already registered for this site")]
    AlreadyRegistered,
    /// Storage failed.
    #[error(transparent)]
    Failure(#[from] Failure),
}

failure_from!(RegisterError, InviteError);

/// What a self-registration did. Both answer the client alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Registration {
    /// A new, unverified account, and its verification email.
    Created,
    /// The address already had an account: a "sign-in attempt" email to it.
    AddressTaken,
}

impl AccountService {
    /// Self-registration (§4.2). The same outcome for a new and an existing address: an existing
    /// account gets a "sign-in attempt" email at its address (the normal form, decision 30), and
    /// nothing else changes.
    pub async fn register(
        &self,
        site: &Site,
        email: &Email,
        password: Option<&PlainPassword>,
    ) -> Result<Registration, RegisterError> {
        if !site.allow_self_registration {
            return Err(RegisterError::SelfRegistrationDisabled);
        }
        // Hash before looking anything up, so both outcomes cost the same.
        let password_hash = match password {
            Some(pw) => Some(self.hasher.hash(pw).await?),
            None => None,
        };
        let now = self.clock.now();
        let mut tx = self.uow.begin().await?;
        if tx
            .accounts()
            .lock_user_by_email(site.id, email)
            .await?
            .is_some()
        {
            let message = templates::sign_in_attempt(site, email.as_str());
            tx.accounts()
                .enqueue_email(&self.queued(site, message, now, None))
                .await?;
            tx.commit().await?;
            return Ok(Registration::AddressTaken);
        }
        let user = User::new(
            UserId::from_uuid(self.generator.new_id()),
            site.id,
            email.clone(),
            password_hash,
            Role::User,
            now,
        );
        match tx.accounts().insert_user(&user).await {
            Ok(()) => {}
            // A concurrent registration of the same address won: same answer as "exists".
            Err(RepoError::Conflict(_)) => return Ok(Registration::AddressTaken),
            Err(e) => return Err(e.into()),
        }
        self.send_verification(&mut tx, site, &user, now).await?;
        tx.commit().await?;
        Ok(Registration::Created)
    }

    /// Invitation by the tenant backend (§4.3): a new pending user, or a pending one re-invited with
    /// a fresh link that supersedes the old ones.
    pub async fn invite(&self, site: &Site, email: &Email) -> Result<User, InviteError> {
        self.create_unverified(site, email, Role::User, true).await
    }

    /// Creation by an operator or a site admin (§4.24, §4.25): a new pending user with `role`.
    pub async fn create_by_admin(
        &self,
        site: &Site,
        email: &Email,
        role: Role,
    ) -> Result<User, InviteError> {
        self.create_unverified(site, email, role, false).await
    }

    async fn create_unverified(
        &self,
        site: &Site,
        email: &Email,
        role: Role,
        reinvite: bool,
    ) -> Result<User, InviteError> {
        let now = self.clock.now();
        let mut tx = self.uow.begin().await?;
        let user = match tx.accounts().lock_user_by_email(site.id, email).await? {
            Some(existing) if reinvite && existing.is_pending_invite() => {
                tx.accounts()
                    .delete_verification_tokens_of_user(existing.id)
                    .await?;
                existing
            }
            Some(_) => return Err(InviteError::AlreadyRegistered),
            None => {
                let user = User::new(
                    UserId::from_uuid(self.generator.new_id()),
                    site.id,
                    email.clone(),
                    None,
                    role,
                    now,
                );
                match tx.accounts().insert_user(&user).await {
                    Ok(()) => user,
                    Err(RepoError::Conflict(_)) => return Err(InviteError::AlreadyRegistered),
                    Err(e) => return Err(e.into()),
                }
            }
        };
        self.send_verification(&mut tx, site, &user, now).await?;
        tx.commit().await?;
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;

    use super::super::fakes::{NORMAL, Recording, TYPED, email, service, site, user_of};
    use super::*;
    use crate::repo::{MockAccountRepository, MockSiteRepository};
    use crate::templates::EmailKind;

    #[test]
    fn registering_a_taken_address_mails_its_normal_form() {
        let site = site();
        let uow = Recording {
            existing: Some(user_of(&site, NORMAL)),
            ..Recording::default()
        };
        let svc = service(
            MockAccountRepository::new(),
            MockSiteRepository::new(),
            &uow,
        );
        let outcome = svc
            .register(
                &site,
                &email(TYPED),
                Some(&PlainPassword::new("pw-123456".into())),
            )
            .now_or_never()
            .unwrap()
            .unwrap();
        assert_eq!(outcome, Registration::AddressTaken);
        assert_eq!(
            uow.emails(),
            [(EmailKind::SignInAttempt, NORMAL.to_owned())]
        );
        assert!(uow.written.lock().unwrap().users.is_empty());
    }

    #[test]
    fn a_new_registration_is_stored_and_mailed_in_normal_form() {
        let site = site();
        let uow = Recording::default();
        let svc = service(
            MockAccountRepository::new(),
            MockSiteRepository::new(),
            &uow,
        );
        let outcome = svc
            .register(&site, &email(TYPED), None)
            .now_or_never()
            .unwrap()
            .unwrap();
        assert_eq!(outcome, Registration::Created);
        let users: Vec<String> = uow
            .written
            .lock()
            .unwrap()
            .users
            .iter()
            .map(|u| u.email.as_str().to_owned())
            .collect();
        assert_eq!(users, [NORMAL]);
        assert_eq!(uow.emails(), [(EmailKind::Verification, NORMAL.to_owned())]);
    }
}
