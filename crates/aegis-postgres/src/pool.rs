//! The connection pool, and the database's health as the service sees it.
//!
//! Once no new connection can be opened and the pool has none idle, [`PgPool::get`] answers
//! [`RepoError::Unavailable`] at once without touching the network (callers turn that into a 503),
//! and one background task probes the database every 100 ms, so service resumes within a fraction
//! of a second of its return. The
//! log says once that the database is unreachable, gives a counted summary at most every 10 s
//! while the outage lasts, and says once that it is back.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aegis_domain::RepoError;
use deadpool::managed::{TimeoutType, Timeouts};
use diesel::IntoSql as _;
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::deadpool::{Hook, HookError, Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use futures_util::FutureExt as _;

use crate::connect::ConnectTarget;

/// A pooled connection.
pub type PgConnection = Object<AsyncPgConnection>;

/// How long the check of an idle connection may take.
const RECYCLE_TIMEOUT: Duration = Duration::from_secs(1);
/// A connection lent again within this long of its last loan is handed out without a test query;
/// one idle for longer is checked with `SELECT 1` first.
const VERIFY_AFTER_IDLE: Duration = Duration::from_secs(1);
/// How often an unreachable database is probed.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// How often an ongoing outage or saturation is summarised in the log, at most.
const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Pool sizing and patience.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Most connections held at once.
    pub max_size: usize,
    /// How long a caller waits for a free connection before it is told the database is
    /// unavailable.
    pub timeout: Duration,
    /// How long opening a new connection may take.
    pub connect_timeout: Duration,
    /// How many sub-pools `max_size` is split into, one per thread that asks (see [`PgPool`]): 1
    /// for one shared pool, or the number of threads that run requests (with one for the
    /// background tasks), so that each thread mostly uses connections whose I/O it drives itself.
    pub shards: usize,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_size: 10,
            timeout: Duration::from_millis(80),
            connect_timeout: Duration::from_secs(5),
            shards: 1,
        }
    }
}

/// The histogram of how long [`PgPool::get`] waited for a connection, in seconds, whatever the
/// outcome (recorded through the `metrics` facade: a no-op unless the application installs a
/// recorder).
pub const WAIT_SECONDS: &str = "aegis_db_pool_wait_seconds";

/// A snapshot of the pool's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStatus {
    /// Most connections the pool may hold (`DB_POOL_SIZE`).
    pub max_size: usize,
    /// Connections open now, idle or lent.
    pub size: usize,
    /// Connections lent to callers now.
    pub in_use: usize,
    /// Callers waiting for a connection now.
    pub waiting: usize,
}

impl PoolStatus {
    /// Connections open and not lent.
    pub fn idle(&self) -> usize {
        self.size.saturating_sub(self.in_use)
    }
}

/// A pool of PostgreSQL connections that knows whether the database is reachable.
///
/// A connection's I/O is driven by a task on the thread that opened it. On a server with one
/// single-threaded runtime per worker (actix-web), a connection opened by one worker and used by
/// another costs two wake-ups of another thread per query, which on a small machine is most of a
/// one-query request's cost. So the pool is split into [`PoolSettings::shards`] sub-pools, and
/// each thread takes its connections from its own (threads are dealt to sub-pools in the order
/// they first ask), and from another only when its own has none free and cannot open one.
#[derive(Clone)]
pub struct PgPool {
    shards: Arc<[Pool<AsyncPgConnection>]>,
    health: Arc<Health>,
}

/// The order in which threads first asked any pool for a connection.
static THREADS_SEEN: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's place in [`THREADS_SEEN`].
    static THREAD_ORDINAL: usize = THREADS_SEEN.fetch_add(1, Ordering::Relaxed);
}

/// This thread's place in the order in which threads first asked for a connection.
pub(crate) fn thread_ordinal() -> usize {
    THREAD_ORDINAL.with(|n| *n)
}

/// Builds a pool. No connection is opened until one is needed, so this succeeds while the database
/// is down; callers are then told it is unavailable until it is back.
pub fn build_pool(database_url: &str, settings: PoolSettings) -> Result<PgPool, String> {
    let target = ConnectTarget::parse(database_url)?;
    // Every sub-pool gets at least one connection, and together they hold `max_size`.
    let shards = settings.shards.clamp(1, settings.max_size.max(1));
    let shards = (0..shards)
        .map(|i| {
            let size = settings.max_size / shards + usize::from(i < settings.max_size % shards);
            build_shard(database_url, &target, size, settings)
        })
        .collect::<Result<Arc<[_]>, _>>()?;
    Ok(PgPool {
        shards,
        health: Arc::new(Health {
            target,
            connect_timeout: settings.connect_timeout,
            wait: settings.timeout,
            down: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            saturation: Mutex::new(None),
        }),
    })
}

fn build_shard(
    database_url: &str,
    target: &ConnectTarget,
    max_size: usize,
    settings: PoolSettings,
) -> Result<Pool<AsyncPgConnection>, String> {
    let mut config = ManagerConfig::default();
    // A connection whose server or socket closed is known to be broken without a round trip
    // (`Fast` checks that, and for an open transaction). A test query on every loan would double
    // the round trips of a one-query request, so only a connection idle for a while gets one
    // (`verify_if_idle`), which also catches a peer that vanished without closing the socket.
    config.recycling_method = RecyclingMethod::Fast;
    let setup = target.clone();
    config.custom_setup = Box::new(move |_| {
        let target = setup.clone();
        async move { target.connect().await }.boxed()
    });
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, config);
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(settings.timeout))
        .create_timeout(Some(settings.connect_timeout))
        .post_recycle(Hook::async_fn(|conn, metrics| {
            verify_if_idle(conn, metrics.last_used()).boxed()
        }))
        .build()
        .map_err(|e| e.to_string())
}

impl PgPool {
    /// A connection, or [`RepoError::Unavailable`] when the database cannot be reached or no
    /// connection is free within the pool's timeout.
    pub async fn get(&self) -> Result<PgConnection, RepoError> {
        // No new connection can be opened; an idle one already held (the server full, a rotated
        // password) may still serve. In a real outage those break too, and each is dropped at its
        // next check, so the pool soon holds none and this answers at once.
        if self.health.down.load(Ordering::Acquire) && self.status().idle() == 0 {
            self.health.refused.fetch_add(1, Ordering::Relaxed);
            return Err(RepoError::Unavailable("the database is unreachable".into()));
        }
        let started = Instant::now();
        let got = self.checkout().await;
        metrics::histogram!(WAIT_SECONDS).record(started.elapsed().as_secs_f64());
        match got {
            Ok(conn) => Ok(conn),
            Err(PoolError::Timeout(TimeoutType::Wait)) => Err(self.health.saturated()),
            Err(e @ (PoolError::Backend(_) | PoolError::Timeout(_))) => {
                Err(Health::unreachable(&self.health, &e))
            }
            Err(e) => Err(RepoError::Other(Box::new(e))),
        }
    }

    /// A connection from this thread's sub-pool if one is idle or can be opened at once; else one
    /// from another sub-pool on the same terms; `None` when all are in use.
    async fn checkout_at_once(&self) -> Result<Option<PgConnection>, PoolError> {
        let own = thread_ordinal() % self.shards.len();
        for i in 0..self.shards.len() {
            let shard = &self.shards[(own + i) % self.shards.len()];
            let at_once = Timeouts {
                wait: Some(Duration::ZERO),
                ..shard.timeouts()
            };
            match shard.timeout_get(&at_once).await {
                Err(PoolError::Timeout(TimeoutType::Wait)) => {}
                got => return got.map(Some),
            }
        }
        Ok(None)
    }

    /// A connection from this thread's sub-pool if one is idle or can be opened at once; else one
    /// from another sub-pool on the same terms; else the first to come free in any.
    async fn checkout(&self) -> Result<PgConnection, PoolError> {
        if self.shards.len() == 1 {
            return self.shards[0].get().await;
        }
        // Another sub-pool lends an idle connection or opens one: the pool as a whole never makes
        // a caller wait while it has room.
        if let Some(conn) = self.checkout_at_once().await? {
            return Ok(conn);
        }
        // All in use: the first connection to come free in any sub-pool (a waiter that loses the
        // race leaves its queue when dropped).
        let waits = self.shards.iter().map(|shard| shard.get().boxed());
        futures_util::future::select_ok(waits)
            .await
            .map(|(conn, _)| conn)
    }

    /// How many sub-pools the pool is split into.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The longest a caller waits for a connection.
    pub(crate) fn wait_timeout(&self) -> Duration {
        self.health.wait
    }

    /// How many connections the pool holds, lends and lacks right now (no I/O, no lock held for
    /// long: cheap enough for every metrics scrape).
    pub fn status(&self) -> PoolStatus {
        self.shards
            .iter()
            .map(|shard| {
                let status = shard.status();
                PoolStatus {
                    max_size: status.max_size,
                    size: status.size,
                    in_use: status.size.saturating_sub(status.available),
                    waiting: status.waiting,
                }
            })
            .fold(PoolStatus::default(), |sum, shard| PoolStatus {
                max_size: sum.max_size + shard.max_size,
                size: sum.size + shard.size,
                in_use: sum.in_use + shard.in_use,
                waiting: sum.waiting + shard.waiting,
            })
    }

    /// The database the pool connects to, and how (for connections of its own, such as the token
    /// cache's listener).
    pub fn connect_target(&self) -> &ConnectTarget {
        &self.health.target
    }

    /// Closes the pool: idle connections are dropped, and later calls fail.
    pub fn close(&self) {
        for shard in self.shards.iter() {
            shard.close();
        }
    }
}

/// The mutex's value, also after a thread panicked holding it (every value kept behind these
/// locks stays valid between statements).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Checks a connection idle for longer than [`VERIFY_AFTER_IDLE`] with `SELECT 1`; one that does
/// not answer within [`RECYCLE_TIMEOUT`] is dropped and the next tried.
async fn verify_if_idle(conn: &mut AsyncPgConnection, idle: Duration) -> Result<(), HookError> {
    if idle < VERIFY_AFTER_IDLE {
        return Ok(());
    }
    let ping = diesel_async::RunQueryDsl::execute(
        diesel::select(1_i32.into_sql::<diesel::sql_types::Integer>()),
        conn,
    );
    match tokio::time::timeout(RECYCLE_TIMEOUT, ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(HookError::Backend(
            diesel_async::pooled_connection::PoolError::QueryError(e),
        )),
        Err(_) => Err(HookError::message("no answer to the idle connection check")),
    }
}

struct Health {
    target: ConnectTarget,
    connect_timeout: Duration,
    wait: Duration,
    down: AtomicBool,
    /// Calls refused since the outage was last reported.
    refused: AtomicU64,
    /// Since when the pool has been saturated, and how many calls it refused meanwhile.
    saturation: Mutex<Option<(Instant, u64)>>,
}

impl Health {
    /// The first caller to see the database unreachable reports it and starts the probe.
    fn unreachable(health: &Arc<Self>, cause: &PoolError) -> RepoError {
        if !health.down.swap(true, Ordering::AcqRel) {
            tracing::error!(
                error = %cause,
                "database unreachable: answering 503 until it is back"
            );
            health.refused.store(1, Ordering::Relaxed);
            tokio::spawn(Self::probe(health.clone()));
        } else {
            health.refused.fetch_add(1, Ordering::Relaxed);
        }
        RepoError::Unavailable(cause.to_string().into())
    }

    /// Probes until the database answers, summarising the outage every [`REPORT_INTERVAL`].
    async fn probe(self: Arc<Self>) {
        let started = Instant::now();
        let mut reported = started;
        let mut total = 0;
        loop {
            tokio::time::sleep(PROBE_INTERVAL).await;
            let connected = tokio::time::timeout(self.connect_timeout, self.target.connect()).await;
            if let Ok(Ok(_connection)) = connected {
                total += self.refused.swap(0, Ordering::Relaxed);
                self.down.store(false, Ordering::Release);
                tracing::info!(
                    outage_seconds = started.elapsed().as_secs_f64(),
                    refused = total,
                    "database reachable again"
                );
                return;
            }
            if reported.elapsed() >= REPORT_INTERVAL {
                let refused = self.refused.swap(0, Ordering::Relaxed);
                total += refused;
                reported = Instant::now();
                let error = match connected {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {:?}", self.connect_timeout),
                };
                tracing::warn!(
                    outage_seconds = started.elapsed().as_secs(),
                    refused_since_last_report = refused,
                    %error,
                    "database still unreachable"
                );
            }
        }
    }

    /// No connection came free in time. Reported once, then at most every [`REPORT_INTERVAL`].
    fn saturated(&self) -> RepoError {
        let mut saturation = lock(&self.saturation);
        match saturation.as_mut() {
            Some((since, count)) if since.elapsed() < REPORT_INTERVAL => *count += 1,
            _ => {
                let refused = saturation.map_or(1, |(_, count)| count + 1);
                tracing::warn!(
                    wait_ms = self.wait.as_millis() as u64,
                    refused,
                    "database pool saturated: no connection came free in time, answering 503"
                );
                *saturation = Some((Instant::now(), 0));
            }
        }
        RepoError::Unavailable(format!("no database connection free within {:?}", self.wait).into())
    }
}
