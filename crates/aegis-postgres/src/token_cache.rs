//! The in-process cache of bearer-token checks (decision 88), and the account repository that
//! answers through it.
//!
//! An entry maps a token's digest (never the token) to the user it authenticates and the token's
//! expiry. A hit is checked against that expiry with the caller's clock and against the entry's
//! age ([`TokenCacheSettings::ttl`]); at most [`TokenCacheSettings::capacity`] entries are held,
//! the oldest going first. Entries are evicted by the notifications of channel `aegis_tokens`
//! (see [`crate::token_listener`]): `t:<digest>` one token, `u:<uuid>` every token of a user,
//! `s:<uuid>` every token of a site's users.
//!
//! While the listener is not subscribed (at start, and from the moment its connection is lost
//! until it listens again) the cache is empty and bypassed: every check reads the database and
//! nothing is stored. A check that read the database stores its answer only if no notification
//! and no change of subscription arrived while it read (a generation counter), so an answer read
//! before a revocation is never kept after the revocation's notification.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aegis_domain::repo::{AccountRepository, CleanupCounts};
use aegis_domain::token::{
    EmailChangeRequest, RefreshToken, ResetRequest, ResetToken, StoredToken,
};
use aegis_domain::user::{Email, User};
use aegis_domain::{RepoError, SiteId, UserId};
use async_trait::async_trait;
use uuid::Uuid;

use crate::accounts::PgAccountRepository;

/// The channel the triggers notify and every instance listens on.
pub const CHANNEL: &str = "aegis_tokens";

/// Bearer checks answered from the cache (a counter).
pub const HITS: &str = "aegis_token_cache_hits_total";
/// Bearer checks that read the database while the cache was subscribed (a counter).
pub const MISSES: &str = "aegis_token_cache_misses_total";
/// Bearer checks that read the database because the cache was bypassed (a counter).
pub const BYPASSED_CHECKS: &str = "aegis_token_cache_bypassed_total";
/// Entries removed by a notification, a flush or the capacity bound (a counter).
pub const EVICTIONS: &str = "aegis_token_cache_evictions_total";
/// 1 while the cache is bypassed (its listener not subscribed), else 0 (a gauge, set by the
/// application when it renders its metrics).
pub const BYPASSED: &str = "aegis_token_cache_bypassed";
/// Entries held (a gauge, set by the application when it renders its metrics).
pub const ENTRIES: &str = "aegis_token_cache_entries";

/// `TOKEN_CACHE_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCacheSettings {
    /// `TOKEN_CACHE_ENABLED`: when false, no cache and no listener.
    pub enabled: bool,
    /// `TOKEN_CACHE_CAPACITY`: most entries held.
    pub capacity: usize,
    /// `TOKEN_CACHE_TTL_SECONDS`: how long an entry is trusted at most.
    pub ttl: Duration,
}

impl Default for TokenCacheSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            capacity: 10_000,
            ttl: Duration::from_secs(30),
        }
    }
}

#[derive(Clone)]
struct Entry {
    user: User,
    expires_at: i64,
    stored: Instant,
    seq: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Insertion order: the oldest entry goes first when the cache is full.
    order: BTreeMap<u64, String>,
    /// Each user's cached digests.
    by_user: HashMap<Uuid, Vec<String>>,
    next_seq: u64,
    /// Changes with every eviction by notification and every change of subscription.
    generation: u64,
    subscribed: bool,
}

impl Inner {
    fn remove(&mut self, digest: &str) -> bool {
        let Some(entry) = self.entries.remove(digest) else {
            return false;
        };
        self.order.remove(&entry.seq);
        let user = entry.user.id.as_uuid();
        if let Some(digests) = self.by_user.get_mut(&user) {
            digests.retain(|d| d != digest);
            if digests.is_empty() {
                self.by_user.remove(&user);
            }
        }
        true
    }

    fn clear(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        self.order.clear();
        self.by_user.clear();
        n
    }
}

/// What [`TokenCache::lookup`] found.
#[derive(Debug)]
pub enum Lookup {
    /// A live entry: the user.
    Hit(Box<User>),
    /// No usable entry: read the database, then [`TokenCache::store`] with this ticket.
    Miss(Ticket),
    /// The cache is bypassed: read the database and store nothing.
    Bypassed,
}

/// The generation a database read started in.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

/// The cache itself: bounded, aged, and emptied whenever its invalidations may have been missed.
pub struct TokenCache {
    inner: Mutex<Inner>,
    capacity: usize,
    ttl: Duration,
    /// Barriers: the instance's own notifications, numbered, which tell a writer that the
    /// listener has seen everything committed before them (see [`TokenCache::settle`]).
    instance: Uuid,
    next_barrier: AtomicU64,
    seen_barrier: tokio::sync::watch::Sender<u64>,
    /// Raised when a barrier was not seen in time: the listener's connection no longer delivers,
    /// and the listener must connect again.
    pub(crate) undelivered: tokio::sync::Notify,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// How long a writer waits for the listener to confirm its barrier before emptying the cache.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

impl TokenCache {
    /// An empty, bypassed cache of at most `capacity` entries, each trusted for `ttl` at most.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
            ttl,
            instance: Uuid::now_v7(),
            next_barrier: AtomicU64::new(1),
            seen_barrier: tokio::sync::watch::Sender::new(0),
            undelivered: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::pool::lock(&self.inner)
    }

    /// The entry for `digest` if it is younger than the TTL and its token not expired at `now`.
    pub fn lookup(&self, digest: &str, now: i64) -> Lookup {
        self.lookup_at(digest, now, Instant::now())
    }

    fn lookup_at(&self, digest: &str, now: i64, at: Instant) -> Lookup {
        let mut inner = self.lock();
        if !inner.subscribed {
            drop(inner);
            metrics::counter!(BYPASSED_CHECKS).increment(1);
            return Lookup::Bypassed;
        }
        let ticket = Ticket(inner.generation);
        match inner.entries.get(digest) {
            Some(e) if e.expires_at >= now && at.saturating_duration_since(e.stored) < self.ttl => {
                let user = Box::new(e.user.clone());
                drop(inner);
                metrics::counter!(HITS).increment(1);
                Lookup::Hit(user)
            }
            Some(_) => {
                inner.remove(digest);
                drop(inner);
                metrics::counter!(EVICTIONS).increment(1);
                metrics::counter!(MISSES).increment(1);
                Lookup::Miss(ticket)
            }
            None => {
                drop(inner);
                metrics::counter!(MISSES).increment(1);
                Lookup::Miss(ticket)
            }
        }
    }

    /// Keeps what the database answered, unless anything was invalidated since the read began.
    pub fn store(&self, ticket: Ticket, digest: &str, user: &User, expires_at: i64) {
        self.store_at(ticket, digest, user, expires_at, Instant::now());
    }

    fn store_at(&self, ticket: Ticket, digest: &str, user: &User, expires_at: i64, at: Instant) {
        let mut inner = self.lock();
        if !inner.subscribed || inner.generation != ticket.0 {
            return;
        }
        inner.remove(digest);
        let mut evicted = 0;
        while inner.entries.len() >= self.capacity {
            let Some((_, oldest)) = inner.order.pop_first() else {
                break;
            };
            inner.remove(&oldest);
            evicted += 1;
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.order.insert(seq, digest.to_owned());
        inner
            .by_user
            .entry(user.id.as_uuid())
            .or_default()
            .push(digest.to_owned());
        inner.entries.insert(
            digest.to_owned(),
            Entry {
                user: user.clone(),
                expires_at,
                stored: at,
                seq,
            },
        );
        drop(inner);
        if evicted > 0 {
            metrics::counter!(EVICTIONS).increment(evicted);
        }
    }

    /// Applies one notification payload of [`CHANNEL`]. Unknown payloads empty the cache (a
    /// newer version may notify something this one does not understand).
    pub fn apply(&self, payload: &str) {
        if let Some(n) = payload
            .strip_prefix("b:")
            .and_then(|rest| rest.split_once(':'))
            .filter(|(instance, _)| *instance == self.instance.simple().to_string())
            .and_then(|(_, n)| n.parse::<u64>().ok())
        {
            self.seen_barrier.send_if_modified(|seen| {
                let newer = n > *seen;
                if newer {
                    *seen = n;
                }
                newer
            });
            return;
        }
        if payload.starts_with("b:") {
            return; // another instance's barrier
        }
        let mut inner = self.lock();
        inner.generation += 1;
        let evicted = if let Some(digest) = payload.strip_prefix("t:") {
            usize::from(inner.remove(digest))
        } else if let Some(user) = payload.strip_prefix("u:").and_then(|u| u.parse().ok()) {
            let digests = inner.by_user.remove(&user).unwrap_or_default();
            digests.iter().filter(|d| inner.remove(d)).count()
        } else if let Some(site) = payload.strip_prefix("s:").and_then(|s| s.parse().ok()) {
            let site = SiteId::from_uuid(site);
            let digests: Vec<String> = inner
                .entries
                .iter()
                .filter(|(_, e)| e.user.site_id == site)
                .map(|(d, _)| d.clone())
                .collect();
            digests.iter().filter(|d| inner.remove(d)).count()
        } else {
            inner.clear()
        };
        drop(inner);
        metrics::counter!(EVICTIONS).increment(evicted as u64);
    }

    /// The listener is listening: start caching, from empty.
    pub fn subscribed(&self) {
        self.set_subscribed(true);
    }

    /// The listener lost its connection (or never had one): empty the cache and bypass it.
    pub fn bypass(&self) {
        self.set_subscribed(false);
    }

    fn set_subscribed(&self, subscribed: bool) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.subscribed = subscribed;
        let evicted = inner.clear();
        drop(inner);
        if evicted > 0 {
            metrics::counter!(EVICTIONS).increment(evicted as u64);
        }
    }

    /// Empties the cache and keeps caching.
    pub fn flush(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        let evicted = inner.clear();
        drop(inner);
        metrics::counter!(EVICTIONS).increment(evicted as u64);
    }

    /// Whether the cache is bypassed right now.
    pub fn is_bypassed(&self) -> bool {
        !self.lock().subscribed
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload of the next barrier, and its number; `None` while bypassed (nothing cached,
    /// nothing to wait for).
    fn next_barrier(&self) -> Option<(String, u64)> {
        if self.is_bypassed() {
            return None;
        }
        let n = self.next_barrier.fetch_add(1, Ordering::Relaxed);
        Some((format!("b:{}:{n}", self.instance.simple()), n))
    }

    /// Makes what was just committed on `conn` visible to this instance's own next check:
    /// [`Self::send_barrier`] on `conn`, then [`Self::await_barrier`].
    pub async fn settle(&self, conn: &mut diesel_async::AsyncPgConnection) {
        if let Some(barrier) = self.send_barrier(conn).await {
            self.await_barrier(barrier).await;
        }
    }

    /// Sends a numbered barrier notification on `conn`, in a transaction of its own, so it
    /// commits after whatever `conn` committed before. `None` while bypassed (nothing cached,
    /// nothing to wait for) or when it could not be sent (the cache is then emptied).
    pub async fn send_barrier(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
    ) -> Option<Barrier> {
        use diesel_async::RunQueryDsl as _;
        let (payload, n) = self.next_barrier()?;
        let seen = self.seen_barrier.subscribe();
        let sent = diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<diesel::sql_types::Text, _>(CHANNEL)
            .bind::<diesel::sql_types::Text, _>(&payload)
            .execute(conn)
            .await;
        if sent.is_err() {
            self.flush();
            return None;
        }
        Some(Barrier { n, seen })
    }

    /// Waits until the listener has seen `barrier`, and so applied every notification committed
    /// before it (PostgreSQL delivers them in commit order). If it does not within
    /// [`SETTLE_TIMEOUT`], its connection is not delivering: the cache is emptied and bypassed,
    /// and the listener told to connect again.
    pub async fn await_barrier(&self, barrier: Barrier) {
        let Barrier { n, mut seen } = barrier;
        let confirmed = tokio::time::timeout(SETTLE_TIMEOUT, seen.wait_for(|s| *s >= n)).await;
        // Already bypassed: the listener knows its connection is gone.
        if !matches!(confirmed, Ok(Ok(_))) && !self.is_bypassed() {
            self.bypass();
            self.undelivered.notify_one();
        }
    }
}

/// A barrier sent by [`TokenCache::send_barrier`], to wait for with
/// [`TokenCache::await_barrier`].
#[derive(Debug)]
pub struct Barrier {
    n: u64,
    seen: tokio::sync::watch::Receiver<u64>,
}

/// The account repository with bearer checks answered from a [`TokenCache`]; every other method
/// goes straight to PostgreSQL.
pub struct CachedAccountRepository {
    inner: PgAccountRepository,
    cache: Arc<TokenCache>,
    _listener: Option<Arc<crate::token_listener::TokenListener>>,
}

impl CachedAccountRepository {
    /// `inner` behind `cache`, whose invalidations `listener` (when given) delivers; the
    /// listener stops when the repository is dropped.
    pub fn new(
        inner: PgAccountRepository,
        cache: Arc<TokenCache>,
        listener: Option<crate::token_listener::TokenListener>,
    ) -> Self {
        Self {
            inner,
            cache,
            _listener: listener.map(Arc::new),
        }
    }
}

#[async_trait]
impl AccountRepository for CachedAccountRepository {
    async fn find_user(&self, id: UserId) -> Result<Option<User>, RepoError> {
        self.inner.find_user(id).await
    }

    async fn find_user_by_email(
        &self,
        site: SiteId,
        email: &Email,
    ) -> Result<Option<User>, RepoError> {
        self.inner.find_user_by_email(site, email).await
    }

    async fn user_by_auth_token(&self, digest: &str, now: i64) -> Result<Option<User>, RepoError> {
        match self.cache.lookup(digest, now) {
            Lookup::Hit(user) => Ok(Some(*user)),
            Lookup::Bypassed => self.inner.user_by_auth_token(digest, now).await,
            Lookup::Miss(ticket) => {
                let found = self
                    .inner
                    .user_and_expiry_by_auth_token(digest, now)
                    .await?;
                if let Some((user, expires_at)) = &found {
                    self.cache.store(ticket, digest, user, *expires_at);
                }
                Ok(found.map(|(user, _)| user))
            }
        }
    }

    async fn find_refresh_token(&self, digest: &str) -> Result<Option<RefreshToken>, RepoError> {
        self.inner.find_refresh_token(digest).await
    }

    async fn find_verification_token(
        &self,
        digest: &str,
    ) -> Result<Option<StoredToken>, RepoError> {
        self.inner.find_verification_token(digest).await
    }

    async fn find_reset_token(&self, digest: &str) -> Result<Option<ResetToken>, RepoError> {
        self.inner.find_reset_token(digest).await
    }

    async fn find_email_change(
        &self,
        digest: &str,
    ) -> Result<Option<EmailChangeRequest>, RepoError> {
        self.inner.find_email_change(digest).await
    }

    async fn password_hash_kinds(&self) -> Result<Vec<String>, RepoError> {
        self.inner.password_hash_kinds().await
    }

    async fn record_reset_request(&self, request: &ResetRequest) -> Result<(), RepoError> {
        self.inner.record_reset_request(request).await
    }

    async fn claim_reset_requests(
        &self,
        limit: i64,
        now: i64,
        until: i64,
    ) -> Result<Vec<ResetRequest>, RepoError> {
        self.inner.claim_reset_requests(limit, now, until).await
    }

    async fn list_users(&self, site: SiteId) -> Result<Vec<User>, RepoError> {
        self.inner.list_users(site).await
    }

    async fn delete_expired_tokens(&self, now: i64) -> Result<CleanupCounts, RepoError> {
        self.inner.delete_expired_tokens(now).await
    }

    async fn email_taken(
        &self,
        site: SiteId,
        email: &Email,
        except: Option<UserId>,
    ) -> Result<bool, RepoError> {
        self.inner.email_taken(site, email, except).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_domain::user::Role;

    fn user(site: Uuid) -> User {
        User {
            id: UserId::from_uuid(Uuid::now_v7()),
            site_id: SiteId::from_uuid(site),
            email: Email::parse("someone@example.com").unwrap(),
            password_hash: None,
            is_verified: true,
            role: Role::User,
            created_at: 0,
            updated_at: 0,
            deletion_protected: false,
        }
    }

    fn live() -> TokenCache {
        let c = TokenCache::new(3, Duration::from_secs(30));
        c.subscribed();
        c
    }

    fn miss(cache: &TokenCache, digest: &str, now: i64) -> Ticket {
        match cache.lookup(digest, now) {
            Lookup::Miss(t) => t,
            other => panic!("expected a miss, got {other:?}"),
        }
    }

    fn is_hit(cache: &TokenCache, digest: &str, now: i64) -> bool {
        matches!(cache.lookup(digest, now), Lookup::Hit(_))
    }

    #[test]
    fn a_stored_answer_is_a_hit_until_the_token_expires() {
        let cache = live();
        let u = user(Uuid::now_v7());
        let t = miss(&cache, "d1", 100);
        cache.store(t, "d1", &u, 200);
        match cache.lookup("d1", 200) {
            Lookup::Hit(found) => assert_eq!(*found, u),
            other => panic!("{other:?}"),
        }
        assert!(!is_hit(&cache, "d1", 201), "expired token answered");
        assert!(cache.is_empty(), "the expired entry is dropped");
    }

    #[test]
    fn an_entry_lives_no_longer_than_the_ttl() {
        let cache = TokenCache::new(10, Duration::from_secs(30));
        cache.subscribed();
        let start = Instant::now();
        let Lookup::Miss(t) = cache.lookup_at("d", 0, start) else {
            panic!()
        };
        cache.store_at(t, "d", &user(Uuid::now_v7()), 1_000, start);
        assert!(matches!(
            cache.lookup_at("d", 0, start + Duration::from_secs(29)),
            Lookup::Hit(_)
        ));
        assert!(matches!(
            cache.lookup_at("d", 0, start + Duration::from_secs(30)),
            Lookup::Miss(_)
        ));
    }

    #[test]
    fn the_capacity_bound_holds_and_the_oldest_goes_first() {
        let cache = live();
        let u = user(Uuid::now_v7());
        for d in ["a", "b", "c", "d", "e"] {
            let t = miss(&cache, d, 0);
            cache.store(t, d, &u, 10);
            assert!(cache.len() <= 3);
        }
        assert_eq!(cache.len(), 3);
        assert!(!is_hit(&cache, "a", 0));
        assert!(!is_hit(&cache, "b", 0));
        assert!(is_hit(&cache, "c", 0) && is_hit(&cache, "d", 0) && is_hit(&cache, "e", 0));
    }

    #[test]
    fn notifications_evict_a_token_a_user_or_a_site() {
        let cache = TokenCache::new(10, Duration::from_secs(30));
        cache.subscribed();
        let site = Uuid::now_v7();
        let (alice, bob, carol) = (user(site), user(site), user(Uuid::now_v7()));
        for (d, u) in [("a1", &alice), ("a2", &alice), ("b1", &bob), ("c1", &carol)] {
            let t = miss(&cache, d, 0);
            cache.store(t, d, u, 10);
        }
        cache.apply("t:a1");
        assert!(!is_hit(&cache, "a1", 0) && is_hit(&cache, "a2", 0));
        cache.apply(&format!("u:{}", alice.id.as_uuid()));
        assert!(!is_hit(&cache, "a2", 0) && is_hit(&cache, "b1", 0));
        cache.apply(&format!("s:{site}"));
        assert!(!is_hit(&cache, "b1", 0) && is_hit(&cache, "c1", 0));
        cache.apply("something new");
        assert!(cache.is_empty(), "an unknown payload empties the cache");
    }

    #[test]
    fn a_read_that_raced_a_notification_is_not_kept() {
        let cache = TokenCache::new(10, Duration::from_secs(30));
        cache.subscribed();
        let t = miss(&cache, "d", 0);
        cache.apply("t:other");
        cache.store(t, "d", &user(Uuid::now_v7()), 10);
        assert!(cache.is_empty());
    }

    #[test]
    fn bypassed_it_answers_nothing_and_keeps_nothing() {
        let cache = TokenCache::new(10, Duration::from_secs(30));
        assert!(
            matches!(cache.lookup("d", 0), Lookup::Bypassed),
            "bypassed at start"
        );
        cache.subscribed();
        let t = miss(&cache, "d", 0);
        cache.store(t, "d", &user(Uuid::now_v7()), 10);
        assert!(is_hit(&cache, "d", 0));
        cache.bypass();
        assert!(matches!(cache.lookup("d", 0), Lookup::Bypassed));
        cache.store(t, "d", &user(Uuid::now_v7()), 10);
        cache.subscribed();
        assert!(cache.is_empty(), "flushed, and the stale read was not kept");
        assert!(matches!(cache.lookup("d", 0), Lookup::Miss(_)));
    }

    #[tokio::test]
    async fn a_barrier_not_delivered_in_time_bypasses_the_cache_and_wakes_the_listener() {
        let cache = TokenCache::new(10, Duration::from_secs(30));
        cache.subscribed();
        let t = miss(&cache, "d", 0);
        cache.store(t, "d", &user(Uuid::now_v7()), 10);
        let (payload, n) = cache.next_barrier().unwrap();
        let seen = cache.seen_barrier.subscribe();
        // Delivered: nothing happens.
        cache.apply(&payload);
        cache.await_barrier(Barrier { n, seen }).await;
        assert!(is_hit(&cache, "d", 0));
        // Never delivered.
        let (_, n) = cache.next_barrier().unwrap();
        let seen = cache.seen_barrier.subscribe();
        cache.await_barrier(Barrier { n, seen }).await;
        assert!(cache.is_bypassed() && cache.is_empty());
        tokio::time::timeout(Duration::from_millis(100), cache.undelivered.notified())
            .await
            .expect("the listener is told");
    }

    #[test]
    fn only_this_instances_barriers_count() {
        let cache = TokenCache::new(10, Duration::from_secs(30));
        cache.subscribed();
        let (payload, n) = cache.next_barrier().unwrap();
        cache.apply(&format!("b:{}:{}", Uuid::now_v7().simple(), n + 5));
        assert_eq!(*cache.seen_barrier.borrow(), 0);
        cache.apply(&payload);
        assert_eq!(*cache.seen_barrier.borrow(), n);
    }
}
