//! Email addresses from outside (decision 30): one normal form (NFC, lowercase, IDNA ASCII domain)
//! stored, compared and mailed to; lengths checked after normalising; quoted, listed, invisible and
//! control characters refused; and site fields that reach mail headers refuse control characters.

use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use serde_json::{Value, json};

use crate::support::{TestApp, site_body};

const INVALID: &str = "Not a valid email address.";
const CONTROL: &str = "Field may not contain control characters.";
/// `josé` composed (one code point for `é`) and decomposed (`e` and a combining acute).
const JOSE_NFC: &str = "jos\u{e9}";
const JOSE_NFD: &str = "jose\u{301}";

async fn app_and_site() -> (TestApp, Value) {
    let app = TestApp::new().await;
    let site = app.create_site("input.example.com").await;
    (app, site)
}

/// The rows of a one-column text query.
async fn texts(app: &TestApp, query: &str) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        t: String,
    }
    let mut conn = AsyncPgConnection::establish(app.db.url()).await.unwrap();
    diesel::sql_query(query)
        .load::<Row>(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.t)
        .collect()
}

async fn emails(app: &TestApp) -> Vec<String> {
    texts(app, "SELECT email AS t FROM users ORDER BY email").await
}

async fn register(
    app: &TestApp,
    site: &Value,
    email: &str,
    password: &str,
) -> crate::support::Reply {
    app.tenant(
        "/api/auth/register",
        site,
        json!({"site_id": site["uuid"], "email": email, "password": password}),
    )
    .await
}

async fn invite(app: &TestApp, site: &Value, email: &str) -> crate::support::Reply {
    app.tenant(
        "/api/auth/invite-user",
        site,
        json!({"site_id": site["uuid"], "email": email}),
    )
    .await
}

#[actix_web::test]
async fn an_address_that_grows_when_lowercased_is_a_400_not_a_500() {
    let (app, site) = app_and_site().await;
    // 255 characters as sent; lowercased, each 'İ' becomes 'i' and a combining dot, far beyond
    // what an address may hold (and what the column holds).
    let grows = format!("{}@a.co", "\u{130}".repeat(250));
    assert_eq!(grows.chars().count(), 255);
    register(&app, &site, &grows, "password-1")
        .await
        .assert_validation(json!({"email": [INVALID]}));
    invite(&app, &site, &grows)
        .await
        .assert_validation(json!({"email": [INVALID]}));
    app.master(
        "POST",
        "/api/admin/register",
        Some(json!({"site_id": site["uuid"], "email": grows})),
    )
    .await
    .assert_validation(json!({"email": [INVALID]}));
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 0);
    assert_eq!(app.count("SELECT count(*) AS n FROM email_outbox").await, 0);
}

#[actix_web::test]
async fn composed_and_decomposed_spellings_are_one_account() {
    let (app, site) = app_and_site().await;
    let nfc = format!("{JOSE_NFC}@example.com");
    let nfd = format!("{JOSE_NFD}@example.com");
    let first = register(&app, &site, &nfc, "password-1").await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text());
    // The second registration is the "exists" path: the same answer, a sign-in-attempt email to
    // the stored address, and no second user.
    let second = register(&app, &site, &nfd, "password-2").await;
    assert_eq!((second.status, second.text()), (first.status, first.text()));
    assert_eq!(emails(&app).await, [nfc.as_str()]);
    let (subject, _) = app.last_email("sign_in_attempt", &nfc).await;
    assert_eq!(subject, "Sign-in attempt for Example");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM email_outbox WHERE kind = 'sign_in_attempt'")
            .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM email_outbox WHERE recipient <> (SELECT email FROM users)"
        )
        .await,
        0,
        "every message goes to the normal form"
    );
}

#[actix_web::test]
async fn quoted_listed_invisible_and_control_characters_are_refused() {
    let (app, site) = app_and_site().await;
    for bad in [
        "\"a,b\"@example.com",
        "\"q\"@x.com",
        "a@example.com, b@example.com",
        "A <a@example.com>",
        "a\u{200b}b@example.com",
        "ab@exa\u{200b}mple.com",
        "ab@example.com\u{feff}",
        "a\u{202e}b@example.com",
        "a\u{200d}b@example.com",
        "a\r\nbcc@example.com",
        "a\u{a0}b@example.com",
        " a@example.com",
    ] {
        register(&app, &site, bad, "password-1")
            .await
            .assert_validation(json!({"email": [INVALID]}));
        invite(&app, &site, bad)
            .await
            .assert_validation(json!({"email": [INVALID]}));
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 0);
}

#[actix_web::test]
async fn internationalised_domains_are_stored_as_lowercase_punycode() {
    let (app, site) = app_and_site().await;
    let reply = invite(&app, &site, "Invitee@BÜCHER.DE").await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text());
    assert_eq!(reply.json()["email"], "invitee@xn--bcher-kva.de");
    let reply = register(&app, &site, "Ünï@Exämple.DE", "password-1").await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text());
    assert_eq!(
        emails(&app).await,
        ["invitee@xn--bcher-kva.de", "ünï@xn--exmple-cua.de"]
    );
    // The verification mail went to that form too.
    app.last_email("verification", "ünï@xn--exmple-cua.de")
        .await;
    // The same address spelled with the ASCII domain is the same account.
    let again = invite(&app, &site, "invitee@xn--bcher-kva.de").await;
    assert_eq!(again.status.as_u16(), 201, "{}", again.text());
    assert_eq!(again.json()["uuid"], reply_uuid(&app).await);
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 2);
}

async fn reply_uuid(app: &TestApp) -> String {
    texts(
        app,
        "SELECT uuid::text AS t FROM users WHERE email = 'invitee@xn--bcher-kva.de'",
    )
    .await
    .remove(0)
}

#[actix_web::test]
async fn login_works_with_any_spelling_of_the_address() {
    let (app, site) = app_and_site().await;
    let normal = format!("{JOSE_NFC}@xn--bcher-kva.de");
    let reply = register(&app, &site, &format!("{JOSE_NFD}@Bücher.de"), "password-1").await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text());
    let token = app.emailed_token("verification", &normal).await;
    let verified = app
        .tenant(
            "/api/auth/verify-email",
            &site,
            json!({"site_id": site["uuid"], "token": token}),
        )
        .await;
    assert_eq!(verified.status.as_u16(), 200, "{}", verified.text());
    assert_eq!(verified.json()["user"]["email"], normal.as_str());
    for spelling in [
        normal.clone(),
        format!("{JOSE_NFC}@bücher.de"),
        format!("{JOSE_NFD}@bücher.de"),
        "JOSE\u{301}@BÜCHER.DE".to_owned(),
        "JOS\u{c9}@XN--BCHER-KVA.DE".to_owned(),
    ] {
        let session = app.login(&site, &spelling, "password-1").await;
        assert!(session["auth_token"]["token"].is_string(), "{spelling}");
    }
    app.tenant(
        "/api/auth/login",
        &site,
        json!({"site_id": site["uuid"], "email": "jose@bücher.de", "password": "password-1"}),
    )
    .await
    .assert_error(401, "Invalid credentials");
}

#[actix_web::test]
async fn an_email_change_keeps_and_mails_the_normal_form() {
    let (app, site) = app_and_site().await;
    app.verified_user(&site, "me@example.com", "password-1")
        .await;
    let session = app.login(&site, "me@example.com", "password-1").await;
    let auth = session["auth_token"]["token"].as_str().unwrap();
    let reply = app
        .bearer(
            "POST",
            "/api/auth/request-email-change",
            auth,
            Some(json!({"new_email": format!("{}@BÜCHER.de", JOSE_NFD.to_uppercase()), "password": "password-1"})),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    let normal = format!("{JOSE_NFC}@xn--bcher-kva.de");
    assert_eq!(
        texts(&app, "SELECT new_email AS t FROM email_change_requests").await,
        [normal.as_str()]
    );
    let token = app.emailed_token("email_change", &normal).await;
    let confirmed = app
        .send(
            crate::support::request("POST", "/api/auth/confirm-email-change")
                .set_json(json!({"token": token})),
        )
        .await;
    assert_eq!(confirmed.status.as_u16(), 200, "{}", confirmed.text());
    assert_eq!(confirmed.json()["email"], normal.as_str());
    assert_eq!(emails(&app).await, [normal]);
}

#[actix_web::test]
async fn site_header_fields_refuse_control_characters() {
    let app = TestApp::new().await;
    for (field, value) in [
        ("name", "Acme\r\nBcc: x@evil.test"),
        ("name", "Acme\u{2028}Team"),
        ("email_from_name", "Acme\nTeam"),
        ("email_from_name", "Acme\tTeam"),
        ("mailgun_domain", "mg.example.com\r\nX: y"),
        ("mailgun_domain", "mg.example.com\u{7f}"),
    ] {
        let mut body = site_body("ctl.example.com");
        body[field] = json!(value);
        app.master("POST", "/api/sites", Some(body))
            .await
            .assert_validation(json!({ field: [CONTROL] }));
    }
    let mut body = site_body("ctl.example.com");
    body["email_from"] = json!("noreply@example.com\r\nBcc: x@evil.test");
    app.master("POST", "/api/sites", Some(body))
        .await
        .assert_validation(json!({"email_from": [INVALID]}));
    assert_eq!(app.count("SELECT count(*) AS n FROM sites").await, 0);

    let site = app.create_site("ctl.example.com").await;
    let path = format!("/api/sites/{}", site["uuid"].as_str().unwrap());
    app.master(
        "PUT",
        &path,
        Some(
            json!({"name": "A\rB", "email_from_name": "C\nD", "mailgun_domain": "E\r\nF",
                    "email_from": "x@example.com\n"}),
        ),
    )
    .await
    .assert_validation(json!({
        "name": [CONTROL],
        "email_from_name": [CONTROL],
        "mailgun_domain": [CONTROL],
        "email_from": [INVALID],
    }));
    assert_eq!(
        texts(
            &app,
            "SELECT name || '|' || email_from_name || '|' || email_from || '|' || \
             coalesce(mailgun_domain, '-') AS t FROM sites"
        )
        .await,
        ["Example|Example Team|noreply@example.com|-"]
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM sites WHERE updated_at <> created_at")
            .await,
        0
    );
}

#[actix_web::test]
async fn a_site_sender_address_is_stored_in_its_normal_form() {
    let app = TestApp::new().await;
    let mut body = site_body("sender.example.com");
    body["email_from"] = json!("NoReply@BÜCHER.de");
    body["email_from_name"] = json!("Ünïcode \"Quoted\", <Team>");
    let reply = app.master("POST", "/api/sites", Some(body)).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text());
    assert_eq!(reply.json()["email_from"], "noreply@xn--bcher-kva.de");
    // Punctuation is fine in a display name: the transports quote or encode it.
    assert_eq!(
        reply.json()["email_from_name"],
        "Ünïcode \"Quoted\", <Team>"
    );
    let path = format!("/api/sites/{}", reply.json()["uuid"].as_str().unwrap());
    let reply = app
        .master(
            "PUT",
            &path,
            Some(json!({"email_from": "Other@Example.COM"})),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    assert_eq!(reply.json()["email_from"], "other@example.com");
}

#[actix_web::test]
async fn a_lookalike_domain_is_another_mailbox_shown_in_ascii() {
    let (app, site) = app_and_site().await;
    let latin = register(&app, &site, "pay@example.com", "password-1").await;
    assert_eq!(latin.status.as_u16(), 201, "{}", latin.text());
    // `exаmple.com` with a Cyrillic `а`: a different domain, stored in the ASCII form that shows it.
    let lookalike = register(&app, &site, "pay@ex\u{430}mple.com", "password-2").await;
    assert_eq!(lookalike.status.as_u16(), 201, "{}", lookalike.text());
    let stored = emails(&app).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(stored.contains(&"pay@example.com".to_owned()));
    let other = stored.iter().find(|e| *e != "pay@example.com").unwrap();
    assert!(other.starts_with("pay@xn--") && other.is_ascii(), "{other}");
    // The lookalike's verification goes to its own mailbox, and its password opens nothing else.
    let token = app.emailed_token("verification", "pay@example.com").await;
    app.tenant(
        "/api/auth/verify-email",
        &site,
        json!({"site_id": site["uuid"], "token": token}),
    )
    .await;
    app.tenant(
        "/api/auth/login",
        &site,
        json!({"site_id": site["uuid"], "email": "pay@ex\u{430}mple.com", "password": "password-1"}),
    )
    .await
    .assert_error(401, "Invalid credentials");
    // Full-width letters fold to ASCII under IDNA: the same domain, hence the same account.
    let fullwidth = register(&app, &site, "pay@\u{ff45}xample.com", "password-3").await;
    assert_eq!(fullwidth.status.as_u16(), 201, "{}", fullwidth.text());
    assert_eq!(emails(&app).await.len(), 2);
    app.last_email("sign_in_attempt", "pay@example.com").await;
}
