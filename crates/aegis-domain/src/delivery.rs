//! Durable email delivery (decision 18): the outbox is drained by a worker that claims due rows
//! under a lease, hands them to the mail port, and records the outcome only while it still holds
//! the lease. A crash mid-delivery leads to a retry after the lease, never to a loss.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::clock::{Clock, UnixTime};
use crate::mail::{Mailer, OutgoingEmail, redact_email};
use crate::repo::RepoError;

/// How long a claim is held before another worker may take the row.
pub const LEASE_SECONDS: i64 = 300;

/// Waits after failure n (1-based) before the next attempt; after the last, the row is exhausted.
pub const RETRY_SCHEDULE: [i64; 5] = [30, 120, 600, 3_600, 21_600];

/// Total attempts before giving up.
pub const MAX_ATTEMPTS: i32 = RETRY_SCHEDULE.len() as i32 + 1;

/// A claimed outbox row.
#[derive(Debug, Clone)]
pub struct ClaimedEmail {
    pub id: Uuid,
    /// Attempts made before this one.
    pub attempts: i32,
    /// The `next_attempt_at` this claim set: the proof of ownership when recording the outcome.
    pub lease: UnixTime,
    pub email: OutgoingEmail,
}

/// The outbox as the worker sees it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait EmailOutbox: Send + Sync {
    /// Claims up to `limit` due pending rows (oldest due first), moving their `next_attempt_at` to
    /// `lease`. Rows claimed by another worker are skipped, not waited for.
    async fn claim_due(
        &self,
        now: UnixTime,
        lease: UnixTime,
        limit: i64,
    ) -> Result<Vec<ClaimedEmail>, RepoError>;
    /// Marks the row delivered and clears its bodies (they carry live tokens), if the lease is
    /// still ours. Returns whether it was.
    async fn mark_delivered(
        &self,
        id: Uuid,
        lease: UnixTime,
        now: UnixTime,
    ) -> Result<bool, RepoError>;
    /// Records a failed attempt, if the lease is still ours: pending again at `retry_at`, or
    /// exhausted when `retry_at` is `None`.
    async fn mark_failed(
        &self,
        id: Uuid,
        lease: UnixTime,
        now: UnixTime,
        error: &str,
        retry_at: Option<UnixTime>,
    ) -> Result<bool, RepoError>;
    /// Deletes up to `limit` delivered rows last updated before `before`.
    async fn prune_delivered(&self, before: UnixTime, limit: i64) -> Result<u64, RepoError>;
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub attempted: u32,
    pub delivered: u32,
    pub retrying: u32,
    pub exhausted: u32,
}

/// Drains the email outbox.
#[derive(Clone)]
pub struct EmailDelivery {
    outbox: Arc<dyn EmailOutbox>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
}

impl EmailDelivery {
    pub fn new(
        outbox: Arc<dyn EmailOutbox>,
        mailer: Arc<dyn Mailer>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            outbox,
            mailer,
            clock,
        }
    }

    /// One pass: claims up to `batch` due messages and attempts each once.
    pub async fn run_once(&self, batch: i64) -> Result<DeliveryReport, RepoError> {
        let now = self.clock.now();
        let claimed = self
            .outbox
            .claim_due(now, now + LEASE_SECONDS, batch)
            .await?;
        let mut report = DeliveryReport::default();
        for row in claimed {
            report.attempted += 1;
            let result = self.mailer.send(&row.email).await;
            let now = self.clock.now();
            match result {
                Ok(()) => {
                    if self.outbox.mark_delivered(row.id, row.lease, now).await? {
                        report.delivered += 1;
                    }
                }
                Err(e) => {
                    let attempt = row.attempts + 1;
                    let retry_at = usize::try_from(attempt - 1)
                        .ok()
                        .and_then(|i| RETRY_SCHEDULE.get(i))
                        .map(|wait| now + wait);
                    let message = e.to_string();
                    if !self
                        .outbox
                        .mark_failed(row.id, row.lease, now, &message, retry_at)
                        .await?
                    {
                        continue;
                    }
                    if retry_at.is_some() {
                        report.retrying += 1;
                        tracing::warn!(
                            email = %row.id,
                            to = %redact_email(&row.email.to),
                            attempt,
                            error = %message,
                            "email delivery failed; will retry"
                        );
                    } else {
                        report.exhausted += 1;
                        tracing::error!(
                            email = %row.id,
                            to = %redact_email(&row.email.to),
                            attempts = attempt,
                            error = %message,
                            "email delivery gave up"
                        );
                    }
                }
            }
        }
        if let Err(e) = self
            .outbox
            .prune_delivered(now - crate::webhook_delivery::RETENTION_SECONDS, 500)
            .await
        {
            tracing::warn!(error = %e, "pruning delivered email failed");
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;

    use super::*;
    use crate::clock::ManualClock;
    use crate::mail::{MailError, MockMailer};

    fn claimed(attempts: i32) -> ClaimedEmail {
        ClaimedEmail {
            id: Uuid::from_u128(1),
            attempts,
            lease: 1_300,
            email: OutgoingEmail {
                from_name: "S".into(),
                from_address: "s@example.com".into(),
                to: "u@example.com".into(),
                subject: "x".into(),
                text: "t".into(),
                html: "h".into(),
                mailgun_domain: None,
                mailgun_api_key: None,
            },
        }
    }

    fn run(mut outbox: MockEmailOutbox, mailer: MockMailer) -> DeliveryReport {
        outbox
            .expect_prune_delivered()
            .withf(|before, _| *before == 1_000 - 30 * 86_400)
            .returning(|_, _| Ok(0));
        EmailDelivery::new(
            Arc::new(outbox),
            Arc::new(mailer),
            Arc::new(ManualClock::new(1_000)),
        )
        .run_once(10)
        .now_or_never()
        .unwrap()
        .unwrap()
    }

    #[test]
    fn a_sent_message_is_marked_delivered_under_its_lease() {
        let mut outbox = MockEmailOutbox::new();
        outbox
            .expect_claim_due()
            .withf(|now, lease, limit| (*now, *lease, *limit) == (1_000, 1_300, 10))
            .returning(|_, _, _| Ok(vec![claimed(0)]));
        outbox
            .expect_mark_delivered()
            .withf(|_, lease, _| *lease == 1_300)
            .times(1)
            .returning(|_, _, _| Ok(true));
        let mut mailer = MockMailer::new();
        mailer.expect_send().times(1).returning(|_| Ok(()));
        let report = run(outbox, mailer);
        assert_eq!((report.attempted, report.delivered), (1, 1));
    }

    #[test]
    fn failures_follow_the_schedule_then_give_up() {
        for (attempts, expected) in [
            (0, Some(1_030)),
            (1, Some(1_120)),
            (4, Some(4_600 + 18_000)),
            (5, None),
        ] {
            let mut outbox = MockEmailOutbox::new();
            outbox
                .expect_claim_due()
                .returning(move |_, _, _| Ok(vec![claimed(attempts)]));
            outbox
                .expect_mark_failed()
                .withf(move |_, _, _, error, retry| error.contains("down") && *retry == expected)
                .times(1)
                .returning(|_, _, _, _, _| Ok(true));
            let mut mailer = MockMailer::new();
            mailer
                .expect_send()
                .returning(|_| Err(MailError::Failed("provider down".into())));
            let report = run(outbox, mailer);
            assert_eq!(
                report.exhausted,
                u32::from(expected.is_none()),
                "{attempts}"
            );
            assert_eq!(report.retrying, u32::from(expected.is_some()), "{attempts}");
        }
    }

    #[test]
    fn a_lost_lease_records_nothing() {
        let mut outbox = MockEmailOutbox::new();
        outbox
            .expect_claim_due()
            .returning(|_, _, _| Ok(vec![claimed(0)]));
        outbox
            .expect_mark_delivered()
            .returning(|_, _, _| Ok(false));
        let mut mailer = MockMailer::new();
        mailer.expect_send().returning(|_| Ok(()));
        assert_eq!(run(outbox, mailer).delivered, 0);
    }
}
