//! Concurrent point reads gathered into one statement.
//!
//! Reads of one kind (the bearer check) go to the database in batches, one batch under way per
//! line at a time. A read that finds none of its line under way goes at once, alone or with
//! whoever is in line; one that finds one under way waits in line. When a batch is answered, the first read
//! in line leads the next batch, taking everyone in line with it (up to `max_batch`). No read waits
//! for a timer: an idle service answers as fast as without batching, and a busy one sends one
//! statement per round trip instead of one per request.
//!
//! Every read still reaches the database: nothing is reused across batches, so a read sees every
//! change committed before it was sent, like a read of its own.
//!
//! Threads are dealt to lines as they are to the pool's sub-pools, and there are as many lines as
//! sub-pools, so the reads of a thread batch together on the connections that thread drives (a
//! line per worker thread at the default sizing; threads share one when there are fewer).
//!
//! A failure is no one else's: when a batch fails, its leader gets the error and every other read
//! in it reads alone. So does a read whose batch was abandoned (its leader's request was dropped)
//! or that waited in line, not yet taken into a batch, for longer than its patience (a statement
//! stalled on a server process the scheduler holds up); a read already in a batch waits for it.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::pool::{lock, thread_ordinal};

/// Gathers concurrent reads of values by key (see the module).
pub(crate) struct Batcher<K, V> {
    lines: Box<[Mutex<Line<K, V>>]>,
    max_batch: usize,
    patience: Duration,
}

struct Line<K, V> {
    waiting: VecDeque<Waiter<K, V>>,
    /// Whether a batch is under way; its leader holds the line's place until it is answered.
    busy: bool,
    /// The number of the next read to join the line.
    next: u64,
}

struct Waiter<K, V> {
    /// The read's number in its line.
    number: u64,
    key: K,
    turn: oneshot::Sender<Turn<V>>,
}

/// What a read waiting in line is told.
enum Turn<V> {
    /// Lead the next batch: this read now holds the line's place.
    Lead,
    /// Its batch was answered: the value found for its key, if any.
    Answer(Option<V>),
    /// Its batch failed: read alone, for an error or an answer of its own.
    Alone,
}

impl<K: Eq + Clone, V: Clone> Batcher<K, V> {
    /// A batcher with `lines` lines (at least one), each with one batch of up to `max_batch` reads
    /// under way at a time; a read waits in line for up to `patience` before it reads alone.
    pub(crate) fn new(lines: usize, max_batch: usize, patience: Duration) -> Self {
        Self {
            lines: (0..lines.max(1))
                .map(|_| {
                    Mutex::new(Line {
                        waiting: VecDeque::new(),
                        busy: false,
                        next: 0,
                    })
                })
                .collect(),
            max_batch: max_batch.max(1),
            patience,
        }
    }

    /// The value for `key`, read by `run` in a batch with the reads waiting beside it. `run` gets
    /// the batch's keys (possibly repeated) and answers the pairs it found, in any order.
    pub(crate) async fn read<E, F, Fut>(&self, key: K, run: F) -> Result<Option<V>, E>
    where
        F: Fn(Vec<K>) -> Fut,
        Fut: Future<Output = Result<Vec<(K, V)>, E>>,
    {
        let line = &self.lines[thread_ordinal() % self.lines.len()];
        let queued = {
            let mut state = lock(line);
            if !state.busy {
                state.busy = true;
                None
            } else {
                let (turn, rx) = oneshot::channel();
                let number = state.next;
                state.next += 1;
                state.waiting.push_back(Waiter {
                    number,
                    key: key.clone(),
                    turn,
                });
                Some(Ticket {
                    line,
                    number,
                    rx: Some(rx),
                })
            }
        };
        if let Some(mut ticket) = queued {
            let turn = match tokio::time::timeout(self.patience, ticket.wait()).await {
                Ok(turn) => turn,
                // Out of patience while still in line: it leaves and reads alone. Once taken into
                // a batch (or given the lead), it waits for that instead.
                Err(_) if ticket.leave() => None,
                Err(_) => ticket.wait().await,
            };
            match turn {
                Some(Turn::Answer(value)) => return Ok(value),
                Some(Turn::Lead) => {}
                // Failed, abandoned or out of patience.
                Some(Turn::Alone) | None => {
                    drop(ticket);
                    return run(vec![key.clone()]).await.map(|found| pick(&found, &key));
                }
            }
        }
        // This read holds the line's place until its batch is answered, and then hands it
        // to the first in line, also when its request is dropped before that.
        let place = Place { line };
        let followers: Vec<Waiter<K, V>> = {
            let mut state = lock(line);
            let mut taken = Vec::new();
            while taken.len() + 1 < self.max_batch {
                let Some(waiter) = state.waiting.pop_front() else {
                    break;
                };
                // A read that gave up waiting is left out.
                if !waiter.turn.is_closed() {
                    taken.push(waiter);
                }
            }
            taken
        };
        let keys = std::iter::once(key.clone())
            .chain(followers.iter().map(|w| w.key.clone()))
            .collect();
        let result = run(keys).await;
        drop(place);
        match result {
            Ok(found) => {
                for waiter in followers {
                    let value = pick(&found, &waiter.key);
                    let _ = waiter.turn.send(Turn::Answer(value));
                }
                Ok(pick(&found, &key))
            }
            Err(error) => {
                for waiter in followers {
                    let _ = waiter.turn.send(Turn::Alone);
                }
                Err(error)
            }
        }
    }
}

/// The value found for `key` in a batch's answer.
fn pick<K: Eq, V: Clone>(found: &[(K, V)], key: &K) -> Option<V> {
    found.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// A read's place in line.
struct Ticket<'a, K, V> {
    line: &'a Mutex<Line<K, V>>,
    number: u64,
    rx: Option<oneshot::Receiver<Turn<V>>>,
}

impl<K, V> Ticket<'_, K, V> {
    /// Leaves the line if the read is still in it, not yet taken into a batch nor given the lead;
    /// whether it was.
    fn leave(&mut self) -> bool {
        let mut state = lock(self.line);
        let Some(at) = state.waiting.iter().position(|w| w.number == self.number) else {
            return false;
        };
        state.waiting.remove(at);
        self.rx = None;
        true
    }

    /// The read's turn; `None` when its batch was abandoned.
    async fn wait(&mut self) -> Option<Turn<V>> {
        let rx = self.rx.as_mut()?;
        let turn = rx.await.ok();
        self.rx = None;
        turn
    }
}

impl<K, V> Drop for Ticket<'_, K, V> {
    /// A read that leaves the line before its turn came hands on a lead given to it meanwhile.
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if let Ok(Turn::Lead) = rx.try_recv() {
                hand_on(self.line);
            }
        }
    }
}

/// The line's place, held by the leader of a batch under way.
struct Place<'a, K, V> {
    line: &'a Mutex<Line<K, V>>,
}

impl<K, V> Drop for Place<'_, K, V> {
    fn drop(&mut self) {
        hand_on(self.line);
    }
}

/// Gives the line's place to the first read in line still waiting, or frees it.
fn hand_on<K, V>(line: &Mutex<Line<K, V>>) {
    let mut state = lock(line);
    while let Some(waiter) = state.waiting.pop_front() {
        // The place changes hands only if its new holder still waits.
        if waiter.turn.send(Turn::Lead).is_ok() {
            return;
        }
    }
    state.busy = false;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Notify;

    use super::*;

    /// Answers each key with its double, except 13, counting the statements and their sizes.
    #[derive(Default)]
    struct Table {
        statements: AtomicUsize,
        largest: AtomicUsize,
        /// While set, statements wait for a permit.
        gate: Option<Arc<Notify>>,
    }

    impl Table {
        async fn run(&self, keys: Vec<u32>) -> Result<Vec<(u32, u32)>, String> {
            self.statements.fetch_add(1, Ordering::SeqCst);
            self.largest.fetch_max(keys.len(), Ordering::SeqCst);
            if let Some(gate) = &self.gate {
                gate.notified().await;
            }
            if keys.contains(&666) {
                return Err("broken".into());
            }
            Ok(keys
                .into_iter()
                .filter(|k| *k != 13)
                .map(|k| (k, k * 2))
                .collect())
        }
    }

    type Read = tokio::task::JoinHandle<Result<Option<u32>, String>>;

    /// A batcher (one line, batches of 4) over a table whose statements each wait
    /// for a permit from `gate`.
    struct Gated {
        batcher: Arc<Batcher<u32, u32>>,
        gate: Arc<Notify>,
        table: Arc<Table>,
    }

    impl Gated {
        fn new() -> Self {
            Self::with_patience(Duration::from_secs(5))
        }

        fn with_patience(patience: Duration) -> Self {
            let gate = Arc::new(Notify::new());
            Self {
                batcher: Arc::new(Batcher::new(1, 4, patience)),
                table: Arc::new(Table {
                    gate: Some(gate.clone()),
                    ..Table::default()
                }),
                gate,
            }
        }

        /// A read of `key` in a task of its own.
        fn spawn(&self, key: u32) -> Read {
            let (batcher, table) = (self.batcher.clone(), self.table.clone());
            tokio::spawn(async move { batcher.read(key, |k| table.run(k)).await })
        }

        /// A read of 1, which goes alone and stalls at the gate, then reads of `a` and `b`, which
        /// wait in line behind it.
        async fn two_behind_one(&self, a: u32, b: u32) -> [Read; 3] {
            let first = self.spawn(1);
            settle().await;
            let behind = [self.spawn(a), self.spawn(b)];
            settle().await;
            let [a, b] = behind;
            [first, a, b]
        }

        /// Lets one statement through the gate, and the tasks run on.
        async fn release(&self) {
            self.gate.notify_one();
            settle().await;
        }

        fn statements(&self) -> usize {
            self.table.statements.load(Ordering::SeqCst)
        }

        fn busy(&self) -> bool {
            lock(&self.batcher.lines[0]).busy
        }
    }

    /// Lets the spawned tasks on this single-threaded runtime run until they all wait.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_lone_read_goes_at_once_and_finds_its_value_or_none() {
        let batcher = Batcher::new(1, 4, Duration::from_secs(5));
        let table = Table::default();
        assert_eq!(batcher.read(21, |k| table.run(k)).await, Ok(Some(42)));
        assert_eq!(batcher.read(13, |k| table.run(k)).await, Ok(None));
        assert_eq!(table.statements.load(Ordering::SeqCst), 2);
        assert!(!lock(&batcher.lines[0]).busy);
    }

    #[tokio::test]
    async fn reads_arriving_while_one_is_under_way_go_together_in_bounded_batches() {
        let t = Gated::new();
        let reads: Vec<_> = (1..=7u32).map(|key| t.spawn(key)).collect();
        settle().await;
        // The first went alone; the six others wait in line.
        assert_eq!(t.statements(), 1);
        assert_eq!(lock(&t.batcher.lines[0]).waiting.len(), 6);
        for _ in 0..3 {
            t.gate.notify_one();
            settle().await;
        }
        for (key, read) in (1..=7u32).zip(reads) {
            assert_eq!(read.await.unwrap(), Ok(Some(key * 2)));
        }
        // 1 alone, then 2–5 (a batch holds 4), then 6–7.
        assert_eq!(t.statements(), 3);
        assert_eq!(t.table.largest.load(Ordering::SeqCst), 4);
        assert!(!t.busy());
    }

    #[tokio::test]
    async fn a_failed_batch_gives_its_error_to_its_leader_and_lets_the_others_read_alone() {
        let t = Gated::new();
        let [first, broken, fine] = t.two_behind_one(666, 2).await;
        // The first answers; 666 leads a batch with 2, which fails; 2 then reads alone.
        for _ in 0..3 {
            t.release().await;
        }
        assert_eq!(first.await.unwrap(), Ok(Some(2)));
        assert_eq!(broken.await.unwrap(), Err("broken".to_string()));
        assert_eq!(fine.await.unwrap(), Ok(Some(4)));
        assert_eq!(t.statements(), 3);
    }

    #[tokio::test]
    async fn a_dropped_leader_hands_its_place_on_and_its_batch_reads_alone() {
        let t = Gated::new();
        let [first, leader, follower] = t.two_behind_one(2, 3).await;
        t.release().await;
        // 2 leads a batch with 3; its request goes away mid-statement.
        assert_eq!(first.await.unwrap(), Ok(Some(2)));
        assert_eq!(t.statements(), 2);
        assert_eq!(t.table.largest.load(Ordering::SeqCst), 2);
        leader.abort();
        settle().await;
        // 3 reads alone, and the place is free: 4 goes at once.
        assert_eq!(t.statements(), 3);
        let fourth = t.spawn(4);
        settle().await;
        assert_eq!(t.statements(), 4);
        t.gate.notify_one();
        t.gate.notify_one();
        assert_eq!(follower.await.unwrap(), Ok(Some(6)));
        assert_eq!(fourth.await.unwrap(), Ok(Some(8)));
        assert!(!t.busy());
    }

    #[test]
    fn a_lead_given_to_a_read_that_left_goes_to_the_next_in_line() {
        let line = Mutex::new(Line::<u32, u32> {
            waiting: VecDeque::new(),
            busy: true,
            next: 0,
        });
        let queue = |key| {
            let (turn, rx) = oneshot::channel();
            lock(&line).waiting.push_back(Waiter {
                number: u64::from(key),
                key,
                turn,
            });
            rx
        };
        let (first, mut second) = (queue(1), queue(2));
        let ticket = Ticket {
            line: &line,
            number: 1,
            rx: Some(first),
        };
        // The batch under way is answered: the lead goes to 1, which leaves before it sees it.
        hand_on(&line);
        drop(ticket);
        assert!(matches!(second.try_recv(), Ok(Turn::Lead)));
        assert!(lock(&line).busy);
        // 2 finishes its batch with no one in line: the place is free.
        hand_on(&line);
        assert!(!lock(&line).busy);
    }

    #[tokio::test]
    async fn a_read_that_leaves_the_line_does_not_keep_its_place() {
        let t = Gated::new();
        let [first, gone, stays] = t.two_behind_one(2, 3).await;
        gone.abort();
        settle().await;
        t.gate.notify_one();
        settle().await;
        t.gate.notify_one();
        assert_eq!(first.await.unwrap(), Ok(Some(2)));
        assert_eq!(stays.await.unwrap(), Ok(Some(6)));
        // The second statement held only 3.
        assert_eq!(t.statements(), 2);
        assert!(!t.busy());
    }

    #[tokio::test]
    async fn a_read_out_of_patience_reads_alone() {
        let batcher = Arc::new(Batcher::new(1, 4, Duration::from_millis(50)));
        let stalled = Arc::new(Table {
            gate: Some(Arc::new(Notify::new())),
            ..Table::default()
        });
        let leader = {
            let (batcher, stalled) = (batcher.clone(), stalled.clone());
            tokio::spawn(async move { batcher.read(1, |k| stalled.run(k)).await })
        };
        settle().await;
        let table = Table::default();
        assert_eq!(batcher.read(5, |k| table.run(k)).await, Ok(Some(10)));
        assert_eq!(table.statements.load(Ordering::SeqCst), 1);
        assert!(!leader.is_finished());
        leader.abort();
    }

    #[tokio::test]
    async fn a_read_taken_into_a_batch_waits_for_it_past_its_patience() {
        let t = Gated::with_patience(Duration::from_millis(50));
        let [first, leader, follower] = t.two_behind_one(2, 3).await;
        t.release().await;
        // 2 leads a batch with 3, and it outlasts their patience: 3 neither leaves nor reads alone.
        assert_eq!(first.await.unwrap(), Ok(Some(2)));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(t.statements(), 2);
        t.gate.notify_one();
        assert_eq!(leader.await.unwrap(), Ok(Some(4)));
        assert_eq!(follower.await.unwrap(), Ok(Some(6)));
        assert_eq!(t.statements(), 2);
        assert!(!t.busy());
    }
}
