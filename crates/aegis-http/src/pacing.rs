//! Holding an answer back for a given time, precisely: the runtime's timer wakes a sleeper a
//! millisecond or two late, which would make a held answer slower than the one it imitates. The
//! pacer learns how late it wakes and asks for that much less.

use std::time::{Duration, Instant};

use aegis_domain::timing::RecentTimes;

/// Waits for given durations, correcting for the timer's lateness.
#[derive(Debug, Default)]
pub struct Pacer {
    lateness: RecentTimes<()>,
}

impl Pacer {
    /// Waits about `wanted`, without holding a thread.
    pub async fn wait(&self, wanted: Duration) {
        if wanted.is_zero() {
            return;
        }
        let asked = wanted.saturating_sub(self.lateness.median(&()).unwrap_or_default());
        let started = Instant::now();
        tokio::time::sleep(asked).await;
        self.lateness
            .record((), started.elapsed().saturating_sub(asked));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_about_what_was_asked_and_learns_the_timers_lateness() {
        let pacer = Pacer::default();
        pacer.wait(Duration::ZERO).await;
        assert_eq!(pacer.lateness.median(&()), None, "no wait, nothing learnt");
        for _ in 0..5 {
            let started = Instant::now();
            pacer.wait(Duration::from_millis(20)).await;
            assert!(started.elapsed() >= Duration::from_millis(15));
        }
        assert!(pacer.lateness.median(&()).is_some());
    }
}
