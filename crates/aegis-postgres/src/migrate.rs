//! Embedded migrations, run under a PostgreSQL advisory lock so that several instances starting at
//! once migrate one after another and all come up. The data steps that need Rust (see
//! [`crate::email_step`]) run right after them, under the same lock.

use diesel::RunQueryDsl as _;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness as _, embed_migrations};

use crate::connect::ConnectTarget;
use crate::email_step::{EmailNormalFormReport, normalize_stored_emails};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Arbitrary but fixed: the advisory lock key every Aegis instance takes while migrating.
const MIGRATION_LOCK_KEY: i64 = 0x0AE6_1500_0000_0001;

/// Migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The database URL is invalid, or the database could not be reached.
    #[error("could not connect to the database: {0}")]
    Connect(String),
    /// Taking the advisory lock or applying a migration failed. Each migration runs in its own
    /// transaction, so the ones applied before it stay applied and a rerun continues from there.
    #[error("migration failed: {0}")]
    Migrate(String),
    /// The migration thread or its runtime could not be started, or went away before answering.
    #[error("migration task failed: {0}")]
    Task(String),
    /// The SQL migrations were applied, but bringing stored email addresses to their normal form
    /// failed; it is tried again on the next run.
    #[error("normalising stored email addresses failed: {0}")]
    DataStep(String),
}

/// What migrating did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migrated {
    /// The migrations applied this time, by version.
    pub applied: Vec<String>,
    /// The email normal-form step, when it ran this time (once per database).
    pub email_normal_form: Option<EmailNormalFormReport>,
}

/// How many migrations the binary carries.
pub fn known_migrations() -> usize {
    <EmbeddedMigrations as diesel::migration::MigrationSource<diesel::pg::Pg>>::migrations(
        &MIGRATIONS,
    )
    .map_or(0, |m| m.len())
}

/// The versions of the embedded migrations, read once.
fn known_versions() -> &'static [String] {
    static VERSIONS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    VERSIONS.get_or_init(|| {
        <EmbeddedMigrations as diesel::migration::MigrationSource<diesel::pg::Pg>>::migrations(
            &MIGRATIONS,
        )
        .map(|migrations| {
            migrations
                .iter()
                .map(|m| m.name().version().to_string())
                .collect()
        })
        .unwrap_or_default()
    })
}

#[derive(diesel::QueryableByName)]
struct AppliedVersion {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// How many of the migrations this binary carries the database lacks (`0`: up to date), read from
/// `__diesel_schema_migrations` on a pooled connection. [`RepoError::Unavailable`] when the
/// database cannot be reached; a database never migrated lacks them all.
pub async fn pending_migrations(pool: &crate::PgPool) -> Result<usize, aegis_domain::RepoError> {
    let mut conn = pool.get().await?;
    let query =
        diesel::sql_query("SELECT version::text AS version FROM __diesel_schema_migrations");
    let applied: Vec<AppliedVersion> = match diesel_async::RunQueryDsl::load(query, &mut conn).await
    {
        Ok(applied) => applied,
        // No such table: nothing was ever applied.
        Err(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("__diesel_schema_migrations") =>
        {
            Vec::new()
        }
        Err(e) => return Err(crate::error::map_diesel_error(e)),
    };
    Ok(known_versions()
        .iter()
        .filter(|known| !applied.iter().any(|a| &a.version == *known))
        .count())
}

#[derive(diesel::QueryableByName)]
struct DatabaseNow {
    #[diesel(sql_type = diesel::sql_types::Double)]
    now: f64,
}

/// The database server's clock (`clock_timestamp()`), in Unix seconds with fractions, read on a
/// pooled connection: for comparing with this machine's clock.
pub async fn database_clock(pool: &crate::PgPool) -> Result<f64, aegis_domain::RepoError> {
    let mut conn = pool.get().await?;
    let query = diesel::sql_query("SELECT extract(epoch FROM clock_timestamp())::float8 AS now");
    let row: DatabaseNow = diesel_async::RunQueryDsl::get_result(query, &mut conn)
        .await
        .map_err(crate::error::map_diesel_error)?;
    Ok(row.now)
}

/// Applies every pending migration, then the data steps not yet done, and says what it did.
///
/// Runs on a thread of its own, outside any async runtime (the migration harness is synchronous and
/// brings its own), and holds a session-level advisory lock for the duration.
pub async fn run_migrations(database_url: &str) -> Result<Migrated, MigrationError> {
    let url = database_url.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("aegis-migrate".into())
        .spawn(move || {
            let _ = tx.send(run_blocking(&url));
        })
        .map_err(|e| MigrationError::Task(e.to_string()))?;
    rx.await.map_err(|e| MigrationError::Task(e.to_string()))?
}

/// The synchronous core of [`run_migrations`], for callers outside any async runtime. Connects as
/// the pool does (TLS included).
pub fn run_blocking(database_url: &str) -> Result<Migrated, MigrationError> {
    let target = ConnectTarget::parse(database_url).map_err(MigrationError::Connect)?;
    // The connection's I/O task runs on this runtime's worker, and the synchronous harness blocks
    // on it through the handle entered here.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| MigrationError::Task(e.to_string()))?;
    let _entered = runtime.enter();
    let conn = runtime
        .block_on(target.connect())
        .map_err(|e| MigrationError::Connect(e.to_string()))?;
    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)
        .map_err(|e| MigrationError::Migrate(e.to_string()))?;
    let migrated = migrate_locked(&mut conn);
    // Closing the connection would release the lock as well; unlock explicitly all the same.
    let _ = diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn);
    migrated
}

fn migrate_locked(
    conn: &mut AsyncConnectionWrapper<AsyncPgConnection>,
) -> Result<Migrated, MigrationError> {
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| MigrationError::Migrate(e.to_string()))?;
    let email_normal_form =
        normalize_stored_emails(conn).map_err(|e| MigrationError::DataStep(e.to_string()))?;
    Ok(Migrated {
        applied,
        email_normal_form,
    })
}
