//! The webhook outbox (`webhook_deliveries`) and attempt log (`webhook_events`) on PostgreSQL.

use aegis_domain::webhook_delivery::{
    AttemptLog, ClaimedWebhook, WebhookOutbox, WebhookOutcome, WebhookTarget,
};
use aegis_domain::{RepoError, SiteId};
use async_trait::async_trait;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};
use diesel::{OptionalExtension as _, QueryableByName};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::error::map_diesel_error;
use crate::pool::PgPool;

#[derive(QueryableByName)]
struct ClaimRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    event_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    site_uuid: Uuid,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Text)]
    payload: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = BigInt)]
    next_attempt_at: i64,
    #[diesel(sql_type = Nullable<Text>)]
    webhook_url: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    webhook_secret: Option<String>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// [`WebhookOutbox`] on a connection pool.
#[derive(Clone)]
pub struct PgWebhookOutbox {
    pool: PgPool,
}

impl PgWebhookOutbox {
    /// The outbox over `pool`; several workers on the same database may share it.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl WebhookOutbox for PgWebhookOutbox {
    async fn claim_next(&self, now: i64, lease: i64) -> Result<Option<ClaimedWebhook>, RepoError> {
        let mut conn = self.pool.get().await?;
        let row: Option<ClaimRow> = diesel::sql_query(
            "UPDATE webhook_deliveries d SET next_attempt_at = $2, updated_at = $1 \
             WHERE d.event_id = ( \
                 SELECT event_id FROM webhook_deliveries \
                 WHERE status = 'pending' AND next_attempt_at <= $1 \
                 ORDER BY next_attempt_at, event_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING d.event_id, d.site_uuid, d.event_type::text AS event_type, d.payload, \
                 d.attempts, d.next_attempt_at, \
                 (SELECT s.webhook_url::text FROM sites s WHERE s.uuid = d.site_uuid) AS webhook_url, \
                 (SELECT s.webhook_secret::text FROM sites s WHERE s.uuid = d.site_uuid) AS webhook_secret",
        )
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(lease)
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(map_diesel_error)?;
        Ok(row.map(|r| {
            let target = match (r.webhook_url, r.webhook_secret) {
                (Some(url), Some(secret)) if !url.is_empty() && !secret.is_empty() => {
                    Some(WebhookTarget { url, secret })
                }
                _ => None,
            };
            ClaimedWebhook {
                event_id: r.event_id,
                site_id: SiteId::from_uuid(r.site_uuid),
                event_type: r.event_type,
                payload: r.payload,
                attempts: r.attempts,
                lease: r.next_attempt_at,
                target,
            }
        }))
    }

    async fn record(
        &self,
        row: &ClaimedWebhook,
        log: Option<AttemptLog>,
        outcome: WebhookOutcome,
        last_status: Option<i32>,
        last_error: Option<String>,
        now: i64,
    ) -> Result<bool, RepoError> {
        let mut conn = self.pool.get().await?;
        let attempted = log.is_some();
        if let Some(log) = log {
            diesel::sql_query(
                "INSERT INTO webhook_events (uuid, event_id, site_uuid, event_type, payload, \
                     response_status, response_body, success, attempt, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind::<diesel::sql_types::Uuid, _>(log.id)
            .bind::<diesel::sql_types::Uuid, _>(row.event_id)
            .bind::<diesel::sql_types::Uuid, _>(row.site_id.as_uuid())
            .bind::<Text, _>(&row.event_type)
            .bind::<Text, _>(&row.payload)
            .bind::<Nullable<Integer>, _>(log.response_status)
            .bind::<Nullable<Text>, _>(log.response_body)
            .bind::<Bool, _>(log.success)
            .bind::<Integer, _>(log.attempt)
            .bind::<BigInt, _>(log.at)
            .execute(&mut conn)
            .await
            .map_err(map_diesel_error)?;
        }
        let (status, next_attempt_at) = match outcome {
            WebhookOutcome::Delivered => ("delivered", row.lease),
            WebhookOutcome::Retry { at } => ("pending", at),
            WebhookOutcome::Exhausted => ("exhausted", row.lease),
        };
        diesel::sql_query(
            "UPDATE webhook_deliveries SET status = $3, next_attempt_at = $4, \
                 attempts = attempts + $5, last_status = $6, last_error = $7, updated_at = $8 \
             WHERE event_id = $1 AND status = 'pending' AND next_attempt_at = $2",
        )
        .bind::<diesel::sql_types::Uuid, _>(row.event_id)
        .bind::<BigInt, _>(row.lease)
        .bind::<Text, _>(status)
        .bind::<BigInt, _>(next_attempt_at)
        .bind::<Integer, _>(i32::from(attempted))
        .bind::<Nullable<Integer>, _>(last_status)
        .bind::<Nullable<Text>, _>(last_error)
        .bind::<BigInt, _>(now)
        .execute(&mut conn)
        .await
        .map(|n| n == 1)
        .map_err(map_diesel_error)
    }

    async fn prune_delivered(&self, before: i64, limit: i64) -> Result<u64, RepoError> {
        let mut conn = self.pool.get().await?;
        diesel::sql_query(
            "DELETE FROM webhook_deliveries WHERE event_id IN ( \
                 SELECT event_id FROM webhook_deliveries \
                 WHERE status = 'delivered' AND updated_at < $1 LIMIT $2)",
        )
        .bind::<BigInt, _>(before)
        .bind::<BigInt, _>(limit)
        .execute(&mut conn)
        .await
        .map(|n| n as u64)
        .map_err(map_diesel_error)
    }

    async fn count_due(&self, now: i64) -> Result<u64, RepoError> {
        let mut conn = self.pool.get().await?;
        diesel::sql_query(
            "SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1",
        )
        .bind::<BigInt, _>(now)
        .get_result::<Count>(&mut conn)
        .await
        .map(|c| u64::try_from(c.n).unwrap_or(0))
        .map_err(map_diesel_error)
    }
}
