//! Email verification: checking a verification link and completing it.

use super::{AccountService, Failure};
use crate::password::HashError;
use crate::repo::RepoError;
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

    /// check-verification-token (§4.9): whether a password is still needed, and the address.
    pub async fn check_verification_token(
        &self,
        site: &Site,
        presented: &str,
    ) -> Result<User, VerifyEmailError> {
        self.verification_target(site, presented)
            .await
            .map(|(_, user)| user)
    }

    /// verify-email (§4.8). The token is checked without being consumed (a cross-site or otherwise
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
        user.is_verified = true;
        user.updated_at = now;
        tx.accounts().update_user(&user).await?;
        if newly_verified
            && let Some(event) = user_event(
                UserEvent::Verified,
                site,
                &user,
                self.generator.new_id(),
                now,
            )
        {
            tx.accounts().enqueue_webhook(&event).await?;
        }
        tx.commit().await?;
        let redirect_url = site
            .verification_redirect_url
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| site.frontend_url.clone());
        Ok(Verified { user, redirect_url })
    }
}
