//! Several instances on one database: each queued email and webhook is delivered exactly once, rate
//! limits are counted together, and a revocation made through one instance is refused by the other
//! within a second, with both instances under load.
//!
//! The delivery test runs two real `aegis` processes, started together on a database nobody has
//! migrated, with their own background workers, against a fake Mailgun and a fake webhook receiver.
//! The receivers hold each request until more are in flight at once than one instance's delivery
//! tasks can send, so the test passes only when both instances deliver side by side.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use aegis_domain::webhook::signature;
use aegis_http::client_ip::ClientIpPolicy;
use aegis_http::workers::DELIVERY_TASKS;
use aegis_test_support::empty_database;
use diesel::QueryableByName;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::service::{STRONG_KEY, Service};
use crate::support::{TestApp, from_peer, tenant_request};

/// Waits, polling, until `done` holds; fails after `limit`.
async fn until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The outboxes: two processes, one database, every message exactly once.
// ---------------------------------------------------------------------------------------------

/// Lets requests through only once more of them are in flight at once than one instance's
/// [`DELIVERY_TASKS`] can send, which takes two instances delivering side by side; from then on,
/// at once. A request held `hold` without that is answered anyway (and the test then fails on
/// [`Gate::most`]).
struct Gate {
    hold: Duration,
    in_flight: AtomicUsize,
    most: AtomicUsize,
    open: watch::Sender<bool>,
}

impl Gate {
    fn new(hold: Duration) -> Self {
        Self {
            hold,
            in_flight: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            open: watch::channel(false).0,
        }
    }

    async fn pass(&self) {
        struct Leaving<'a>(&'a AtomicUsize);
        impl Drop for Leaving<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let _leaving = Leaving(&self.in_flight);
        self.most.fetch_max(now, Ordering::SeqCst);
        if now > DELIVERY_TASKS {
            self.open.send_replace(true);
        }
        let mut open = self.open.subscribe();
        let _ = tokio::time::timeout(self.hold, open.wait_for(|open| *open)).await;
    }

    /// The most requests that were in flight at once.
    fn most(&self) -> usize {
        AtomicUsize::load(&self.most, Ordering::SeqCst)
    }
}

/// An email as the fake Mailgun received it.
struct Mail {
    to: String,
    text: String,
}

/// A webhook as the fake receiver received it.
struct Hook {
    event: String,
    timestamp: String,
    signature: String,
    body: String,
}

/// What the fake Mailgun and the fake webhook receiver have received, in order of arrival.
struct Received {
    mail_gate: Gate,
    hook_gate: Gate,
    mail: Mutex<Vec<Mail>>,
    hooks: Mutex<Vec<Hook>>,
}

async fn mailgun(received: web::Data<Received>, body: web::Bytes) -> HttpResponse {
    let fields: BTreeMap<String, String> =
        url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    received.mail.lock().unwrap().push(Mail {
        to: field("to"),
        text: field("text"),
    });
    received.mail_gate.pass().await;
    HttpResponse::Ok().json(json!({"id": "<fake@mg.example.com>", "message": "Queued"}))
}

async fn hook(received: web::Data<Received>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    received.hooks.lock().unwrap().push(Hook {
        event: header("x-aegis-event"),
        timestamp: header("x-aegis-timestamp"),
        signature: header("x-aegis-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    received.hook_gate.pass().await;
    HttpResponse::NoContent().finish()
}

/// The fake Mailgun (`/v3/{domain}/messages`) and webhook receiver (`/hook`) on one port of
/// 127.0.0.1, stopped when dropped.
struct Receivers {
    received: Arc<Received>,
    base: String,
    handle: actix_web::dev::ServerHandle,
}

impl Receivers {
    fn start() -> Self {
        let received = Arc::new(Received {
            // Under the transports' timeouts: 10 s for Mailgun, 5 s for webhooks.
            mail_gate: Gate::new(Duration::from_secs(8)),
            hook_gate: Gate::new(Duration::from_secs(4)),
            mail: Mutex::new(Vec::new()),
            hooks: Mutex::new(Vec::new()),
        });
        let data = web::Data::from(received.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v3/{domain}/messages", web::post().to(mailgun))
                .route("/hook", web::post().to(hook))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let base = format!("http://127.0.0.1:{}", server.addrs()[0].port());
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            received,
            base,
            handle,
        }
    }
}

impl Drop for Receivers {
    fn drop(&mut self) {
        // The command is sent now; the returned future only waits for it.
        drop(self.handle.stop(false));
    }
}

/// The kind of an emailed link (`verify-email`, `reset-password`) and its token.
fn link(text: &str) -> (String, String) {
    let (before, after) = text
        .split_once("?token=")
        .unwrap_or_else(|| panic!("no link in {text:?}"));
    let kind = before.rsplit('/').next().unwrap().to_owned();
    let token = after
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (kind, token)
}

async fn count(url: &str, query: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    diesel::sql_query(query)
        .get_result::<N>(&mut conn)
        .await
        .unwrap()
        .n
}

/// Asserts `reply` has `status`; otherwise fails with the body and both instances' warnings.
#[track_caller]
fn expect(reply: &crate::service::Answer, status: u16, instances: [&Service; 2]) {
    if reply.status != status {
        let warnings: Vec<String> = instances
            .iter()
            .flat_map(|s| s.log())
            .filter(|l| matches!(crate::service::level(l), "WARN" | "ERROR"))
            .map(|l| l.to_string())
            .collect();
        panic!(
            "{} instead of {status}: {}\nwarnings:\n{}",
            reply.status,
            reply.body,
            warnings.join("\n")
        );
    }
}

/// Users registering (and verifying); the first [`RESETS`] then ask for a password reset, the rest
/// are deleted.
const USERS: usize = 48;
const RESETS: usize = 40;

#[actix_web::test]
async fn two_instances_under_load_deliver_every_email_and_webhook_exactly_once() {
    let db = empty_database().await;
    let url = db.url().to_owned();
    let receivers = Receivers::start();
    let received = receivers.received.clone();
    let env = [
        ("PASSWORD_HASH_MEMORY_KIB", "64"),
        ("PASSWORD_HASH_ITERATIONS", "1"),
        ("RATELIMIT_ENABLED", "false"),
        // A burst of two dozen requests per instance, in a debug build on a busy machine, waits
        // longer than the default 80 ms for a connection: what is tested here is delivery.
        ("DB_POOL_TIMEOUT_MS", "5000"),
        ("MAIL_TRANSPORT", "mailgun"),
        ("MAILGUN_API_BASE", receivers.base.as_str()),
        ("MAILGUN_API_KEY", "key-test"),
        ("MAILGUN_DOMAIN", "mg.example.com"),
    ];
    // Both start at once on a database nobody has migrated.
    let (mut a, mut b) = tokio::join!(Service::start(&url, &env), Service::start(&url, &env));
    let instances = [&a, &b];
    let master = [("X-API-Key", STRONG_KEY)];
    let site = a
        .call(
            "POST",
            "/api/sites",
            &master,
            Some(&json!({
                "name": "Busy", "domain": "busy.example.com",
                "frontend_url": "https://app.example.com",
                "email_from": "noreply@mg.example.com", "email_from_name": "Busy",
                "webhook_url": format!("{}/hook", receivers.base),
            })),
        )
        .await;
    assert_eq!(site.status, 201, "{}", site.body);
    let site = site.json();
    let site_id = site["uuid"].as_str().unwrap();
    let secret = site["webhook_secret"].as_str().unwrap();
    let tenant = [("X-Tenant-Api-Key", site["tenant_api_key"].as_str().unwrap())];
    let users: Vec<String> = (0..USERS)
        .map(|i| format!("user{i:02}@example.com"))
        .collect();

    // Everyone registers at once, alternately on A and B: a verification email each.
    let bodies: Vec<Value> = users
        .iter()
        .map(|email| json!({"site_id": site_id, "email": email, "password": "password-1"}))
        .collect();
    let replies =
        join_all(bodies.iter().enumerate().map(|(i, body)| {
            instances[i % 2].call("POST", "/api/auth/register", &tenant, Some(body))
        }))
        .await;
    for reply in &replies {
        expect(reply, 201, instances);
    }
    // Both instances' workers send: more messages in flight at once than one instance sends.
    until(
        "both instances sending email at once",
        Duration::from_secs(15),
        async || received.mail_gate.most() > DELIVERY_TASKS,
    )
    .await;
    until(
        "every verification email",
        Duration::from_secs(30),
        async || received.mail.lock().unwrap().len() >= USERS,
    )
    .await;

    // Each follows the emailed link on the other instance: a `user.verified` webhook each.
    let links: BTreeMap<String, String> = received
        .mail
        .lock()
        .unwrap()
        .iter()
        .map(|m| (m.to.clone(), link(&m.text).1))
        .collect();
    let bodies: Vec<Value> = users
        .iter()
        .map(|email| json!({"site_id": site_id, "token": links[email]}))
        .collect();
    let replies = join_all(bodies.iter().enumerate().map(|(i, body)| {
        instances[(i + 1) % 2].call("POST", "/api/auth/verify-email", &tenant, Some(body))
    }))
    .await;
    let mut ids = Vec::new();
    for reply in &replies {
        expect(reply, 200, instances);
        ids.push(reply.json()["user"]["uuid"].as_str().unwrap().to_owned());
    }
    until(
        "both instances sending webhooks at once",
        Duration::from_secs(15),
        async || received.hook_gate.most() > DELIVERY_TASKS,
    )
    .await;

    // At once: the first RESETS ask for a password reset (an email each, queued by whichever
    // instance's reset task claims the request), the others are deleted (a `user.deleted` each).
    let bodies: Vec<Value> = users[..RESETS]
        .iter()
        .map(|email| json!({"site_id": site_id, "email": email}))
        .collect();
    let resets = join_all(bodies.iter().enumerate().map(|(i, body)| {
        instances[i % 2].call(
            "POST",
            "/api/auth/request-password-reset",
            &tenant,
            Some(body),
        )
    }));
    let paths: Vec<String> = ids[RESETS..]
        .iter()
        .map(|id| format!("/api/admin/users/{id}"))
        .collect();
    let deletions = join_all(
        paths
            .iter()
            .enumerate()
            .map(|(i, path)| instances[i % 2].call("DELETE", path, &master, None)),
    );
    let (resets, deletions) = tokio::join!(resets, deletions);
    for reply in resets.iter().chain(&deletions) {
        expect(reply, 200, instances);
    }

    let (emails, hooks) = (USERS + RESETS, USERS + (USERS - RESETS));
    until(
        "every message delivered",
        Duration::from_secs(30),
        async || {
            let mail = received.mail.lock().unwrap().len();
            let hooked = received.hooks.lock().unwrap().len();
            mail >= emails
                && hooked >= hooks
                && count(
                    &url,
                    "SELECT (SELECT count(*) FROM email_outbox WHERE status <> 'delivered') \
                      + (SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered') \
                      + (SELECT count(*) FROM password_reset_requests) AS n",
                )
                .await
                    == 0
        },
    )
    .await;
    // Stopped, neither can send anything more.
    a.signal("TERM");
    b.signal("TERM");
    a.wait(Duration::from_secs(30));
    b.wait(Duration::from_secs(30));

    // Every email arrived exactly once: one verification link per user, one reset link per user
    // who asked, each link distinct.
    let mail = std::mem::take(&mut *received.mail.lock().unwrap());
    let mut per_recipient: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut tokens = BTreeSet::new();
    for m in mail.iter() {
        let (kind, token) = link(&m.text);
        assert!(tokens.insert(token), "a link arrived twice");
        per_recipient.entry(&m.to).or_default().push(kind);
    }
    assert_eq!(mail.len(), emails);
    for (i, email) in users.iter().enumerate() {
        let mut kinds = per_recipient[email.as_str()].clone();
        kinds.sort();
        let expected: &[&str] = if i < RESETS {
            &["reset-password", "verify-email"]
        } else {
            &["verify-email"]
        };
        assert_eq!(kinds, expected, "{email}");
    }
    assert_eq!(
        count(
            &url,
            "SELECT count(*) AS n FROM email_outbox WHERE status = 'delivered' AND attempts = 1"
        )
        .await,
        emails as i64,
        "every row delivered at the first attempt"
    );
    assert_eq!(
        count(&url, "SELECT count(*) AS n FROM email_outbox").await,
        emails as i64
    );

    // Every webhook arrived exactly once, signed: one `user.verified` per user, one `user.deleted`
    // per deleted user, and each event id once.
    let hooks_received = std::mem::take(&mut *received.hooks.lock().unwrap());
    assert_eq!(hooks_received.len(), hooks);
    let mut events = BTreeSet::new();
    let mut per_user: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for h in hooks_received.iter() {
        let timestamp: i64 = h.timestamp.parse().unwrap();
        assert_eq!(h.signature, signature(secret, timestamp, &h.body));
        let payload: Value = serde_json::from_str(&h.body).unwrap();
        assert_eq!(payload["event_type"], h.event.as_str());
        assert!(
            events.insert(payload["event_id"].as_str().unwrap().to_owned()),
            "event {} arrived twice",
            payload["event_id"]
        );
        per_user
            .entry(payload["user_uuid"].as_str().unwrap().to_owned())
            .or_default()
            .push(h.event.clone());
    }
    for (i, id) in ids.iter().enumerate() {
        let mut events = per_user[id].clone();
        events.sort();
        let expected: &[&str] = if i < RESETS {
            &["user.verified"]
        } else {
            &["user.deleted", "user.verified"]
        };
        assert_eq!(events, expected, "{}", users[i]);
    }
    assert_eq!(
        count(
            &url,
            "SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'delivered' \
             AND attempts = 1 AND last_status = 204"
        )
        .await,
        hooks as i64
    );
    assert_eq!(
        count(
            &url,
            "SELECT count(*) AS n FROM webhook_events WHERE success"
        )
        .await,
        hooks as i64,
        "one attempt logged per event"
    );
    println!(
        "two instances: {emails} emails and {hooks} webhooks, each delivered once; at most {} \
         emails and {} webhooks in flight at once",
        received.mail_gate.most(),
        received.hook_gate.most()
    );
}

// ---------------------------------------------------------------------------------------------
// Rate limits: one count for every instance.
// ---------------------------------------------------------------------------------------------

fn login(site: &Value, email: &str, password: &str) -> TestRequest {
    tenant_request(
        site,
        "/api/auth/login",
        json!({"site_id": site["uuid"], "email": email, "password": password}),
    )
}

/// (status, `X-RateLimit-Remaining`) of each of 14 failed logins for one account, sent in turn
/// to each of `apps`.
async fn failed_logins(apps: &[&TestApp], site: &Value) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for i in 0..14 {
        let reply = apps[i % apps.len()]
            .send(login(site, "ada@example.com", "wrong"))
            .await;
        out.push((reply.status.as_u16(), reply.header("x-ratelimit-remaining")));
    }
    out
}

#[actix_web::test]
async fn requests_alternating_between_instances_meet_the_limit_of_one_instance() {
    let a = TestApp::with_limits(ClientIpPolicy::default()).await;
    let b = a.sibling().await;
    let site = a.create_site("pair.example.com").await;
    a.verified_user(&site, "ada@example.com", "password-1")
        .await;
    let lone = TestApp::with_limits(ClientIpPolicy::default()).await;
    let lone_site = lone.create_site("lone.example.com").await;
    lone.verified_user(&lone_site, "ada@example.com", "password-1")
        .await;

    let alternating = failed_logins(&[&a, &b], &site).await;
    assert_eq!(alternating, failed_logins(&[&lone], &lone_site).await);
    let expected: Vec<(u16, String)> = (0..14)
        .map(|i| match i {
            0..10 => (401, (9 - i).to_string()),
            _ => (429, "0".to_owned()),
        })
        .collect();
    assert_eq!(alternating, expected);

    // Refused by one, refused by the other, even with the right password.
    for app in [&a, &b] {
        let reply = app
            .send(login(&site, "ada@example.com", "password-1"))
            .await;
        reply.assert_error(429, "Too many requests: 10 per 1 minute");
        assert_eq!(reply.header("retry-after"), "60");
    }
    // The window ends for both.
    a.clock.advance(60);
    for app in [&b, &a] {
        let reply = app
            .send(login(&site, "ada@example.com", "password-1"))
            .await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    }
}

#[actix_web::test]
async fn a_burst_split_across_instances_is_counted_exactly() {
    let a = TestApp::with_limits(ClientIpPolicy::default()).await;
    let b = a.sibling().await;
    let site = a.create_site("burst.example.com").await;
    a.verified_user(&site, "ada@example.com", "password-1")
        .await;

    // 24 failed logins for one account at once, half on each: the per-account limit (10 a
    // minute) lets exactly 10 through, and each count is handed out once.
    let replies = join_all((0..24).map(|i| {
        [&a, &b][i % 2].send(from_peer(
            "198.51.100.1",
            login(&site, "ada@example.com", "wrong"),
        ))
    }))
    .await;
    let mut remaining: Vec<u32> = replies
        .iter()
        .filter(|r| r.status.as_u16() == 401)
        .map(|r| r.header("x-ratelimit-remaining").parse().unwrap())
        .collect();
    remaining.sort_unstable();
    assert_eq!(remaining, (0..10).collect::<Vec<u32>>());
    assert_eq!(
        replies.iter().filter(|r| r.status.as_u16() == 429).count(),
        14
    );

    // 24 registrations of different addresses from one client network at once, half on each:
    // the per-network limit (20 an hour) lets exactly 20 through.
    let replies = join_all((0..24).map(|i| {
        [&a, &b][i % 2].send(from_peer(
            "203.0.113.7",
            tenant_request(
                &site,
                "/api/auth/register",
                json!({"site_id": site["uuid"], "email": format!("new{i}@example.com"),
                       "password": "password-1"}),
            ),
        ))
    }))
    .await;
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [[201; 20].as_slice(), &[429; 4]].concat());
    assert_eq!(
        a.count("SELECT count(*) AS n FROM users WHERE email LIKE 'new%'")
            .await,
        20
    );
}

// ---------------------------------------------------------------------------------------------
// Revocation: refused everywhere within a second, under load.
// ---------------------------------------------------------------------------------------------

/// One `GET /api/auth/me`: which token, on which instance (0 = A, 1 = B), when it was sent and
/// answered, and the status.
struct Check {
    token: usize,
    instance: usize,
    sent: Instant,
    answered: Instant,
    status: u16,
}

/// Asks `app` about every token in turn until `stop`, logging each answer.
async fn keep_checking(
    app: &TestApp,
    instance: usize,
    tokens: &[String],
    stop: &Cell<bool>,
    log: &RefCell<Vec<Check>>,
) {
    while !stop.get() {
        for (token, bearer) in tokens.iter().enumerate() {
            let sent = Instant::now();
            let status = app
                .bearer("GET", "/api/auth/me", bearer, None)
                .await
                .status
                .as_u16();
            log.borrow_mut().push(Check {
                token,
                instance,
                sent,
                answered: Instant::now(),
                status,
            });
            // An answer from the cache is ready at once: give the other clients their turn.
            tokio::task::yield_now().await;
        }
    }
}

/// How long a revocation made through one instance may take to be refused by the other.
const WITHIN: Duration = Duration::from_secs(1);

#[actix_web::test]
async fn a_revocation_on_one_instance_is_refused_by_the_other_within_a_second_under_load() {
    let a = TestApp::new().await;
    let b = a.sibling().await;
    a.token_cache_listening().await;
    b.token_cache_listening().await;
    let site = a.create_site("revoke.example.com").await;
    // One session per user: 0 logs out on A, 1 changes their password on A, 2 is deleted on A,
    // 3 logs out on B; 4 and 5 are left alone.
    let mut users = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..6 {
        let email = format!("load{i}@example.com");
        users.push(a.verified_user(&site, &email, "password-1").await);
        let session = a.login(&site, &email, "password-1").await;
        tokens.push(session["auth_token"]["token"].as_str().unwrap().to_owned());
    }
    let apps = [&a, &b];
    let stop = Cell::new(false);
    let log = RefCell::new(Vec::new());
    // Two clients per instance, each going through every token.
    let load = join_all((0..4).map(|i| keep_checking(apps[i % 2], i % 2, &tokens, &stop, &log)));

    let revoke = async {
        // Both instances have answered for every token, and B answers from its cache.
        until(
            "every token checked on both",
            Duration::from_secs(5),
            async || {
                let log = log.borrow();
                (0..tokens.len()).all(|t| {
                    (0..2).all(|i| {
                        log.iter()
                            .any(|c| c.token == t && c.instance == i && c.status == 200)
                    })
                })
            },
        )
        .await;
        assert!(!b.state.token_cache.as_ref().unwrap().is_empty());

        let mut revoked: Vec<(usize, usize, Instant)> = Vec::new();
        let reply = a
            .bearer("POST", "/api/auth/logout", &tokens[0], Some(json!({})))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        revoked.push((0, 0, Instant::now()));
        let reply = a
            .bearer(
                "POST",
                "/api/auth/change-password",
                &tokens[1],
                Some(json!({"old_password": "password-1", "new_password": "password-2"})),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        revoked.push((1, 0, Instant::now()));
        let path = format!("/api/admin/users/{}", users[2]["uuid"].as_str().unwrap());
        let reply = a.master("DELETE", &path, None).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        revoked.push((2, 0, Instant::now()));
        let reply = b
            .bearer("POST", "/api/auth/logout", &tokens[3], Some(json!({})))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        revoked.push((3, 1, Instant::now()));

        // Bounded: every revoked token refused on both instances, then a few more rounds of
        // checks to show none comes back.
        until(
            "every revocation refused everywhere",
            Duration::from_secs(3),
            async || {
                let log = log.borrow();
                revoked.iter().all(|(t, _, at)| {
                    (0..2).all(|i| {
                        log.iter().any(|c| {
                            c.token == *t && c.instance == i && c.sent >= *at && c.status == 401
                        })
                    })
                })
            },
        )
        .await;
        let seen = log.borrow().len();
        until("more checks", Duration::from_secs(5), async || {
            log.borrow().len() >= seen + 10 * tokens.len()
        })
        .await;
        stop.set(true);
        revoked
    };
    let (_, revoked) = tokio::join!(load, revoke);

    let log = log.into_inner();
    for c in &log {
        assert!(c.status == 200 || c.status == 401, "status {}", c.status);
    }
    let mut slowest = Duration::ZERO;
    for (token, by, at) in &revoked {
        for instance in 0..2 {
            let checks: Vec<&Check> = log
                .iter()
                .filter(|c| c.token == *token && c.instance == instance)
                .collect();
            let first_refusal = checks
                .iter()
                .filter(|c| c.sent >= *at && c.status == 401)
                .map(|c| c.sent)
                .min()
                .unwrap();
            // Once refused, never accepted again.
            let refused_by = checks
                .iter()
                .filter(|c| c.status == 401)
                .map(|c| c.answered)
                .min()
                .unwrap();
            assert!(
                checks
                    .iter()
                    .all(|c| c.status == 401 || c.sent < refused_by),
                "token {token} accepted again on instance {instance} after a refusal"
            );
            if instance == *by {
                // The revoking instance refuses from its next request on.
                assert!(
                    checks.iter().all(|c| c.sent < *at || c.status == 401),
                    "token {token} accepted by the instance that revoked it"
                );
            } else {
                let delay = first_refusal - *at;
                slowest = slowest.max(delay);
                assert!(
                    checks
                        .iter()
                        .all(|c| c.sent < *at + WITHIN || c.status == 401),
                    "token {token} still accepted on the other instance {WITHIN:?} after"
                );
                assert!(
                    delay <= WITHIN,
                    "token {token}: refused on the other instance after {delay:?}"
                );
            }
        }
    }
    // The sessions left alone were accepted throughout, by both.
    for c in log.iter().filter(|c| c.token >= 4) {
        assert_eq!(c.status, 200, "untouched token {} refused", c.token);
    }
    println!(
        "{} checks; a revocation reached the other instance within {slowest:?}",
        log.len()
    );
}
