//! Background workers inside the service: delivery of queued email and webhooks, and housekeeping.
//!
//! Each delivery task claims one message at a time under a short lease, so stopping waits only for
//! the message in hand, and a crash holds back only that message until its lease runs out (at
//! least once, never lost). Failures are not logged per pass: while the database is unreachable the
//! pool reports the outage and the workers only back off; any other failure is logged once, then
//! summarised at most every 10 s, and its end is logged once.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_domain::delivery::{Attempt, EmailDelivery, EmailOutbox, tidy};
use aegis_domain::ratelimit::RateCounters;
use aegis_domain::service::accounts::AccountService;
use aegis_domain::webhook_delivery::WebhookDelivery;
use aegis_domain::{Clock, RepoError};
use aegis_postgres::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Delivery tasks per kind: messages sent at once, so one slow provider call does not hold up the
/// rest of the queue.
pub const DELIVERY_TASKS: usize = 4;
/// How long a delivery task rests when nothing is due.
pub const EMAIL_IDLE: Duration = Duration::from_secs(1);
/// How long a webhook delivery task rests when nothing is due.
pub const WEBHOOK_IDLE: Duration = Duration::from_secs(2);
/// How long the password-reset task rests when no request is waiting: the most a reset email
/// waits before it is queued.
pub const RESET_REQUESTS_IDLE: Duration = Duration::from_millis(250);
/// Reset requests handled per transaction.
const RESET_REQUESTS_BATCH: i64 = 50;
/// How often expired links are cleared and old rows pruned.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(10);
/// How often the outboxes' backlogs are read for the metrics.
pub const METRICS_REFRESH: Duration = Duration::from_secs(5);
/// The longest a failing worker waits before trying again.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Ongoing failures are summarised at most this often.
const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Running workers. [`Workers::stop`] lets each finish the message in hand, then ends them.
pub struct Workers {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

impl Default for Workers {
    fn default() -> Self {
        Self {
            stop: watch::channel(false).0,
            handles: Vec::new(),
        }
    }
}

impl Workers {
    /// Starts [`DELIVERY_TASKS`] email delivery tasks, when there is a transport.
    pub fn spawn_email(&mut self, delivery: EmailDelivery) {
        for _ in 0..DELIVERY_TASKS {
            let delivery = delivery.clone();
            self.spawn("email delivery", EMAIL_IDLE, move || {
                let delivery = delivery.clone();
                async move { delivered("email", delivery.deliver_next().await) }
            });
        }
    }

    /// Starts the email housekeeping (expired links cleared, old rows pruned), which runs even
    /// when no mail is sent.
    pub fn spawn_email_housekeeping(
        &mut self,
        outbox: Arc<dyn EmailOutbox>,
        clock: Arc<dyn Clock>,
    ) {
        self.spawn("email housekeeping", HOUSEKEEPING_INTERVAL, move || {
            let (outbox, clock) = (outbox.clone(), clock.clone());
            async move { tidy(outbox.as_ref(), clock.now()).await.map(|_| false) }
        });
    }

    /// Starts [`DELIVERY_TASKS`] webhook delivery tasks and the webhook housekeeping.
    pub fn spawn_webhooks(&mut self, delivery: WebhookDelivery) {
        for _ in 0..DELIVERY_TASKS {
            let delivery = delivery.clone();
            self.spawn("webhook delivery", WEBHOOK_IDLE, move || {
                let delivery = delivery.clone();
                async move { delivered("webhook", delivery.deliver_next().await) }
            });
        }
        self.spawn("webhook housekeeping", HOUSEKEEPING_INTERVAL, move || {
            let delivery = delivery.clone();
            async move {
                let pruned = delivery.prune().await?;
                if pruned > 0 {
                    tracing::info!(pruned, "delivered webhooks pruned");
                }
                Ok(false)
            }
        });
    }

    /// Starts the task that turns recorded password-reset requests into links and email.
    pub fn spawn_reset_requests(&mut self, accounts: AccountService) {
        self.spawn("password reset requests", RESET_REQUESTS_IDLE, move || {
            let accounts = accounts.clone();
            async move {
                let handled = accounts
                    .process_reset_requests(RESET_REQUESTS_BATCH)
                    .await?;
                Ok(handled > 0)
            }
        });
    }

    /// Starts housekeeping of rate-limit counters: those of finished windows are deleted every
    /// minute.
    pub fn spawn_housekeeping(&mut self, counters: Arc<dyn RateCounters>, clock: Arc<dyn Clock>) {
        self.spawn(
            "rate-limit housekeeping",
            Duration::from_secs(60),
            move || {
                let (counters, clock) = (counters.clone(), clock.clone());
                async move { counters.prune(clock.now()).await.map(|_| false) }
            },
        );
    }

    /// Starts the task that reads the outboxes' backlogs for the metrics every
    /// [`METRICS_REFRESH`], once metrics are asked for (one cheap query).
    pub fn spawn_metrics_refresh(&mut self, pool: PgPool, clock: Arc<dyn Clock>) {
        self.spawn("metrics refresh", METRICS_REFRESH, move || {
            let (pool, clock) = (pool.clone(), clock.clone());
            async move {
                if crate::metrics::wanted() {
                    let backlogs = aegis_postgres::backlog::backlogs(&pool).await?;
                    crate::metrics::record_backlogs(&backlogs, clock.now());
                }
                Ok(false)
            }
        });
    }

    /// Runs `step` until stopped: again at once when it did some work (`Ok(true)`), after `idle`
    /// when there was none, and after a growing pause when it failed.
    fn spawn<F, Fut>(&mut self, what: &'static str, idle: Duration, step: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<bool, RepoError>> + Send,
    {
        let mut stop = self.stop.subscribe();
        self.handles.push(tokio::spawn(async move {
            let mut failures = FailureLog::new(what);
            loop {
                if *stop.borrow() {
                    break;
                }
                let pause = match step().await {
                    Ok(true) => {
                        failures.succeeded();
                        continue;
                    }
                    Ok(false) => {
                        failures.succeeded();
                        idle
                    }
                    Err(e) => failures.failed(&e, idle),
                };
                tokio::select! {
                    _ = stop.changed() => break,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }));
    }

    /// Asks every worker to stop and waits for them: each finishes the message in hand.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}

/// Counts a delivery task's attempt; whether there was one.
fn delivered(
    kind: &'static str,
    attempt: Result<Option<Attempt>, RepoError>,
) -> Result<bool, RepoError> {
    let attempt = attempt?;
    if let Some(attempt) = attempt {
        crate::metrics::record_attempt(kind, attempt);
    }
    Ok(attempt.is_some())
}

/// A worker's failures, reported without flooding the log.
struct FailureLog {
    what: &'static str,
    consecutive: u32,
    /// When the current run of failures was last reported, and how many came since.
    reported: Option<(Instant, u64)>,
}

impl FailureLog {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            consecutive: 0,
            reported: None,
        }
    }

    /// Records a failure; returns how long to wait before the next try.
    fn failed(&mut self, error: &RepoError, idle: Duration) -> Duration {
        self.consecutive = self.consecutive.saturating_add(1);
        let backoff = idle
            .saturating_mul(2u32.saturating_pow(self.consecutive.min(8)))
            .min(MAX_BACKOFF);
        // The pool reports database outages itself.
        if matches!(error, RepoError::Unavailable(_)) {
            return backoff;
        }
        match &mut self.reported {
            Some((at, since)) if at.elapsed() < REPORT_INTERVAL => *since += 1,
            Some((at, since)) => {
                tracing::warn!(worker = self.what, %error, failures = *since + 1, "still failing");
                *at = Instant::now();
                *since = 0;
            }
            None => {
                tracing::warn!(worker = self.what, %error, "failed; retrying with backoff");
                self.reported = Some((Instant::now(), 0));
            }
        }
        backoff
    }

    fn succeeded(&mut self) {
        self.consecutive = 0;
        if self.reported.take().is_some() {
            tracing::info!(worker = self.what, "working again");
        }
    }
}
