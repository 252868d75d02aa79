//! The sealed email outbox: the migration that stops keeping links in plaintext, and sealing what
//! an earlier version left waiting.

use aegis_domain::delivery::EmailOutbox as _;
use aegis_postgres::{PgEmailOutbox, SealReport, run_migrations};
use aegis_test_support::fresh_database;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use crate::{keys, pool, revert_through, rows};

const SITE: &str = "0191e1a0-0000-7000-8000-000000000001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_links_are_kept_until_their_token_expires_and_then_sealed() {
    let db = fresh_database().await;
    revert_through(db.url(), "20260107000000").await;
    let mut conn = AsyncPgConnection::establish(db.url()).await.unwrap();
    conn.batch_execute(&format!(
        "INSERT INTO sites (uuid, name, domain, frontend_url, email_from, email_from_name, \
             created_at, updated_at, tenant_api_key) \
         VALUES ('{SITE}', 'S', 's.example.com', 'https://s.example.com', 'n@s.example.com', 'S', 1, 1, 'k'); \
         INSERT INTO users (uuid, site_uuid, email, is_verified, created_at, updated_at) \
         VALUES ('0191e1a0-0000-7000-8000-000000000002', '{SITE}', 'u@example.com', false, 1, 1); \
         INSERT INTO email_verification_tokens (site_uuid, user_uuid, token, expires_at, created_at) \
         VALUES ('{SITE}', '0191e1a0-0000-7000-8000-000000000002', \
             encode(sha256('live-token'::bytea), 'hex'), extract(epoch FROM now())::bigint + 3600, 1); \
         INSERT INTO password_reset_tokens (site_uuid, user_uuid, token, expires_at, created_at, used) \
         VALUES ('{SITE}', '0191e1a0-0000-7000-8000-000000000002', \
             encode(sha256('used-token'::bytea), 'hex'), extract(epoch FROM now())::bigint + 3600, 1, true); \
         INSERT INTO email_change_requests (site_uuid, user_uuid, new_email, token, expires_at, created_at) \
         VALUES ('{SITE}', '0191e1a0-0000-7000-8000-000000000002', 'v@example.com', \
             encode(sha256('old-token'::bytea), 'hex'), 1, 1); \
         INSERT INTO email_outbox (id, site_uuid, kind, recipient, from_name, from_address, subject, \
             text_body, html_body, status, attempts, next_attempt_at, created_at, updated_at) VALUES \
         ('00000000-0000-0000-0000-000000000001', '{SITE}', 'verification', 'u@example.com', 'S', 'n@s.example.com', 'V', \
             'open https://s.example.com/verify-email?token=live-token', '<a href=\"?token=live-token\">', 'pending', 0, 1, 1, 1), \
         ('00000000-0000-0000-0000-000000000002', '{SITE}', 'password_reset', 'u@example.com', 'S', 'n@s.example.com', 'R', \
             'https://s.example.com/reset-password?token=used-token', 'h', 'pending', 0, 1, 1, 1), \
         ('00000000-0000-0000-0000-000000000003', '{SITE}', 'email_change', 'v@example.com', 'S', 'n@s.example.com', 'C', \
             'https://s.example.com/confirm-email-change?token=old-token', 'h', 'pending', 0, 1, 1, 1), \
         ('00000000-0000-0000-0000-000000000004', '{SITE}', 'verification', 'u@example.com', 'S', 'n@s.example.com', 'V', \
             'https://s.example.com/verify-email?token=gone-token', 'h', 'pending', 0, 1, 1, 1), \
         ('00000000-0000-0000-0000-000000000005', '{SITE}', 'verification', 'u@example.com', 'S', 'n@s.example.com', 'V', \
             'https://s.example.com/verify-email?token=live-token', 'h', 'exhausted', 6, 1, 1, 1), \
         ('00000000-0000-0000-0000-000000000006', '{SITE}', 'sign_in_attempt', 'u@example.com', 'S', 'n@s.example.com', 'A', \
             'someone tried to register', '<p>someone</p>', 'pending', 0, 1, 1, 1);"
    ))
    .await
    .unwrap();

    let applied = run_migrations(db.url()).await.unwrap().applied;
    assert_eq!(applied[0], "20260107000000", "{applied:?}");
    let after = rows(
        &mut conn,
        "SELECT right(id::text, 1) || ' ' || status || ' ' || (text_body <> '')::text || ' ' || \
             coalesce((link_expires_at > extract(epoch FROM now())::bigint)::text, '-') || ' ' || \
             coalesce(last_error, '-') AS row \
         FROM email_outbox ORDER BY id",
    )
    .await;
    assert_eq!(
        after,
        [
            // A live link waits, with its token's expiry, to be sealed.
            "1 pending true true -",
            // Used, expired or unknown tokens: the link is dead and cleared.
            "2 expired false - link expired before delivery",
            "3 expired false false link expired before delivery",
            "4 expired false - link expired before delivery",
            // Never to be sent: cleared.
            "5 exhausted false - -",
            // No token in it: kept, to be sealed.
            "6 pending true - -",
        ]
    );

    let outbox = PgEmailOutbox::new(pool(db.url()), keys());
    assert_eq!(
        outbox.seal_stored().await.unwrap(),
        SealReport {
            sealed: 2,
            resealed: 0
        }
    );
    assert_eq!(
        rows(
            &mut conn,
            "SELECT status || ' ' || count(*) AS row FROM email_outbox GROUP BY status ORDER BY 1"
        )
        .await,
        ["exhausted 1", "expired 3", "queued 2"],
        "sealed rows wait as `queued`, which earlier versions never claim"
    );
    let plain = rows(
        &mut conn,
        "SELECT id::text AS row FROM email_outbox \
         WHERE text_body <> '' OR html_body <> '' OR position('live-token' IN encode(coalesce(sealed_body, ''), 'escape')) > 0",
    )
    .await;
    assert!(plain.is_empty(), "no plaintext link left: {plain:?}");
    assert_eq!(outbox.seal_stored().await.unwrap(), SealReport::default());

    // What was sealed is what gets sent.
    let first = outbox.claim_next(10, 70).await.unwrap().unwrap();
    assert_eq!(
        (first.email.text.as_str(), first.email.html.as_str()),
        (
            "open https://s.example.com/verify-email?token=live-token",
            "<a href=\"?token=live-token\">"
        )
    );
    let second = outbox.claim_next(10, 70).await.unwrap().unwrap();
    assert_eq!(second.email.text, "someone tried to register");
    assert!(outbox.claim_next(10, 70).await.unwrap().is_none());
}
