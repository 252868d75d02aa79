//! Webhook delivery: claims of one row at a time under a short lease, signed attempts with a
//! fresh timestamp each, the retry schedule, the attempt log, and the sweep report. As for email, a
//! crash holds back only the delivery in flight, which is retried after its lease (at least once).

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::clock::{Clock, UnixTime};
use crate::delivery::{Attempt, PRUNE_BATCH, RETENTION_SECONDS, retry_wait};
use crate::ids::SiteId;
use crate::repo::RepoError;
use crate::secrets::SecretGenerator;
use crate::webhook::signature;

/// How long a claim on one delivery is held: well beyond the 5 s request timeout.
pub const WEBHOOK_LEASE_SECONDS: i64 = 30;
/// Rows attempted per sweep at most.
pub const SWEEP_BATCH: u64 = 10;
/// A sweep stops starting new attempts after this many seconds.
pub const SWEEP_BUDGET_SECONDS: i64 = 150;
/// Stored response bodies and errors are cut to this many characters.
pub const MAX_STORED_TEXT: usize = 1_000;

/// Where a claimed event goes, read from its site at claim time.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// The site's webhook URL.
    pub url: String,
    /// The site's webhook secret, the key of the `X-Aegis-Signature` HMAC. Never logged.
    pub secret: String,
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A claimed delivery.
#[derive(Debug, Clone)]
pub struct ClaimedWebhook {
    /// The event's id ([`crate::webhook::WebhookEvent::event_id`]); identifies the row.
    pub event_id: Uuid,
    /// The site the event belongs to.
    pub site_id: SiteId,
    /// The event's name, sent as `X-Aegis-Event`.
    pub event_type: String,
    /// The body to send, byte for byte as queued.
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i32,
    /// The `next_attempt_at` the claim set: proof of ownership.
    pub lease: UnixTime,
    /// `None` when the site is gone or no longer has both a URL and a secret.
    pub target: Option<WebhookTarget>,
}

/// How a claimed delivery ends this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// The receiver answered with a 2xx status; the row is done.
    Delivered,
    /// The attempt failed (a non-2xx status or a transport error); try again.
    Retry {
        /// When the row is due again (Unix seconds), per [`crate::delivery::RETRY_SCHEDULE`].
        at: UnixTime,
    },
    /// The last allowed attempt failed, or the site no longer has a webhook: the row is given up.
    Exhausted,
}

/// One attempt, for the log (`webhook_events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptLog {
    /// The log entry's own id.
    pub id: Uuid,
    /// 1-based.
    pub attempt: i32,
    /// The HTTP status received; `None` when no response arrived (timeout, refused connection).
    pub response_status: Option<i32>,
    /// The response body, cut to [`MAX_STORED_TEXT`] characters; `None` when no response arrived.
    pub response_body: Option<String>,
    /// Whether the status was 2xx.
    pub success: bool,
    /// When the attempt ended (Unix seconds).
    pub at: UnixTime,
}

/// What the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    /// The HTTP status code; 2xx counts as delivered, anything else (redirects included) as a
    /// failure.
    pub status: u16,
    /// The response body as text; only its first [`MAX_STORED_TEXT`] characters are kept.
    pub body: String,
}

/// The outbound HTTP port: POSTs `body` with `headers`, following no redirect.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// The response, or the transport error as text.
    async fn post(
        &self,
        url: &str,
        headers: Vec<(&'static str, String)>,
        body: String,
    ) -> Result<WebhookResponse, String>;
}

/// The delivery table as the sweep sees it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WebhookOutbox: Send + Sync {
    /// Claims the due pending row that has waited longest, moving its `next_attempt_at` to
    /// `lease` (attempts unchanged). Rows held by another worker are skipped.
    async fn claim_next(
        &self,
        now: UnixTime,
        lease: UnixTime,
    ) -> Result<Option<ClaimedWebhook>, RepoError>;
    /// Writes the attempt to the log (when there was one) and, if the lease is still ours, the
    /// outcome to the row. Returns whether the row was ours.
    async fn record(
        &self,
        row: &ClaimedWebhook,
        log: Option<AttemptLog>,
        outcome: WebhookOutcome,
        last_status: Option<i32>,
        last_error: Option<String>,
        now: UnixTime,
    ) -> Result<bool, RepoError>;
    /// Deletes up to `limit` delivered rows last updated before `before`.
    async fn prune_delivered(&self, before: UnixTime, limit: i64) -> Result<u64, RepoError>;
    /// Pending rows due at `now`.
    async fn count_due(&self, now: UnixTime) -> Result<u64, RepoError>;
}

/// What one [`WebhookDelivery::sweep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Rows claimed and attempted (at most [`SWEEP_BATCH`]).
    pub attempted: u64,
    /// Attempts the receiver accepted.
    pub delivered: u64,
    /// Attempts that failed and will be retried, plus any whose lease was lost to another worker.
    pub retrying: u64,
    /// Rows given up for good.
    pub exhausted: u64,
    /// Pending rows still due when the sweep ended: a backlog when it stays above zero. Zero
    /// also when counting failed (logged as a warning).
    pub still_due: u64,
    /// Old delivered rows deleted. Zero also when pruning failed (logged as a warning).
    pub pruned: u64,
}

fn truncate(text: &str) -> String {
    text.chars().take(MAX_STORED_TEXT).collect()
}

/// Sweeps the webhook outbox.
#[derive(Clone)]
pub struct WebhookDelivery {
    outbox: Arc<dyn WebhookOutbox>,
    sender: Arc<dyn WebhookSender>,
    clock: Arc<dyn Clock>,
    generator: Arc<dyn SecretGenerator>,
}

impl WebhookDelivery {
    /// A delivery worker over `outbox`, posting through `sender`; `clock` times attempts and
    /// signatures and `generator` names attempt-log entries. Several workers may share an outbox.
    pub fn new(
        outbox: Arc<dyn WebhookOutbox>,
        sender: Arc<dyn WebhookSender>,
        clock: Arc<dyn Clock>,
        generator: Arc<dyn SecretGenerator>,
    ) -> Self {
        Self {
            outbox,
            sender,
            clock,
            generator,
        }
    }

    /// One sweep: up to [`SWEEP_BATCH`] due rows, each claimed and attempted once, starting
    /// no attempt after [`SWEEP_BUDGET_SECONDS`]; then prune and count.
    pub async fn sweep(&self) -> Result<SweepReport, RepoError> {
        let started = self.clock.now();
        let mut report = SweepReport::default();
        while report.attempted < SWEEP_BATCH && self.clock.now() - started < SWEEP_BUDGET_SECONDS {
            let Some(attempt) = self.deliver_next().await? else {
                break;
            };
            report.attempted += 1;
            match attempt {
                Attempt::Delivered => report.delivered += 1,
                Attempt::Exhausted => report.exhausted += 1,
                Attempt::Retrying | Attempt::LeaseLost => {}
            }
        }
        report.retrying = report.attempted - report.delivered - report.exhausted;
        let now = self.clock.now();
        report.pruned = self.prune().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "pruning delivered webhooks failed");
            0
        });
        report.still_due = self.outbox.count_due(now).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "counting due webhooks failed");
            0
        });
        Ok(report)
    }

    /// Claims the next due row and attempts it once. `None` when nothing is due.
    pub async fn deliver_next(&self) -> Result<Option<Attempt>, RepoError> {
        let now = self.clock.now();
        let Some(row) = self
            .outbox
            .claim_next(now, now + WEBHOOK_LEASE_SECONDS)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(match self.attempt(&row).await? {
            Some(WebhookOutcome::Delivered) => Attempt::Delivered,
            Some(WebhookOutcome::Retry { .. }) => Attempt::Retrying,
            Some(WebhookOutcome::Exhausted) => Attempt::Exhausted,
            None => Attempt::LeaseLost,
        }))
    }

    /// Deletes delivered rows older than [`RETENTION_SECONDS`], [`PRUNE_BATCH`] at a time.
    pub async fn prune(&self) -> Result<u64, RepoError> {
        self.outbox
            .prune_delivered(self.clock.now() - RETENTION_SECONDS, PRUNE_BATCH)
            .await
    }

    /// Attempts one claimed row. `None` when the lease was lost before the outcome was written.
    async fn attempt(&self, row: &ClaimedWebhook) -> Result<Option<WebhookOutcome>, RepoError> {
        let now = self.clock.now();
        let Some(target) = &row.target else {
            let owned = self
                .outbox
                .record(
                    row,
                    None,
                    WebhookOutcome::Exhausted,
                    None,
                    Some("site missing or webhook not configured".into()),
                    now,
                )
                .await?;
            return Ok(owned.then_some(WebhookOutcome::Exhausted));
        };
        let attempt = row.attempts + 1;
        let timestamp = now;
        let headers = vec![
            ("Content-Type", "application/json".to_owned()),
            (
                "X-Aegis-Signature",
                signature(&target.secret, timestamp, &row.payload),
            ),
            ("X-Aegis-Event", row.event_type.clone()),
            ("X-Aegis-Timestamp", timestamp.to_string()),
        ];
        let result = self
            .sender
            .post(&target.url, headers, row.payload.clone())
            .await;
        let now = self.clock.now();
        let (success, status, error, body) = match &result {
            Ok(r) if (200..300).contains(&r.status) => (
                true,
                Some(i32::from(r.status)),
                None,
                Some(truncate(&r.body)),
            ),
            Ok(r) => (
                false,
                Some(i32::from(r.status)),
                Some(truncate(&r.body)),
                Some(truncate(&r.body)),
            ),
            Err(e) => (false, None, Some(truncate(e)), None),
        };
        let outcome = match retry_wait(attempt) {
            _ if success => WebhookOutcome::Delivered,
            Some(wait) => WebhookOutcome::Retry { at: now + wait },
            None => WebhookOutcome::Exhausted,
        };
        let log = AttemptLog {
            id: self.generator.new_id(),
            attempt,
            response_status: status,
            response_body: body,
            success,
            at: now,
        };
        let owned = self
            .outbox
            .record(row, Some(log), outcome.clone(), status, error.clone(), now)
            .await?;
        if !owned {
            return Ok(None);
        }
        match &outcome {
            WebhookOutcome::Exhausted => tracing::error!(
                event = %row.event_id,
                site = %row.site_id,
                attempts = attempt,
                status = ?status,
                "webhook delivery gave up"
            ),
            WebhookOutcome::Retry { at } => tracing::warn!(
                event = %row.event_id,
                site = %row.site_id,
                attempt,
                status = ?status,
                retry_at = at,
                "webhook delivery failed; will retry"
            ),
            WebhookOutcome::Delivered => {}
        }
        Ok(Some(outcome))
    }
}
