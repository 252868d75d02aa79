//! Test support for the Aegis workspace (dev only).
//!
//! [`fresh_database`] gives each test its own migrated database, cloned in a few milliseconds from a
//! template that is migrated once per test process. The databases live on one ephemeral PostgreSQL
//! server per test process, started from the machine's PostgreSQL install (see
//! `aegis_postgres::local`), or on the server named by `DATABASE_URL` when that is set.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod smtp;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use aegis_postgres::admin::{clone_database, drop_database, ensure_database, with_database};
use aegis_postgres::{LocalPostgres, LocalPostgresOptions};

struct Server {
    /// Connects to a maintenance database on the server.
    admin_url: String,
    template: String,
    /// Databases on a server we do not own are dropped after use.
    external: bool,
    _local: Option<LocalPostgres>,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static NEXT: AtomicU32 = AtomicU32::new(0);

fn server() -> &'static Server {
    let server = SERVER.get_or_init(|| {
        // Started on a plain thread: the setup blocks, and the migration harness must not run
        // inside the caller's async runtime.
        std::thread::spawn(start_server)
            .join()
            .unwrap_or_else(|_| Err("test database setup panicked".into()))
    });
    match server {
        Ok(server) => server,
        Err(e) => panic!("cannot provide a test database: {e}"),
    }
}

fn start_server() -> Result<Server, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let pid = std::process::id();
    let template = format!("aegis_template_{pid}");
    let (admin_url, external, local) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => (url, true, None),
        _ => {
            let dir = std::env::temp_dir().join(format!("aegis-test-pg-{pid}-{}", nanos()));
            let local = LocalPostgres::start(LocalPostgresOptions {
                data_dir: dir,
                persistent: false,
                durable: false,
                password: None,
            })
            .map_err(|e| e.to_string())?;
            (local.url("postgres"), false, Some(local))
        }
    };
    runtime.block_on(async {
        if external {
            drop_database(&admin_url, &template).await?;
        }
        ensure_database(&admin_url, &template).await
    })?;
    let template_url = with_database(&admin_url, &template)?;
    aegis_postgres::migrate::run_blocking(&template_url).map_err(|e| e.to_string())?;
    Ok(Server {
        admin_url,
        template,
        external,
        _local: local,
    })
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// A database for one test. On a server given by `DATABASE_URL` it is dropped when this value is;
/// on the ephemeral server everything goes when the test process ends.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    name: String,
}

impl TestDatabase {
    /// The connection URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server = server();
        if !server.external {
            return;
        }
        let (admin, name) = (server.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(drop_database(&admin, &name)).ok()
        })
        .join();
    }
}

fn next_name() -> String {
    format!(
        "aegis_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// A new database with every migration applied.
pub async fn fresh_database() -> TestDatabase {
    let server = server();
    let name = next_name();
    clone_database(&server.admin_url, &server.template, &name)
        .await
        .expect("clone the template database");
    TestDatabase {
        url: with_database(&server.admin_url, &name).expect("database URL"),
        name,
    }
}

/// A new, empty database (no migrations): for tests that build a schema themselves, such as a
/// database created by the reference service.
pub async fn empty_database() -> TestDatabase {
    let server = server();
    let name = next_name();
    ensure_database(&server.admin_url, &name)
        .await
        .expect("create an empty database");
    TestDatabase {
        url: with_database(&server.admin_url, &name).expect("database URL"),
        name,
    }
}

/// A PostgreSQL server of a test's own, for tests that stop and restart it or change its settings
/// (outages, TLS). About a second to start; gone when dropped.
pub struct DedicatedServer {
    server: LocalPostgres,
}

impl DedicatedServer {
    /// Starts a throw-away server trusting local connections.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "aegis-test-pg-own-{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst),
            nanos()
        ));
        let server = LocalPostgres::start(LocalPostgresOptions {
            data_dir: dir,
            persistent: false,
            durable: false,
            password: None,
        })
        .expect("start a dedicated PostgreSQL server");
        Self { server }
    }

    /// The URL of database `name` on this server (as the `postgres` superuser, no password).
    pub fn url(&self, name: &str) -> String {
        self.server.url(name)
    }

    /// Creates database `name` with every migration applied, and returns its URL.
    pub async fn migrated_database(&self, name: &str) -> String {
        ensure_database(&self.server.url("postgres"), name)
            .await
            .expect("create the database");
        let url = self.server.url(name);
        aegis_postgres::run_migrations(&url)
            .await
            .expect("migrate the database");
        url
    }

    /// Stops the server, keeping its data and port.
    pub fn stop(&mut self) {
        self.server.pause().expect("stop the server");
    }

    /// Starts it again after [`Self::stop`]; returns once it accepts connections.
    pub fn restart(&mut self) {
        self.server.resume().expect("restart the server");
    }

    /// Writes a file readable only by the server into its data directory.
    pub fn write_file(&self, name: &str, contents: &[u8]) {
        self.server
            .write_file(name, contents)
            .expect("write into the data directory");
    }
}

/// The schema a database gets from the reference service (ByteForge Aegis), written as that service
/// writes it: plain `CREATE` statements and no migration bookkeeping.
pub const REFERENCE_SCHEMA: &str = include_str!("../fixtures/reference_schema.sql");

/// A new database laid out by the reference service (see [`REFERENCE_SCHEMA`]) and holding no rows,
/// with no Aegis migration applied: for adoption tests.
pub async fn reference_database() -> TestDatabase {
    use diesel_async::{AsyncConnection as _, AsyncPgConnection, SimpleAsyncConnection as _};

    let db = empty_database().await;
    let mut conn = AsyncPgConnection::establish(db.url())
        .await
        .expect("connect to the new database");
    conn.batch_execute(REFERENCE_SCHEMA)
        .await
        .expect("create the reference schema");
    db
}

/// The newest queued email of `kind` to `recipient` in the database at `url`, opened with the keys
/// of `secret` (the service's `SECRET_KEY`): its subject, text body, and whether any plaintext body
/// was stored beside the sealed one (it never should be).
pub async fn sealed_email(url: &str, secret: &str, kind: &str, recipient: &str) -> SealedEmail {
    use diesel::QueryableByName;
    use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: uuid::Uuid,
        #[diesel(sql_type = diesel::sql_types::Text)]
        subject: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        plain: String,
        #[diesel(sql_type = diesel::sql_types::Binary)]
        sealed_body: Vec<u8>,
        #[diesel(sql_type = diesel::sql_types::Text)]
        sealed_with: String,
    }
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    let row: Row = diesel::sql_query(
        "SELECT id, subject, text_body || html_body AS plain, sealed_body, sealed_with \
         FROM email_outbox WHERE kind = $1 AND recipient = $2 \
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind::<diesel::sql_types::Text, _>(kind)
    .bind::<diesel::sql_types::Text, _>(recipient)
    .get_result(&mut conn)
    .await
    .unwrap_or_else(|e| panic!("no sealed {kind} email to {recipient}: {e}"));
    let (text, _) = aegis_postgres::SealingKeys::new(secret, None)
        .unwrap_or_else(|e| panic!("sealing keys: {e}"))
        .open(&row.sealed_with, row.id, recipient, &row.sealed_body)
        .unwrap_or_else(|e| panic!("the sealed body does not open: {e:?}"));
    SealedEmail {
        subject: row.subject,
        text,
        plaintext_at_rest: row.plain,
        sealed_body: row.sealed_body,
    }
}

/// A queued email as [`sealed_email`] reads it.
pub struct SealedEmail {
    /// The subject (stored in the clear).
    pub subject: String,
    /// The text body, opened.
    pub text: String,
    /// Whatever plaintext body was stored beside the sealed one: empty for a sealed row.
    pub plaintext_at_rest: String,
    /// The sealed bytes as stored.
    pub sealed_body: Vec<u8>,
}

impl SealedEmail {
    /// The token of the first link in the body (`…?token=…`).
    pub fn token(&self) -> String {
        let start = self
            .text
            .find("token=")
            .unwrap_or_else(|| panic!("no link with a token in {:?}", self.text))
            + "token=".len();
        self.text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect()
    }
}
