//! A short, bounded cache of validated bearer tokens.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aegis_api_types::User;
use sha2::{Digest, Sha256};

/// How long a validated token is trusted without asking Aegis again, unless configured
/// otherwise: a token revoked in Aegis (logout, password change, user deleted) keeps working on
/// the downstream service for at most this long.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// How many tokens the cache holds at most, unless configured otherwise.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// The cache key of a bearer token: its SHA-256 digest, so the cache never holds a token itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    /// The key of `token`.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…)")
    }
}

struct Entry {
    user: User,
    fetched: Instant,
}

/// The users behind recently validated tokens, each kept for at most a TTL, and at most
/// `capacity` of them.
///
/// When the cache is full, an insertion first drops every expired entry, then, if none was, the
/// oldest one, so memory stays bounded whatever the traffic. A TTL of zero or a capacity of zero
/// caches nothing: every request asks Aegis.
///
/// The clock is the caller's: every method takes `now`, so tests need no sleeping.
pub struct TokenCache {
    ttl: Duration,
    capacity: usize,
    entries: HashMap<TokenKey, Entry>,
}

impl TokenCache {
    /// An empty cache.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: HashMap::new(),
        }
    }

    /// How long an entry lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How many entries the cache holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many entries the cache holds, expired ones included until they are dropped.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn fresh(&self, entry: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(entry.fetched) < self.ttl
    }

    /// The user behind `key` if it was fetched less than a TTL before `now`; an expired entry is
    /// dropped.
    pub fn get(&mut self, key: &TokenKey, now: Instant) -> Option<User> {
        let entry = self.entries.get(key)?;
        if self.fresh(entry, now) {
            return Some(entry.user.clone());
        }
        self.entries.remove(key);
        None
    }

    /// Remembers that `key` authenticated `user` at `now`.
    pub fn insert(&mut self, key: TokenKey, user: User, now: Instant) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            let ttl = self.ttl;
            self.entries
                .retain(|_, e| now.saturating_duration_since(e.fetched) < ttl);
            if self.entries.len() >= self.capacity {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.fetched)
                    .map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.insert(key, Entry { user, fetched: now });
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &TokenKey) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_api_types::Role;
    use uuid::Uuid;

    fn user(email: &str) -> User {
        User {
            uuid: Uuid::nil(),
            site_uuid: Uuid::nil(),
            email: email.to_owned(),
            is_verified: true,
            role: Role::User,
            created_at: 0,
            updated_at: 0,
            deletion_protected: false,
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn an_entry_lives_until_the_ttl_and_not_after() {
        let t0 = Instant::now();
        let mut cache = TokenCache::new(10 * SECOND, 10);
        let key = TokenKey::of("token");
        cache.insert(key, user("a@x.com"), t0);
        assert_eq!(cache.get(&key, t0).map(|u| u.email), Some("a@x.com".into()));
        assert!(cache.get(&key, t0 + 9 * SECOND).is_some());
        assert!(cache.get(&key, t0 + 10 * SECOND).is_none());
        assert!(cache.is_empty(), "an expired entry is dropped when read");
    }

    #[test]
    fn an_unknown_token_is_a_miss() {
        let mut cache = TokenCache::new(10 * SECOND, 10);
        cache.insert(TokenKey::of("one"), user("a@x.com"), Instant::now());
        assert!(cache.get(&TokenKey::of("two"), Instant::now()).is_none());
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first() {
        let t0 = Instant::now();
        let mut cache = TokenCache::new(10 * SECOND, 3);
        cache.insert(TokenKey::of("old-1"), user("1@x.com"), t0);
        cache.insert(TokenKey::of("old-2"), user("2@x.com"), t0);
        cache.insert(TokenKey::of("fresh"), user("3@x.com"), t0 + 5 * SECOND);
        let now = t0 + 11 * SECOND;
        cache.insert(TokenKey::of("new"), user("4@x.com"), now);
        assert_eq!(cache.len(), 2, "both expired entries went");
        assert!(cache.get(&TokenKey::of("fresh"), now).is_some());
        assert!(cache.get(&TokenKey::of("new"), now).is_some());
    }

    #[test]
    fn a_full_cache_without_expired_entries_drops_the_oldest() {
        let t0 = Instant::now();
        let mut cache = TokenCache::new(10 * SECOND, 3);
        for (i, token) in ["a", "b", "c"].into_iter().enumerate() {
            cache.insert(TokenKey::of(token), user(token), t0 + i as u32 * SECOND);
        }
        let now = t0 + 3 * SECOND;
        cache.insert(TokenKey::of("d"), user("d"), now);
        assert_eq!(cache.len(), 3);
        assert!(
            cache.get(&TokenKey::of("a"), now).is_none(),
            "the oldest went"
        );
        for token in ["b", "c", "d"] {
            assert!(cache.get(&TokenKey::of(token), now).is_some(), "{token}");
        }
    }

    #[test]
    fn the_bound_holds_under_many_insertions() {
        let t0 = Instant::now();
        let mut cache = TokenCache::new(10 * SECOND, 100);
        for i in 0..1_000u32 {
            cache.insert(
                TokenKey::of(&i.to_string()),
                user("u"),
                t0 + Duration::from_millis(u64::from(i)),
            );
            assert!(cache.len() <= 100);
        }
    }

    #[test]
    fn refreshing_a_present_key_does_not_evict_another() {
        let t0 = Instant::now();
        let mut cache = TokenCache::new(10 * SECOND, 2);
        cache.insert(TokenKey::of("a"), user("a"), t0);
        cache.insert(TokenKey::of("b"), user("b"), t0);
        cache.insert(TokenKey::of("a"), user("a2"), t0 + SECOND);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&TokenKey::of("b"), t0 + SECOND).is_some());
    }

    #[test]
    fn a_zero_ttl_or_capacity_caches_nothing() {
        let now = Instant::now();
        let mut no_ttl = TokenCache::new(Duration::ZERO, 10);
        no_ttl.insert(TokenKey::of("a"), user("a"), now);
        assert!(no_ttl.get(&TokenKey::of("a"), now).is_none());
        let mut no_room = TokenCache::new(10 * SECOND, 0);
        no_room.insert(TokenKey::of("a"), user("a"), now);
        assert!(no_room.is_empty());
    }

    #[test]
    fn the_key_is_a_digest_not_the_token() {
        let key = TokenKey::of("secret-token");
        assert_ne!(&key.0[..], b"secret-token".as_slice());
        assert_eq!(key, TokenKey::of("secret-token"));
        assert!(!format!("{key:?}").contains("secret"));
    }
}
