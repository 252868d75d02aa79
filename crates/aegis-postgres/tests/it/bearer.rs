//! The bearer check: concurrent checks go to the database together (decision 97), and each still
//! gets exactly its own answer.

use aegis_domain::repo::AccountRepository as _;
use aegis_postgres::{PgAccountRepository, PoolSettings, build_pool};
use aegis_test_support::fresh_database;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, SimpleAsyncConnection as _};

const SITE: &str = "0191e1a0-0000-7000-8000-0000000000b1";
const NOW: i64 = 2_000_000_000;

/// The user with number `n`'s UUID and address.
fn user(n: usize) -> (String, String) {
    (
        format!("0191e1a0-0000-7000-8000-{n:012}"),
        format!("u{n}@b.example.com"),
    )
}

#[tokio::test]
async fn concurrent_checks_each_get_their_own_user_and_no_expired_or_unknown_token_passes() {
    let db = fresh_database().await;
    let mut setup = AsyncPgConnection::establish(db.url()).await.unwrap();
    let mut sql = format!(
        "INSERT INTO sites (uuid, name, domain, frontend_url, email_from, email_from_name, \
             created_at, updated_at, tenant_api_key) \
         VALUES ('{SITE}', 'B', 'b.example.com', 'https://b.example.com', \
             'noreply@b.example.com', 'B', 1, 1, 'key');"
    );
    // Twenty users, each with a live token `live-N`; the even ones also with `old-N`, which
    // expired a second ago.
    for n in 0..20 {
        let (uuid, email) = user(n);
        sql.push_str(&format!(
            "INSERT INTO users (uuid, site_uuid, email, created_at, updated_at) \
             VALUES ('{uuid}', '{SITE}', '{email}', 1, 1); \
             INSERT INTO auth_tokens (site_uuid, user_uuid, token, expires_at, created_at) \
             VALUES ('{SITE}', '{uuid}', 'live-{n}', {NOW} + {n}, 1);"
        ));
        if n % 2 == 0 {
            sql.push_str(&format!(
                "INSERT INTO auth_tokens (site_uuid, user_uuid, token, expires_at, created_at) \
                 VALUES ('{SITE}', '{uuid}', 'old-{n}', {NOW} - 1, 1);"
            ));
        }
    }
    setup.batch_execute(&sql).await.unwrap();

    // One connection for all: the checks can only be answered together or one after another.
    let pool = build_pool(
        db.url(),
        PoolSettings {
            max_size: 1,
            ..PoolSettings::default()
        },
    )
    .unwrap();
    let repo = PgAccountRepository::new(pool);
    // Each live token three times, every expired one, and unknown ones, all at once.
    let mut checks: Vec<(String, Option<usize>)> = Vec::new();
    for n in 0..20 {
        for _ in 0..3 {
            checks.push((format!("live-{n}"), Some(n)));
        }
        checks.push((format!("old-{n}"), None));
        checks.push((format!("unknown-{n}"), None));
    }
    let answers = futures_util::future::join_all(
        checks
            .iter()
            .map(|(digest, _)| repo.user_and_expiry_by_auth_token(digest, NOW)),
    )
    .await;
    for ((digest, expected), answer) in checks.iter().zip(answers) {
        let found = answer
            .unwrap()
            .map(|(u, expires_at)| (u.id.to_string(), u.email.as_str().to_owned(), expires_at));
        let expected = expected.map(|n| {
            let (uuid, email) = user(n);
            (uuid, email, NOW + n as i64)
        });
        assert_eq!(found, expected, "{digest}");
    }
    // The trait's method answers the same, and a token expiring this very second still passes.
    let (uuid, _) = user(0);
    let found = repo.user_by_auth_token("live-0", NOW).await.unwrap();
    assert_eq!(found.map(|u| u.id.to_string()), Some(uuid));
    assert!(
        repo.user_by_auth_token("old-0", NOW)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        repo.user_by_auth_token("live-1", NOW + 2)
            .await
            .unwrap()
            .is_none()
    );
}
