//! The token cache (decisions 88–91): two instances on one database, B's cache warm, and every
//! revocation or change made through A (or the CLI, or SQL) reaching B within a bounded time.
//!
//! Each test first proves B answers from its cache where that matters: a token row deleted with
//! the database's triggers switched off for that one session (`session_replication_role`) is
//! still accepted by a warm cache and refused by a database read.

use std::time::{Duration, Instant};

use aegis_postgres::TokenCacheSettings;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, SimpleAsyncConnection as _};
use serde_json::{Value, json};

use crate::support::{SECRET_KEY, TestApp, request};

/// How long a change made elsewhere may take to reach another instance's cache.
const BOUND: Duration = Duration::from_secs(2);

fn settings(enabled: bool, capacity: usize, ttl: Duration) -> TokenCacheSettings {
    TokenCacheSettings {
        enabled,
        capacity,
        ttl,
    }
}

/// Instance A and instance B (cache listening) on one database, a site and a signed-in user of
/// it: (a, b, site, user, token). B has answered `/me` for the token once, so it is cached.
async fn warm_pair(b_cache: TokenCacheSettings) -> (TestApp, TestApp, Value, Value, String) {
    let a = TestApp::new().await;
    let b = a.sibling_with_token_cache(b_cache).await;
    b.token_cache_listening().await;
    let site = a.create_site("cache.example.com").await;
    let user = a
        .verified_user(&site, "ada@example.com", "password-1")
        .await;
    let token = session(&a, &site, "ada@example.com", "password-1").await;
    warm(&b, &token).await;
    (a, b, site, user, token)
}

/// Has `app` answer `/me` for `token` until its cache holds an entry (a check that raced a
/// notification is not kept, and the setup's own writes notify).
async fn warm(app: &TestApp, token: &str) {
    let deadline = Instant::now() + BOUND;
    loop {
        me(app, token, 200).await;
        match &app.state.token_cache {
            Some(cache) if cache.is_empty() => {
                assert!(Instant::now() < deadline, "the cache never kept the token");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            _ => return,
        }
    }
}

async fn session(app: &TestApp, site: &Value, email: &str, password: &str) -> String {
    app.login(site, email, password).await["auth_token"]["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `GET /api/auth/me` answers `status`; its body.
async fn me(app: &TestApp, token: &str, status: u16) -> Value {
    let reply = app.bearer("GET", "/api/auth/me", token, None).await;
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text());
    reply.json()
}

/// Polls `/me` on `app` until `done` holds for the reply, for at most [`BOUND`].
async fn within_bound(app: &TestApp, token: &str, what: &str, done: impl Fn(u16, &Value) -> bool) {
    let deadline = Instant::now() + BOUND;
    loop {
        let reply = app.bearer("GET", "/api/auth/me", token, None).await;
        if done(reply.status.as_u16(), &reply.json()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within {BOUND:?}, still {} {}",
            reply.status,
            reply.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn refused_within_bound(app: &TestApp, token: &str, what: &str) {
    within_bound(app, token, what, |status, body| {
        status == 401 && body == &json!({"error": "Invalid or expired token"})
    })
    .await;
}

/// Runs `statements` on a session whose triggers are off: no notification is sent, so only a
/// database read can see the change.
async fn sql_unnotified(app: &TestApp, statements: &str) {
    let mut conn = AsyncPgConnection::establish(app.db.url()).await.unwrap();
    conn.batch_execute(&format!(
        "SET session_replication_role = replica; {statements}"
    ))
    .await
    .unwrap();
}

async fn delete_tokens_unnotified(app: &TestApp) {
    sql_unnotified(app, "DELETE FROM auth_tokens").await;
}

#[actix_web::test]
async fn a_warm_cache_answers_without_the_database_until_its_ttl_runs_out() {
    let (a, b, _site, _user, token) =
        warm_pair(settings(true, 1_000, Duration::from_secs(1))).await;
    delete_tokens_unnotified(&a).await;
    // A reads the database; B answers from its cache.
    me(&a, &token, 401).await;
    me(&b, &token, 200).await;
    // No entry outlives the TTL.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    me(&b, &token, 401).await;
}

#[actix_web::test]
async fn switched_off_every_check_reads_the_database() {
    let (a, b, _site, _user, token) =
        warm_pair(settings(false, 1_000, Duration::from_secs(30))).await;
    assert!(b.state.token_cache.is_none());
    delete_tokens_unnotified(&a).await;
    me(&b, &token, 401).await;
}

#[actix_web::test]
async fn a_cached_token_past_its_expiry_is_refused() {
    let (_a, b, _site, _user, token) = warm_pair(TokenCacheSettings::default()).await;
    let expires_at = b.clock_now() + 3_600;
    b.clock.set(expires_at);
    me(&b, &token, 200).await;
    b.clock.set(expires_at + 1);
    me(&b, &token, 401).await;
}

#[actix_web::test]
async fn the_capacity_bound_holds_and_the_oldest_entry_goes() {
    let (a, b, site, _user, first) = warm_pair(settings(true, 2, Duration::from_secs(30))).await;
    let second = session(&a, &site, "ada@example.com", "password-1").await;
    let third = session(&a, &site, "ada@example.com", "password-1").await;
    me(&b, &second, 200).await;
    me(&b, &third, 200).await;
    assert_eq!(b.state.token_cache.as_ref().unwrap().len(), 2);
    assert!(b.state.token_cache.as_ref().unwrap().len() <= 2);
    delete_tokens_unnotified(&a).await;
    // The two newest are still cached; the first was pushed out and is read from the database.
    me(&b, &third, 200).await;
    me(&b, &second, 200).await;
    me(&b, &first, 401).await;
}

#[actix_web::test]
async fn a_logout_on_one_instance_reaches_the_other_and_its_own_next_request() {
    let (a, b, _site, _user, token) = warm_pair(TokenCacheSettings::default()).await;
    a.token_cache_listening().await;
    me(&a, &token, 200).await;
    let reply = a
        .bearer("POST", "/api/auth/logout", &token, Some(json!({})))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // A's own cache applied the change before A answered the logout.
    me(&a, &token, 401).await;
    refused_within_bound(&b, &token, "logout on A").await;
}

#[actix_web::test]
async fn a_password_change_on_one_instance_reaches_the_other() {
    let (a, b, _site, _user, token) = warm_pair(TokenCacheSettings::default()).await;
    let reply = a
        .bearer(
            "POST",
            "/api/auth/change-password",
            &token,
            Some(json!({"old_password": "password-1", "new_password": "password-2"})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    refused_within_bound(&b, &token, "password change on A").await;
}

#[actix_web::test]
async fn a_password_reset_on_one_instance_reaches_the_other() {
    let (a, b, site, _user, token) = warm_pair(TokenCacheSettings::default()).await;
    let site_id = site["uuid"].as_str().unwrap();
    let reply = a
        .tenant(
            "/api/auth/request-password-reset",
            &site,
            json!({"site_id": site_id, "email": "ada@example.com"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let reset = a.emailed_token("password_reset", "ada@example.com").await;
    let reply = a
        .tenant(
            "/api/auth/reset-password",
            &site,
            json!({"site_id": site_id, "token": reset, "new_password": "password-2"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    refused_within_bound(&b, &token, "password reset on A").await;
}

#[actix_web::test]
async fn a_refresh_reuse_on_one_instance_reaches_the_other() {
    let (a, b, site, _user, _token) = warm_pair(TokenCacheSettings::default()).await;
    let session = a.login(&site, "ada@example.com", "password-1").await;
    let token = session["auth_token"]["token"].as_str().unwrap();
    let refresh = session["refresh_token"]["token"].as_str().unwrap();
    warm(&b, token).await;
    let body = json!({"refresh_token": refresh});
    let reply = a
        .send(request("POST", "/api/auth/refresh").set_json(body.clone()))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Presented again after the grace window: every session of the user is revoked.
    a.clock.advance(31);
    a.send(request("POST", "/api/auth/refresh").set_json(body))
        .await
        .assert_error(403, "Refresh token reuse detected - all sessions revoked");
    refused_within_bound(&b, token, "refresh reuse on A").await;
}

#[actix_web::test]
async fn a_user_deletion_on_one_instance_reaches_the_other() {
    let (a, b, _site, user, token) = warm_pair(TokenCacheSettings::default()).await;
    let path = format!("/api/admin/users/{}", user["uuid"].as_str().unwrap());
    let reply = a.master("DELETE", &path, None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    refused_within_bound(&b, &token, "user deletion on A").await;
}

#[actix_web::test]
async fn a_site_deletion_on_one_instance_reaches_the_other() {
    let (a, b, site, _user, token) = warm_pair(TokenCacheSettings::default()).await;
    let path = format!("/api/sites/{}", site["uuid"].as_str().unwrap());
    let reply = a.master("DELETE", &path, None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    refused_within_bound(&b, &token, "site deletion on A").await;
}

#[actix_web::test]
async fn an_email_change_on_one_instance_shows_on_the_other() {
    let (a, b, _site, _user, token) = warm_pair(TokenCacheSettings::default()).await;
    let reply = a
        .bearer(
            "POST",
            "/api/auth/request-email-change",
            &token,
            Some(json!({"new_email": "lovelace@example.com", "password": "password-1"})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let change = a
        .emailed_token("email_change", "lovelace@example.com")
        .await;
    let reply = a
        .send(request("POST", "/api/auth/confirm-email-change").set_json(json!({"token": change})))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    within_bound(&b, &token, "email change on A", |status, body| {
        status == 200 && body["email"] == "lovelace@example.com"
    })
    .await;
}

#[actix_web::test]
async fn a_deletion_protection_change_on_one_instance_shows_on_the_other() {
    let (a, b, _site, user, token) = warm_pair(TokenCacheSettings::default()).await;
    assert_eq!(me(&b, &token, 200).await["deletion_protected"], false);
    let path = format!("/api/admin/users/{}", user["uuid"].as_str().unwrap());
    let reply = a
        .master("PATCH", &path, Some(json!({"deletion_protected": true})))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    within_bound(&b, &token, "protection on A", |status, body| {
        status == 200 && body["deletion_protected"] == true
    })
    .await;
}

#[actix_web::test]
async fn a_role_change_by_the_cli_shows_on_a_running_instance() {
    let (a, b, _site, user, token) = warm_pair(TokenCacheSettings::default()).await;
    assert_eq!(me(&b, &token, 200).await["role"], "user");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args(["users", "set-role", user["uuid"].as_str().unwrap(), "admin"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", a.db.url())
        .env("AEGIS_ENV", "development")
        .env("SECRET_KEY", SECRET_KEY)
        .current_dir(std::env::temp_dir())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    within_bound(&b, &token, "role change by the CLI", |status, body| {
        status == 200 && body["role"] == "admin"
    })
    .await;
}

#[actix_web::test]
async fn a_revocation_while_the_listener_is_down_is_never_served_and_caching_resumes() {
    let (a, b, site, _user, token) = warm_pair(TokenCacheSettings::default()).await;
    let terminated = a
        .count(
            "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
             WHERE query ILIKE 'LISTEN%' AND datname = current_database()",
        )
        .await;
    assert!(terminated >= 1, "no listening backend found");
    // Revoked while nobody listens: the notification is lost.
    let mut conn = AsyncPgConnection::establish(a.db.url()).await.unwrap();
    conn.batch_execute("DELETE FROM auth_tokens").await.unwrap();
    refused_within_bound(&b, &token, "revocation during the outage").await;

    // B listens again, and caches again: a check it answered is kept.
    b.token_cache_listening().await;
    let again = session(&a, &site, "ada@example.com", "password-1").await;
    warm(&b, &again).await;
    delete_tokens_unnotified(&a).await;
    me(&b, &again, 200).await;
    me(&a, &again, 401).await;
}
