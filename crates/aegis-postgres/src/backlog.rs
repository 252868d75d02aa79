//! How much work waits in the outboxes: one cheap query over the partial indexes of waiting rows,
//! for the metrics.

use aegis_domain::RepoError;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::RunQueryDsl as _;

use crate::error::map_diesel_error;
use crate::pool::PgPool;

/// What waits in one outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Messages not yet delivered, exhausted or expired (due now or later).
    pub waiting: u64,
    /// When the oldest of them was written (Unix seconds), if any waits.
    pub oldest_created_at: Option<i64>,
}

/// The email outbox's backlog and the webhook outbox's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlogs {
    /// `email_outbox` rows `queued` or `pending`.
    pub email: Backlog,
    /// `webhook_deliveries` rows `pending`.
    pub webhooks: Backlog,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    waiting: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    oldest: Option<i64>,
}

/// Both backlogs, in one round trip.
pub async fn backlogs(pool: &PgPool) -> Result<Backlogs, RepoError> {
    let mut conn = pool.get().await?;
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT 'email' AS kind, count(*) AS waiting, min(created_at) AS oldest \
             FROM email_outbox WHERE status IN ('pending', 'queued') \
         UNION ALL \
         SELECT 'webhook', count(*), min(created_at) \
             FROM webhook_deliveries WHERE status = 'pending'",
    )
    .load(&mut conn)
    .await
    .map_err(map_diesel_error)?;
    let mut backlogs = Backlogs::default();
    for row in rows {
        let backlog = Backlog {
            waiting: u64::try_from(row.waiting).unwrap_or(0),
            oldest_created_at: row.oldest,
        };
        if row.kind == "email" {
            backlogs.email = backlog;
        } else {
            backlogs.webhooks = backlog;
        }
    }
    Ok(backlogs)
}
