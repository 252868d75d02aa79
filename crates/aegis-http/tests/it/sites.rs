//! Site management: create, list, look up, update and delete sites.

use serde_json::{Value, json};

use crate::support::{T0, TestApp, request, site_body};

const UNKNOWN_ID: &str = "0191e1a0-0000-7000-8000-0000000000ff";

/// Booleans the reference rejects on strict fields, with the message each gets.
fn non_booleans() -> Vec<(Value, &'static str)> {
    let not_bool = "Not a valid boolean (expected true or false).";
    vec![
        (json!("false"), not_bool),
        (json!("0"), not_bool),
        (json!("off"), not_bool),
        (json!("no"), not_bool),
        (json!("true"), not_bool),
        (json!(0), not_bool),
        (json!(0.0), not_bool),
        (json!(1), not_bool),
        (json!(null), "Field may not be null."),
    ]
}

fn is_hex64(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 64
            && s.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    })
}

// ---------------------------------------------------------------- create

#[actix_web::test]
async fn create_returns_the_admin_view_and_persists_the_site() {
    let app = TestApp::new().await;
    let site = app.create_site("Shop.Example.com").await;
    let uuid = site["uuid"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(uuid).unwrap().get_version_num(), 7);
    assert_eq!(uuid, uuid.to_lowercase());
    assert!(is_hex64(&site["tenant_api_key"]));
    let mut expected = json!({
        "uuid": uuid,
        "name": "Example",
        "domain": "shop.example.com",
        "frontend_url": "http://test.example.com",
        "verification_redirect_url": null,
        "email_from": "noreply@example.com",
        "email_from_name": "Example Team",
        "created_at": T0,
        "updated_at": T0,
        "allow_self_registration": true,
        "webhook_url": null,
        "webhook_secret": null,
        "tenant_api_key": site["tenant_api_key"],
        "mailgun_domain": null,
        "mailgun_api_key": null,
        "deletion_protected": false,
    });
    assert_eq!(site, expected);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM sites WHERE uuid = '{uuid}' AND domain = 'shop.example.com' \
             AND tenant_api_key = '{}'",
            site["tenant_api_key"].as_str().unwrap()
        ))
        .await,
        1
    );

    // With every optional field.
    let mut body = site_body("full.example.com");
    body["verification_redirect_url"] = json!("https://full.example.com/welcome");
    body["allow_self_registration"] = json!(false);
    body["webhook_url"] = json!("http://10.0.0.5:8080/hook");
    body["mailgun_domain"] = json!("mg.example.com");
    body["mailgun_api_key"] = json!("key-123");
    let reply = app.master("POST", "/api/sites", Some(body)).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text());
    let full = reply.json();
    assert!(is_hex64(&full["webhook_secret"]));
    assert_ne!(full["webhook_secret"], full["tenant_api_key"]);
    expected = json!({
        "uuid": full["uuid"], "name": "Example", "domain": "full.example.com",
        "frontend_url": "http://test.example.com",
        "verification_redirect_url": "https://full.example.com/welcome",
        "email_from": "noreply@example.com", "email_from_name": "Example Team",
        "created_at": T0, "updated_at": T0, "allow_self_registration": false,
        "webhook_url": "http://10.0.0.5:8080/hook", "webhook_secret": full["webhook_secret"],
        "tenant_api_key": full["tenant_api_key"], "mailgun_domain": "mg.example.com",
        "mailgun_api_key": "key-123", "deletion_protected": false,
    });
    assert_eq!(full, expected);
    assert_ne!(full["uuid"], site["uuid"]);
}

#[actix_web::test]
async fn a_duplicate_domain_is_refused_in_any_case() {
    let app = TestApp::new().await;
    app.create_site("dup.example.com").await;
    for domain in ["dup.example.com", "DUP.Example.COM"] {
        let reply = app
            .master("POST", "/api/sites", Some(site_body(domain)))
            .await;
        assert_eq!(reply.status.as_u16(), 400);
        assert_eq!(reply.text(), "{\"error\":\"Domain already exists\"}\n");
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM sites").await, 1);
}

#[actix_web::test]
async fn create_validation_collects_every_field_error() {
    let app = TestApp::new().await;
    let missing = "Missing data for required field.";
    app.master("POST", "/api/sites", Some(json!({})))
        .await
        .assert_validation(json!({
            "name": [missing], "domain": [missing], "frontend_url": [missing],
            "email_from": [missing], "email_from_name": [missing],
        }));

    let reply = app
        .master(
            "POST",
            "/api/sites",
            Some(json!({
                "name": "",
                "domain": "d".repeat(256),
                "frontend_url": "http://aegis-backend:5678/x",
                "verification_redirect_url": format!("https://x.example.com/{}", "a".repeat(250)),
                "email_from": "a@b",
                "email_from_name": 7,
                "webhook_url": "ftp//nope",
                "mailgun_domain": "m".repeat(256),
                "mailgun_api_key": false,
                "allow_self_registration": "yes",
            })),
        )
        .await;
    reply.assert_validation(json!({
        "name": ["Length must be between 1 and 255."],
        "domain": ["Length must be between 1 and 255."],
        "frontend_url": ["Not a valid URL."],
        "verification_redirect_url": ["Longer than maximum length 255."],
        "email_from": ["Not a valid email address."],
        "email_from_name": ["Not a valid string."],
        "webhook_url": ["Not a valid URL."],
        "mailgun_domain": ["Longer than maximum length 255."],
        "mailgun_api_key": ["Not a valid string."],
        "allow_self_registration": ["Not a valid boolean (expected true or false)."],
    }));

    let mut body = site_body("n.example.com");
    body["frontend_url"] = json!(null);
    body["email_from"] = json!(format!("{}@example.com", "a".repeat(250)));
    app.master("POST", "/api/sites", Some(body))
        .await
        .assert_validation(json!({
            "frontend_url": ["Field may not be null."],
            "email_from": ["Longer than maximum length 255."],
        }));
    assert_eq!(app.count("SELECT count(*) AS n FROM sites").await, 0);
}

#[actix_web::test]
async fn create_rejects_unknown_and_server_generated_fields() {
    let app = TestApp::new().await;
    for field in [
        "deletion_protected",
        "webhook_secret",
        "tenant_api_key",
        "uuid",
        "id",
        "extra",
    ] {
        let mut body = site_body("u.example.com");
        body[field] = json!(true);
        app.master("POST", "/api/sites", Some(body))
            .await
            .assert_validation(json!({ field: ["Unknown field."] }));
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM sites").await, 0);
}

#[actix_web::test]
async fn create_accepts_only_json_booleans_for_self_registration() {
    let app = TestApp::new().await;
    for (value, message) in non_booleans() {
        let mut body = site_body("b.example.com");
        body["allow_self_registration"] = value;
        app.master("POST", "/api/sites", Some(body))
            .await
            .assert_validation(json!({ "allow_self_registration": [message] }));
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM sites").await, 0);
}

#[actix_web::test]
async fn nullable_fields_accept_null_on_create() {
    let app = TestApp::new().await;
    let mut body = site_body("nulls.example.com");
    for field in [
        "verification_redirect_url",
        "webhook_url",
        "mailgun_domain",
        "mailgun_api_key",
    ] {
        body[field] = json!(null);
    }
    let reply = app.master("POST", "/api/sites", Some(body)).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text());
    assert_eq!(reply.json()["webhook_secret"], json!(null));
}

// ---------------------------------------------------------------- list and get

#[actix_web::test]
async fn list_is_newest_first_and_shows_protection() {
    let app = TestApp::new().await;
    let first = app.create_site("one.example.com").await;
    app.clock.advance(10);
    let second = app.create_site("two.example.com").await;
    let path = format!("/api/sites/{}", first["uuid"].as_str().unwrap());
    let reply = app
        .master("PUT", &path, Some(json!({"deletion_protected": true})))
        .await;
    assert_eq!(reply.status.as_u16(), 200);

    let list = app.master("GET", "/api/sites", None).await.json();
    let uuids: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["uuid"])
        .collect();
    assert_eq!(uuids, [&second["uuid"], &first["uuid"]]);
    assert_eq!(list[1]["deletion_protected"], json!(true));
    assert_eq!(list[0]["deletion_protected"], json!(false));
    assert!(list[0].get("id").is_none());
}

#[actix_web::test]
async fn get_accepts_uuid_forms_and_treats_anything_else_as_unknown() {
    let app = TestApp::new().await;
    let site = app.create_site("get.example.com").await;
    let uuid = site["uuid"].as_str().unwrap();
    for form in [
        uuid.to_owned(),
        uuid.to_uppercase(),
        format!("{{{uuid}}}"),
        uuid.replace('-', ""),
    ] {
        let reply = app.master("GET", &format!("/api/sites/{form}"), None).await;
        assert_eq!(reply.status.as_u16(), 200, "{form}");
        assert_eq!(reply.json(), site);
    }
    for bad in [
        "1".to_owned(),
        "999999999999999999999".to_owned(),
        "not-a-uuid".to_owned(),
        format!("urn:uuid:{uuid}"),
        UNKNOWN_ID.to_owned(),
        "%00".to_owned(),
        "by-domain-x".to_owned(),
    ] {
        app.master("GET", &format!("/api/sites/{bad}"), None)
            .await
            .assert_error(404, "Site not found");
    }
}

// ---------------------------------------------------------------- by domain

#[actix_web::test]
async fn by_domain_is_public_and_hides_secrets() {
    let app = TestApp::new().await;
    let mut body = site_body("public.example.com");
    body["webhook_url"] = json!("https://hooks.example.com/in");
    body["mailgun_api_key"] = json!("key-secret");
    body["mailgun_domain"] = json!("mg.example.com");
    let site = app.master("POST", "/api/sites", Some(body)).await.json();

    for domain in ["public.example.com", "PUBLIC.example.COM"] {
        let reply = app
            .send(request(
                "GET",
                &format!("/api/sites/by-domain?domain={domain}"),
            ))
            .await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
        assert_eq!(
            reply.json(),
            json!({
                "uuid": site["uuid"], "name": "Example", "domain": "public.example.com",
                "frontend_url": "http://test.example.com", "verification_redirect_url": null,
                "email_from": "noreply@example.com", "email_from_name": "Example Team",
                "created_at": T0, "updated_at": T0, "allow_self_registration": true,
            })
        );
        for secret in ["tenant_api_key", "webhook_secret", "mailgun_api_key"] {
            let value = site[secret].as_str().unwrap();
            assert!(!reply.text().contains(value), "{secret} leaked");
        }
    }
}

#[actix_web::test]
async fn by_domain_errors() {
    let app = TestApp::new().await;
    for path in [
        "/api/sites/by-domain",
        "/api/sites/by-domain?domain=",
        "/api/sites/by-domain?other=x",
    ] {
        app.send(request("GET", path))
            .await
            .assert_error(400, "Domain parameter is required");
    }
    app.send(request(
        "GET",
        "/api/sites/by-domain?domain=nobody.example.com",
    ))
    .await
    .assert_error(404, "Site not found");
    app.send(request("GET", "/api/sites/by-domain?domain=%ZZ%00"))
        .await
        .assert_error(404, "Site not found");
}

#[actix_web::test]
async fn put_and_delete_on_by_domain_fall_through_to_an_unknown_site() {
    let app = TestApp::new().await;
    app.master("PUT", "/api/sites/by-domain", Some(json!({"name": "x"})))
        .await
        .assert_error(404, "Site not found");
    app.master("DELETE", "/api/sites/by-domain", None)
        .await
        .assert_error(404, "Site not found");
}

// ---------------------------------------------------------------- update

#[actix_web::test]
async fn update_applies_only_the_fields_sent() {
    let app = TestApp::new().await;
    let site = app.create_site("patch.example.com").await;
    let path = format!("/api/sites/{}", site["uuid"].as_str().unwrap());
    app.clock.advance(60);
    let reply = app
        .master(
            "PUT",
            &path,
            Some(json!({"name": "Renamed", "domain": "NEW.example.com"})),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    let mut expected = site.clone();
    expected["name"] = json!("Renamed");
    expected["domain"] = json!("new.example.com");
    expected["updated_at"] = json!(T0 + 60);
    assert_eq!(reply.json(), expected);
    assert_eq!(app.master("GET", &path, None).await.json(), expected);
}

#[actix_web::test]
async fn update_manages_the_webhook_secret() {
    let app = TestApp::new().await;
    let site = app.create_site("hook.example.com").await;
    let path = format!("/api/sites/{}", site["uuid"].as_str().unwrap());
    let put = |body: Value| {
        let app = &app;
        let path = path.clone();
        async move {
            let reply = app.master("PUT", &path, Some(body)).await;
            assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
            reply.json()
        }
    };

    // Without a URL, regenerating does nothing.
    let s = put(json!({"regenerate_webhook_secret": true})).await;
    assert_eq!(s["webhook_secret"], json!(null));

    let s1 = put(json!({"webhook_url": "https://hooks.example.com/a"})).await;
    assert!(is_hex64(&s1["webhook_secret"]));
    // The same URL again still issues a new secret.
    let s2 = put(json!({"webhook_url": "https://hooks.example.com/a"})).await;
    assert_ne!(s2["webhook_secret"], s1["webhook_secret"]);
    let s3 = put(json!({"regenerate_webhook_secret": true})).await;
    assert_ne!(s3["webhook_secret"], s2["webhook_secret"]);
    assert_eq!(s3["webhook_url"], "https://hooks.example.com/a");
    let s4 = put(json!({"regenerate_webhook_secret": false})).await;
    assert_eq!(s4["webhook_secret"], s3["webhook_secret"]);
    let s5 = put(json!({"webhook_url": null})).await;
    assert_eq!(
        (&s5["webhook_url"], &s5["webhook_secret"]),
        (&json!(null), &json!(null))
    );
}

#[actix_web::test]
async fn update_rotates_the_tenant_key_only_when_asked() {
    let app = TestApp::new().await;
    let site = app.create_site("key.example.com").await;
    let path = format!("/api/sites/{}", site["uuid"].as_str().unwrap());
    let same = app
        .master(
            "PUT",
            &path,
            Some(json!({"regenerate_tenant_api_key": false})),
        )
        .await
        .json();
    assert_eq!(same["tenant_api_key"], site["tenant_api_key"]);
    let rotated = app
        .master(
            "PUT",
            &path,
            Some(json!({"regenerate_tenant_api_key": true})),
        )
        .await
        .json();
    assert!(is_hex64(&rotated["tenant_api_key"]));
    assert_ne!(rotated["tenant_api_key"], site["tenant_api_key"]);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM sites WHERE tenant_api_key = '{}'",
            rotated["tenant_api_key"].as_str().unwrap()
        ))
        .await,
        1
    );
}

#[actix_web::test]
async fn update_clears_nullable_fields_and_stores_empty_mailgun_strings() {
    let app = TestApp::new().await;
    let mut body = site_body("clear.example.com");
    body["verification_redirect_url"] = json!("https://clear.example.com/ok");
    body["mailgun_domain"] = json!("mg.example.com");
    body["mailgun_api_key"] = json!("key-1");
    let site = app.master("POST", "/api/sites", Some(body)).await.json();
    let path = format!("/api/sites/{}", site["uuid"].as_str().unwrap());
    let reply = app
        .master(
            "PUT",
            &path,
            Some(json!({"verification_redirect_url": null, "mailgun_domain": null, "mailgun_api_key": "", "allow_self_registration": false})),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    let updated = reply.json();
    assert_eq!(updated["verification_redirect_url"], json!(null));
    assert_eq!(updated["mailgun_domain"], json!(null));
    assert_eq!(updated["mailgun_api_key"], json!(""));
    assert_eq!(updated["allow_self_registration"], json!(false));
}

#[actix_web::test]
async fn update_validation_and_order_of_checks() {
    let app = TestApp::new().await;
    let site = app.create_site("order.example.com").await;
    let path = format!("/api/sites/{}", site["uuid"].as_str().unwrap());
    let unknown = format!("/api/sites/{UNKNOWN_ID}");

    // An empty object, on a known or unknown site, before the lookup.
    for p in [&path, &unknown] {
        app.master("PUT", p, Some(json!({})))
            .await
            .assert_error(400, "At least one field must be provided");
    }
    // A bad body on an unknown site is a 400, not a 404.
    app.master("PUT", &unknown, Some(json!({"uuid": "x"})))
        .await
        .assert_validation(json!({"uuid": ["Unknown field."]}));
    app.master("PUT", &unknown, Some(json!({"name": "x"})))
        .await
        .assert_error(404, "Site not found");
    app.master("PUT", "/api/sites/1", Some(json!({"name": "x"})))
        .await
        .assert_error(404, "Site not found");

    app.master(
        "PUT",
        &path,
        Some(json!({"frontend_url": null, "name": "", "email_from": "nope", "webhook_url": "x"})),
    )
    .await
    .assert_validation(json!({
        "frontend_url": ["Field may not be null."],
        "name": ["Length must be between 1 and 255."],
        "email_from": ["Not a valid email address."],
        "webhook_url": ["Not a valid URL."],
    }));

    for field in [
        "deletion_protected",
        "allow_self_registration",
        "regenerate_tenant_api_key",
        "regenerate_webhook_secret",
    ] {
        for (value, message) in non_booleans() {
            app.master("PUT", &path, Some(json!({ field: value })))
                .await
                .assert_validation(json!({ field: [message] }));
        }
    }
    // Nothing changed through any of it.
    assert_eq!(app.master("GET", &path, None).await.json(), site);
}

#[actix_web::test]
async fn update_to_a_taken_domain_is_refused() {
    let app = TestApp::new().await;
    app.create_site("taken.example.com").await;
    let site = app.create_site("mine.example.com").await;
    let path = format!("/api/sites/{}", site["uuid"].as_str().unwrap());
    app.master(
        "PUT",
        &path,
        Some(json!({"domain": "Taken.example.com", "name": "X"})),
    )
    .await
    .assert_error(400, "Domain already exists");
    assert_eq!(app.master("GET", &path, None).await.json(), site);
    // Keeping one's own domain is not a conflict.
    let reply = app
        .master("PUT", &path, Some(json!({"domain": "mine.example.com"})))
        .await;
    assert_eq!(reply.status.as_u16(), 200);
}

// ---------------------------------------------------------------- delete

#[actix_web::test]
async fn delete_removes_the_site_and_everything_in_it() {
    let app = TestApp::new().await;
    let site = app.create_site("gone.example.com").await;
    let uuid = site["uuid"].as_str().unwrap();
    app.sql(&format!(
        "INSERT INTO users (uuid, site_uuid, email, created_at, updated_at) VALUES \
         ('0191e1a0-0000-7000-8000-0000000000a1', '{uuid}', 'u@example.com', 1, 1); \
         INSERT INTO auth_tokens (site_uuid, user_uuid, token, expires_at, created_at) VALUES \
         ('{uuid}', '0191e1a0-0000-7000-8000-0000000000a1', 'digest', 9, 1);"
    ))
    .await;
    let reply = app
        .master("DELETE", &format!("/api/sites/{uuid}"), None)
        .await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(
        reply.json(),
        json!({ "message": format!("Site {uuid} deleted successfully") })
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM sites").await, 0);
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 0);
    assert_eq!(app.count("SELECT count(*) AS n FROM auth_tokens").await, 0);
    app.master("GET", &format!("/api/sites/{uuid}"), None)
        .await
        .assert_error(404, "Site not found");
    app.master("DELETE", &format!("/api/sites/{uuid}"), None)
        .await
        .assert_error(404, "Site not found");
}

#[actix_web::test]
async fn delete_refuses_protected_sites() {
    let app = TestApp::new().await;
    let site = app.create_site("guarded.example.com").await;
    let path = format!("/api/sites/{}", site["uuid"].as_str().unwrap());
    app.master("PUT", &path, Some(json!({"deletion_protected": true})))
        .await;
    let reply = app.master("DELETE", &path, None).await;
    assert_eq!(reply.status.as_u16(), 409);
    assert_eq!(
        reply.json(),
        json!({"error": "This site is protected from deletion", "code": "site_deletion_protected"})
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM sites").await, 1);

    app.master("PUT", &path, Some(json!({"deletion_protected": false})))
        .await;
    let reply = app.master("DELETE", &path, None).await;
    assert_eq!(reply.status.as_u16(), 200);
}

#[actix_web::test]
async fn delete_refuses_sites_with_protected_users() {
    let app = TestApp::new().await;
    let site = app.create_site("users.example.com").await;
    let uuid = site["uuid"].as_str().unwrap();
    app.sql(&format!(
        "INSERT INTO users (uuid, site_uuid, email, created_at, updated_at, deletion_protected) VALUES \
         ('0191e1a0-0000-7000-8000-0000000000b1', '{uuid}', 'a@example.com', 1, 1, true), \
         ('0191e1a0-0000-7000-8000-0000000000b2', '{uuid}', 'b@example.com', 1, 1, true), \
         ('0191e1a0-0000-7000-8000-0000000000b3', '{uuid}', 'c@example.com', 1, 1, false);"
    ))
    .await;
    let reply = app
        .master("DELETE", &format!("/api/sites/{uuid}"), None)
        .await;
    assert_eq!(reply.status.as_u16(), 409);
    assert_eq!(
        reply.json(),
        json!({
            "error": "Site has 2 deletion-protected user(s); clear their protection before deleting the site",
            "code": "site_has_protected_users",
        })
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM sites").await, 1);
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 3);
    for bad in ["1", "garbage", UNKNOWN_ID] {
        app.master("DELETE", &format!("/api/sites/{bad}"), None)
            .await
            .assert_error(404, "Site not found");
    }
}
