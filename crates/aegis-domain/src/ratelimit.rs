//! Rate limits (§8, decisions 22 and 23): fixed windows counted in shared storage, so every
//! instance of the service sees the same counts.

use async_trait::async_trait;

use crate::clock::UnixTime;
use crate::repo::RepoError;

/// A limit: at most `limit` hits per `window_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: u32,
    pub window_seconds: u32,
}

impl Rate {
    pub const fn per_minute(limit: u32) -> Self {
        Self {
            limit,
            window_seconds: 60,
        }
    }

    pub const fn per_minutes(limit: u32, minutes: u32) -> Self {
        Self {
            limit,
            window_seconds: minutes * 60,
        }
    }

    pub const fn per_hour(limit: u32) -> Self {
        Self {
            limit,
            window_seconds: 3_600,
        }
    }

    /// The start of the window `now` falls in.
    pub fn window_start(&self, now: UnixTime) -> UnixTime {
        let w = i64::from(self.window_seconds.max(1));
        now - now.rem_euclid(w)
    }

    /// How the reference words it: "10 per 1 minute", "3 per 15 minute", "20 per 1 hour".
    pub fn describe(&self) -> String {
        if self.window_seconds.is_multiple_of(3_600) {
            format!("{} per {} hour", self.limit, self.window_seconds / 3_600)
        } else {
            format!("{} per {} minute", self.limit, self.window_seconds / 60)
        }
    }
}

/// One counter to hit: a bucket name, its rate, and what to add (1 to count, -1 to refund, 0 to
/// read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub bucket: String,
    pub rate: Rate,
    pub by: i32,
}

/// A counter after a hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub bucket: String,
    pub rate: Rate,
    pub hits: u32,
    pub window_start: UnixTime,
}

impl Count {
    pub fn exceeded(&self) -> bool {
        self.hits > self.rate.limit
    }

    pub fn remaining(&self) -> u32 {
        self.rate.limit.saturating_sub(self.hits)
    }

    /// When the window ends (Unix seconds).
    pub fn reset_at(&self) -> UnixTime {
        self.window_start + i64::from(self.rate.window_seconds)
    }
}

/// Shared counters.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RateCounters: Send + Sync {
    /// Applies every hit to its bucket's current window, in one round trip, and returns the counts
    /// after, in the order given.
    async fn hit(&self, hits: Vec<Hit>, now: UnixTime) -> Result<Vec<Count>, RepoError>;
    /// Forgets a bucket (a successful login clears its failure count).
    async fn reset(&self, bucket: String) -> Result<(), RepoError>;
    /// Deletes counters whose window ended before `now`.
    async fn prune(&self, now: UnixTime) -> Result<u64, RepoError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_wording() {
        let r = Rate::per_minutes(3, 15);
        assert_eq!(r.window_start(1_000), 900);
        assert_eq!(r.describe(), "3 per 15 minute");
        assert_eq!(Rate::per_minute(10).describe(), "10 per 1 minute");
        assert_eq!(Rate::per_hour(20).describe(), "20 per 1 hour");
        let c = Count {
            bucket: "b".into(),
            rate: Rate::per_minute(2),
            hits: 3,
            window_start: 60,
        };
        assert!(c.exceeded());
        assert_eq!((c.remaining(), c.reset_at()), (0, 120));
    }
}
