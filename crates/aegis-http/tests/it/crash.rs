//! A delivery worker killed mid-send holds back only the messages it was sending; on SIGTERM it
//! finishes the messages in hand, leaves the rest due, and exits promptly. The real binary against
//! a fake Mailgun that takes 2 s to answer.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aegis_test_support::empty_database;
use diesel::QueryableByName;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use aegis_http::workers::DELIVERY_TASKS;

use crate::service::{STRONG_KEY, Service};

/// Cheap password hashing (a debug build is slow at the default cost) and no rate limits.
const FAST: [(&str, &str); 3] = [
    ("PASSWORD_HASH_MEMORY_KIB", "64"),
    ("PASSWORD_HASH_ITERATIONS", "1"),
    ("RATELIMIT_ENABLED", "false"),
];

/// Recipients the fake provider has been asked to send to.
async fn recipients(mailgun: &MockServer) -> Vec<String> {
    mailgun
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| {
            url::form_urlencoded::parse(&r.body)
                .find(|(k, _)| k == "to")
                .map(|(_, v)| v.into_owned())
        })
        .collect()
}

#[derive(QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Text)]
    recipient: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    attempts: i32,
    /// `next_attempt_at - now`: positive while leased.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    due_in: i64,
}

async fn outbox(url: &str) -> Vec<Row> {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    diesel::sql_query(
        "SELECT recipient::text AS recipient, status::text AS status, attempts, \
             next_attempt_at - extract(epoch FROM now())::bigint AS due_in \
         FROM email_outbox ORDER BY recipient",
    )
    .load(&mut conn)
    .await
    .unwrap()
}

async fn register(service: &Service, site: &str, key: &str, emails: &[String]) {
    for email in emails {
        let reply = service
            .call(
                "POST",
                "/api/auth/register",
                &[("X-Tenant-Api-Key", key)],
                Some(&json!({"site_id": site, "email": email, "password": "password-1"})),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
}

async fn until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_killed_worker_delays_only_what_was_in_flight_and_sigterm_finishes_what_is_in_hand() {
    let db = empty_database().await;
    let url = db.url().to_owned();
    let mailgun = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&mailgun)
        .await;
    let mut no_mail = FAST.to_vec();
    no_mail.push(("MAIL_TRANSPORT", "none"));
    let uri = mailgun.uri();
    let mut mail = FAST.to_vec();
    mail.extend([
        ("MAIL_TRANSPORT", "mailgun"),
        ("MAILGUN_API_BASE", uri.as_str()),
        ("MAILGUN_API_KEY", "key-test"),
        ("MAILGUN_DOMAIN", "mg.example.com"),
    ]);

    // Twelve messages wait in the outbox.
    let mut quiet = Service::start(&url, &no_mail).await;
    let site = quiet
        .call(
            "POST",
            "/api/sites",
            &[("X-API-Key", STRONG_KEY)],
            Some(&json!({
                "name": "Crash", "domain": "crash.example.com",
                "frontend_url": "https://app.example.com",
                "email_from": "noreply@mg.example.com", "email_from_name": "Crash",
            })),
        )
        .await
        .json();
    let (site, key) = (
        site["uuid"].as_str().unwrap().to_owned(),
        site["tenant_api_key"].as_str().unwrap().to_owned(),
    );
    let first: Vec<String> = (0..12)
        .map(|i| format!("first{i:02}@example.com"))
        .collect();
    register(&quiet, &site, &key, &first).await;
    quiet.signal("TERM");
    quiet.wait(Duration::from_secs(30));

    // A service starts sending them and is killed mid-delivery.
    let mut doomed = Service::start(&url, &mail).await;
    // Every delivery task has a message in hand (the provider holds each for 2 s).
    until("the first sends", Duration::from_secs(20), async || {
        recipients(&mailgun).await.len() == DELIVERY_TASKS
    })
    .await;
    doomed.signal("KILL");
    doomed.wait(Duration::from_secs(10));
    let in_flight: BTreeSet<String> = recipients(&mailgun).await.into_iter().collect();
    assert!(
        !in_flight.is_empty() && in_flight.len() <= 4,
        "{in_flight:?}"
    );
    let leased: BTreeSet<String> = outbox(&url)
        .await
        .into_iter()
        .filter(|r| r.status == "queued" && r.due_in > 0)
        .map(|r| {
            assert!(r.due_in <= 60, "a short lease: {r:?}");
            r.recipient
        })
        .collect();
    assert_eq!(leased, in_flight, "only the messages being sent are held");

    // After a restart, every other message goes out at once; the ones that were in flight wait
    // for their lease and will go out again (at least once).
    let restart = Instant::now();
    let mut restarted = Service::start(&url, &mail).await;
    until(
        "the rest delivered after the restart",
        Duration::from_secs(30),
        async || {
            outbox(&url)
                .await
                .iter()
                .filter(|r| r.status == "delivered")
                .count()
                == first.len() - in_flight.len()
        },
    )
    .await;
    println!(
        "after SIGKILL: {} held by their lease, {} delivered {:?} after the restart",
        in_flight.len(),
        first.len() - in_flight.len(),
        restart.elapsed()
    );
    for row in outbox(&url).await {
        if in_flight.contains(&row.recipient) {
            assert_eq!(
                (row.status.as_str(), row.attempts),
                ("queued", 0),
                "{row:?}"
            );
            assert!(row.due_in > 0, "still under its lease: {row:?}");
        } else {
            assert_eq!(
                (row.status.as_str(), row.attempts),
                ("delivered", 1),
                "{row:?}"
            );
        }
    }

    // SIGTERM mid-delivery: what is in hand is finished, the rest is left due, and the service
    // exits within a few seconds.
    let before = recipients(&mailgun).await.len();
    let second: Vec<String> = (0..8).map(|i| format!("second{i}@example.com")).collect();
    register(&restarted, &site, &key, &second).await;
    until(
        "the second batch starts",
        Duration::from_secs(20),
        async || recipients(&mailgun).await.len() > before,
    )
    .await;
    restarted.signal("TERM");
    let stopping = restarted.wait(Duration::from_secs(30));
    assert!(stopping < Duration::from_secs(10), "{stopping:?}");
    let sent: BTreeSet<String> = recipients(&mailgun).await.into_iter().collect();
    let rows = outbox(&url).await;
    for row in rows.iter().filter(|r| r.recipient.starts_with("second")) {
        if sent.contains(&row.recipient) {
            assert_eq!(row.status, "delivered", "finished in hand: {row:?}");
        } else {
            assert_eq!(
                (row.status.as_str(), row.attempts),
                ("queued", 0),
                "{row:?}"
            );
            assert!(row.due_in <= 0, "left due, not leased: {row:?}");
        }
    }
    let delivered_second = rows
        .iter()
        .filter(|r| r.recipient.starts_with("second") && r.status == "delivered")
        .count();
    assert!(
        delivered_second >= 1 && delivered_second < second.len(),
        "{rows:?}"
    );
    println!("SIGTERM: stopped in {stopping:?} with {delivered_second} finished in hand");
}
