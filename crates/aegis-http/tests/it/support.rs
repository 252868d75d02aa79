//! A test application on its own database, and a small client for it.

use std::sync::Arc;

use actix_service::boxed::{self, RcService};
use actix_web::body::{BoxBody, MessageBody as _};
use actix_web::dev::{Service as _, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::test::{self, TestRequest};
use actix_web::{Error, web};
use std::sync::atomic::{AtomicUsize, Ordering};

use aegis_domain::password::{
    Argon2Settings, HashError, PasswordAlgorithms, PasswordHasher, Verification,
};
use aegis_domain::user::PlainPassword;
use aegis_domain::{ManualClock, RandomSecretGenerator};
use aegis_http::app::{self, AppConfig, AppState, Ports};
use aegis_http::passwords::{HashPoolSize, PooledHasher};
use aegis_postgres::{PgPool, PoolSettings, SealingKeys, build_pool};
use aegis_test_support::{TestDatabase, fresh_database};
use async_trait::async_trait;
use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::{
    AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _, SimpleAsyncConnection as _,
};
use secrecy::SecretString;
use serde_json::{Value, json};

pub const MASTER_KEY: &str = "test-master-key-0123456789abcdef0123456789";
/// The `SECRET_KEY` of test applications.
pub const SECRET_KEY: &str = "test-secret-key-0123456789abcdef0123456789";

/// The sealing keys of test applications.
pub fn sealing_keys() -> SealingKeys {
    SealingKeys::new(SECRET_KEY, None).unwrap()
}
pub const T0: i64 = 1_800_000_000;
/// The connection pool of test applications: patient, so that a machine loaded by parallel tests
/// does not turn a wait into a 503 (`with_pool_size` keeps the service's default).
pub const POOL: PoolSettings = PoolSettings {
    max_size: 4,
    timeout: std::time::Duration::from_secs(5),
    connect_timeout: std::time::Duration::from_secs(5),
    shards: 1,
};
/// The hashing pool of test applications.
pub const HASH_POOL: HashPoolSize = HashPoolSize {
    workers: 2,
    queue: 64,
};

type AppService = RcService<actix_http::Request, ServiceResponse<BoxBody>, Error>;

pub struct TestApp {
    service: AppService,
    pub db: Arc<TestDatabase>,
    /// The application's own pool.
    pub pool: PgPool,
    url: String,
    limits: Option<aegis_http::client_ip::ClientIpPolicy>,
    pub clock: ManualClock,
    pub hasher: Arc<CountingHasher>,
    /// The application's services, for what its background workers would do.
    pub state: web::Data<AppState>,
}

/// The real hasher with test-sized costs, counting its calls.
pub struct CountingHasher {
    pub inner: PooledHasher,
    pub hashes: AtomicUsize,
    pub verifications: AtomicUsize,
    gate: std::sync::Mutex<Option<Arc<Gate>>>,
}

/// Holds verifications once computed, so a test can run something between a password check and
/// what the caller does with it.
pub struct Gate {
    held: tokio::sync::Notify,
    open: tokio::sync::Semaphore,
}

impl Gate {
    /// Waits until a verification is being held.
    pub async fn held(&self) {
        self.held.notified().await;
    }

    /// Lets every held and future verification through.
    pub fn open(&self) {
        self.open
            .add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    }
}

impl CountingHasher {
    fn new(size: HashPoolSize) -> Self {
        let algorithms = PasswordAlgorithms::new(Argon2Settings {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        Self {
            inner: PooledHasher::new(algorithms, size).unwrap(),
            hashes: AtomicUsize::new(0),
            verifications: AtomicUsize::new(0),
            gate: std::sync::Mutex::new(None),
        }
    }

    /// From now on, verifications wait at the returned gate once computed.
    pub fn hold_verifications(&self) -> Arc<Gate> {
        let gate = Arc::new(Gate {
            held: tokio::sync::Notify::new(),
            open: tokio::sync::Semaphore::new(0),
        });
        *self.gate.lock().unwrap() = Some(gate.clone());
        gate
    }

    /// Runs `meanwhile` while `gate` holds a verification, then lets it go and stops holding.
    pub async fn release_for(&self, meanwhile: impl Future<Output = ()>, gate: &Gate) {
        meanwhile.await;
        *self.gate.lock().unwrap() = None;
        gate.open();
    }

    pub fn verifications(&self) -> usize {
        AtomicUsize::load(&self.verifications, Ordering::SeqCst)
    }
}

#[async_trait]
impl PasswordHasher for CountingHasher {
    async fn hash(&self, password: &PlainPassword) -> Result<String, HashError> {
        self.hashes.fetch_add(1, Ordering::SeqCst);
        self.inner.hash(password).await
    }

    async fn verify(
        &self,
        password: &PlainPassword,
        stored: Option<String>,
    ) -> Result<Verification, HashError> {
        self.verifications.fetch_add(1, Ordering::SeqCst);
        let result = self.inner.verify(password, stored).await;
        let gate = self.gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            gate.held.notify_one();
            let _ = gate.open.acquire().await;
        }
        result
    }

    async fn learn_costs(
        &self,
        kinds: Vec<aegis_domain::password::HashKind>,
    ) -> Result<(), HashError> {
        self.inner.learn_costs(kinds).await
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status and that the body is exactly `{"error": message}`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, message: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        assert_eq!(self.json(), json!({ "error": message }));
        assert_eq!(
            self.headers.get("content-type").unwrap(),
            "application/json"
        );
    }

    /// Asserts a 400 validation error whose `details` are exactly `details`.
    #[track_caller]
    pub fn assert_validation(&self, details: Value) {
        assert_eq!(self.status, StatusCode::BAD_REQUEST, "{}", self.text());
        assert_eq!(
            self.json(),
            json!({"error": "Validation error", "details": details})
        );
    }
}

/// How a test application differs from the usual one.
struct Options {
    master_key: Option<&'static str>,
    limits: Option<aegis_http::client_ip::ClientIpPolicy>,
    clock: ManualClock,
    pool: PoolSettings,
    hash_pool: HashPoolSize,
    openapi: bool,
    hosted_pages_url: Option<String>,
    token_cache: aegis_postgres::TokenCacheSettings,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            master_key: Some(MASTER_KEY),
            limits: None,
            clock: ManualClock::new(T0),
            pool: POOL,
            hash_pool: HASH_POOL,
            openapi: true,
            hosted_pages_url: None,
            token_cache: aegis_postgres::TokenCacheSettings::default(),
        }
    }
}

impl TestApp {
    pub async fn new() -> Self {
        Self::fresh(Options::default()).await
    }

    pub async fn without_master_key() -> Self {
        Self::fresh(Options {
            master_key: None,
            ..Options::default()
        })
        .await
    }

    /// The usual application on a database of the test's own making.
    pub async fn with_options(db: TestDatabase, master_key: Option<&'static str>) -> Self {
        let url = db.url().to_owned();
        let options = Options {
            master_key,
            ..Options::default()
        };
        Self::build(Arc::new(db), &url, options).await
    }

    /// An application with `HOSTED_PAGES_URL` set to `url`, and rate limits on when `limits`.
    pub async fn with_hosted_pages(url: &str, limits: bool) -> Self {
        Self::fresh(Options {
            hosted_pages_url: Some(url.to_owned()),
            limits: limits.then(aegis_http::client_ip::ClientIpPolicy::default),
            ..Options::default()
        })
        .await
    }

    /// An application with `OPENAPI_ENABLED=false`.
    pub async fn without_openapi() -> Self {
        Self::fresh(Options {
            openapi: false,
            ..Options::default()
        })
        .await
    }

    /// An application hashing on a pool of this size.
    pub async fn with_hash_pool(size: HashPoolSize) -> Self {
        Self::fresh(Options {
            hash_pool: size,
            ..Options::default()
        })
        .await
    }

    /// An application whose pool holds at most `size` connections, with the service's own default
    /// patience (which the saturation test measures).
    pub async fn with_pool_size(size: usize) -> Self {
        Self::fresh(Options {
            pool: PoolSettings {
                max_size: size,
                ..PoolSettings::default()
            },
            ..Options::default()
        })
        .await
    }

    /// An application with rate limits on, finding client addresses with `policy`.
    pub async fn with_limits(policy: aegis_http::client_ip::ClientIpPolicy) -> Self {
        Self::fresh(Options {
            limits: Some(policy),
            ..Options::default()
        })
        .await
    }

    /// A second instance of the service on the same database, sharing the clock.
    pub async fn sibling(&self) -> Self {
        self.sibling_with_token_cache(aegis_postgres::TokenCacheSettings::default())
            .await
    }

    /// [`Self::sibling`] with these token cache settings.
    pub async fn sibling_with_token_cache(
        &self,
        token_cache: aegis_postgres::TokenCacheSettings,
    ) -> Self {
        let options = Options {
            limits: self.limits.clone(),
            clock: self.clock.clone(),
            token_cache,
            ..Options::default()
        };
        Self::build(self.db.clone(), &self.url.clone(), options).await
    }

    /// Waits (up to 5 s) until the token cache listens for invalidations, so that checks from
    /// now on are cached. A no-op when the cache is off.
    pub async fn token_cache_listening(&self) {
        let Some(cache) = &self.state.token_cache else {
            return;
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while cache.is_bypassed() {
            assert!(
                std::time::Instant::now() < deadline,
                "the token cache never listened"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// An application whose database refuses connections (the test database is only kept for the
    /// helpers' sake).
    pub async fn with_database_down() -> Self {
        Self::refused(None).await
    }

    /// [`Self::with_database_down`], with rate limits on.
    pub async fn with_limits_and_database_down() -> Self {
        Self::refused(Some(aegis_http::client_ip::ClientIpPolicy::default())).await
    }

    async fn refused(limits: Option<aegis_http::client_ip::ClientIpPolicy>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("postgres://aegis@127.0.0.1:{port}/nowhere");
        let options = Options {
            limits,
            ..Options::default()
        };
        Self::build(Arc::new(fresh_database().await), &url, options).await
    }

    /// An application on a fresh database.
    async fn fresh(options: Options) -> Self {
        let db = fresh_database().await;
        let url = db.url().to_owned();
        Self::build(Arc::new(db), &url, options).await
    }

    async fn build(db: Arc<TestDatabase>, url: &str, options: Options) -> Self {
        let Options {
            master_key,
            limits,
            clock,
            pool,
            hash_pool,
            openapi,
            hosted_pages_url,
            token_cache,
        } = options;
        let pool = build_pool(url, pool).unwrap();
        let hasher = Arc::new(CountingHasher::new(hash_pool));
        let state = AppState::new(
            pool.clone(),
            Ports {
                clock: Arc::new(clock.clone()),
                generator: Arc::new(RandomSecretGenerator),
                hasher: hasher.clone(),
                webhook_sender: Arc::new(aegis_mailgun::HttpWebhookSender::new(false).unwrap()),
            },
            AppConfig {
                master_api_key: master_key.map(|k| SecretString::from(k.to_owned())),
                max_body_bytes: 65_536,
                version: "1.2.3".into(),
                accounts: aegis_domain::service::accounts::AccountSettings {
                    hosted_pages_url: hosted_pages_url.clone(),
                    ..Default::default()
                },
                ratelimit_enabled: limits.is_some(),
                openapi_enabled: openapi,
                client_ip: limits.clone().unwrap_or_default(),
                networks: aegis_domain::ratelimit::NetworkPrefixes::default(),
                account_keyring: aegis_domain::ratelimit::AccountKeyring::from_secret(SECRET_KEY),
                cors_origins: None,
                cors_extra_origins: vec!["https://extra.example.com".into()],
                outbox_keys: sealing_keys(),
                pages: aegis_http::pages::PagesConfig::new(SECRET_KEY, hosted_pages_url.clone()),
                token_cache,
            },
        );
        let state = web::Data::new(state);
        let service = test::init_service(app::build(state.clone())).await;
        Self {
            service: boxed::rc_service(service),
            db,
            pool,
            url: url.to_owned(),
            limits,
            clock,
            hasher,
            state,
        }
    }

    pub async fn send(&self, req: TestRequest) -> Reply {
        let req = req.to_request();
        // As sent: the application answers a HEAD as a GET.
        let method = req.method().clone();
        let res = self.service.call(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let pattern = res.request().match_pattern();
        let body = res
            .into_body()
            .try_into_bytes()
            .map(|b| b.to_vec())
            .unwrap_or_else(|_| panic!("streaming body"));
        crate::documented::check(&method, pattern.as_deref(), status, &headers, &body);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A request with the master key and a JSON body.
    pub async fn master(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut req = request(method, path).insert_header(("X-API-Key", MASTER_KEY));
        if let Some(body) = body {
            req = req.set_json(body);
        }
        self.send(req).await
    }

    pub async fn create_site(&self, domain: &str) -> Value {
        let reply = self
            .master("POST", "/api/sites", Some(site_body(domain)))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        reply.json()
    }

    /// Runs `statements`, then waits until this application's token cache has applied what they
    /// notified (as the service does after its own writes), so the next request sees them.
    pub async fn sql(&self, statements: &str) {
        let mut conn = AsyncPgConnection::establish(self.db.url()).await.unwrap();
        conn.batch_execute(statements).await.unwrap();
        if let Some(cache) = &self.state.token_cache {
            cache.settle(&mut conn).await;
        }
    }

    pub async fn count(&self, query: &str) -> i64 {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let mut conn = AsyncPgConnection::establish(self.db.url()).await.unwrap();
        diesel::sql_query(query)
            .get_result::<N>(&mut conn)
            .await
            .unwrap()
            .n
    }
}

/// `req` as if it came from `ip` (v4 or v6).
pub fn from_peer(ip: &str, req: TestRequest) -> TestRequest {
    let addr = if ip.contains(':') {
        format!("[{ip}]:40000")
    } else {
        format!("{ip}:40000")
    };
    req.peer_addr(addr.parse().unwrap())
}

/// A POST through the tenant gate of `site` (a site as the admin view returns it).
pub fn tenant_request(site: &Value, path: &str, body: Value) -> TestRequest {
    request("POST", path)
        .insert_header(("X-Tenant-Api-Key", site["tenant_api_key"].as_str().unwrap()))
        .set_json(body)
}

/// Sends each request in turn; their statuses.
pub async fn statuses(app: &TestApp, requests: Vec<TestRequest>) -> Vec<u16> {
    let mut out = Vec::new();
    for r in requests {
        out.push(app.send(r).await.status.as_u16());
    }
    out
}

impl Reply {
    /// A header's value, or an empty string.
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

pub fn request(method: &str, path: &str) -> TestRequest {
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
    TestRequest::default().method(method).uri(path)
}

pub fn site_body(domain: &str) -> Value {
    json!({
        "name": "Example",
        "domain": domain,
        "frontend_url": "http://test.example.com",
        "email_from": "noreply@example.com",
        "email_from_name": "Example Team",
    })
}

impl TestApp {
    /// A request through the tenant gate of `site` (a site as the admin view returns it).
    pub async fn tenant(&self, path: &str, site: &Value, body: Value) -> Reply {
        self.send(
            request("POST", path)
                .insert_header(("X-Tenant-Api-Key", site["tenant_api_key"].as_str().unwrap()))
                .set_json(body),
        )
        .await
    }

    /// A bearer request.
    pub async fn bearer(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut req =
            request(method, path).insert_header(("Authorization", format!("Bearer {token}")));
        if let Some(body) = body {
            req = req.set_json(body);
        }
        self.send(req).await
    }

    /// The newest queued email of `kind` to `recipient`: (subject, text body). Its body is stored
    /// only sealed: the plaintext columns are empty and the sealed bytes do not show the link.
    pub async fn last_email(&self, kind: &str, recipient: &str) -> (String, String) {
        let email = self.sealed(kind, recipient).await;
        (email.subject, email.text)
    }

    async fn sealed(&self, kind: &str, recipient: &str) -> aegis_test_support::SealedEmail {
        self.handle_reset_requests().await;
        let email =
            aegis_test_support::sealed_email(self.db.url(), SECRET_KEY, kind, recipient).await;
        assert_eq!(email.plaintext_at_rest, "", "no plaintext body at rest");
        assert!(!String::from_utf8_lossy(&email.sealed_body).contains("token="));
        email
    }

    /// Does what the password-reset worker of the service would have done by now.
    pub async fn handle_reset_requests(&self) {
        self.state
            .accounts
            .process_reset_requests(1_000)
            .await
            .unwrap();
    }

    /// The token in the newest queued email of `kind` to `recipient`.
    pub async fn emailed_token(&self, kind: &str, recipient: &str) -> String {
        self.sealed(kind, recipient).await.token()
    }

    /// Registers `email` with `password` on `site` and verifies it through the emailed link.
    pub async fn verified_user(&self, site: &Value, email: &str, password: &str) -> Value {
        let site_id = site["uuid"].as_str().unwrap();
        let reply = self
            .tenant(
                "/api/auth/register",
                site,
                json!({"site_id": site_id, "email": email, "password": password}),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 201, "{}", reply.text());
        let token = self
            .emailed_token("verification", &email.to_lowercase())
            .await;
        let reply = self
            .tenant(
                "/api/auth/verify-email",
                site,
                json!({"site_id": site_id, "token": token}),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
        reply.json()["user"].clone()
    }

    /// A verified user of `site` signed in: their auth token.
    pub async fn signed_in(&self, site: &Value, email: &str, password: &str) -> String {
        self.verified_user(site, email, password).await;
        self.login(site, email, password).await["auth_token"]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Logs in and returns the LoginResult.
    pub async fn login(&self, site: &Value, email: &str, password: &str) -> Value {
        let reply = self
            .tenant(
                "/api/auth/login",
                site,
                json!({"site_id": site["uuid"], "email": email, "password": password}),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
        reply.json()
    }
}

impl TestApp {
    /// The pinned clock's time.
    pub fn clock_now(&self) -> i64 {
        use aegis_domain::Clock as _;
        self.clock.now()
    }
}
