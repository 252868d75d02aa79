//! A login's writes in one statement (decision 99): what it stores, what it refuses, and how it
//! meets a password change that holds the user row.

use std::time::Duration;

use aegis_domain::repo::{NewSession, SessionOpened, UnitOfWork as _};
use aegis_domain::token::{RefreshToken, StoredToken};
use aegis_domain::{SiteId, UserId};
use aegis_postgres::{PgPool, PgUnitOfWork, PoolSettings, build_pool};
use aegis_test_support::fresh_database;

use crate::rows;
use diesel::QueryableByName;
use diesel_async::{
    AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _, SimpleAsyncConnection as _,
};

const SITE: &str = "0191e1a0-0000-7000-8000-0000000000c1";
const USER: &str = "0191e1a0-0000-7000-8000-0000000000c2";
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA";

/// The site, and its user with [`HASH`] and this `is_verified`.
async fn setup(url: &str, verified: &str) -> AsyncPgConnection {
    let mut writer = AsyncPgConnection::establish(url).await.unwrap();
    writer
        .batch_execute(&format!(
            "INSERT INTO sites (uuid, name, domain, frontend_url, email_from, email_from_name, \
                 created_at, updated_at, tenant_api_key) \
             VALUES ('{SITE}', 'S', 's.example.com', 'https://s.example.com', \
                 'noreply@s.example.com', 'S', 1, 1, 'key'); \
             INSERT INTO users (uuid, site_uuid, email, password_hash, is_verified, created_at, \
                 updated_at) \
             VALUES ('{USER}', '{SITE}', 'u@s.example.com', '{HASH}', {verified}, 1, 1);"
        ))
        .await
        .unwrap();
    writer
}

fn site() -> SiteId {
    SiteId::parse(SITE).unwrap()
}

fn user() -> UserId {
    UserId::parse(USER).unwrap()
}

fn auth() -> StoredToken {
    StoredToken {
        digest: "auth-digest".into(),
        site_id: site(),
        user_id: user(),
        expires_at: 2_000_003_600,
        created_at: 2_000_000_000,
    }
}

fn refresh() -> RefreshToken {
    RefreshToken {
        digest: "refresh-digest".into(),
        site_id: site(),
        user_id: user(),
        family_id: "family".into(),
        expires_at: 2_002_592_000,
        created_at: 2_000_000_000,
        used_at: None,
        revoked: false,
    }
}

/// A login of the user, with both tokens.
fn login<'a>(
    checked_hash: &'a str,
    auth: &'a StoredToken,
    refresh: &'a RefreshToken,
) -> NewSession<'a> {
    NewSession {
        user: user(),
        checked_hash,
        auth,
        refresh: Some(refresh),
        rehash: None,
    }
}

/// A unit of work on a pool of one connection, and that pool.
fn uow_and_pool(url: &str) -> (PgUnitOfWork, PgPool) {
    let pool = build_pool(
        url,
        PoolSettings {
            max_size: 1,
            ..PoolSettings::default()
        },
    )
    .unwrap();
    (PgUnitOfWork::new(pool.clone(), crate::keys()), pool)
}

fn uow(url: &str) -> PgUnitOfWork {
    uow_and_pool(url).0
}

/// Every auth and refresh token row, as text.
async fn tokens(conn: &mut AsyncPgConnection) -> Vec<String> {
    rows(
        conn,
        "SELECT concat_ws(' ', 'auth', site_uuid, user_uuid, token, expires_at, created_at) AS row \
         FROM auth_tokens \
         UNION ALL SELECT concat_ws(' ', 'refresh', site_uuid, user_uuid, token, family_id, \
             expires_at, created_at, coalesce(used_at::text, 'unused'), revoked) \
         FROM refresh_tokens ORDER BY 1",
    )
    .await
}

#[tokio::test]
async fn a_login_stores_both_tokens_as_given_and_a_session_without_refresh_only_the_auth_token() {
    let db = fresh_database().await;
    let mut reader = setup(db.url(), "true").await;
    let (uow, pool) = uow_and_pool(db.url());
    let (auth, refresh) = (auth(), refresh());
    let session = login(HASH, &auth, &refresh);
    assert_eq!(
        uow.open_session(session).await.unwrap(),
        SessionOpened::Opened
    );
    assert_eq!(
        tokens(&mut reader).await,
        [
            format!("auth {SITE} {USER} auth-digest 2000003600 2000000000"),
            format!("refresh {SITE} {USER} refresh-digest family 2002592000 2000000000 unused f"),
        ]
    );

    let second = StoredToken {
        digest: "second-auth".into(),
        ..auth.clone()
    };
    let without_refresh = NewSession {
        auth: &second,
        refresh: None,
        ..session
    };
    assert_eq!(
        uow.open_session(without_refresh).await.unwrap(),
        SessionOpened::Opened
    );
    assert_eq!(tokens(&mut reader).await.len(), 3);
    assert!(tokens(&mut reader).await.contains(&format!(
        "auth {SITE} {USER} second-auth 2000003600 2000000000"
    )));

    // The statement is prepared once on the connection and reused, like diesel's own.
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    let prepared = diesel::sql_query(
        "SELECT count(*) AS count FROM pg_prepared_statements WHERE statement LIKE 'WITH u AS%'",
    )
    .get_result::<Count>(&mut *pool.get().await.unwrap())
    .await
    .unwrap();
    assert_eq!(prepared.count, 1);

    // A login that also replaces an outdated hash runs as a transaction, and does both.
    let third = StoredToken {
        digest: "third-auth".into(),
        ..auth.clone()
    };
    let rehashed = NewSession {
        auth: &third,
        refresh: None,
        rehash: Some(("$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3", 2_000_000_100)),
        ..session
    };
    assert_eq!(
        uow.open_session(rehashed).await.unwrap(),
        SessionOpened::Opened
    );
    assert_eq!(tokens(&mut reader).await.len(), 4);
    #[derive(QueryableByName)]
    struct Stored {
        #[diesel(sql_type = diesel::sql_types::Text)]
        password_hash: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        updated_at: i64,
    }
    let stored = diesel::sql_query("SELECT password_hash, updated_at FROM users")
        .get_result::<Stored>(&mut reader)
        .await
        .unwrap();
    assert_eq!(
        (stored.password_hash.as_str(), stored.updated_at),
        ("$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3", 2_000_000_100)
    );
}

#[tokio::test]
async fn a_changed_hash_a_missing_user_or_an_unverified_one_stores_nothing() {
    let db = fresh_database().await;
    let mut writer = setup(db.url(), "NULL").await;
    let uow = uow(db.url());
    let (auth, refresh) = (auth(), refresh());
    let session = login(HASH, &auth, &refresh);
    // is_verified NULL, as the original service may have left it, counts as unverified.
    assert_eq!(
        uow.open_session(session).await.unwrap(),
        SessionOpened::Unverified
    );
    writer
        .batch_execute("UPDATE users SET is_verified = false")
        .await
        .unwrap();
    assert_eq!(
        uow.open_session(session).await.unwrap(),
        SessionOpened::Unverified
    );
    // Another hash is a stale check before it is an unverified user, verified or not.
    let other_hash = NewSession {
        checked_hash: "$argon2id$v=19$m=19456,t=2,p=1$b3RoZXI$b3RoZXI",
        ..session
    };
    assert_eq!(
        uow.open_session(other_hash).await.unwrap(),
        SessionOpened::Stale
    );
    writer
        .batch_execute("UPDATE users SET is_verified = true")
        .await
        .unwrap();
    assert_eq!(
        uow.open_session(other_hash).await.unwrap(),
        SessionOpened::Stale
    );
    let nobody = NewSession {
        user: UserId::parse("0191e1a0-0000-7000-8000-0000000000ff").unwrap(),
        ..session
    };
    assert_eq!(
        uow.open_session(nobody).await.unwrap(),
        SessionOpened::Stale
    );
    assert!(tokens(&mut writer).await.is_empty());
}

/// Opens a session for the user with `checked_hash` while `writer` holds the user row in a
/// transaction that ran `change`; checks that the login waits for the row, then ends the
/// transaction with `end` and says how the login went. `uow`'s pool must have its connection
/// open already, so the login's statement reaches the server while the row is held.
async fn open_behind(
    uow: &PgUnitOfWork,
    writer: &mut AsyncPgConnection,
    change: &str,
    checked_hash: &'static str,
    end: &str,
) -> SessionOpened {
    writer
        .batch_execute(&format!("BEGIN; {change}"))
        .await
        .unwrap();
    let login = {
        let (uow, auth, refresh) = (uow.clone(), auth(), refresh());
        tokio::spawn(async move {
            uow.open_session(login(checked_hash, &auth, &refresh))
                .await
                .unwrap()
        })
    };
    // The login's statement is waiting for the row lock.
    let waiting = "SELECT count(*)::text AS row FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while rows(writer, waiting).await != ["1"] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the login did not wait for the row lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!login.is_finished());
    writer.batch_execute(end).await.unwrap();
    login.await.unwrap()
}

#[tokio::test]
async fn a_login_waits_for_a_change_holding_the_user_and_sees_the_row_the_change_left() {
    let db = fresh_database().await;
    let mut writer = setup(db.url(), "true").await;
    let (uow, pool) = uow_and_pool(db.url());
    drop(pool.get().await.unwrap());
    let changed = "$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3";
    let clear = "DELETE FROM auth_tokens; DELETE FROM refresh_tokens";

    // A password change holds the user row, and commits: nothing is stored.
    let change = format!("UPDATE users SET password_hash = '{changed}'");
    let opened = open_behind(&uow, &mut writer, &change, HASH, "COMMIT").await;
    assert_eq!(opened, SessionOpened::Stale);
    assert!(tokens(&mut writer).await.is_empty());

    // A change that is rolled back leaves the hash as it was, and the login goes through.
    let change = "UPDATE users SET password_hash = 'rolled back'";
    let opened = open_behind(&uow, &mut writer, change, changed, "ROLLBACK").await;
    assert_eq!(opened, SessionOpened::Opened);
    assert_eq!(tokens(&mut writer).await.len(), 2);
    writer.batch_execute(clear).await.unwrap();

    // A verification committed while the login waits is seen.
    writer
        .batch_execute("UPDATE users SET is_verified = false")
        .await
        .unwrap();
    let change = "UPDATE users SET is_verified = true";
    let opened = open_behind(&uow, &mut writer, change, changed, "COMMIT").await;
    assert_eq!(opened, SessionOpened::Opened);
    assert_eq!(tokens(&mut writer).await.len(), 2);
    writer.batch_execute(clear).await.unwrap();

    // So is a deletion: nothing is stored for a user who is gone.
    let opened = open_behind(&uow, &mut writer, "DELETE FROM users", changed, "COMMIT").await;
    assert_eq!(opened, SessionOpened::Stale);
    assert!(tokens(&mut writer).await.is_empty());
}
