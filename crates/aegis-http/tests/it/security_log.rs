//! The security event log: one WARN line per event with an `event` field, naming the site, the
//! client address and a digest of the account, and never a token, a password or an address.

use std::io::Write;
use std::sync::{Arc, Mutex};

use aegis_http::client_ip::ClientIpPolicy;
use serde_json::{Value, json};

use crate::support::{TestApp, request};

/// Everything logged on this thread while the guard lives, as JSON lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn start() -> (Self, tracing::subscriber::DefaultGuard) {
        // tracing decides once per call site, for the whole process, whether any subscriber
        // listens, and asks the subscriber of the thread that first reaches it. Another test's
        // thread, with none, would have this test's events dropped on every thread. A global
        // subscriber that listens to everything captured here (and records nothing) keeps those
        // call sites open; the rebuild after installing this thread's own re-asks the call sites
        // decided before.
        static LISTEN_EVERYWHERE: std::sync::Once = std::sync::Once::new();
        LISTEN_EVERYWHERE.call_once(|| {
            use tracing_subscriber::layer::SubscriberExt as _;
            let _ = tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(tracing::level_filters::LevelFilter::INFO),
            );
        });
        let captured = Self::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        tracing::callsite::rebuild_interest_cache();
        (captured, guard)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn events(&self, event: &str) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["target"] == "aegis::security" && l["fields"]["event"] == event)
            .collect()
    }
}

#[actix_web::test]
async fn each_security_event_is_one_warn_line_without_secrets() {
    let app = TestApp::with_limits(ClientIpPolicy::default()).await;
    let site = app.create_site("log.example.com").await;
    let site_id = site["uuid"].as_str().unwrap().to_owned();
    app.verified_user(&site, "victim@example.com", "password-1")
        .await;
    let session = app.login(&site, "victim@example.com", "password-1").await;
    let refresh = session["refresh_token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let auth = session["auth_token"]["token"].as_str().unwrap().to_owned();
    let (log, _guard) = Captured::start();
    let from =
        |req: actix_web::test::TestRequest| req.peer_addr("198.51.100.23:5555".parse().unwrap());
    let login = |password: &str| {
        from(
            request("POST", "/api/auth/login")
                .insert_header(("X-Tenant-Api-Key", site["tenant_api_key"].as_str().unwrap()))
                .set_json(json!({"site_id": site_id.to_uppercase(), "email": "Victim@example.com", "password": password})),
        )
    };

    // A failed login, then the per-account limit.
    app.clock.advance(60);
    for _ in 0..11 {
        app.send(login("wrong-password")).await;
    }
    let failed = log.events("login_failed");
    assert_eq!(failed.len(), 10);
    let line = &failed[0];
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["fields"]["site"], site_id.as_str());
    assert_eq!(line["fields"]["client"], "198.51.100.23");
    let account = line["fields"]["account"].as_str().unwrap().to_owned();
    assert_eq!(account.len(), 32);
    let limited = log.events("rate_limited");
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0]["fields"]["detail"], "per-account limit");
    assert_eq!(limited[0]["fields"]["account"], account.as_str());

    // The failed-login bound: blocked once, when it is reached.
    for _ in 0..9 {
        app.clock.advance(60);
        for _ in 0..10 {
            app.send(login("wrong-password")).await;
        }
    }
    let blocked = log.events("account_blocked");
    assert_eq!(blocked.len(), 1, "{}", log.text());
    assert_eq!(blocked[0]["fields"]["account"], account.as_str());

    // Operator and tenant keys.
    app.send(from(
        request("GET", "/api/sites").insert_header(("X-API-Key", "guess")),
    ))
    .await;
    app.send(from(request("GET", "/api/sites"))).await;
    let master = log.events("master_key_rejected");
    assert_eq!(master.len(), 2);
    assert_eq!(master[0]["fields"]["detail"], "mismatch");
    assert_eq!(master[1]["fields"]["client"], "198.51.100.23");
    app.send(from(
        request("POST", "/api/auth/verify-email")
            .insert_header(("X-Tenant-Api-Key", "guess"))
            .set_json(json!({"site_id": site_id, "token": "t"})),
    ))
    .await;
    let tenant = log.events("tenant_key_rejected");
    assert_eq!(tenant.len(), 1);
    assert_eq!(tenant[0]["fields"]["site"], site_id.as_str());
    assert_eq!(tenant[0]["fields"]["detail"], "wrong key");

    // A wrong current password on a bearer route.
    app.bearer(
        "POST",
        "/api/auth/change-password",
        &auth,
        Some(json!({"old_password": "nope-nope", "new_password": "password-2"})),
    )
    .await;
    assert_eq!(log.events("password_check_failed").len(), 1);

    // Refresh-token reuse after the grace period.
    let use_refresh =
        || request("POST", "/api/auth/refresh").set_json(json!({"refresh_token": refresh}));
    assert_eq!(app.send(use_refresh()).await.status.as_u16(), 200);
    app.clock.advance(31);
    assert_eq!(app.send(use_refresh()).await.status.as_u16(), 403);
    let reuse = log.events("refresh_token_reuse");
    assert_eq!(reuse.len(), 1);
    assert_eq!(reuse[0]["fields"]["account"], account.as_str());

    // Nothing secret anywhere in the log, in any case.
    let text = log.text().to_lowercase();
    for secret in [
        "victim@",
        "victim",
        "example.com",
        "wrong-password",
        "nope-nope",
        refresh.as_str(),
        auth.as_str(),
        site["tenant_api_key"].as_str().unwrap(),
    ] {
        assert!(!text.contains(&secret.to_lowercase()), "{secret} logged");
    }
}
