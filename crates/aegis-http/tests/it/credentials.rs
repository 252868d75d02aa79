//! Password change, password reset and email change, and what each revokes.

use aegis_domain::secrets::sha256_hex;
use serde_json::{Value, json};

use crate::support::{TestApp, request};

async fn setup() -> (TestApp, Value, String) {
    let app = TestApp::new().await;
    let site = app.create_site("cred.example.com").await;
    app.verified_user(&site, "me@example.com", "first-password")
        .await;
    let auth = app.login(&site, "me@example.com", "first-password").await["auth_token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    (app, site, auth)
}

fn sid(site: &Value) -> Value {
    site["uuid"].clone()
}

#[actix_web::test]
async fn change_password_ends_every_session_and_pending_flow() {
    let (app, site, auth) = setup().await;
    let session = app.login(&site, "me@example.com", "first-password").await;
    app.verified_user(&site, "bystander@example.com", "other-password")
        .await;
    for email in ["me@example.com", "bystander@example.com"] {
        app.tenant(
            "/api/auth/request-password-reset",
            &site,
            json!({"site_id": sid(&site), "email": email}),
        )
        .await;
    }
    // Two reset links mailed, and one more request of mine not handled yet.
    app.handle_reset_requests().await;
    app.tenant(
        "/api/auth/request-password-reset",
        &site,
        json!({"site_id": sid(&site), "email": "me@example.com"}),
    )
    .await;
    app.bearer(
        "POST",
        "/api/auth/request-email-change",
        &auth,
        Some(json!({"new_email": "new@example.com", "password": "first-password"})),
    )
    .await;

    app.bearer(
        "POST",
        "/api/auth/change-password",
        &auth,
        Some(json!({"old_password": "wrong", "new_password": "second-password"})),
    )
    .await
    .assert_error(400, "Incorrect password");
    app.bearer(
        "POST",
        "/api/auth/change-password",
        &auth,
        Some(json!({"old_password": "first-password"})),
    )
    .await
    .assert_validation(json!({"new_password": ["Missing data for required field."]}));
    app.bearer(
        "POST",
        "/api/auth/change-password",
        &auth,
        Some(json!({"old_password": "first-password", "new_password": "short"})),
    )
    .await
    .assert_validation(json!({"new_password": ["Shorter than minimum length 8."]}));

    let reply = app
        .bearer(
            "POST",
            "/api/auth/change-password",
            &auth,
            Some(json!({"old_password": "first-password", "new_password": "second-password"})),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    assert_eq!(reply.json()["email"], "me@example.com");

    app.bearer("GET", "/api/auth/me", &auth, None)
        .await
        .assert_error(401, "Invalid or expired token");
    app.send(
        request("POST", "/api/auth/refresh")
            .set_json(json!({"refresh_token": session["refresh_token"]["token"]})),
    )
    .await
    .assert_error(401, "Invalid or expired refresh token");
    let me = "(SELECT uuid FROM users WHERE email = 'me@example.com')";
    // A reset requested before the change does not turn into a link after it.
    app.handle_reset_requests().await;
    for table in [
        "auth_tokens",
        "refresh_tokens",
        "password_reset_tokens",
        "email_change_requests",
    ] {
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) AS n FROM {table} WHERE user_uuid = {me}"
            ))
            .await,
            0,
            "{table}"
        );
    }
    // Another user's pending reset survives.
    assert_eq!(
        app.count("SELECT count(*) AS n FROM password_reset_tokens")
            .await,
        1
    );
    app.tenant(
        "/api/auth/login",
        &site,
        json!({"site_id": sid(&site), "email": "me@example.com", "password": "first-password"}),
    )
    .await
    .assert_error(401, "Invalid credentials");
    app.login(&site, "me@example.com", "second-password").await;
}

#[actix_web::test]
async fn an_unusable_stored_hash_is_an_incorrect_password() {
    let (app, site, auth) = setup().await;
    app.sql("UPDATE users SET password_hash = 'not-a-hash'")
        .await;
    app.bearer(
        "POST",
        "/api/auth/change-password",
        &auth,
        Some(json!({"old_password": "first-password", "new_password": "second-password"})),
    )
    .await
    .assert_error(400, "Incorrect password");
    app.tenant(
        "/api/auth/login",
        &site,
        json!({"site_id": sid(&site), "email": "me@example.com", "password": "first-password"}),
    )
    .await
    .assert_error(401, "Invalid credentials");
}

#[actix_web::test]
async fn password_reset_by_email() {
    let (app, site, auth) = setup().await;
    let ask = |email: &str| {
        let (app, site) = (&app, &site);
        let body = json!({"site_id": sid(site), "email": email});
        async move {
            app.tenant("/api/auth/request-password-reset", site, body)
                .await
        }
    };
    let unknown = ask("nobody@example.com").await;
    let known = ask("ME@example.com").await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.text()),
        (known.status.as_u16(), known.text())
    );
    assert_eq!(
        known.json(),
        json!({"message": "If the email exists, a password reset link has been sent"})
    );
    // Both were recorded alike; the link is made off the request path.
    assert_eq!(
        app.count("SELECT count(*) AS n FROM password_reset_requests")
            .await,
        2
    );
    app.handle_reset_requests().await;
    assert_eq!(
        app.count("SELECT count(*) AS n FROM email_outbox WHERE kind = 'password_reset'")
            .await,
        1
    );
    let (subject, text) = app.last_email("password_reset", "me@example.com").await;
    assert_eq!(subject, "Reset your password for Example");
    assert!(
        text.contains("http://test.example.com/reset-password?token=") && text.contains("1 hour")
    );
    let first = app.emailed_token("password_reset", "me@example.com").await;
    ask("me@example.com").await;
    let second = app.emailed_token("password_reset", "me@example.com").await;
    assert_ne!(first, second);

    // Presented under another site: refused, and not burned.
    let other = app.create_site("other.example.com").await;
    app.tenant(
        "/api/auth/reset-password",
        &other,
        json!({"site_id": sid(&other), "token": first, "new_password": "third-password"}),
    )
    .await
    .assert_error(400, "Invalid or expired reset token");

    let reply = app
        .tenant(
            "/api/auth/reset-password",
            &site,
            json!({"site_id": sid(&site), "token": first, "new_password": "third-password"}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    assert_eq!(reply.json()["is_verified"], json!(true));
    // Every reset token of the user is gone, sessions too.
    for token in [&first, &second] {
        app.tenant(
            "/api/auth/reset-password",
            &site,
            json!({"site_id": sid(&site), "token": token, "new_password": "fourth-password"}),
        )
        .await
        .assert_error(400, "Invalid or expired reset token");
    }
    app.bearer("GET", "/api/auth/me", &auth, None)
        .await
        .assert_error(401, "Invalid or expired token");
    app.login(&site, "me@example.com", "third-password").await;
}

#[actix_web::test]
async fn a_reset_does_not_verify_and_expires() {
    let app = TestApp::new().await;
    let site = app.create_site("reset.example.com").await;
    app.tenant(
        "/api/auth/register",
        &site,
        json!({"site_id": sid(&site), "email": "u@example.com", "password": "first-password"}),
    )
    .await;
    app.tenant(
        "/api/auth/request-password-reset",
        &site,
        json!({"site_id": sid(&site), "email": "u@example.com"}),
    )
    .await;
    let token = app.emailed_token("password_reset", "u@example.com").await;
    let reply = app
        .tenant(
            "/api/auth/reset-password",
            &site,
            json!({"site_id": sid(&site), "token": token, "new_password": "second-password"}),
        )
        .await;
    assert_eq!(reply.json()["is_verified"], json!(false));
    app.tenant(
        "/api/auth/login",
        &site,
        json!({"site_id": sid(&site), "email": "u@example.com", "password": "second-password"}),
    )
    .await
    .assert_error(403, "Email not verified");

    app.tenant(
        "/api/auth/request-password-reset",
        &site,
        json!({"site_id": sid(&site), "email": "u@example.com"}),
    )
    .await;
    let late = app.emailed_token("password_reset", "u@example.com").await;
    app.clock.advance(3601);
    app.tenant(
        "/api/auth/reset-password",
        &site,
        json!({"site_id": sid(&site), "token": late, "new_password": "third-password"}),
    )
    .await
    .assert_error(400, "Invalid or expired reset token");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM password_reset_tokens WHERE token = '{}' AND NOT used",
            sha256_hex(&late)
        ))
        .await,
        1
    );
}

#[actix_web::test]
async fn email_change_needs_the_password_and_a_free_address() {
    let (app, site, auth) = setup().await;
    app.verified_user(&site, "taken@example.com", "other-password")
        .await;
    let change =
        |body: Value| app.bearer("POST", "/api/auth/request-email-change", &auth, Some(body));
    change(json!({"new_email": "new@example.com", "password": "wrong"}))
        .await
        .assert_error(400, "Invalid password");
    change(json!({"new_email": "new@example.com"}))
        .await
        .assert_validation(json!({"password": ["Missing data for required field."]}));
    for taken in ["Taken@Example.com", "me@example.com"] {
        change(json!({"new_email": taken, "password": "first-password"}))
            .await
            .assert_error(400, "Email already in use");
    }
    assert_eq!(
        app.count("SELECT count(*) AS n FROM email_change_requests")
            .await,
        0
    );
    app.send(
        request("POST", "/api/auth/request-email-change")
            .set_json(json!({"new_email": "a@b.co", "password": "x"})),
    )
    .await
    .assert_error(401, "Missing authorization header");

    let reply =
        change(json!({"new_email": "New.Address@Example.com", "password": "first-password"})).await;
    assert_eq!(
        reply.json(),
        json!({"message": "Email change confirmation sent"})
    );
    // The confirmation goes to the address in its normal form (decision 30).
    let (subject, text) = app
        .last_email("email_change", "new.address@example.com")
        .await;
    assert_eq!(subject, "Confirm your email change for Example");
    assert!(
        text.contains("http://test.example.com/confirm-email-change?token=")
            && text.contains("1 hour")
    );
    let token = app
        .emailed_token("email_change", "new.address@example.com")
        .await;

    let confirmed = app
        .send(request("POST", "/api/auth/confirm-email-change").set_json(json!({"token": token})))
        .await;
    assert_eq!(confirmed.status.as_u16(), 200, "{}", confirmed.text());
    assert_eq!(confirmed.json()["email"], "new.address@example.com");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM email_change_requests")
            .await,
        0
    );
    // Sessions are kept.
    assert_eq!(
        app.bearer("GET", "/api/auth/me", &auth, None).await.json()["email"],
        "new.address@example.com"
    );
    app.send(request("POST", "/api/auth/confirm-email-change").set_json(json!({"token": token})))
        .await
        .assert_error(400, "Invalid or expired email change token");
}

#[actix_web::test]
async fn a_refused_confirmation_keeps_its_token() {
    let (app, site, auth) = setup().await;
    app.bearer(
        "POST",
        "/api/auth/request-email-change",
        &auth,
        Some(json!({"new_email": "wanted@example.com", "password": "first-password"})),
    )
    .await;
    let token = app
        .emailed_token("email_change", "wanted@example.com")
        .await;
    app.verified_user(&site, "WANTED@example.com", "squatter-pass")
        .await;
    let confirm = || {
        app.send(
            request("POST", "/api/auth/confirm-email-change").set_json(json!({"token": token})),
        )
    };
    confirm().await.assert_error(400, "Email already in use");
    app.sql("DELETE FROM users WHERE email = 'wanted@example.com'")
        .await;
    let reply = confirm().await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    assert_eq!(reply.json()["email"], "wanted@example.com");

    // Expired: refused, left in place, nothing changes.
    let auth = app
        .login(&site, "wanted@example.com", "first-password")
        .await["auth_token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.bearer(
        "POST",
        "/api/auth/request-email-change",
        &auth,
        Some(json!({"new_email": "later@example.com", "password": "first-password"})),
    )
    .await;
    let late = app.emailed_token("email_change", "later@example.com").await;
    app.clock.advance(3601);
    app.send(request("POST", "/api/auth/confirm-email-change").set_json(json!({"token": late})))
        .await
        .assert_error(400, "Invalid or expired email change token");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM email_change_requests")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM users WHERE email = 'wanted@example.com'")
            .await,
        1
    );
    app.send(
        request("POST", "/api/auth/confirm-email-change").set_json(json!({"token": "unknown"})),
    )
    .await
    .assert_error(400, "Invalid or expired email change token");
}

#[actix_web::test]
async fn reset_and_email_change_tokens_are_stored_as_digests() {
    let (app, site, auth) = setup().await;
    app.tenant(
        "/api/auth/request-password-reset",
        &site,
        json!({"site_id": sid(&site), "email": "me@example.com"}),
    )
    .await;
    let reset = app.emailed_token("password_reset", "me@example.com").await;
    app.bearer(
        "POST",
        "/api/auth/request-email-change",
        &auth,
        Some(json!({"new_email": "other@example.com", "password": "first-password"})),
    )
    .await;
    let change = app.emailed_token("email_change", "other@example.com").await;
    for (table, plain) in [
        ("password_reset_tokens", &reset),
        ("email_change_requests", &change),
    ] {
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) AS n FROM {table} WHERE token = '{plain}'"
            ))
            .await,
            0,
            "{table}"
        );
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) AS n FROM {table} WHERE token = '{}'",
                sha256_hex(plain)
            ))
            .await,
            1,
            "{table}"
        );
    }
}

#[actix_web::test]
async fn refresh_requires_a_verified_account() {
    let (app, site, _) = setup().await;
    let session = app.login(&site, "me@example.com", "first-password").await;
    app.sql("UPDATE users SET is_verified = false").await;
    app.send(
        request("POST", "/api/auth/refresh")
            .set_json(json!({"refresh_token": session["refresh_token"]["token"]})),
    )
    .await
    .assert_error(401, "User account not verified");
}
