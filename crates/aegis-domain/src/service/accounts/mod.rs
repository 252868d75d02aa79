//! Accounts and sessions: registration, verification, login, bearer authentication, logout and
//! refresh.

use std::sync::Arc;

use crate::clock::{Clock, UnixTime};
use crate::password::{HashError, PasswordHasher};
use crate::repo::{
    AccountRepository, QueuedEmail, RepoError, SiteRepository, Transaction, UnitOfWork,
};
use crate::secrets::SecretGenerator;
use crate::site::Site;
use crate::templates::{self, RenderedEmail};
use crate::token::{IssuedToken, RefreshToken, StoredToken};
use crate::user::User;

// Before the use-case modules, which implement `From` for their errors with it.
macro_rules! failure_from {
    ($($error:ident),*) => {$(
        impl From<RepoError> for $error {
            fn from(e: RepoError) -> Self {
                Self::Failure(e.into())
            }
        }
        impl From<HashError> for $error {
            fn from(e: HashError) -> Self {
                Self::Failure(e.into())
            }
        }
    )*};
}

mod email_change;
#[cfg(test)]
pub(crate) mod fakes;
mod links;
mod password;
mod registration;
mod session;
mod verification;

pub use email_change::EmailChangeError;
pub use links::{LinkKind, LinkState};
pub use password::{ChangePasswordError, ResetPasswordError};
pub use registration::{InviteError, RegisterError, Registration};
pub use session::{LoginError, RefreshError, Session, SessionToken};
pub use verification::{Verified, VerifyEmailError};

/// Lifetimes and refresh behaviour, in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSettings {
    /// How long an auth (bearer) token lives.
    pub auth_token_ttl: i64,
    /// How long a refresh token lives.
    pub refresh_token_ttl: i64,
    /// Whether a refresh consumes its token and hands out a successor in the same family.
    pub refresh_rotation: bool,
    /// How long after its first use a rotated refresh token may be presented again (answered
    /// with an auth token only) before the reuse counts as theft.
    pub refresh_grace: i64,
    /// How long an email-verification link stays valid.
    pub verification_ttl: i64,
    /// How long a password-reset link stays valid.
    pub password_reset_ttl: i64,
    /// How long an email-change confirmation link stays valid.
    pub email_change_ttl: i64,
    /// `VERIFICATION_LINK_BASE` (decision 26).
    pub verification_link_base: Option<String>,
    /// `HOSTED_PAGES_URL` (decision 80): when set, every emailed link goes to Aegis's own pages.
    pub hosted_pages_url: Option<String>,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            auth_token_ttl: 3_600,
            refresh_token_ttl: 604_800,
            refresh_rotation: true,
            refresh_grace: 30,
            verification_ttl: 86_400,
            password_reset_ttl: 3_600,
            email_change_ttl: 3_600,
            verification_link_base: None,
            hosted_pages_url: None,
        }
    }
}

/// Failures every account use case can have besides its own outcomes.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Storage failed or could not be reached.
    #[error("{0}")]
    Repo(#[from] RepoError),
    /// Password hashing did not run.
    #[error("{0}")]
    Hash(#[from] HashError),
}

/// The single-use links Aegis mails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Verification,
    PasswordReset,
}

/// Account and session use cases.
#[derive(Clone)]
pub struct AccountService {
    accounts: Arc<dyn AccountRepository>,
    sites: Arc<dyn SiteRepository>,
    uow: Arc<dyn UnitOfWork>,
    hasher: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
    generator: Arc<dyn SecretGenerator>,
    settings: AccountSettings,
}

impl AccountService {
    /// The service over its ports: reads through `accounts` and `sites`, writes through
    /// transactions of `uow`, passwords through `hasher`, time from `clock` and identifiers and
    /// tokens from `generator`.
    pub fn new(
        accounts: Arc<dyn AccountRepository>,
        sites: Arc<dyn SiteRepository>,
        uow: Arc<dyn UnitOfWork>,
        hasher: Arc<dyn PasswordHasher>,
        clock: Arc<dyn Clock>,
        generator: Arc<dyn SecretGenerator>,
        settings: AccountSettings,
    ) -> Self {
        Self {
            accounts,
            sites,
            uow,
            hasher,
            clock,
            generator,
            settings,
        }
    }

    pub(crate) fn accounts(&self) -> &dyn AccountRepository {
        self.accounts.as_ref()
    }

    pub(crate) fn uow(&self) -> &dyn UnitOfWork {
        self.uow.as_ref()
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    pub(crate) fn generator(&self) -> &dyn SecretGenerator {
        self.generator.as_ref()
    }

    /// `HOSTED_PAGES_URL`, when emailed links go to Aegis's own pages.
    pub(crate) fn hosted_pages(&self) -> Option<&str> {
        self.settings.hosted_pages_url.as_deref()
    }

    /// A message to queue; `link_expires_at` is the expiry of the token its link carries.
    fn queued(
        &self,
        site: &Site,
        message: RenderedEmail,
        now: UnixTime,
        link_expires_at: Option<UnixTime>,
    ) -> QueuedEmail {
        QueuedEmail {
            id: self.generator.new_id(),
            site_id: site.id,
            from_name: site.email_from_name.clone(),
            from_address: site.email_from.clone(),
            message,
            created_at: now,
            link_expires_at,
        }
    }

    /// Issues a verification token for `user` and queues the verification email, in `tx`.
    pub(crate) async fn send_verification(
        &self,
        tx: &mut Box<dyn Transaction>,
        site: &Site,
        user: &User,
        now: UnixTime,
    ) -> Result<(), RepoError> {
        self.send_link(tx, site, user, Link::Verification, now)
            .await
    }

    /// Issues a token of `link`'s kind for `user`, stores its digest and queues the email that
    /// carries it, in `tx`.
    async fn send_link(
        &self,
        tx: &mut Box<dyn Transaction>,
        site: &Site,
        user: &User,
        link: Link,
        now: UnixTime,
    ) -> Result<(), RepoError> {
        let issued = IssuedToken::generate(self.generator.as_ref());
        let ttl = match link {
            Link::Verification => self.settings.verification_ttl,
            Link::PasswordReset => self.settings.password_reset_ttl,
        };
        let stored = StoredToken {
            digest: issued.digest.clone(),
            site_id: site.id,
            user_id: user.id,
            expires_at: now + ttl,
            created_at: now,
        };
        let recipient = user.email.as_str();
        let message = match link {
            Link::Verification => {
                tx.accounts().insert_verification_token(&stored).await?;
                templates::verification(
                    site,
                    recipient,
                    &issued.plaintext,
                    self.settings.verification_link_base.as_deref(),
                    self.hosted_pages(),
                )
            }
            Link::PasswordReset => {
                tx.accounts().insert_reset_token(&stored).await?;
                templates::password_reset(
                    site,
                    recipient,
                    &issued.plaintext,
                    ttl,
                    self.hosted_pages(),
                )
            }
        };
        tx.accounts()
            .enqueue_email(&self.queued(site, message, now, Some(stored.expires_at)))
            .await
    }

    fn new_session_tokens(
        &self,
        user: &User,
        family_id: Option<String>,
        now: UnixTime,
    ) -> (SessionToken, Option<(SessionToken, RefreshToken)>) {
        let auth = SessionToken {
            token: IssuedToken::generate(self.generator.as_ref()),
            expires_at: now + self.settings.auth_token_ttl,
        };
        let refresh = family_id.map(|family_id| {
            let issued = IssuedToken::generate(self.generator.as_ref());
            let expires_at = now + self.settings.refresh_token_ttl;
            let record = RefreshToken {
                digest: issued.digest.clone(),
                site_id: user.site_id,
                user_id: user.id,
                family_id,
                expires_at,
                created_at: now,
                used_at: None,
                revoked: false,
            };
            (
                SessionToken {
                    token: issued,
                    expires_at,
                },
                record,
            )
        });
        (auth, refresh)
    }

    /// The row `auth`, a new auth token of `user`, is stored as.
    fn stored_auth_token(user: &User, auth: &SessionToken, now: UnixTime) -> StoredToken {
        StoredToken {
            digest: auth.token.digest.clone(),
            site_id: user.site_id,
            user_id: user.id,
            expires_at: auth.expires_at,
            created_at: now,
        }
    }

    async fn store_auth_token(
        &self,
        tx: &mut Box<dyn Transaction>,
        user: &User,
        auth: &SessionToken,
        now: UnixTime,
    ) -> Result<(), RepoError> {
        tx.accounts()
            .insert_auth_token(&Self::stored_auth_token(user, auth, now))
            .await
    }

    /// Sets a new password hash and ends every session and pending credential flow of the user:
    /// auth and refresh tokens, reset tokens and requests, and email-change requests.
    /// Verification is not touched.
    async fn replace_password(
        &self,
        tx: &mut Box<dyn Transaction>,
        user: &mut User,
        hash: String,
        now: UnixTime,
    ) -> Result<(), RepoError> {
        user.password_hash = Some(hash);
        user.updated_at = now;
        let accounts = tx.accounts();
        accounts.update_user(user).await?;
        accounts.delete_auth_tokens_of_user(user.id).await?;
        accounts.delete_refresh_tokens_of_user(user.id).await?;
        accounts.delete_reset_tokens_of_user(user.id).await?;
        accounts
            .delete_reset_requests_for(user.site_id, &user.email)
            .await?;
        accounts.delete_email_changes_of_user(user.id).await?;
        Ok(())
    }
}
