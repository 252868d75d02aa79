//! The token cache's invalidations (decisions 89 and 90): what the triggers notify, when, and what
//! they leave alone.

use std::sync::Arc;
use std::time::Duration;

use aegis_domain::repo::{AccountRepository as _, UnitOfWork as _};
use aegis_domain::token::StoredToken;
use aegis_domain::{SiteId, UserId};
use aegis_postgres::{PgAccountRepository, PgUnitOfWork, TokenCache, TokenListener};
use aegis_test_support::fresh_database;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, SimpleAsyncConnection as _};
use futures_util::StreamExt as _;

const SITE: &str = "0191e1a0-0000-7000-8000-0000000000a1";
const USER: &str = "0191e1a0-0000-7000-8000-0000000000a2";

/// Every payload received on `conn` up to the `end` marker, in order.
async fn received(conn: &mut AsyncPgConnection, writer: &mut AsyncPgConnection) -> Vec<String> {
    writer
        .batch_execute("NOTIFY aegis_tokens, 'end'")
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut stream = std::pin::pin!(conn.notifications_stream());
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("the end marker never arrived")
            .unwrap()
            .unwrap();
        if next.payload == "end" {
            return out;
        }
        out.push(next.payload);
    }
}

/// The site [`SITE`] and its user [`USER`].
async fn insert_site_and_user(writer: &mut AsyncPgConnection) {
    writer
        .batch_execute(&format!(
            "INSERT INTO sites (uuid, name, domain, frontend_url, email_from, email_from_name, \
                 created_at, updated_at, tenant_api_key) \
             VALUES ('{SITE}', 'N', 'n.example.com', 'https://n.example.com', \
                 'noreply@n.example.com', 'N', 1, 1, 'key'); \
             INSERT INTO users (uuid, site_uuid, email, created_at, updated_at) \
             VALUES ('{USER}', '{SITE}', 'u@n.example.com', 1, 1);"
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn changes_notify_at_commit_and_the_cleanup_of_expired_tokens_does_not() {
    let db = fresh_database().await;
    let mut writer = AsyncPgConnection::establish(db.url()).await.unwrap();
    insert_site_and_user(&mut writer).await;
    writer
        .batch_execute(&format!(
            "INSERT INTO auth_tokens (site_uuid, user_uuid, token, expires_at, created_at) VALUES \
                 ('{SITE}', '{USER}', 'expired', 100, 1), \
                 ('{SITE}', '{USER}', 'live', 4000000000, 1);"
        ))
        .await
        .unwrap();
    let mut listener = AsyncPgConnection::establish(db.url()).await.unwrap();
    listener.batch_execute("LISTEN aegis_tokens").await.unwrap();

    // Inserts notify nothing; the cleanup deletes the expired token silently.
    let cleaned = PgAccountRepository::new(crate::pool(db.url()))
        .delete_expired_tokens(1_000)
        .await
        .unwrap();
    assert_eq!(cleaned.auth_tokens, 1);
    // A rolled-back change notifies nothing.
    writer
        .batch_execute("BEGIN; DELETE FROM auth_tokens; UPDATE users SET role = 'admin'; ROLLBACK;")
        .await
        .unwrap();
    assert_eq!(
        received(&mut listener, &mut writer).await,
        Vec::<String>::new()
    );

    // A logout; two changes of one user in one transaction, sent once.
    writer
        .batch_execute(
            "DELETE FROM auth_tokens WHERE token = 'live'; \
             BEGIN; UPDATE users SET role = 'admin'; UPDATE users SET deletion_protected = true; COMMIT;",
        )
        .await
        .unwrap();
    assert_eq!(
        received(&mut listener, &mut writer).await,
        ["t:live".to_owned(), format!("u:{USER}")]
    );

    // A site deletion names the site, and its users through the cascade.
    writer.batch_execute("DELETE FROM sites").await.unwrap();
    let mut site_deletion = received(&mut listener, &mut writer).await;
    site_deletion.sort();
    assert_eq!(site_deletion, [format!("s:{SITE}"), format!("u:{USER}")]);
}

#[tokio::test]
async fn only_a_transaction_that_revokes_waits_for_a_barrier_at_commit() {
    let db = fresh_database().await;
    let mut writer = AsyncPgConnection::establish(db.url()).await.unwrap();
    insert_site_and_user(&mut writer).await;
    let mut listener = AsyncPgConnection::establish(db.url()).await.unwrap();
    listener.batch_execute("LISTEN aegis_tokens").await.unwrap();
    // A cache in use, whose own listener is not running: a barrier would never be confirmed.
    let cache = Arc::new(TokenCache::new(100, Duration::from_secs(60)));
    cache.subscribed();
    let uow =
        PgUnitOfWork::new(crate::pool(db.url()), crate::keys()).with_token_cache(cache.clone());
    let token = StoredToken {
        digest: "fresh".into(),
        site_id: SiteId::parse(SITE).unwrap(),
        user_id: UserId::parse(USER).unwrap(),
        expires_at: 4_000_000_000,
        created_at: 1,
    };

    // A login's writes: a new token, nothing cached to evict, no barrier, no wait.
    let mut tx = uow.begin().await.unwrap();
    tx.accounts().lock_user(token.user_id).await.unwrap();
    tx.accounts().insert_auth_token(&token).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        received(&mut listener, &mut writer).await,
        Vec::<String>::new()
    );
    assert!(!cache.is_bypassed());

    // A logout: the deletion's notification, then this instance's barrier, which goes unconfirmed
    // here, so the cache stops answering.
    let mut tx = uow.begin().await.unwrap();
    assert!(tx.accounts().delete_auth_token("fresh").await.unwrap());
    tx.commit().await.unwrap();
    let after_logout = received(&mut listener, &mut writer).await;
    assert_eq!(after_logout.len(), 2, "{after_logout:?}");
    assert_eq!(after_logout[0], "t:fresh");
    assert!(after_logout[1].starts_with("b:"), "{after_logout:?}");
    assert!(cache.is_bypassed());
}

#[tokio::test]
async fn an_idle_listener_checks_its_connection_delivers_with_a_barrier_of_its_own() {
    let db = fresh_database().await;
    let cache = Arc::new(TokenCache::new(100, Duration::from_secs(60)));
    let target = aegis_postgres::ConnectTarget::parse(db.url()).unwrap();
    let _listener = TokenListener::spawn(target, &cache);
    let mut observer = AsyncPgConnection::establish(db.url()).await.unwrap();
    observer.batch_execute("LISTEN aegis_tokens").await.unwrap();
    // Nothing happens on the database: after PING_INTERVAL the listener sends a barrier of its
    // own, and receives it, so the cache keeps answering.
    let mut stream = std::pin::pin!(observer.notifications_stream());
    let wait = aegis_postgres::token_listener::PING_INTERVAL + Duration::from_secs(5);
    let first = tokio::time::timeout(wait, stream.next())
        .await
        .expect("no barrier within the idle check's interval")
        .unwrap()
        .unwrap();
    assert!(first.payload.starts_with("b:"), "{}", first.payload);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!cache.is_bypassed());
}

#[tokio::test]
async fn the_trigger_migration_reverts_and_applies_again() {
    let db = fresh_database().await;
    let triggers = "SELECT count(*) AS n FROM pg_trigger WHERE tgname LIKE 'aegis_%_notify_tokens'";
    let mut conn = AsyncPgConnection::establish(db.url()).await.unwrap();
    assert_eq!(crate::migrations::count(&mut conn, triggers).await, 3);
    crate::revert_through(db.url(), "20260110000000").await;
    assert_eq!(crate::migrations::count(&mut conn, triggers).await, 0);
    aegis_postgres::run_migrations(db.url()).await.unwrap();
    assert_eq!(crate::migrations::count(&mut conn, triggers).await, 3);
}
