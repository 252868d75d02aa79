//! Sessions: login, bearer authentication, logout and refresh.

use super::{AccountService, Failure};
use crate::clock::UnixTime;
use crate::ids::{SiteId, UserId};
use crate::password::{HashError, HashKind, Verification};
use crate::repo::RepoError;
use crate::site::Site;
use crate::token::{self, IssuedToken, RefreshToken};
use crate::user::{Email, PlainPassword, User};

/// Why [`AccountService::login`] refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown address, wrong password, no password or an unusable hash, told apart neither by
    /// the answer nor by its timing; also a login that raced a credential change.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The password matched but the address is not verified yet.
    #[error("email not verified")]
    EmailNotVerified,
    /// Storage or hashing failed.
    #[error(transparent)]
    Failure(#[from] Failure),
}

/// Why [`AccountService::refresh`] refused.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The token is unknown, revoked or expired, or was removed before it could be locked.
    #[error("invalid or expired refresh token")]
    InvalidToken,
    /// The token's user no longer exists.
    #[error("user not found")]
    UserNotFound,
    /// The token's user is not verified.
    #[error("user account not verified")]
    NotVerified,
    /// The token was used before, outside the grace window: its family and every session of the
    /// user (carried here, for the security log) were revoked.
    #[error("refresh token reuse detected")]
    ReuseDetected(Box<User>),
    /// Storage failed.
    #[error(transparent)]
    Failure(#[from] Failure),
}

failure_from!(LoginError, RefreshError);

/// A token handed to the client, with its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionToken {
    /// The plaintext for the client and the digest that was stored.
    pub token: IssuedToken,
    /// When the token stops being accepted.
    pub expires_at: UnixTime,
}

/// What login and refresh return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The signed-in user.
    pub user_id: UserId,
    /// The user's site.
    pub site_id: SiteId,
    /// The new auth (bearer) token.
    pub auth: SessionToken,
    /// `None` on refresh when rotation is off or the request fell in the grace window.
    pub refresh: Option<SessionToken>,
}

impl AccountService {
    /// Login (§4.4). Unknown address, wrong password, no password and an unusable hash are one
    /// outcome, and each costs one password verification. The password is checked before the
    /// verification flag. A bcrypt or outdated hash is replaced on success.
    ///
    /// The tokens are stored with the user row locked, and only if the hash that was verified is
    /// still the stored one: a login that raced a password change, a reset or a deletion mints
    /// nothing, and the rehash writes the hash alone, never a stale copy of the row.
    pub async fn login(
        &self,
        site: &Site,
        email: &Email,
        password: &PlainPassword,
    ) -> Result<Session, LoginError> {
        let user = self.accounts.find_user_by_email(site.id, email).await?;
        let verified_hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let verification = self.hasher.verify(password, verified_hash.clone()).await?;
        let (Some(user), Verification::Match { needs_rehash }, Some(verified_hash)) =
            (user, verification, verified_hash)
        else {
            return Err(LoginError::InvalidCredentials);
        };
        if !user.is_verified {
            return Err(LoginError::EmailNotVerified);
        }
        let rehash = if needs_rehash {
            Some(self.hasher.hash(password).await?)
        } else {
            None
        };
        let now = self.clock.now();
        let family = self.generator.token();
        let (auth, refresh) = self.new_session_tokens(&user, Some(family), now);
        let mut tx = self.uow.begin().await?;
        let current = tx.accounts().lock_user(user.id).await?;
        let Some(current) = current.filter(|u| u.password_hash.as_ref() == Some(&verified_hash))
        else {
            return Err(LoginError::InvalidCredentials);
        };
        if !current.is_verified {
            return Err(LoginError::EmailNotVerified);
        }
        self.store_auth_token(&mut tx, &current, &auth, now).await?;
        if let Some((_, record)) = &refresh {
            tx.accounts().insert_refresh_token(record).await?;
        }
        if let Some(hash) = rehash {
            tx.accounts()
                .replace_password_hash(user.id, &verified_hash, &hash, now)
                .await?;
        }
        tx.commit().await?;
        Ok(Session {
            user_id: user.id,
            site_id: user.site_id,
            auth,
            refresh: refresh.map(|(token, _)| token),
        })
    }

    /// Times a verification of every kind of stored password hash (decision 20), so that a failed
    /// login costs the same whichever kind the account has, from the first one. Run at startup.
    pub async fn learn_password_costs(&self) -> Result<usize, Failure> {
        let kinds: Vec<HashKind> = self
            .accounts
            .password_hash_kinds()
            .await?
            .iter()
            .map(|k| HashKind::of(Some(k)))
            .filter(|k| *k != HashKind::Dummy)
            .collect();
        let count = kinds.len();
        self.hasher.learn_costs(kinds).await?;
        Ok(count)
    }

    /// The bearer check: the user a live auth token belongs to. One indexed query.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<User>, RepoError> {
        self.accounts
            .user_by_auth_token(&token::digest(presented), self.clock.now())
            .await
    }

    /// Logout (§4.5): deletes the presented auth token and, when a refresh token of the same user is
    /// given, revokes its family. Returns whether the auth token was still there.
    pub async fn logout(
        &self,
        user: &User,
        presented_auth: &str,
        refresh: Option<&str>,
    ) -> Result<bool, RepoError> {
        let refresh_family = match refresh {
            Some(r) => self
                .accounts
                .find_refresh_token(&token::digest(r))
                .await?
                .filter(|t| t.user_id == user.id)
                .map(|t| t.family_id),
            None => None,
        };
        let mut tx = self.uow.begin().await?;
        let deleted = tx
            .accounts()
            .delete_auth_token(&token::digest(presented_auth))
            .await?;
        if let Some(family) = refresh_family {
            tx.accounts()
                .revoke_refresh_family(&family, Some(user.id))
                .await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    /// Refresh (§4.6, §5): rotation with an atomic claim, a grace window that mints no second
    /// successor, and reuse detection that revokes the family and all of the user's auth tokens.
    ///
    /// The token is read again with the user row locked, so a refresh that races a password
    /// change, a reset, a logout or a deletion either finishes before it (and its tokens are then
    /// revoked with the rest) or finds its token gone and mints nothing.
    pub async fn refresh(&self, presented: &str) -> Result<Session, RefreshError> {
        let digest = token::digest(presented);
        let now = self.clock.now();
        let live = |t: &RefreshToken| !t.revoked && token::is_live(t.expires_at, now);
        let owner = self
            .accounts
            .find_refresh_token(&digest)
            .await?
            .filter(live)
            .ok_or(RefreshError::InvalidToken)?
            .user_id;
        let mut tx = self.uow.begin().await?;
        let user = tx
            .accounts()
            .lock_user(owner)
            .await?
            .ok_or(RefreshError::UserNotFound)?;
        let stored = tx
            .accounts()
            .lock_refresh_token(&digest)
            .await?
            .filter(|t| live(t) && t.user_id == owner)
            .ok_or(RefreshError::InvalidToken)?;
        if !user.is_verified {
            return Err(RefreshError::NotVerified);
        }
        let rotate = self.settings.refresh_rotation;
        let (auth, successor) =
            self.new_session_tokens(&user, rotate.then(|| stored.family_id.clone()), now);
        if rotate {
            let won =
                stored.used_at.is_none() && tx.accounts().claim_refresh_token(&digest, now).await?;
            if !won {
                // Already used, by an earlier request or by a concurrent one just before.
                let used_at = stored.used_at.unwrap_or(now);
                if now > used_at + self.settings.refresh_grace {
                    tx.accounts()
                        .revoke_refresh_family(&stored.family_id, None)
                        .await?;
                    tx.accounts().delete_auth_tokens_of_user(user.id).await?;
                    tx.commit().await?;
                    return Err(RefreshError::ReuseDetected(Box::new(user)));
                }
                self.store_auth_token(&mut tx, &user, &auth, now).await?;
                tx.commit().await?;
                return Ok(Session {
                    user_id: user.id,
                    site_id: user.site_id,
                    auth,
                    refresh: None,
                });
            }
        }
        self.store_auth_token(&mut tx, &user, &auth, now).await?;
        if let Some((_, record)) = &successor {
            tx.accounts().insert_refresh_token(record).await?;
        }
        tx.commit().await?;
        Ok(Session {
            user_id: user.id,
            site_id: user.site_id,
            auth,
            refresh: successor.map(|(token, _)| token),
        })
    }
}
