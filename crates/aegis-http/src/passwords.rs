//! The password port on a fixed set of hashing threads.
//!
//! `PASSWORD_HASH_CONCURRENCY` threads (one per CPU by default) take jobs from one bounded queue.
//! Each thread keeps its Argon2 memory (19 MiB at the default cost) while more jobs are waiting and
//! gives it back to the operating system as soon as the queue is empty, so memory at rest does not
//! grow with the number of logins, and a burst holds at most one block per thread. When the queue
//! is full, a job is refused at once with [`HashError::Busy`] (503) instead of waiting without
//! limit.
//!
//! Every verification is timed by kind of stored hash, and a failed one is held (without holding
//! a thread) until it has taken as long as the slowest kind takes: a wrong password against an
//! adopted bcrypt hash, an unknown address and an account without a password answer alike.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use std::time::{Duration, Instant};

use aegis_domain::password::{
    FailureTiming, HashError, HashKind, HashMemory, PasswordAlgorithms, PasswordHasher,
    Verification,
};
use aegis_domain::user::PlainPassword;
use async_trait::async_trait;

/// Sizes of the hashing pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashPoolSize {
    /// Hashing threads: jobs that run at once.
    pub workers: usize,
    /// Jobs that may wait for a thread; beyond this, [`HashError::Busy`].
    pub queue: usize,
}

type Job = Box<dyn FnOnce(&mut HashMemory) + Send>;

/// [`PasswordHasher`] running [`PasswordAlgorithms`] on a fixed set of threads.
#[derive(Clone)]
pub struct PooledHasher {
    algorithms: Arc<PasswordAlgorithms>,
    jobs: Sender<Job>,
    /// Bytes of Argon2 memory the threads hold.
    held: Arc<AtomicUsize>,
    /// What failed verifications take, per kind of hash.
    timing: Arc<FailureTiming>,
}

impl PooledHasher {
    /// Starts `size.workers` hashing threads (at least one). They end when the last clone of the
    /// hasher is dropped.
    pub fn new(algorithms: PasswordAlgorithms, size: HashPoolSize) -> std::io::Result<Self> {
        let (jobs, queue) = crossbeam_channel::bounded::<Job>(size.queue);
        let held = Arc::new(AtomicUsize::new(0));
        for i in 0..size.workers.max(1) {
            let (queue, held) = (queue.clone(), held.clone());
            std::thread::Builder::new()
                .name(format!("aegis-hash-{i}"))
                .spawn(move || work(&queue, &held))?;
        }
        // The dummy verification's cost is known before the first login.
        let timing = Arc::new(FailureTiming::default());
        let started = Instant::now();
        let _ = algorithms.verify(&PlainPassword::new(String::new()), None);
        timing.record(HashKind::Dummy, started.elapsed());
        Ok(Self {
            algorithms: Arc::new(algorithms),
            jobs,
            held,
            timing,
        })
    }

    /// What every failed verification takes at least, as learnt so far.
    pub fn failure_floor(&self) -> Duration {
        self.timing.floor()
    }

    /// Jobs waiting for a thread.
    pub fn waiting(&self) -> usize {
        self.jobs.len()
    }

    /// Bytes of Argon2 memory the threads hold right now.
    pub fn memory_held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Runs `job` on a hashing thread with that thread's memory. Refused with
    /// [`HashError::Busy`] when the queue is full; skipped if the caller has gone by the time a
    /// thread takes it.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&PasswordAlgorithms, &mut HashMemory) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let algorithms = self.algorithms.clone();
        let job: Job = Box::new(move |memory| {
            metrics::gauge!(crate::metrics::HASH_WAITING).decrement(1.0);
            if !reply.is_closed() {
                let _running = Running::start();
                let started = Instant::now();
                let _ = reply.send(job(&algorithms, memory));
                metrics::histogram!(crate::metrics::HASH_DURATION)
                    .record(started.elapsed().as_secs_f64());
            }
        });
        // Counted before it is queued, so a thread taking it at once never counts below zero.
        let waiting = metrics::gauge!(crate::metrics::HASH_WAITING);
        waiting.increment(1.0);
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(e) => {
                waiting.decrement(1.0);
                return Err(match e {
                    TrySendError::Full(_) => HashError::Busy,
                    TrySendError::Disconnected(_) => {
                        HashError::Failed("the hashing threads have stopped".into())
                    }
                });
            }
        }
        answer
            .await
            .map_err(|_| HashError::Failed("a hashing job did not finish".into()))
    }
}

/// Counts a job as running until dropped, even if the job panics.
struct Running(metrics::Gauge);

impl Running {
    fn start() -> Self {
        let gauge = metrics::gauge!(crate::metrics::HASH_RUNNING);
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// A hashing thread: keeps its memory while jobs follow one another, releases it when the queue
/// runs dry, and ends when every sender is gone. `held` counts what all threads hold.
fn work(queue: &Receiver<Job>, held: &AtomicUsize) {
    let mut memory = HashMemory::default();
    let mut counted = 0;
    let mut count = |memory: &HashMemory| {
        let now = memory.held_bytes();
        if now > counted {
            held.fetch_add(now - counted, Ordering::Relaxed);
        } else {
            held.fetch_sub(counted - now, Ordering::Relaxed);
        }
        counted = now;
    };
    loop {
        let job = match queue.try_recv() {
            Ok(job) => job,
            Err(_) => {
                memory.release();
                count(&memory);
                match queue.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            }
        };
        // A panicking job loses its answer (the caller sees a failure), not the thread.
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut memory))).is_err() {
            memory.release();
        }
        count(&memory);
    }
}

#[async_trait]
impl PasswordHasher for PooledHasher {
    async fn hash(&self, password: &PlainPassword) -> Result<String, HashError> {
        let password = password.clone();
        self.run(move |a, memory| a.hash_in(&password, memory))
            .await?
    }

    async fn verify(
        &self,
        password: &PlainPassword,
        stored: Option<String>,
    ) -> Result<Verification, HashError> {
        let password = password.clone();
        let kind = HashKind::of(stored.as_deref());
        let (verification, took) = self
            .run(move |a, memory| {
                let started = Instant::now();
                let verification = a.verify_in(&password, stored.as_deref(), memory);
                (verification, started.elapsed())
            })
            .await?;
        self.timing.record(kind, took);
        if verification == Verification::NoMatch {
            // A plain sleep: it may wake a millisecond late, never early.
            let rest = self.timing.floor().saturating_sub(took);
            if !rest.is_zero() {
                tokio::time::sleep(rest).await;
            }
        }
        Ok(verification)
    }

    async fn learn_costs(&self, kinds: Vec<HashKind>) -> Result<(), HashError> {
        for kind in kinds {
            if self.timing.knows(&kind) {
                continue;
            }
            let timed = self
                .run(move |a, memory| {
                    let sample = a.sample(&kind)?;
                    let started = Instant::now();
                    let _ = a.verify_in(
                        &PlainPassword::new("aegis-calibration-miss".into()),
                        Some(&sample),
                        memory,
                    );
                    Some((kind, started.elapsed()))
                })
                .await?;
            if let Some((kind, took)) = timed {
                self.timing.record(kind, took);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aegis_domain::password::Argon2Settings;

    use super::*;

    fn hasher(workers: usize, queue: usize) -> PooledHasher {
        let algorithms = PasswordAlgorithms::new(Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        PooledHasher::new(algorithms, HashPoolSize { workers, queue }).unwrap()
    }

    /// Occupies one hashing thread until the returned sender is dropped or sent to.
    async fn occupy(hasher: &PooledHasher) -> std::sync::mpsc::Sender<()> {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel();
        let h = hasher.clone();
        tokio::spawn(async move {
            h.run(move |_, _| {
                let _ = started.send(());
                let _ = wait.recv();
            })
            .await
        });
        running.await.unwrap();
        release
    }

    /// Waits (a few seconds at most) until `done` holds.
    async fn until(what: &str, done: impl Fn() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what}: not within 5 s");
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_and_work_resumes_after() {
        let h = hasher(1, 1);
        let release = occupy(&h).await;
        // One job may wait; the next is refused without waiting.
        let waiting = tokio::spawn({
            let h = h.clone();
            async move { h.hash(&PlainPassword::new("pw-12345".into())).await }
        });
        until("the job queued", || h.waiting() == 1).await;
        let refused = h.hash(&PlainPassword::new("pw-12345".into())).await;
        assert!(matches!(refused, Err(HashError::Busy)), "{refused:?}");
        drop(release);
        let hash = waiting.await.unwrap().unwrap();
        let verified = h
            .verify(&PlainPassword::new("pw-12345".into()), Some(hash))
            .await
            .unwrap();
        assert!(matches!(verified, Verification::Match { .. }));
    }

    #[tokio::test]
    async fn every_failure_takes_as_long_as_the_slowest_kind_of_hash() {
        let h = hasher(1, 4);
        let pw = PlainPassword::new("pw-12345".into());
        let dummy = h.failure_floor();
        assert!(dummy > Duration::ZERO);
        // A stored bcrypt hash far slower than the Argon2 costs here.
        h.learn_costs(vec![HashKind::Bcrypt(8)]).await.unwrap();
        let floor = h.failure_floor();
        assert!(floor > dummy, "{floor:?} vs {dummy:?}");
        // Learning twice changes nothing.
        h.learn_costs(vec![HashKind::Bcrypt(8)]).await.unwrap();
        assert_eq!(h.failure_floor(), floor);
        for stored in [
            None,
            Some(h.hash(&pw).await.unwrap()),
            Some("junk".to_owned()),
        ] {
            let started = Instant::now();
            let answer = h
                .verify(&PlainPassword::new("wrong".into()), stored.clone())
                .await
                .unwrap();
            assert_eq!(answer, Verification::NoMatch);
            assert!(started.elapsed() >= floor, "{stored:?}");
        }
    }

    #[tokio::test]
    async fn threads_keep_memory_only_while_jobs_follow_one_another() {
        let h = hasher(1, 4);
        let release = occupy(&h).await;
        let held = |h: &PooledHasher| {
            let h = h.clone();
            async move { h.run(|_, memory| memory.held_bytes()).await.unwrap() }
        };
        // Queued behind the blocker: a hash, then a probe that sees the memory kept for it.
        let hashed = tokio::spawn({
            let h = h.clone();
            async move { h.hash(&PlainPassword::new("pw-12345".into())).await }
        });
        until("the hash queued", || h.waiting() == 1).await;
        let kept = tokio::spawn(held(&h));
        until("the probe queued", || h.waiting() == 2).await;
        drop(release);
        hashed.await.unwrap().unwrap();
        assert_eq!(kept.await.unwrap(), 64 * 1024);
        // Once the queue has run dry, the thread gives its memory back.
        until("the memory given back", || h.memory_held() == 0).await;
        assert_eq!(held(&h).await, 0);
    }
}
