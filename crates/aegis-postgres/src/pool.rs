//! The connection pool, and the database's health as the service sees it.
//!
//! Once no new connection can be opened and the pool has none idle, [`PgPool::get`] answers
//! [`RepoError::Unavailable`] at once without touching the network (callers turn that into a 503),
//! and one background task probes the database every 100 ms, so service resumes within a fraction
//! of a second of its return. The
//! log says once that the database is unreachable, gives a counted summary at most every 10 s
//! while the outage lasts, and says once that it is back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aegis_domain::RepoError;
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use futures_util::FutureExt as _;

use crate::connect::ConnectTarget;

/// A pooled connection.
pub type PgConnection = Object<AsyncPgConnection>;

/// How long the check of an idle connection may take.
const RECYCLE_TIMEOUT: Duration = Duration::from_secs(1);
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
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_size: 10,
            timeout: Duration::from_millis(80),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// The histogram of how long [`PgPool::get`] waited for a connection, in seconds, whatever the
/// outcome (recorded through the `metrics` facade: a no-op unless the application installs a
/// recorder).
pub const WAIT_SECONDS: &str = "aegis_db_pool_wait_seconds";

/// A snapshot of the pool's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// A pool of PostgreSQL connections that knows whether the database is reachable.
#[derive(Clone)]
pub struct PgPool {
    pool: Pool<AsyncPgConnection>,
    health: Arc<Health>,
}

/// Builds a pool. No connection is opened until one is needed, so this succeeds while the database
/// is down; callers are then told it is unavailable until it is back.
pub fn build_pool(database_url: &str, settings: PoolSettings) -> Result<PgPool, String> {
    let target = ConnectTarget::parse(database_url)?;
    let mut config = ManagerConfig::default();
    let setup = target.clone();
    config.custom_setup = Box::new(move |_| {
        let target = setup.clone();
        async move { target.connect().await }.boxed()
    });
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, config);
    let pool = Pool::builder(manager)
        .max_size(settings.max_size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(settings.timeout))
        .create_timeout(Some(settings.connect_timeout))
        // The check of an idle connection (`SELECT 1`) takes a round trip; one that does not
        // answer within a second is dropped and the next tried.
        .recycle_timeout(Some(RECYCLE_TIMEOUT.min(settings.connect_timeout)))
        .build()
        .map_err(|e| e.to_string())?;
    Ok(PgPool {
        pool,
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

impl PgPool {
    /// A connection, or [`RepoError::Unavailable`] when the database cannot be reached or no
    /// connection is free within the pool's timeout.
    pub async fn get(&self) -> Result<PgConnection, RepoError> {
        // No new connection can be opened; an idle one already held (the server full, a rotated
        // password) may still serve. In a real outage those break too, and each is dropped at its
        // next check, so the pool soon holds none and this answers at once.
        if self.health.down.load(Ordering::Acquire) && self.pool.status().available == 0 {
            self.health.refused.fetch_add(1, Ordering::Relaxed);
            return Err(RepoError::Unavailable("the database is unreachable".into()));
        }
        let started = Instant::now();
        let got = self.pool.get().await;
        metrics::histogram!(WAIT_SECONDS).record(started.elapsed().as_secs_f64());
        match got {
            Ok(conn) => Ok(conn),
            Err(PoolError::Timeout(deadpool::managed::TimeoutType::Wait)) => {
                Err(self.health.saturated())
            }
            Err(e @ (PoolError::Backend(_) | PoolError::Timeout(_))) => {
                Err(Health::unreachable(&self.health, &e))
            }
            Err(e) => Err(RepoError::Other(Box::new(e))),
        }
    }

    /// How many connections the pool holds, lends and lacks right now (no I/O, no lock held for
    /// long: cheap enough for every metrics scrape).
    pub fn status(&self) -> PoolStatus {
        let status = self.pool.status();
        PoolStatus {
            max_size: status.max_size,
            size: status.size,
            in_use: status.size.saturating_sub(status.available),
            waiting: status.waiting,
        }
    }

    /// The database the pool connects to, and how (for connections of its own, such as the token
    /// cache's listener).
    pub fn connect_target(&self) -> &ConnectTarget {
        &self.health.target
    }

    /// Closes the pool: idle connections are dropped, and later calls fail.
    pub fn close(&self) {
        self.pool.close();
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
        let mut saturation = self
            .saturation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
