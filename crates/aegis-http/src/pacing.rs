//! Holding an answer back for a given time, precisely: the runtime's timer works in milliseconds
//! and wakes a sleeper a millisecond or two late, which would make a held answer slower than the
//! one it imitates. The pacer sleeps the bulk of the wait, waking early by what it has learnt of
//! the timer's lateness, and yields to other tasks for the last stretch (at most a few
//! milliseconds) until the deadline.

use std::time::{Duration, Instant};

use aegis_domain::timing::RecentTimes;

/// The timer's resolution.
const TIMER_TICK: Duration = Duration::from_millis(1);
/// The most lateness the pacer corrects for.
const MAX_EARLY: Duration = Duration::from_millis(2);

/// Waits for given durations, correcting for the timer's lateness.
#[derive(Debug, Default)]
pub struct Pacer {
    lateness: RecentTimes<()>,
}

impl Pacer {
    /// Waits `wanted`, give or take the scheduler, without holding a thread.
    pub async fn wait(&self, wanted: Duration) {
        let deadline = Instant::now() + wanted;
        // Waking early by more than a few milliseconds would spend them spinning, which under
        // load (when the timer is later still) would add to the load.
        let early = self.lateness.median(&()).unwrap_or_default().min(MAX_EARLY) + TIMER_TICK;
        let bulk = wanted.saturating_sub(early);
        if !bulk.is_zero() {
            let started = Instant::now();
            tokio::time::sleep(bulk).await;
            self.lateness
                .record((), started.elapsed().saturating_sub(bulk));
        }
        while Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
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
        for wanted in [20, 1, 5, 0, 3] {
            let wanted = Duration::from_millis(wanted);
            let started = Instant::now();
            pacer.wait(wanted).await;
            // Never early: the last stretch is waited out to the deadline.
            assert!(started.elapsed() >= wanted);
        }
        assert!(pacer.lateness.median(&()).is_some());
    }
}
