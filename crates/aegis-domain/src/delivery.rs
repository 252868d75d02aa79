//! Durable email delivery (decision 18): the outbox is drained by workers that claim one due
//! message at a time under a short lease, hand it to the mail port, and record the outcome only
//! while they still hold the lease. A crash mid-delivery holds back only the message being sent,
//! which goes out again once its lease expires: delivery is at least once, never lost.
//!
//! A message's body carries a live link; it is cleared when the message is delivered, when its
//! attempts are exhausted, and when the link's token expires, whichever comes first.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::clock::{Clock, UnixTime};
use crate::mail::{Mailer, OutgoingEmail, redact_email};
use crate::repo::RepoError;

/// How long a claim on one message is held before another worker may take it: well beyond any
/// transport's timeout (10 s), so a live worker never loses a message it is still sending.
pub const EMAIL_LEASE_SECONDS: i64 = 60;

/// Waits after failure n (1-based) before the next attempt; after the last, the row is exhausted.
pub const RETRY_SCHEDULE: [i64; 5] = [30, 120, 600, 3_600, 21_600];

/// Total attempts before giving up.
pub const MAX_ATTEMPTS: i32 = RETRY_SCHEDULE.len() as i32 + 1;

/// The wait after failed attempt `attempt` (1-based) before the next; `None` after the last.
pub fn retry_wait(attempt: i32) -> Option<i64> {
    usize::try_from(attempt - 1)
        .ok()
        .and_then(|i| RETRY_SCHEDULE.get(i))
        .copied()
}

/// Finished rows (delivered; for email also exhausted and expired) older than this are pruned.
pub const RETENTION_SECONDS: i64 = 30 * 86_400;

/// Rows pruned per pass at most.
pub const PRUNE_BATCH: i64 = 500;

/// A claimed outbox row.
#[derive(Debug, Clone)]
pub struct ClaimedEmail {
    /// The outbox row's id, passed back to [`EmailOutbox::mark_delivered`] and
    /// [`EmailOutbox::mark_failed`] and shown in logs instead of the recipient.
    pub id: Uuid,
    /// Attempts made before this one.
    pub attempts: i32,
    /// The `next_attempt_at` this claim set: the proof of ownership when recording the outcome.
    pub lease: UnixTime,
    /// The message to hand to the [`Mailer`], exactly as it was queued.
    pub email: OutgoingEmail,
}

/// The outbox as the worker sees it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait EmailOutbox: Send + Sync {
    /// Claims the due pending message that has waited longest, moving its `next_attempt_at` to
    /// `lease`. A message whose link has expired is not claimed; messages claimed by another
    /// worker are skipped, not waited for.
    async fn claim_next(
        &self,
        now: UnixTime,
        lease: UnixTime,
    ) -> Result<Option<ClaimedEmail>, RepoError>;
    /// Marks the row delivered and clears its body, if the lease is still ours. Returns whether
    /// it was.
    async fn mark_delivered(
        &self,
        id: Uuid,
        lease: UnixTime,
        now: UnixTime,
    ) -> Result<bool, RepoError>;
    /// Records a failed attempt, if the lease is still ours: pending again at `retry_at`, or
    /// exhausted (and its body cleared) when `retry_at` is `None`.
    async fn mark_failed(
        &self,
        id: Uuid,
        lease: UnixTime,
        now: UnixTime,
        error: &str,
        retry_at: Option<UnixTime>,
    ) -> Result<bool, RepoError>;
    /// Marks pending messages whose link expired before `now` as expired and clears their
    /// bodies. Returns how many.
    async fn expire_links(&self, now: UnixTime) -> Result<u64, RepoError>;
    /// Deletes up to `limit` finished rows (delivered, exhausted, expired) last updated before
    /// `before`.
    async fn prune_finished(&self, before: UnixTime, limit: i64) -> Result<u64, RepoError>;
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The transport accepted the message and the row is marked delivered (its body cleared).
    Delivered,
    /// Failed; due again later.
    Retrying,
    /// Failed for the last time.
    Exhausted,
    /// The lease ran out before the outcome could be written (another worker has the message).
    LeaseLost,
}

/// What a pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Messages claimed and handed to the transport, whatever the outcome.
    pub attempted: u32,
    /// Attempts that ended in [`Attempt::Delivered`].
    pub delivered: u32,
    /// Attempts that failed and were scheduled again ([`Attempt::Retrying`]).
    pub retrying: u32,
    /// Attempts that failed for the last time ([`Attempt::Exhausted`]); these messages are never
    /// sent.
    pub exhausted: u32,
    /// Messages whose link expired before they could be sent.
    pub expired: u64,
}

/// Housekeeping, needed even where no mail is sent (`MAIL_TRANSPORT=none`): clears the bodies of
/// messages whose link has expired and prunes old finished rows. Returns how many expired.
pub async fn tidy(outbox: &dyn EmailOutbox, now: UnixTime) -> Result<u64, RepoError> {
    let expired = outbox.expire_links(now).await?;
    if expired > 0 {
        tracing::warn!(
            expired,
            "emails not delivered before their link expired; their bodies were cleared"
        );
    }
    outbox
        .prune_finished(now - RETENTION_SECONDS, PRUNE_BATCH)
        .await?;
    Ok(expired)
}

/// Drains the email outbox.
#[derive(Clone)]
pub struct EmailDelivery {
    outbox: Arc<dyn EmailOutbox>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
}

impl EmailDelivery {
    /// A delivery worker over `outbox`, sending through `mailer` and reading time from `clock`.
    /// Cheap to clone; several workers may share one outbox, since claims are leased.
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

    /// Claims the next due message and attempts it once. `None` when nothing is due.
    pub async fn deliver_next(&self) -> Result<Option<Attempt>, RepoError> {
        let now = self.clock.now();
        let Some(row) = self
            .outbox
            .claim_next(now, now + EMAIL_LEASE_SECONDS)
            .await?
        else {
            return Ok(None);
        };
        let result = self.mailer.send(&row.email).await;
        let now = self.clock.now();
        let error = match result {
            Ok(()) => {
                return Ok(Some(
                    if self.outbox.mark_delivered(row.id, row.lease, now).await? {
                        tracing::info!(
                            email = %row.id,
                            to = %redact_email(&row.email.to),
                            attempt = row.attempts + 1,
                            "email delivered"
                        );
                        Attempt::Delivered
                    } else {
                        Attempt::LeaseLost
                    },
                ));
            }
            Err(e) => e.to_string(),
        };
        let attempt = row.attempts + 1;
        let retry_at = retry_wait(attempt).map(|wait| now + wait);
        if !self
            .outbox
            .mark_failed(row.id, row.lease, now, &error, retry_at)
            .await?
        {
            return Ok(Some(Attempt::LeaseLost));
        }
        if retry_at.is_some() {
            tracing::warn!(
                email = %row.id,
                to = %redact_email(&row.email.to),
                attempt,
                %error,
                "email delivery failed; will retry"
            );
            Ok(Some(Attempt::Retrying))
        } else {
            tracing::error!(
                email = %row.id,
                to = %redact_email(&row.email.to),
                attempts = attempt,
                %error,
                "email delivery gave up"
            );
            Ok(Some(Attempt::Exhausted))
        }
    }

    /// See [`tidy`].
    pub async fn tidy(&self) -> Result<u64, RepoError> {
        tidy(self.outbox.as_ref(), self.clock.now()).await
    }

    /// One pass: [`Self::tidy`], then up to `max` deliveries.
    pub async fn run_once(&self, max: u32) -> Result<DeliveryReport, RepoError> {
        let mut report = DeliveryReport {
            expired: self.tidy().await?,
            ..DeliveryReport::default()
        };
        for _ in 0..max {
            let Some(attempt) = self.deliver_next().await? else {
                break;
            };
            report.attempted += 1;
            match attempt {
                Attempt::Delivered => report.delivered += 1,
                Attempt::Retrying => report.retrying += 1,
                Attempt::Exhausted => report.exhausted += 1,
                Attempt::LeaseLost => {}
            }
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
            lease: 1_060,
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

    /// One pass over an outbox whose `claim_next` yields `rows`, then nothing.
    fn run(
        mut outbox: MockEmailOutbox,
        mailer: MockMailer,
        rows: Vec<ClaimedEmail>,
    ) -> DeliveryReport {
        let rows = std::sync::Mutex::new(rows);
        outbox
            .expect_claim_next()
            .withf(|now, lease| (*now, *lease) == (1_000, 1_060))
            .returning(move |_, _| Ok(rows.lock().unwrap().pop()));
        outbox
            .expect_expire_links()
            .withf(|now| *now == 1_000)
            .returning(|_| Ok(0));
        outbox
            .expect_prune_finished()
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
            .expect_mark_delivered()
            .withf(|_, lease, _| *lease == 1_060)
            .times(2)
            .returning(|_, _, _| Ok(true));
        let mut mailer = MockMailer::new();
        mailer.expect_send().times(2).returning(|_| Ok(()));
        let report = run(outbox, mailer, vec![claimed(0), claimed(0)]);
        assert_eq!((report.attempted, report.delivered), (2, 2));
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
                .expect_mark_failed()
                .withf(move |_, _, _, error, retry| error.contains("down") && *retry == expected)
                .times(1)
                .returning(|_, _, _, _, _| Ok(true));
            let mut mailer = MockMailer::new();
            mailer
                .expect_send()
                .returning(|_| Err(MailError::Failed("provider down".into())));
            let report = run(outbox, mailer, vec![claimed(attempts)]);
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
            .expect_mark_delivered()
            .returning(|_, _, _| Ok(false));
        let mut mailer = MockMailer::new();
        mailer.expect_send().returning(|_| Ok(()));
        let report = run(outbox, mailer, vec![claimed(0)]);
        assert_eq!((report.attempted, report.delivered), (1, 0));
    }
}
