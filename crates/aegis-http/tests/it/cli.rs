//! The `aegis` binary: refusing unsafe production settings, `migrate`, serving and stopping cleanly.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use aegis_test_support::empty_database;

use crate::service::{STRONG_KEY, STRONG_SECRET};

fn aegis(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aegis"));
    // A clean environment and a working directory without a `.env`.
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    aegis(args, env).output().unwrap()
}

#[test]
fn production_refuses_missing_or_default_secrets_and_a_managed_database() {
    let db = ("DATABASE_URL", "postgres://aegis@127.0.0.1:1/aegis");
    let strong = STRONG_KEY;
    let secret = ("SECRET_KEY", STRONG_SECRET);
    for (env, needle) in [
        // The original's env file often has no FLASK_ENV: with a database, that is production.
        (
            vec![db, ("MASTER_API_KEY", "change-me"), secret],
            "MASTER_API_KEY",
        ),
        (
            vec![
                ("DB_HOST", "127.0.0.1"),
                ("DB_PORT", "1"),
                ("MASTER_API_KEY", strong),
                ("SECRET_KEY", "dev-secret-key"),
            ],
            "SECRET_KEY",
        ),
        (vec![("AEGIS_ENV", "production"), db], "MASTER_API_KEY"),
        (
            vec![
                ("FLASK_ENV", "production"),
                db,
                ("MASTER_API_KEY", "change-me"),
            ],
            "MASTER_API_KEY",
        ),
        (
            vec![
                ("FLASK_ENV", "production"),
                db,
                ("MASTER_API_KEY", "your-master-api-key-here-please-change"),
            ],
            "MASTER_API_KEY",
        ),
        (
            vec![
                ("AEGIS_ENV", "production"),
                ("MASTER_API_KEY", strong),
                secret,
            ],
            "DATABASE_URL",
        ),
    ] {
        let out = run(&["migrate"], &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        assert!(stderr.contains(needle), "{env:?}: {stderr}");
        assert!(!stderr.contains(strong), "the key itself is never printed");
        assert!(!stderr.contains("dev-secret-key"), "nor the secret");
    }
}

#[test]
fn a_bad_value_names_its_variable() {
    let out = run(&["migrate"], &[("APP_PORT", "eighty")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("APP_PORT"));
}

/// With a database and strong secrets but no AEGIS_ENV/FLASK_ENV, the service runs in
/// production and says why in one line.
#[actix_web::test]
async fn migrate_then_serve_then_stop_on_sigterm() {
    let db = empty_database().await;
    let env = [
        ("DATABASE_URL", db.url()),
        ("MASTER_API_KEY", STRONG_KEY),
        ("SECRET_KEY", STRONG_SECRET),
    ];
    let out = run(&["migrate"], &env);
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode_lines: Vec<&str> = log.lines().filter(|l| l.contains("mode: ")).collect();
    assert_eq!(mode_lines.len(), 1, "{log}");
    assert!(
        mode_lines[0].contains(
            "mode: production (a database is configured and neither AEGIS_ENV nor FLASK_ENV \
             says development)"
        ),
        "{log}"
    );

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let mut child = aegis(
        &[],
        &[
            env[0],
            env[1],
            env[2],
            ("MAIL_TRANSPORT", "none"),
            ("APP_HOST", "127.0.0.1"),
            ("APP_PORT", &port),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();

    let get = |path: &str, key: Option<&str>| -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).ok()?;
        let auth = key
            .map(|k| format!("X-API-Key: {k}\r\n"))
            .unwrap_or_default();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n{auth}\r\n").ok()?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).ok()?;
        Some(reply)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        if let Some(reply) = get("/api/health", None) {
            break reply;
        }
        assert!(Instant::now() < deadline, "service did not come up");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"));
    assert!(
        health.ends_with("\"status\":\"healthy\",\"version\":\"unknown\"}\n"),
        "{health}"
    );
    let sites = get("/api/sites", Some(STRONG_KEY)).unwrap();
    assert!(sites.ends_with("\r\n\r\n[]\n"), "{sites}");

    // Oversized request heads are refused by the HTTP layer, never a 500.
    let huge = {
        let mut stream = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
        let filler = "a".repeat(200_000);
        let _ = write!(
            stream,
            "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: {filler}\r\n\r\n"
        );
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        reply
    };
    assert!(
        huge.is_empty() || huge.starts_with("HTTP/1.1 4"),
        "{}",
        &huge[..huge.len().min(200)]
    );
    let many = {
        let mut stream = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
        let mut head = String::from("GET /api/health HTTP/1.1\r\nHost: x\r\n");
        for i in 0..200 {
            head.push_str(&format!("X-H{i}: v\r\n"));
        }
        head.push_str("\r\n");
        let _ = stream.write_all(head.as_bytes());
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        reply
    };
    assert!(
        many.is_empty() || many.starts_with("HTTP/1.1 4"),
        "{}",
        &many[..many.len().min(200)]
    );

    // The health probe subcommand agrees, for liveness and for readiness.
    let probe = run(&["healthcheck"], &[("APP_PORT", &port)]);
    assert!(probe.status.success());
    let probe = run(&["healthcheck", "--ready"], &[("APP_PORT", &port)]);
    assert!(probe.status.success());
    let ready = get("/api/health/ready", None).unwrap();
    assert!(ready.contains("\"status\":\"ready\""), "{ready}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "service did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    let probe = run(&["healthcheck"], &[("APP_PORT", &port)]);
    assert!(!probe.status.success());
    let probe = run(&["healthcheck", "--ready"], &[("APP_PORT", &port)]);
    assert!(!probe.status.success());
}
