//! The connection pool.

use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::Pool;

/// A deadpool pool of async PostgreSQL connections.
pub type PgPool = Pool<AsyncPgConnection>;

/// Pool sizing and patience.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Most connections held at once.
    pub max_size: usize,
    /// How long a request waits for a connection (and for a new connection to open) before the
    /// database counts as unavailable.
    pub timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_size: 10,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Builds a pool. No connection is opened until one is needed, so this succeeds while the database
/// is down; requests then fail as unavailable until it is back.
pub fn build_pool(database_url: &str, settings: PoolSettings) -> Result<PgPool, String> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(database_url);
    Pool::builder(manager)
        .max_size(settings.max_size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(settings.timeout))
        .create_timeout(Some(settings.timeout))
        .recycle_timeout(Some(settings.timeout))
        .build()
        .map_err(|e| e.to_string())
}
