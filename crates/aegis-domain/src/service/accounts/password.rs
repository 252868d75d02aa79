//! Passwords: change with the old one, reset through a mailed link.

use super::{AccountService, Failure, Link};
use crate::password::{HashError, Verification};
use crate::repo::RepoError;
use crate::site::Site;
use crate::token::{self, ResetRequest};
use crate::user::{Email, PlainPassword, User};

/// Why [`AccountService::change_password`] refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    /// The old password does not match (or there is none), or the password was replaced
    /// between the check and the change.
    #[error("incorrect password")]
    IncorrectPassword,
    /// The user no longer exists.
    #[error("user not found")]
    UserNotFound,
    /// Storage or hashing failed.
    #[error(transparent)]
    Failure(#[from] Failure),
}

/// Why [`AccountService::reset_password`] refused.
#[derive(Debug, thiserror::Error)]
pub enum ResetPasswordError {
    /// The token is unknown, used, expired or of another site, or its user is gone.
    #[error("invalid or expired reset token")]
    InvalidToken,
    /// Storage or hashing failed.
    #[error(transparent)]
    Failure(#[from] Failure),
}

failure_from!(ChangePasswordError, ResetPasswordError);

impl AccountService {
    /// change-password (§4.10). A wrong old password, no password, or an unusable stored hash is
    /// "incorrect" (decision 16).
    pub async fn change_password(
        &self,
        user: &User,
        old: &PlainPassword,
        new: &PlainPassword,
    ) -> Result<User, ChangePasswordError> {
        let verification = self.hasher.verify(old, user.password_hash.clone()).await?;
        if verification == Verification::NoMatch {
            return Err(ChangePasswordError::IncorrectPassword);
        }
        let hash = self.hasher.hash(new).await?;
        let now = self.clock.now();
        let mut tx = self.uow.begin().await?;
        let verified_hash = user.password_hash.clone();
        let mut user = tx
            .accounts()
            .lock_user(user.id)
            .await?
            .ok_or(ChangePasswordError::UserNotFound)?;
        // The old password was checked against this hash: if a reset or another change replaced
        // it meanwhile, the check no longer stands.
        if user.password_hash != verified_hash {
            return Err(ChangePasswordError::IncorrectPassword);
        }
        self.replace_password(&mut tx, &mut user, hash, now).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// request-password-reset (§4.11): records the request and returns. Whether the address has
    /// an account, and the link if it does, are worked out by [`Self::process_reset_requests`]
    /// off the request path, so the answer takes the same time either way.
    pub async fn request_password_reset(&self, site: &Site, email: &Email) -> Result<(), Failure> {
        self.accounts
            .record_reset_request(&ResetRequest {
                id: self.generator.new_id(),
                site_id: site.id,
                email: email.clone(),
                created_at: self.clock.now(),
            })
            .await?;
        Ok(())
    }

    /// Handles up to `batch` recorded reset requests: a reset link for each one naming an
    /// existing user of its site, verified or not; nothing for an unknown address. Older reset
    /// links stay valid. Each request is claimed for a minute first, then handled in a
    /// transaction of its own that locks, in order, the site (against its deletion) and the user,
    /// as every credential change does, and deletes the request. Returns how many were handled.
    pub async fn process_reset_requests(&self, batch: i64) -> Result<usize, RepoError> {
        const CLAIM_SECONDS: i64 = 60;
        let now = self.clock.now();
        let requests = self
            .accounts
            .claim_reset_requests(batch, now, now + CLAIM_SECONDS)
            .await?;
        for request in &requests {
            let mut tx = self.uow.begin().await?;
            if let Some(site) = tx.sites().hold(request.site_id).await?
                && let Some(user) = tx
                    .accounts()
                    .lock_user_by_email(site.id, &request.email)
                    .await?
            {
                self.send_link(&mut tx, &site, &user, Link::PasswordReset, now)
                    .await?;
            }
            tx.accounts().delete_reset_request(request.id).await?;
            tx.commit().await?;
        }
        Ok(requests.len())
    }

    /// reset-password (§4.12). The token's site is checked before it is consumed, so a cross-site
    /// attempt burns nothing (decision 12).
    pub async fn reset_password(
        &self,
        site: &Site,
        presented: &str,
        new: &PlainPassword,
    ) -> Result<User, ResetPasswordError> {
        let now = self.clock.now();
        let digest = token::digest(presented);
        let stored = self
            .accounts
            .find_reset_token(&digest)
            .await?
            .filter(|t| !t.used && token::is_live(t.token.expires_at, now))
            .ok_or(ResetPasswordError::InvalidToken)?;
        let owner = self
            .accounts
            .find_user(stored.token.user_id)
            .await?
            .filter(|u| u.site_id == site.id)
            .ok_or(ResetPasswordError::InvalidToken)?;
        let hash = self.hasher.hash(new).await?;
        let mut tx = self.uow.begin().await?;
        // The user first, then the token, as every credential change locks them.
        let mut user = tx
            .accounts()
            .lock_user(owner.id)
            .await?
            .ok_or(ResetPasswordError::InvalidToken)?;
        if !tx.accounts().claim_reset_token(&digest).await? {
            return Err(ResetPasswordError::InvalidToken);
        }
        self.replace_password(&mut tx, &mut user, hash, now).await?;
        tx.commit().await?;
        Ok(user)
    }
}
