//! Limits an attacker cannot step around: every spelling of a site is one site, an IPv6 client is
//! its /64, a stranger cannot lock an owner out, and the bearer routes that check a password are
//! limited too.

use aegis_http::client_ip::ClientIpPolicy;
use serde_json::{Value, json};

use crate::support::{TestApp, from_peer, request, statuses, tenant_request};

/// Every spelling of the site's UUID the tenant gate accepts.
fn spellings(site: &Value) -> Vec<String> {
    let id = site["uuid"].as_str().unwrap();
    vec![
        id.to_owned(),
        id.to_uppercase(),
        id.replace('-', ""),
        format!("{{{id}}}"),
        format!("{{{}}}", id.to_uppercase()),
        id.replace('-', "").to_uppercase(),
    ]
}

#[actix_web::test]
async fn respelling_the_site_id_never_buys_a_fresh_counter() {
    let app = TestApp::with_limits(ClientIpPolicy::default()).await;
    let site = app.create_site("spell.example.com").await;
    app.verified_user(&site, "victim@example.com", "password-1")
        .await;
    let ids = spellings(&site);
    // The gate accepts every spelling.
    for id in &ids {
        let reply = app
            .send(tenant_request(
                &site,
                "/api/auth/check-verification-token",
                json!({"site_id": id, "token": "x"}),
            ))
            .await;
        assert_eq!(reply.status.as_u16(), 400, "{id}: {}", reply.text());
    }

    // Login: 10 per minute per account, whichever way the site and address are written.
    let logins = statuses(
        &app,
        (0..12)
            .map(|i| {
                let email = if i % 2 == 0 {
                    "victim@example.com"
                } else {
                    "VICTIM@Example.COM"
                };
                tenant_request(
                    &site,
                    "/api/auth/login",
                    json!({"site_id": ids[i % ids.len()], "email": email, "password": "guess"}),
                )
            })
            .collect(),
    )
    .await;
    assert_eq!(logins[..10], [401; 10], "{logins:?}");
    assert_eq!(logins[10..], [429; 2], "{logins:?}");

    // Register: 5 per minute per account.
    let registers = statuses(
        &app,
        (0..7)
            .map(|i| {
                tenant_request(
                    &site,
                    "/api/auth/register",
                    json!({"site_id": ids[i % ids.len()], "email": "new@example.com"}),
                )
            })
            .collect(),
    )
    .await;
    assert_eq!(registers, [201, 201, 201, 201, 201, 429, 429]);

    // Password reset and invite: 3 per 15 minutes per account.
    for path in ["/api/auth/request-password-reset", "/api/auth/invite-user"] {
        let replies = statuses(
            &app,
            (0..5)
                .map(|i| {
                    tenant_request(
                        &site,
                        path,
                        json!({"site_id": ids[(i + 1) % ids.len()], "email": "guest@example.com"}),
                    )
                })
                .collect(),
        )
        .await;
        assert_eq!(replies[3..], [429, 429], "{path}: {replies:?}");
    }

    // No bucket holds raw input or an address.
    let leaks = app
        .count(
            "SELECT count(*) AS n FROM rate_limit_counters \
             WHERE bucket ILIKE '%example%' OR bucket LIKE '%{%' OR length(bucket) > 128",
        )
        .await;
    assert_eq!(leaks, 0);
}

#[actix_web::test]
async fn garbage_site_ids_share_one_bucket_and_long_input_never_reaches_a_key() {
    let app = TestApp::with_limits(ClientIpPolicy::default()).await;
    let site = app.create_site("junk.example.com").await;
    let replies = statuses(
        &app,
        (0..7)
            .map(|i| {
                tenant_request(&site,
                    "/api/auth/register",
                    json!({"site_id": format!("{}{i}", "x".repeat(10_000)), "email": "a@example.com"}),
                )
            })
            .collect(),
    )
    .await;
    assert_eq!(replies, [401, 401, 401, 401, 401, 429, 429]);
    let longest = app
        .count("SELECT coalesce(max(length(bucket)), 0)::bigint AS n FROM rate_limit_counters")
        .await;
    assert!(longest <= 128, "{longest}");
}

#[actix_web::test]
async fn an_ipv6_client_is_limited_per_64() {
    let app = TestApp::with_limits(ClientIpPolicy::default()).await;
    let site = app.create_site("v6.example.com").await;
    let reset = |i: usize| {
        tenant_request(
            &site,
            "/api/auth/request-password-reset",
            json!({"site_id": site["uuid"], "email": format!("u{i}@example.com")}),
        )
    };
    let rotating = statuses(
        &app,
        (0..22)
            .map(|i| from_peer(&format!("2001:db8:1:2:{i:x}::{i:x}"), reset(i)))
            .collect(),
    )
    .await;
    assert_eq!(
        rotating.iter().position(|s| *s == 429),
        Some(20),
        "{rotating:?}"
    );
    // The next /64 is another client.
    assert_eq!(
        statuses(&app, vec![from_peer("2001:db8:1:3::1", reset(99))]).await,
        [200]
    );
}

#[actix_web::test]
async fn a_stranger_cannot_lock_the_owner_out_from_the_owners_network() {
    let app = TestApp::with_limits(ClientIpPolicy::default()).await;
    let site = app.create_site("lock.example.com").await;
    app.verified_user(&site, "owner@example.com", "password-1")
        .await;
    let login = |ip: &str, password: &str| {
        from_peer(
            ip,
            tenant_request(
                &site,
                "/api/auth/login",
                json!({"site_id": site["uuid"], "email": "owner@example.com", "password": password}),
            ),
        )
    };
    // A hundred failures from the attacker's network this hour, within the per-minute limits.
    for _ in 0..10 {
        let replies = statuses(
            &app,
            (0..10).map(|_| login("203.0.113.66", "guess")).collect(),
        )
        .await;
        assert_eq!(replies, [401; 10]);
        app.clock.advance(60);
    }
    let attacker = app.send(login("203.0.113.66", "password-1")).await;
    assert_eq!(attacker.status.as_u16(), 429);
    assert_eq!(
        attacker.json(),
        json!({"error": "Too many requests: 100 per 1 hour"})
    );
    // The owner, elsewhere, gets in.
    let owner = app.send(login("198.51.100.7", "password-1")).await;
    assert_eq!(owner.status.as_u16(), 200, "{}", owner.text());
}

#[actix_web::test]
async fn bearer_password_checks_are_limited_and_count_as_failed_logins() {
    let app = TestApp::with_limits(ClientIpPolicy::default()).await;
    let site = app.create_site("bearer.example.com").await;
    let token = app.signed_in(&site, "user@example.com", "password-1").await;
    let change = |old: &str| {
        request("POST", "/api/auth/change-password")
            .insert_header(("Authorization", format!("Bearer {token}")))
            .set_json(json!({"old_password": old, "new_password": "password-2"}))
    };
    let first = app.send(change("wrong-1")).await;
    first.assert_error(400, "Incorrect password");
    assert_eq!(first.header("x-ratelimit-limit"), "10");
    assert_eq!(first.header("x-ratelimit-remaining"), "9");
    let replies = statuses(&app, (0..10).map(|_| change("wrong")).collect()).await;
    assert_eq!(replies[..9], [400; 9]);
    assert_eq!(replies[9], 429);
    // Its wrong passwords counted toward the failed-login bound of the account.
    assert_eq!(
        app.count(
            "SELECT coalesce(sum(hits), 0)::bigint AS n FROM rate_limit_counters \
             WHERE bucket LIKE 'login-fail:%'"
        )
        .await,
        10
    );

    // request-email-change: the same per-user limit, so "Email already in use" cannot be used to
    // list a site's addresses.
    app.verified_user(&site, "taken@example.com", "password-1")
        .await;
    let probe = |i: usize| {
        request("POST", "/api/auth/request-email-change")
            .insert_header(("Authorization", format!("Bearer {token}")))
            .set_json(
                json!({"new_email": format!("probe{i}@example.com"), "password": "password-1"}),
            )
    };
    let probes = statuses(&app, (0..11).map(probe).collect()).await;
    assert_eq!(probes[..10], [200; 10], "{probes:?}");
    assert_eq!(probes[10], 429);
    let reply = app.send(probe(99)).await;
    assert_eq!(reply.header("x-ratelimit-limit"), "10");
    assert_eq!(reply.header("x-ratelimit-remaining"), "0");
}

#[actix_web::test]
async fn the_failure_bound_stops_bearer_password_checks_too() {
    let app = TestApp::with_limits(ClientIpPolicy::default()).await;
    let site = app.create_site("bound.example.com").await;
    let token = app.signed_in(&site, "user@example.com", "password-1").await;
    // Reach the bound with failed logins from this (in-process, addressless) client, in the
    // minutes after the one the sign-in used.
    app.clock.advance(60);
    for _ in 0..10 {
        for _ in 0..10 {
            app.tenant(
                "/api/auth/login",
                &site,
                json!({"site_id": site["uuid"], "email": "user@example.com", "password": "guess"}),
            )
            .await;
        }
        app.clock.advance(60);
    }
    let reply = app
        .bearer(
            "POST",
            "/api/auth/change-password",
            &token,
            Some(json!({"old_password": "password-1", "new_password": "password-2"})),
        )
        .await;
    reply.assert_error(429, "Too many requests: 100 per 1 hour");
}

#[actix_web::test]
async fn registering_a_taken_address_answers_no_sooner_than_a_new_one() {
    use aegis_domain::service::accounts::Registration;
    use std::time::{Duration, Instant};
    let app = TestApp::new().await;
    let reply = app
        .master(
            "POST",
            "/api/sites",
            Some(json!({"name": "Open", "domain": "open.example.com",
                "frontend_url": "http://test.example.com", "email_from": "noreply@example.com",
                "email_from_name": "Open", "allow_self_registration": true})),
        )
        .await;
    let site = reply.json();
    for (i, password) in [Some("password-1"), None].into_iter().enumerate() {
        let body = |email: String| match password {
            Some(pw) => json!({"site_id": site["uuid"], "email": email, "password": pw}),
            None => json!({"site_id": site["uuid"], "email": email}),
        };
        let new = app
            .tenant(
                "/api/auth/register",
                &site,
                body(format!("new{i}@example.com")),
            )
            .await;
        assert_eq!(new.status.as_u16(), 201, "{}", new.text());
        assert!(
            app.state
                .registrations
                .median(&(Registration::Created, password.is_some()))
                .is_some()
        );
        // Say new registrations of this kind have lately taken 300 ms.
        for _ in 0..20 {
            app.state.registrations.record(
                (Registration::Created, password.is_some()),
                Duration::from_millis(300),
            );
        }
        let started = Instant::now();
        let taken = app
            .tenant(
                "/api/auth/register",
                &site,
                body(format!("new{i}@example.com")),
            )
            .await;
        // Held to about 300 ms (the pacer may ask a few milliseconds less, for the timer's
        // lateness).
        assert!(
            started.elapsed() >= Duration::from_millis(280),
            "{password:?}: {:?}",
            started.elapsed()
        );
        assert_eq!((taken.status, taken.text()), (new.status, new.text()));
    }
}

#[actix_web::test]
async fn a_reset_request_claimed_by_an_instance_that_stopped_is_handled_after_its_claim() {
    use aegis_domain::repo::AccountRepository as _;
    let app = TestApp::new().await;
    let site = app.create_site("claims.example.com").await;
    app.verified_user(&site, "me@example.com", "password-1")
        .await;
    let reply = app
        .tenant(
            "/api/auth/request-password-reset",
            &site,
            json!({"site_id": site["uuid"], "email": "me@example.com"}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200);
    // Another instance claims it and stops before handling it.
    let repo = aegis_postgres::PgAccountRepository::new(app.pool.clone());
    let now = app.clock_now();
    let claimed = repo.claim_reset_requests(10, now, now + 60).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].email.as_str(), "me@example.com");
    let resets = "SELECT count(*) AS n FROM email_outbox WHERE kind = 'password_reset'";
    assert_eq!(
        app.state.accounts.process_reset_requests(10).await.unwrap(),
        0
    );
    assert_eq!(app.count(resets).await, 0);
    // Once the claim has run out, this instance handles it, once.
    app.clock.advance(61);
    assert_eq!(
        app.state.accounts.process_reset_requests(10).await.unwrap(),
        1
    );
    assert_eq!(
        app.state.accounts.process_reset_requests(10).await.unwrap(),
        0
    );
    assert_eq!(app.count(resets).await, 1);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM password_reset_requests")
            .await,
        0
    );
}

#[actix_web::test]
async fn stored_hash_kinds_are_listed_and_odd_hashes_skipped() {
    use aegis_domain::repo::AccountRepository as _;
    let app = TestApp::new().await;
    let site = app.create_site("kinds.example.com").await;
    for (i, hash) in [
        "$2b$12$hdzbIDVP.mEdRc3Xll9MnOmEu2T35yqKa43nWwLX09z/9pwTU3pwK",
        "$2b$12$anotherSaltAndHashOfTheSameCostxxxxxxxxxxxxxxxxxxxxxx",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
        "$argon2id$v=19$m=65536,t=3,p=4,keyid=x$c2FsdHNhbHQ$aGFzaA",
        "$argon2i$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaA",
        "$2b$xx$broken",
        "plain-text-from-a-bad-import",
    ]
    .iter()
    .enumerate()
    {
        app.sql(&format!(
            "INSERT INTO users (uuid, site_uuid, email, password_hash, created_at, updated_at) \
             VALUES (gen_random_uuid(), '{}', 'k{i}@example.com', '{hash}', 0, 0)",
            site["uuid"].as_str().unwrap()
        ))
        .await;
    }
    let repo = aegis_postgres::PgAccountRepository::new(app.pool.clone());
    let mut kinds = repo.password_hash_kinds().await.unwrap();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "$2b$12$",
            "$argon2i$m=4096,t=3,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$"
        ]
    );
    // And the service times them without failing.
    assert_eq!(app.state.accounts.learn_password_costs().await.unwrap(), 3);
}
