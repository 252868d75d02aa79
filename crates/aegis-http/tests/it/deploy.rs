//! The container deployment, checked without a container engine: the compose file parses and
//! says what the operations guide says, the Dockerfile builds with the command CI runs, and the
//! binary runs the way the image runs it and answers both health checks.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aegis_test_support::fresh_database;
use yaml_rust2::{Yaml, YamlLoader};

use crate::service::{STRONG_KEY, STRONG_SECRET, free_port};

fn repo_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn compose() -> Yaml {
    YamlLoader::load_from_str(&repo_file("deploy/docker-compose.yml"))
        .expect("the compose file is YAML")
        .remove(0)
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile() -> Vec<String> {
    repo_file("deploy/Dockerfile")
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The `ENV` of the image's last stage.
fn image_env() -> BTreeMap<String, String> {
    let lines = dockerfile();
    let last_stage = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    lines[last_stage..]
        .iter()
        .filter_map(|l| l.strip_prefix("ENV "))
        .flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The JSON-array form of an instruction (`CMD ["aegis", "healthcheck"]`) as arguments.
fn exec_form(line: &str) -> Vec<String> {
    let start = line.find('[').unwrap();
    serde_json::from_str(&line[start..]).unwrap()
}

#[test]
fn the_compose_file_takes_every_setting_from_the_env_file_and_rotates_logs() {
    let doc = compose();
    let aegis = &doc["services"]["aegis"];
    assert_eq!(aegis["env_file"][0]["path"].as_str(), Some("../.env"));
    assert_eq!(aegis["env_file"][0]["required"].as_bool(), Some(true));
    let env = &aegis["environment"];
    assert_eq!(env["DB_HOST"].as_str(), Some("db"));
    assert_eq!(env["DATABASE_URL"].as_str(), Some(""));
    assert_eq!(env["APP_PORT"].as_str(), Some("5678"));
    // Nothing else the operator may want to set is pinned here, where it would shadow `.env`.
    let pinned: Vec<&str> = env
        .as_hash()
        .unwrap()
        .keys()
        .filter_map(Yaml::as_str)
        .collect();
    for setting in [
        "MAIL_TRANSPORT",
        "SMTP_HOST",
        "TRUSTED_PROXIES",
        "CORS_ORIGINS",
        "RATELIMIT_ENABLED",
        "LOG_LEVEL",
    ] {
        assert!(
            !pinned.contains(&setting),
            "{setting} is pinned in the compose file"
        );
    }
    assert_eq!(
        aegis["healthcheck"]["test"]
            .as_vec()
            .unwrap()
            .iter()
            .filter_map(Yaml::as_str)
            .collect::<Vec<_>>(),
        ["CMD", "aegis", "healthcheck", "--ready"]
    );
    for service in ["db", "aegis"] {
        let logging = &doc["services"][service]["logging"];
        assert_eq!(logging["driver"].as_str(), Some("json-file"), "{service}");
        assert_eq!(
            logging["options"]["max-size"].as_str(),
            Some("10m"),
            "{service}"
        );
        assert_eq!(
            logging["options"]["max-file"].as_str(),
            Some("3"),
            "{service}"
        );
    }
    assert_eq!(
        aegis["build"]["dockerfile"].as_str(),
        Some("deploy/Dockerfile")
    );
}

#[test]
fn the_dockerfile_caches_dependencies_uses_its_own_toolchain_and_builds_as_ci_does() {
    let lines = dockerfile();
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert!(
        has("cargo chef cook --release --locked"),
        "dependencies in a layer of their own"
    );
    assert!(has("FROM rust:${RUST_VERSION}-bookworm"));
    assert!(
        has("ENV RUSTUP_TOOLCHAIN=${RUST_VERSION}"),
        "no second toolchain"
    );
    let version = lines
        .iter()
        .find_map(|l| l.strip_prefix("ARG RUST_VERSION="))
        .expect("a pinned RUST_VERSION");
    let msrv = repo_file("Cargo.toml")
        .lines()
        .find_map(|l| {
            l.strip_prefix("rust-version = ")
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap();
    let numbers = |v: &str| {
        v.split('.')
            .map(|n| n.parse::<u32>().unwrap())
            .collect::<Vec<_>>()
    };
    assert!(
        numbers(version) >= numbers(&msrv),
        "{version} is older than the MSRV {msrv}"
    );
    assert!(has("LABEL org.opencontainers.image.title=\"Aegis\""));
    assert!(has("org.opencontainers.image.version=\"${VERSION}\""));

    let build = lines
        .iter()
        .find_map(|l| l.strip_prefix("RUN cargo build "))
        .map(|rest| format!("cargo build {}", rest.split(" && ").next().unwrap()))
        .expect("the image's build command");
    assert!(
        repo_file(".ci/run").lines().any(|l| l.trim() == build),
        "CI does not run the image's build command `{build}`"
    );
}

#[actix_web::test]
async fn the_binary_runs_as_the_image_runs_it_and_answers_both_health_checks() {
    let db = fresh_database().await;
    let url = url::Url::parse(db.url()).unwrap();
    let port = free_port().to_string();
    let version_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../VERSION");
    let mut env = image_env();
    assert_eq!(env.get("AEGIS_ENV").map(String::as_str), Some("production"));
    // The image's environment, then what the compose file and an operator's `.env` add; only the
    // port (a free one) and the paths inside the image differ.
    env.insert("APP_PORT".into(), port.clone());
    env.insert(
        "AEGIS_VERSION_FILE".into(),
        version_file.display().to_string(),
    );
    for (k, v) in [
        ("DATABASE_URL", ""),
        ("DB_HOST", url.host_str().unwrap()),
        ("DB_PORT", &url.port().unwrap().to_string()),
        ("DB_NAME", url.path().trim_start_matches('/')),
        ("DB_USER", url.username()),
        ("DB_PASSWORD", url.password().unwrap_or("")),
        ("MASTER_API_KEY", STRONG_KEY),
        ("SECRET_KEY", STRONG_SECRET),
        ("MAIL_TRANSPORT", "none"),
    ] {
        env.insert(k.into(), v.into());
    }
    let lines = dockerfile();
    let entrypoint = exec_form(lines.iter().find(|l| l.starts_with("ENTRYPOINT ")).unwrap());
    let cmd = exec_form(lines.iter().find(|l| l.starts_with("CMD ")).unwrap());
    assert_eq!(entrypoint, ["aegis"]);
    let run = |args: &[String]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_aegis"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(&env)
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null());
        command
    };
    let mut server = run(&cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let liveness = lines
        .iter()
        .find(|l| l.starts_with("HEALTHCHECK "))
        .unwrap();
    let liveness = exec_form(&liveness[liveness.find("CMD").unwrap()..]);
    let readiness: Vec<String> = compose()["services"]["aegis"]["healthcheck"]["test"]
        .as_vec()
        .unwrap()
        .iter()
        .skip(1)
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for probe in [&liveness, &readiness] {
        assert_eq!(probe[0], "aegis");
        loop {
            let status = run(&probe[1..])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            if status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "`{}` never succeeded",
                probe.join(" ")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let health = reqwest::get(format!("http://127.0.0.1:{port}/api/health"))
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&health.text().await.unwrap()).unwrap();
    assert_eq!(body["version"], repo_file("VERSION").trim());

    server.kill().unwrap();
    server.wait().unwrap();
    let down = run(&readiness[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!down.success(), "readiness fails once the service is gone");
}
