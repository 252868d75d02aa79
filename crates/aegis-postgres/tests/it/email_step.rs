//! The data step that brings stored addresses to their normal form (decision 30), against a real
//! server: what it rewrites, what it leaves and reports, and that it runs once.

use aegis_postgres::{EmailNormalFormReport, Migrated, UnresolvedEmail, run_migrations};
use aegis_test_support::{fresh_database, reference_database};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use uuid::Uuid;

use crate::{revert_through, rows};

const SITE_A: &str = "0191e1a0-0000-7000-8000-00000000000a";
const SITE_B: &str = "0191e1a0-0000-7000-8000-00000000000b";

fn user(n: u8) -> Uuid {
    Uuid::parse_str(&format!("0191e1a0-0000-7000-8000-0000000001{n:02x}")).unwrap()
}

/// Every user as `uuid email updated_at`, in id order.
async fn users(conn: &mut AsyncPgConnection) -> Vec<String> {
    rows(
        conn,
        "SELECT uuid::text || ' ' || email || ' ' || updated_at AS row FROM users ORDER BY uuid",
    )
    .await
}

async fn changes(conn: &mut AsyncPgConnection) -> Vec<String> {
    rows(
        conn,
        "SELECT new_email AS row FROM email_change_requests ORDER BY id",
    )
    .await
}

fn sites_sql() -> String {
    format!(
        "INSERT INTO sites (uuid, name, domain, frontend_url, email_from, email_from_name, \
             created_at, updated_at, tenant_api_key) VALUES \
         ('{SITE_A}', 'A', 'a.example.com', 'https://a.example.com', 'n@a.example.com', 'A', 1, 1, 'ka'), \
         ('{SITE_B}', 'B', 'b.example.com', 'https://b.example.com', 'n@b.example.com', 'B', 1, 1, 'kb');"
    )
}

/// Inserts users of site A and B: `(user number, site, stored address)`.
fn users_sql(rows: &[(u8, &str, &str)]) -> String {
    let values: Vec<String> = rows
        .iter()
        .map(|(n, site, email)| {
            format!(
                "('{}', '{site}', '{}', true, 'user', 100, 200)",
                user(*n),
                email.replace('\'', "''")
            )
        })
        .collect();
    format!(
        "INSERT INTO users (uuid, site_uuid, email, is_verified, role, created_at, updated_at) \
         VALUES {};",
        values.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_database_gets_normal_forms_and_a_report_of_what_was_left() {
    let db = fresh_database().await;
    revert_through(db.url(), "20260108000000").await;
    let mut conn = AsyncPgConnection::establish(db.url()).await.unwrap();
    let nfd = "jose\u{301}@example.com";
    conn.batch_execute(&sites_sql()).await.unwrap();
    conn.batch_execute(&users_sql(&[
        // Rewritten: mixed case, decomposed, a Unicode domain, an uppercase Unicode domain.
        (1, SITE_A, "Mixed.Case@Example.COM"),
        (2, SITE_A, nfd),
        (3, SITE_A, "user@bücher.de"),
        (4, SITE_A, "Ünï@EXÄMPLE.DE"),
        // Already normal.
        (5, SITE_A, "plain@example.com"),
        // One address, spelled two ways (ASCII and Unicode domain): neither changes.
        (6, SITE_A, "anna@xn--bcher-kva.de"),
        (7, SITE_A, "anna@Bücher.de"),
        // One address spelled three ways (composed, decomposed, uppercase).
        (8, SITE_A, "zoë@x.com"),
        (9, SITE_A, "zoe\u{308}@x.com"),
        (10, SITE_A, "ZOË@X.COM"),
        // Not valid any more: left as stored.
        (11, SITE_A, "\"q\"@x.com"),
        // Another site's users are another address space: no collision with site A's.
        (12, SITE_B, "anna@Bücher.de"),
        (13, SITE_B, "Mixed.Case@example.com"),
    ]))
    .await
    .unwrap();
    conn.batch_execute(&format!(
        "INSERT INTO email_change_requests (site_uuid, user_uuid, new_email, token, expires_at, created_at) VALUES \
         ('{SITE_A}', '{}', 'New@BÜCHER.de', 'digest-1', 4102444800, 1), \
         ('{SITE_A}', '{}', 'kept@example.com', 'digest-2', 4102444800, 1), \
         ('{SITE_A}', '{}', '\"a,b\"@example.com', 'digest-3', 4102444800, 1);",
        user(1),
        user(5),
        user(11),
    ))
    .await
    .unwrap();

    let migrated = run_migrations(db.url()).await.unwrap();
    assert_eq!(migrated.applied[0], "20260108000000");
    let site_a = Uuid::parse_str(SITE_A).unwrap();
    assert_eq!(
        migrated.email_normal_form,
        Some(EmailNormalFormReport {
            users_normalised: 6,
            changes_normalised: 1,
            unresolved: vec![
                UnresolvedEmail::Unparseable {
                    site: site_a,
                    user: user(11),
                },
                UnresolvedEmail::Collision {
                    site: site_a,
                    first_user: user(6),
                    second_user: user(7),
                },
                UnresolvedEmail::Collision {
                    site: site_a,
                    first_user: user(8),
                    second_user: user(9),
                },
                UnresolvedEmail::Collision {
                    site: site_a,
                    first_user: user(8),
                    second_user: user(10),
                },
                UnresolvedEmail::UnparseableChange {
                    site: site_a,
                    user: user(11),
                },
            ],
        })
    );
    let expected_users = [
        (1, "mixed.case@example.com"),
        (2, "jos\u{e9}@example.com"),
        (3, "user@xn--bcher-kva.de"),
        (4, "ünï@xn--exmple-cua.de"),
        (5, "plain@example.com"),
        (6, "anna@xn--bcher-kva.de"),
        (7, "anna@Bücher.de"),
        (8, "zoë@x.com"),
        (9, "zoe\u{308}@x.com"),
        (10, "ZOË@X.COM"),
        (11, "\"q\"@x.com"),
        (12, "anna@xn--bcher-kva.de"),
        (13, "mixed.case@example.com"),
    ]
    .map(|(n, email)| format!("{} {email} 200", user(n)));
    assert_eq!(users(&mut conn).await, expected_users);
    assert_eq!(
        changes(&mut conn).await,
        [
            "new@xn--bcher-kva.de",
            "kept@example.com",
            "\"a,b\"@example.com"
        ]
    );
    // No report line names an address.
    for item in &migrated.email_normal_form.unwrap().unresolved {
        let line = item.to_string();
        assert!(!line.contains('@'), "{line}");
        assert!(line.contains(SITE_A), "{line}");
    }

    // Once only: a second run finds the step recorded and touches nothing, reported rows included.
    assert_eq!(run_migrations(db.url()).await.unwrap(), Migrated::default());
    assert_eq!(users(&mut conn).await, expected_users);
    assert_eq!(
        rows(&mut conn, "SELECT name AS row FROM aegis_data_steps").await,
        ["email_normal_form"]
    );
}

#[tokio::test]
async fn a_reference_database_is_normalised_when_adopted() {
    let db = reference_database().await;
    let mut conn = AsyncPgConnection::establish(db.url()).await.unwrap();
    conn.batch_execute(&sites_sql()).await.unwrap();
    conn.batch_execute(&users_sql(&[
        (1, SITE_A, "jörg@straße.de"),
        (2, SITE_A, "a@b.co"),
    ]))
    .await
    .unwrap();
    let report = run_migrations(db.url())
        .await
        .unwrap()
        .email_normal_form
        .unwrap();
    assert_eq!(
        report,
        EmailNormalFormReport {
            users_normalised: 1,
            changes_normalised: 0,
            unresolved: vec![],
        }
    );
    assert_eq!(
        users(&mut conn).await,
        [
            format!("{} jörg@xn--strae-oqa.de 200", user(1)),
            format!("{} a@b.co 200", user(2)),
        ]
    );
}
