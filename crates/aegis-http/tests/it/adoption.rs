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

/// Verification links the reference already sent keep working: their plaintext tokens are digested
/// in place by the migration (decision 25).
#[actix_web::test]
async fn links_sent_by_the_reference_keep_working_after_adoption() {
    let db = reference_database().await;
    let mut conn = AsyncPgConnection::establish(db.url()).await.unwrap();
    conn.batch_execute(
        "INSERT INTO sites (uuid, name, domain, frontend_url, email_from, email_from_name, \
             created_at, updated_at, tenant_api_key) \
         VALUES ('0191e1a0-0000-7000-8000-000000000001', 'Legacy', 'legacy.example.com', \
             'https://legacy.example.com', 'noreply@legacy.example.com', 'Legacy', 1, 1, 'legacy-key'); \
         INSERT INTO users (uuid, site_uuid, email, password_hash, is_verified, role, created_at, updated_at) \
         VALUES ('0191e1a0-0000-7000-8000-000000000002', '0191e1a0-0000-7000-8000-000000000001', \
             'invitee@legacy.example.com', NULL, false, 'user', 1, 1); \
         INSERT INTO email_verification_tokens (site_uuid, user_uuid, token, expires_at, created_at) \
         VALUES ('0191e1a0-0000-7000-8000-000000000001', '0191e1a0-0000-7000-8000-000000000002', \
             'Plaintext_Link_Token-from-the-reference-0123', 4102444800, 1);",
    )
    .await
    .unwrap();
    drop(conn);
    run_migrations(db.url()).await.unwrap();
    let app = TestApp::with_options(db, Some(MASTER_KEY)).await;
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM email_verification_tokens \
             WHERE token = encode(sha256('Plaintext_Link_Token-from-the-reference-0123'), 'hex')"
        )
        .await,
        1
    );
    let site = app
        .master(
            "GET",
            "/api/sites/0191e1a0-0000-7000-8000-000000000001",
            None,
        )
        .await
        .json();
    let reply = app
        .tenant(
            "/api/auth/verify-email",
            &site,
            json!({"site_id": site["uuid"], "token": "Plaintext_Link_Token-from-the-reference-0123",
                   "password": "a-new-password"}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    assert_eq!(reply.json()["redirect_url"], "https://legacy.example.com");
    app.login(&site, "invitee@legacy.example.com", "a-new-password")
        .await;
}
