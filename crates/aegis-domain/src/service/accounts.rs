//! Accounts and sessions: registration, verification, login, bearer authentication, logout and
//! refresh (§4.2–§4.9, §5).

use std::sync::Arc;

use crate::clock::{Clock, UnixTime};
use crate::ids::{SiteId, UserId};
use crate::password::{HashError, HashKind, PasswordHasher, Verification};
use crate::repo::{
    AccountRepository, QueuedEmail, RepoError, SiteRepository, Transaction, UnitOfWork,
};
use crate::secrets::SecretGenerator;
use crate::site::Site;
use crate::templates::{self, RenderedEmail};
use crate::token::{self, IssuedToken, RefreshToken, ResetRequest, StoredToken};
use crate::user::{Email, PlainPassword, Role, User};
use crate::webhook::{UserEvent, user_event};

/// Lifetimes and refresh behaviour (§5), in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSettings {
    pub auth_token_ttl: i64,
    pub refresh_token_ttl: i64,
    pub refresh_rotation: bool,
    pub refresh_grace: i64,
    pub verification_ttl: i64,
    pub password_reset_ttl: i64,
    pub email_change_ttl: i64,
    /// `VERIFICATION_LINK_BASE` (decision 26).
    pub verification_link_base: Option<String>,
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
        }
    }
}

/// Failures every account use case can have besides its own outcomes.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Repo(#[from] RepoError),
    #[error("{0}")]
    Hash(#[from] HashError),
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("self-registration is not enabled for this site")]
    SelfRegistrationDisabled,
    #[error(transparent)]
    Failure(#[from] Failure),
}

#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error("email already registered for this site")]
    AlreadyRegistered,
    #[error(transparent)]
    Failure(#[from] Failure),
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyEmailError {
    #[error("invalid or expired verification token")]
    InvalidToken,
    #[error("password is required to complete account setup")]
    PasswordRequired,
    #[error(transparent)]
    Failure(#[from] Failure),
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("email not verified")]
    EmailNotVerified,
    #[error(transparent)]
    Failure(#[from] Failure),
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("invalid or expired refresh token")]
    InvalidToken,
    #[error("user not found")]
    UserNotFound,
    #[error("user account not verified")]
    NotVerified,
    /// The token was used before, outside the grace window: its family and every session of the
    /// user (carried here, for the security log) were revoked.
    #[error("refresh token reuse detected")]
    ReuseDetected(Box<User>),
    #[error(transparent)]
    Failure(#[from] Failure),
}

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
failure_from!(
    RegisterError,
    InviteError,
    VerifyEmailError,
    LoginError,
    RefreshError
);

/// A token handed to the client, with its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionToken {
    pub token: IssuedToken,
    pub expires_at: UnixTime,
}

/// What login and refresh return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: UserId,
    pub site_id: SiteId,
    pub auth: SessionToken,
    /// `None` on refresh when rotation is off or the request fell in the grace window.
    pub refresh: Option<SessionToken>,
}

/// The single-use links Aegis mails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Verification,
    PasswordReset,
}

/// What a self-registration did. Both answer the client alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Registration {
    /// A new, unverified account, and its verification email.
    Created,
    /// The address already had an account: a "sign-in attempt" email to it.
    AddressTaken,
}

/// The outcome of verify-email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub user: User,
    pub redirect_url: String,
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
                )
            }
            Link::PasswordReset => {
                tx.accounts().insert_reset_token(&stored).await?;
                templates::password_reset(site, recipient, &issued.plaintext, ttl)
            }
        };
        tx.accounts()
            .enqueue_email(&self.queued(site, message, now, Some(stored.expires_at)))
            .await
    }

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

    async fn store_auth_token(
        &self,
        tx: &mut Box<dyn Transaction>,
        user: &User,
        auth: &SessionToken,
        now: UnixTime,
    ) -> Result<(), RepoError> {
        tx.accounts()
            .insert_auth_token(&StoredToken {
                digest: auth.token.digest.clone(),
                site_id: user.site_id,
                user_id: user.id,
                expires_at: auth.expires_at,
                created_at: now,
            })
            .await
    }

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

#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    #[error("incorrect password")]
    IncorrectPassword,
    #[error("user not found")]
    UserNotFound,
    #[error(transparent)]
    Failure(#[from] Failure),
}

#[derive(Debug, thiserror::Error)]
pub enum ResetPasswordError {
    #[error("invalid or expired reset token")]
    InvalidToken,
    #[error(transparent)]
    Failure(#[from] Failure),
}

#[derive(Debug, thiserror::Error)]
pub enum EmailChangeError {
    #[error("invalid password")]
    InvalidPassword,
    #[error("invalid or expired email change token")]
    InvalidToken,
    #[error("email already in use")]
    EmailInUse,
    #[error(transparent)]
    Failure(#[from] Failure),
}

failure_from!(ChangePasswordError, ResetPasswordError, EmailChangeError);

impl AccountService {
    /// Sets a new password hash and ends every session and pending credential flow of the user:
    /// auth and refresh tokens, reset tokens and requests, and email-change requests (§5).
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
    use std::sync::Mutex;

    use async_trait::async_trait;
    use futures_util::FutureExt as _;

    use super::*;
    use crate::clock::ManualClock;
    use crate::ids::SiteId;
    use crate::password::MockPasswordHasher;
    use crate::repo::{AccountTxRepository, MockAccountRepository, MockSiteRepository};
    use crate::secrets::RandomSecretGenerator;
    use crate::site::tests::{CountingGenerator, new_site};
    use crate::templates::EmailKind;
    use crate::token::{EmailChangeRequest, RefreshToken};
    use crate::webhook::WebhookEvent;

    /// What the transactions wrote (committed or not: these tests only check what was asked).
    #[derive(Default)]
    struct Written {
        users: Vec<User>,
        email_changes: Vec<EmailChangeRequest>,
        emails: Vec<QueuedEmail>,
    }

    /// A unit of work whose only stored user is `existing`, recording the writes.
    #[derive(Clone, Default)]
    struct Recording {
        existing: Option<User>,
        written: Arc<Mutex<Written>>,
    }

    impl Recording {
        fn emails(&self) -> Vec<(EmailKind, String)> {
            let written = self.written.lock().unwrap();
            written
                .emails
                .iter()
                .map(|e| (e.message.kind, e.message.to.clone()))
                .collect()
        }
    }

    #[async_trait]
    impl UnitOfWork for Recording {
        async fn begin(&self) -> Result<Box<dyn Transaction>, RepoError> {
            Ok(Box::new(self.clone()))
        }
    }

    #[async_trait]
    impl Transaction for Recording {
        fn sites(&mut self) -> &mut dyn crate::repo::SiteTxRepository {
            unreachable!("account use cases do not write sites")
        }
        fn accounts(&mut self) -> &mut dyn AccountTxRepository {
            self
        }
        async fn commit(self: Box<Self>) -> Result<(), RepoError> {
            Ok(())
        }
    }

    #[async_trait]
    impl AccountTxRepository for Recording {
        async fn lock_user_by_email(
            &mut self,
            site: SiteId,
            email: &Email,
        ) -> Result<Option<User>, RepoError> {
            Ok(self
                .existing
                .clone()
                .filter(|u| u.site_id == site && u.email == *email))
        }
        async fn lock_user(&mut self, id: UserId) -> Result<Option<User>, RepoError> {
            Ok(self.existing.clone().filter(|u| u.id == id))
        }
        async fn insert_user(&mut self, user: &User) -> Result<(), RepoError> {
            self.written.lock().unwrap().users.push(user.clone());
            Ok(())
        }
        async fn update_user(&mut self, _: &User) -> Result<(), RepoError> {
            Ok(())
        }
        async fn replace_password_hash(
            &mut self,
            _: UserId,
            _: &str,
            _: &str,
            _: UnixTime,
        ) -> Result<bool, RepoError> {
            Ok(false)
        }
        async fn lock_refresh_token(&mut self, _: &str) -> Result<Option<RefreshToken>, RepoError> {
            Ok(None)
        }
        async fn delete_reset_request(&mut self, _: uuid::Uuid) -> Result<(), RepoError> {
            Ok(())
        }
        async fn delete_reset_requests_for(
            &mut self,
            _: SiteId,
            _: &Email,
        ) -> Result<u64, RepoError> {
            Ok(0)
        }
        async fn insert_auth_token(&mut self, _: &StoredToken) -> Result<(), RepoError> {
            Ok(())
        }
        async fn delete_auth_token(&mut self, _: &str) -> Result<bool, RepoError> {
            Ok(false)
        }
        async fn delete_auth_tokens_of_user(&mut self, _: UserId) -> Result<u64, RepoError> {
            Ok(0)
        }
        async fn insert_refresh_token(&mut self, _: &RefreshToken) -> Result<(), RepoError> {
            Ok(())
        }
        async fn claim_refresh_token(&mut self, _: &str, _: UnixTime) -> Result<bool, RepoError> {
            Ok(false)
        }
        async fn revoke_refresh_family(
            &mut self,
            _: &str,
            _: Option<UserId>,
        ) -> Result<u64, RepoError> {
            Ok(0)
        }
        async fn delete_refresh_tokens_of_user(&mut self, _: UserId) -> Result<u64, RepoError> {
            Ok(0)
        }
        async fn insert_reset_token(&mut self, _: &StoredToken) -> Result<(), RepoError> {
            Ok(())
        }
        async fn claim_reset_token(&mut self, _: &str) -> Result<bool, RepoError> {
            Ok(false)
        }
        async fn delete_reset_tokens_of_user(&mut self, _: UserId) -> Result<u64, RepoError> {
            Ok(0)
        }
        async fn insert_email_change(
            &mut self,
            request: &EmailChangeRequest,
        ) -> Result<(), RepoError> {
            self.written
                .lock()
                .unwrap()
                .email_changes
                .push(request.clone());
            Ok(())
        }
        async fn take_email_change(&mut self, _: &str) -> Result<bool, RepoError> {
            Ok(false)
        }
        async fn delete_email_changes_of_user(&mut self, _: UserId) -> Result<u64, RepoError> {
            Ok(0)
        }
        async fn email_taken(
            &mut self,
            _: SiteId,
            _: &Email,
            _: Option<UserId>,
        ) -> Result<bool, RepoError> {
            Ok(false)
        }
        async fn count_admins(&mut self, _: SiteId) -> Result<i64, RepoError> {
            Ok(0)
        }
        async fn delete_user_guarded(&mut self, _: UserId) -> Result<bool, RepoError> {
            Ok(false)
        }
        async fn insert_verification_token(&mut self, _: &StoredToken) -> Result<(), RepoError> {
            Ok(())
        }
        async fn take_verification_token(&mut self, _: &str) -> Result<bool, RepoError> {
            Ok(false)
        }
        async fn delete_verification_tokens_of_user(
            &mut self,
            _: UserId,
        ) -> Result<u64, RepoError> {
            Ok(0)
        }
        async fn enqueue_email(&mut self, email: &QueuedEmail) -> Result<(), RepoError> {
            self.written.lock().unwrap().emails.push(email.clone());
            Ok(())
        }
        async fn enqueue_webhook(&mut self, _: &WebhookEvent) -> Result<(), RepoError> {
            Ok(())
        }
    }

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
    }

    fn site() -> Site {
        Site::create(new_site(None), 1, &CountingGenerator::default())
    }

    fn user_of(site: &Site, address: &str) -> User {
        User::new(
            UserId::from_uuid(uuid::Uuid::from_u128(7)),
            site.id,
            email(address),
            Some("$argon2id$stored".into()),
            Role::User,
            1,
        )
    }

    fn service(
        accounts: MockAccountRepository,
        sites: MockSiteRepository,
        uow: &Recording,
    ) -> AccountService {
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_hash()
            .returning(|_| Ok("$argon2id$new".into()));
        hasher.expect_verify().returning(|_, _| {
            Ok(Verification::Match {
                needs_rehash: false,
            })
        });
        AccountService::new(
            Arc::new(accounts),
            Arc::new(sites),
            Arc::new(uow.clone()),
            Arc::new(hasher),
            Arc::new(ManualClock::new(1_000)),
            Arc::new(RandomSecretGenerator),
            AccountSettings::default(),
        )
    }

    const NORMAL: &str = "jos\u{e9}@xn--bcher-kva.de";
    const TYPED: &str = "JOSE\u{301}@B\u{dc}CHER.de";

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
