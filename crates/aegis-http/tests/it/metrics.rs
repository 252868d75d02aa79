//! Prometheus metrics on `METRICS_ADDR`, scraped over HTTP from the real binary after a few
//! requests: every family is there, with route templates (never raw paths) and plausible values.

use std::time::{Duration, Instant};

use aegis_test_support::DedicatedServer;
use serde_json::json;

use crate::service::{Service, free_port, signed_in_user};

/// The value of the sample whose line starts with `name` and contains every label of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[track_caller]
fn value(text: &str, name: &str, labels: &[&str]) -> f64 {
    sample(text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"))
}

pub(crate) async fn scrape(port: u16) -> String {
    let res = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
    );
    res.text().await.unwrap()
}

#[actix_web::test]
async fn metrics_are_served_on_their_own_address() {
    let server = DedicatedServer::start();
    let url = server.migrated_database("aegis").await;
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let service = Service::start(
        &url,
        &[
            ("MAIL_TRANSPORT", "none"),
            ("PASSWORD_HASH_MEMORY_KIB", "64"),
            ("PASSWORD_HASH_ITERATIONS", "1"),
            ("METRICS_ADDR", &metrics_addr),
        ],
    )
    .await;
    let (site, key, auth) =
        signed_in_user(&service, &url, "metrics.example.com", "m@example.com").await;
    let tenant = [("X-Tenant-Api-Key", key.as_str())];
    // With the login above, nine wrong passwords reach the per-account limit of the minute; the
    // next attempt is refused.
    let wrong = json!({"site_id": site, "email": "m@example.com", "password": "wrong-pass"});
    for _ in 0..9 {
        let answer = service
            .call("POST", "/api/auth/login", &tenant, Some(&wrong))
            .await;
        assert_eq!(answer.status, 401, "{}", answer.body);
    }
    let refused = service
        .call("POST", "/api/auth/login", &tenant, Some(&wrong))
        .await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    let site_path = format!("/api/sites/{site}");
    service
        .call(
            "GET",
            &site_path,
            &[("X-API-Key", crate::service::STRONG_KEY)],
            None,
        )
        .await;
    service.call("GET", "/no/such/path", &[], None).await;

    // The outbox refresh runs every few seconds: wait for it to see the verification email.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = scrape(metrics_port).await;
        if sample(&text, "aegis_outbox_backlog", &["kind=\"email\""]).is_some_and(|v| v >= 1.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "no email backlog seen:\n{text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    // HTTP: by route template, method and status.
    let login = ["route=\"/api/auth/login\"", "method=\"POST\""];
    assert_eq!(
        value(
            &text,
            "aegis_http_requests_total",
            &[login[0], login[1], "status=\"200\""]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "aegis_http_requests_total",
            &[login[0], login[1], "status=\"401\""]
        ),
        9.0
    );
    assert_eq!(
        value(
            &text,
            "aegis_http_requests_total",
            &[login[0], "status=\"429\""]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "aegis_http_requests_total",
            &[
                "route=\"/api/sites/{site_id}\"",
                "method=\"GET\"",
                "status=\"200\""
            ]
        ),
        1.0
    );
    assert!(!text.contains(&site), "a raw path leaked into a label");
    assert_eq!(
        value(
            &text,
            "aegis_http_requests_total",
            &["route=\"unmatched\"", "status=\"404\""]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "aegis_http_request_duration_seconds_count",
            &[login[0], "status=\"401\""]
        ),
        9.0
    );
    let all = value(
        &text,
        "aegis_http_request_duration_seconds_bucket",
        &[login[0], "status=\"401\"", "le=\"+Inf\""],
    );
    assert_eq!(all, 9.0);
    let fast = value(
        &text,
        "aegis_http_request_duration_seconds_bucket",
        &[login[0], "status=\"401\"", "le=\"0.001\""],
    );
    assert!(fast <= all);

    // Rate limits, by rule; the others present at zero.
    assert_eq!(
        value(
            &text,
            "aegis_ratelimit_rejections_total",
            &["rule=\"login\""]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "aegis_ratelimit_rejections_total",
            &["rule=\"register\""]
        ),
        0.0
    );

    // Password hashing: a registration and ten verifications ran, none is waiting or running now.
    assert!(value(&text, "aegis_password_hash_duration_seconds_count", &[]) >= 11.0);
    assert!(value(&text, "aegis_password_hash_duration_seconds_sum", &[]) > 0.0);
    assert_eq!(value(&text, "aegis_password_hash_jobs_waiting", &[]), 0.0);
    assert_eq!(value(&text, "aegis_password_hash_jobs_running", &[]), 0.0);

    // The outboxes: mail waits (no transport), no webhook does; nothing delivered yet.
    let backlog = value(&text, "aegis_outbox_backlog", &["kind=\"email\""]);
    assert!(backlog >= 1.0);
    assert_eq!(
        value(&text, "aegis_outbox_backlog", &["kind=\"webhook\""]),
        0.0
    );
    let age = value(
        &text,
        "aegis_outbox_oldest_age_seconds",
        &["kind=\"email\""],
    );
    assert!((0.0..120.0).contains(&age), "{age}");
    for kind in ["email", "webhook"] {
        for outcome in ["delivered", "retried", "exhausted"] {
            let labels = [format!("kind=\"{kind}\""), format!("outcome=\"{outcome}\"")];
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            assert_eq!(value(&text, "aegis_outbox_deliveries_total", &labels), 0.0);
        }
    }

    // The pool: the default size, and waits recorded around every checkout.
    assert_eq!(value(&text, "aegis_db_pool_max_connections", &[]), 10.0);
    let open = value(&text, "aegis_db_pool_connections", &[]);
    assert!((1.0..=10.0).contains(&open), "{open}");
    let in_use = value(&text, "aegis_db_pool_connections_in_use", &[]);
    assert!((0.0..=open).contains(&in_use));
    assert_eq!(value(&text, "aegis_db_pool_waiting", &[]), 0.0);
    assert!(value(&text, "aegis_db_pool_wait_seconds_count", &[]) >= 20.0);
    assert!(text.contains("aegis_db_pool_wait_seconds_bucket{le=\"0.001\"}"));

    // Build information.
    assert_eq!(
        value(&text, "aegis_build_info", &["version=\"unknown\""]),
        1.0
    );
    assert!(text.contains("# HELP aegis_http_requests_total"));

    // The token cache: listening, and the second check of a token is a hit without a pooled
    // connection.
    let bearer = format!("Bearer {auth}");
    let waits = value(&text, "aegis_db_pool_wait_seconds_count", &[]);
    let hits = value(&text, "aegis_token_cache_hits_total", &[]);
    assert_eq!(value(&text, "aegis_token_cache_bypassed", &[]), 0.0);
    for _ in 0..3 {
        let me = service
            .call(
                "GET",
                "/api/auth/me",
                &[("Authorization", bearer.as_str())],
                None,
            )
            .await;
        assert_eq!(me.status, 200, "{}", me.body);
    }
    let text = scrape(metrics_port).await;
    assert_eq!(
        value(&text, "aegis_token_cache_hits_total", &[]),
        hits + 2.0
    );
    assert!(value(&text, "aegis_token_cache_misses_total", &[]) >= 1.0);
    assert!(value(&text, "aegis_token_cache_entries", &[]) >= 1.0);
    assert!(text.contains("aegis_token_cache_bypassed_total"));
    assert!(text.contains("aegis_token_cache_evictions_total"));
    // One checkout for the miss; the background workers may take a few more meanwhile.
    assert!(value(&text, "aegis_db_pool_wait_seconds_count", &[]) >= waits + 1.0);

    // The API does not serve the metrics, nor does the metrics listener serve the API.
    let api = service.call("GET", "/metrics", &[], None).await;
    assert_eq!(api.status, 404);
    let other = reqwest::get(format!("http://127.0.0.1:{metrics_port}/api/health"))
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 404);
}
