//! TLS to PostgreSQL (decision 32) against a real server with `ssl=on` and certificates from a CA
//! made in the test: a good certificate, a wrong host name, an unknown CA; for single connections,
//! the pool and the migrations.

use aegis_postgres::{ConnectTarget, PoolSettings, build_pool, run_migrations};
use aegis_test_support::DedicatedServer;
use diesel::QueryableByName;
use diesel::sql_types::Bool;
use diesel_async::{AsyncPgConnection, RunQueryDsl as _, SimpleAsyncConnection as _};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A server certificate for `names` and its key, as PEM.
    fn server(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "postgres");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A dedicated server with TLS on, presenting a certificate for `names` signed by `ca`.
async fn tls_server(ca: &Ca, names: &[&str]) -> DedicatedServer {
    let server = DedicatedServer::start();
    install_certificate(&server, ca, names).await;
    server
}

async fn install_certificate(server: &DedicatedServer, ca: &Ca, names: &[&str]) {
    let (cert, key) = ca.server(names);
    server.write_file("server.crt", cert.as_bytes());
    server.write_file("server.key", key.as_bytes());
    let mut conn = plain(&server.url("postgres")).await;
    // One statement at a time: ALTER SYSTEM refuses to run in the implicit transaction of a batch.
    for statement in [
        "ALTER SYSTEM SET ssl = on",
        "ALTER SYSTEM SET ssl_cert_file = 'server.crt'",
        "ALTER SYSTEM SET ssl_key_file = 'server.key'",
        "SELECT pg_reload_conf()",
    ] {
        conn.batch_execute(statement).await.unwrap();
    }
    // The reload is asynchronous: wait until new sessions are offered TLS.
    for _ in 0..100 {
        if let Ok(mut c) = connect(&server.url("postgres"), "require", None).await
            && encrypted(&mut c).await
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the server did not turn TLS on");
}

async fn plain(url: &str) -> AsyncPgConnection {
    connect(url, "disable", None).await.unwrap()
}

fn ca_file(ca: &Ca) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "aegis-test-ca-{}-{}.pem",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::write(&path, &ca.pem).unwrap();
    path
}

fn with_tls(url: &str, mode: &str, root: Option<&std::path::Path>) -> String {
    let mut url = format!("{url}?sslmode={mode}");
    if let Some(root) = root {
        url.push_str(&format!("&sslrootcert={}", root.display()));
    }
    url
}

async fn connect(
    url: &str,
    mode: &str,
    root: Option<&std::path::Path>,
) -> Result<AsyncPgConnection, String> {
    ConnectTarget::parse(&with_tls(url, mode, root))?
        .connect()
        .await
        .map_err(|e| e.to_string())
}

#[derive(QueryableByName)]
struct Ssl {
    #[diesel(sql_type = Bool)]
    ssl: bool,
}

/// Whether the server sees this session as encrypted.
async fn encrypted(conn: &mut AsyncPgConnection) -> bool {
    diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result::<Ssl>(conn)
        .await
        .unwrap()
        .ssl
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sslmode_against_a_good_certificate() {
    let ca = Ca::new("Aegis test CA");
    let server = tls_server(&ca, &["localhost", "127.0.0.1"]).await;
    let root = ca_file(&ca);
    let url = server.url("postgres");
    for (mode, root, tls) in [
        ("disable", None, false),
        ("prefer", None, true),
        ("require", None, true),
        ("require", Some(root.as_path()), true),
        ("verify-ca", Some(root.as_path()), true),
        ("verify-full", Some(root.as_path()), true),
    ] {
        let mut conn = connect(&url, mode, root)
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(encrypted(&mut conn).await, tls, "{mode}");
    }
    // verify-* without sslrootcert trust only the public (Mozilla) roots, not this CA.
    let err = connect(&url, "verify-full", None).await.err().unwrap();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_host_name_fails_verify_full_only() {
    let ca = Ca::new("Aegis test CA");
    let server = tls_server(&ca, &["db.example.test"]).await;
    let root = ca_file(&ca);
    let url = server.url("postgres");
    let err = connect(&url, "verify-full", Some(&root))
        .await
        .err()
        .unwrap();
    assert!(
        err.contains("NotValidForName") || err.contains("not valid for"),
        "{err}"
    );
    let mut conn = connect(&url, "verify-ca", Some(&root)).await.unwrap();
    assert!(encrypted(&mut conn).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_ca_fails_every_verified_mode() {
    let ca = Ca::new("Aegis test CA");
    let stranger = Ca::new("Someone else's CA");
    let server = tls_server(&ca, &["localhost", "127.0.0.1"]).await;
    let wrong_root = ca_file(&stranger);
    let url = server.url("postgres");
    // With a root certificate given, libpq checks the chain in require mode too.
    for mode in ["require", "verify-ca", "verify-full"] {
        let err = connect(&url, mode, Some(&wrong_root)).await.err().unwrap();
        assert!(
            err.contains("UnknownIssuer") || err.contains("unknown issuer"),
            "{mode}: {err}"
        );
    }
    // Without one, require encrypts without checking (libpq's meaning).
    let mut conn = connect(&url, "require", None).await.unwrap();
    assert!(encrypted(&mut conn).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_and_the_migrations_honour_sslmode() {
    let ca = Ca::new("Aegis test CA");
    let server = tls_server(&ca, &["localhost", "127.0.0.1"]).await;
    let root = ca_file(&ca);
    let mut admin = plain(&server.url("postgres")).await;
    admin.batch_execute("CREATE DATABASE aegis").await.unwrap();
    let url = server.url("aegis");

    let verified = with_tls(&url, "verify-full", Some(&root));
    let migrated = run_migrations(&verified).await.unwrap();
    assert!(!migrated.applied.is_empty());
    let pool = build_pool(&verified, PoolSettings::default()).unwrap();
    let mut conn = pool.get().await.unwrap();
    assert!(encrypted(&mut conn).await);

    let stranger = ca_file(&Ca::new("Someone else's CA"));
    let refused = with_tls(&url, "verify-full", Some(&stranger));
    let err = run_migrations(&refused).await.unwrap_err().to_string();
    assert!(err.contains("could not connect"), "{err}");
    let pool = build_pool(&refused, PoolSettings::default()).unwrap();
    assert!(matches!(
        pool.get().await,
        Err(aegis_domain::RepoError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_refuses_a_server_without_tls_and_prefer_falls_back() {
    let server = DedicatedServer::start();
    let url = server.url("postgres");
    let err = connect(&url, "require", None).await.err().unwrap();
    assert!(
        err.to_lowercase().contains("tls") || err.contains("SSL"),
        "{err}"
    );
    let mut conn = connect(&url, "prefer", None).await.unwrap();
    assert!(!encrypted(&mut conn).await);
}
