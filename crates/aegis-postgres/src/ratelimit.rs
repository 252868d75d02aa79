//! Rate-limit counters in PostgreSQL: one statement hits every bucket of a request.

use aegis_domain::RepoError;
use aegis_domain::ratelimit::{Count, Hit, RateCounters};
use async_trait::async_trait;
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Integer, Text};
use diesel_async::RunQueryDsl;

use crate::error::map_diesel_error;
use crate::pool::PgPool;

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    bucket: String,
    #[diesel(sql_type = Integer)]
    hits: i32,
    #[diesel(sql_type = BigInt)]
    window_start: i64,
}

/// [`RateCounters`] on a connection pool.
#[derive(Clone)]
pub struct PgRateCounters {
    pool: PgPool,
}

impl PgRateCounters {
    /// The counters over `pool`. Every instance using the same database shares them.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl RateCounters for PgRateCounters {
    async fn hit(&self, hits: Vec<Hit>, now: i64) -> Result<Vec<Count>, RepoError> {
        if hits.is_empty() {
            return Ok(Vec::new());
        }
        let buckets: Vec<String> = hits.iter().map(|h| h.bucket.clone()).collect();
        let starts: Vec<i64> = hits.iter().map(|h| h.rate.window_start(now)).collect();
        let windows: Vec<i32> = hits
            .iter()
            .map(|h| i32::try_from(h.rate.window_seconds).unwrap_or(i32::MAX))
            .collect();
        let increments: Vec<i32> = hits.iter().map(|h| h.by).collect();
        let mut conn = self.pool.get().await?;
        // A hit in a new window restarts the count; a refund never goes below zero.
        let rows: Vec<Row> = diesel::sql_query(
            "WITH t AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[], $4::int[]) \
                 AS t(b, s, w, i)) \
             INSERT INTO rate_limit_counters AS c (bucket, window_start, window_seconds, hits) \
             SELECT b, s, w, GREATEST(i, 0) FROM t \
             ON CONFLICT (bucket) DO UPDATE SET \
                 hits = CASE WHEN c.window_start = EXCLUDED.window_start \
                             THEN GREATEST(c.hits + (SELECT i FROM t WHERE t.b = EXCLUDED.bucket), 0) \
                             ELSE EXCLUDED.hits END, \
                 window_start = EXCLUDED.window_start, \
                 window_seconds = EXCLUDED.window_seconds \
             RETURNING c.bucket, c.hits, c.window_start",
        )
        .bind::<Array<Text>, _>(&buckets)
        .bind::<Array<BigInt>, _>(&starts)
        .bind::<Array<Integer>, _>(&windows)
        .bind::<Array<Integer>, _>(&increments)
        .load(&mut conn)
        .await
        .map_err(map_diesel_error)?;
        Ok(hits
            .into_iter()
            .filter_map(|h| {
                let row = rows.iter().find(|r| r.bucket == h.bucket)?;
                Some(Count {
                    bucket: h.bucket,
                    rate: h.rate,
                    hits: u32::try_from(row.hits).unwrap_or(0),
                    window_start: row.window_start,
                })
            })
            .collect())
    }

    async fn reset(&self, bucket: String) -> Result<(), RepoError> {
        let mut conn = self.pool.get().await?;
        diesel::sql_query("DELETE FROM rate_limit_counters WHERE bucket = $1")
            .bind::<Text, _>(bucket)
            .execute(&mut conn)
            .await
            .map(drop)
            .map_err(map_diesel_error)
    }

    async fn prune(&self, now: i64) -> Result<u64, RepoError> {
        let mut conn = self.pool.get().await?;
        diesel::sql_query(
            "DELETE FROM rate_limit_counters WHERE window_start + window_seconds < $1",
        )
        .bind::<BigInt, _>(now)
        .execute(&mut conn)
        .await
        .map(|n| n as u64)
        .map_err(map_diesel_error)
    }
}
