//! A database created by the reference service is adopted in place and served (decision 25).

use aegis_postgres::run_migrations;
use aegis_test_support::reference_database;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, SimpleAsyncConnection as _};
use serde_json::json;

use crate::support::{MASTER_KEY, TestApp};

#[actix_web::test]
async fn a_site_from_a_reference_database_is_served_after_migration() {
    let db = reference_database().await;
    let mut conn = AsyncPgConnection::establish(db.url()).await.unwrap();
    conn.batch_execute(
        "INSERT INTO sites (uuid, name, domain, frontend_url, verification_redirect_url, email_from, \
             email_from_name, created_at, updated_at, allow_self_registration, webhook_url, \
             webhook_secret, tenant_api_key, mailgun_domain, mailgun_api_key, deletion_protected) \
         VALUES ('0191e1a0-0000-7000-8000-000000000001', 'Legacy', 'legacy.example.com', \
             'https://legacy.example.com', NULL, 'noreply@legacy.example.com', 'Legacy Team', \
             1700000000, 1700000500, false, 'https://hooks.legacy.example.com/in', 'whsec-legacy', \
             'legacy-tenant-key-from-fixtures', 'mg.legacy.example.com', NULL, true)",
    )
    .await
    .unwrap();
    drop(conn);

    run_migrations(db.url()).await.unwrap();
    let app = TestApp::with_options(db, Some(MASTER_KEY)).await;
    let reply = app
        .master(
            "GET",
            "/api/sites/0191E1A0-0000-7000-8000-000000000001",
            None,
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({
            "uuid": "0191e1a0-0000-7000-8000-000000000001", "name": "Legacy",
            "domain": "legacy.example.com", "frontend_url": "https://legacy.example.com",
            "verification_redirect_url": null, "email_from": "noreply@legacy.example.com",
            "email_from_name": "Legacy Team", "created_at": 1700000000, "updated_at": 1700000500,
            "allow_self_registration": false, "webhook_url": "https://hooks.legacy.example.com/in",
            "webhook_secret": "whsec-legacy", "tenant_api_key": "legacy-tenant-key-from-fixtures",
            "mailgun_domain": "mg.legacy.example.com", "mailgun_api_key": null,
            "deletion_protected": true,
        })
    );
}
