//! Recent durations per kind of work, for answers that must not take less time than another kind
//! would: a failed password check against any kind of hash, a registration of a taken address.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

/// How many recent durations of each kind are kept.
const SAMPLES_PER_KIND: usize = 15;
/// The most kinds kept apart; a kind beyond them is not recorded.
const MAX_KINDS: usize = 32;

/// The last few durations of each kind of work, and their medians.
#[derive(Debug)]
pub struct RecentTimes<K> {
    recent: Mutex<HashMap<K, VecDeque<Duration>>>,
}

impl<K> Default for RecentTimes<K> {
    fn default() -> Self {
        Self {
            recent: Mutex::new(HashMap::new()),
        }
    }
}

fn median(samples: &VecDeque<Duration>) -> Option<Duration> {
    let mut sorted: Vec<Duration> = samples.iter().copied().collect();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied()
}

impl<K: Hash + Eq> RecentTimes<K> {
    /// Records that work of `kind` took `took`.
    pub fn record(&self, kind: K, took: Duration) {
        let Ok(mut recent) = self.recent.lock() else {
            return;
        };
        if recent.len() >= MAX_KINDS && !recent.contains_key(&kind) {
            return;
        }
        let samples = recent.entry(kind).or_default();
        if samples.len() == SAMPLES_PER_KIND {
            samples.pop_front();
        }
        samples.push_back(took);
    }

    /// The median of the recent durations of `kind`, if any were recorded.
    pub fn median(&self, kind: &K) -> Option<Duration> {
        self.recent.lock().ok()?.get(kind).and_then(median)
    }

    /// The largest median of any kind.
    pub fn largest_median(&self) -> Option<Duration> {
        self.recent.lock().ok()?.values().filter_map(median).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_recent_durations_per_kind() {
        let ms = Duration::from_millis;
        let times = RecentTimes::default();
        assert_eq!((times.median(&"a"), times.largest_median()), (None, None));
        for took in [20, 35, 21] {
            times.record("a", ms(took));
        }
        assert_eq!(times.median(&"a"), Some(ms(21)));
        times.record("b", ms(250));
        assert_eq!(times.largest_median(), Some(ms(250)));
        // Only recent durations count.
        for _ in 0..SAMPLES_PER_KIND {
            times.record("b", ms(300));
        }
        assert_eq!(times.median(&"b"), Some(ms(300)));
        // Kinds are bounded.
        let many = RecentTimes::default();
        for kind in 0..100 {
            many.record(kind, ms(1));
        }
        assert_eq!(many.recent.lock().unwrap().len(), MAX_KINDS);
        assert_eq!(many.median(&99), None);
    }
}
