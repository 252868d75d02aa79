//! User management by operators and site admins: listing, deletion, deletion protection,
//! resending verification, and cleanup of expired tokens. These are methods of
//! [`AccountService`]; only their errors live here.

use crate::ids::{SiteId, UserId};
use crate::repo::{CleanupCounts, RepoError};
use crate::service::accounts::AccountService;
use crate::site::Site;
use crate::user::{Role, User};
use crate::webhook::{UserEvent, user_event};

/// Why [`AccountService::delete_user`] deleted nothing.
#[derive(Debug, thiserror::Error)]
pub enum DeleteUserError {
    /// No user has this id.
    #[error("user not found")]
    NotFound,
    /// The user's site row is missing, which the schema should prevent: a data fault, not a
    /// client error.
    #[error("site for this user could not be resolved")]
    SiteMissing,
    /// The user's site is deletion-protected, which protects all of its users.
    #[error("site is protected from deletion")]
    SiteProtected,
    /// The user is deletion-protected ([`User::deletion_protected`]).
    #[error("user is protected from deletion")]
    UserProtected,
    /// The user is the only admin of their site, which must keep one.
    #[error("cannot delete the last admin of a site")]
    LastAdmin,
    /// A protection appeared between the checks and the delete statement, which refused.
    #[error("a deletion guard refused concurrently")]
    Race,
    /// Storage failed (see [`RepoError`]); [`RepoError::Unavailable`] is an outage worth
    /// retrying.
    #[error("{0}")]
    Repo(#[from] RepoError),
}

/// Why [`AccountService::resend_verification`] sent nothing.
#[derive(Debug, thiserror::Error)]
pub enum ResendError {
    /// No user (or no site for the user) has this id.
    #[error("user not found")]
    NotFound,
    /// The user has already verified their address; there is nothing to resend.
    #[error("user is already verified")]
    AlreadyVerified,
    /// Storage failed (see [`RepoError`]); [`RepoError::Unavailable`] is an outage worth
    /// retrying.
    #[error("{0}")]
    Repo(#[from] RepoError),
}

/// Why [`AccountService::verify_by_operator`] changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum OperatorVerifyError {
    /// No user (or no site for the user) has this id.
    #[error("user not found")]
    NotFound,
    /// The user has already verified their address.
    #[error("user is already verified")]
    AlreadyVerified,
    /// Storage failed (see [`RepoError`]).
    #[error("{0}")]
    Repo(#[from] RepoError),
}

impl From<ResendError> for OperatorVerifyError {
    fn from(e: ResendError) -> Self {
        match e {
            ResendError::NotFound => Self::NotFound,
            ResendError::AlreadyVerified => Self::AlreadyVerified,
            ResendError::Repo(e) => Self::Repo(e),
        }
    }
}

/// Why [`AccountService::set_user_role`] changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum SetRoleError {
    /// No user (or no site for the user) has this id.
    #[error("user not found")]
    NotFound,
    /// The user is the only admin of their site, which must keep one.
    #[error("cannot demote the last admin of a site")]
    LastAdmin,
    /// Storage failed (see [`RepoError`]).
    #[error("{0}")]
    Repo(#[from] RepoError),
}

/// A user brought in by an import: no email is sent and no webhook fires; the password hash, when
/// there is one, is kept as it is (bcrypt or Argon2, upgraded at the next login).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedUser {
    /// The address, in its normal form.
    pub email: crate::user::Email,
    /// The role on the site.
    pub role: Role,
    /// Whether the address counts as verified.
    pub verified: bool,
    /// A bcrypt or Argon2 PHC hash ([`crate::password::is_verifiable_hash`]), or none.
    pub password_hash: Option<String>,
    /// When the user was created; now when absent.
    pub created_at: Option<crate::clock::UnixTime>,
}

/// What an import of one batch did, in input order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// A new user.
    Created,
    /// The site already has a user with this address: left as it is.
    Exists,
}

impl AccountService {
    /// Imports `users` into `site` in one transaction: each address the site does not have yet
    /// becomes a user; the others are left as they are and reported. With `dry_run`, the
    /// transaction is rolled back, so the report says what an import would do.
    pub async fn import_users(
        &self,
        site: &Site,
        users: &[ImportedUser],
        dry_run: bool,
    ) -> Result<Vec<Imported>, RepoError> {
        let now = self.clock().now();
        let mut tx = self.uow().begin().await?;
        // Held, so the site cannot be deleted under the import.
        if tx.sites().lock(site.id).await?.is_none() {
            return Err(RepoError::Conflict(
                "the site was deleted during the import".into(),
            ));
        }
        // A second line with an address already in this batch exists by the time it is reached.
        let mut seen = std::collections::HashSet::with_capacity(users.len());
        let mut fresh = Vec::with_capacity(users.len());
        let firsts: Vec<bool> = users
            .iter()
            .map(|imported| seen.insert(imported.email.as_str()))
            .collect();
        for (imported, _) in users.iter().zip(&firsts).filter(|(_, first)| **first) {
            let mut user = User::new(
                UserId::from_uuid(self.generator().new_id()),
                site.id,
                imported.email.clone(),
                imported.password_hash.clone(),
                imported.role,
                imported.created_at.unwrap_or(now),
            );
            user.is_verified = imported.verified;
            user.updated_at = now;
            fresh.push(user);
        }
        let mut stored = tx
            .accounts()
            .insert_users_if_absent(&fresh)
            .await?
            .into_iter();
        let outcomes = firsts
            .into_iter()
            .map(|first| {
                if first && stored.next().unwrap_or(false) {
                    Imported::Created
                } else {
                    Imported::Exists
                }
            })
            .collect();
        if !dry_run {
            tx.commit().await?;
        }
        Ok(outcomes)
    }

    /// The user with this id, in whichever site.
    pub async fn user(&self, id: UserId) -> Result<Option<User>, RepoError> {
        self.accounts().find_user(id).await
    }

    /// The user of `site` with this address (in its normal form).
    pub async fn user_by_email(
        &self,
        site: SiteId,
        email: &crate::user::Email,
    ) -> Result<Option<User>, RepoError> {
        self.accounts().find_user_by_email(site, email).await
    }

    /// An operator marks a user verified without a link: the verification links still
    /// outstanding are revoked, and `user.verified` is queued in the same transaction, as
    /// verify-email does. A user without a password still sets one through a password reset.
    pub async fn verify_by_operator(&self, id: UserId) -> Result<User, OperatorVerifyError> {
        let now = self.clock().now();
        let (mut tx, mut user, site) = self.unverified_without_links(id).await?;
        self.mark_verified(&mut tx, &site, &mut user, true, now)
            .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Where an operator's resend and verify both start: a transaction holding the unverified user
    /// and their site locked, with the user's outstanding verification links revoked.
    async fn unverified_without_links(
        &self,
        id: UserId,
    ) -> Result<(Box<dyn crate::repo::Transaction>, User, Site), ResendError> {
        let mut tx = self.uow().begin().await?;
        let user = tx
            .accounts()
            .lock_user(id)
            .await?
            .ok_or(ResendError::NotFound)?;
        if user.is_verified {
            return Err(ResendError::AlreadyVerified);
        }
        let site: Site = tx
            .sites()
            .lock(user.site_id)
            .await?
            .ok_or(ResendError::NotFound)?;
        tx.accounts()
            .delete_verification_tokens_of_user(user.id)
            .await?;
        Ok((tx, user, site))
    }

    /// Changes a user's role. The site row is locked first, so two demotions of a site's last
    /// two admins are serialised and the site keeps one (as deletion does).
    pub async fn set_user_role(&self, id: UserId, role: Role) -> Result<User, SetRoleError> {
        let user = self
            .accounts()
            .find_user(id)
            .await?
            .ok_or(SetRoleError::NotFound)?;
        let now = self.clock().now();
        let mut tx = self.uow().begin().await?;
        let site = tx
            .sites()
            .lock(user.site_id)
            .await?
            .ok_or(SetRoleError::NotFound)?;
        let mut user = tx
            .accounts()
            .lock_user(id)
            .await?
            .ok_or(SetRoleError::NotFound)?;
        if user.role == role {
            return Ok(user);
        }
        if user.role == Role::Admin && tx.accounts().count_admins(site.id).await? <= 1 {
            return Err(SetRoleError::LastAdmin);
        }
        user.role = role;
        user.updated_at = now;
        tx.accounts().update_user(&user).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Every user of a site, oldest first.
    pub async fn list_users(&self, site: SiteId) -> Result<Vec<User>, RepoError> {
        self.accounts().list_users(site).await
    }

    /// A user, only if they belong to `site`.
    pub async fn user_in_site(&self, site: SiteId, id: UserId) -> Result<Option<User>, RepoError> {
        Ok(self
            .accounts()
            .find_user(id)
            .await?
            .filter(|u| u.site_id == site))
    }

    /// Deletes a user after these checks, in this order: the user exists, the site is not
    /// protected, the user is not protected, the user is not the site's last admin. Queues
    /// `user.deleted` in the same transaction. The site row is locked, so concurrent deletes of a
    /// site's admins and changes of protection are serialised.
    pub async fn delete_user(&self, id: UserId) -> Result<User, DeleteUserError> {
        let user = self
            .accounts()
            .find_user(id)
            .await?
            .ok_or(DeleteUserError::NotFound)?;
        let now = self.clock().now();
        let mut tx = self.uow().begin().await?;
        let site = tx
            .sites()
            .lock(user.site_id)
            .await?
            .ok_or(DeleteUserError::SiteMissing)?;
        let user = tx
            .accounts()
            .lock_user(id)
            .await?
            .ok_or(DeleteUserError::NotFound)?;
        if site.deletion_protected {
            return Err(DeleteUserError::SiteProtected);
        }
        if user.deletion_protected {
            return Err(DeleteUserError::UserProtected);
        }
        if user.role == Role::Admin && tx.accounts().count_admins(site.id).await? <= 1 {
            return Err(DeleteUserError::LastAdmin);
        }
        if !tx.accounts().delete_user_guarded(id).await? {
            return Err(DeleteUserError::Race);
        }
        if let Some(event) = user_event(
            UserEvent::Deleted,
            &site,
            &user,
            self.generator().new_id(),
            now,
        ) {
            tx.accounts().enqueue_webhook(&event).await?;
        }
        tx.commit().await?;
        Ok(user)
    }

    /// Sets a user's deletion protection. The site row is locked first, so this and a site delete
    /// never interleave.
    pub async fn set_user_protection(
        &self,
        id: UserId,
        protected: bool,
    ) -> Result<Option<User>, RepoError> {
        let Some(user) = self.accounts().find_user(id).await? else {
            return Ok(None);
        };
        let now = self.clock().now();
        let mut tx = self.uow().begin().await?;
        if tx.sites().lock(user.site_id).await?.is_none() {
            return Ok(None);
        }
        let Some(mut user) = tx.accounts().lock_user(id).await? else {
            return Ok(None);
        };
        user.deletion_protected = protected;
        user.updated_at = now;
        tx.accounts().update_user(&user).await?;
        tx.commit().await?;
        Ok(Some(user))
    }

    /// Issues a new verification link for an unverified user, revoking the older ones
    /// (decision 14), and queues the email durably: a mail-provider outage delays it, never fails
    /// this call.
    pub async fn resend_verification(&self, id: UserId) -> Result<(), ResendError> {
        let now = self.clock().now();
        let (mut tx, user, site) = self.unverified_without_links(id).await?;
        self.send_verification(&mut tx, &site, &user, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes expired rows of every token table; live rows are never touched.
    pub async fn cleanup_expired_tokens(&self) -> Result<CleanupCounts, RepoError> {
        self.accounts()
            .delete_expired_tokens(self.clock().now())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::accounts::fakes::{
        Call, NOW, Ports, invited_user, other_site, run, site, user_of, verified_user, webhook_site,
    };
    use crate::templates::EmailKind;

    /// Ports where `user` is found by id outside and inside the transaction, and `site` is the
    /// only site.
    fn ports_with(site: &Site, user: &User) -> Ports {
        let mut ports = Ports::new();
        let found = user.clone();
        let id = user.id;
        ports
            .accounts
            .expect_find_user()
            .withf(move |i| *i == id)
            .returning(move |_| Ok(Some(found.clone())));
        ports.uow.existing = Some(user.clone());
        ports.uow.site = Some(site.clone());
        ports
    }

    fn admin_of(site: &Site) -> User {
        User {
            role: Role::Admin,
            ..verified_user(site)
        }
    }

    fn unavailable() -> RepoError {
        RepoError::Unavailable("fake outage".into())
    }

    #[test]
    fn listing_returns_the_sites_users() {
        let site = site();
        let user = verified_user(&site);
        let mut ports = Ports::new();
        let listed = vec![user.clone()];
        let id = site.id;
        ports
            .accounts
            .expect_list_users()
            .withf(move |s| *s == id)
            .times(1)
            .returning(move |_| Ok(listed.clone()));
        let svc = ports.service();

        assert_eq!(run(svc.list_users(site.id)).unwrap(), vec![user]);
    }

    #[test]
    fn a_user_is_found_only_in_their_own_site() {
        let site = site();
        let user = verified_user(&site);
        let svc = ports_with(&site, &user).service();

        assert_eq!(
            run(svc.user_in_site(site.id, user.id)).unwrap(),
            Some(user.clone())
        );
        assert_eq!(
            run(svc.user_in_site(other_site().id, user.id)).unwrap(),
            None
        );
    }

    #[test]
    fn deleting_a_user_deletes_them_and_commits_without_a_webhook_when_none_is_configured() {
        let site = site();
        let user = verified_user(&site);
        let ports = ports_with(&site, &user);
        let uow = ports.uow.clone();
        let svc = ports.service();

        assert_eq!(run(svc.delete_user(user.id)).unwrap(), user);
        assert_eq!(
            uow.calls(),
            vec![
                Call::Begin,
                Call::LockSite(site.id),
                Call::LockUser(user.id),
                Call::DeleteUserGuarded(user.id),
                Call::Commit,
            ]
        );
    }

    #[test]
    fn deleting_a_user_of_a_site_with_a_webhook_queues_user_deleted() {
        let site = webhook_site();
        let user = verified_user(&site);
        let ports = ports_with(&site, &user);
        let uow = ports.uow.clone();
        let svc = ports.service();

        run(svc.delete_user(user.id)).unwrap();
        let writes = uow.writes();
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert_eq!(writes[0], Call::DeleteUserGuarded(user.id));
        let Call::EnqueueWebhook(event) = &writes[1] else {
            panic!("expected a webhook, got {:?}", writes[1]);
        };
        assert_eq!(event.event_type, "user.deleted");
        assert_eq!(event.site_id, site.id);
        assert_eq!(event.created_at, NOW);
        assert!(event.payload.contains(&user.id.to_string()));
        assert!(uow.committed());
    }

    #[test]
    fn deleting_one_of_several_admins_counts_them_then_deletes() {
        let site = site();
        let admin = admin_of(&site);
        let mut ports = ports_with(&site, &admin);
        ports.uow.answers.admins = 2;
        let uow = ports.uow.clone();
        let svc = ports.service();

        run(svc.delete_user(admin.id)).unwrap();
        let calls = uow.calls();
        assert!(calls.contains(&Call::CountAdmins(site.id)), "{calls:?}");
        assert_eq!(uow.writes(), vec![Call::DeleteUserGuarded(admin.id)]);
        assert!(uow.committed());
    }

    #[test]
    fn deleting_an_unknown_user_is_not_found_and_begins_nothing() {
        let site = site();
        let user = verified_user(&site);
        let mut ports = Ports::new();
        ports.accounts.expect_find_user().returning(|_| Ok(None));
        let uow = ports.uow.clone();
        let svc = ports.service();

        assert!(matches!(
            run(svc.delete_user(user.id)),
            Err(DeleteUserError::NotFound)
        ));
        assert!(!uow.began());
    }

    #[test]
    fn deleting_a_user_gone_by_the_time_it_is_locked_is_not_found() {
        let site = site();
        let user = verified_user(&site);
        let mut ports = ports_with(&site, &user);
        ports.uow.existing = None;
        let uow = ports.uow.clone();
        let svc = ports.service();

        assert!(matches!(
            run(svc.delete_user(user.id)),
            Err(DeleteUserError::NotFound)
        ));
        uow.assert_untouched();
    }

    #[test]
    fn deleting_a_user_whose_site_is_missing_is_a_data_fault() {
        let site = site();
        let user = verified_user(&site);
        let mut ports = ports_with(&site, &user);
        ports.uow.site = Some(other_site());
        let uow = ports.uow.clone();
        let svc = ports.service();

        assert!(matches!(
            run(svc.delete_user(user.id)),
            Err(DeleteUserError::SiteMissing)
        ));
        uow.assert_untouched();
    }

    #[test]
    fn deleting_a_user_of_a_protected_site_is_refused_before_the_user_guard() {
        let mut site = site();
        site.deletion_protected = true;
        let user = User {
            deletion_protected: true,
            ..verified_user(&site)
        };
        let ports = ports_with(&site, &user);
        let uow = ports.uow.clone();
        let svc = ports.service();

        assert!(matches!(
            run(svc.delete_user(user.id)),
            Err(DeleteUserError::SiteProtected)
        ));
        uow.assert_untouched();
    }

    #[test]
    fn deleting_a_protected_user_is_refused() {
        let site = site();
        let user = User {
            deletion_protected: true,
            ..verified_user(&site)
        };
        let ports = ports_with(&site, &user);
        let uow = ports.uow.clone();
        let svc = ports.service();

        assert!(matches!(
            run(svc.delete_user(user.id)),
            Err(DeleteUserError::UserProtected)
        ));
        uow.assert_untouched();
    }

    #[test]
    fn deleting_the_last_admin_is_refused() {
        let site = site();
        let admin = admin_of(&site);
        let mut ports = ports_with(&site, &admin);
        ports.uow.answers.admins = 1;
        let uow = ports.uow.clone();
        let svc = ports.service();

        assert!(matches!(
            run(svc.delete_user(admin.id)),
            Err(DeleteUserError::LastAdmin)
        ));
        assert!(uow.calls().contains(&Call::CountAdmins(site.id)));
        uow.assert_untouched();
    }

    #[test]
    fn a_delete_refused_by_its_guard_is_a_race_and_queues_nothing() {
        let site = webhook_site();
        let user = verified_user(&site);
        let mut ports = ports_with(&site, &user);
        ports.uow.answers.delete_refused = true;
        let uow = ports.uow.clone();
        let svc = ports.service();

        assert!(matches!(
            run(svc.delete_user(user.id)),
            Err(DeleteUserError::Race)
        ));
        assert_eq!(uow.writes(), vec![Call::DeleteUserGuarded(user.id)]);
        assert!(!uow.committed());
    }

    #[test]
    fn a_storage_failure_while_deleting_is_a_repo_error() {
        let site = site();
        let user = verified_user(&site);
        let mut ports = Ports::new();
        ports
            .accounts
            .expect_find_user()
            .returning(|_| Err(unavailable()));
        let svc = ports.service();
        assert!(matches!(
            run(svc.delete_user(user.id)),
            Err(DeleteUserError::Repo(RepoError::Unavailable(_)))
        ));

        let mut ports = ports_with(&site, &user);
        ports.uow.answers.begin_fails = true;
        let svc = ports.service();
        assert!(matches!(
            run(svc.delete_user(user.id)),
            Err(DeleteUserError::Repo(RepoError::Unavailable(_)))
        ));
    }

    #[test]
    fn setting_protection_locks_the_site_then_the_user_and_writes_the_flag() {
        let site = site();
        let user = verified_user(&site);
        let ports = ports_with(&site, &user);
        let uow = ports.uow.clone();
        let svc = ports.service();

        let updated = run(svc.set_user_protection(user.id, true))
            .unwrap()
            .expect("the user exists");
        assert!(updated.deletion_protected);
        assert_eq!(updated.updated_at, NOW);
        assert_eq!(
            uow.calls(),
            vec![
                Call::Begin,
                Call::LockSite(site.id),
                Call::LockUser(user.id),
                Call::UpdateUser(updated),
                Call::Commit,
            ]
        );
    }

    #[test]
    fn clearing_protection_writes_the_cleared_flag() {
        let site = site();
        let user = User {
            deletion_protected: true,
            ..verified_user(&site)
        };
        let ports = ports_with(&site, &user);
        let uow = ports.uow.clone();
        let svc = ports.service();

        let updated = run(svc.set_user_protection(user.id, false))
            .unwrap()
            .unwrap();
        assert!(!updated.deletion_protected);
        assert_eq!(uow.writes(), vec![Call::UpdateUser(updated)]);
        assert!(uow.committed());
    }

    #[test]
    fn setting_protection_of_a_missing_user_or_site_writes_nothing() {
        let site = site();
        let user = verified_user(&site);

        let mut ports = Ports::new();
        ports.accounts.expect_find_user().returning(|_| Ok(None));
        let uow = ports.uow.clone();
        let svc = ports.service();
        assert_eq!(run(svc.set_user_protection(user.id, true)).unwrap(), None);
        assert!(!uow.began());

        let mut ports = ports_with(&site, &user);
        ports.uow.site = None;
        let uow = ports.uow.clone();
        let svc = ports.service();
        assert_eq!(run(svc.set_user_protection(user.id, true)).unwrap(), None);
        uow.assert_untouched();

        let mut ports = ports_with(&site, &user);
        ports.uow.existing = None;
        let uow = ports.uow.clone();
        let svc = ports.service();
        assert_eq!(run(svc.set_user_protection(user.id, true)).unwrap(), None);
        uow.assert_untouched();
    }

    #[test]
    fn a_failed_protection_write_is_not_committed() {
        let site = site();
        let user = verified_user(&site);
        let mut ports = ports_with(&site, &user);
        ports.uow.answers.update_user_conflicts = true;
        let uow = ports.uow.clone();
        let svc = ports.service();

        assert!(matches!(
            run(svc.set_user_protection(user.id, true)),
            Err(RepoError::Conflict(_))
        ));
        assert!(!uow.committed());
    }

    #[test]
    fn resending_revokes_older_links_then_stores_a_new_one_and_queues_the_email() {
        let site = site();
        let user = user_of(&site, "new@example.com");
        let mut ports = Ports::new();
        ports.uow.existing = Some(user.clone());
        ports.uow.site = Some(site.clone());
        let uow = ports.uow.clone();
        let svc = ports.service();

        run(svc.resend_verification(user.id)).unwrap();
        let writes = uow.writes();
        assert_eq!(writes.len(), 3, "{writes:?}");
        assert_eq!(writes[0], Call::DeleteVerificationTokensOfUser(user.id));
        let tokens = uow.verification_tokens();
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].user_id, user.id);
        assert_eq!(tokens[0].site_id, site.id);
        assert!(tokens[0].expires_at > NOW);
        assert_eq!(
            uow.emails(),
            vec![(EmailKind::Verification, "new@example.com".to_owned())]
        );
        assert_eq!(
            uow.calls()[..3],
            [
                Call::Begin,
                Call::LockUser(user.id),
                Call::LockSite(site.id)
            ]
        );
        assert!(uow.committed());
    }

    #[test]
    fn resending_to_an_unknown_user_is_not_found() {
        let site = site();
        let user = user_of(&site, "new@example.com");
        let mut ports = Ports::new();
        ports.uow.site = Some(site.clone());
        let uow = ports.uow.clone();
        let svc = ports.service();

        assert!(matches!(
            run(svc.resend_verification(user.id)),
            Err(ResendError::NotFound)
        ));
        uow.assert_untouched();
    }

    #[test]
    fn resending_to_a_user_whose_site_is_missing_is_not_found() {
        let site = site();
        let user = user_of(&site, "new@example.com");
        let mut ports = Ports::new();
        ports.uow.existing = Some(user.clone());
        ports.uow.site = Some(other_site());
        let uow = ports.uow.clone();
        let svc = ports.service();

        assert!(matches!(
            run(svc.resend_verification(user.id)),
            Err(ResendError::NotFound)
        ));
        uow.assert_untouched();
    }

    #[test]
    fn resending_to_a_verified_user_sends_nothing() {
        let site = site();
        let user = verified_user(&site);
        let mut ports = Ports::new();
        ports.uow.existing = Some(user.clone());
        ports.uow.site = Some(site.clone());
        let uow = ports.uow.clone();
        let svc = ports.service();

        assert!(matches!(
            run(svc.resend_verification(user.id)),
            Err(ResendError::AlreadyVerified)
        ));
        uow.assert_untouched();
    }

    #[test]
    fn a_storage_failure_while_resending_is_a_repo_error() {
        let site = site();
        let user = user_of(&site, "new@example.com");
        let mut ports = Ports::new();
        ports.uow.existing = Some(user.clone());
        ports.uow.answers.begin_fails = true;
        let svc = ports.service();

        assert!(matches!(
            run(svc.resend_verification(user.id)),
            Err(ResendError::Repo(RepoError::Unavailable(_)))
        ));
    }

    #[test]
    fn cleanup_deletes_what_expired_before_now() {
        let mut ports = Ports::new();
        let counts = CleanupCounts {
            auth_tokens: 3,
            ..CleanupCounts::default()
        };
        ports
            .accounts
            .expect_delete_expired_tokens()
            .withf(|now| *now == NOW)
            .times(1)
            .returning(move |_| Ok(counts));
        let svc = ports.service();

        assert_eq!(run(svc.cleanup_expired_tokens()).unwrap().auth_tokens, 3);
    }

    #[test]
    fn an_operator_verification_revokes_the_links_and_queues_user_verified() {
        let site = webhook_site();
        let user = invited_user(&site);
        let ports = ports_with(&site, &user);
        let uow = ports.uow.clone();
        let svc = ports.service();

        let verified = run(svc.verify_by_operator(user.id)).unwrap();
        assert!(verified.is_verified);
        let writes = uow.writes();
        assert_eq!(writes[0], Call::DeleteVerificationTokensOfUser(user.id));
        assert!(matches!(&writes[1], Call::UpdateUser(u) if u.is_verified && u.updated_at == NOW));
        let Call::EnqueueWebhook(event) = &writes[2] else {
            panic!("expected a webhook, got {writes:?}");
        };
        assert_eq!(event.event_type, "user.verified");
        assert!(uow.committed());
    }

    #[test]
    fn verifying_a_verified_user_changes_nothing() {
        let site = webhook_site();
        let user = verified_user(&site);
        let ports = ports_with(&site, &user);
        let uow = ports.uow.clone();
        let svc = ports.service();

        assert!(matches!(
            run(svc.verify_by_operator(user.id)),
            Err(OperatorVerifyError::AlreadyVerified)
        ));
        assert!(uow.writes().is_empty());
        assert!(!uow.committed());
    }

    #[test]
    fn the_last_admin_of_a_site_is_not_demoted() {
        let site = site();
        let admin = admin_of(&site);
        let mut ports = ports_with(&site, &admin);
        ports.uow.answers.admins = 1;
        let uow = ports.uow.clone();
        let svc = ports.service();

        assert!(matches!(
            run(svc.set_user_role(admin.id, Role::User)),
            Err(SetRoleError::LastAdmin)
        ));
        assert!(uow.writes().is_empty());

        let mut ports = ports_with(&site, &admin);
        ports.uow.answers.admins = 2;
        let uow = ports.uow.clone();
        let demoted = run(ports.service().set_user_role(admin.id, Role::User)).unwrap();
        assert_eq!(demoted.role, Role::User);
        assert!(matches!(&uow.writes()[0], Call::UpdateUser(u) if u.role == Role::User));
        assert!(uow.committed());
    }

    #[test]
    fn an_import_creates_new_addresses_keeps_hashes_and_skips_existing_ones() {
        let site = site();
        let existing = verified_user(&site);
        let mut ports = Ports::new();
        ports.uow.site = Some(site.clone());
        ports.uow.existing = Some(existing.clone());
        let uow = ports.uow.clone();
        let svc = ports.service();
        let taken = ImportedUser {
            email: existing.email.clone(),
            role: Role::User,
            verified: true,
            password_hash: None,
            created_at: None,
        };
        let fresh = ImportedUser {
            email: crate::user::Email::parse("new@example.com").unwrap(),
            role: Role::Admin,
            verified: true,
            password_hash: Some("$2b$04$kept".into()),
            created_at: Some(1_500_000_000),
        };

        let outcomes = run(svc.import_users(&site, &[taken, fresh], false)).unwrap();
        assert_eq!(outcomes, [Imported::Exists, Imported::Created]);
        let inserted = uow.inserted_users();
        assert_eq!(inserted.len(), 1);
        assert_eq!(inserted[0].email.as_str(), "new@example.com");
        assert_eq!(inserted[0].password_hash.as_deref(), Some("$2b$04$kept"));
        assert_eq!(inserted[0].created_at, 1_500_000_000);
        assert!(inserted[0].is_verified);
        assert!(uow.emails().is_empty(), "no email for imported users");
        assert!(uow.committed());
    }

    #[test]
    fn a_second_line_with_the_same_address_exists_by_the_time_it_is_reached() {
        let site = site();
        let mut ports = Ports::new();
        ports.uow.site = Some(site.clone());
        let uow = ports.uow.clone();
        let line = |role| ImportedUser {
            email: crate::user::Email::parse("twice@example.com").unwrap(),
            role,
            verified: false,
            password_hash: None,
            created_at: None,
        };
        let outcomes =
            run(ports
                .service()
                .import_users(&site, &[line(Role::Admin), line(Role::User)], false))
            .unwrap();
        assert_eq!(outcomes, [Imported::Created, Imported::Exists]);
        let inserted = uow.inserted_users();
        assert_eq!(inserted.len(), 1);
        assert_eq!(inserted[0].role, Role::Admin, "the first line wins");
    }

    #[test]
    fn a_dry_run_import_commits_nothing() {
        let site = site();
        let mut ports = Ports::new();
        ports.uow.site = Some(site.clone());
        let uow = ports.uow.clone();
        let fresh = ImportedUser {
            email: crate::user::Email::parse("new@example.com").unwrap(),
            role: Role::User,
            verified: false,
            password_hash: None,
            created_at: None,
        };
        let outcomes = run(ports.service().import_users(&site, &[fresh], true)).unwrap();
        assert_eq!(outcomes, [Imported::Created]);
        assert!(!uow.committed());
    }
}
