//! The connection pool: its bound across sub-pools, borrowing between them, and connections that
//! died while idle.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aegis_domain::RepoError;
use aegis_postgres::{PgPool, PoolSettings, build_pool};
use aegis_test_support::fresh_database;
use diesel::sql_types::{BigInt, Integer};
use diesel_async::RunQueryDsl as _;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Pid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

async fn backend_pid(pool: &PgPool) -> i32 {
    let mut conn = pool.get().await.unwrap();
    diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(&mut conn)
        .await
        .unwrap()
        .pid
}

/// Ends the server session `pid` from a connection of another pool, as an administrator or a
/// server restart would.
async fn terminate(url: &str, pid: i32) {
    let killer = build_pool(url, PoolSettings::default()).unwrap();
    let mut conn = killer.get().await.unwrap();
    diesel::sql_query(format!("SELECT pg_terminate_backend({pid})"))
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn sub_pools_together_never_hold_more_than_the_pool_size() {
    let db = fresh_database().await;
    let pool = build_pool(
        db.url(),
        PoolSettings {
            max_size: 5,
            timeout: Duration::from_secs(10),
            shards: 3,
            ..PoolSettings::default()
        },
    )
    .unwrap();
    assert_eq!(pool.status().max_size, 5);
    let most = Arc::new(AtomicUsize::new(0));
    // A connection's I/O runs on the runtime that opened it, so every runtime keeps running until
    // all callers are done.
    let done = Arc::new(tokio::sync::Barrier::new(4));
    // Four threads with a runtime each, three callers on each, every one holding its connection
    // for a while: twelve callers for five connections.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (pool, most, done) = (pool.clone(), most.clone(), done.clone());
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async {
                        let callers = (0..3).map(|_| async {
                            let mut conn = pool.get().await.unwrap();
                            most.fetch_max(pool.status().in_use, Ordering::Relaxed);
                            diesel::sql_query("SELECT pg_sleep(0.05)")
                                .execute(&mut conn)
                                .await
                                .unwrap();
                        });
                        futures_util::future::join_all(callers).await;
                        done.wait().await;
                    });
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let status = pool.status();
    assert!(status.size <= 5, "{status:?}");
    assert_eq!(status.in_use, 0);
    assert!(AtomicUsize::load(&most, Ordering::Relaxed) <= 5);
    // What the server saw: at most five sessions of this pool at once, now idle.
    let mut conn = pool.get().await.unwrap();
    let sessions = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()",
    )
    .get_result::<Count>(&mut conn)
    .await
    .unwrap()
    .n;
    assert!(sessions <= 5, "{sessions} sessions");
}

#[tokio::test]
async fn a_caller_whose_sub_pool_is_full_is_served_by_another_and_only_a_full_pool_makes_it_wait() {
    let db = fresh_database().await;
    let pool = build_pool(
        db.url(),
        PoolSettings {
            max_size: 2,
            timeout: Duration::from_millis(200),
            shards: 2,
            ..PoolSettings::default()
        },
    )
    .unwrap();
    // One sub-pool of one connection for this thread: the second connection can only come from
    // the other sub-pool, and must come at once.
    let first = pool.get().await.unwrap();
    let started = std::time::Instant::now();
    let second = pool.get().await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(200));
    assert_eq!(pool.status().in_use, 2);
    // Both held: the pool is full, and the next caller is told so after the wait.
    let refused = pool.get().await.err().unwrap();
    assert!(matches!(refused, RepoError::Unavailable(_)), "{refused:?}");
    // A caller waiting on a full pool gets the first connection to come free, whichever sub-pool
    // it belongs to (here the other one).
    let waiting = pool.get();
    let freed = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(second);
    };
    let (got, ()) = tokio::join!(waiting, freed);
    assert!(got.is_ok(), "{:?}", got.err());
    drop(first);
    assert!(pool.get().await.is_ok());
}

#[tokio::test]
async fn a_connection_the_server_ended_while_idle_is_never_handed_out() {
    let db = fresh_database().await;
    let pool = build_pool(db.url(), PoolSettings::default()).unwrap();
    let pid = backend_pid(&pool).await;
    terminate(db.url(), pid).await;
    // Once soon after (the closed socket is seen without a query) and once after the idle check
    // applies: both callers get a live connection, on a new session.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = backend_pid(&pool).await;
    assert_ne!(after, pid);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(backend_pid(&pool).await, after);
}
