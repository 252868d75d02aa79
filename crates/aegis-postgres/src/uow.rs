//! The unit-of-work port on PostgreSQL: a pooled connection with an open transaction.

use crate::pool::PgConnection;
use aegis_domain::repo::{
    AccountTxRepository, NewSession, QueuedEmail, SessionOpened, open_session_in_transaction,
};
use aegis_domain::token::{EmailChangeRequest, RefreshToken, StoredToken};
use aegis_domain::user::{Email, User};
use aegis_domain::webhook::WebhookEvent;
use aegis_domain::{RepoError, Site, SiteId, SiteTxRepository, Transaction, UnitOfWork, UserId};
use async_trait::async_trait;
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, TransactionManager};

use crate::error::map_diesel_error;
use crate::pool::PgPool;
use crate::seal::SealingKeys;
use crate::{accounts, sites};

type Conn = PgConnection;

/// Begins transactions on pooled connections. Emails queued in them are sealed with `keys`.
#[derive(Clone)]
pub struct PgUnitOfWork {
    pool: PgPool,
    keys: SealingKeys,
    token_cache: Option<std::sync::Arc<crate::token_cache::TokenCache>>,
}

impl PgUnitOfWork {
    /// Transactions on connections from `pool`. Each open transaction holds one pooled
    /// connection until it is committed or dropped. `keys` seal queued email bodies and must match
    /// the [`crate::PgEmailOutbox`]'s.
    pub fn new(pool: PgPool, keys: SealingKeys) -> Self {
        Self {
            pool,
            keys,
            token_cache: None,
        }
    }

    /// After each commit of a transaction that updated or deleted a user, a site or an auth
    /// token, waits until `cache` has applied the notifications the transaction sent
    /// ([`crate::token_cache::TokenCache::settle`]), so this instance's next bearer check sees the
    /// change. A transaction that only inserted (a login) has nothing to wait for.
    #[must_use]
    pub fn with_token_cache(
        mut self,
        cache: std::sync::Arc<crate::token_cache::TokenCache>,
    ) -> Self {
        self.token_cache = Some(cache);
        self
    }
}

#[async_trait]
impl UnitOfWork for PgUnitOfWork {
    async fn begin(&self) -> Result<Box<dyn Transaction>, RepoError> {
        let mut conn = self.pool.get().await?;
        AnsiTransactionManager::begin_transaction(&mut *conn)
            .await
            .map_err(map_diesel_error)?;
        Ok(Box::new(PgTransaction {
            conn: Some(conn),
            keys: self.keys.clone(),
            token_cache: self.token_cache.clone(),
            revokes: false,
        }))
    }

    /// One statement ([`crate::session`]); a login that also replaces the hash updates the user,
    /// and runs as the domain's transaction, which waits for the token cache's barrier.
    async fn open_session(&self, session: NewSession<'_>) -> Result<SessionOpened, RepoError> {
        if session.rehash.is_some() {
            return open_session_in_transaction(self, session).await;
        }
        crate::session::open_session(&mut *self.pool.get().await?, &session).await
    }
}

/// An open transaction. Dropped without [`Transaction::commit`], it is rolled back.
pub struct PgTransaction {
    conn: Option<Conn>,
    keys: SealingKeys,
    token_cache: Option<std::sync::Arc<crate::token_cache::TokenCache>>,
    /// Whether the transaction updated or deleted a user, a site or an auth token: what fires the
    /// triggers that evict cached bearer checks. Only such a transaction waits for a barrier at
    /// commit; one that only inserts (a login, a registration) has nothing cached to evict.
    revokes: bool,
}

impl PgTransaction {
    /// The transaction's connection, for a statement that may change what a cached bearer check
    /// answers: the commit then waits for the barrier. The default; see [`Self::quiet_conn`].
    fn conn(&mut self) -> Result<&mut AsyncPgConnection, RepoError> {
        self.revokes = true;
        self.quiet_conn()
    }

    /// The transaction's connection, for a statement that fires none of the triggers that evict
    /// cached bearer checks: a read, an insert, or a change to a table other than `users`,
    /// `sites` and `auth_tokens`.
    fn quiet_conn(&mut self) -> Result<&mut AsyncPgConnection, RepoError> {
        self.conn
            .as_deref_mut()
            .ok_or_else(|| RepoError::Other("transaction already finished".into()))
    }
}

impl Drop for PgTransaction {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        // Roll back off the caller's path. Without a runtime, dropping the connection is enough:
        // the pool discards a connection left inside a transaction, and the server rolls it back.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let rolled_back = AnsiTransactionManager::rollback_transaction(&mut *conn).await;
                // A connection lost with the database is the pool's to report, once.
                if let Err(e) = rolled_back.map_err(map_diesel_error)
                    && !matches!(e, RepoError::Unavailable(_))
                {
                    tracing::warn!(error = %e, "rollback failed; the connection is discarded");
                }
            });
        }
    }
}

#[async_trait]
impl Transaction for PgTransaction {
    fn sites(&mut self) -> &mut dyn SiteTxRepository {
        self
    }

    fn accounts(&mut self) -> &mut dyn AccountTxRepository {
        self
    }

    async fn commit(mut self: Box<Self>) -> Result<(), RepoError> {
        let mut conn = self
            .conn
            .take()
            .ok_or_else(|| RepoError::Other("transaction already finished".into()))?;
        AnsiTransactionManager::commit_transaction(&mut *conn)
            .await
            .map_err(map_diesel_error)?;
        if let Some(cache) = self.token_cache.as_ref().filter(|_| self.revokes) {
            let barrier = cache.send_barrier(&mut conn).await;
            // The connection goes back to the pool before the wait.
            drop(conn);
            if let Some(barrier) = barrier {
                cache.await_barrier(barrier).await;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SiteTxRepository for PgTransaction {
    async fn lock(&mut self, id: SiteId) -> Result<Option<Site>, RepoError> {
        sites::find_site(self.quiet_conn()?, id, sites::Lock::Update).await
    }

    async fn hold(&mut self, id: SiteId) -> Result<Option<Site>, RepoError> {
        sites::find_site(self.quiet_conn()?, id, sites::Lock::Hold).await
    }

    async fn lock_for_delete(&mut self, id: SiteId) -> Result<Option<Site>, RepoError> {
        sites::find_site(self.quiet_conn()?, id, sites::Lock::Delete).await
    }

    async fn update(&mut self, site: &Site) -> Result<(), RepoError> {
        sites::update_site(self.conn()?, site).await
    }

    async fn count_protected_users(&mut self, id: SiteId) -> Result<i64, RepoError> {
        sites::count_protected_users(self.quiet_conn()?, id).await
    }

    async fn delete_unprotected(&mut self, id: SiteId) -> Result<bool, RepoError> {
        sites::delete_unprotected(self.conn()?, id).await
    }
}

#[async_trait]
impl AccountTxRepository for PgTransaction {
    async fn lock_user_by_email(
        &mut self,
        site: SiteId,
        email: &Email,
    ) -> Result<Option<User>, RepoError> {
        accounts::find_user_by_email(self.quiet_conn()?, site, email, true).await
    }

    async fn lock_user(&mut self, id: UserId) -> Result<Option<User>, RepoError> {
        accounts::find_user(self.quiet_conn()?, id, true).await
    }

    async fn insert_user(&mut self, user: &User) -> Result<(), RepoError> {
        accounts::insert_user(self.quiet_conn()?, user).await
    }

    async fn insert_users_if_absent(&mut self, batch: &[User]) -> Result<Vec<bool>, RepoError> {
        accounts::insert_users_if_absent(self.quiet_conn()?, batch).await
    }

    async fn update_user(&mut self, user: &User) -> Result<(), RepoError> {
        accounts::update_user(self.conn()?, user).await
    }

    async fn replace_password_hash(
        &mut self,
        user: UserId,
        expected: &str,
        new: &str,
        now: i64,
    ) -> Result<bool, RepoError> {
        accounts::replace_password_hash(self.conn()?, user, expected, new, now).await
    }

    async fn delete_reset_requests_for(
        &mut self,
        site: SiteId,
        email: &Email,
    ) -> Result<u64, RepoError> {
        accounts::delete_reset_requests_for(self.quiet_conn()?, site, email).await
    }

    async fn delete_reset_request(&mut self, id: uuid::Uuid) -> Result<(), RepoError> {
        accounts::delete_reset_request(self.quiet_conn()?, id).await
    }

    async fn lock_refresh_token(
        &mut self,
        digest: &str,
    ) -> Result<Option<RefreshToken>, RepoError> {
        accounts::find_refresh_token(self.quiet_conn()?, digest, true).await
    }

    async fn insert_auth_token(&mut self, token: &StoredToken) -> Result<(), RepoError> {
        accounts::insert_auth_token(self.quiet_conn()?, token).await
    }

    async fn delete_auth_token(&mut self, digest: &str) -> Result<bool, RepoError> {
        accounts::delete_auth_token(self.conn()?, digest).await
    }

    async fn delete_auth_tokens_of_user(&mut self, user: UserId) -> Result<u64, RepoError> {
        accounts::delete_auth_tokens_of_user(self.conn()?, user).await
    }

    async fn insert_refresh_token(&mut self, token: &RefreshToken) -> Result<(), RepoError> {
        accounts::insert_refresh_token(self.quiet_conn()?, token).await
    }

    async fn claim_refresh_token(&mut self, digest: &str, now: i64) -> Result<bool, RepoError> {
        accounts::claim_refresh_token(self.quiet_conn()?, digest, now).await
    }

    async fn revoke_refresh_family(
        &mut self,
        family_id: &str,
        user: Option<UserId>,
    ) -> Result<u64, RepoError> {
        accounts::revoke_refresh_family(self.quiet_conn()?, family_id, user).await
    }

    async fn count_admins(&mut self, site: SiteId) -> Result<i64, RepoError> {
        accounts::count_admins(self.quiet_conn()?, site).await
    }

    async fn delete_user_guarded(&mut self, user: UserId) -> Result<bool, RepoError> {
        accounts::delete_user_guarded(self.conn()?, user).await
    }

    async fn delete_refresh_tokens_of_user(&mut self, user: UserId) -> Result<u64, RepoError> {
        accounts::delete_refresh_tokens_of_user(self.quiet_conn()?, user).await
    }

    async fn insert_reset_token(&mut self, token: &StoredToken) -> Result<(), RepoError> {
        accounts::insert_reset_token(self.quiet_conn()?, token).await
    }

    async fn claim_reset_token(&mut self, digest: &str) -> Result<bool, RepoError> {
        accounts::claim_reset_token(self.quiet_conn()?, digest).await
    }

    async fn delete_reset_tokens_of_user(&mut self, user: UserId) -> Result<u64, RepoError> {
        accounts::delete_reset_tokens_of_user(self.quiet_conn()?, user).await
    }

    async fn insert_email_change(&mut self, request: &EmailChangeRequest) -> Result<(), RepoError> {
        accounts::insert_email_change(self.quiet_conn()?, request).await
    }

    async fn take_email_change(&mut self, digest: &str) -> Result<bool, RepoError> {
        accounts::take_email_change(self.quiet_conn()?, digest).await
    }

    async fn delete_email_changes_of_user(&mut self, user: UserId) -> Result<u64, RepoError> {
        accounts::delete_email_changes_of_user(self.quiet_conn()?, user).await
    }

    async fn email_taken(
        &mut self,
        site: SiteId,
        email: &Email,
        except: Option<UserId>,
    ) -> Result<bool, RepoError> {
        accounts::email_taken(self.quiet_conn()?, site, email, except).await
    }

    async fn insert_verification_token(&mut self, token: &StoredToken) -> Result<(), RepoError> {
        accounts::insert_verification_token(self.quiet_conn()?, token).await
    }

    async fn take_verification_token(&mut self, digest: &str) -> Result<bool, RepoError> {
        accounts::take_verification_token(self.quiet_conn()?, digest).await
    }

    async fn delete_verification_tokens_of_user(&mut self, user: UserId) -> Result<u64, RepoError> {
        accounts::delete_verification_tokens_of_user(self.quiet_conn()?, user).await
    }

    async fn enqueue_email(&mut self, email: &QueuedEmail) -> Result<(), RepoError> {
        let keys = self.keys.clone();
        crate::outbox::enqueue_email(self.quiet_conn()?, &keys, email).await
    }

    async fn enqueue_webhook(&mut self, event: &WebhookEvent) -> Result<(), RepoError> {
        accounts::enqueue_webhook(self.quiet_conn()?, event).await
    }
}
