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
    /// Self-registration. The same outcome for a new and an existing address: an existing
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
            let message = templates::sign_in_attempt(site, email.as_str(), self.hosted_pages());
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

    /// Invitation by the tenant backend: a new pending user, or a pending one re-invited with
    /// a fresh link that supersedes the old ones.
    pub async fn invite(&self, site: &Site, email: &Email) -> Result<User, InviteError> {
        self.create_unverified(site, email, Role::User, true).await
    }

    /// Creation by an operator or a site admin: a new pending user with `role`.
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
    use super::super::fakes::{
        Call, NEW_HASH, NORMAL, NOW, Ports, TYPED, email, invited_user, run, site, user_of,
        verified_user,
    };
    use super::*;
    use crate::templates::EmailKind;

    fn password() -> PlainPassword {
        PlainPassword::new("pw-123456".into())
    }

    #[test]
    fn registering_a_taken_address_mails_its_normal_form() {
        let site = site();
        let mut ports = Ports::new();
        ports.uow.existing = Some(user_of(&site, NORMAL));
        // Hashed before the lookup, so a taken address costs what a new one does.
        ports.expect_hashes(1);
        let uow = ports.uow.clone();
        let outcome = run(ports
            .service()
            .register(&site, &email(TYPED), Some(&password())))
        .unwrap();
        assert_eq!(outcome, Registration::AddressTaken);
        assert_eq!(
            uow.emails(),
            [(EmailKind::SignInAttempt, NORMAL.to_owned())]
        );
        assert_eq!(uow.queued()[0].link_expires_at, None);
        assert!(uow.inserted_users().is_empty());
        assert!(uow.verification_tokens().is_empty());
        assert!(uow.committed());
    }

    #[test]
    fn a_new_registration_is_stored_and_mailed_in_normal_form() {
        let site = site();
        let mut ports = Ports::new();
        ports.expect_hashes(0);
        let uow = ports.uow.clone();
        let outcome = run(ports.service().register(&site, &email(TYPED), None)).unwrap();
        assert_eq!(outcome, Registration::Created);
        let users: Vec<String> = uow
            .inserted_users()
            .iter()
            .map(|u| u.email.as_str().to_owned())
            .collect();
        assert_eq!(users, [NORMAL]);
        assert_eq!(uow.emails(), [(EmailKind::Verification, NORMAL.to_owned())]);
    }

    #[test]
    fn registering_on_a_site_without_self_registration_is_refused_before_hashing() {
        let mut site = site();
        site.allow_self_registration = false;
        let mut ports = Ports::new();
        ports.expect_hashes(0);
        let uow = ports.uow.clone();
        let outcome = run(ports
            .service()
            .register(&site, &email(NORMAL), Some(&password())));
        assert!(matches!(
            outcome,
            Err(RegisterError::SelfRegistrationDisabled)
        ));
        assert_eq!(uow.calls(), []);
    }

    #[test]
    fn a_new_registration_stores_the_hash_and_a_verification_link() {
        let site = site();
        let mut ports = Ports::new();
        ports.expect_hashes(1);
        let ttl = ports.settings.verification_ttl;
        let uow = ports.uow.clone();
        let outcome = run(ports
            .service()
            .register(&site, &email(NORMAL), Some(&password())))
        .unwrap();
        assert_eq!(outcome, Registration::Created);
        let [user] = uow.inserted_users().try_into().unwrap();
        assert_eq!(user.site_id, site.id);
        assert_eq!(user.password_hash.as_deref(), Some(NEW_HASH));
        assert_eq!(user.role, Role::User);
        assert!(!user.is_verified);
        assert_eq!((user.created_at, user.updated_at), (NOW, NOW));
        let [token] = uow.verification_tokens().try_into().unwrap();
        assert_eq!(
            (token.site_id, token.user_id, token.expires_at),
            (site.id, user.id, NOW + ttl)
        );
        let [mail] = uow.queued().try_into().unwrap();
        assert_eq!(mail.message.kind, EmailKind::Verification);
        assert_eq!(mail.link_expires_at, Some(NOW + ttl));
        assert_eq!(
            uow.calls(),
            [
                Call::Begin,
                Call::LockUserByEmail(site.id, email(NORMAL)),
                Call::InsertUser(user),
                Call::InsertVerificationToken(token),
                Call::EnqueueEmail(mail),
                Call::Commit,
            ]
        );
    }

    #[test]
    fn a_registration_that_loses_a_concurrent_insert_answers_address_taken() {
        let site = site();
        let mut ports = Ports::new();
        ports.expect_hashes(1);
        ports.uow.answers.insert_user_conflicts = true;
        let uow = ports.uow.clone();
        let outcome = run(ports
            .service()
            .register(&site, &email(NORMAL), Some(&password())))
        .unwrap();
        assert_eq!(outcome, Registration::AddressTaken);
        assert!(uow.verification_tokens().is_empty());
        assert!(uow.queued().is_empty());
        assert!(!uow.committed());
    }

    #[test]
    fn a_registration_whose_password_cannot_be_hashed_looks_nothing_up() {
        let site = site();
        let mut ports = Ports::new();
        ports
            .hasher
            .expect_hash()
            .times(1)
            .returning(|_| Err(HashError::Busy));
        let uow = ports.uow.clone();
        let outcome = run(ports
            .service()
            .register(&site, &email(NORMAL), Some(&password())));
        assert!(matches!(
            outcome,
            Err(RegisterError::Failure(Failure::Hash(HashError::Busy)))
        ));
        assert_eq!(uow.calls(), []);
    }

    #[test]
    fn a_registration_during_a_storage_outage_fails() {
        let mut ports = Ports::new();
        ports.uow.answers.begin_fails = true;
        let outcome = run(ports.service().register(&site(), &email(NORMAL), None));
        assert!(matches!(
            outcome,
            Err(RegisterError::Failure(Failure::Repo(
                RepoError::Unavailable(_)
            )))
        ));
    }

    #[test]
    fn an_invitation_creates_a_pending_user_and_mails_a_link() {
        let site = site();
        let ports = Ports::new();
        let uow = ports.uow.clone();
        let user = run(ports.service().invite(&site, &email(TYPED))).unwrap();
        assert_eq!(user.email.as_str(), NORMAL);
        assert_eq!(user.site_id, site.id);
        assert_eq!(user.role, Role::User);
        assert!(user.is_pending_invite());
        assert_eq!(uow.inserted_users(), std::slice::from_ref(&user));
        let [token] = uow.verification_tokens().try_into().unwrap();
        assert_eq!(token.user_id, user.id);
        assert_eq!(uow.emails(), [(EmailKind::Verification, NORMAL.to_owned())]);
        assert!(uow.committed());
    }

    #[test]
    fn inviting_a_registered_address_is_already_registered() {
        let site = site();
        let verified_without_password = User {
            password_hash: None,
            ..verified_user(&site)
        };
        for existing in [
            user_of(&site, "me@example.com"),
            verified_user(&site),
            verified_without_password,
        ] {
            let mut ports = Ports::new();
            ports.uow.existing = Some(existing.clone());
            let uow = ports.uow.clone();
            let outcome = run(ports.service().invite(&site, &existing.email));
            assert!(
                matches!(outcome, Err(InviteError::AlreadyRegistered)),
                "{existing:?}"
            );
            uow.assert_untouched();
        }
    }

    #[test]
    fn reinviting_a_pending_invite_supersedes_its_links() {
        let site = site();
        let pending = invited_user(&site);
        let mut ports = Ports::new();
        ports.uow.existing = Some(pending.clone());
        let uow = ports.uow.clone();
        let user = run(ports.service().invite(&site, &pending.email)).unwrap();
        assert_eq!(user, pending);
        let [token] = uow.verification_tokens().try_into().unwrap();
        assert_eq!(token.user_id, pending.id);
        let [mail] = uow.queued().try_into().unwrap();
        assert_eq!(
            uow.writes(),
            [
                Call::DeleteVerificationTokensOfUser(pending.id),
                Call::InsertVerificationToken(token),
                Call::EnqueueEmail(mail),
            ]
        );
        assert!(uow.committed());
    }

    #[test]
    fn an_invitation_that_loses_a_concurrent_insert_is_already_registered() {
        let mut ports = Ports::new();
        ports.uow.answers.insert_user_conflicts = true;
        let uow = ports.uow.clone();
        let outcome = run(ports.service().invite(&site(), &email(NORMAL)));
        assert!(matches!(outcome, Err(InviteError::AlreadyRegistered)));
        assert!(uow.verification_tokens().is_empty());
        assert!(!uow.committed());
    }

    #[test]
    fn an_invitation_during_a_storage_outage_fails() {
        let mut ports = Ports::new();
        ports.uow.answers.begin_fails = true;
        let outcome = run(ports.service().invite(&site(), &email(NORMAL)));
        assert!(matches!(
            outcome,
            Err(InviteError::Failure(Failure::Repo(RepoError::Unavailable(
                _
            ))))
        ));
    }

    #[test]
    fn an_admin_creates_a_pending_user_with_the_given_role() {
        let site = site();
        let ports = Ports::new();
        let uow = ports.uow.clone();
        let user = run(ports
            .service()
            .create_by_admin(&site, &email(NORMAL), Role::Admin))
        .unwrap();
        assert_eq!(user.role, Role::Admin);
        assert!(user.is_pending_invite());
        assert_eq!(uow.inserted_users(), [user]);
        assert_eq!(uow.emails(), [(EmailKind::Verification, NORMAL.to_owned())]);
        assert!(uow.committed());
    }

    #[test]
    fn an_admin_creating_a_pending_invite_is_already_registered() {
        let site = site();
        let pending = invited_user(&site);
        let mut ports = Ports::new();
        ports.uow.existing = Some(pending.clone());
        let uow = ports.uow.clone();
        let outcome = run(ports
            .service()
            .create_by_admin(&site, &pending.email, Role::User));
        assert!(matches!(outcome, Err(InviteError::AlreadyRegistered)));
        assert_eq!(uow.writes(), []);
    }
}
