//! The email outbox on PostgreSQL: claims with `FOR UPDATE SKIP LOCKED` under a lease, outcomes
//! recorded only by the lease holder.

use aegis_domain::RepoError;
use aegis_domain::delivery::{ClaimedEmail, EmailOutbox};
use aegis_domain::mail::OutgoingEmail;
use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::error::{map_diesel_error, map_pool_error};
use crate::pool::PgPool;
use crate::schema::email_outbox;

#[derive(QueryableByName)]
struct ClaimRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = BigInt)]
    next_attempt_at: i64,
    #[diesel(sql_type = Text)]
    recipient: String,
    #[diesel(sql_type = Text)]
    from_name: String,
    #[diesel(sql_type = Text)]
    from_address: String,
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = Text)]
    text_body: String,
    #[diesel(sql_type = Text)]
    html_body: String,
    #[diesel(sql_type = Nullable<Text>)]
    mailgun_domain: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    mailgun_api_key: Option<String>,
}

/// [`EmailOutbox`] on a connection pool.
#[derive(Clone)]
pub struct PgEmailOutbox {
    pool: PgPool,
}

impl PgEmailOutbox {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl EmailOutbox for PgEmailOutbox {
    async fn claim_due(
        &self,
        now: i64,
        lease: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedEmail>, RepoError> {
        let mut conn = self.pool.get().await.map_err(map_pool_error)?;
        let rows: Vec<ClaimRow> = diesel::sql_query(
            "UPDATE email_outbox o SET next_attempt_at = $2, updated_at = $1 \
             FROM sites s \
             WHERE s.uuid = o.site_uuid AND o.id IN ( \
                 SELECT id FROM email_outbox WHERE status = 'pending' AND next_attempt_at <= $1 \
                 ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING o.id, o.attempts, o.next_attempt_at, o.recipient::text AS recipient, \
                 o.from_name::text AS from_name, o.from_address::text AS from_address, o.subject, \
                 o.text_body, o.html_body, s.mailgun_domain::text AS mailgun_domain, \
                 s.mailgun_api_key::text AS mailgun_api_key",
        )
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(lease)
        .bind::<BigInt, _>(limit)
        .load(&mut conn)
        .await
        .map_err(map_diesel_error)?;
        Ok(rows
            .into_iter()
            .map(|r| ClaimedEmail {
                id: r.id,
                attempts: r.attempts,
                lease: r.next_attempt_at,
                email: OutgoingEmail {
                    from_name: r.from_name,
                    from_address: r.from_address,
                    to: r.recipient,
                    subject: r.subject,
                    text: r.text_body,
                    html: r.html_body,
                    mailgun_domain: r.mailgun_domain,
                    mailgun_api_key: r.mailgun_api_key,
                },
            })
            .collect())
    }

    async fn mark_delivered(&self, id: Uuid, lease: i64, now: i64) -> Result<bool, RepoError> {
        let mut conn = self.pool.get().await.map_err(map_pool_error)?;
        diesel::update(
            email_outbox::table
                .find(id)
                .filter(email_outbox::status.eq("pending"))
                .filter(email_outbox::next_attempt_at.eq(lease)),
        )
        .set((
            email_outbox::status.eq("delivered"),
            email_outbox::attempts.eq(email_outbox::attempts + 1),
            email_outbox::text_body.eq(""),
            email_outbox::html_body.eq(""),
            email_outbox::last_error.eq(None::<String>),
            email_outbox::updated_at.eq(now),
        ))
        .execute(&mut conn)
        .await
        .map(|n| n == 1)
        .map_err(map_diesel_error)
    }

    async fn mark_failed(
        &self,
        id: Uuid,
        lease: i64,
        now: i64,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<bool, RepoError> {
        let mut conn = self.pool.get().await.map_err(map_pool_error)?;
        let error: String = error.chars().take(1000).collect();
        let target = email_outbox::table
            .find(id)
            .filter(email_outbox::status.eq("pending"))
            .filter(email_outbox::next_attempt_at.eq(lease));
        let result = match retry_at {
            Some(at) => {
                diesel::update(target)
                    .set((
                        email_outbox::attempts.eq(email_outbox::attempts + 1),
                        email_outbox::last_error.eq(Some(error)),
                        email_outbox::next_attempt_at.eq(at),
                        email_outbox::updated_at.eq(now),
                    ))
                    .execute(&mut conn)
                    .await
            }
            None => {
                diesel::update(target)
                    .set((
                        email_outbox::status.eq("exhausted"),
                        email_outbox::attempts.eq(email_outbox::attempts + 1),
                        email_outbox::last_error.eq(Some(error)),
                        email_outbox::updated_at.eq(now),
                    ))
                    .execute(&mut conn)
                    .await
            }
        };
        result.map(|n| n == 1).map_err(map_diesel_error)
    }

    async fn prune_delivered(&self, before: i64, limit: i64) -> Result<u64, RepoError> {
        let mut conn = self.pool.get().await.map_err(map_pool_error)?;
        diesel::sql_query(
            "DELETE FROM email_outbox WHERE id IN (SELECT id FROM email_outbox \
             WHERE status = 'delivered' AND updated_at < $1 LIMIT $2)",
        )
        .bind::<BigInt, _>(before)
        .bind::<BigInt, _>(limit)
        .execute(&mut conn)
        .await
        .map(|n| n as u64)
        .map_err(map_diesel_error)
    }
}
