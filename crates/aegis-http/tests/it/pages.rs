//! The hosted pages (decision 80) through the real application on a real PostgreSQL: what a
//! browser receives (status, `Location`, headers, the page's words, the CSRF cookie) and what
//! changed in the database and the outbox.

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Reply, TestApp, request};

const PAGES: &str = "https://auth.example.com";
const FRONTEND: &str = "http://test.example.com";

async fn app() -> TestApp {
    TestApp::with_hosted_pages(PAGES, false).await
}

/// The link of the newest email of `kind` to `to`: its first line starting with `http`.
async fn emailed_link(app: &TestApp, kind: &str, to: &str) -> String {
    let (_, text) = app.last_email(kind, to).await;
    text.lines()
        .find_map(|l| l.split_whitespace().find(|w| w.starts_with("http")))
        .unwrap_or_else(|| panic!("no link in {text:?}"))
        .to_owned()
}

/// The path and query of a link to the hosted pages.
fn path_of(link: &str) -> &str {
    link.strip_prefix(PAGES)
        .unwrap_or_else(|| panic!("{link} is not a hosted page"))
}

async fn get(app: &TestApp, path: &str) -> Reply {
    app.send(request("GET", path)).await
}

/// A form as the browser has it: the CSRF cookie (`name=value`) and the hidden field.
struct Form {
    cookie: String,
    csrf: String,
}

#[track_caller]
fn form_of(reply: &Reply) -> Form {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let set_cookie = reply.header("set-cookie");
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let body = reply.text();
    let marker = "name=\"csrf_token\" value=\"";
    let start = body.find(marker).expect("a CSRF field") + marker.len();
    let csrf = body[start..].split('"').next().unwrap().to_owned();
    Form { cookie, csrf }
}

/// Posts `fields` to `path` as a browser on the pages' origin would, with `form`'s cookie.
async fn post(app: &TestApp, path: &str, form: Option<&Form>, fields: &[(&str, &str)]) -> Reply {
    post_from(app, path, form, fields, &[("Origin", PAGES)]).await
}

async fn post_from(
    app: &TestApp,
    path: &str,
    form: Option<&Form>,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Reply {
    let mut body = form_urlencoded::Serializer::new(String::new());
    if let Some(form) = form {
        body.append_pair("csrf_token", &form.csrf);
    }
    for (k, v) in fields {
        body.append_pair(k, v);
    }
    let mut req = request("POST", path)
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .set_payload(body.finish());
    if let Some(form) = form {
        req = req.insert_header(("Cookie", form.cookie.clone()));
    }
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    app.send(req).await
}

/// Asserts an HTML page with the pages' headers, `status`, and every one of `texts`.
#[track_caller]
fn assert_page(reply: &Reply, status: u16, texts: &[&str]) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text());
    assert_eq!(reply.header("content-type"), "text/html; charset=utf-8");
    assert_security_headers(reply);
    let body = reply.text();
    for text in texts {
        assert!(body.contains(text), "{text:?} not in {body}");
    }
    assert!(!body.contains("<script"), "no script: {body}");
    assert!(!body.contains("style="), "no inline style: {body}");
}

#[track_caller]
fn assert_security_headers(reply: &Reply) {
    let csp = reply.header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} not in {csp:?}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(reply.header("cache-control"), "no-store");
    assert_eq!(reply.header("referrer-policy"), "no-referrer");
    assert_eq!(reply.header("x-frame-options"), "DENY");
    assert_eq!(reply.header("x-content-type-options"), "nosniff");
}

async fn register(app: &TestApp, site: &Value, email: &str) {
    let reply = app
        .tenant(
            "/api/auth/register",
            site,
            json!({"site_id": site["uuid"], "email": email, "password": "password-1"}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text());
}

async fn invite(app: &TestApp, site: &Value, email: &str) {
    let reply = app
        .tenant(
            "/api/auth/invite-user",
            site,
            json!({"site_id": site["uuid"], "email": email}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text());
}

async fn set_redirect(app: &TestApp, site: &Value, url: &str) {
    let reply = app
        .master(
            "PUT",
            &format!("/api/sites/{}", site["uuid"].as_str().unwrap()),
            Some(json!({ "verification_redirect_url": url })),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
}

async fn login_status(app: &TestApp, site: &Value, email: &str, password: &str) -> u16 {
    app.tenant(
        "/api/auth/login",
        site,
        json!({"site_id": site["uuid"], "email": email, "password": password}),
    )
    .await
    .status
    .as_u16()
}

#[actix_web::test]
async fn hosted_pages_url_sends_every_emailed_link_to_the_pages() {
    let app = app().await;
    let site = app.create_site("links.example.com").await;
    let site_id = site["uuid"].as_str().unwrap();
    register(&app, &site, "a@example.com").await;
    assert!(
        emailed_link(&app, "verification", "a@example.com")
            .await
            .starts_with(&format!("{PAGES}/verify-email?token="))
    );
    register(&app, &site, "a@example.com").await;
    let (_, attempt) = app.last_email("sign_in_attempt", "a@example.com").await;
    assert!(
        attempt.contains(&format!("{PAGES}/forgot-password?site_id={site_id}\n")),
        "{attempt}"
    );
    assert!(
        attempt.contains(&format!("{FRONTEND}/login\n")),
        "{attempt}"
    );
    let token = app.signed_in(&site, "b@example.com", "password-1").await;
    app.tenant(
        "/api/auth/request-password-reset",
        &site,
        json!({"site_id": site_id, "email": "b@example.com"}),
    )
    .await;
    assert!(
        emailed_link(&app, "password_reset", "b@example.com")
            .await
            .starts_with(&format!("{PAGES}/reset-password?token="))
    );
    let reply = app
        .bearer(
            "POST",
            "/api/auth/request-email-change",
            &token,
            Some(json!({"new_email": "c@example.com", "password": "password-1"})),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    assert!(
        emailed_link(&app, "email_change", "c@example.com")
            .await
            .starts_with(&format!("{PAGES}/confirm-email-change?token="))
    );
}

#[actix_web::test]
async fn without_hosted_pages_links_stay_on_the_frontend() {
    let app = TestApp::new().await;
    let site = app.create_site("frontend.example.com").await;
    register(&app, &site, "a@example.com").await;
    assert!(
        emailed_link(&app, "verification", "a@example.com")
            .await
            .starts_with(&format!("{FRONTEND}/verify-email?token="))
    );
    register(&app, &site, "a@example.com").await;
    let (_, attempt) = app.last_email("sign_in_attempt", "a@example.com").await;
    assert!(
        attempt.contains(&format!("{FRONTEND}/forgot-password\n")),
        "{attempt}"
    );
    app.verified_user(&site, "b@example.com", "password-1")
        .await;
    app.tenant(
        "/api/auth/request-password-reset",
        &site,
        json!({"site_id": site["uuid"], "email": "b@example.com"}),
    )
    .await;
    assert!(
        emailed_link(&app, "password_reset", "b@example.com")
            .await
            .starts_with(&format!("{FRONTEND}/reset-password?token="))
    );
}

#[actix_web::test]
async fn a_verification_link_verifies_and_redirects_to_the_sites_own_url_only() {
    let app = app().await;
    let site = app.create_site("verify.example.com").await;
    set_redirect(&app, &site, "https://app.example.com/welcome").await;
    register(&app, &site, "a@example.com").await;
    let link = emailed_link(&app, "verification", "a@example.com").await;
    assert_eq!(
        login_status(&app, &site, "a@example.com", "password-1").await,
        403
    );
    // A redirect target in the query string is ignored.
    let reply = get(
        &app,
        &format!(
            "{}&redirect_url=https://evil.example&next=https://evil.example",
            path_of(&link)
        ),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 303, "{}", reply.text());
    assert_eq!(reply.header("location"), "https://app.example.com/welcome");
    assert_eq!(reply.header("cache-control"), "no-store");
    assert_eq!(reply.header("referrer-policy"), "no-referrer");
    assert_eq!(
        login_status(&app, &site, "a@example.com", "password-1").await,
        200
    );
    // Used once: deleted, so the link is now unknown.
    let again = get(&app, path_of(&link)).await;
    assert_page(&again, 404, &["This link is not valid"]);

    // Without a verification redirect, the site's frontend.
    let plain = app.create_site("plain.example.com").await;
    register(&app, &plain, "b@example.com").await;
    let link = emailed_link(&app, "verification", "b@example.com").await;
    let reply = get(&app, path_of(&link)).await;
    assert_eq!(reply.status.as_u16(), 303);
    assert_eq!(reply.header("location"), FRONTEND);
}

#[actix_web::test]
async fn an_invited_user_chooses_a_password_and_lands_on_the_site() {
    let app = app().await;
    let site = app.create_site("invite.example.com").await;
    set_redirect(&app, &site, "https://app.example.com/welcome").await;
    invite(&app, &site, "new@example.com").await;
    let link = emailed_link(&app, "verification", "new@example.com").await;
    let page = get(&app, path_of(&link)).await;
    assert_page(
        &page,
        200,
        &[
            "<p class=\"site-name\">Example</p>",
            "Choose a password",
            "<label for=\"password\">New password</label>",
            "autocomplete=\"new-password\"",
            "action=\"verify-email\"",
        ],
    );
    // The form posts here and its success redirects to the site: both are allowed form targets.
    assert!(
        page.header("content-security-policy")
            .contains("form-action 'self' https://app.example.com;")
    );
    // The token is in the form's body, never in the URL it posts to.
    let token = path_of(&link).split("token=").nth(1).unwrap();
    assert!(
        page.text()
            .contains(&format!("name=\"token\" value=\"{token}\""))
    );
    let form = form_of(&page);

    let short = post(
        &app,
        "/verify-email",
        Some(&form),
        &[("token", token), ("password", "short")],
    )
    .await;
    assert_page(
        &short,
        400,
        &[
            "There is a problem",
            "<a href=\"#password\">Shorter than minimum length 8.</a>",
            "id=\"password-error\"",
            "aria-invalid=\"true\"",
            "aria-describedby=\"password-hint password-error\"",
        ],
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM users WHERE password_hash IS NOT NULL")
            .await,
        0
    );
    let missing = post(&app, "/verify-email", Some(&form), &[("token", token)]).await;
    assert_page(&missing, 400, &["Missing data for required field."]);

    let done = post(
        &app,
        "/verify-email",
        Some(&form),
        &[("token", token), ("password", "a good password")],
    )
    .await;
    assert_eq!(done.status.as_u16(), 303, "{}", done.text());
    assert_eq!(done.header("location"), "https://app.example.com/welcome");
    assert_eq!(
        login_status(&app, &site, "new@example.com", "a good password").await,
        200
    );
    let again = get(&app, path_of(&link)).await;
    assert_page(&again, 404, &["This link is not valid"]);
}

#[actix_web::test]
async fn expired_and_unknown_verification_links_get_their_own_pages() {
    let app = app().await;
    let site = app.create_site("expired.example.com").await;
    register(&app, &site, "a@example.com").await;
    let link = emailed_link(&app, "verification", "a@example.com").await;
    app.clock.advance(86_400 + 1);
    let expired = get(&app, path_of(&link)).await;
    assert_page(
        &expired,
        410,
        &[
            "This link has expired",
            "<p class=\"site-name\">Example</p>",
        ],
    );
    assert_eq!(
        login_status(&app, &site, "a@example.com", "password-1").await,
        403
    );
    let unknown = get(&app, "/verify-email?token=not-a-token").await;
    assert_page(&unknown, 404, &["This link is not valid"]);
    let none = get(&app, "/verify-email").await;
    assert_page(&none, 404, &["This link is not valid"]);
}

#[actix_web::test]
async fn a_reset_link_sets_a_new_password_with_the_apis_rules() {
    let app = app().await;
    let site = app.create_site("reset.example.com").await;
    app.verified_user(&site, "a@example.com", "password-1")
        .await;
    app.tenant(
        "/api/auth/request-password-reset",
        &site,
        json!({"site_id": site["uuid"], "email": "a@example.com"}),
    )
    .await;
    let link = emailed_link(&app, "password_reset", "a@example.com").await;
    let page = get(&app, path_of(&link)).await;
    assert_page(
        &page,
        200,
        &[
            "Reset your password",
            "Example",
            "action=\"reset-password\"",
        ],
    );
    assert!(
        page.header("content-security-policy")
            .contains("form-action 'self';")
    );
    let form = form_of(&page);
    let token = path_of(&link).split("token=").nth(1).unwrap();

    let long = "é".repeat(37);
    let refused = post(
        &app,
        "/reset-password",
        Some(&form),
        &[("token", token), ("password", &long)],
    )
    .await;
    assert_page(&refused, 400, &["Password must be at most 72 bytes."]);
    assert_eq!(
        login_status(&app, &site, "a@example.com", "password-1").await,
        200
    );

    let done = post(
        &app,
        "/reset-password",
        Some(&form),
        &[("token", token), ("password", "new password 2")],
    )
    .await;
    assert_page(
        &done,
        200,
        &[
            "Your password has been reset",
            &format!("<a href=\"{FRONTEND}\">Continue to the site</a>"),
        ],
    );
    assert_eq!(
        login_status(&app, &site, "a@example.com", "password-1").await,
        401
    );
    assert_eq!(
        login_status(&app, &site, "a@example.com", "new password 2").await,
        200
    );

    // A reset ends every reset link of the user, this one included: gone, like an unknown one.
    let used = get(&app, path_of(&link)).await;
    assert_page(&used, 404, &["This link is not valid", "already been used"]);
    let reused = post(
        &app,
        "/reset-password",
        Some(&form),
        &[("token", token), ("password", "third password")],
    )
    .await;
    assert_page(&reused, 404, &["This link is not valid"]);
    assert_eq!(
        login_status(&app, &site, "a@example.com", "new password 2").await,
        200
    );

    // An expired one.
    app.tenant(
        "/api/auth/request-password-reset",
        &site,
        json!({"site_id": site["uuid"], "email": "a@example.com"}),
    )
    .await;
    let link = emailed_link(&app, "password_reset", "a@example.com").await;
    app.clock.advance(3_600 + 1);
    assert_page(
        &get(&app, path_of(&link)).await,
        410,
        &["This link has expired"],
    );
    assert_page(
        &get(&app, "/reset-password?token=nope").await,
        404,
        &["This link is not valid"],
    );
}

#[actix_web::test]
async fn an_email_change_is_confirmed_by_the_button_not_by_opening_the_link() {
    let app = app().await;
    let site = app.create_site("change.example.com").await;
    let auth = app.signed_in(&site, "old@example.com", "password-1").await;
    let reply = app
        .bearer(
            "POST",
            "/api/auth/request-email-change",
            &auth,
            Some(json!({"new_email": "new@example.com", "password": "password-1"})),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200);
    let link = emailed_link(&app, "email_change", "new@example.com").await;
    let token = path_of(&link).split("token=").nth(1).unwrap();
    let page = get(&app, path_of(&link)).await;
    assert_page(
        &page,
        200,
        &[
            "Confirm your new email address",
            "<button type=\"submit\">Confirm email address</button>",
        ],
    );
    // Opening the link twice (a mail scanner, then the user) changed nothing.
    let page = get(&app, path_of(&link)).await;
    let me = app.bearer("GET", "/api/auth/me", &auth, None).await;
    assert_eq!(me.json()["email"], "old@example.com");

    let form = form_of(&page);
    let done = post(
        &app,
        "/confirm-email-change",
        Some(&form),
        &[("token", token)],
    )
    .await;
    assert_page(
        &done,
        200,
        &[
            "Your email address has been changed",
            &format!("href=\"{FRONTEND}\""),
        ],
    );
    let me = app.bearer("GET", "/api/auth/me", &auth, None).await;
    assert_eq!(me.json()["email"], "new@example.com");
    let again = post(
        &app,
        "/confirm-email-change",
        Some(&form),
        &[("token", token)],
    )
    .await;
    assert_page(&again, 404, &["This link is not valid"]);

    // A newer request whose link has expired: the page says so, and offers no button.
    let reply = app
        .bearer(
            "POST",
            "/api/auth/request-email-change",
            &auth,
            Some(json!({"new_email": "newer@example.com", "password": "password-1"})),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    let link = emailed_link(&app, "email_change", "newer@example.com").await;
    let page = get(&app, path_of(&link)).await;
    let newer_form = form_of(&page);
    app.clock.advance(3_600 + 1);
    let expired = get(&app, path_of(&link)).await;
    assert_page(&expired, 410, &["This link has expired"]);
    assert!(!expired.text().contains("<form"));
    let token = path_of(&link).split("token=").nth(1).unwrap();
    let refused = post(
        &app,
        "/confirm-email-change",
        Some(&newer_form),
        &[("token", token)],
    )
    .await;
    assert_page(&refused, 410, &["This link has expired"]);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM users WHERE email = 'newer@example.com'")
            .await,
        0
    );
    assert_page(
        &get(&app, "/confirm-email-change?token=nope").await,
        404,
        &["This link is not valid"],
    );
}

#[actix_web::test]
async fn an_email_change_to_a_taken_address_is_explained() {
    let app = app().await;
    let site = app.create_site("taken.example.com").await;
    let auth = app.signed_in(&site, "old@example.com", "password-1").await;
    app.bearer(
        "POST",
        "/api/auth/request-email-change",
        &auth,
        Some(json!({"new_email": "new@example.com", "password": "password-1"})),
    )
    .await;
    let link = emailed_link(&app, "email_change", "new@example.com").await;
    app.verified_user(&site, "new@example.com", "password-2")
        .await;
    let page = get(&app, path_of(&link)).await;
    let form = form_of(&page);
    let token = path_of(&link).split("token=").nth(1).unwrap();
    let refused = post(
        &app,
        "/confirm-email-change",
        Some(&form),
        &[("token", token)],
    )
    .await;
    assert_page(&refused, 409, &["This address is already in use"]);
    let me = app.bearer("GET", "/api/auth/me", &auth, None).await;
    assert_eq!(me.json()["email"], "old@example.com");
}

#[actix_web::test]
async fn forgot_password_answers_alike_for_known_and_unknown_addresses() {
    let app = app().await;
    let site = app.create_site("forgot.example.com").await;
    let site_id = site["uuid"].as_str().unwrap();
    app.verified_user(&site, "known@example.com", "password-1")
        .await;
    let page = get(&app, &format!("/forgot-password?site_id={site_id}")).await;
    assert_page(
        &page,
        200,
        &[
            "Forgot your password?",
            "<p class=\"site-name\">Example</p>",
            "<label for=\"email\">Email address</label>",
            &format!("name=\"site_id\" value=\"{site_id}\""),
        ],
    );
    let form = form_of(&page);
    let known = post(
        &app,
        "/forgot-password",
        Some(&form),
        &[("site_id", site_id), ("email", "Known@Example.com")],
    )
    .await;
    let unknown = post(
        &app,
        "/forgot-password",
        Some(&form),
        &[("site_id", site_id), ("email", "nobody@example.com")],
    )
    .await;
    assert_page(&known, 200, &["Check your email"]);
    assert_eq!(
        (known.status, known.body.clone()),
        (unknown.status, unknown.body.clone())
    );
    assert!(
        emailed_link(&app, "password_reset", "known@example.com")
            .await
            .starts_with(&format!("{PAGES}/reset-password?token="))
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM email_outbox WHERE recipient = 'nobody@example.com'")
            .await,
        0
    );

    let bad = post(
        &app,
        "/forgot-password",
        Some(&form),
        &[("site_id", site_id), ("email", "not an address")],
    )
    .await;
    assert_page(
        &bad,
        400,
        &[
            "<a href=\"#email\">Not a valid email address.</a>",
            "value=\"not an address\"",
            "aria-invalid=\"true\"",
        ],
    );
}

#[actix_web::test]
async fn an_unknown_site_gets_a_page_of_its_own() {
    let app = app().await;
    for path in [
        "/forgot-password",
        "/forgot-password?site_id=nope",
        "/forgot-password?site_id=0190a3c4-0000-7000-8000-000000000000",
    ] {
        assert_page(
            &get(&app, path).await,
            404,
            &["Page not found", "does not name a site"],
        );
    }
    // A valid form of one site cannot be pointed at a site that does not exist.
    let site = app.create_site("real.example.com").await;
    let page = get(
        &app,
        &format!(
            "/forgot-password?site_id={}",
            site["uuid"].as_str().unwrap()
        ),
    )
    .await;
    let form = form_of(&page);
    let reply = post(
        &app,
        "/forgot-password",
        Some(&form),
        &[
            ("site_id", "0190a3c4-0000-7000-8000-000000000000"),
            ("email", "a@example.com"),
        ],
    )
    .await;
    assert_page(&reply, 404, &["Page not found"]);
}

#[actix_web::test]
async fn every_form_refuses_posts_without_a_matching_token_or_from_another_origin() {
    let app = app().await;
    let site = app.create_site("csrf.example.com").await;
    let site_id = site["uuid"].as_str().unwrap().to_owned();
    app.verified_user(&site, "a@example.com", "password-1")
        .await;
    app.tenant(
        "/api/auth/request-password-reset",
        &site,
        json!({"site_id": site_id, "email": "a@example.com"}),
    )
    .await;
    let link = emailed_link(&app, "password_reset", "a@example.com").await;
    let token = path_of(&link).split("token=").nth(1).unwrap().to_owned();
    let reset_form = form_of(&get(&app, path_of(&link)).await);
    let forgot_form = form_of(&get(&app, &format!("/forgot-password?site_id={site_id}")).await);
    let reset_fields = [("token", token.as_str()), ("password", "new password 2")];
    let forgot_fields = [("site_id", site_id.as_str()), ("email", "a@example.com")];
    let wrong = Form {
        cookie: reset_form.cookie.clone(),
        csrf: "0".repeat(64),
    };
    // Another form's token is no token for this one.
    let crossed = Form {
        cookie: forgot_form.cookie.clone(),
        csrf: forgot_form.csrf.clone(),
    };
    for (path, form, fields) in [
        ("/reset-password", &reset_form, &reset_fields),
        ("/forgot-password", &forgot_form, &forgot_fields),
    ] {
        for (what, reply) in [
            ("no token", post(&app, path, None, fields).await),
            ("wrong token", post(&app, path, Some(&wrong), fields).await),
            (
                "cookie without field",
                post_from(
                    &app,
                    path,
                    None,
                    fields,
                    &[("Origin", PAGES), ("Cookie", &form.cookie)],
                )
                .await,
            ),
            (
                "another origin",
                post_from(
                    &app,
                    path,
                    Some(form),
                    fields,
                    &[("Origin", "https://evil.example")],
                )
                .await,
            ),
            (
                "cross-site fetch",
                post_from(
                    &app,
                    path,
                    Some(form),
                    fields,
                    &[("Sec-Fetch-Site", "cross-site")],
                )
                .await,
            ),
            (
                "foreign referer",
                post_from(
                    &app,
                    path,
                    Some(form),
                    fields,
                    &[("Referer", "https://evil.example/page")],
                )
                .await,
            ),
        ] {
            assert_eq!(
                reply.status.as_u16(),
                403,
                "{path}, {what}: {}",
                reply.text()
            );
            assert_page(&reply, 403, &["The form could not be sent", "Example"]);
        }
    }
    let reply = post(&app, "/reset-password", Some(&crossed), &reset_fields).await;
    assert_page(&reply, 403, &["The form could not be sent"]);
    // Nothing happened: the old password works, the reset link still does, no reset was asked.
    assert_eq!(
        login_status(&app, &site, "a@example.com", "password-1").await,
        200
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM password_reset_requests")
            .await,
        0
    );
    // And a same-origin post (here as a browser sends it under no-referrer) goes through.
    let ok = post_from(
        &app,
        "/reset-password",
        Some(&reset_form),
        &reset_fields,
        &[("Origin", "null"), ("Sec-Fetch-Site", "same-origin")],
    )
    .await;
    assert_page(&ok, 200, &["Your password has been reset"]);
}

#[actix_web::test]
async fn forgot_password_posts_share_the_apis_rate_limits() {
    let app = TestApp::with_hosted_pages(PAGES, true).await;
    let site = app.create_site("limits.example.com").await;
    let site_id = site["uuid"].as_str().unwrap().to_owned();
    let form = form_of(&get(&app, &format!("/forgot-password?site_id={site_id}")).await);
    let fields = [("site_id", site_id.as_str()), ("email", "a@example.com")];
    // Three an account per 15 minutes, as on the API route: two here, one there, then neither.
    for _ in 0..2 {
        let reply = post(&app, "/forgot-password", Some(&form), &fields).await;
        assert_page(&reply, 200, &["Check your email"]);
        assert_eq!(reply.header("x-ratelimit-limit"), "3");
    }
    let body = json!({"site_id": site_id, "email": "A@example.com"});
    let api = || app.tenant("/api/auth/request-password-reset", &site, body.clone());
    assert_eq!(api().await.status.as_u16(), 200);
    let limited = post(&app, "/forgot-password", Some(&form), &fields).await;
    assert_page(&limited, 429, &["Too many requests", "Example"]);
    assert_eq!(limited.header("x-ratelimit-remaining"), "0");
    assert!(limited.header("retry-after").parse::<u32>().unwrap() > 0);
    assert_eq!(api().await.status.as_u16(), 429);
    // Another address still gets through.
    let other = post(
        &app,
        "/forgot-password",
        Some(&form),
        &[("site_id", &site_id), ("email", "b@example.com")],
    )
    .await;
    assert_eq!(other.status.as_u16(), 200);
}

#[actix_web::test]
async fn the_stylesheet_comes_from_the_binary() {
    let app = app().await;
    let reply = get(&app, "/assets/pages.css").await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(reply.header("content-type"), "text/css; charset=utf-8");
    assert_eq!(reply.header("cache-control"), "no-store");
    assert_eq!(reply.text(), aegis_http::pages::STYLESHEET);
    assert!(reply.text().contains(":focus"));
    // Pages link it relatively, so a prefix is kept.
    let page = get(&app, "/verify-email?token=x").await;
    assert!(
        page.text()
            .contains("<link rel=\"stylesheet\" href=\"assets/pages.css\">")
    );
    // The API is untouched: still JSON errors.
    get(&app, "/api/nothing-here")
        .await
        .assert_error(404, "Not found");
}
