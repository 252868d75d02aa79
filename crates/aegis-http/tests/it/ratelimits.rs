//! Rate limits (decisions 5, 11, 22, 23) and the per-account bound on failed logins.

use actix_web::test::TestRequest;
use aegis_http::client_ip::{Cidr, ClientIpPolicy};
use serde_json::{Value, json};

use crate::support::{T0, TestApp, from_peer, request, statuses, tenant_request};

fn login(site: &Value, email: &str, password: &str) -> TestRequest {
    tenant_request(
        site,
        "/api/auth/login",
        json!({"site_id": site["uuid"], "email": email, "password": password}),
    )
}

#[actix_web::test]
async fn login_is_limited_per_account_with_headers_on_every_answer() {
    let app = TestApp::with_limits(ClientIpPolicy::default()).await;
    let site = app.create_site("rl.example.com").await;
    app.verified_user(&site, "victim@example.com", "password-1")
        .await;

    let first = app.send(login(&site, "victim@example.com", "wrong")).await;
    assert_eq!(first.status.as_u16(), 401);
    assert_eq!(first.header("x-ratelimit-limit"), "10");
    assert_eq!(first.header("x-ratelimit-remaining"), "9");
    assert_eq!(first.header("x-ratelimit-reset"), (T0 + 60).to_string());
    assert_eq!(first.header("retry-after"), "60");

    // Every spelling of the address is the same account (decision 30): case, a Unicode or an
    // ASCII domain, composed or not.
    let spellings = [
        "VICTIM@example.com",
        "victim@EXAMPLE.COM",
        "Victim@Example.Com",
        "victim@ｅｘａｍｐｌｅ.com",
    ];
    let rest = statuses(
        &app,
        (0..20)
            .map(|i| login(&site, spellings[i % spellings.len()], "wrong"))
            .collect(),
    )
    .await;
    assert_eq!(rest[..9], [401; 9]);
    assert!(rest[9..].iter().all(|s| *s == 429), "{rest:?}");
    let blocked = app
        .send(login(&site, "victim@example.com", "password-1"))
        .await;
    assert_eq!(blocked.status.as_u16(), 429);
    assert_eq!(
        blocked.json(),
        json!({"error": "Too many requests: 10 per 1 minute"})
    );
    assert_eq!(blocked.header("x-ratelimit-remaining"), "0");
    assert_eq!(blocked.header("retry-after"), "60");

    // Another account on the same site is not blocked.
    app.verified_user(&site, "bystander@example.com", "password-1")
        .await;
    let other = app
        .send(login(&site, "bystander@example.com", "password-1"))
        .await;
    assert_eq!(other.status.as_u16(), 200);
    // The window passes.
    app.clock.advance(60);
    assert_eq!(
        app.send(login(&site, "victim@example.com", "password-1"))
            .await
            .status
            .as_u16(),
        200
    );
}

#[actix_web::test]
async fn limits_run_before_the_tenant_gate() {
    let app = TestApp::with_limits(ClientIpPolicy::default()).await;
    let site = app.create_site("gate.example.com").await;
    let body = json!({"site_id": site["uuid"], "email": "new@example.com"});
    let wrong = || {
        request("POST", "/api/auth/register")
            .insert_header(("X-Tenant-Api-Key", "wrong"))
            .set_json(body.clone())
    };
    assert_eq!(
        statuses(&app, (0..5).map(|_| wrong()).collect()).await,
        [401; 5]
    );
    let reply = app
        .send(tenant_request(&site, "/api/auth/register", body.clone()))
        .await;
    assert_eq!(
        reply.status.as_u16(),
        429,
        "wrong-key requests were charged"
    );
    assert_eq!(
        reply.json(),
        json!({"error": "Too many requests: 5 per 1 minute"})
    );
}

#[actix_web::test]
async fn invite_user_charges_only_answers_that_are_not_401() {
    let app = TestApp::with_limits(ClientIpPolicy::default()).await;
    let site = app.create_site("inv.example.com").await;
    let body = json!({"site_id": site["uuid"], "email": "guest@example.com"});
    let wrong = || {
        request("POST", "/api/auth/invite-user")
            .insert_header(("X-Tenant-Api-Key", "wrong"))
            .set_json(body.clone())
    };
    assert_eq!(
        statuses(&app, (0..5).map(|_| wrong()).collect()).await,
        [401; 5]
    );
    let reply = app
        .send(tenant_request(&site, "/api/auth/invite-user", body.clone()))
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text());
    assert_eq!(reply.header("x-ratelimit-limit"), "3");
    assert_eq!(reply.header("x-ratelimit-remaining"), "2");
    let more = statuses(
        &app,
        (0..4)
            .map(|_| tenant_request(&site, "/api/auth/invite-user", body.clone()))
            .collect(),
    )
    .await;
    assert_eq!(more, [201, 201, 429, 429]);
}

#[actix_web::test]
async fn password_reset_is_limited_per_account() {
    let app = TestApp::with_limits(ClientIpPolicy::default()).await;
    let site = app.create_site("reset.example.com").await;
    let body = json!({"site_id": site["uuid"], "email": "who@example.com"});
    let replies = statuses(
        &app,
        (0..6)
            .map(|_| tenant_request(&site, "/api/auth/request-password-reset", body.clone()))
            .collect(),
    )
    .await;
    assert_eq!(replies, [200, 200, 200, 429, 429, 429]);
}

#[actix_web::test]
async fn the_ip_limit_uses_the_socket_peer_and_ignores_invented_headers() {
    let policy = ClientIpPolicy {
        header: Some("CF-Connecting-IP".into()),
        proxies: vec![Cidr::parse("10.0.0.0/8").unwrap()],
    };
    let app = TestApp::with_limits(policy).await;
    let site = app.create_site("ip.example.com").await;
    let reset = |i: usize| {
        tenant_request(
            &site,
            "/api/auth/request-password-reset",
            json!({"site_id": site["uuid"], "email": format!("u{i}@example.com")}),
        )
    };
    // An untrusted peer inventing a different CF-Connecting-IP and X-Forwarded-For on each request
    // stays in its own bucket: 20 per hour.
    let spoofed = statuses(
        &app,
        (0..25)
            .map(|i| {
                from_peer("203.0.113.5", reset(i))
                    .insert_header(("CF-Connecting-IP", format!("198.51.100.{i}")))
                    .insert_header(("X-Forwarded-For", format!("192.0.2.{i}")))
            })
            .collect(),
    )
    .await;
    let first_429 = spoofed.iter().position(|s| *s == 429).unwrap();
    assert_eq!(first_429, 20, "{spoofed:?}");
    // Another address is not blocked.
    assert_eq!(
        statuses(&app, vec![from_peer("203.0.113.6", reset(99))]).await,
        [200]
    );
    // Behind a trusted proxy, its header names the client.
    let proxied = statuses(
        &app,
        (100..125)
            .map(|i| {
                from_peer("10.0.0.2", reset(i))
                    .insert_header(("CF-Connecting-IP", format!("198.51.100.{i}")))
            })
            .collect(),
    )
    .await;
    assert!(proxied.iter().all(|s| *s == 200), "{proxied:?}");
}

#[actix_web::test]
async fn a_configured_header_is_believed_only_from_trusted_proxies_and_is_the_only_source() {
    // Without TRUSTED_PROXIES the header is believed from nobody (production refuses to start so).
    let app = TestApp::with_limits(ClientIpPolicy {
        header: Some("CF-Connecting-IP".into()),
        proxies: Vec::new(),
    })
    .await;
    let site = app.create_site("cf.example.com").await;
    let reset = |i: usize| {
        tenant_request(
            &site,
            "/api/auth/request-password-reset",
            json!({"site_id": site["uuid"], "email": format!("u{i}@example.com")}),
        )
    };
    let invented = statuses(
        &app,
        (0..21)
            .map(|i| {
                from_peer("203.0.113.9", reset(i))
                    .insert_header(("CF-Connecting-IP", format!("198.51.100.{i}")))
            })
            .collect(),
    )
    .await;
    assert_eq!(invented[20], 429, "{invented:?}");

    // Behind a trusted proxy the header is the only source: X-Forwarded-For is ignored, and a
    // request without the header counts against the proxy itself.
    let app = TestApp::with_limits(ClientIpPolicy {
        header: Some("CF-Connecting-IP".into()),
        proxies: vec![Cidr::parse("10.0.0.0/8").unwrap()],
    })
    .await;
    let site = app.create_site("cf2.example.com").await;
    let reset = |i: usize| {
        tenant_request(
            &site,
            "/api/auth/request-password-reset",
            json!({"site_id": site["uuid"], "email": format!("u{i}@example.com")}),
        )
    };
    let forwarded = statuses(
        &app,
        (0..21)
            .map(|i| {
                from_peer("10.0.0.2", reset(i))
                    .insert_header(("X-Forwarded-For", format!("198.51.100.{i}")))
            })
            .collect(),
    )
    .await;
    assert_eq!(forwarded[20], 429, "{forwarded:?}");
    let named =
        from_peer("10.0.0.2", reset(50)).insert_header(("CF-Connecting-IP", "198.51.100.8"));
    assert_eq!(statuses(&app, vec![named]).await, [200]);
}

#[actix_web::test]
async fn instances_on_one_database_share_their_counters() {
    let a = TestApp::with_limits(ClientIpPolicy::default()).await;
    let b = a.sibling().await;
    let site = a.create_site("shared.example.com").await;
    let body = json!({"site_id": site["uuid"], "email": "x@example.com"});
    let mut seen = Vec::new();
    for i in 0..6 {
        let app = if i % 2 == 0 { &a } else { &b };
        seen.push(
            app.send(tenant_request(&site, "/api/auth/register", body.clone()))
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(seen, [201, 201, 201, 201, 201, 429]);
}

#[actix_web::test]
async fn failed_logins_per_account_are_bounded_per_hour_and_reset_by_success() {
    let app = TestApp::with_limits(ClientIpPolicy::default()).await;
    let site = app.create_site("fail.example.com").await;
    app.verified_user(&site, "target@example.com", "password-1")
        .await;
    let failures = "SELECT count(*) AS n FROM rate_limit_counters WHERE bucket LIKE 'login-fail:%' AND hits > 0";
    // A success clears earlier failures.
    assert_eq!(
        statuses(
            &app,
            (0..3)
                .map(|_| login(&site, "target@example.com", "guess"))
                .collect()
        )
        .await,
        [401; 3]
    );
    assert_eq!(app.count(failures).await, 1);
    assert_eq!(
        app.send(login(&site, "target@example.com", "password-1"))
            .await
            .status
            .as_u16(),
        200
    );
    assert_eq!(app.count(failures).await, 0);
    app.clock.advance(60);
    for minute in 0..10 {
        let replies = statuses(
            &app,
            (0..10)
                .map(|_| login(&site, "target@example.com", "guess"))
                .collect(),
        )
        .await;
        assert_eq!(replies, [401; 10], "minute {minute}");
        app.clock.advance(60);
    }
    // A hundred failures this hour: even the right password waits.
    let blocked = app
        .send(login(&site, "target@example.com", "password-1"))
        .await;
    assert_eq!(blocked.status.as_u16(), 429);
    assert_eq!(
        blocked.json(),
        json!({"error": "Too many requests: 100 per 1 hour"})
    );
    // Time-bounded: the next hour the owner gets in, and success clears the count.
    app.clock.set(T0 + 3_600);
    assert_eq!(
        app.send(login(&site, "target@example.com", "password-1"))
            .await
            .status
            .as_u16(),
        200
    );
    assert_eq!(app.count(failures).await, 0);
    assert_eq!(
        app.send(login(&site, "target@example.com", "guess"))
            .await
            .status
            .as_u16(),
        401
    );
}

#[actix_web::test]
async fn preflights_are_never_limited() {
    let app = TestApp::with_limits(ClientIpPolicy::default()).await;
    let site = app.create_site("pre.example.com").await;
    for _ in 0..12 {
        app.send(login(&site, "p@example.com", "x")).await;
    }
    let preflight = app
        .send(
            request("OPTIONS", "/api/auth/login")
                .insert_header(("Origin", "http://test.example.com"))
                .insert_header(("Access-Control-Request-Method", "POST")),
        )
        .await;
    assert_eq!(preflight.status.as_u16(), 200);
}
