//! PostgreSQL stops under load and comes back, for the real binary on a server of its own: every
//! request gets the 503 at once, a bearer never a 401 (nor a 200 from the token cache, which is
//! bypassed once its listener loses the database); the log says once that the database is
//! unreachable, summarises every 10 s, and says once that it is back; service resumes without a
//! restart.

use std::time::{Duration, Instant};

use aegis_test_support::DedicatedServer;
use serde_json::json;

use crate::service::{STRONG_KEY, Service, level, message, signed_in_user};

#[actix_web::test]
async fn an_outage_is_answered_503_logged_once_and_ridden_out() {
    let mut server = DedicatedServer::start();
    let url = server.migrated_database("aegis").await;
    let metrics_port = crate::service::free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut service = Service::start(
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
        signed_in_user(&service, &url, "outage.example.com", "o@example.com").await;
    let bearer = format!("Bearer {auth}");
    let me = [("Authorization", bearer.as_str())];
    let answer = service.call("GET", "/api/auth/me", &me, None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    server.stop();
    let outage = Instant::now();
    let login = json!({"site_id": site, "email": "o@example.com", "password": "password-1"});
    let mut answers = 0;
    let mut slowest = Duration::ZERO;
    // Two seconds of requests as fast as they come, then one every half second until the outage
    // has lasted long enough for a summary line.
    while outage.elapsed() < Duration::from_secs(11) {
        let started = Instant::now();
        let replies = futures_util::future::join4(
            service.call("GET", "/api/auth/me", &me, None),
            service.call("GET", "/api/sites", &[("X-API-Key", STRONG_KEY)], None),
            service.call(
                "POST",
                "/api/auth/login",
                &[("X-Tenant-Api-Key", key.as_str())],
                Some(&login),
            ),
            service.call(
                "GET",
                "/api/sites/by-domain?domain=outage.example.com",
                &[],
                None,
            ),
        )
        .await;
        slowest = slowest.max(started.elapsed());
        for reply in [replies.0, replies.1, replies.2, replies.3] {
            assert_eq!(reply.status, 503, "{}", reply.body);
            assert_eq!(
                reply.body,
                "{\"error\":\"Service temporarily unavailable\"}\n"
            );
            assert_eq!(reply.retry_after.as_deref(), Some("1"));
            answers += 1;
        }
        if outage.elapsed() > Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert!(answers > 40, "{answers}");
    assert!(
        slowest < Duration::from_secs(1),
        "four 503s took {slowest:?}"
    );

    server.restart();
    let back = Instant::now();
    let recovered = loop {
        let reply = service.call("GET", "/api/auth/me", &me, None).await;
        if reply.status == 200 {
            break back.elapsed();
        }
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "service did not resume"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!("outage: {answers} answers of 503; first success {recovered:?} after the restart");
    assert!(recovered < Duration::from_secs(2), "{recovered:?}");
    // The token cache listens again soon after (its reconnection backs off to 2 s at most).
    let bypassed = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("aegis_token_cache_bypassed "))
            .map(str::to_owned)
    };
    loop {
        let text = crate::metrics::scrape(metrics_port).await;
        if bypassed(&text).as_deref() == Some("0") {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "the token cache did not listen again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    service.signal("TERM");
    service.wait(Duration::from_secs(30));
    let log = service.log();
    let count = |text: &str| log.iter().filter(|l| message(l).starts_with(text)).count();
    assert_eq!(count("database unreachable"), 1, "{log:#?}");
    assert_eq!(count("database still unreachable"), 1, "{log:#?}");
    assert_eq!(count("database reachable again"), 1, "{log:#?}");
    // The token cache's listener says once that it lost its connection (the cache is bypassed,
    // so the bearer checks above got the 503 too) and once that it listens again.
    assert_eq!(
        count("token cache listener lost its connection"),
        1,
        "{log:#?}"
    );
    assert_eq!(count("token cache listening again"), 1, "{log:#?}");
    // From the outage on, nothing else is logged above INFO: no line per request or per worker
    // pass.
    let start = log
        .iter()
        .position(|l| message(l).starts_with("database unreachable"))
        .unwrap();
    let loud: Vec<(&str, &str)> = log[start..]
        .iter()
        .filter(|l| matches!(level(l), "WARN" | "ERROR"))
        .filter(|l| !message(l).starts_with("token cache listener lost its connection"))
        .map(|l| (level(l), message(l)))
        .collect();
    assert_eq!(
        loud,
        [
            (
                "ERROR",
                "database unreachable: answering 503 until it is back"
            ),
            ("WARN", "database still unreachable")
        ]
    );
    let summary = log
        .iter()
        .find(|l| message(l) == "database still unreachable")
        .unwrap();
    assert!(
        summary["fields"]["refused_since_last_report"]
            .as_u64()
            .unwrap()
            > 0
    );
}
