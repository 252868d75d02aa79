//! The PostgreSQL adapters against a real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bearer;
mod email_step;
mod migrations;
mod notifications;
mod outbox;
mod pool;
mod ratelimit;
mod session;
mod sites;
mod tls;

use aegis_postgres::{PgPool, PoolSettings, build_pool};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{FileBasedMigrations, MigrationHarness as _};

/// Sealing keys for tests.
pub fn keys() -> aegis_postgres::SealingKeys {
    aegis_postgres::SealingKeys::new("test-secret-key-0123456789abcdef0123456789", None).unwrap()
}

/// The column `row` (text) of every row `sql` returns, in its order.
pub async fn rows(conn: &mut AsyncPgConnection, sql: &str) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        row: String,
    }
    diesel_async::RunQueryDsl::load::<Row>(diesel::sql_query(sql), conn)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.row)
        .collect()
}

pub fn pool(url: &str) -> PgPool {
    build_pool(url, PoolSettings::default()).unwrap()
}

/// Reverts migrations newest first, up to and including `version`: the database as a version
/// from before that migration left it.
pub async fn revert_through(url: &str, version: &'static str) {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        let mut conn: AsyncConnectionWrapper<AsyncPgConnection> =
            diesel::Connection::establish(&url).unwrap();
        loop {
            let reverted = conn
                .revert_last_migration(FileBasedMigrations::from_path(&dir).unwrap())
                .unwrap();
            if reverted.to_string() == version {
                break;
            }
        }
    })
    .await
    .unwrap();
}
