//! The email outbox worker: delivery to the development outbox, retries, leases.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aegis_domain::delivery::EmailDelivery;
use aegis_domain::mail::{MailError, Mailer, OutgoingEmail};
use aegis_mailgun::FileOutbox;
use aegis_postgres::{PgEmailOutbox, PoolSettings, SealReport, SealingKeys, build_pool};
use async_trait::async_trait;
use serde_json::json;

use crate::support::{SECRET_KEY, T0, TestApp};

/// Fails while `failing`, then records what it sends.
#[derive(Default)]
struct FlakyMailer {
    failing: std::sync::atomic::AtomicBool,
    sent: std::sync::Mutex<Vec<OutgoingEmail>>,
    calls: AtomicUsize,
}

#[async_trait]
impl Mailer for FlakyMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(MailError::Failed("provider answered 500".into()));
        }
        self.sent.lock().unwrap().push(email.clone());
        Ok(())
    }
}

fn delivery(app: &TestApp, mailer: Arc<dyn Mailer>) -> EmailDelivery {
    delivery_with_keys(app, mailer, crate::support::sealing_keys())
}

fn outbox(app: &TestApp, keys: SealingKeys) -> PgEmailOutbox {
    PgEmailOutbox::new(
        build_pool(app.db.url(), PoolSettings::default()).unwrap(),
        keys,
    )
}

fn delivery_with_keys(app: &TestApp, mailer: Arc<dyn Mailer>, keys: SealingKeys) -> EmailDelivery {
    EmailDelivery::new(
        Arc::new(outbox(app, keys)),
        mailer,
        Arc::new(app.clock.clone()),
    )
}

async fn register(app: &TestApp, site: &serde_json::Value, email: &str) {
    let reply = app
        .tenant(
            "/api/auth/register",
            site,
            json!({"site_id": site["uuid"], "email": email, "password": "password-1"}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 201);
}

#[actix_web::test]
async fn queued_mail_lands_in_the_outbox_folder_and_its_link_verifies() {
    let app = TestApp::new().await;
    let site = app.create_site("mail.example.com").await;
    register(&app, &site, "reader@example.com").await;
    let dir = std::env::temp_dir().join(format!(
        "aegis-outbox-it-{}-{}",
        std::process::id(),
        app.db.name()
    ));
    let report = delivery(&app, Arc::new(FileOutbox::new(&dir)))
        .run_once(10)
        .await
        .unwrap();
    assert_eq!((report.attempted, report.delivered), (1, 1));

    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    let eml = std::fs::read_to_string(files[0].path()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(eml.contains("To: reader@example.com\r\n"));
    // The display name is quoted, as every transport writes it.
    assert!(eml.contains("From: \"Example Team\" <noreply@example.com>\r\n"));
    assert!(eml.contains("Subject: Verify your email for Example\r\n"));
    let start = eml.find("verify-email?token=").unwrap() + "verify-email?token=".len();
    let token: String = eml[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();

    // Delivered rows keep no body: the token is not left lying in the database.
    assert_eq!(
        app.count("SELECT count(*) AS n FROM email_outbox WHERE status = 'delivered' AND text_body = '' AND html_body = '' AND sealed_body IS NULL AND attempts = 1").await,
        1
    );
    let reply = app
        .tenant(
            "/api/auth/verify-email",
            &site,
            json!({"site_id": site["uuid"], "token": token}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    let again = delivery(&app, Arc::new(FileOutbox::new(&dir)))
        .run_once(10)
        .await
        .unwrap();
    assert_eq!(again.attempted, 0);
}

#[actix_web::test]
async fn a_provider_outage_delays_mail_and_loses_none() {
    let app = TestApp::new().await;
    let site = app.create_site("outage.example.com").await;
    register(&app, &site, "patient@example.com").await;
    let mailer = Arc::new(FlakyMailer::default());
    mailer.failing.store(true, Ordering::SeqCst);
    let worker = delivery(&app, mailer.clone());

    let report = worker.run_once(10).await.unwrap();
    assert_eq!((report.attempted, report.retrying), (1, 1));
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM email_outbox WHERE status = 'queued' AND attempts = 1 \
             AND next_attempt_at = {} AND last_error LIKE '%500%'",
            T0 + 30
        ))
        .await,
        1
    );
    // Not due yet: nothing is attempted.
    assert_eq!(worker.run_once(10).await.unwrap().attempted, 0);
    app.clock.advance(30);
    mailer.failing.store(false, Ordering::SeqCst);
    let report = worker.run_once(10).await.unwrap();
    assert_eq!((report.attempted, report.delivered), (1, 1));
    let sent = mailer.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "patient@example.com");
    assert!(sent[0].text.contains("verify-email?token="));
}

#[actix_web::test]
async fn racing_workers_deliver_each_message_once() {
    let app = TestApp::new().await;
    let site = app.create_site("race.example.com").await;
    for i in 0..8 {
        register(&app, &site, &format!("user{i}@example.com")).await;
    }
    let mailer = Arc::new(FlakyMailer::default());
    let (a, b) = (
        delivery(&app, mailer.clone()),
        delivery(&app, mailer.clone()),
    );
    let (ra, rb) = tokio::join!(a.run_once(5), b.run_once(5));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let (rc, rd) = tokio::join!(a.run_once(5), b.run_once(5));
    let total = ra.delivered + rb.delivered + rc.unwrap().delivered + rd.unwrap().delivered;
    assert_eq!(total, 8);
    assert_eq!(
        mailer.calls.load(Ordering::SeqCst),
        8,
        "no message was sent twice"
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM email_outbox WHERE status = 'delivered'")
            .await,
        8
    );
}

/// Through the real Mailgun transport against a fake Mailgun: it answers 500 three times, then
/// accepts. The message is retried on schedule and sent exactly once successfully, with the site's
/// own Mailgun settings.
#[actix_web::test]
async fn a_mailgun_outage_is_ridden_out() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let app = TestApp::new().await;
    let mut body = crate::support::site_body("mg.example.com");
    body["mailgun_domain"] = json!("mg.site.example.com");
    body["mailgun_api_key"] = json!("key-site");
    let site = app.master("POST", "/api/sites", Some(body)).await.json();
    register(&app, &site, "waiting@example.com").await;

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mg.site.example.com/messages"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(3)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/mg.site.example.com/messages"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let mailer = aegis_mailgun::MailgunMailer::new(&server.uri(), None, None).unwrap();
    let worker = delivery(&app, Arc::new(mailer));
    for wait in [30, 120, 600] {
        let report = worker.run_once(10).await.unwrap();
        assert_eq!((report.attempted, report.retrying), (1, 1));
        app.clock.advance(wait);
    }
    let report = worker.run_once(10).await.unwrap();
    assert_eq!((report.attempted, report.delivered), (1, 1));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 4);
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&requests[3].body)
        .into_owned()
        .collect();
    assert!(fields.contains(&("to".to_owned(), "waiting@example.com".to_owned())));
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM email_outbox WHERE status = 'delivered' AND attempts = 4"
        )
        .await,
        1
    );
}

/// Rows of the outbox as `status attempts sealed? plaintext?`.
async fn outbox_rows(app: &TestApp) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        row: String,
    }
    use diesel_async::{AsyncConnection as _, RunQueryDsl as _};
    let mut conn = diesel_async::AsyncPgConnection::establish(app.db.url())
        .await
        .unwrap();
    diesel::sql_query(
        "SELECT status || ' ' || attempts || ' ' || (sealed_body IS NOT NULL)::text || ' ' || \
             (text_body <> '' OR html_body <> '')::text AS row \
         FROM email_outbox ORDER BY created_at, id",
    )
    .load::<Row>(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|r| r.row)
    .collect()
}

#[actix_web::test]
async fn a_link_that_expires_before_delivery_is_cleared_and_never_sent() {
    let app = TestApp::new().await;
    let site = app.create_site("late.example.com").await;
    register(&app, &site, "late@example.com").await;
    assert_eq!(outbox_rows(&app).await, ["queued 0 true false"]);
    let mailer = Arc::new(FlakyMailer::default());
    let worker = delivery(&app, mailer.clone());
    // The verification link lives 24 hours; the message is still due one second before.
    app.clock.advance(86_400);
    mailer.failing.store(true, Ordering::SeqCst);
    assert_eq!(worker.run_once(10).await.unwrap().retrying, 1);
    app.clock.advance(31);
    let report = worker.run_once(10).await.unwrap();
    assert_eq!((report.expired, report.attempted), (1, 0));
    assert_eq!(outbox_rows(&app).await, ["expired 1 false false"]);
    assert_eq!(mailer.calls.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn an_exhausted_message_keeps_no_body() {
    let app = TestApp::new().await;
    let site = app.create_site("never.example.com").await;
    // The verification link outlives the whole retry schedule (about 7 hours).
    register(&app, &site, "never@example.com").await;
    let mailer = Arc::new(FlakyMailer::default());
    mailer.failing.store(true, Ordering::SeqCst);
    let worker = delivery(&app, mailer.clone());
    for wait in [30, 120, 600, 3_600, 21_600] {
        assert_eq!(worker.run_once(10).await.unwrap().retrying, 1);
        app.clock.advance(wait);
    }
    assert_eq!(worker.run_once(10).await.unwrap().exhausted, 1);
    assert_eq!(outbox_rows(&app).await, ["exhausted 6 false false"]);
}

#[actix_web::test]
async fn a_rotated_secret_key_reseals_waiting_mail_and_an_unknown_key_leaves_it_waiting() {
    let app = TestApp::new().await;
    let site = app.create_site("rotate.example.com").await;
    register(&app, &site, "rotate@example.com").await;
    const NEW: &str = "a-new-secret-key-0123456789abcdef0123456789";
    let mailer = Arc::new(FlakyMailer::default());

    // An instance with a different key and no SECRET_KEY_PREVIOUS cannot open it: the message is
    // left for one that can, not lost or marked failed.
    let stranger = delivery_with_keys(&app, mailer.clone(), SealingKeys::new(NEW, None).unwrap());
    assert_eq!(stranger.run_once(10).await.unwrap().attempted, 0);
    assert_eq!(outbox_rows(&app).await, ["queued 0 true false"]);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM email_outbox WHERE next_attempt_at = {}",
            T0 + 300
        ))
        .await,
        1
    );

    // With the old key as SECRET_KEY_PREVIOUS, startup moves it to the new key.
    let rotated = SealingKeys::new(NEW, Some(SECRET_KEY)).unwrap();
    assert_eq!(
        outbox(&app, rotated.clone()).seal_stored().await.unwrap(),
        SealReport {
            sealed: 0,
            resealed: 1
        }
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM email_outbox WHERE sealed_with = '{}'",
            rotated.current_id()
        ))
        .await,
        1
    );
    // The new key alone now delivers it.
    app.clock.advance(300);
    let report = delivery_with_keys(&app, mailer.clone(), SealingKeys::new(NEW, None).unwrap())
        .run_once(10)
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert!(
        mailer.sent.lock().unwrap()[0]
            .text
            .contains("verify-email?token=")
    );
}

#[actix_web::test]
async fn an_altered_sealed_body_is_never_sent() {
    let app = TestApp::new().await;
    let site = app.create_site("tamper.example.com").await;
    register(&app, &site, "tamper@example.com").await;
    // Someone with write access readdresses the message to themselves.
    app.sql("UPDATE email_outbox SET recipient = 'attacker@example.com'")
        .await;
    let mailer = Arc::new(FlakyMailer::default());
    let report = delivery(&app, mailer.clone()).run_once(10).await.unwrap();
    assert_eq!(report.attempted, 0);
    assert_eq!(mailer.calls.load(Ordering::SeqCst), 0);
    assert_eq!(outbox_rows(&app).await, ["exhausted 0 false false"]);
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM email_outbox \
             WHERE last_error = 'sealed body failed authentication'"
        )
        .await,
        1
    );
}

/// What a database dump holds: no token that works, anywhere.
#[actix_web::test]
async fn a_database_dump_holds_no_usable_link() {
    let app = TestApp::new().await;
    let site = app.create_site("dump.example.com").await;
    app.verified_user(&site, "dump@example.com", "password-1")
        .await;
    let auth = app.login(&site, "dump@example.com", "password-1").await;
    let reply = app
        .tenant(
            "/api/auth/request-password-reset",
            &site,
            json!({"site_id": site["uuid"], "email": "dump@example.com"}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200);
    let reply = app
        .bearer(
            "POST",
            "/api/auth/request-email-change",
            auth["auth_token"]["token"].as_str().unwrap(),
            Some(json!({"new_email": "moved@example.com", "password": "password-1"})),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    register(&app, &site, "pending@example.com").await;
    let tokens = [
        app.emailed_token("password_reset", "dump@example.com")
            .await,
        app.emailed_token("email_change", "moved@example.com").await,
        app.emailed_token("verification", "pending@example.com")
            .await,
        auth["auth_token"]["token"].as_str().unwrap().to_owned(),
        auth["refresh_token"]["token"].as_str().unwrap().to_owned(),
    ];
    #[derive(diesel::QueryableByName)]
    struct Dump {
        #[diesel(sql_type = diesel::sql_types::Text)]
        dump: String,
    }
    use diesel_async::{AsyncConnection as _, RunQueryDsl as _};
    let mut conn = diesel_async::AsyncPgConnection::establish(app.db.url())
        .await
        .unwrap();
    let mut dump = String::new();
    for table in [
        "email_outbox",
        "webhook_deliveries",
        "auth_tokens",
        "refresh_tokens",
        "email_verification_tokens",
        "password_reset_tokens",
        "email_change_requests",
        "users",
        "sites",
    ] {
        let rows: Vec<Dump> = diesel::sql_query(format!(
            "SELECT row_to_json(t)::text AS dump FROM {table} t"
        ))
        .load(&mut conn)
        .await
        .unwrap();
        dump.extend(rows.into_iter().map(|r| r.dump));
    }
    assert!(dump.contains("moved@example.com"), "the dump was read");
    for token in tokens {
        assert!(!dump.contains(&token), "a usable token in the dump");
    }
}
