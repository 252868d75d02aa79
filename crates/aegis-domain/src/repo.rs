//! Storage ports. One port method is one atomic operation; a use case spanning several writes runs
//! them through a [`UnitOfWork`] transaction.

use async_trait::async_trait;

use crate::ids::SiteId;
use crate::site::Site;

/// What went wrong in storage, as the domain needs to know it.
///
/// Errors that wrap it say `#[error("{0}")]` with `#[from]` rather than `#[error(transparent)]`, so
/// it stays in their [`std::error::Error::source`] chain: that is where callers tell an outage
/// ([`RepoError::Unavailable`]) from a failure.
///
/// The failures carry the adapter's own error as their source, so a log line or an embedder can
/// follow the chain down to the driver; build one from a message with `"text".into()`.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// A uniqueness constraint refused the write; carries the constraint name.
    #[error("unique constraint violated: {0}")]
    Conflict(String),
    /// The database could not be reached or did not answer in time.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] BoxedCause),
    /// Any other storage failure.
    #[error("storage error: {0}")]
    Other(#[source] BoxedCause),
}

/// The cause inside a [`RepoError`]: the adapter's error, or a message.
pub type BoxedCause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Sites, outside a transaction.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SiteRepository: Send + Sync {
    /// Stores a new site. A taken domain is [`RepoError::Conflict`].
    async fn insert(&self, site: &Site) -> Result<(), RepoError>;
    /// Every site, newest first (`created_at` descending).
    async fn list(&self) -> Result<Vec<Site>, RepoError>;
    /// The site with this id.
    async fn find(&self, id: SiteId) -> Result<Option<Site>, RepoError>;
    /// The site with exactly this (normalised) domain.
    async fn find_by_domain(&self, domain: &str) -> Result<Option<Site>, RepoError>;
}

/// Starts transactions.
#[async_trait]
pub trait UnitOfWork: Send + Sync {
    /// Begins a transaction. Dropping the returned object without calling
    /// [`Transaction::commit`] rolls it back.
    async fn begin(&self) -> Result<Box<dyn Transaction>, RepoError>;

    /// A login's writes, atomically: stores the new session's tokens (and the rehash, if any)
    /// only if the user still exists, still has the hash the password was checked against, and
    /// is verified. The user row is locked while this is checked, so a concurrent password
    /// change, reset or deletion either comes first (and nothing is stored) or after (and revokes
    /// these tokens with the rest).
    ///
    /// An adapter may do it in one statement; this default runs [`open_session_in_transaction`].
    async fn open_session(&self, session: NewSession<'_>) -> Result<SessionOpened, RepoError> {
        open_session_in_transaction(self, session).await
    }
}

/// What a login stores: see [`UnitOfWork::open_session`].
#[derive(Debug, Clone, Copy)]
pub struct NewSession<'a> {
    /// The user logging in.
    pub user: crate::ids::UserId,
    /// The stored hash the password was checked against.
    pub checked_hash: &'a str,
    /// The new auth token, as stored.
    pub auth: &'a crate::token::StoredToken,
    /// The new refresh token, when the session has one.
    pub refresh: Option<&'a crate::token::RefreshToken>,
    /// A hash of the same password at the current costs, to replace `checked_hash`, and when.
    pub rehash: Option<(&'a str, i64)>,
}

/// How [`UnitOfWork::open_session`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOpened {
    /// The tokens are stored.
    Opened,
    /// The user is gone or has another password hash now. Nothing is stored.
    Stale,
    /// The user's email is not verified. Nothing is stored.
    Unverified,
}

/// [`UnitOfWork::open_session`] as a transaction of single-row port calls: lock the user, check,
/// insert the tokens, replace the hash, commit. The trait's default; an adapter that does the
/// common case in one statement can fall back on it for the rest.
pub async fn open_session_in_transaction<U: UnitOfWork + ?Sized>(
    uow: &U,
    session: NewSession<'_>,
) -> Result<SessionOpened, RepoError> {
    let mut tx = uow.begin().await?;
    let accounts = tx.accounts();
    let Some(user) = accounts
        .lock_user(session.user)
        .await?
        .filter(|u| u.password_hash.as_deref() == Some(session.checked_hash))
    else {
        return Ok(SessionOpened::Stale);
    };
    if !user.is_verified {
        return Ok(SessionOpened::Unverified);
    }
    accounts.insert_auth_token(session.auth).await?;
    if let Some(refresh) = session.refresh {
        accounts.insert_refresh_token(refresh).await?;
    }
    if let Some((hash, now)) = session.rehash {
        accounts
            .replace_password_hash(session.user, session.checked_hash, hash, now)
            .await?;
    }
    tx.commit().await?;
    Ok(SessionOpened::Opened)
}

/// An open transaction exposing the write ports.
#[async_trait]
pub trait Transaction: Send {
    /// Site operations inside this transaction.
    fn sites(&mut self) -> &mut dyn SiteTxRepository;
    /// Account operations inside this transaction.
    fn accounts(&mut self) -> &mut dyn AccountTxRepository;
    /// Makes every write of this transaction durable at once.
    async fn commit(self: Box<Self>) -> Result<(), RepoError>;
}

/// Site operations that take part in a transaction.
#[async_trait]
pub trait SiteTxRepository: Send {
    /// Reads the site and locks it against concurrent updates and deletes until the transaction
    /// ends, without blocking work on its users.
    async fn lock(&mut self, id: SiteId) -> Result<Option<Site>, RepoError>;
    /// Reads the site and keeps it from being deleted until the transaction ends, without
    /// blocking updates of it or anyone else holding it (`FOR KEY SHARE`). Take it before locking
    /// any of its users, as a delete locks the site and then its users.
    async fn hold(&mut self, id: SiteId) -> Result<Option<Site>, RepoError>;
    /// Reads the site and locks it exclusively, as a delete needs: until the transaction ends, no
    /// user can be added to it.
    async fn lock_for_delete(&mut self, id: SiteId) -> Result<Option<Site>, RepoError>;
    /// Writes every field of the site. A taken domain is [`RepoError::Conflict`].
    async fn update(&mut self, site: &Site) -> Result<(), RepoError>;
    /// How many users of the site are deletion-protected.
    async fn count_protected_users(&mut self, id: SiteId) -> Result<i64, RepoError>;
    /// Deletes the site (cascading to its users, tokens and deliveries) unless it or one of its
    /// users is deletion-protected at the time of the statement. Returns whether it was deleted.
    async fn delete_unprotected(&mut self, id: SiteId) -> Result<bool, RepoError>;
}

/// An email waiting in the outbox.
#[derive(Clone, PartialEq, Eq)]
pub struct QueuedEmail {
    /// The outbox row's id (a fresh UUID per message).
    pub id: uuid::Uuid,
    /// The site the message is sent for; its Mailgun overrides apply at delivery.
    pub site_id: SiteId,
    /// The sender's display name, copied from the site when queued.
    pub from_name: String,
    /// The sender address, copied from the site when queued.
    pub from_address: String,
    /// The rendered message and its recipient.
    pub message: crate::templates::RenderedEmail,
    /// When the message was queued (Unix seconds); the oldest due message goes first.
    pub created_at: crate::clock::UnixTime,
    /// When the token in the message's link expires (`None` when it carries none): the body is
    /// cleared then, delivered or not.
    pub link_expires_at: Option<crate::clock::UnixTime>,
}

impl std::fmt::Debug for QueuedEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedEmail")
            .field("id", &self.id)
            .field("kind", &self.message.kind)
            .finish_non_exhaustive()
    }
}

/// Accounts outside a transaction: the reads of the account use cases.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait AccountRepository: Send + Sync {
    /// The user with this id.
    async fn find_user(
        &self,
        id: crate::ids::UserId,
    ) -> Result<Option<crate::user::User>, RepoError>;
    /// The user of `site` with this (normalised) email.
    async fn find_user_by_email(
        &self,
        site: SiteId,
        email: &crate::user::Email,
    ) -> Result<Option<crate::user::User>, RepoError>;
    /// The user a live auth token belongs to: one indexed query (the bearer check). An
    /// implementation may answer from a cache only if a revoked token, or a change of its user,
    /// is seen by the next call made after the change's transaction committed on this instance,
    /// and soon after on any other (decisions 88–91).
    async fn user_by_auth_token(
        &self,
        digest: &str,
        now: crate::clock::UnixTime,
    ) -> Result<Option<crate::user::User>, RepoError>;
    /// A refresh token by digest, whatever its state.
    async fn find_refresh_token(
        &self,
        digest: &str,
    ) -> Result<Option<crate::token::RefreshToken>, RepoError>;
    /// An email-verification token by digest, whatever its expiry.
    async fn find_verification_token(
        &self,
        digest: &str,
    ) -> Result<Option<crate::token::StoredToken>, RepoError>;
    /// A password-reset token by digest, whatever its state.
    async fn find_reset_token(
        &self,
        digest: &str,
    ) -> Result<Option<crate::token::ResetToken>, RepoError>;
    /// An email-change request by digest, whatever its expiry.
    async fn find_email_change(
        &self,
        digest: &str,
    ) -> Result<Option<crate::token::EmailChangeRequest>, RepoError>;
    /// The kinds of stored password hashes: each distinct algorithm-and-cost prefix (such as
    /// `$2b$12$` or `$argon2id$v=19$m=19456,t=2,p=1$`), at most 32.
    async fn password_hash_kinds(&self) -> Result<Vec<String>, RepoError>;
    /// Records a password-reset request, to be handled after a [`Self::claim_reset_requests`]:
    /// one statement, whatever the address.
    async fn record_reset_request(
        &self,
        request: &crate::token::ResetRequest,
    ) -> Result<(), RepoError>;
    /// Claims up to `limit` recorded reset requests, oldest first, that nobody holds a live claim
    /// on, until `until`; one statement, so instances share the work. A claimed request is
    /// handled and deleted with [`AccountTxRepository::delete_reset_request`].
    async fn claim_reset_requests(
        &self,
        limit: i64,
        now: crate::clock::UnixTime,
        until: crate::clock::UnixTime,
    ) -> Result<Vec<crate::token::ResetRequest>, RepoError>;
    /// Every user of a site, oldest first (`created_at`, then id).
    async fn list_users(&self, site: SiteId) -> Result<Vec<crate::user::User>, RepoError>;
    /// Deletes every expired row (`expires_at < now`) of the five token tables.
    async fn delete_expired_tokens(
        &self,
        now: crate::clock::UnixTime,
    ) -> Result<CleanupCounts, RepoError>;
    /// Whether `email` is used on `site` by a user other than `except`.
    async fn email_taken(
        &self,
        site: SiteId,
        email: &crate::user::Email,
        except: Option<crate::ids::UserId>,
    ) -> Result<bool, RepoError>;
}

/// Account writes inside a transaction.
#[async_trait]
pub trait AccountTxRepository: Send {
    /// The user of `site` with this email, locked for the rest of the transaction.
    async fn lock_user_by_email(
        &mut self,
        site: SiteId,
        email: &crate::user::Email,
    ) -> Result<Option<crate::user::User>, RepoError>;
    /// The user with this id, locked for the rest of the transaction.
    async fn lock_user(
        &mut self,
        id: crate::ids::UserId,
    ) -> Result<Option<crate::user::User>, RepoError>;
    /// Stores a new user. A taken email on the site is [`RepoError::Conflict`].
    async fn insert_user(&mut self, user: &crate::user::User) -> Result<(), RepoError>;
    /// Stores each user whose email its site does not have yet, and says which were stored, in
    /// order. The emails must be distinct. An adapter may do it in one statement; this default
    /// asks one user at a time.
    async fn insert_users_if_absent(
        &mut self,
        users: &[crate::user::User],
    ) -> Result<Vec<bool>, RepoError> {
        let mut stored = Vec::with_capacity(users.len());
        for user in users {
            let absent = self
                .lock_user_by_email(user.site_id, &user.email)
                .await?
                .is_none();
            if absent {
                self.insert_user(user).await?;
            }
            stored.push(absent);
        }
        Ok(stored)
    }
    /// Writes every field of the user. Only for a row read with [`Self::lock_user`] (or
    /// [`Self::lock_user_by_email`]) in this transaction, so no stale copy is written back.
    async fn update_user(&mut self, user: &crate::user::User) -> Result<(), RepoError>;
    /// Replaces the password hash alone, and only while the stored hash is still `expected`;
    /// whether it did (a rehash after login).
    async fn replace_password_hash(
        &mut self,
        user: crate::ids::UserId,
        expected: &str,
        new: &str,
        now: crate::clock::UnixTime,
    ) -> Result<bool, RepoError>;

    /// Stores an auth token digest.
    async fn insert_auth_token(
        &mut self,
        token: &crate::token::StoredToken,
    ) -> Result<(), RepoError>;
    /// Deletes one auth token; whether it existed.
    async fn delete_auth_token(&mut self, digest: &str) -> Result<bool, RepoError>;
    /// Deletes every auth token of a user.
    async fn delete_auth_tokens_of_user(
        &mut self,
        user: crate::ids::UserId,
    ) -> Result<u64, RepoError>;

    /// Stores a refresh token.
    async fn insert_refresh_token(
        &mut self,
        token: &crate::token::RefreshToken,
    ) -> Result<(), RepoError>;
    /// A refresh token by digest, locked for the rest of the transaction.
    async fn lock_refresh_token(
        &mut self,
        digest: &str,
    ) -> Result<Option<crate::token::RefreshToken>, RepoError>;
    /// Marks the token used at `now` if nobody has yet: exactly one caller wins.
    async fn claim_refresh_token(
        &mut self,
        digest: &str,
        now: crate::clock::UnixTime,
    ) -> Result<bool, RepoError>;
    /// Revokes every token of a family (only the user's, when `user` is given).
    async fn revoke_refresh_family(
        &mut self,
        family_id: &str,
        user: Option<crate::ids::UserId>,
    ) -> Result<u64, RepoError>;

    /// Deletes every refresh token of a user.
    async fn delete_refresh_tokens_of_user(
        &mut self,
        user: crate::ids::UserId,
    ) -> Result<u64, RepoError>;

    /// Stores a password-reset token.
    async fn insert_reset_token(
        &mut self,
        token: &crate::token::StoredToken,
    ) -> Result<(), RepoError>;
    /// Marks an unused reset token used; whether this call did (exactly one caller can).
    async fn claim_reset_token(&mut self, digest: &str) -> Result<bool, RepoError>;
    /// Deletes a handled reset request.
    async fn delete_reset_request(&mut self, id: uuid::Uuid) -> Result<(), RepoError>;
    /// Deletes the reset requests for `email` on `site` not handled yet.
    async fn delete_reset_requests_for(
        &mut self,
        site: SiteId,
        email: &crate::user::Email,
    ) -> Result<u64, RepoError>;
    /// Deletes every reset token of a user.
    async fn delete_reset_tokens_of_user(
        &mut self,
        user: crate::ids::UserId,
    ) -> Result<u64, RepoError>;

    /// Stores an email-change request.
    async fn insert_email_change(
        &mut self,
        request: &crate::token::EmailChangeRequest,
    ) -> Result<(), RepoError>;
    /// Deletes an email-change request; whether this call removed it.
    async fn take_email_change(&mut self, digest: &str) -> Result<bool, RepoError>;
    /// Deletes every email-change request of a user.
    async fn delete_email_changes_of_user(
        &mut self,
        user: crate::ids::UserId,
    ) -> Result<u64, RepoError>;
    /// Whether `email` is used on `site` by a user other than `except`, seen from this transaction.
    async fn email_taken(
        &mut self,
        site: SiteId,
        email: &crate::user::Email,
        except: Option<crate::ids::UserId>,
    ) -> Result<bool, RepoError>;

    /// How many admins the site has.
    async fn count_admins(&mut self, site: SiteId) -> Result<i64, RepoError>;
    /// Deletes the user (and, by cascade, their tokens) unless, at the time of the statement, the
    /// user is protected, the site is protected, or the user is the site's last admin. Returns
    /// whether it was deleted.
    async fn delete_user_guarded(&mut self, user: crate::ids::UserId) -> Result<bool, RepoError>;

    /// Stores an email-verification token.
    async fn insert_verification_token(
        &mut self,
        token: &crate::token::StoredToken,
    ) -> Result<(), RepoError>;
    /// Deletes a verification token; whether this call removed it (exactly one caller can).
    async fn take_verification_token(&mut self, digest: &str) -> Result<bool, RepoError>;
    /// Deletes every verification token of a user.
    async fn delete_verification_tokens_of_user(
        &mut self,
        user: crate::ids::UserId,
    ) -> Result<u64, RepoError>;

    /// Queues an email, delivered after commit.
    async fn enqueue_email(&mut self, email: &QueuedEmail) -> Result<(), RepoError>;
    /// Queues a webhook delivery, delivered after commit.
    async fn enqueue_webhook(
        &mut self,
        event: &crate::webhook::WebhookEvent,
    ) -> Result<(), RepoError>;
}

/// Expired rows removed by a token cleanup, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupCounts {
    /// Expired bearer (auth) tokens.
    pub auth_tokens: u64,
    /// Expired refresh tokens.
    pub refresh_tokens: u64,
    /// Expired email-verification and invitation tokens.
    pub email_verification_tokens: u64,
    /// Expired password-reset tokens.
    pub password_reset_tokens: u64,
    /// Expired email-change requests.
    pub email_change_requests: u64,
}

impl CleanupCounts {
    /// All rows removed, across tables.
    pub fn total(&self) -> u64 {
        self.auth_tokens
            + self.refresh_tokens
            + self.email_verification_tokens
            + self.password_reset_tokens
            + self.email_change_requests
    }
}
