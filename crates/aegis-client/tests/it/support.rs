//! A real Aegis served over HTTP on a port of its own, on a fresh database.

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer};
use aegis_api_types::{CreateSiteRequest, RegisterRequest, SiteAdmin, VerifyEmailRequest};
use aegis_client::AegisClient;
use aegis_http::config::Settings;
use aegis_http::embed::Aegis;
use aegis_test_support::{TestDatabase, fresh_database};

pub const MASTER_KEY: &str = "client-test-master-key-0123456789abcdef";
pub const SECRET_KEY: &str = "client-test-secret-key-0123456789abcdef";
/// The API is mounted under this prefix, so every test also checks that the client keeps it.
pub const PREFIX: &str = "/auth";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct Server {
    pub db: TestDatabase,
    pub addr: SocketAddr,
    handle: ServerHandle,
    _aegis: Aegis,
}

impl Server {
    /// Aegis on a fresh database, served on 127.0.0.1 at a free port under [`PREFIX`].
    pub async fn start() -> Self {
        let db = fresh_database().await;
        let settings = Settings::from_vars([
            ("DATABASE_URL", db.url()),
            ("SECRET_KEY", SECRET_KEY),
            ("MASTER_API_KEY", MASTER_KEY),
            ("AEGIS_ENV", "development"),
            ("MAIL_TRANSPORT", "none"),
        ])
        .unwrap();
        let aegis = Aegis::start(&settings).await.unwrap();
        let state = aegis.state();
        let server = HttpServer::new(move || {
            App::new().service(aegis_http::app::scope(PREFIX, state.clone()))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            db,
            addr,
            handle,
            _aegis: aegis,
        }
    }

    /// The base URL of the API, prefix included.
    pub fn url(&self) -> String {
        format!("http://{}{PREFIX}", self.addr)
    }

    /// A client with the master key.
    pub fn operator(&self) -> AegisClient {
        AegisClient::new(self.url()).with_master_key(MASTER_KEY)
    }

    /// Stops serving; the port refuses connections afterwards.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    /// A new site, created with the master key.
    pub async fn site(&self, domain: &str) -> SiteAdmin {
        self.operator()
            .create_site(&CreateSiteRequest {
                name: "Example".into(),
                domain: domain.into(),
                frontend_url: "http://app.example.com".into(),
                verification_redirect_url: None,
                email_from: "noreply@example.com".into(),
                email_from_name: "Example Team".into(),
                allow_self_registration: None,
                webhook_url: None,
                mailgun_domain: None,
                mailgun_api_key: None,
            })
            .await
            .unwrap()
    }

    /// The token in the newest queued email of `kind` to `recipient`, opened with the sealing key.
    pub async fn emailed_token(&self, kind: &str, recipient: &str) -> String {
        aegis_test_support::sealed_email(self.db.url(), SECRET_KEY, kind, recipient)
            .await
            .token()
    }

    /// A tenant client for `site`.
    pub fn tenant(&self, site: &SiteAdmin) -> AegisClient {
        AegisClient::new(self.url())
            .with_tenant_key(site.tenant_api_key.clone().expect("a tenant key"))
    }

    /// Registers and verifies `email` on `site` through the API; returns the bearer token of a
    /// fresh login.
    pub async fn signed_in(&self, site: &SiteAdmin, email: &str) -> String {
        let tenant = self.tenant(site);
        let site_id = site.public.uuid;
        tenant
            .register(&RegisterRequest {
                site_id,
                email: email.into(),
                password: Some(PASSWORD.into()),
            })
            .await
            .unwrap();
        let token = self.emailed_token("verification", email).await;
        tenant
            .verify_email(&VerifyEmailRequest {
                site_id,
                token,
                password: None,
            })
            .await
            .unwrap();
        tenant
            .login(&aegis_api_types::LoginRequest {
                site_id,
                email: email.into(),
                password: PASSWORD.into(),
            })
            .await
            .unwrap()
            .auth_token
            .token
    }
}
