//! Webhook delivery through the sweep endpoint, against a real receiver on 127.0.0.1.

use aegis_domain::webhook::signature;
use aegis_domain::webhook_delivery::WEBHOOK_LEASE_SECONDS as LEASE_SECONDS;
use aegis_domain::webhook_delivery::{WebhookOutbox, WebhookOutcome};
use aegis_postgres::{PgWebhookOutbox, PoolSettings, build_pool};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{T0, TestApp, request, site_body};

const SWEEP: &str = "/api/admin/deliver-pending-webhooks";

/// A site whose webhook points at `url`, and one verified user (so one `user.verified` queued).
async fn site_with_event(app: &TestApp, url: &str) -> Value {
    let mut body = site_body(&format!(
        "hook-{}.example.com",
        app.db.name().replace('_', "-")
    ));
    body["webhook_url"] = json!(url);
    let site = app.master("POST", "/api/sites", Some(body)).await.json();
    app.verified_user(&site, "hooked@example.com", "password-1")
        .await;
    site
}

async fn receiver(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(status).set_body_string("receiver says hi"))
        .mount(&server)
        .await;
    server
}

async fn sweep(app: &TestApp) -> Value {
    let reply = app.master("POST", SWEEP, None).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    reply.json()
}

fn report(
    attempted: u64,
    delivered: u64,
    retrying: u64,
    exhausted: u64,
    still_due: u64,
    pruned: u64,
) -> Value {
    json!({"attempted": attempted, "delivered": delivered, "retrying": retrying,
           "exhausted": exhausted, "still_due": still_due, "pruned": pruned})
}

fn outbox(app: &TestApp) -> PgWebhookOutbox {
    PgWebhookOutbox::new(build_pool(app.db.url(), PoolSettings::default()).unwrap())
}

#[actix_web::test]
async fn the_sweep_needs_the_master_key_and_reports_zeros_when_idle() {
    let app = TestApp::new().await;
    let site = app.create_site("idle.example.com").await;
    assert_eq!(sweep(&app).await, report(0, 0, 0, 0, 0, 0));
    app.send(request("POST", SWEEP))
        .await
        .assert_error(401, "Missing X-API-Key header");
    app.send(request("POST", SWEEP).insert_header(("X-API-Key", "nope")))
        .await
        .assert_error(401, "Invalid API key");
    app.send(
        request("POST", SWEEP)
            .insert_header(("X-Tenant-Api-Key", site["tenant_api_key"].as_str().unwrap())),
    )
    .await
    .assert_error(401, "Missing X-API-Key header");
}

#[actix_web::test]
async fn a_due_event_is_signed_delivered_and_logged() {
    let app = TestApp::new().await;
    let server = receiver(204).await;
    let site = site_with_event(&app, &format!("{}/hook", server.uri())).await;
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending' AND attempts = 0"
        )
        .await,
        1
    );

    assert_eq!(sweep(&app).await, report(1, 1, 0, 0, 0, 0));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    let body = String::from_utf8(r.body.clone()).unwrap();
    let header = |name: &str| r.headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("x-aegis-event"), "user.verified");
    assert_eq!(header("x-aegis-timestamp"), T0.to_string());
    assert_eq!(
        header("x-aegis-signature"),
        signature(site["webhook_secret"].as_str().unwrap(), T0, &body)
    );
    let payload: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(payload["event_type"], "user.verified");
    assert_eq!(payload["site_uuid"], site["uuid"]);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'delivered' AND attempts = 1 \
             AND last_status = 204 AND payload = '{}'",
            body.replace('\'', "''")
        ))
        .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM webhook_events e JOIN webhook_deliveries d USING (event_id) \
                   WHERE e.attempt = 1 AND e.success AND e.response_status = 204 AND e.uuid <> e.event_id")
            .await,
        1
    );
    // Delivered: never sent again.
    assert_eq!(sweep(&app).await, report(0, 0, 0, 0, 0, 0));
}

#[actix_web::test]
async fn failures_follow_the_schedule_with_fresh_timestamps_and_the_same_body() {
    let app = TestApp::new().await;
    let server = receiver(500).await;
    let site = site_with_event(&app, &format!("{}/hook", server.uri())).await;
    let secret = site["webhook_secret"].as_str().unwrap().to_owned();
    let waits = [30, 120, 600, 3_600, 21_600];
    for (i, wait) in waits.iter().enumerate() {
        assert_eq!(
            sweep(&app).await,
            report(1, 0, 1, 0, 0, 0),
            "attempt {}",
            i + 1
        );
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending' AND attempts = {} \
                 AND last_status = 500 AND last_error = 'receiver says hi' AND next_attempt_at = {}",
                i + 1,
                app.clock_now() + wait
            ))
            .await,
            1,
            "after attempt {}",
            i + 1
        );
        // Not due yet: the backoff holds.
        assert_eq!(sweep(&app).await["attempted"], json!(0));
        app.clock.advance(*wait);
    }
    assert_eq!(sweep(&app).await, report(1, 0, 0, 1, 0, 0));
    assert_eq!(app.count("SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'exhausted' AND attempts = 6").await, 1);
    app.clock.advance(100_000);
    assert_eq!(
        sweep(&app).await["attempted"],
        json!(0),
        "exhausted rows are never retried"
    );

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 6);
    let first_body = requests[0].body.clone();
    let mut last_ts = 0;
    for r in &requests {
        assert_eq!(
            r.body, first_body,
            "the body is byte-identical on every attempt"
        );
        let ts: i64 = r
            .headers
            .get("x-aegis-timestamp")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(ts > last_ts, "fresh, increasing timestamps");
        last_ts = ts;
        let body = String::from_utf8(r.body.clone()).unwrap();
        assert_eq!(
            r.headers
                .get("x-aegis-signature")
                .unwrap()
                .to_str()
                .unwrap(),
            signature(&secret, ts, &body)
        );
    }
    assert_eq!(
        app.count("SELECT count(DISTINCT attempt) AS n FROM webhook_events WHERE NOT success AND response_status = 500").await,
        6
    );
}

#[actix_web::test]
async fn redirects_are_failures_and_are_not_followed() {
    let app = TestApp::new().await;
    let server = MockServer::start().await;
    Mock::given(path("/hook"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("Location", format!("{}/elsewhere", server.uri())),
        )
        .mount(&server)
        .await;
    Mock::given(path("/elsewhere"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    site_with_event(&app, &format!("{}/hook", server.uri())).await;
    assert_eq!(sweep(&app).await, report(1, 0, 1, 0, 0, 0));
    let paths: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(paths, ["/hook"]);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM webhook_deliveries WHERE last_status = 302")
            .await,
        1
    );
}

#[actix_web::test]
async fn a_transport_error_costs_one_attempt_and_does_not_stop_the_sweep() {
    let app = TestApp::new().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    site_with_event(&app, &format!("http://127.0.0.1:{closed}/hook")).await;
    let server = receiver(200).await;
    let mut body = site_body("second-hook.example.com");
    body["webhook_url"] = json!(format!("{}/hook", server.uri()));
    let good = app.master("POST", "/api/sites", Some(body)).await.json();
    app.verified_user(&good, "other@example.com", "password-1")
        .await;

    assert_eq!(sweep(&app).await, report(2, 1, 1, 0, 0, 0));
    assert_eq!(
        app.count("SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending' AND attempts = 1 \
                   AND last_status IS NULL AND last_error <> ''")
            .await,
        1
    );
}

#[actix_web::test]
async fn leases_keep_claims_apart_and_release_dead_workers() {
    let app = TestApp::new().await;
    let server = receiver(200).await;
    site_with_event(&app, &format!("{}/hook", server.uri())).await;
    let dead_worker = outbox(&app);
    let claimed = dead_worker
        .claim_next(T0, T0 + LEASE_SECONDS)
        .await
        .unwrap()
        .expect("a due delivery");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM webhook_deliveries WHERE attempts = 0")
            .await,
        1,
        "a claim is not an attempt"
    );

    assert_eq!(
        sweep(&app).await["attempted"],
        json!(0),
        "a live lease is respected"
    );
    assert!(server.received_requests().await.unwrap().is_empty());

    app.clock.advance(LEASE_SECONDS + 1);
    assert_eq!(sweep(&app).await, report(1, 1, 0, 0, 0, 0));

    // The dead worker wakes up: its stale lease can overwrite nothing.
    let owned = dead_worker
        .record(
            &claimed,
            None,
            WebhookOutcome::Retry { at: T0 + 1 },
            Some(500),
            Some("late".into()),
            T0 + 400,
        )
        .await
        .unwrap();
    assert!(!owned);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'delivered' AND attempts = 1 AND last_error IS NULL").await,
        1
    );
}

#[actix_web::test]
async fn an_event_whose_site_lost_its_webhook_is_exhausted() {
    let app = TestApp::new().await;
    let server = receiver(200).await;
    let site = site_with_event(&app, &format!("{}/hook", server.uri())).await;
    app.master(
        "PUT",
        &format!("/api/sites/{}", site["uuid"].as_str().unwrap()),
        Some(json!({"webhook_url": null})),
    )
    .await;
    assert_eq!(sweep(&app).await, report(1, 0, 0, 1, 0, 0));
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'exhausted' \
                   AND last_error = 'site missing or webhook not configured'"
        )
        .await,
        1
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[actix_web::test]
async fn delivered_rows_are_pruned_after_thirty_days_and_exhausted_ones_kept() {
    let app = TestApp::new().await;
    let server = receiver(200).await;
    let site = site_with_event(&app, &format!("{}/hook", server.uri())).await;
    sweep(&app).await;
    app.sql(&format!(
        "INSERT INTO webhook_deliveries (event_id, site_uuid, event_type, payload, status, attempts, \
             next_attempt_at, created_at, updated_at) \
         VALUES ('0191e1a0-0000-7000-8000-0000000000e1', '{}', 'user.deleted', '{{}}', 'exhausted', 6, {T0}, {T0}, {T0})",
        site["uuid"].as_str().unwrap()
    ))
    .await;
    app.clock.advance(30 * 86_400 + 1);
    assert_eq!(sweep(&app).await, report(0, 0, 0, 0, 0, 1));
    assert_eq!(
        app.count("SELECT count(*) AS n FROM webhook_deliveries")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'exhausted'")
            .await,
        1
    );
}

/// A worker that dies mid-delivery holds only the row it claimed: the others go out at once, and
/// the claimed one after its 30 s lease (at least once).
#[actix_web::test]
async fn a_dead_worker_holds_back_only_the_delivery_it_claimed() {
    let app = TestApp::new().await;
    let server = receiver(200).await;
    let site = site_with_event(&app, &format!("{}/hook", server.uri())).await;
    for i in 0..3 {
        app.verified_user(&site, &format!("more{i}@example.com"), "password-1")
            .await;
    }
    let dead_worker = outbox(&app);
    let claimed = dead_worker
        .claim_next(T0, T0 + LEASE_SECONDS)
        .await
        .unwrap()
        .expect("a due delivery");
    assert_eq!(LEASE_SECONDS, 30);
    assert_eq!(sweep(&app).await, report(3, 3, 0, 0, 0, 0));
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending' \
             AND event_id = '{}' AND attempts = 0",
            claimed.event_id
        ))
        .await,
        1
    );
    app.clock.advance(LEASE_SECONDS + 1);
    assert_eq!(sweep(&app).await, report(1, 1, 0, 0, 0, 0));
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
}
