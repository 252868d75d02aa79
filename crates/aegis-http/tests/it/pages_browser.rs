//! The hosted pages in a real browser, against the real `aegis` binary: Debian's Chromium driven
//! headless through chromedriver (WebDriver). `scripts/ensure-chromium.sh` installs both; without
//! them the browser test says so and skips. Also: what the binary logs while the pages are used.
//!
//! Screenshots go to `$CARGO_TARGET_TMPDIR/pages-screenshots`, and to `docs/images/` when
//! `AEGIS_SCREENSHOTS=docs` is set (that is how the README's pictures are made).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use aegis_test_support::fresh_database;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::service::{STRONG_KEY, STRONG_SECRET, Service, free_port};

/// A program on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The binary with hosted pages on at its own address; mail stays queued in the outbox table.
async fn service(database_url: &str) -> (Service, String) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let service = Service::start_on(
        port,
        database_url,
        &[("HOSTED_PAGES_URL", &base), ("MAIL_TRANSPORT", "none")],
    )
    .await;
    (service, base)
}

/// A site whose users are sent to `redirect` once verified: (site id, tenant key).
async fn site(service: &Service, redirect: &str) -> (String, String) {
    let site = service
        .call(
            "POST",
            "/api/sites",
            &[("X-API-Key", STRONG_KEY)],
            Some(&json!({
                "name": "Demo", "domain": "demo.example.com", "frontend_url": redirect,
                "verification_redirect_url": redirect,
                "email_from": "noreply@demo.example.com", "email_from_name": "Demo",
            })),
        )
        .await;
    assert_eq!(site.status, 201, "{}", site.body);
    let site = site.json();
    (
        site["uuid"].as_str().unwrap().to_owned(),
        site["tenant_api_key"].as_str().unwrap().to_owned(),
    )
}

/// The link in the newest queued email of `kind` to `to`, as the outbox holds it.
async fn outbox_link(database_url: &str, kind: &str, to: &str) -> String {
    let email = aegis_test_support::sealed_email(database_url, STRONG_SECRET, kind, to).await;
    email
        .text
        .lines()
        .find(|l| l.starts_with("http"))
        .unwrap_or_else(|| panic!("no link in {:?}", email.text))
        .trim()
        .to_owned()
}

async fn tenant(service: &Service, key: &str, path: &str, body: Value) -> u16 {
    let answer = service
        .call("POST", path, &[("X-Tenant-Api-Key", key)], Some(&body))
        .await;
    answer.status
}

#[actix_web::test]
async fn page_tokens_never_reach_the_log() {
    let db = fresh_database().await;
    let (service, _) = service(db.url()).await;
    let (site_id, key) = site(&service, "https://app.example.com").await;
    let body = json!({"site_id": site_id, "email": "invited@example.com"});
    assert_eq!(
        tenant(&service, &key, "/api/auth/invite-user", body).await,
        201
    );
    let link = outbox_link(db.url(), "verification", "invited@example.com").await;
    let (path, token) = (
        link.split_once("127.0.0.1:")
            .unwrap()
            .1
            .split_once('/')
            .unwrap()
            .1,
        link.split("token=").nth(1).unwrap(),
    );
    // The invited user's set-password form, and a made-up token.
    let page = service.call("GET", &format!("/{path}"), &[], None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let made_up = "made-up-token-0123456789";
    let unknown = service
        .call("GET", &format!("/verify-email?token={made_up}"), &[], None)
        .await;
    assert_eq!(unknown.status, 404);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = service.log();
        let access: Vec<&Value> = log
            .iter()
            .filter(|l| l["fields"]["route"] == "/verify-email")
            .collect();
        if access.len() == 2 {
            let all: String = log.iter().map(Value::to_string).collect();
            assert!(!all.contains(token), "a link token was logged");
            assert!(!all.contains(made_up), "a presented token was logged");
            assert!(
                !all.contains("invited@example.com"),
                "an address was logged"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no access lines: {log:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// chromedriver, ended when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A headless Chromium session on a fresh profile, `width` CSS pixels wide.
async fn browser(driver_port: u16, chromium: &Path, profile: &Path, width: u32) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-dev-shm-usage", "--hide-scrollbars",
                format!("--user-data-dir={}", profile.display()),
            ],
            "mobileEmulation": {"deviceMetrics": {"width": width, "height": 720, "pixelRatio": 1}},
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
        {
            Ok(client) => return client,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no WebDriver session: {e}"),
        }
    }
}

/// Saves a screenshot of the page as `name`.
async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    let mut dirs = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pages-screenshots")];
    if std::env::var("AEGIS_SCREENSHOTS").as_deref() == Ok("docs") {
        dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/images"));
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), &png).unwrap();
    }
}

/// Waits until the browser is on a page whose URL starts with `prefix`.
async fn wait_for_url(client: &Client, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = client.current_url().await.unwrap().to_string();
        if url.starts_with(prefix) {
            return url;
        }
        assert!(Instant::now() < deadline, "still on {url}, not {prefix}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the page shows `text`; its source.
async fn wait_for_text(client: &Client, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let source = client.source().await.unwrap();
        if source.contains(text) {
            return source;
        }
        assert!(Instant::now() < deadline, "{text:?} never shown: {source}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn type_into(client: &Client, css: &str, text: &str) {
    let input = client.find(Locator::Css(css)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

async fn submit(client: &Client) {
    client
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Whether the page fits its viewport's width (no horizontal scrolling).
async fn fits(client: &Client) -> bool {
    client
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth;",
            vec![],
        )
        .await
        .unwrap()
        == json!(true)
}

#[actix_web::test]
async fn pages_in_a_real_browser() {
    let (Some(chromium), Some(chromedriver)) = (
        on_path("chromium").or_else(|| on_path("chromium-browser")),
        on_path("chromedriver"),
    ) else {
        println!(
            "SKIPPED pages_in_a_real_browser: chromium and chromedriver are not installed \
             (scripts/ensure-chromium.sh installs them)"
        );
        return;
    };
    // The site the pages send users to.
    let welcome = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let welcome_url = format!(
        "http://127.0.0.1:{}/welcome",
        welcome.local_addr().unwrap().port()
    );
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|| async {
            HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .body("<!doctype html><title>Demo</title><h1>Welcome to Demo</h1>")
        }))
    })
    .workers(1)
    .listen(welcome)
    .unwrap()
    .run();
    let server_handle = server.handle();
    actix_web::rt::spawn(server);

    let db = fresh_database().await;
    let (service, base) = service(db.url()).await;
    let (site_id, key) = site(&service, &welcome_url).await;

    let driver_port = free_port();
    let _driver = Driver(
        Command::new(&chromedriver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let profile = std::env::temp_dir().join(format!("aegis-chromium-{}", std::process::id()));
    let client = browser(driver_port, &chromium, &profile, 480).await;

    // An invited user: the link opens the set-password form.
    let invite = json!({"site_id": site_id, "email": "invited@example.com"});
    assert_eq!(
        tenant(&service, &key, "/api/auth/invite-user", invite).await,
        201
    );
    let link = outbox_link(db.url(), "verification", "invited@example.com").await;
    assert!(
        link.starts_with(&format!("{base}/verify-email?token=")),
        "{link}"
    );
    client.goto(&link).await.unwrap();
    let source = client.source().await.unwrap();
    assert!(
        source.contains("Choose a password") && source.contains("Demo"),
        "{source}"
    );
    // The style sheet was allowed by the CSP and applied (the header bar is dark).
    let header_colour = client
        .execute(
            "return getComputedStyle(document.querySelector('.site')).backgroundColor;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(header_colour, json!("rgb(26, 26, 26)"));
    assert!(fits(&client).await);
    screenshot(&client, "hosted-set-password.png").await;

    // Too short: the error summary and the message at the field.
    type_into(&client, "#password", "short").await;
    submit(&client).await;
    let source = wait_for_text(&client, "There is a problem").await;
    assert!(
        source.contains("Shorter than minimum length 8."),
        "{source}"
    );
    screenshot(&client, "hosted-set-password-error.png").await;

    // A good one: through the CSRF checks as a real browser posts, then on to the site.
    type_into(&client, "#password", "a good password 1").await;
    submit(&client).await;
    let landed = wait_for_url(&client, &welcome_url).await;
    assert_eq!(landed, welcome_url);
    wait_for_text(&client, "Welcome to Demo").await;
    let login = json!({"site_id": site_id, "email": "invited@example.com", "password": "a good password 1"});
    assert_eq!(tenant(&service, &key, "/api/auth/login", login).await, 200);

    // A registered user: the link verifies and lands on the site at once.
    let account = json!({"site_id": site_id, "email": "reg@example.com", "password": "password-1"});
    assert_eq!(
        tenant(&service, &key, "/api/auth/register", account.clone()).await,
        201
    );
    assert_eq!(
        tenant(&service, &key, "/api/auth/login", account.clone()).await,
        403
    );
    let link = outbox_link(db.url(), "verification", "reg@example.com").await;
    client.goto(&link).await.unwrap();
    assert_eq!(wait_for_url(&client, &welcome_url).await, welcome_url);
    assert_eq!(
        tenant(&service, &key, "/api/auth/login", account).await,
        200
    );

    // Forgot password, then the reset link it mails.
    client
        .goto(&format!("{base}/forgot-password?site_id={site_id}"))
        .await
        .unwrap();
    screenshot(&client, "hosted-forgot-password.png").await;
    type_into(&client, "#email", "reg@example.com").await;
    submit(&client).await;
    wait_for_text(&client, "Check your email").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let reset = loop {
        let found = tokio::time::timeout(
            Duration::from_secs(1),
            outbox_link_if_any(db.url(), "reg@example.com"),
        )
        .await
        .ok()
        .flatten();
        if let Some(link) = found {
            break link;
        }
        assert!(Instant::now() < deadline, "no reset email");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    client.goto(&reset).await.unwrap();
    type_into(&client, "#password", "new password 2").await;
    submit(&client).await;
    wait_for_text(&client, "Your password has been reset").await;
    screenshot(&client, "hosted-reset-done.png").await;
    let login =
        json!({"site_id": site_id, "email": "reg@example.com", "password": "new password 2"});
    assert_eq!(tenant(&service, &key, "/api/auth/login", login).await, 200);
    client.close().await.unwrap();

    // At 320 CSS pixels, the form still fits without scrolling sideways.
    let narrow = browser(
        driver_port,
        &chromium,
        &profile.with_extension("narrow"),
        320,
    )
    .await;
    narrow
        .goto(&format!("{base}/forgot-password?site_id={site_id}"))
        .await
        .unwrap();
    assert!(fits(&narrow).await, "the page scrolls sideways at 320px");
    screenshot(&narrow, "hosted-forgot-password-320.png").await;
    narrow.close().await.unwrap();

    server_handle.stop(false).await;
    let _ = std::fs::remove_dir_all(&profile);
    let _ = std::fs::remove_dir_all(profile.with_extension("narrow"));
}

/// The reset link mailed to `to`, once the service's worker has queued it.
async fn outbox_link_if_any(database_url: &str, to: &str) -> Option<String> {
    use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = AsyncPgConnection::establish(database_url).await.ok()?;
    let n = diesel::sql_query(
        "SELECT count(*) AS n FROM email_outbox WHERE kind = 'password_reset' AND recipient = $1",
    )
    .bind::<diesel::sql_types::Text, _>(to)
    .get_result::<N>(&mut conn)
    .await
    .ok()?
    .n;
    if n == 0 {
        return None;
    }
    Some(outbox_link(database_url, "password_reset", to).await)
}
