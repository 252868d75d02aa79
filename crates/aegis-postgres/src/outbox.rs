//! The email outbox on PostgreSQL: bodies sealed at rest (see [`crate::seal`]), claims of one row
//! at a time with `FOR UPDATE SKIP LOCKED` under a lease, outcomes recorded only by the lease
//! holder, and bodies cleared on delivery, on exhaustion and when their link expires.

use aegis_domain::RepoError;
use aegis_domain::delivery::{ClaimedEmail, EmailOutbox};
use aegis_domain::mail::OutgoingEmail;
use aegis_domain::repo::QueuedEmail;
use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Integer, Nullable, Text};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::error::map_diesel_error;
use crate::pool::PgPool;
use crate::schema::email_outbox;
use crate::seal::{OpenError, SealingKeys};

/// How long a message sealed under a key this instance lacks is left for another instance.
const UNKNOWN_KEY_DEFER_SECONDS: i64 = 300;
/// Rows passed over (unknown key, damaged) within one claim before giving up for this pass.
const MAX_SKIPPED_PER_CLAIM: usize = 20;
/// Rows whose link expired, cleared per statement at most.
const EXPIRE_BATCH: i64 = 500;

/// A row waiting to be sent: `queued` (sealed), or `pending` (plaintext, written by a version
/// before sealing and not yet sealed).
const WAITING: [&str; 2] = ["queued", "pending"];

/// A row's identity and bodies: what sealing and opening need.
#[derive(QueryableByName)]
struct StoredRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    recipient: String,
    #[diesel(sql_type = Text)]
    text_body: String,
    #[diesel(sql_type = Text)]
    html_body: String,
    #[diesel(sql_type = Nullable<Binary>)]
    sealed_body: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Text>)]
    sealed_with: Option<String>,
}

#[derive(QueryableByName)]
struct ClaimRow {
    #[diesel(embed)]
    stored: StoredRow,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = BigInt)]
    next_attempt_at: i64,
    #[diesel(sql_type = Text)]
    from_name: String,
    #[diesel(sql_type = Text)]
    from_address: String,
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = Nullable<Text>)]
    mailgun_domain: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    mailgun_api_key: Option<String>,
}

/// Writes a queued message inside the caller's transaction, its bodies sealed.
pub(crate) async fn enqueue_email(
    conn: &mut AsyncPgConnection,
    keys: &SealingKeys,
    e: &QueuedEmail,
) -> Result<(), RepoError> {
    let sealed = keys
        .seal(e.id, &e.message.to, &e.message.text, &e.message.html)
        .map_err(|e| RepoError::Other(e.into()))?;
    diesel::sql_query(
        "INSERT INTO email_outbox (id, site_uuid, kind, recipient, from_name, from_address, \
             subject, text_body, html_body, sealed_body, sealed_with, link_expires_at, status, \
             attempts, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, '', '', $8, $9, $10, 'queued', 0, $11, $11, $11)",
    )
    .bind::<diesel::sql_types::Uuid, _>(e.id)
    .bind::<diesel::sql_types::Uuid, _>(e.site_id.as_uuid())
    .bind::<Text, _>(e.message.kind.as_str())
    .bind::<Text, _>(&e.message.to)
    .bind::<Text, _>(&e.from_name)
    .bind::<Text, _>(&e.from_address)
    .bind::<Text, _>(&e.message.subject)
    .bind::<Binary, _>(sealed)
    .bind::<Text, _>(keys.current_id())
    .bind::<Nullable<BigInt>, _>(e.link_expires_at)
    .bind::<BigInt, _>(e.created_at)
    .execute(conn)
    .await
    .map(drop)
    .map_err(map_diesel_error)
}

/// What [`PgEmailOutbox::seal_stored`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealReport {
    /// Plaintext bodies (left by an earlier version) now sealed.
    pub sealed: u64,
    /// Bodies sealed under the previous key, now under the current one.
    pub resealed: u64,
}

/// [`EmailOutbox`] on a connection pool.
#[derive(Clone)]
pub struct PgEmailOutbox {
    pool: PgPool,
    keys: SealingKeys,
}

impl PgEmailOutbox {
    /// The outbox over `pool`. `keys` open the bodies the [`crate::PgUnitOfWork`] sealed, so
    /// both must be built from the same secrets.
    pub fn new(pool: PgPool, keys: SealingKeys) -> Self {
        Self { pool, keys }
    }

    /// Seals the plaintext bodies of waiting messages (written before bodies were sealed), which
    /// become `queued`, and moves bodies sealed under the previous key to the current one. Run at
    /// startup, after the migrations; several instances may run it at once.
    pub async fn seal_stored(&self) -> Result<SealReport, RepoError> {
        let mut report = SealReport::default();
        let mut conn = self.pool.get().await?;
        loop {
            let keys = self.keys.clone();
            let batch = conn
                .transaction::<_, diesel::result::Error, _>(async |c| {
                    let rows: Vec<StoredRow> = diesel::sql_query(
                        "SELECT id, recipient::text AS recipient, text_body, html_body, \
                             sealed_body, sealed_with::text AS sealed_with \
                         FROM email_outbox WHERE \
                             (status = 'pending' AND sealed_body IS NULL) \
                             OR (status = 'queued' AND sealed_with = $1 AND sealed_with <> $2) \
                         LIMIT 100 FOR UPDATE SKIP LOCKED",
                    )
                    .bind::<Text, _>(keys.previous_id().unwrap_or(""))
                    .bind::<Text, _>(keys.current_id())
                    .load(c)
                    .await?;
                    let mut done = SealReport::default();
                    for row in &rows {
                        let (text, html) = match (&row.sealed_body, &row.sealed_with) {
                            (Some(body), Some(key)) => {
                                match keys.open(key, row.id, &row.recipient, body) {
                                    Ok(bodies) => bodies,
                                    Err(_) => continue,
                                }
                            }
                            _ => (row.text_body.clone(), row.html_body.clone()),
                        };
                        let Ok(sealed) = keys.seal(row.id, &row.recipient, &text, &html) else {
                            continue;
                        };
                        diesel::update(email_outbox::table.find(row.id))
                            .set((
                                email_outbox::status.eq("queued"),
                                email_outbox::sealed_body.eq(Some(sealed)),
                                email_outbox::sealed_with.eq(Some(keys.current_id())),
                                email_outbox::text_body.eq(""),
                                email_outbox::html_body.eq(""),
                            ))
                            .execute(c)
                            .await?;
                        if row.sealed_body.is_some() {
                            done.resealed += 1;
                        } else {
                            done.sealed += 1;
                        }
                    }
                    Ok((rows.len(), done))
                })
                .await
                .map_err(map_diesel_error)?;
            let (seen, done) = batch;
            report.sealed += done.sealed;
            report.resealed += done.resealed;
            if seen == 0 || done.sealed + done.resealed == 0 {
                return Ok(report);
            }
        }
    }

    /// Opens a claimed row's bodies. A row this instance cannot open is dealt with here and
    /// `None` returned: left for an instance holding its key, or exhausted when it was altered.
    async fn open(
        &self,
        conn: &mut AsyncPgConnection,
        row: &StoredRow,
        lease: i64,
        now: i64,
    ) -> Result<Option<(String, String)>, RepoError> {
        let (Some(body), Some(key)) = (&row.sealed_body, &row.sealed_with) else {
            // Written by an earlier version and not sealed yet.
            return Ok(Some((row.text_body.clone(), row.html_body.clone())));
        };
        let ours = email_outbox::table
            .find(row.id)
            .filter(email_outbox::next_attempt_at.eq(lease));
        let outcome = match self.keys.open(key, row.id, &row.recipient, body) {
            Ok(bodies) => return Ok(Some(bodies)),
            Err(OpenError::UnknownKey) => {
                tracing::warn!(
                    email = %row.id,
                    key,
                    "email sealed under a key this instance does not hold (SECRET_KEY changed \
                     without SECRET_KEY_PREVIOUS, or another instance has a newer key); left for \
                     an instance that holds it"
                );
                diesel::update(ours)
                    .set(email_outbox::next_attempt_at.eq(now + UNKNOWN_KEY_DEFER_SECONDS))
                    .execute(conn)
                    .await
            }
            Err(OpenError::Damaged) => {
                tracing::error!(
                    email = %row.id,
                    "a sealed email body failed authentication (altered in the database); not sent"
                );
                diesel::update(ours)
                    .set((
                        email_outbox::status.eq("exhausted"),
                        email_outbox::sealed_body.eq(None::<Vec<u8>>),
                        email_outbox::last_error.eq(Some("sealed body failed authentication")),
                        email_outbox::updated_at.eq(now),
                    ))
                    .execute(conn)
                    .await
            }
        };
        outcome.map(drop).map_err(map_diesel_error)?;
        Ok(None)
    }
}

#[async_trait]
impl EmailOutbox for PgEmailOutbox {
    async fn claim_next(&self, now: i64, lease: i64) -> Result<Option<ClaimedEmail>, RepoError> {
        let mut conn = self.pool.get().await?;
        for _ in 0..MAX_SKIPPED_PER_CLAIM {
            let row: Option<ClaimRow> = diesel::sql_query(
                "UPDATE email_outbox o SET next_attempt_at = $2, updated_at = $1 \
                 FROM sites s \
                 WHERE s.uuid = o.site_uuid AND o.id = ( \
                     SELECT id FROM email_outbox \
                     WHERE status IN ('queued', 'pending') AND next_attempt_at <= $1 \
                         AND (link_expires_at IS NULL OR link_expires_at >= $1) \
                     ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 RETURNING o.id, o.attempts, o.next_attempt_at, o.recipient::text AS recipient, \
                     o.from_name::text AS from_name, o.from_address::text AS from_address, \
                     o.subject, o.text_body, o.html_body, o.sealed_body, \
                     o.sealed_with::text AS sealed_with, \
                     s.mailgun_domain::text AS mailgun_domain, \
                     s.mailgun_api_key::text AS mailgun_api_key",
            )
            .bind::<BigInt, _>(now)
            .bind::<BigInt, _>(lease)
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(map_diesel_error)?;
            let Some(row) = row else {
                return Ok(None);
            };
            let opened = self
                .open(&mut conn, &row.stored, row.next_attempt_at, now)
                .await?;
            let Some((text, html)) = opened else {
                continue;
            };
            return Ok(Some(ClaimedEmail {
                id: row.stored.id,
                attempts: row.attempts,
                lease: row.next_attempt_at,
                email: OutgoingEmail {
                    from_name: row.from_name,
                    from_address: row.from_address,
                    to: row.stored.recipient,
                    subject: row.subject,
                    text,
                    html,
                    mailgun_domain: row.mailgun_domain,
                    mailgun_api_key: row.mailgun_api_key,
                },
            }));
        }
        Ok(None)
    }

    async fn mark_delivered(&self, id: Uuid, lease: i64, now: i64) -> Result<bool, RepoError> {
        let mut conn = self.pool.get().await?;
        diesel::update(
            email_outbox::table
                .find(id)
                .filter(email_outbox::status.eq_any(WAITING))
                .filter(email_outbox::next_attempt_at.eq(lease)),
        )
        .set((
            email_outbox::status.eq("delivered"),
            email_outbox::attempts.eq(email_outbox::attempts + 1),
            email_outbox::text_body.eq(""),
            email_outbox::html_body.eq(""),
            email_outbox::sealed_body.eq(None::<Vec<u8>>),
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
        let mut conn = self.pool.get().await?;
        let error: String = error.chars().take(1000).collect();
        let target = email_outbox::table
            .find(id)
            .filter(email_outbox::status.eq_any(WAITING))
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
                        email_outbox::text_body.eq(""),
                        email_outbox::html_body.eq(""),
                        email_outbox::sealed_body.eq(None::<Vec<u8>>),
                        email_outbox::updated_at.eq(now),
                    ))
                    .execute(&mut conn)
                    .await
            }
        };
        result.map(|n| n == 1).map_err(map_diesel_error)
    }

    async fn expire_links(&self, now: i64) -> Result<u64, RepoError> {
        let mut conn = self.pool.get().await?;
        // A message being sent right now (under a live lease) is left to its sender; rows held by
        // another instance's statement are skipped, not waited for.
        diesel::sql_query(
            "UPDATE email_outbox SET status = 'expired', text_body = '', html_body = '', \
                 sealed_body = NULL, last_error = 'link expired before delivery', updated_at = $1 \
             WHERE id IN (SELECT id FROM email_outbox \
                 WHERE status IN ('queued', 'pending') AND link_expires_at < $1 \
                     AND next_attempt_at <= $1 \
                 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(EXPIRE_BATCH)
        .execute(&mut conn)
        .await
        .map(|n| n as u64)
        .map_err(map_diesel_error)
    }

    async fn prune_finished(&self, before: i64, limit: i64) -> Result<u64, RepoError> {
        let mut conn = self.pool.get().await?;
        diesel::sql_query(
            "DELETE FROM email_outbox WHERE id IN (SELECT id FROM email_outbox \
             WHERE status IN ('delivered', 'exhausted', 'expired') AND updated_at < $1 LIMIT $2)",
        )
        .bind::<BigInt, _>(before)
        .bind::<BigInt, _>(limit)
        .execute(&mut conn)
        .await
        .map(|n| n as u64)
        .map_err(map_diesel_error)
    }
}
