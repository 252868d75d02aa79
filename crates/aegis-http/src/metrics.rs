//! Prometheus metrics: names, the recorder, and the `/metrics` listener.
//!
//! The service records through the `metrics` facade, which costs next to nothing until a recorder
//! is installed. [`install`] makes a Prometheus recorder the process's global one (once);
//! [`Metrics::render`] gives the text exposition format, and [`Metrics::serve`] answers
//! `GET /metrics` with it on a listener of its own (`METRICS_ADDR`), apart from the API.
//!
//! Every name is listed, with its type, labels and meaning, in `docs/operations.md`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::Method;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{App, HttpResponse, HttpServer, web};
use aegis_domain::delivery::Attempt;
use aegis_domain::ratelimit::Limited;
use aegis_postgres::PgPool;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Counter: HTTP requests answered, by `route` (template), `method` and `status`.
pub const HTTP_REQUESTS: &str = "aegis_http_requests_total";
/// Histogram: time to answer an HTTP request, in seconds, by `route`, `method` and `status`.
pub const HTTP_DURATION: &str = "aegis_http_request_duration_seconds";
/// Gauge: password hashing jobs waiting for a thread.
pub const HASH_WAITING: &str = "aegis_password_hash_jobs_waiting";
/// Gauge: password hashing jobs running on a thread.
pub const HASH_RUNNING: &str = "aegis_password_hash_jobs_running";
/// Histogram: time a password hashing job held its thread, in seconds.
pub const HASH_DURATION: &str = "aegis_password_hash_duration_seconds";
/// Gauge: messages waiting in an outbox, by `kind` (`email`, `webhook`).
pub const OUTBOX_BACKLOG: &str = "aegis_outbox_backlog";
/// Gauge: age of the oldest waiting message, in seconds (0 when none waits), by `kind`.
pub const OUTBOX_OLDEST_AGE: &str = "aegis_outbox_oldest_age_seconds";
/// Counter: delivery attempts by the workers, by `kind` and `outcome`.
pub const OUTBOX_DELIVERIES: &str = "aegis_outbox_deliveries_total";
/// Gauge: the most connections the pool may hold.
pub const DB_POOL_MAX: &str = "aegis_db_pool_max_connections";
/// Gauge: connections open now.
pub const DB_POOL_SIZE: &str = "aegis_db_pool_connections";
/// Gauge: connections lent to requests and workers now.
pub const DB_POOL_IN_USE: &str = "aegis_db_pool_connections_in_use";
/// Gauge: callers waiting for a connection now.
pub const DB_POOL_WAITING: &str = "aegis_db_pool_waiting";
/// Histogram: how long a caller waited for a pooled connection, in seconds.
pub const DB_POOL_WAIT: &str = aegis_postgres::pool::WAIT_SECONDS;
/// Counter: requests refused with 429, by `rule` (the limited route).
pub const RATELIMIT_REJECTIONS: &str = "aegis_ratelimit_rejections_total";
/// Gauge: always 1, with the `version` the health endpoint reports.
pub const BUILD_INFO: &str = "aegis_build_info";

/// The `route` label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Histogram buckets, in seconds: from a millisecond (a cached answer) to ten seconds (timeouts).
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const LIMITED: [Limited; 6] = [
    Limited::Login,
    Limited::Register,
    Limited::PasswordReset,
    Limited::Invite,
    Limited::ChangePassword,
    Limited::EmailChange,
];

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
/// Set once metrics are asked for, whoever records them.
static WANTED: AtomicBool = AtomicBool::new(false);

/// Installs the Prometheus recorder as the process's global `metrics` recorder, the first time it
/// is called; later calls return the same handle. `None` when another global recorder was
/// installed first (an embedding application's own): Aegis's metrics then go to that one.
pub fn install() -> Option<PrometheusHandle> {
    WANTED.store(true, Ordering::Relaxed);
    RECORDER
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

/// Whether metrics were asked for ([`install`] was called, whichever recorder records them), so
/// work done only for the metrics (the backlog query) is skipped otherwise.
pub fn wanted() -> bool {
    WANTED.load(Ordering::Relaxed)
}

/// HELP lines, and every series a dashboard expects present from the first scrape at zero.
fn describe() {
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered");
    describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "Time to answer an HTTP request"
    );
    describe_gauge!(HASH_WAITING, "Password hashing jobs waiting for a thread");
    describe_gauge!(HASH_RUNNING, "Password hashing jobs running");
    describe_histogram!(
        HASH_DURATION,
        metrics::Unit::Seconds,
        "Time a password hashing job held its thread"
    );
    describe_gauge!(OUTBOX_BACKLOG, "Messages waiting in an outbox");
    describe_gauge!(
        OUTBOX_OLDEST_AGE,
        metrics::Unit::Seconds,
        "Age of the oldest waiting message"
    );
    describe_counter!(OUTBOX_DELIVERIES, "Delivery attempts by outcome");
    describe_gauge!(DB_POOL_MAX, "Most connections the pool may hold");
    describe_gauge!(DB_POOL_SIZE, "Connections open");
    describe_gauge!(DB_POOL_IN_USE, "Connections in use");
    describe_gauge!(DB_POOL_WAITING, "Callers waiting for a connection");
    describe_histogram!(
        DB_POOL_WAIT,
        metrics::Unit::Seconds,
        "Time waited for a pooled connection"
    );
    describe_counter!(RATELIMIT_REJECTIONS, "Requests refused with 429");
    describe_gauge!(BUILD_INFO, "Build information");
    {
        use aegis_postgres::token_cache as tc;
        describe_counter!(tc::HITS, "Bearer checks answered from the token cache");
        describe_counter!(
            tc::MISSES,
            "Bearer checks that read the database while the token cache was listening"
        );
        describe_counter!(
            tc::BYPASSED_CHECKS,
            "Bearer checks that read the database because the token cache was bypassed"
        );
        describe_counter!(tc::EVICTIONS, "Token cache entries removed");
        describe_gauge!(tc::BYPASSED, "1 while the token cache is bypassed");
        describe_gauge!(tc::ENTRIES, "Token cache entries held");
        for name in [tc::HITS, tc::MISSES, tc::BYPASSED_CHECKS, tc::EVICTIONS] {
            counter!(name).increment(0);
        }
    }
    gauge!(HASH_WAITING).increment(0.0);
    gauge!(HASH_RUNNING).increment(0.0);
    for kind in ["email", "webhook"] {
        gauge!(OUTBOX_BACKLOG, "kind" => kind).increment(0.0);
        gauge!(OUTBOX_OLDEST_AGE, "kind" => kind).increment(0.0);
        for outcome in ["delivered", "retried", "exhausted"] {
            counter!(OUTBOX_DELIVERIES, "kind" => kind, "outcome" => outcome).increment(0);
        }
    }
    for rule in LIMITED {
        counter!(RATELIMIT_REJECTIONS, "rule" => rule.name()).increment(0);
    }
}

/// The metrics of one Aegis: the recorder's handle and the pool it reports on.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    pool: PgPool,
    token_cache: Option<std::sync::Arc<aegis_postgres::TokenCache>>,
}

impl Metrics {
    /// The metrics of the Aegis on `pool`, reported as version `version`.
    pub fn new(handle: PrometheusHandle, pool: PgPool, version: &str) -> Self {
        gauge!(BUILD_INFO, "version" => version.to_owned()).set(1.0);
        Self {
            handle,
            pool,
            token_cache: None,
        }
    }

    /// Also reports `cache`'s state (entries held, whether bypassed) at each scrape.
    #[must_use]
    pub fn with_token_cache(
        mut self,
        cache: Option<std::sync::Arc<aegis_postgres::TokenCache>>,
    ) -> Self {
        self.token_cache = cache;
        self
    }

    /// The Prometheus text exposition of every metric, with the pool's gauges read now.
    pub fn render(&self) -> String {
        let status = self.pool.status();
        gauge!(DB_POOL_MAX).set(status.max_size as f64);
        gauge!(DB_POOL_SIZE).set(status.size as f64);
        gauge!(DB_POOL_IN_USE).set(status.in_use as f64);
        gauge!(DB_POOL_WAITING).set(status.waiting as f64);
        if let Some(cache) = &self.token_cache {
            use aegis_postgres::token_cache as tc;
            gauge!(tc::BYPASSED).set(if cache.is_bypassed() { 1.0 } else { 0.0 });
            gauge!(tc::ENTRIES).set(cache.len() as f64);
        }
        self.handle.run_upkeep();
        self.handle.render()
    }

    /// A one-thread HTTP server answering `GET /metrics` on `addr` (`host:port`), for the caller
    /// to run (it handles no signals: stop it with its handle).
    pub fn serve(&self, addr: &str) -> std::io::Result<actix_web::dev::Server> {
        let metrics = web::Data::new(self.clone());
        Ok(HttpServer::new(move || {
            App::new()
                .app_data(metrics.clone())
                .route("/metrics", web::get().to(scrape))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(addr)?
        .run())
    }
}

async fn scrape(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        ))
        .body(metrics.render())
}

/// One answered request.
pub fn record_request(route: Option<&str>, method: &Method, status: u16, seconds: f64) {
    let labels = [
        ("route", route.unwrap_or(UNMATCHED).to_owned().into()),
        ("method", method_label(method).into()),
        ("status", status_label(status)),
    ];
    counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_DURATION, &labels).record(seconds);
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        _ => "OTHER",
    }
}

fn status_label(status: u16) -> metrics::SharedString {
    let common = match status {
        200 => "200",
        201 => "201",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => return status.to_string().into(),
    };
    common.into()
}

/// A delivery worker's attempt.
pub fn record_attempt(kind: &'static str, attempt: Attempt) {
    let outcome = match attempt {
        Attempt::Delivered => "delivered",
        Attempt::Retrying => "retried",
        Attempt::Exhausted => "exhausted",
        Attempt::LeaseLost => return,
    };
    counter!(OUTBOX_DELIVERIES, "kind" => kind, "outcome" => outcome).increment(1);
}

/// The outboxes' backlogs as a refresh found them, at `now` (Unix seconds).
pub fn record_backlogs(backlogs: &aegis_postgres::backlog::Backlogs, now: i64) {
    for (kind, backlog) in [("email", backlogs.email), ("webhook", backlogs.webhooks)] {
        gauge!(OUTBOX_BACKLOG, "kind" => kind).set(backlog.waiting as f64);
        let age = backlog
            .oldest_created_at
            .map_or(0, |at| now.saturating_sub(at).max(0));
        gauge!(OUTBOX_OLDEST_AGE, "kind" => kind).set(age as f64);
    }
}

/// A request refused by a rate limit.
pub fn record_rejection(rule: Limited) {
    counter!(RATELIMIT_REJECTIONS, "rule" => rule.name()).increment(1);
}
