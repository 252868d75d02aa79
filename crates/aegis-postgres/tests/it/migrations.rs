use aegis_postgres::migrate::known_migrations;
use aegis_postgres::run_migrations;
use aegis_test_support::{empty_database, fresh_database, reference_database};
use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

pub(crate) async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    sql_query(sql).get_result::<Count>(conn).await.unwrap().n
}

/// The migration directories in the repository: every one is embedded.
fn migration_dirs() -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("up.sql").is_file())
        .count()
}

#[tokio::test]
async fn migrating_a_migrated_database_applies_nothing() {
    let db = fresh_database().await;
    let migrated = run_migrations(db.url()).await.unwrap();
    assert!(migrated.applied.is_empty());
    assert_eq!(
        migrated.email_normal_form, None,
        "the data step ran once already"
    );
}

#[tokio::test]
async fn a_fresh_database_gets_every_reference_table() {
    let db = empty_database().await;
    let applied = run_migrations(db.url()).await.unwrap().applied;
    assert_eq!(applied.len(), known_migrations(), "{applied:?}");
    assert_eq!(known_migrations(), migration_dirs());
    let mut conn = AsyncPgConnection::establish(db.url()).await.unwrap();
    let tables: Vec<Name> = sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_\\_%' ORDER BY 1",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let tables: Vec<String> = tables.into_iter().map(|t| t.name).collect();
    assert_eq!(
        tables,
        [
            "aegis_data_steps",
            "auth_tokens",
            "email_change_requests",
            "email_outbox",
            "email_verification_tokens",
            "password_reset_requests",
            "password_reset_tokens",
            "rate_limit_counters",
            "refresh_tokens",
            "sites",
            "users",
            "webhook_deliveries",
            "webhook_events"
        ]
    );
}

#[tokio::test]
async fn two_instances_migrating_at_once_both_succeed() {
    let db = empty_database().await;
    let (a, b) = tokio::join!(run_migrations(db.url()), run_migrations(db.url()));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.applied.len() + b.applied.len(),
        known_migrations(),
        "each migration ran exactly once: {a:?} {b:?}"
    );
    assert_eq!(
        usize::from(a.email_normal_form.is_some()) + usize::from(b.email_normal_form.is_some()),
        1,
        "the data step ran exactly once: {a:?} {b:?}"
    );
}

/// A database created by the reference service, with data in it, is adopted in place.
#[tokio::test]
async fn a_reference_database_is_adopted_without_touching_data() {
    let db = reference_database().await;
    let mut conn = AsyncPgConnection::establish(db.url()).await.unwrap();
    conn.batch_execute(
        "INSERT INTO sites (uuid, name, domain, frontend_url, email_from, email_from_name, \
             created_at, updated_at, tenant_api_key, webhook_url, webhook_secret) \
         VALUES ('0191e1a0-0000-7000-8000-000000000001', 'Legacy', 'Legacy.Example.com', \
             'https://legacy.example.com', 'noreply@legacy.example.com', 'Legacy', 1700000000, \
             1700000001, 'legacy-tenant-key', 'https://hooks.legacy.example.com', 'whsec'); \
         INSERT INTO users (uuid, site_uuid, email, password_hash, is_verified, role, created_at, updated_at) \
         VALUES ('0191e1a0-0000-7000-8000-000000000002', '0191e1a0-0000-7000-8000-000000000001', \
             'a@legacy.example.com', '$2b$12$abcdefghijklmnopqrstuu', true, 'admin', 1700000000, 1700000000);",
    )
    .await
    .unwrap();

    let migrated = run_migrations(db.url()).await.unwrap();
    assert_eq!(migrated.applied.len(), known_migrations());
    assert_eq!(
        migrated.email_normal_form,
        Some(Default::default()),
        "the address was already in its normal form"
    );

    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM users").await, 1);
    let row = sql_query(
        "SELECT domain || '|' || tenant_api_key || '|' || webhook_secret || '|' || updated_at AS name \
         FROM sites",
    )
    .get_result::<Name>(&mut conn)
    .await
    .unwrap();
    // Only the domain's case changed (decision 17); keys and timestamps are untouched.
    assert_eq!(
        row.name,
        "legacy.example.com|legacy-tenant-key|whsec|1700000001"
    );
    assert_eq!(
        run_migrations(db.url()).await.unwrap(),
        aegis_postgres::Migrated::default()
    );
}

#[tokio::test]
async fn adoption_keeps_domains_that_differ_only_by_case() {
    let db = reference_database().await;
    let mut conn = AsyncPgConnection::establish(db.url()).await.unwrap();
    conn.batch_execute(
        "INSERT INTO sites (uuid, name, domain, frontend_url, email_from, email_from_name, \
             created_at, updated_at, tenant_api_key) VALUES \
         ('0191e1a0-0000-7000-8000-000000000001', 'A', 'Twin.com', 'https://a.com', 'a@a.com', 'A', 1, 1, 'k1'), \
         ('0191e1a0-0000-7000-8000-000000000002', 'B', 'twin.com', 'https://b.com', 'b@b.com', 'B', 1, 1, 'k2');",
    )
    .await
    .unwrap();
    run_migrations(db.url()).await.unwrap();
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM sites WHERE domain IN ('Twin.com', 'twin.com')"
        )
        .await,
        2
    );
}

/// The indexes of `table`, by name, in alphabetical order.
async fn indexes(conn: &mut AsyncPgConnection, table: &str) -> String {
    sql_query(format!(
        "SELECT coalesce(string_agg(c.relname::text, ' ' ORDER BY c.relname::text), '') AS name \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = '{table}'::regclass"
    ))
    .get_result::<Name>(conn)
    .await
    .unwrap()
    .name
}

/// The reference schema's second index on each token column, on `sites.domain` and on
/// `users.site_uuid` goes, on a fresh database and on an adopted one alike; one whose unique twin
/// is missing from an adopted database stays.
#[tokio::test]
async fn indexes_that_repeat_a_unique_one_are_dropped_and_no_other() {
    let fresh = fresh_database().await;
    let adopted = reference_database().await;
    let mut conn = AsyncPgConnection::establish(adopted.url()).await.unwrap();
    conn.batch_execute("ALTER TABLE refresh_tokens DROP CONSTRAINT refresh_tokens_token_key")
        .await
        .unwrap();
    run_migrations(adopted.url()).await.unwrap();
    let mut fresh = AsyncPgConnection::establish(fresh.url()).await.unwrap();
    for conn in [&mut fresh, &mut conn] {
        assert_eq!(
            indexes(conn, "auth_tokens").await,
            "auth_tokens_pkey auth_tokens_token_key idx_auth_tokens_expires_at \
             idx_auth_tokens_site_uuid idx_auth_tokens_user_uuid"
        );
        assert_eq!(indexes(conn, "sites").await, "sites_domain_key sites_pkey");
        assert_eq!(
            indexes(conn, "users").await,
            "idx_users_email users_pkey users_site_uuid_email_key"
        );
        for table in [
            "email_verification_tokens",
            "password_reset_tokens",
            "email_change_requests",
        ] {
            let names = indexes(conn, table).await;
            let has = |index: String| names.split(' ').any(|n| n == index);
            assert!(has(format!("{table}_token_key")), "{names}");
            assert!(!has(format!("idx_{table}_token")), "{names}");
        }
    }
    assert_eq!(
        indexes(&mut fresh, "refresh_tokens").await,
        "idx_refresh_tokens_expires_at idx_refresh_tokens_family_id idx_refresh_tokens_site_uuid \
         idx_refresh_tokens_user_uuid refresh_tokens_pkey refresh_tokens_token_key"
    );
    assert_eq!(
        indexes(&mut conn, "refresh_tokens").await,
        "idx_refresh_tokens_expires_at idx_refresh_tokens_family_id idx_refresh_tokens_site_uuid \
         idx_refresh_tokens_token idx_refresh_tokens_user_uuid refresh_tokens_pkey",
        "the only index on the column stays"
    );
}
