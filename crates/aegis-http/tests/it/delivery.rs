//! The email outbox worker: delivery to the development outbox, retries, leases.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aegis_domain::delivery::EmailDelivery;
use aegis_domain::mail::{MailError, Mailer, OutgoingEmail};
use aegis_mailgun::FileOutbox;
use aegis_postgres::{PgEmailOutbox, PoolSettings, build_pool};
use async_trait::async_trait;
use serde_json::json;

use crate::support::{T0, TestApp};

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
    let pool = build_pool(app.db.url(), PoolSettings::default()).unwrap();
    EmailDelivery::new(
        Arc::new(PgEmailOutbox::new(pool, crate::support::sealing_keys())),
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
    assert!(eml.contains("From: Example Team <noreply@example.com>\r\n"));
    assert!(eml.contains("Subject: Verify your email for Example\r\n"));
    let start = eml.find("verify-email?token=").unwrap() + "verify-email?token=".len();
    let token: String = eml[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();

    // Delivered rows keep no body: the token is not left lying in the database.
    assert_eq!(
        app.count("SELECT count(*) AS n FROM email_outbox WHERE status = 'delivered' AND text_body = '' AND html_body = '' AND attempts = 1").await,
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
            "SELECT count(*) AS n FROM email_outbox WHERE status = 'pending' AND attempts = 1 \
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
