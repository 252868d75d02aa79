//! The real `aegis` binary as a test drives it: started with an environment of the test's choosing,
//! its JSON log collected line by line, called over HTTP, stopped with a signal.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Secrets production accepts.
pub const STRONG_KEY: &str = "5f0c1c8e2b7a4d6f9e3a1b0c8d7e6f5a4b3c2d1e0f9a8b7c";
pub const STRONG_SECRET: &str = "c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Service {
    child: Child,
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

/// An answer: status, `Retry-After`, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

impl Service {
    /// Starts the binary in production mode on `database_url` (strong secrets, JSON logs,
    /// 127.0.0.1, a free port), with `extra` variables on top, and waits until it answers.
    pub async fn start(database_url: &str, extra: &[(&str, &str)]) -> Self {
        Self::start_on(free_port(), database_url, extra).await
    }

    /// [`Self::start`] on `port`, for a test that must know it beforehand.
    pub async fn start_on(port: u16, database_url: &str, extra: &[(&str, &str)]) -> Self {
        let port_text = port.to_string();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aegis"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in [
            ("DATABASE_URL", database_url),
            ("MASTER_API_KEY", STRONG_KEY),
            ("SECRET_KEY", STRONG_SECRET),
            ("LOG_FORMAT", "json"),
            ("APP_HOST", "127.0.0.1"),
            ("APP_PORT", &port_text),
        ]
        .iter()
        .chain(extra)
        {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let service = Self {
            child,
            port,
            log,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while service
            .try_call("GET", "/api/health", &[], None)
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the service did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        service
    }

    async fn try_call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, reqwest::Error> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("http://127.0.0.1:{}{path}", self.port))
            .timeout(Duration::from_secs(20));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = res.text().await?;
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Answer {
        self.try_call(method, path, headers, body).await.unwrap()
    }

    /// The log lines so far, parsed.
    pub fn log(&self) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Sends `signal` (`TERM` or `KILL`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to end; how long that took.
    pub fn wait(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return started.elapsed();
            }
            assert!(started.elapsed() < limit, "the service did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `message` of a JSON log line.
pub fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or("")
}

/// The level of a JSON log line.
pub fn level(line: &Value) -> &str {
    line["level"].as_str().unwrap_or("")
}

/// The token in the newest queued email of `kind` to `recipient`, opened with the services'
/// `SECRET_KEY`.
pub async fn emailed_token(database_url: &str, kind: &str, recipient: &str) -> String {
    aegis_test_support::sealed_email(database_url, STRONG_SECRET, kind, recipient)
        .await
        .token()
}

/// A site, and a verified user of it logged in: (site, tenant key, auth token).
pub async fn signed_in_user(
    service: &Service,
    database_url: &str,
    domain: &str,
    email: &str,
) -> (String, String, String) {
    let master = [("X-API-Key", STRONG_KEY)];
    let site = service
        .call(
            "POST",
            "/api/sites",
            &master,
            Some(&serde_json::json!({
                "name": "Outage", "domain": domain, "frontend_url": "https://app.example.com",
                "email_from": "noreply@example.com", "email_from_name": "Outage",
            })),
        )
        .await
        .json();
    let (site_id, key) = (
        site["uuid"].as_str().unwrap().to_owned(),
        site["tenant_api_key"].as_str().unwrap().to_owned(),
    );
    let tenant = [("X-Tenant-Api-Key", key.as_str())];
    let account = serde_json::json!({"site_id": site_id, "email": email, "password": "password-1"});
    let registered = service
        .call("POST", "/api/auth/register", &tenant, Some(&account))
        .await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    let token = emailed_token(database_url, "verification", email).await;
    let verified = service
        .call(
            "POST",
            "/api/auth/verify-email",
            &tenant,
            Some(&serde_json::json!({"site_id": site_id, "token": token})),
        )
        .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    let login = service
        .call("POST", "/api/auth/login", &tenant, Some(&account))
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let auth = login.json()["auth_token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    (site_id, key, auth)
}
