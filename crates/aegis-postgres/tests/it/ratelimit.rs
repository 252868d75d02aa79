use aegis_domain::ratelimit::{Hit, Rate, RateCounters as _};
use aegis_postgres::PgRateCounters;
use aegis_test_support::fresh_database;

use crate::pool;

fn hit(bucket: &str, rate: Rate, by: i32) -> Hit {
    Hit {
        bucket: bucket.into(),
        rate,
        by,
    }
}

#[tokio::test]
async fn counters_count_per_window_refund_and_share_across_pools() {
    let db = fresh_database().await;
    let (a, b) = (
        PgRateCounters::new(pool(db.url())),
        PgRateCounters::new(pool(db.url())),
    );
    let minute = Rate::per_minute(2);
    let hour = Rate::per_hour(5);
    let now = 1_800_000_010;
    let first = a
        .hit(
            vec![
                hit("acct", minute, 1),
                hit("ip", hour, 1),
                hit("fail", hour, 0),
            ],
            now,
        )
        .await
        .unwrap();
    let hits: Vec<u32> = first.iter().map(|c| c.hits).collect();
    assert_eq!(hits, [1, 1, 0]);
    // Another instance (another pool) sees the same buckets.
    let second = b
        .hit(vec![hit("acct", minute, 1), hit("ip", hour, 1)], now + 1)
        .await
        .unwrap();
    assert_eq!((second[0].hits, second[1].hits), (2, 2));
    let third = a.hit(vec![hit("acct", minute, 1)], now + 2).await.unwrap();
    assert!(third[0].exceeded());
    assert_eq!(third[0].reset_at(), 1_800_000_060);
    // A refund takes one back, never below zero.
    let refunded = a.hit(vec![hit("acct", minute, -1)], now + 3).await.unwrap();
    assert_eq!(refunded[0].hits, 2);
    let floor = a.hit(vec![hit("fresh", minute, -1)], now).await.unwrap();
    assert_eq!(floor[0].hits, 0);
    // A new window starts from one.
    let later = a
        .hit(vec![hit("acct", minute, 1), hit("ip", hour, 1)], now + 60)
        .await
        .unwrap();
    assert_eq!((later[0].hits, later[1].hits), (1, 3));
    a.reset("ip".into()).await.unwrap();
    let after_reset = a.hit(vec![hit("ip", hour, 0)], now + 61).await.unwrap();
    assert_eq!(after_reset[0].hits, 0);
    assert!(a.prune(now + 10_000).await.unwrap() >= 2);
}
