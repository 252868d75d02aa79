//! User management: listings, tenant lookup, admin creation, deletion, protection, resend, cleanup.

use serde_json::{Value, json};

use crate::support::{MASTER_KEY, T0, TestApp, request};

const GATE: &str = "{\"error\":\"Invalid or missing tenant API key\"}\n";

fn sid(site: &Value) -> &str {
    site["uuid"].as_str().unwrap()
}

async fn admin_token(app: &TestApp, site: &Value, email: &str) -> String {
    let user = app.verified_user(site, email, "admin-password").await;
    app.sql(&format!(
        "UPDATE users SET role = 'admin' WHERE uuid = '{}'",
        user["uuid"].as_str().unwrap()
    ))
    .await;
    app.login(site, email, "admin-password").await["auth_token"]["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[actix_web::test]
async fn operators_list_a_sites_users_oldest_first() {
    let app = TestApp::new().await;
    let site = app.create_site("list.example.com").await;
    let other = app.create_site("other.example.com").await;
    let first = app
        .verified_user(&site, "first@example.com", "password-1")
        .await;
    app.clock.advance(5);
    let second = app
        .verified_user(&site, "second@example.com", "password-1")
        .await;
    app.verified_user(&other, "elsewhere@example.com", "password-1")
        .await;
    for path in [
        format!("/api/sites/{}/users", sid(&site)),
        "/api/sites/by-domain/users?domain=LIST.example.com".to_owned(),
    ] {
        let reply = app.master("GET", &path, None).await;
        assert_eq!(reply.status.as_u16(), 200, "{path}: {}", reply.text());
        assert_eq!(reply.json(), json!([first, second]), "{path}");
        assert!(!reply.text().contains("password"));
    }
    app.master("GET", "/api/sites/by-domain/users", None)
        .await
        .assert_error(400, "Domain parameter is required");
    app.master(
        "GET",
        "/api/sites/by-domain/users?domain=none.example.com",
        None,
    )
    .await
    .assert_error(404, "Site not found");
    for bad in ["1", "0191e1a0-0000-7000-8000-0000000000ff", "x"] {
        app.master("GET", &format!("/api/sites/{bad}/users"), None)
            .await
            .assert_error(404, "Site not found");
    }
    app.send(request("GET", &format!("/api/sites/{}/users", sid(&site))))
        .await
        .assert_error(401, "Missing X-API-Key header");
}

#[actix_web::test]
async fn tenants_read_their_own_users_and_every_failure_is_the_gate() {
    let app = TestApp::new().await;
    let site = app.create_site("a.example.com").await;
    let other = app.create_site("b.example.com").await;
    let mine = app
        .verified_user(&site, "mine@example.com", "password-1")
        .await;
    let theirs = app
        .verified_user(&other, "theirs@example.com", "password-1")
        .await;
    let key = site["tenant_api_key"].as_str().unwrap();
    let get = |path: String| request("GET", &path).insert_header(("X-Tenant-Api-Key", key));

    let reply = app
        .send(get(format!(
            "/api/sites/{}/users/{}",
            sid(&site),
            mine["uuid"].as_str().unwrap()
        )))
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    assert_eq!(reply.json(), mine);

    let attempts = vec![
        get(format!(
            "/api/sites/{}/users/{}",
            sid(&site),
            theirs["uuid"].as_str().unwrap()
        )),
        get(format!(
            "/api/sites/{}/users/{}",
            sid(&other),
            theirs["uuid"].as_str().unwrap()
        )),
        get(format!(
            "/api/sites/{}/users/0191e1a0-0000-7000-8000-0000000000ff",
            sid(&site)
        )),
        get(format!("/api/sites/{}/users/1", sid(&site))),
        get(format!(
            "/api/sites/{}/users/999999999999999999999",
            sid(&site)
        )),
        get(format!("/api/sites/{}/users/not-a-uuid", sid(&site))),
        get(format!(
            "/api/sites/1/users/{}",
            mine["uuid"].as_str().unwrap()
        )),
        request(
            "GET",
            &format!(
                "/api/sites/{}/users/{}",
                sid(&site),
                mine["uuid"].as_str().unwrap()
            ),
        ),
        request(
            "GET",
            &format!(
                "/api/sites/{}/users/{}",
                sid(&site),
                mine["uuid"].as_str().unwrap()
            ),
        )
        .insert_header(("X-Tenant-Api-Key", "wrong")),
        // A body naming another site than the path: refused, even with the right key.
        get(format!(
            "/api/sites/{}/users/{}",
            sid(&site),
            mine["uuid"].as_str().unwrap()
        ))
        .set_json(json!({"site_id": sid(&other)})),
    ];
    for (i, attempt) in attempts.into_iter().enumerate() {
        let reply = app.send(attempt).await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (401, GATE),
            "#{i}"
        );
    }
}

#[actix_web::test]
async fn operators_create_users_with_a_role() {
    let app = TestApp::new().await;
    let site = app.create_site("reg.example.com").await;
    app.master(
        "PUT",
        &format!("/api/sites/{}", sid(&site)),
        Some(json!({"allow_self_registration": false})),
    )
    .await;
    let reply = app
        .master(
            "POST",
            "/api/admin/register",
            Some(json!({"site_id": sid(&site), "email": "Boss@Example.com", "role": "admin"})),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text());
    let user = reply.json();
    assert_eq!(
        (
            user["email"].as_str(),
            user["role"].as_str(),
            user["is_verified"].as_bool()
        ),
        (Some("boss@example.com"), Some("admin"), Some(false))
    );
    app.last_email("verification", "boss@example.com").await;
    app.master(
        "POST",
        "/api/admin/register",
        Some(json!({"site_id": sid(&site), "email": "boss@example.com"})),
    )
    .await
    .assert_error(400, "Email already registered for this site");
    let cases = [
        (
            json!({"site_id": sid(&site), "email": "a@example.com", "password": "password-1"}),
            json!({"password": ["Unknown field."]}),
        ),
        (
            json!({"site_id": 1, "email": "a@example.com"}),
            json!({"site_id": ["Unknown or invalid site identifier"]}),
        ),
        (
            json!({"site_id": "1", "email": "a@example.com"}),
            json!({"site_id": ["Unknown or invalid site identifier"]}),
        ),
        (
            json!({"site_id": "0191e1a0-0000-7000-8000-0000000000ff", "email": "a@example.com"}),
            json!({"site_id": ["Unknown or invalid site identifier"]}),
        ),
        (
            json!({"email": "a@example.com"}),
            json!({"site_id": ["Missing data for required field."]}),
        ),
        (
            json!({"site_id": sid(&site), "email": "a@example.com", "role": "owner"}),
            json!({"role": ["Must be one of: user, admin."]}),
        ),
    ];
    for (body, details) in cases {
        app.master("POST", "/api/admin/register", Some(body))
            .await
            .assert_validation(details);
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 1);
}

#[actix_web::test]
async fn site_admins_manage_their_own_site_only() {
    let app = TestApp::new().await;
    let site = app.create_site("adm.example.com").await;
    let other = app.create_site("oth.example.com").await;
    let admin = admin_token(&app, &site, "admin@example.com").await;
    app.verified_user(&site, "member@example.com", "password-1")
        .await;
    app.verified_user(&other, "outsider@example.com", "password-1")
        .await;
    let member = app.login(&site, "member@example.com", "password-1").await["auth_token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let reply = app.bearer("GET", "/api/admin/users", &admin, None).await;
    assert_eq!(reply.status.as_u16(), 200);
    let list = reply.json();
    let emails: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(emails, ["admin@example.com", "member@example.com"]);

    app.bearer("GET", "/api/admin/users", &member, None)
        .await
        .assert_error(403, "Insufficient permissions");
    app.send(request("GET", "/api/admin/users"))
        .await
        .assert_error(401, "Missing authorization header");
    app.bearer(
        "POST",
        "/api/admin/register-user",
        &member,
        Some(json!({"email": "x@example.com"})),
    )
    .await
    .assert_error(403, "Insufficient permissions");

    let reply = app
        .bearer(
            "POST",
            "/api/admin/register-user",
            &admin,
            Some(json!({"email": "new@example.com", "role": "admin"})),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text());
    assert_eq!(reply.json()["site_uuid"], site["uuid"]);
    app.bearer(
        "POST",
        "/api/admin/register-user",
        &admin,
        Some(json!({"email": "new@example.com"})),
    )
    .await
    .assert_error(400, "Email already registered for this site");
    app.bearer(
        "POST",
        "/api/admin/register-user",
        &admin,
        Some(json!({"email": "y@example.com", "site_id": sid(&other)})),
    )
    .await
    .assert_validation(json!({"site_id": ["Unknown field."]}));
    // A bearer is not the master key.
    app.bearer("GET", "/api/sites", &admin, None)
        .await
        .assert_error(401, "Missing X-API-Key header");
}

#[actix_web::test]
async fn deleting_users_respects_every_guard_and_notifies_the_tenant() {
    let app = TestApp::new().await;
    let mut body = crate::support::site_body("del.example.com");
    body["webhook_url"] = json!("https://hooks.example.com/aegis");
    let site = app.master("POST", "/api/sites", Some(body)).await.json();
    admin_token(&app, &site, "admin1@example.com").await;
    let member = app
        .verified_user(&site, "member@example.com", "password-1")
        .await;
    let member_id = member["uuid"].as_str().unwrap();
    let admin1: String = app
        .master("GET", &format!("/api/sites/{}/users", sid(&site)), None)
        .await
        .json()[0]["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = app
        .count("SELECT count(*) AS n FROM webhook_deliveries")
        .await;
    let delete = |id: &str| {
        let path = format!("/api/admin/users/{id}");
        let app = &app;
        async move { app.master("DELETE", &path, None).await }
    };

    for bad in [
        "99999",
        "not-a-uuid",
        "0191e1a0-0000-7000-8000-0000000000ff",
    ] {
        delete(bad).await.assert_error(404, "User not found");
    }
    let reply = delete(&admin1).await;
    assert_eq!(reply.status.as_u16(), 409);
    assert_eq!(
        reply.json(),
        json!({"error": "Cannot delete the last admin of a site", "code": "last_site_admin"})
    );

    app.master(
        "PATCH",
        &format!("/api/admin/users/{member_id}"),
        Some(json!({"deletion_protected": true})),
    )
    .await;
    let reply = delete(member_id).await;
    assert_eq!(
        reply.json(),
        json!({"error": "User is protected from deletion", "code": "user_deletion_protected"})
    );
    app.master(
        "PATCH",
        &format!("/api/admin/users/{member_id}"),
        Some(json!({"deletion_protected": false})),
    )
    .await;

    app.master(
        "PUT",
        &format!("/api/sites/{}", sid(&site)),
        Some(json!({"deletion_protected": true})),
    )
    .await;
    let reply = delete(member_id).await;
    assert_eq!(
        reply.json(),
        json!({"error": "This site is protected from deletion; none of its users can be deleted", "code": "site_deletion_protected"})
    );
    app.master(
        "PUT",
        &format!("/api/sites/{}", sid(&site)),
        Some(json!({"deletion_protected": false})),
    )
    .await;
    assert_eq!(
        app.count("SELECT count(*) AS n FROM webhook_deliveries")
            .await,
        before,
        "refusals notify nobody"
    );
    app.send(request("DELETE", &format!("/api/admin/users/{member_id}")))
        .await
        .assert_error(401, "Missing X-API-Key header");

    let reply = delete(member_id).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"message": format!("User {member_id} deleted successfully")})
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM users WHERE uuid = '{member_id}'"
        ))
        .await,
        0
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM auth_tokens WHERE user_uuid = '{member_id}'"
        ))
        .await,
        0
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM webhook_deliveries WHERE event_type = 'user.deleted' \
             AND payload LIKE '%\"user_uuid\":\"{member_id}\"%' AND payload LIKE '%\"aegis_role\":\"user\"%' \
             AND payload LIKE '%\"email\":\"member@example.com\"%' AND payload LIKE '%\"timestamp\":{T0}}}'"
        ))
        .await,
        1
    );

    // With two admins, one can go.
    let second = app
        .master(
            "POST",
            "/api/admin/register",
            Some(json!({"site_id": sid(&site), "email": "admin2@example.com", "role": "admin"})),
        )
        .await
        .json();
    assert_eq!(
        delete(second["uuid"].as_str().unwrap())
            .await
            .status
            .as_u16(),
        200
    );
    assert_eq!(delete(&admin1).await.status.as_u16(), 409);
}

#[actix_web::test]
async fn protection_flags_are_strict_booleans() {
    let app = TestApp::new().await;
    let site = app.create_site("flag.example.com").await;
    let user = app
        .verified_user(&site, "f@example.com", "password-1")
        .await;
    let path = format!("/api/admin/users/{}", user["uuid"].as_str().unwrap());
    for value in [
        json!("false"),
        json!("0"),
        json!("off"),
        json!("no"),
        json!(0),
        json!(0.0),
        json!(1),
        json!("true"),
    ] {
        app.master("PATCH", &path, Some(json!({"deletion_protected": value})))
            .await
            .assert_validation(
                json!({"deletion_protected": ["Not a valid boolean (expected true or false)."]}),
            );
    }
    app.master("PATCH", &path, Some(json!({"deletion_protected": null})))
        .await
        .assert_validation(json!({"deletion_protected": ["Field may not be null."]}));
    app.master("PATCH", &path, Some(json!({})))
        .await
        .assert_validation(json!({"deletion_protected": ["Missing data for required field."]}));
    app.master(
        "PATCH",
        "/api/admin/users/0191e1a0-0000-7000-8000-0000000000ff",
        Some(json!({"deletion_protected": "x"})),
    )
    .await
    .assert_validation(
        json!({"deletion_protected": ["Not a valid boolean (expected true or false)."]}),
    );
    app.master(
        "PATCH",
        "/api/admin/users/0191e1a0-0000-7000-8000-0000000000ff",
        Some(json!({"deletion_protected": true})),
    )
    .await
    .assert_error(404, "User not found");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM users WHERE deletion_protected")
            .await,
        0
    );

    app.clock.advance(9);
    let reply = app
        .master("PATCH", &path, Some(json!({"deletion_protected": true})))
        .await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(
        (
            reply.json()["deletion_protected"].as_bool(),
            reply.json()["updated_at"].as_i64()
        ),
        (Some(true), Some(T0 + 9))
    );
    let reply = app
        .master("DELETE", &format!("/api/sites/{}", sid(&site)), None)
        .await;
    assert_eq!(reply.json()["code"], "site_has_protected_users");
    // The tenant lookup shows the flag.
    let seen = app
        .send(
            request(
                "GET",
                &format!(
                    "/api/sites/{}/users/{}",
                    sid(&site),
                    user["uuid"].as_str().unwrap()
                ),
            )
            .insert_header(("X-Tenant-Api-Key", site["tenant_api_key"].as_str().unwrap())),
        )
        .await;
    assert_eq!(seen.json()["deletion_protected"], json!(true));
}

#[actix_web::test]
async fn resend_verification_supersedes_older_links() {
    let app = TestApp::new().await;
    let site = app.create_site("resend.example.com").await;
    let user = app
        .master(
            "POST",
            "/api/admin/register",
            Some(json!({"site_id": sid(&site), "email": "r@example.com"})),
        )
        .await
        .json();
    let old = app.emailed_token("verification", "r@example.com").await;
    let path = format!(
        "/api/admin/resend-verification/{}",
        user["uuid"].as_str().unwrap()
    );
    let reply = app.master("POST", &path, None).await;
    assert_eq!(
        reply.json(),
        json!({"message": "Verification email sent successfully"})
    );
    let new = app.emailed_token("verification", "r@example.com").await;
    assert_ne!(old, new);
    let check = |token: String| {
        app.tenant(
            "/api/auth/check-verification-token",
            &site,
            json!({"site_id": sid(&site), "token": token}),
        )
    };
    check(old)
        .await
        .assert_error(400, "Invalid or expired verification token");
    assert_eq!(check(new.clone()).await.status.as_u16(), 200);

    app.tenant(
        "/api/auth/verify-email",
        &site,
        json!({"site_id": sid(&site), "token": new, "password": "password-1"}),
    )
    .await;
    app.master("POST", &path, None)
        .await
        .assert_error(400, "User is already verified");
    app.master("POST", "/api/admin/resend-verification/42", None)
        .await
        .assert_error(404, "User not found");
    app.send(request("POST", &path).insert_header(("X-API-Key", format!("{MASTER_KEY}!"))))
        .await
        .assert_error(401, "Invalid API key");
}

#[actix_web::test]
async fn cleanup_removes_only_expired_rows() {
    let app = TestApp::new().await;
    let site = app.create_site("clean.example.com").await;
    let user = app
        .verified_user(&site, "c@example.com", "password-1")
        .await;
    let (s, u) = (sid(&site), user["uuid"].as_str().unwrap());
    let mut sql = String::new();
    for (i, expires) in [(1, T0 - 1), (2, T0)] {
        sql.push_str(&format!(
            "INSERT INTO auth_tokens (site_uuid, user_uuid, token, expires_at, created_at) VALUES ('{s}', '{u}', 'a{i}', {expires}, 1); \
             INSERT INTO refresh_tokens (site_uuid, user_uuid, token, family_id, expires_at, created_at) VALUES ('{s}', '{u}', 'r{i}', 'f', {expires}, 1); \
             INSERT INTO email_verification_tokens (site_uuid, user_uuid, token, expires_at, created_at) VALUES ('{s}', '{u}', 'v{i}', {expires}, 1); \
             INSERT INTO password_reset_tokens (site_uuid, user_uuid, token, expires_at, created_at) VALUES ('{s}', '{u}', 'p{i}', {expires}, 1); \
             INSERT INTO email_change_requests (site_uuid, user_uuid, new_email, token, expires_at, created_at) VALUES ('{s}', '{u}', 'x@example.com', 'e{i}', {expires}, 1);"
        ));
    }
    app.sql(&sql).await;
    let reply = app
        .master("POST", "/api/admin/cleanup-expired-tokens", None)
        .await;
    assert_eq!(
        reply.json(),
        json!({"auth_tokens": 1, "refresh_tokens": 1, "email_verification_tokens": 1,
               "password_reset_tokens": 1, "email_change_requests": 1, "total": 5})
    );
    for (table, live) in [
        ("auth_tokens", "a2"),
        ("refresh_tokens", "r2"),
        ("email_verification_tokens", "v2"),
        ("password_reset_tokens", "p2"),
        ("email_change_requests", "e2"),
    ] {
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) AS n FROM {table} WHERE token = '{live}'"
            ))
            .await,
            1,
            "{table}"
        );
    }
    let again = app
        .master("POST", "/api/admin/cleanup-expired-tokens", None)
        .await;
    assert_eq!(again.json()["total"], json!(0));
    app.send(request("POST", "/api/admin/cleanup-expired-tokens"))
        .await
        .assert_error(401, "Missing X-API-Key header");
}
