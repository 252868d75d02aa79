//! The state handlers, extractors and middleware share, and the wiring that builds it: adapters
//! into services. It depends on the middleware's own types, never the other way round.

use std::sync::Arc;

use aegis_domain::password::{Argon2Settings, PasswordAlgorithms, PasswordHasher};
use aegis_domain::repo::AccountRepository;
use aegis_domain::service::accounts::{AccountService, AccountSettings};
use aegis_domain::webhook_delivery::{WebhookDelivery, WebhookSender};
use aegis_domain::{Clock, RandomSecretGenerator, SecretGenerator, SiteService, SystemClock};
use aegis_postgres::{
    CachedAccountRepository, PgAccountRepository, PgPool, PgSiteRepository, PgUnitOfWork,
    PgWebhookOutbox, SealingKeys, TokenCache, TokenCacheSettings, TokenListener,
};
use secrecy::SecretString;

/// What handlers and extractors share.
pub struct AppState {
    /// Site (tenant) use cases.
    pub sites: SiteService,
    /// Account and session use cases.
    pub accounts: AccountService,
    /// Webhook delivery, for the on-demand sweep route.
    pub webhooks: WebhookDelivery,
    /// Which browser origins may call.
    pub cors: Arc<crate::cors::CorsPolicy>,
    /// `None` when `RATELIMIT_ENABLED=false`.
    pub limiter: Option<Arc<crate::ratelimit::Limiter>>,
    /// How requests are attributed to clients and accounts.
    pub clients: Arc<crate::client_ip::Clients>,
    /// Holds answers back precisely.
    pub pacer: crate::pacing::Pacer,
    /// How long registrations take, by outcome and whether a password came with them.
    pub registrations:
        aegis_domain::timing::RecentTimes<(aegis_domain::service::accounts::Registration, bool)>,
    /// `MASTER_API_KEY`; `None` makes the operator routes answer 500, as the original does.
    pub master_api_key: Option<SecretString>,
    /// `MAX_CONTENT_LENGTH`: the largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The health endpoint's `version`.
    pub version: String,
    /// `OPENAPI_ENABLED`: serve the OpenAPI document and the Swagger UI.
    pub openapi_enabled: bool,
    /// The connection pool, for the readiness check.
    pub pool: PgPool,
    /// The hosted pages' settings (decision 80).
    pub pages: crate::pages::Pages,
    /// The cache of bearer checks (decision 88); `None` when `TOKEN_CACHE_ENABLED=false`.
    pub token_cache: Option<Arc<TokenCache>>,
}

/// The ports an [`AppState`] is built from, so tests can pin the clock and the generator and count
/// password work.
pub struct Ports {
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Ids, tokens and secrets.
    pub generator: Arc<dyn SecretGenerator>,
    /// Password hashing and verification.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Sends signed webhooks.
    pub webhook_sender: Arc<dyn WebhookSender>,
}

impl Ports {
    /// The real clock and generator, and Argon2id with `argon2` costs on a pool of `hash_pool`
    /// threads.
    pub fn system(
        argon2: Argon2Settings,
        hash_pool: crate::passwords::HashPoolSize,
        block_private_webhooks: bool,
    ) -> Result<Self, String> {
        let algorithms = PasswordAlgorithms::new(argon2).map_err(|e| e.to_string())?;
        Ok(Self {
            clock: Arc::new(SystemClock),
            generator: Arc::new(RandomSecretGenerator),
            hasher: Arc::new(
                crate::passwords::PooledHasher::new(algorithms, hash_pool)
                    .map_err(|e| format!("cannot start the hashing threads: {e}"))?,
            ),
            webhook_sender: Arc::new(aegis_mailgun::HttpWebhookSender::new(
                block_private_webhooks,
            )?),
        })
    }
}

/// Settings the application reads at run time.
#[derive(Clone)]
pub struct AppConfig {
    /// `None` when `MASTER_API_KEY` is unset: master routes then answer 500 as the reference does.
    pub master_api_key: Option<SecretString>,
    /// `MAX_CONTENT_LENGTH`: the largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The health endpoint's `version`.
    pub version: String,
    /// Token lifetimes and refresh behaviour.
    pub accounts: AccountSettings,
    /// `RATELIMIT_ENABLED`.
    pub ratelimit_enabled: bool,
    /// `OPENAPI_ENABLED`.
    pub openapi_enabled: bool,
    /// `TRUSTED_CLIENT_IP_HEADER` and `TRUSTED_PROXIES`: how the client address is found.
    pub client_ip: crate::client_ip::ClientIpPolicy,
    /// How client addresses are grouped into networks for the limits.
    pub networks: aegis_domain::ratelimit::NetworkPrefixes,
    /// Names accounts in limit buckets and the security log (from `SECRET_KEY`).
    pub account_keyring: aegis_domain::ratelimit::AccountKeyring,
    /// `CORS_ORIGINS` (override) and `CORS_EXTRA_ORIGINS`.
    pub cors_origins: Option<String>,
    /// `CORS_EXTRA_ORIGINS`: origins allowed besides the sites' own.
    pub cors_extra_origins: Vec<String>,
    /// Seal the bodies of queued email (from `SECRET_KEY`).
    pub outbox_keys: SealingKeys,
    /// The hosted pages: `HOSTED_PAGES_URL` and their form-token key (from `SECRET_KEY`).
    pub pages: crate::pages::PagesConfig,
    /// The cache of bearer checks (decision 88).
    pub token_cache: TokenCacheSettings,
}

impl AppState {
    /// Wires the PostgreSQL adapters into the services. With the token cache on, starts its
    /// listener (call inside a Tokio runtime); it stops when the state is dropped.
    pub fn new(pool: PgPool, ports: Ports, config: AppConfig) -> Self {
        let site_repo = Arc::new(PgSiteRepository::new(pool.clone()));
        let token_cache = config.token_cache.enabled.then(|| {
            Arc::new(TokenCache::new(
                config.token_cache.capacity,
                config.token_cache.ttl,
            ))
        });
        let mut uow = PgUnitOfWork::new(pool.clone(), config.outbox_keys.clone());
        let account_repo: Arc<dyn AccountRepository> = match &token_cache {
            Some(cache) => {
                uow = uow.with_token_cache(cache.clone());
                let listener = TokenListener::spawn(pool.connect_target().clone(), cache);
                Arc::new(CachedAccountRepository::new(
                    PgAccountRepository::new(pool.clone()),
                    cache.clone(),
                    Some(listener),
                ))
            }
            None => Arc::new(PgAccountRepository::new(pool.clone())),
        };
        let uow = Arc::new(uow);
        let sites = SiteService::new(
            site_repo.clone(),
            uow.clone(),
            ports.clock.clone(),
            ports.generator.clone(),
        );
        let cors = Arc::new(crate::cors::CorsPolicy::new(
            config.cors_origins.as_deref(),
            &config.cors_extra_origins,
            sites.clone(),
        ));
        let clients = Arc::new(crate::client_ip::Clients {
            policy: config.client_ip,
            networks: config.networks,
            keyring: config.account_keyring,
        });
        let limiter = config.ratelimit_enabled.then(|| {
            Arc::new(crate::ratelimit::Limiter {
                counters: Arc::new(aegis_postgres::PgRateCounters::new(pool.clone())),
                clock: ports.clock.clone(),
                clients: clients.clone(),
                max_body_bytes: config.max_body_bytes,
            })
        });
        let webhooks = WebhookDelivery::new(
            Arc::new(PgWebhookOutbox::new(pool.clone())),
            ports.webhook_sender,
            ports.clock.clone(),
            ports.generator.clone(),
        );
        let pages = crate::pages::Pages::new(config.pages, ports.generator.clone());
        let accounts = AccountService::new(
            account_repo,
            site_repo,
            uow,
            ports.hasher,
            ports.clock,
            ports.generator,
            config.accounts,
        );
        Self {
            sites,
            accounts,
            webhooks,
            cors,
            limiter,
            clients,
            registrations: aegis_domain::timing::RecentTimes::default(),
            pacer: crate::pacing::Pacer::default(),
            master_api_key: config.master_api_key,
            max_body_bytes: config.max_body_bytes,
            version: config.version,
            openapi_enabled: config.openapi_enabled,
            pool,
            pages,
            token_cache,
        }
    }
}

/// Reads the health `version`: the trimmed `VERSION` file, or `unknown` when missing or empty.
pub fn read_version(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
