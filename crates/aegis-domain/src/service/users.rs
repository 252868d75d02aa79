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

impl AccountService {
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
