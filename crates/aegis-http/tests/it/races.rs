//! Credential changes racing the requests that rely on the old credentials, with real concurrency
//! against PostgreSQL: a password check held between its verification and its use while a reset
//! or an email change completes, and a refresh held at the user's row lock while a reset commits.

use std::time::Duration;

use diesel::QueryableByName;
use diesel_async::{
    AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _, SimpleAsyncConnection as _,
};
use serde_json::{Value, json};

use crate::support::TestApp;

async fn reset_password(app: &TestApp, site: &Value, email: &str, new: &str) {
    let site_id = site["uuid"].as_str().unwrap();
    let reply = app
        .tenant(
            "/api/auth/request-password-reset",
            site,
            json!({"site_id": site_id, "email": email}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    let token = app.emailed_token("password_reset", email).await;
    let reply = app
        .tenant(
            "/api/auth/reset-password",
            site,
            json!({"site_id": site_id, "token": token, "new_password": new}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
}

async fn login(app: &TestApp, site: &Value, email: &str, password: &str) -> crate::support::Reply {
    app.tenant(
        "/api/auth/login",
        site,
        json!({"site_id": site["uuid"], "email": email, "password": password}),
    )
    .await
}

async fn stored_hash(app: &TestApp, email: &str) -> String {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        password_hash: String,
    }
    let mut conn = AsyncPgConnection::establish(app.db.url()).await.unwrap();
    diesel::sql_query("SELECT password_hash FROM users WHERE email = $1")
        .bind::<diesel::sql_types::Text, _>(email)
        .get_result::<Row>(&mut conn)
        .await
        .unwrap()
        .password_hash
}

#[actix_web::test]
async fn a_login_checked_before_a_reset_mints_nothing_after_it() {
    let app = TestApp::new().await;
    let site = app.create_site("race-login.example.com").await;
    app.verified_user(&site, "me@example.com", "password-1")
        .await;

    let gate = app.hasher.hold_verifications();
    let (stale, ()) = tokio::join!(login(&app, &site, "me@example.com", "password-1"), async {
        gate.held().await;
        // The password is replaced while the login holds its check of the old one.
        app.hasher
            .release_for(
                async {
                    reset_password(&app, &site, "me@example.com", "password-2").await;
                },
                &gate,
            )
            .await;
    });
    stale.assert_error(401, "Invalid credentials");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM auth_tokens").await
            + app.count("SELECT count(*) AS n FROM refresh_tokens").await,
        0,
        "nothing minted from the old password survives"
    );
    assert_eq!(
        login(&app, &site, "me@example.com", "password-2")
            .await
            .status
            .as_u16(),
        200
    );
}

#[actix_web::test]
async fn a_login_checked_before_the_user_is_deleted_mints_nothing() {
    let app = TestApp::new().await;
    let site = app.create_site("race-delete.example.com").await;
    let user = app
        .verified_user(&site, "gone@example.com", "password-1")
        .await;
    let path = format!("/api/admin/users/{}", user["uuid"].as_str().unwrap());
    let gate = app.hasher.hold_verifications();
    let (stale, ()) = tokio::join!(
        login(&app, &site, "gone@example.com", "password-1"),
        async {
            gate.held().await;
            app.hasher
                .release_for(
                    async {
                        let deleted = app.master("DELETE", &path, None).await;
                        assert_eq!(deleted.status.as_u16(), 200, "{}", deleted.text());
                    },
                    &gate,
                )
                .await;
        }
    );
    // Not a 500 from a token referring to a deleted user: the login simply fails.
    stale.assert_error(401, "Invalid credentials");
    assert_eq!(app.count("SELECT count(*) AS n FROM auth_tokens").await, 0);
}

#[actix_web::test]
async fn a_rehash_never_undoes_a_reset_or_an_email_change() {
    let app = TestApp::new().await;
    let site = app.create_site("race-rehash.example.com").await;
    app.verified_user(&site, "old@example.com", "password-1")
        .await;
    // An adopted bcrypt hash: the next login replaces it.
    let bcrypt = bcrypt::hash("password-1", 4).unwrap();
    app.sql(&format!("UPDATE users SET password_hash = '{bcrypt}'"))
        .await;

    // The email changes while a login holds its check: the login succeeds, and its rehash writes
    // the hash alone.
    let user = login(&app, &site, "old@example.com", "password-1").await;
    assert_eq!(user.status.as_u16(), 200);
    app.sql(&format!("UPDATE users SET password_hash = '{bcrypt}'"))
        .await;
    let auth = user.json()["auth_token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let requested = app
        .bearer(
            "POST",
            "/api/auth/request-email-change",
            &auth,
            Some(json!({"new_email": "new@example.com", "password": "password-1"})),
        )
        .await;
    assert_eq!(requested.status.as_u16(), 200, "{}", requested.text());
    let change = app.emailed_token("email_change", "new@example.com").await;

    let gate = app.hasher.hold_verifications();
    let (rehashed, ()) = tokio::join!(login(&app, &site, "old@example.com", "password-1"), async {
        gate.held().await;
        app.hasher
            .release_for(
                async {
                    let confirmed = app
                        .send(
                            crate::support::request("POST", "/api/auth/confirm-email-change")
                                .set_json(json!({"token": change})),
                        )
                        .await;
                    assert_eq!(confirmed.status.as_u16(), 200, "{}", confirmed.text());
                },
                &gate,
            )
            .await;
    });
    assert_eq!(rehashed.status.as_u16(), 200, "{}", rehashed.text());
    assert_eq!(
        app.count("SELECT count(*) AS n FROM users WHERE email = 'new@example.com'")
            .await,
        1,
        "the rehash did not write the old address back"
    );
    assert!(
        stored_hash(&app, "new@example.com")
            .await
            .starts_with("$argon2id$")
    );

    // A reset while a login holds its check of the bcrypt hash: the login fails and the reset's
    // password stands.
    app.sql(&format!("UPDATE users SET password_hash = '{bcrypt}'"))
        .await;
    let gate = app.hasher.hold_verifications();
    let (stale, ()) = tokio::join!(login(&app, &site, "new@example.com", "password-1"), async {
        gate.held().await;
        app.hasher
            .release_for(
                async {
                    reset_password(&app, &site, "new@example.com", "password-3").await;
                },
                &gate,
            )
            .await;
    });
    stale.assert_error(401, "Invalid credentials");
    assert_eq!(
        login(&app, &site, "new@example.com", "password-3")
            .await
            .status
            .as_u16(),
        200
    );
}

#[actix_web::test]
async fn a_password_change_checked_before_a_reset_does_not_overwrite_it() {
    let app = TestApp::new().await;
    let site = app.create_site("race-change.example.com").await;
    let auth = app.signed_in(&site, "me@example.com", "password-1").await;
    let gate = app.hasher.hold_verifications();
    let change = app.bearer(
        "POST",
        "/api/auth/change-password",
        &auth,
        Some(json!({"old_password": "password-1", "new_password": "attacker-pw"})),
    );
    let (changed, ()) = tokio::join!(change, async {
        gate.held().await;
        app.hasher
            .release_for(
                async {
                    reset_password(&app, &site, "me@example.com", "owner-reset-pw").await;
                },
                &gate,
            )
            .await;
    });
    // The reset revoked the bearer token, or the change saw the hash had moved: either way the
    // change did not happen.
    assert!(
        [400, 401].contains(&changed.status.as_u16()),
        "{}",
        changed.text()
    );
    assert_eq!(
        login(&app, &site, "me@example.com", "owner-reset-pw")
            .await
            .status
            .as_u16(),
        200
    );
    assert_eq!(
        login(&app, &site, "me@example.com", "attacker-pw")
            .await
            .status
            .as_u16(),
        401
    );
}

#[actix_web::test]
async fn a_refresh_waiting_on_a_reset_finds_its_token_gone() {
    let app = TestApp::new().await;
    let site = app.create_site("race-refresh.example.com").await;
    app.verified_user(&site, "me@example.com", "password-1")
        .await;
    let session = login(&app, &site, "me@example.com", "password-1")
        .await
        .json();
    let refresh = session["refresh_token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A reset in flight: the user's row locked, its sessions deleted, not yet committed.
    let mut reset = AsyncPgConnection::establish(app.db.url()).await.unwrap();
    reset
        .batch_execute(
            "BEGIN; \
             SELECT 1 FROM users WHERE email = 'me@example.com' FOR NO KEY UPDATE; \
             UPDATE users SET password_hash = 'replaced' WHERE email = 'me@example.com'; \
             DELETE FROM auth_tokens; DELETE FROM refresh_tokens;",
        )
        .await
        .unwrap();
    let (refreshed, ()) = tokio::join!(
        app.send(
            crate::support::request("POST", "/api/auth/refresh")
                .set_json(json!({"refresh_token": refresh})),
        ),
        async {
            // Commit once the refresh waits on a lock the reset holds.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while app
                .count(
                    "SELECT count(*) AS n FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .await
                == 0
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the refresh never waited"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            reset.batch_execute("COMMIT").await.unwrap();
        }
    );
    refreshed.assert_error(401, "Invalid or expired refresh token");
    assert_eq!(app.count("SELECT count(*) AS n FROM auth_tokens").await, 0);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM refresh_tokens").await,
        0
    );
}

#[actix_web::test]
async fn a_confirmed_email_change_ends_every_link_sent_before_it() {
    let app = TestApp::new().await;
    let site = app.create_site("links.example.com").await;
    let site_id = site["uuid"].as_str().unwrap();
    let auth = app.signed_in(&site, "old@example.com", "password-1").await;
    // A reset link mailed to the old address, and two pending email changes.
    app.tenant(
        "/api/auth/request-password-reset",
        &site,
        json!({"site_id": site_id, "email": "old@example.com"}),
    )
    .await;
    let reset = app.emailed_token("password_reset", "old@example.com").await;
    for new in ["first@example.com", "second@example.com"] {
        let reply = app
            .bearer(
                "POST",
                "/api/auth/request-email-change",
                &auth,
                Some(json!({"new_email": new, "password": "password-1"})),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 200);
    }
    let first = app.emailed_token("email_change", "first@example.com").await;
    let second = app
        .emailed_token("email_change", "second@example.com")
        .await;
    app.sql(
        "INSERT INTO email_verification_tokens (site_uuid, user_uuid, token, expires_at, created_at) \
         SELECT site_uuid, uuid, 'pending-verification-digest', 9999999999, 0 FROM users",
    )
    .await;

    let confirmed = app
        .send(
            crate::support::request("POST", "/api/auth/confirm-email-change")
                .set_json(json!({"token": second})),
        )
        .await;
    assert_eq!(confirmed.status.as_u16(), 200, "{}", confirmed.text());

    let stale_reset = app
        .tenant(
            "/api/auth/reset-password",
            &site,
            json!({"site_id": site_id, "token": reset, "new_password": "hijacked-1"}),
        )
        .await;
    stale_reset.assert_error(400, "Invalid or expired reset token");
    let stale_change = app
        .send(
            crate::support::request("POST", "/api/auth/confirm-email-change")
                .set_json(json!({"token": first})),
        )
        .await;
    stale_change.assert_error(400, "Invalid or expired email change token");
    for table in [
        "password_reset_tokens",
        "email_verification_tokens",
        "email_change_requests",
    ] {
        assert_eq!(
            app.count(&format!("SELECT count(*) AS n FROM {table}"))
                .await,
            0,
            "{table}"
        );
    }
    // Sessions are kept.
    assert_eq!(
        app.bearer("GET", "/api/auth/me", &auth, None)
            .await
            .status
            .as_u16(),
        200
    );
}
