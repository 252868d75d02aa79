//! Accounts and sessions: register, invite, verify, login, me, logout, refresh, and their tokens.

use aegis_domain::secrets::sha256_hex;
use serde_json::{Value, json};

use crate::support::{T0, TestApp, request};

const GATE: &str = "{\"error\":\"Invalid or missing tenant API key\"}\n";

async fn app_and_site() -> (TestApp, Value) {
    let app = TestApp::new().await;
    let site = app.create_site("auth.example.com").await;
    (app, site)
}

fn sid(site: &Value) -> &str {
    site["uuid"].as_str().unwrap()
}

// ---------------------------------------------------------------- the whole journey

#[actix_web::test]
async fn register_verify_login_me_logout() {
    let (app, site) = app_and_site().await;
    let reply = app
        .tenant(
            "/api/auth/register",
            &site,
            json!({"site_id": sid(&site), "email": "New.User@Example.com", "password": "s3cret-pass"}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text());
    assert_eq!(
        reply.text(),
        "{\"message\":\"Registration initiated. Please check your email to continue.\"}\n"
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM users WHERE email = 'new.user@example.com' AND NOT is_verified AND role = 'user'")
            .await,
        1
    );
    let (subject, text) = app.last_email("verification", "new.user@example.com").await;
    assert_eq!(subject, "Verify your email for Example");
    assert!(
        text.contains("http://test.example.com/verify-email?token="),
        "{text}"
    );

    // Not verified yet: the right password gets 403, a wrong one 401.
    let body =
        json!({"site_id": sid(&site), "email": "new.user@example.com", "password": "s3cret-pass"});
    let reply = app.tenant("/api/auth/login", &site, body.clone()).await;
    reply.assert_error(403, "Email not verified");
    let mut wrong = body.clone();
    wrong["password"] = json!("wrong-password");
    app.tenant("/api/auth/login", &site, wrong)
        .await
        .assert_error(401, "Invalid credentials");

    let token = app
        .emailed_token("verification", "new.user@example.com")
        .await;
    let check = app
        .tenant(
            "/api/auth/check-verification-token",
            &site,
            json!({"site_id": sid(&site), "token": token}),
        )
        .await;
    assert_eq!(
        check.json(),
        json!({"password_required": false, "email": "new.user@example.com"})
    );
    let reply = app
        .tenant(
            "/api/auth/verify-email",
            &site,
            json!({"site_id": sid(&site), "token": token}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    let verified = reply.json();
    assert_eq!(verified["redirect_url"], "http://test.example.com");
    let user = &verified["user"];
    assert_eq!(user["is_verified"], json!(true));
    assert_eq!(
        user.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "created_at",
            "deletion_protected",
            "email",
            "is_verified",
            "role",
            "site_uuid",
            "updated_at",
            "uuid"
        ]
    );
    // The token was consumed.
    app.tenant(
        "/api/auth/verify-email",
        &site,
        json!({"site_id": sid(&site), "token": token}),
    )
    .await
    .assert_error(400, "Invalid or expired verification token");

    let login = app
        .login(&site, "NEW.user@example.com", "s3cret-pass")
        .await;
    let auth = login["auth_token"]["token"].as_str().unwrap().to_owned();
    assert_eq!(auth.len(), 43);
    assert_eq!(
        login,
        json!({
            "auth_token": {"token": auth, "user_uuid": user["uuid"], "expires_at": T0 + 3600},
            "refresh_token": {"token": login["refresh_token"]["token"], "user_uuid": user["uuid"],
                              "site_uuid": sid(&site), "expires_at": T0 + 604_800},
        })
    );

    let me = app.bearer("GET", "/api/auth/me", &auth, None).await;
    assert_eq!(me.status.as_u16(), 200);
    assert_eq!(me.headers.get("cache-control").unwrap(), "no-store");
    assert_eq!(me.json(), *user);

    let out = app.bearer("POST", "/api/auth/logout", &auth, None).await;
    assert_eq!(out.json(), json!({"message": "Logged out successfully"}));
    app.bearer("GET", "/api/auth/me", &auth, None)
        .await
        .assert_error(401, "Invalid or expired token");
}

// ---------------------------------------------------------------- register

#[actix_web::test]
async fn registering_a_taken_address_looks_the_same_and_mails_the_owner() {
    let (app, site) = app_and_site().await;
    app.verified_user(&site, "owner@example.com", "password-1")
        .await;
    let fresh = app
        .tenant(
            "/api/auth/register",
            &site,
            json!({"site_id": sid(&site), "email": "someone@example.com"}),
        )
        .await;
    let taken = app
        .tenant(
            "/api/auth/register",
            &site,
            json!({"site_id": sid(&site), "email": "Owner@Example.com", "password": "whatever-1"}),
        )
        .await;
    assert_eq!((taken.status, taken.text()), (fresh.status, fresh.text()));
    // Mail goes to the address in its normal form, not as typed (decision 30).
    let (subject, text) = app.last_email("sign_in_attempt", "owner@example.com").await;
    assert_eq!(subject, "Sign-in attempt for Example");
    assert!(text.contains("http://test.example.com/forgot-password"));
    assert_eq!(
        app.count("SELECT count(*) AS n FROM users WHERE email = 'owner@example.com'")
            .await,
        1
    );
}

#[actix_web::test]
async fn registration_can_be_closed() {
    let (app, site) = app_and_site().await;
    let path = format!("/api/sites/{}", sid(&site));
    app.master(
        "PUT",
        &path,
        Some(json!({"allow_self_registration": false})),
    )
    .await;
    app.tenant(
        "/api/auth/register",
        &site,
        json!({"site_id": sid(&site), "email": "a@example.com"}),
    )
    .await
    .assert_error(400, "Self-registration is not enabled for this site");
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 0);
    // Invitations still work on a closed site.
    let reply = app
        .tenant(
            "/api/auth/invite-user",
            &site,
            json!({"site_id": sid(&site), "email": "a@example.com"}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 201);
}

#[actix_web::test]
async fn register_validation() {
    let (app, site) = app_and_site().await;
    let cases = [
        (
            json!({}),
            json!({"email": ["Missing data for required field."]}),
        ),
        (
            json!({"email": "a@b"}),
            json!({"email": ["Not a valid email address."]}),
        ),
        (
            json!({"email": "a@b.co", "password": "short"}),
            json!({"password": ["Shorter than minimum length 8."]}),
        ),
        (
            json!({"email": "a@b.co", "password": null}),
            json!({"password": ["Field may not be null."]}),
        ),
        (
            json!({"email": "a@b.co", "password": "é".repeat(40)}),
            json!({"password": ["Password must be at most 72 bytes."]}),
        ),
        (
            json!({"email": "a@b.co", "role": "admin"}),
            json!({"role": ["Unknown field."]}),
        ),
        (
            json!({"email": format!("{}@example.com", "a".repeat(250))}),
            json!({"email": ["Longer than maximum length 255."]}),
        ),
    ];
    for (mut body, details) in cases {
        body["site_id"] = json!(sid(&site));
        app.tenant("/api/auth/register", &site, body)
            .await
            .assert_validation(details);
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 0);
}

// ---------------------------------------------------------------- the tenant gate

#[actix_web::test]
async fn every_tenant_gate_failure_is_the_same_401() {
    let (app, site) = app_and_site().await;
    let other = app.create_site("other.example.com").await;
    let key = site["tenant_api_key"].as_str().unwrap();
    let body = |site_id: Value| json!({"site_id": site_id, "email": "a@example.com", "password": "password-1"});
    for path in [
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/invite-user",
        "/api/auth/verify-email",
        "/api/auth/check-verification-token",
        "/api/auth/request-password-reset",
        "/api/auth/reset-password",
    ] {
        let attempts = vec![
            request("POST", path).set_json(body(json!(sid(&site)))),
            request("POST", path)
                .insert_header(("X-Tenant-Api-Key", ""))
                .set_json(body(json!(sid(&site)))),
            request("POST", path)
                .insert_header(("X-Tenant-Api-Key", "wrong"))
                .set_json(body(json!(sid(&site)))),
            request("POST", path)
                .insert_header(("X-Tenant-Api-Key", key))
                .set_json(body(json!(sid(&other)))),
            request("POST", path)
                .insert_header(("X-Tenant-Api-Key", key))
                .set_json(json!({"email": "a@example.com"})),
            request("POST", path)
                .insert_header(("X-Tenant-Api-Key", key))
                .set_json(body(json!(1))),
            request("POST", path)
                .insert_header(("X-Tenant-Api-Key", key))
                .set_json(body(json!("1"))),
            request("POST", path)
                .insert_header(("X-Tenant-Api-Key", key))
                .set_json(body(json!("0191e1a0-0000-7000-8000-0000000000ff"))),
            request("POST", path)
                .insert_header(("X-Tenant-Api-Key", key))
                .set_json(json!([1])),
            request("POST", path)
                .insert_header(("X-Tenant-Api-Key", key))
                .insert_header(("Content-Type", "text/plain"))
                .set_payload(body(json!(sid(&site))).to_string()),
            request("POST", path)
                .insert_header(("X-Tenant-Api-Key", key))
                .insert_header(("Content-Type", "application/json"))
                .set_payload("{not json"),
            request("POST", path)
                .insert_header((
                    "X-Tenant-Api-Key",
                    actix_web::http::header::HeaderValue::from_bytes(b"ke\xc3\xa9").unwrap(),
                ))
                .set_json(body(json!(sid(&site)))),
        ];
        for (i, attempt) in attempts.into_iter().enumerate() {
            let reply = app.send(attempt).await;
            assert_eq!(reply.status.as_u16(), 401, "{path} #{i}: {}", reply.text());
            assert_eq!(reply.text(), GATE, "{path} #{i}");
        }
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 0);
}

// ---------------------------------------------------------------- login

#[actix_web::test]
async fn login_failures_are_identical_and_each_costs_one_verification() {
    let (app, site) = app_and_site().await;
    app.verified_user(&site, "known@example.com", "right-password")
        .await;
    app.tenant(
        "/api/auth/invite-user",
        &site,
        json!({"site_id": sid(&site), "email": "invited@example.com"}),
    )
    .await;
    let mut replies = Vec::new();
    for (email, password) in [
        ("known@example.com", "wrong-password"),
        ("unknown@example.com", "right-password"),
        ("invited@example.com", "anything-at-all"),
    ] {
        let before = app.hasher.verifications();
        let reply = app
            .tenant(
                "/api/auth/login",
                &site,
                json!({"site_id": sid(&site), "email": email, "password": password}),
            )
            .await;
        assert_eq!(
            app.hasher.verifications(),
            before + 1,
            "{email}: one verification"
        );
        replies.push((reply.status, reply.text()));
    }
    assert!(replies.iter().all(|r| *r == replies[0]), "{replies:?}");
    assert_eq!(replies[0].1, "{\"error\":\"Invalid credentials\"}\n");

    // An over-long password is refused before any lookup, for known and unknown accounts alike.
    let long = "x".repeat(100);
    let before = app.hasher.verifications();
    let a = app
        .tenant(
            "/api/auth/login",
            &site,
            json!({"site_id": sid(&site), "email": "known@example.com", "password": long}),
        )
        .await;
    let b = app
        .tenant(
            "/api/auth/login",
            &site,
            json!({"site_id": sid(&site), "email": "nobody@example.com", "password": long}),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.text()), (b.status.as_u16(), b.text()));
    a.assert_validation(json!({"password": ["Password must be at most 72 bytes."]}));
    assert_eq!(app.hasher.verifications(), before);
}

#[actix_web::test]
async fn a_bcrypt_account_from_the_reference_logs_in_and_is_upgraded() {
    let (app, site) = app_and_site().await;
    let hash = bcrypt::hash("legacy-password", 4).unwrap();
    app.sql(&format!(
        "INSERT INTO users (uuid, site_uuid, email, password_hash, is_verified, role, created_at, updated_at) \
         VALUES ('0191e1a0-0000-7000-8000-0000000000d1', '{}', 'legacy@example.com', '{hash}', true, 'user', 1, 1)",
        sid(&site)
    ))
    .await;
    app.login(&site, "legacy@example.com", "legacy-password")
        .await;
    assert_eq!(
        app.count("SELECT count(*) AS n FROM users WHERE password_hash LIKE '$argon2id$%'")
            .await,
        1
    );
    // And the new hash works.
    app.login(&site, "legacy@example.com", "legacy-password")
        .await;
}

#[actix_web::test]
async fn no_plaintext_token_is_stored() {
    let (app, site) = app_and_site().await;
    app.tenant(
        "/api/auth/register",
        &site,
        json!({"site_id": sid(&site), "email": "t@example.com", "password": "password-1"}),
    )
    .await;
    let verification = app.emailed_token("verification", "t@example.com").await;
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM email_verification_tokens WHERE token = '{}'",
            sha256_hex(&verification)
        ))
        .await,
        1
    );
    app.tenant(
        "/api/auth/verify-email",
        &site,
        json!({"site_id": sid(&site), "token": verification}),
    )
    .await;
    let login = app.login(&site, "t@example.com", "password-1").await;
    let auth = login["auth_token"]["token"].as_str().unwrap();
    let refresh = login["refresh_token"]["token"].as_str().unwrap();
    for (table, plain) in [("auth_tokens", auth), ("refresh_tokens", refresh)] {
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) AS n FROM {table} WHERE token = '{plain}'"
            ))
            .await,
            0
        );
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) AS n FROM {table} WHERE token = '{}'",
                sha256_hex(plain)
            ))
            .await,
            1
        );
    }
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM email_verification_tokens WHERE token IN ('{verification}', '{auth}', '{refresh}')"
        ))
        .await,
        0
    );
    // The digest itself is not a bearer token.
    app.bearer("GET", "/api/auth/me", &sha256_hex(auth), None)
        .await
        .assert_error(401, "Invalid or expired token");
}

// ---------------------------------------------------------------- bearer

#[actix_web::test]
async fn bearer_errors() {
    let (app, site) = app_and_site().await;
    app.verified_user(&site, "b@example.com", "password-1")
        .await;
    let auth = app.login(&site, "b@example.com", "password-1").await["auth_token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.send(request("GET", "/api/auth/me"))
        .await
        .assert_error(401, "Missing authorization header");
    app.send(request("GET", "/api/auth/me").insert_header(("Authorization", auth.clone())))
        .await
        .assert_error(401, "Invalid authorization header format");
    app.send(
        request("GET", "/api/auth/me").insert_header(("Authorization", format!("bearer {auth}"))),
    )
    .await
    .assert_error(401, "Invalid authorization header format");
    app.bearer("GET", "/api/auth/me", "unknown-token", None)
        .await
        .assert_error(401, "Invalid or expired token");
    app.bearer("GET", "/api/auth/me", &format!("{auth} "), None)
        .await
        .assert_error(401, "Invalid or expired token");
    app.clock.advance(3600);
    assert_eq!(
        app.bearer("GET", "/api/auth/me", &auth, None)
            .await
            .status
            .as_u16(),
        200
    );
    app.clock.advance(1);
    app.bearer("GET", "/api/auth/me", &auth, None)
        .await
        .assert_error(401, "Invalid or expired token");
}

// ---------------------------------------------------------------- refresh and logout

#[actix_web::test]
async fn refresh_rotates_allows_a_grace_and_punishes_reuse() {
    let (app, site) = app_and_site().await;
    app.verified_user(&site, "r@example.com", "password-1")
        .await;
    let first = app.login(&site, "r@example.com", "password-1").await;
    let other_device = app.login(&site, "r@example.com", "password-1").await;
    let r1 = first["refresh_token"]["token"].as_str().unwrap().to_owned();
    let refresh = |token: &str| {
        let app = &app;
        let body = json!({"refresh_token": token});
        async move {
            app.send(request("POST", "/api/auth/refresh").set_json(body))
                .await
        }
    };

    let rotated = refresh(&r1).await;
    assert_eq!(rotated.status.as_u16(), 200, "{}", rotated.text());
    assert_eq!(rotated.headers.get("cache-control").unwrap(), "no-store");
    let rotated = rotated.json();
    let r2 = rotated["refresh_token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(r2, r1);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM refresh_tokens WHERE family_id = \
             (SELECT family_id FROM refresh_tokens WHERE token = '{}')",
            sha256_hex(&r1)
        ))
        .await,
        2
    );

    // Within the grace window: a new auth token, no new refresh token.
    app.clock.advance(30);
    let grace = refresh(&r1).await.json();
    assert_eq!(grace["refresh_token"], json!(null));
    assert!(grace["auth_token"]["token"].is_string());

    // After it: reuse detected, the family revoked, every auth token of the user gone.
    app.clock.advance(1);
    refresh(&r1)
        .await
        .assert_error(403, "Refresh token reuse detected - all sessions revoked");
    refresh(&r2)
        .await
        .assert_error(401, "Invalid or expired refresh token");
    let auth = rotated["auth_token"]["token"].as_str().unwrap();
    app.bearer("GET", "/api/auth/me", auth, None)
        .await
        .assert_error(401, "Invalid or expired token");
    // Another family (device) is untouched.
    let other = refresh(other_device["refresh_token"]["token"].as_str().unwrap()).await;
    assert_eq!(other.status.as_u16(), 200);

    refresh("never-issued")
        .await
        .assert_error(401, "Invalid or expired refresh token");
    app.send(request("POST", "/api/auth/refresh").set_json(json!({"refresh_token": 5, "x": 1})))
        .await
        .assert_validation(
            json!({"refresh_token": ["Not a valid string."], "x": ["Unknown field."]}),
        );
}

#[actix_web::test]
async fn parallel_refreshes_mint_exactly_one_successor() {
    let (app, site) = app_and_site().await;
    app.verified_user(&site, "p@example.com", "password-1")
        .await;
    let login = app.login(&site, "p@example.com", "password-1").await;
    let token = login["refresh_token"]["token"].as_str().unwrap();
    let calls = (0..6).map(|_| {
        app.send(request("POST", "/api/auth/refresh").set_json(json!({"refresh_token": token})))
    });
    let replies = futures_util::future::join_all(calls).await;
    let mut successors = 0;
    for reply in &replies {
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
        if !reply.json()["refresh_token"].is_null() {
            successors += 1;
        }
    }
    assert_eq!(successors, 1);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM refresh_tokens").await,
        2
    );
}

#[actix_web::test]
async fn logout_revokes_only_the_callers_family() {
    let (app, site) = app_and_site().await;
    app.verified_user(&site, "a@example.com", "password-1")
        .await;
    app.verified_user(&site, "b@example.com", "password-1")
        .await;
    let phone = app.login(&site, "a@example.com", "password-1").await;
    let laptop = app.login(&site, "a@example.com", "password-1").await;
    let victim = app.login(&site, "b@example.com", "password-1").await;
    let auth = phone["auth_token"]["token"].as_str().unwrap();
    // Someone else's refresh token in the body is ignored.
    let reply = app
        .bearer(
            "POST",
            "/api/auth/logout",
            laptop["auth_token"]["token"].as_str().unwrap(),
            Some(json!({"refresh_token": victim["refresh_token"]["token"], "token": "ignored"})),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200);
    let reply = app
        .bearer(
            "POST",
            "/api/auth/logout",
            auth,
            Some(json!({"refresh_token": phone["refresh_token"]["token"]})),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200);
    let revoked = |token: &Value| {
        format!(
            "SELECT count(*) AS n FROM refresh_tokens WHERE revoked AND token = '{}'",
            sha256_hex(token.as_str().unwrap())
        )
    };
    assert_eq!(
        app.count(&revoked(&phone["refresh_token"]["token"])).await,
        1
    );
    assert_eq!(
        app.count(&revoked(&laptop["refresh_token"]["token"])).await,
        0
    );
    assert_eq!(
        app.count(&revoked(&victim["refresh_token"]["token"])).await,
        0
    );
    app.send(request("POST", "/api/auth/logout"))
        .await
        .assert_error(401, "Missing authorization header");
}

// ---------------------------------------------------------------- invitations and verification

#[actix_web::test]
async fn invitations_set_the_password_at_verification() {
    let (app, site) = app_and_site().await;
    let invite = |email: &str| {
        let app = &app;
        let body = json!({"site_id": sid(&site), "email": email});
        let site = &site;
        async move { app.tenant("/api/auth/invite-user", site, body).await }
    };
    let first = invite("Guest@Example.com").await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text());
    let user = first.json();
    assert_eq!(
        (
            user["email"].as_str(),
            user["is_verified"].as_bool(),
            user["role"].as_str()
        ),
        (Some("guest@example.com"), Some(false), Some("user"))
    );
    assert!(user.get("token").is_none());
    let old = app.emailed_token("verification", "guest@example.com").await;

    // A re-invite supersedes the old link and returns the same user.
    let again = invite("guest@example.com").await;
    assert_eq!(again.json()["uuid"], user["uuid"]);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM email_verification_tokens")
            .await,
        1
    );
    let token = app.emailed_token("verification", "guest@example.com").await;
    assert_ne!(token, old);
    app.tenant(
        "/api/auth/check-verification-token",
        &site,
        json!({"site_id": sid(&site), "token": old}),
    )
    .await
    .assert_error(400, "Invalid or expired verification token");

    let status = app
        .tenant(
            "/api/auth/check-verification-token",
            &site,
            json!({"site_id": sid(&site), "token": token}),
        )
        .await;
    assert_eq!(
        status.json(),
        json!({"password_required": true, "email": "guest@example.com"})
    );
    app.tenant(
        "/api/auth/verify-email",
        &site,
        json!({"site_id": sid(&site), "token": token}),
    )
    .await
    .assert_error(400, "Password is required to complete account setup");
    let done = app
        .tenant(
            "/api/auth/verify-email",
            &site,
            json!({"site_id": sid(&site), "token": token, "password": "chosen-password"}),
        )
        .await;
    assert_eq!(done.status.as_u16(), 200, "{}", done.text());
    app.login(&site, "guest@example.com", "chosen-password")
        .await;

    // Now an established account: no more invitations.
    invite("guest@example.com")
        .await
        .assert_error(400, "Email already registered for this site");
    app.tenant(
        "/api/auth/invite-user",
        &site,
        json!({"site_id": sid(&site), "email": "x@example.com", "role": "admin"}),
    )
    .await
    .assert_validation(json!({"role": ["Unknown field."]}));
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 1);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM webhook_deliveries")
            .await,
        0
    );
}

#[actix_web::test]
async fn verification_fires_one_webhook_and_cross_site_tokens_are_kept() {
    let app = TestApp::new().await;
    let mut body = crate::support::site_body("hooked.example.com");
    body["webhook_url"] = json!("https://hooks.example.com/aegis");
    body["verification_redirect_url"] = json!("https://hooked.example.com/welcome");
    let site = app.master("POST", "/api/sites", Some(body)).await.json();
    let other = app.create_site("elsewhere.example.com").await;
    app.tenant(
        "/api/auth/register",
        &site,
        json!({"site_id": sid(&site), "email": "w@example.com", "password": "password-1"}),
    )
    .await;
    let token = app.emailed_token("verification", "w@example.com").await;

    // Presented under another site: refused, and not consumed.
    app.tenant(
        "/api/auth/verify-email",
        &other,
        json!({"site_id": sid(&other), "token": token}),
    )
    .await
    .assert_error(400, "Invalid or expired verification token");
    let reply = app
        .tenant(
            "/api/auth/verify-email",
            &site,
            json!({"site_id": sid(&site), "token": token}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    let verified = reply.json();
    assert_eq!(
        verified["redirect_url"],
        "https://hooked.example.com/welcome"
    );

    assert_eq!(app.count("SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending' AND event_type = 'user.verified'").await, 1);
    #[derive(diesel::QueryableByName)]
    struct Payload {
        #[diesel(sql_type = diesel::sql_types::Text)]
        payload: String,
    }
    use diesel_async::{AsyncConnection as _, RunQueryDsl as _};
    let mut conn = diesel_async::AsyncPgConnection::establish(app.db.url())
        .await
        .unwrap();
    let row: Payload = diesel::sql_query("SELECT payload FROM webhook_deliveries")
        .get_result(&mut conn)
        .await
        .unwrap();
    let payload: Value = serde_json::from_str(&row.payload).unwrap();
    assert_eq!(payload["event_type"], "user.verified");
    assert_eq!(payload["user_uuid"], verified["user"]["uuid"]);
    assert_eq!(payload["site_uuid"], site["uuid"]);
    assert_eq!(payload["email"], "w@example.com");
    assert_eq!(payload["aegis_role"], "user");
    assert_eq!(payload["timestamp"], T0);
    assert_eq!(payload["event_id"].as_str().unwrap().len(), 36);
    assert!(row.payload.starts_with("{\"event_id\":"));

    // An expired token is refused.
    app.tenant(
        "/api/auth/register",
        &site,
        json!({"site_id": sid(&site), "email": "late@example.com"}),
    )
    .await;
    let late = app.emailed_token("verification", "late@example.com").await;
    app.clock.advance(86_401);
    app.tenant(
        "/api/auth/check-verification-token",
        &site,
        json!({"site_id": sid(&site), "token": late}),
    )
    .await
    .assert_error(400, "Invalid or expired verification token");
}

#[actix_web::test]
async fn an_over_long_password_at_registration_reveals_nothing() {
    let (app, site) = app_and_site().await;
    app.verified_user(&site, "taken@example.com", "password-1")
        .await;
    let long = "p".repeat(100);
    let taken = app
        .tenant(
            "/api/auth/register",
            &site,
            json!({"site_id": sid(&site), "email": "taken@example.com", "password": long}),
        )
        .await;
    let free = app
        .tenant(
            "/api/auth/register",
            &site,
            json!({"site_id": sid(&site), "email": "free@example.com", "password": long}),
        )
        .await;
    assert_eq!(
        (taken.status.as_u16(), taken.text()),
        (free.status.as_u16(), free.text())
    );
    taken.assert_validation(json!({"password": ["Password must be at most 72 bytes."]}));
}

#[actix_web::test]
async fn user_verified_fires_only_on_the_transition() {
    let app = TestApp::new().await;
    let mut body = crate::support::site_body("once.example.com");
    body["webhook_url"] = json!("https://hooks.example.com/aegis");
    let site = app.master("POST", "/api/sites", Some(body)).await.json();
    app.tenant(
        "/api/auth/register",
        &site,
        json!({"site_id": sid(&site), "email": "o@example.com", "password": "password-1"}),
    )
    .await;
    let first = app.emailed_token("verification", "o@example.com").await;
    // A second outstanding link for the same user.
    app.sql(&format!(
        "INSERT INTO email_verification_tokens (site_uuid, user_uuid, token, expires_at, created_at) \
         SELECT site_uuid, uuid, '{}', {}, 1 FROM users WHERE email = 'o@example.com'",
        sha256_hex("second-link"),
        T0 + 1000
    ))
    .await;
    for token in [first.as_str(), "second-link"] {
        let reply = app
            .tenant(
                "/api/auth/verify-email",
                &site,
                json!({"site_id": sid(&site), "token": token}),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    }
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM webhook_deliveries WHERE event_type = 'user.verified'"
        )
        .await,
        1
    );
}

/// With every hashing thread busy and the queue full, a login is refused at once with the 503
/// and `Retry-After`, rather than queued without limit; it works again when a thread is free.
#[actix_web::test]
async fn a_saturated_hashing_pool_answers_503() {
    let app = crate::support::TestApp::with_hash_pool(aegis_http::passwords::HashPoolSize {
        workers: 1,
        queue: 1,
    })
    .await;
    let site = app.create_site("busy-hash.example.com").await;
    app.verified_user(&site, "hash@example.com", "password-1")
        .await;
    // The one thread is held by a job, and the one queue slot by another behind it.
    let pool = app.hasher.inner.clone();
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let (started, running) = tokio::sync::oneshot::channel();
    let blocker = actix_web::rt::spawn({
        let pool = pool.clone();
        async move {
            pool.run(move |_, _| {
                let _ = started.send(());
                let _ = wait.recv();
            })
            .await
        }
    });
    running.await.unwrap();
    let queued = actix_web::rt::spawn({
        let pool = pool.clone();
        async move { pool.run(|_, _| ()).await }
    });
    for _ in 0..500 {
        if pool.waiting() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(pool.waiting(), 1);
    let login =
        json!({"site_id": site["uuid"], "email": "hash@example.com", "password": "password-1"});
    let reply = app.tenant("/api/auth/login", &site, login.clone()).await;
    reply.assert_error(503, "Service temporarily unavailable");
    assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
    drop(release);
    blocker.await.unwrap().unwrap();
    queued.await.unwrap().unwrap();
    let reply = app.tenant("/api/auth/login", &site, login).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
}
