//! The operator CLI (`aegis sites …`, `aegis users …`): the real binary on a test database, its
//! output, exit codes and the rows it changes, read back through the API and SQL.

use std::process::{Command, Output, Stdio};

use rexpect::process::WaitStatus;
use serde_json::Value;

use crate::support::{SECRET_KEY, TestApp};

/// The binary with a clean environment: development mode on `database_url`.
fn aegis(database_url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aegis"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("AEGIS_ENV", "development")
        .env("SECRET_KEY", SECRET_KEY)
        .current_dir(std::env::temp_dir());
    cmd
}

/// What one command did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }

    /// Exit 0 and nothing on stderr.
    fn ok(self) -> Self {
        assert_eq!(self.code, Some(0), "stderr: {}", self.stderr);
        assert_eq!(self.stderr, "", "nothing on stderr");
        self
    }

    /// Failed with `code` and exactly the one line `aegis: {message}` on stderr, nothing on stdout.
    fn fails(&self, code: i32, message: &str) {
        assert_eq!(
            self.code,
            Some(code),
            "stdout: {} stderr: {}",
            self.stdout,
            self.stderr
        );
        assert_eq!(self.stderr, format!("aegis: {message}\n"));
        assert_eq!(self.stdout, "");
    }
}

fn run(app: &TestApp, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = aegis(app.db.url(), args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: status.code(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

const CREATE: &[&str] = &[
    "sites",
    "create",
    "--name",
    "Demo",
    "--domain",
    "Demo.Example.com",
    "--frontend-url",
    "http://localhost:3000",
    "--email-from",
    "noreply@demo.example.com",
    "--email-from-name",
    "Demo Team",
];

fn create_site(app: &TestApp, extra: &[&str]) -> Value {
    let mut args = CREATE.to_vec();
    args.extend_from_slice(extra);
    args.push("--json");
    run(app, &args).ok().json()
}

#[actix_web::test]
async fn sites_are_created_listed_shown_updated_rotated_and_deleted() {
    let app = TestApp::new().await;

    // Human output: the site as a table, with the tenant key the operator needs.
    let created = run(&app, CREATE).ok();
    for needle in ["demo.example.com", "Demo Team", "tenant_api_key"] {
        assert!(created.stdout.contains(needle), "{}", created.stdout);
    }
    let site = app
        .master("GET", "/api/sites", None)
        .await
        .json()
        .as_array()
        .unwrap()[0]
        .clone();
    assert_eq!(
        site["domain"], "demo.example.com",
        "stored lowercased, as the API does"
    );
    assert!(
        created
            .stdout
            .contains(site["tenant_api_key"].as_str().unwrap())
    );
    assert!(created.stdout.contains(site["uuid"].as_str().unwrap()));
    let uuid = site["uuid"].as_str().unwrap().to_owned();

    // --json is the API's own view of the site, whether named by UUID or domain (any case).
    let by_domain = run(&app, &["sites", "show", "DEMO.example.com", "--json"])
        .ok()
        .json();
    let by_uuid = run(&app, &["sites", "show", &uuid, "--json"]).ok().json();
    let api = app
        .master("GET", &format!("/api/sites/{uuid}"), None)
        .await
        .json();
    assert_eq!(by_domain, api);
    assert_eq!(by_uuid, api);
    let list = run(&app, &["sites", "list", "--json"]).ok().json();
    assert_eq!(list, serde_json::json!([api]));
    let table = run(&app, &["sites", "list"]).ok().stdout;
    assert!(
        table.contains(&uuid) && table.contains("demo.example.com"),
        "{table}"
    );
    assert!(
        !table.contains(site["tenant_api_key"].as_str().unwrap()),
        "the list shows no secrets"
    );

    // Update: the fields given change, the others stay; --clear removes an optional setting.
    let updated = run(
        &app,
        &[
            "sites",
            "update",
            "demo.example.com",
            "--name",
            "Demo 2",
            "--webhook-url",
            "https://hooks.example.com/aegis",
            "--allow-self-registration",
            "false",
            "--json",
        ],
    )
    .ok()
    .json();
    let api = app
        .master("GET", &format!("/api/sites/{uuid}"), None)
        .await
        .json();
    assert_eq!(updated, api);
    assert_eq!(api["name"], "Demo 2");
    assert_eq!(api["email_from_name"], "Demo Team");
    assert_eq!(api["allow_self_registration"], false);
    assert_eq!(api["webhook_url"], "https://hooks.example.com/aegis");
    let secret = api["webhook_secret"].as_str().unwrap().to_owned();

    // Rotations print the new secret, which is the one stored.
    let old_key = api["tenant_api_key"].as_str().unwrap().to_owned();
    let key = run(&app, &["sites", "rotate-tenant-key", &uuid, "--yes"])
        .ok()
        .stdout;
    let api = app
        .master("GET", &format!("/api/sites/{uuid}"), None)
        .await
        .json();
    assert_eq!(key.trim(), api["tenant_api_key"].as_str().unwrap());
    assert_ne!(key.trim(), old_key);
    let new_secret = run(&app, &["sites", "rotate-webhook-secret", &uuid, "--yes"])
        .ok()
        .stdout;
    let api = app
        .master("GET", &format!("/api/sites/{uuid}"), None)
        .await
        .json();
    assert_eq!(new_secret.trim(), api["webhook_secret"].as_str().unwrap());
    assert_ne!(new_secret.trim(), secret);

    let cleared = run(
        &app,
        &["sites", "update", &uuid, "--clear", "webhook-url", "--json"],
    )
    .ok()
    .json();
    assert_eq!(cleared["webhook_url"], Value::Null);
    run(&app, &["sites", "rotate-webhook-secret", &uuid, "--yes"]).fails(
        1,
        "site demo.example.com has no webhook_url, so no webhook secret: set one with \
         `aegis sites update demo.example.com --webhook-url URL`",
    );

    // Deletion: protected sites are refused with the API's message; without a terminal,
    // confirmation must be given with --yes.
    run(
        &app,
        &["sites", "update", &uuid, "--deletion-protected", "true"],
    )
    .ok();
    run(&app, &["sites", "delete", &uuid, "--yes"])
        .fails(1, "This site is protected from deletion");
    run(
        &app,
        &["sites", "update", &uuid, "--deletion-protected", "false"],
    )
    .ok();
    let unconfirmed = run(&app, &["sites", "delete", &uuid]);
    assert_eq!(unconfirmed.code, Some(2));
    assert!(
        unconfirmed.stderr.contains("--yes"),
        "{}",
        unconfirmed.stderr
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM sites").await, 1);
    let deleted = run(&app, &["sites", "delete", "demo.example.com", "--yes"]).ok();
    assert_eq!(
        deleted.stdout,
        format!("Site {uuid} deleted successfully\n")
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM sites").await, 0);
}

#[actix_web::test]
async fn site_input_is_refused_with_the_apis_messages() {
    let app = TestApp::new().await;
    let mut bad = CREATE.to_vec();
    bad[9] = "not-an-address";
    run(&app, &bad).fails(
        1,
        "Validation error: --email-from: Not a valid email address.",
    );
    let mut bad = CREATE.to_vec();
    bad[7] = "not a url";
    run(&app, &bad).fails(1, "Validation error: --frontend-url: Not a valid URL.");
    assert_eq!(app.count("SELECT count(*) AS n FROM sites").await, 0);

    create_site(&app, &[]);
    run(&app, CREATE).fails(1, "Domain already exists");
    run(&app, &["sites", "show", "nowhere.example.com"]).fails(1, "Site not found");
    run(&app, &["sites", "update", "demo.example.com"])
        .fails(1, "At least one field must be provided");
    // A required value missing without a terminal to ask: a usage error naming the flag.
    run(&app, &CREATE[..CREATE.len() - 2]).fails(
        2,
        "missing --email-from-name (stdin is not a terminal, so it cannot be asked for)",
    );
    // Clap's own usage errors exit 2 too.
    assert_eq!(run(&app, &["sites", "frobnicate"]).code, Some(2));
    assert_eq!(app.count("SELECT count(*) AS n FROM sites").await, 1);
}

#[actix_web::test]
async fn users_are_created_with_their_verification_email_and_managed() {
    let app = TestApp::new().await;
    let site = create_site(&app, &["--webhook-url", "https://hooks.example.com/aegis"]);
    let site_id = site["uuid"].as_str().unwrap().to_owned();

    // Created unverified, without a password, with the verification email queued (sealed).
    let user = run(
        &app,
        &[
            "users",
            "create",
            "--site",
            "demo.example.com",
            "--email",
            "Ann@Example.COM",
            "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(user["role"], "user");
    assert_eq!(user["is_verified"], false);
    assert_eq!(user["site_uuid"], site["uuid"]);
    let (subject, text) = app.last_email("verification", "ann@example.com").await;
    assert!(subject.contains("Demo"), "{subject}");
    assert!(text.contains("token="), "the link is in the email");
    let user_id = user["uuid"].as_str().unwrap().to_owned();

    // The same user through the API, and through list and show.
    let api = app
        .master("GET", &format!("/api/sites/{site_id}/users"), None)
        .await
        .json();
    assert_eq!(api, serde_json::json!([user]));
    let list = run(&app, &["users", "list", "--site", &site_id, "--json"])
        .ok()
        .json();
    assert_eq!(list, api);
    let table = run(&app, &["users", "list", "--site", "demo.example.com"])
        .ok()
        .stdout;
    assert!(
        table.contains("ann@example.com") && table.contains(&user_id),
        "{table}"
    );
    let shown = run(
        &app,
        &[
            "users",
            "show",
            "ANN@example.com",
            "--site",
            "demo.example.com",
            "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(shown, user);

    // Resend: a second verification email, the first link revoked.
    let emails = "SELECT count(*) AS n FROM email_outbox WHERE kind = 'verification'";
    assert_eq!(app.count(emails).await, 1);
    let resent = run(&app, &["users", "resend-verification", &user_id]).ok();
    assert_eq!(resent.stdout, "Verification email sent successfully\n");
    assert_eq!(app.count(emails).await, 2);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM email_verification_tokens")
            .await,
        1
    );

    // Verify: the row, and user.verified queued as verify-email queues it.
    let verified = run(&app, &["users", "verify", &user_id, "--json"])
        .ok()
        .json();
    assert_eq!(verified["is_verified"], true);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM users WHERE is_verified")
            .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM webhook_deliveries WHERE event_type = 'user.verified'"
        )
        .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM email_verification_tokens")
            .await,
        0
    );
    run(&app, &["users", "verify", &user_id]).fails(1, "User is already verified");
    run(&app, &["users", "resend-verification", &user_id]).fails(1, "User is already verified");

    // Roles: a site keeps its last admin.
    let admin = run(&app, &["users", "set-role", &user_id, "admin", "--json"])
        .ok()
        .json();
    assert_eq!(admin["role"], "admin");
    run(&app, &["users", "set-role", &user_id, "user"])
        .fails(1, "Cannot demote the last admin of a site");
    run(
        &app,
        &[
            "users",
            "create",
            "--site",
            &site_id,
            "--email",
            "bob@example.com",
            "--role",
            "admin",
        ],
    )
    .ok();
    run(&app, &["users", "set-role", &user_id, "user"]).ok();
    assert_eq!(
        app.count("SELECT count(*) AS n FROM users WHERE role = 'admin'")
            .await,
        1
    );

    // Protection: deletion refused with the API's message, the row kept.
    let protected = run(&app, &["users", "protect", &user_id, "--json"])
        .ok()
        .json();
    assert_eq!(protected["deletion_protected"], true);
    run(&app, &["users", "delete", &user_id, "--yes"]).fails(1, "User is protected from deletion");
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 2);
    run(&app, &["users", "unprotect", &user_id]).ok();

    // Deletion: the row gone, user.deleted queued.
    let deleted = run(
        &app,
        &[
            "users",
            "delete",
            "ann@example.com",
            "--site",
            "demo.example.com",
            "--yes",
        ],
    )
    .ok();
    assert_eq!(
        deleted.stdout,
        format!("User {user_id} deleted successfully\n")
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 1);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM webhook_deliveries WHERE event_type = 'user.deleted'")
            .await,
        1
    );
    run(&app, &["users", "show", &user_id]).fails(1, "User not found");
}

#[actix_web::test]
async fn user_input_is_refused_with_the_apis_messages() {
    let app = TestApp::new().await;
    let site = create_site(&app, &[]);
    let other = run(
        &app,
        &[
            "sites",
            "create",
            "--name",
            "Other",
            "--domain",
            "other.example.com",
            "--frontend-url",
            "http://localhost:3001",
            "--email-from",
            "a@other.example.com",
            "--email-from-name",
            "Other",
            "--json",
        ],
    )
    .ok()
    .json();
    let create =
        |site: &str, email: &str| run(&app, &["users", "create", "--site", site, "--email", email]);
    create("nowhere.example.com", "ann@example.com").fails(1, "Site not found");
    create("demo.example.com", "ann@")
        .fails(1, "Validation error: --email: Not a valid email address.");
    create("demo.example.com", "ann@example.com").ok();
    create("demo.example.com", "ANN@example.com")
        .fails(1, "Email already registered for this site");
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 1);
    let roleless = run(
        &app,
        &[
            "users",
            "create",
            "--site",
            "demo.example.com",
            "--email",
            "x@example.com",
            "--role",
            "owner",
        ],
    );
    assert_eq!(
        roleless.code,
        Some(2),
        "clap refuses the role: {}",
        roleless.stderr
    );
    run(&app, &["users", "create", "--site", "demo.example.com"]).fails(
        2,
        "missing --email (stdin is not a terminal, so it cannot be asked for)",
    );
    run(&app, &["users", "list"]).fails(
        2,
        "missing --site (stdin is not a terminal, so it cannot be asked for)",
    );
    run(&app, &["users", "show", "ann@example.com"]).fails(
        2,
        "\"ann@example.com\" is not a user UUID: naming a user by email needs --site",
    );
    // A user named with another site's UUID or domain is not found there.
    let user = run(
        &app,
        &[
            "users",
            "show",
            "ann@example.com",
            "--site",
            "demo.example.com",
            "--json",
        ],
    )
    .ok()
    .json();
    let user_id = user["uuid"].as_str().unwrap();
    run(
        &app,
        &["users", "show", user_id, "--site", "other.example.com"],
    )
    .fails(1, "User not found");
    run(
        &app,
        &[
            "users",
            "show",
            "ann@example.com",
            "--site",
            other["uuid"].as_str().unwrap(),
        ],
    )
    .fails(1, "User not found");
    assert_eq!(site["domain"], "demo.example.com");
    // Deleting the site's only admin is refused, as through the API.
    run(&app, &["users", "set-role", user_id, "admin"]).ok();
    run(&app, &["users", "delete", user_id, "--yes"])
        .fails(1, "Cannot delete the last admin of a site");
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 1);
}

#[test]
fn an_unreachable_database_is_one_clear_line_and_exit_1() {
    let out = aegis(
        "postgres://aegis:hunter2-db-password@127.0.0.1:1/aegis",
        &["sites", "list"],
    )
    .stdin(Stdio::null())
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("aegis: cannot reach the database: "),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    assert!(!stderr.contains("hunter2"), "never the password: {stderr}");
}

/// A session on a pseudo-terminal, as an operator at a keyboard.
fn terminal(app: &TestApp, args: &[&str]) -> rexpect::session::PtySession {
    let mut cmd = aegis(app.db.url(), args);
    cmd.env("TERM", "xterm");
    rexpect::session::spawn_command(cmd, Some(20_000)).unwrap()
}

fn exit_code(session: &rexpect::session::PtySession) -> i32 {
    match session.process().wait().unwrap() {
        WaitStatus::Exited(_, code) => code,
        other => panic!("{other:?}"),
    }
}

#[actix_web::test]
async fn sites_create_asks_for_what_is_missing_with_defaults_and_inline_validation() {
    let app = TestApp::new().await;
    let mut s = terminal(&app, &["sites", "create", "--json"]);
    s.exp_string("Site name").unwrap();
    s.send_line("Shop").unwrap();
    s.exp_string("Domain").unwrap();
    s.send_line("shop.example.com").unwrap();
    s.exp_string("Frontend URL").unwrap();
    s.exp_string("https://shop.example.com").unwrap();
    s.send_line("").unwrap();
    s.exp_string("From address").unwrap();
    // Refused inline with the API's message, then asked again.
    s.send_line("nobody-at-all").unwrap();
    s.exp_string("Not a valid email address.").unwrap();
    s.send_line("hello@shop.example.com").unwrap();
    s.exp_string("From name").unwrap();
    s.send_line("").unwrap();
    s.exp_string("\"tenant_api_key\"").unwrap();
    s.exp_eof().unwrap();
    assert_eq!(exit_code(&s), 0);

    let sites = app.master("GET", "/api/sites", None).await.json();
    let site = &sites[0];
    assert_eq!(site["name"], "Shop");
    assert_eq!(site["domain"], "shop.example.com");
    assert_eq!(site["frontend_url"], "https://shop.example.com");
    assert_eq!(site["email_from"], "hello@shop.example.com");
    assert_eq!(
        site["email_from_name"], "Shop",
        "the name is the default From name"
    );
}

#[actix_web::test]
async fn users_create_and_delete_ask_on_a_terminal() {
    let app = TestApp::new().await;
    create_site(&app, &[]);

    let mut s = terminal(&app, &["users", "create"]);
    s.exp_string("Site").unwrap();
    s.exp_string("demo.example.com (Demo)").unwrap();
    s.send_line("").unwrap();
    s.exp_string("Email address").unwrap();
    s.send_line("carol@").unwrap();
    s.exp_string("Not a valid email address.").unwrap();
    s.send_line("carol@example.com").unwrap();
    s.exp_string("carol@example.com").unwrap();
    s.exp_eof().unwrap();
    assert_eq!(exit_code(&s), 0);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM users WHERE email = 'carol@example.com'")
            .await,
        1
    );
    app.last_email("verification", "carol@example.com").await;

    // Declined: nothing deleted, exit 1.
    let mut s = terminal(
        &app,
        &[
            "users",
            "delete",
            "carol@example.com",
            "--site",
            "demo.example.com",
        ],
    );
    s.exp_string("Delete user carol@example.com").unwrap();
    s.send_line("n").unwrap();
    s.exp_string("aborted: nothing was changed").unwrap();
    s.exp_eof().unwrap();
    assert_eq!(exit_code(&s), 1);
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 1);

    // Confirmed: deleted.
    let mut s = terminal(
        &app,
        &[
            "users",
            "delete",
            "carol@example.com",
            "--site",
            "demo.example.com",
        ],
    );
    s.exp_string("Delete user carol@example.com").unwrap();
    s.send_line("y").unwrap();
    s.exp_string("deleted successfully").unwrap();
    s.exp_eof().unwrap();
    assert_eq!(exit_code(&s), 0);
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 0);
}

/// Local mode: a command finds the managed server of a running `aegis serve` on the same data
/// directory and uses it as it is (stopping and restarting it would cut the service off); with
/// no service running, it starts the server for itself and stops it at the end.
#[actix_web::test]
async fn local_mode_reuses_the_running_services_database() {
    let dir = std::env::temp_dir().join(format!("aegis-cli-{}", uuid::Uuid::now_v7()));
    let data_dir = dir.to_str().unwrap().to_owned();
    let local = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aegis"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AEGIS_DATA_DIR", &data_dir)
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null());
        cmd
    };

    // No service: the command starts the server, and nothing is left running afterwards.
    let out = local(&["sites", "list", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]\n");
    assert!(
        !dir.join("postgres/postmaster.pid").exists(),
        "the server was stopped"
    );

    let port = crate::service::free_port();
    let mut service = local(&["serve"])
        .env("APP_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while http.get(format!("{base}/api/health")).send().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the service did not come up"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let pid_before = std::fs::read_to_string(dir.join("postgres/postmaster.pid")).unwrap();

    let mut args = CREATE.to_vec();
    args.push("--json");
    let out = local(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = local(&[
        "users",
        "create",
        "--site",
        "demo.example.com",
        "--email",
        "dora@example.com",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same server, still running, and the service sees the site the command created.
    let pid_after = std::fs::read_to_string(dir.join("postgres/postmaster.pid")).unwrap();
    assert_eq!(
        pid_before, pid_after,
        "the service's server was reused, not restarted"
    );
    let key = std::fs::read_to_string(dir.join("master_api_key")).unwrap();
    let sites = http
        .get(format!("{base}/api/sites"))
        .header("X-API-Key", key.trim())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sites: Value = serde_json::from_str(&sites).unwrap();
    assert_eq!(sites, serde_json::json!([created]));
    // The service's workers deliver the verification email the command queued (local mode
    // writes it as an .eml file).
    let outbox = dir.join("outbox");
    let delivered = loop {
        let found = std::fs::read_dir(&outbox).ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .find(|text| text.contains("dora@example.com"))
        });
        if let Some(text) = found {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "no email delivered");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(delivered.contains("token="), "the verification link");

    let pid = service.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    service.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the binary off the test's runtime, so that servers on that runtime (the SMTP sink, the
/// fake Mailgun) can answer it.
async fn run_with(database_url: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = aegis(database_url, args);
    cmd.stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = actix_web::rt::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// The `✔`/`✘` lines of a doctor run, by check name.
fn checks(run: &Run) -> Vec<(bool, String, String)> {
    run.stdout
        .lines()
        .map(|line| {
            let (mark, rest) = line.split_once(' ').unwrap();
            let (check, detail) = rest.split_once(": ").unwrap();
            assert!(mark == "✔" || mark == "✘", "{line}");
            (mark == "✔", check.to_owned(), detail.to_owned())
        })
        .collect()
}

const STRONG: &str = crate::service::STRONG_KEY;

#[actix_web::test]
async fn doctor_passes_a_healthy_setup_and_names_each_failure() {
    let app = TestApp::new().await;
    let smtp = aegis_test_support::smtp::SmtpSink::start().await;
    let smtp_port = smtp.port().to_string();
    let healthy = [
        ("MASTER_API_KEY", STRONG),
        ("MAIL_TRANSPORT", "smtp"),
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", smtp_port.as_str()),
        ("SMTP_TLS", "none"),
    ];
    create_site(&app, &["--webhook-url", "https://localhost/hook"]);
    let healthy_run = run_with(app.db.url(), &["doctor"], &healthy).await;
    let run_ = &healthy_run;
    assert_eq!(run_.code, Some(0), "{}{}", run_.stdout, run_.stderr);
    let names: Vec<String> = checks(run_)
        .into_iter()
        .map(|(ok, name, _)| {
            assert!(ok, "{}", run_.stdout);
            name
        })
        .collect();
    assert_eq!(
        names,
        [
            "mode",
            "MASTER_API_KEY",
            "SECRET_KEY",
            "settings",
            "database",
            "migrations",
            "clock",
            "webhook of demo.example.com",
            "mail transport",
        ]
    );
    assert!(
        run_.stdout
            .contains("✔ SECRET_KEY: accepted in development only"),
        "{}",
        run_.stdout
    );
    assert!(!run_.stdout.contains(SECRET_KEY), "no secret printed");
    let json = run_with(app.db.url(), &["doctor", "--json"], &healthy).await;
    let parsed: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(parsed.as_array().unwrap().len(), 9);
    assert!(parsed.as_array().unwrap().iter().all(|c| c["ok"] == true));

    // Each failure is its own ✘ line, and the exit code is 1.
    run(
        &app,
        &[
            "sites",
            "update",
            "demo.example.com",
            "--webhook-url",
            "https://no-such-host.invalid/hook",
        ],
    )
    .ok();
    let broken = run_with(
        app.db.url(),
        &["doctor"],
        &[
            ("MAIL_TRANSPORT", "smtp"),
            ("SMTP_HOST", "127.0.0.1"),
            ("SMTP_PORT", "1"),
            ("SMTP_TLS", "none"),
            ("TRUSTED_CLIENT_IP_HEADER", "CF-Connecting-IP"),
        ],
    )
    .await;
    assert_eq!(broken.code, Some(1), "{}", broken.stdout);
    let failed: Vec<(String, String)> = checks(&broken)
        .into_iter()
        .filter(|(ok, _, _)| !ok)
        .map(|(_, name, detail)| (name, detail))
        .collect();
    let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "MASTER_API_KEY",
            "settings",
            "webhook of demo.example.com",
            "mail transport"
        ],
        "{}",
        broken.stdout
    );
    assert!(
        failed[1].1.contains("TRUSTED_CLIENT_IP_HEADER"),
        "{failed:?}"
    );
    assert!(
        failed[2]
            .1
            .contains("no-such-host.invalid does not resolve"),
        "{failed:?}"
    );
    assert!(
        failed[3].1.starts_with("SMTP 127.0.0.1:1 (none): "),
        "{failed:?}"
    );

    // A database the binary has not migrated: the doctor says so and migrates nothing.
    let empty = aegis_test_support::empty_database().await;
    let unmigrated = run_with(empty.url(), &["doctor"], &[("MAIL_TRANSPORT", "none")]).await;
    assert_eq!(unmigrated.code, Some(1));
    let pending = format!("{} pending", aegis_postgres::migrate::known_migrations());
    assert!(
        unmigrated
            .stdout
            .contains(&format!("✘ migrations: {pending}: run `aegis migrate`")),
        "{}",
        unmigrated.stdout
    );
    let again = run_with(empty.url(), &["doctor"], &[("MAIL_TRANSPORT", "none")]).await;
    assert!(
        again.stdout.contains(&pending),
        "still pending: the doctor only reads"
    );

    // An unreachable database.
    let down = run_with("postgres://aegis@127.0.0.1:1/aegis", &["doctor"], &[]).await;
    assert_eq!(down.code, Some(1));
    assert!(
        down.stdout
            .contains("✘ database: cannot reach 127.0.0.1:1/aegis: "),
        "{}",
        down.stdout
    );
    // Settings that cannot be read are the one failed check.
    let bad = run_with(app.db.url(), &["doctor"], &[("APP_PORT", "eighty")]).await;
    assert_eq!(bad.code, Some(1));
    assert!(
        bad.stdout.starts_with("✘ configuration: "),
        "{}",
        bad.stdout
    );
    assert!(bad.stdout.contains("APP_PORT"));
}

#[actix_web::test]
async fn doctor_asks_mailgun_whether_it_accepts_the_key() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let app = TestApp::new().await;
    let mailgun = MockServer::start().await;
    // HTTP Basic api:key-good
    Mock::given(method("GET"))
        .and(path("/v3/domains/mg.example.com"))
        .and(header("authorization", "Basic YXBpOmtleS1nb29k"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&mailgun)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&mailgun)
        .await;
    let uri = mailgun.uri();
    let with_key = |key: &'static str| {
        vec![
            ("MASTER_API_KEY", STRONG),
            ("MAIL_TRANSPORT", "mailgun"),
            ("MAILGUN_API_BASE", uri.as_str()),
            ("MAILGUN_DOMAIN", "mg.example.com"),
            ("MAILGUN_API_KEY", key),
        ]
    };
    let good = run_with(app.db.url(), &["doctor"], &with_key("key-good")).await;
    assert_eq!(good.code, Some(0), "{}", good.stdout);
    assert!(
        good.stdout.contains("✔ mail transport: Mailgun at"),
        "{}",
        good.stdout
    );
    let bad = run_with(app.db.url(), &["doctor"], &with_key("key-bad")).await;
    assert_eq!(bad.code, Some(1));
    assert!(
        bad.stdout
            .contains("Mailgun refused the API key (HTTP 401)"),
        "{}",
        bad.stdout
    );
    assert!(!bad.stdout.contains("key-bad"), "the key is never printed");
}

#[actix_web::test]
async fn mail_test_sends_one_message_through_the_transport() {
    let app = TestApp::new().await;
    create_site(&app, &[]);
    let smtp = aegis_test_support::smtp::SmtpSink::start().await;
    let port = smtp.port().to_string();
    let env = [
        ("MAIL_TRANSPORT", "smtp"),
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", port.as_str()),
        ("SMTP_TLS", "none"),
    ];
    let sent = run_with(
        app.db.url(),
        &[
            "mail",
            "test",
            "--to",
            "Ops@Example.com",
            "--site",
            "demo.example.com",
        ],
        &env,
    )
    .await
    .ok();
    assert_eq!(sent.stdout, "Test email sent to o***@example.com\n");
    let received = smtp.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, ["<ops@example.com>"]);
    assert_eq!(
        received[0].from, "<noreply@demo.example.com>",
        "the site's From"
    );
    assert!(received[0].data.contains("Subject: Aegis test email"));

    run_with(app.db.url(), &["mail", "test", "--to", "ops@"], &env)
        .await
        .fails(1, "Validation error: --to: Not a valid email address.");
    run_with(
        app.db.url(),
        &["mail", "test", "--to", "ops@example.com"],
        &env,
    )
    .await
    .fails(
        2,
        "missing --from (or --site, to send as a site): the test email needs a From address",
    );
    let refused = run_with(
        app.db.url(),
        &[
            "mail",
            "test",
            "--to",
            "ops@example.com",
            "--from",
            "a@example.com",
        ],
        &[
            ("MAIL_TRANSPORT", "smtp"),
            ("SMTP_HOST", "127.0.0.1"),
            ("SMTP_PORT", "1"),
            ("SMTP_TLS", "none"),
        ],
    )
    .await;
    assert_eq!(refused.code, Some(1));
    assert!(
        refused
            .stderr
            .starts_with("aegis: the test email was not sent: "),
        "{}",
        refused.stderr
    );
    assert_eq!(smtp.received().len(), 1);
}

/// A bcrypt hash of "correct horse" (cost 4), as ByteForge Aegis stored them.
fn bcrypt_hash() -> String {
    bcrypt::hash("correct horse", 4).unwrap()
}

#[actix_web::test]
async fn users_export_feeds_import_with_hashes_kept() {
    let app = TestApp::new().await;
    let source = create_site(&app, &[]);
    let target = run(
        &app,
        &[
            "sites",
            "create",
            "--name",
            "Target",
            "--domain",
            "target.example.com",
            "--frontend-url",
            "http://localhost:3001",
            "--email-from",
            "a@target.example.com",
            "--email-from-name",
            "Target",
            "--json",
        ],
    )
    .ok()
    .json();
    // An Argon2 user who signed up and verified, an admin with an adopted bcrypt hash, and a
    // pending user without a password.
    app.verified_user(&source, "argon@example.com", "correct horse")
        .await;
    run(
        &app,
        &[
            "users",
            "create",
            "--site",
            "demo.example.com",
            "--email",
            "pending@example.com",
        ],
    )
    .ok();
    let bcrypt = bcrypt_hash();
    app.sql(&format!(
        "INSERT INTO users (uuid, site_uuid, email, password_hash, is_verified, role, created_at, updated_at) \
         VALUES ('{}', '{}', 'old@example.com', '{bcrypt}', true, 'admin', 1500000000, 1500000000)",
        uuid::Uuid::now_v7(),
        source["uuid"].as_str().unwrap()
    ))
    .await;

    let dir = std::env::temp_dir().join(format!("aegis-export-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("users.jsonl");
    let exported = run(
        &app,
        &[
            "users",
            "export",
            "--site",
            "demo.example.com",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(exported.code, Some(0), "{}", exported.stderr);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3, "{text}");
    let old = records
        .iter()
        .find(|r| r["email"] == "old@example.com")
        .unwrap();
    assert_eq!(old["password_hash"], bcrypt.as_str());
    assert_eq!(old["created_at"], 1_500_000_000);
    assert_eq!(old["role"], "admin");
    // Stdout gives the same lines.
    let stdout = run(&app, &["users", "export", "--site", "demo.example.com"])
        .ok()
        .stdout;
    assert_eq!(stdout, text);

    // Into the other site: a dry run writes nothing, then the import creates all three.
    let dry = run(
        &app,
        &[
            "users",
            "import",
            file.to_str().unwrap(),
            "--site",
            "target.example.com",
            "--dry-run",
        ],
    )
    .ok();
    assert!(
        dry.stdout.contains("3 users would be created (dry run: nothing was written), 0 already existed, 0 lines refused"),
        "{}",
        dry.stdout
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 3);
    let imported = run(
        &app,
        &[
            "users",
            "import",
            file.to_str().unwrap(),
            "--site",
            "target.example.com",
            "--batch",
            "2",
        ],
    )
    .ok();
    assert_eq!(
        imported.stdout,
        "3 users created, 0 already existed, 0 lines refused\n"
    );
    let copy = |site: &Value| {
        format!(
            "SELECT count(*) AS n FROM users a JOIN users b ON a.email = b.email \
             AND a.password_hash IS NOT DISTINCT FROM b.password_hash AND a.role = b.role \
             AND a.is_verified = b.is_verified AND a.created_at = b.created_at \
             WHERE a.site_uuid = '{}' AND b.site_uuid = '{}'",
            source["uuid"].as_str().unwrap(),
            site["uuid"].as_str().unwrap()
        )
    };
    assert_eq!(app.count(&copy(&target)).await, 3);
    // Hashes kept as they are: both sign in on the new site with their old password.
    for email in ["argon@example.com", "old@example.com"] {
        let session = app.login(&target, email, "correct horse").await;
        assert!(session["auth_token"]["token"].is_string(), "{session}");
    }
    // No email and no webhook for imported users.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM email_outbox WHERE site_uuid = '{}'",
            target["uuid"].as_str().unwrap()
        ))
        .await,
        0
    );

    // Again: every address exists, each reported and skipped.
    let again = run(
        &app,
        &[
            "users",
            "import",
            file.to_str().unwrap(),
            "--site",
            "target.example.com",
            "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(again["created"], 0);
    assert_eq!(again["existing"].as_array().unwrap().len(), 3);
    assert_eq!(again["existing"][0]["line"], 1);
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 6);
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_web::test]
async fn users_import_reports_bad_lines_by_number_and_imports_the_good_ones() {
    let app = TestApp::new().await;
    create_site(&app, &[]);
    run(
        &app,
        &[
            "users",
            "create",
            "--site",
            "demo.example.com",
            "--email",
            "taken@example.com",
        ],
    )
    .ok();
    let dir = std::env::temp_dir().join(format!("aegis-import-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("users.csv");
    std::fs::write(
        &file,
        format!(
            "email,role,verified,password_hash,created_at\n\
             good@example.com,admin,true,{},1600000000\n\
             not-an-address,user,false,,\n\
             taken@example.com,,,,\n\
             role@example.com,owner,true,,\n\
             hash@example.com,user,true,plaintext-password,\n\
             plain@example.com,,,,\n\
             \"Quoted@Example.com\",user,maybe,,soon\n\
             plain@example.com,,,,\n",
            bcrypt_hash()
        ),
    )
    .unwrap();
    let out = run(
        &app,
        &[
            "users",
            "import",
            file.to_str().unwrap(),
            "--site",
            "demo.example.com",
        ],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "line 4: taken@example.com already exists: skipped\n\
         line 9: plain@example.com already exists: skipped\n\
         2 users created, 2 already existed, 4 lines refused\n"
    );
    assert_eq!(
        out.stderr,
        "line 3: Validation error: email: Not a valid email address.\n\
         line 5: Validation error: role: Must be one of: user, admin.\n\
         line 6: Validation error: password_hash: Not a bcrypt or Argon2 hash.\n\
         line 8: Validation error: created_at: Not a valid integer.; verified: Not a valid boolean (expected true or false).\n\
         aegis: 4 lines of "
            .to_owned()
            + file.to_str().unwrap()
            + " were refused\n"
    );
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM users WHERE email = 'good@example.com' AND role = 'admin' \
             AND is_verified AND created_at = 1600000000"
        )
        .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM users WHERE email = 'plain@example.com' AND NOT is_verified AND password_hash IS NULL")
            .await,
        1
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 3);

    // A header with a column Aegis does not know refuses the file before anything is written.
    std::fs::write(&file, "email,name\nx@example.com,X\n").unwrap();
    run(&app, &["users", "import", file.to_str().unwrap(), "--site", "demo.example.com"]).fails(
        1,
        "line 1: unknown column \"name\" (the columns are email, role, verified, password_hash, created_at)",
    );
    // JSON Lines with a broken line.
    let jsonl = dir.join("users.jsonl");
    std::fs::write(
        &jsonl,
        "{\"email\":\"j@example.com\"}\n{oops\n\n{\"email\":\"k@example.com\",\"extra\":1}\n",
    )
    .unwrap();
    let out = run(
        &app,
        &[
            "users",
            "import",
            jsonl.to_str().unwrap(),
            "--site",
            "demo.example.com",
        ],
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.starts_with("line 2: not JSON: "),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("line 4: Validation error: extra: Unknown field.\n"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stdout,
        "1 users created, 0 already existed, 2 lines refused\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
