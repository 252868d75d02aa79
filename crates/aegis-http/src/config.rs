//! Configuration: the reference's environment variables with their names, meanings and defaults
//! plus Aegis's own. Layered as defaults < optional TOML file (`AEGIS_CONFIG`) <
//! environment, and validated once at startup with errors that name the variable.

use std::collections::HashMap;
use std::path::PathBuf;

use aegis_domain::password::Argon2Settings;
use aegis_domain::service::accounts::AccountSettings;
use secrecy::{ExposeSecret as _, SecretString};

/// Development runs anywhere; production refuses unsafe settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Secrets and costs may be anything; meant for one's own machine.
    Development,
    /// The default whenever a database is configured: weak secrets and unsafe settings are refused.
    Production,
}

/// Where the database comes from.
#[derive(Debug, Clone)]
pub enum DatabaseSource {
    /// `DATABASE_URL`, or a URL built from the `DB_*` variables.
    Url(SecretString),
    /// Neither was set: a PostgreSQL server managed by Aegis in the data directory (development).
    Managed,
}

/// Where queued email goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTransport {
    /// The Mailgun HTTP API at this base URL (global domain and key in [`Settings`]).
    Mailgun {
        /// `MAILGUN_API_BASE`.
        api_base: String,
    },
    /// An SMTP server.
    Smtp(SmtpConfig),
    /// Development: each message becomes an `.eml` file in this folder.
    Outbox(PathBuf),
    /// No transport: messages wait in the outbox table.
    None,
}

/// SMTP settings (`SMTP_*`).
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    /// `SMTP_HOST`.
    pub host: String,
    /// `SMTP_PORT`.
    pub port: u16,
    /// `starttls` (default), `tls` or `none`.
    pub tls: String,
    /// `SMTP_USERNAME`, when the server wants a login.
    pub username: Option<String>,
    /// `SMTP_PASSWORD`.
    pub password: Option<String>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Token lifetimes and refresh behaviour, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSettings {
    /// `AUTH_TOKEN_EXPIRATION`, seconds.
    pub auth_token_expiration: i64,
    /// `EMAIL_VERIFICATION_EXPIRATION`, seconds.
    pub email_verification_expiration: i64,
    /// `PASSWORD_RESET_EXPIRATION`, seconds.
    pub password_reset_expiration: i64,
    /// `EMAIL_CHANGE_EXPIRATION`, seconds.
    pub email_change_expiration: i64,
    /// `REFRESH_TOKEN_EXPIRATION`, seconds.
    pub refresh_token_expiration: i64,
    /// `REFRESH_TOKEN_ROTATION`: a refresh hands out a new refresh token.
    pub refresh_token_rotation: bool,
    /// `REFRESH_TOKEN_GRACE_PERIOD`, seconds a used refresh token still works.
    pub refresh_token_grace_period: i64,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Production or development, and hence which checks apply.
    pub mode: Mode,
    /// Why [`Settings::mode`] is what it is, for the startup log.
    pub mode_reason: String,
    /// `MASTER_API_KEY`.
    pub master_api_key: Option<SecretString>,
    /// `SECRET_KEY`: seals outbox bodies (decision 33). In development, when unset, a key is
    /// generated into the data directory.
    pub secret_key: Option<SecretString>,
    /// `SECRET_KEY_PREVIOUS`: still opens what the previous key sealed, during a rotation.
    pub secret_key_previous: Option<SecretString>,
    /// Where the database is: a URL, or the managed local server.
    pub database: DatabaseSource,
    /// `DB_POOL_SIZE`: connections per instance.
    pub db_pool_size: usize,
    /// `DB_POOL_TIMEOUT_MS`: how long a request waits for a pooled connection before its 503.
    pub db_pool_timeout: std::time::Duration,
    /// `APP_HOST` when set; see [`Settings::bind_host`].
    pub host: Option<String>,
    /// `APP_PORT`.
    pub port: u16,
    /// `MAX_CONTENT_LENGTH`, bytes.
    pub max_content_length: usize,
    /// `AEGIS_DATA_DIR`: local mode's PostgreSQL, keys and outbox.
    pub data_dir: PathBuf,
    /// `AEGIS_VERSION_FILE`: what `/api/health` reports as the version.
    pub version_file: PathBuf,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `LOG_LEVEL`.
    pub log_level: String,
    /// Token lifetimes and refresh behaviour.
    pub tokens: TokenSettings,
    /// Argon2id costs for new password hashes (decision 19).
    pub argon2: Argon2Settings,
    /// `PASSWORD_HASH_CONCURRENCY` hashing threads and `PASSWORD_HASH_QUEUE` waiting jobs.
    pub password_hash_pool: crate::passwords::HashPoolSize,
    /// `MAILGUN_API_KEY`, the global one (sites may have their own).
    pub mailgun_api_key: Option<SecretString>,
    /// `MAILGUN_DOMAIN`, the global one.
    pub mailgun_domain: Option<String>,
    /// Where queued email goes.
    pub mail_transport: MailTransport,
    /// Refuse webhook deliveries to loopback, private, link-local and metadata addresses.
    pub webhook_block_private_networks: bool,
    /// `RATELIMIT_ENABLED`.
    pub ratelimit_enabled: bool,
    /// `OPENAPI_ENABLED`: serve `/api/openapi.json` and the Swagger UI at `/api/docs`.
    pub openapi_enabled: bool,
    /// `TOKEN_CACHE_ENABLED`, `TOKEN_CACHE_CAPACITY`, `TOKEN_CACHE_TTL_SECONDS` (decision 88).
    pub token_cache: aegis_postgres::TokenCacheSettings,
    /// `TRUSTED_CLIENT_IP_HEADER` and `TRUSTED_PROXIES` (decisions 22 and 29).
    pub client_ip: crate::client_ip::ClientIpPolicy,
    /// `RATELIMIT_IPV4_PREFIX` and `RATELIMIT_IPV6_PREFIX`: how client addresses are grouped.
    pub client_networks: aegis_domain::ratelimit::NetworkPrefixes,
    /// `CORS_ORIGINS`: replaces the derived set of allowed origins (`*` for any).
    pub cors_origins: Option<String>,
    /// `CORS_EXTRA_ORIGINS`: origins allowed besides the sites' own.
    pub cors_extra_origins: Vec<String>,
    /// `VERIFICATION_LINK_BASE`: the centralised verification page, when set.
    pub verification_link_base: Option<String>,
    /// `HOSTED_PAGES_URL`: Aegis's public base URL; when set, every emailed link goes to the
    /// hosted pages served under it (decision 80). No trailing slash.
    pub hosted_pages_url: Option<String>,
    /// Accepted for compatibility; Aegis does not ship logs to Loki itself.
    pub loki_endpoint: Option<String>,
    /// `METRICS_ADDR`: where `GET /metrics` is served (`host:port`); `None`, no metrics listener.
    pub metrics_addr: Option<String>,
}

/// A configuration problem, naming the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// `HOSTED_PAGES_URL`: an absolute `http` or `https` URL with no query or fragment, kept without
/// its trailing slash (links are built as `{base}/verify-email?…`).
fn hosted_pages_url(value: &str) -> Result<String, ConfigError> {
    let trimmed = value.trim().trim_end_matches('/');
    let ok = url::Url::parse(trimmed).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host().is_some()
            && u.query().is_none()
            && u.fragment().is_none()
            && u.username().is_empty()
    });
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(ConfigError(format!(
            "HOSTED_PAGES_URL must be an http or https URL without a query, such as \
             https://auth.example.com, got {value:?}"
        )))
    }
}

/// Variables read (lowercased, as the `config` crate stores them).
const KEYS: &[&str] = &[
    "aegis_env",
    "flask_env",
    "master_api_key",
    "secret_key",
    "secret_key_previous",
    "database_url",
    "db_host",
    "db_port",
    "db_name",
    "db_user",
    "db_password",
    "db_pool_size",
    "db_pool_timeout_ms",
    "db_sslmode",
    "db_sslrootcert",
    "app_host",
    "app_port",
    "max_content_length",
    "aegis_data_dir",
    "aegis_version_file",
    "log_format",
    "log_level",
    "auth_token_expiration",
    "email_verification_expiration",
    "password_reset_expiration",
    "email_change_expiration",
    "refresh_token_expiration",
    "refresh_token_rotation",
    "refresh_token_grace_period",
    "password_hash_memory_kib",
    "password_hash_iterations",
    "password_hash_parallelism",
    "password_hash_concurrency",
    "password_hash_queue",
    "mailgun_api_key",
    "mailgun_domain",
    "mail_transport",
    "aegis_outbox_dir",
    "mailgun_api_base",
    "smtp_host",
    "smtp_port",
    "smtp_tls",
    "smtp_username",
    "smtp_password",
    "webhook_block_private_networks",
    "ratelimit_enabled",
    "openapi_enabled",
    "token_cache_enabled",
    "token_cache_capacity",
    "token_cache_ttl_seconds",
    "trusted_client_ip_header",
    "trusted_proxies",
    "ratelimit_ipv4_prefix",
    "ratelimit_ipv6_prefix",
    "redis_url",
    "cors_origins",
    "cors_extra_origins",
    "verification_link_base",
    "hosted_pages_url",
    "aegis_frontend_url",
    "email_from",
    "email_from_name",
    "debug_local",
    "loki_endpoint",
    "metrics_addr",
];

/// Values that mark a master key as a placeholder rather than a secret.
const PLACEHOLDER_MARKERS: &[&str] = &[
    "change",
    "your",
    "example",
    "placeholder",
    "secret",
    "master",
    "dev-",
    "test",
    "default",
];

/// The shortest master key production accepts.
pub const MIN_PRODUCTION_KEY_LEN: usize = 32;

struct Raw(HashMap<String, String>);

impl Raw {
    /// A set, non-blank value.
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(
        &self,
        key: &str,
        default: T,
        what: &str,
    ) -> Result<T, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                ConfigError(format!("{} must be {what}, got {v:?}", key.to_uppercase()))
            }),
        }
    }

    fn seconds(&self, key: &str, default: i64) -> Result<i64, ConfigError> {
        let v: i64 = self.parse(key, default, "a whole number of seconds")?;
        if v <= 0 {
            return Err(ConfigError(format!(
                "{} must be positive",
                key.to_uppercase()
            )));
        }
        Ok(v)
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(v) => Err(ConfigError(format!(
                "{} must be true or false, got {v:?}",
                key.to_uppercase()
            ))),
        }
    }
}

impl Settings {
    /// Reads the process environment (and the TOML file named by `AEGIS_CONFIG`, if any).
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Ok(path) = std::env::var("AEGIS_CONFIG") {
            builder = builder.add_source(config::File::with_name(&path).required(true));
        }
        let config = builder
            .add_source(config::Environment::default())
            .build()
            .map_err(|e| ConfigError(e.to_string()))?;
        let mut map = HashMap::new();
        for key in KEYS {
            if let Ok(v) = config.get_string(key) {
                map.insert((*key).to_owned(), v);
            }
        }
        Self::from_map(map)
    }

    /// Settings from variables set in code, validated as from the environment:
    /// `Settings::from_vars([("DATABASE_URL", url), ("SECRET_KEY", secret)])`.
    pub fn from_vars<K: AsRef<str>, V: AsRef<str>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        Self::from_map(
            vars.into_iter()
                .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
                .collect(),
        )
    }

    /// Builds settings from variable → value (names in any case), as from the environment.
    pub fn from_map(map: HashMap<String, String>) -> Result<Self, ConfigError> {
        let raw = Raw(map
            .into_iter()
            .map(|(k, v)| (k.to_lowercase(), v))
            .collect());

        let database = if let Some(url) = raw.get("database_url") {
            DatabaseSource::Url(SecretString::from(url.to_owned()))
        } else if ["db_host", "db_port", "db_name", "db_user", "db_password"]
            .iter()
            .any(|k| raw.get(k).is_some())
        {
            let port: u16 = raw.parse("db_port", 5432, "a port number")?;
            let mut url = format!(
                "postgres://{}:{}@{}:{port}/{}",
                encode(raw.get("db_user").unwrap_or("aegis_admin")),
                encode(raw.get("db_password").unwrap_or("aegis_admin")),
                raw.get("db_host").unwrap_or("localhost"),
                encode(raw.get("db_name").unwrap_or("aegis")),
            );
            let tls: Vec<String> = [("db_sslmode", "sslmode"), ("db_sslrootcert", "sslrootcert")]
                .iter()
                .filter_map(|(var, param)| raw.get(var).map(|v| format!("{param}={}", encode(v))))
                .collect();
            if !tls.is_empty() {
                url.push('?');
                url.push_str(&tls.join("&"));
            }
            DatabaseSource::Url(SecretString::from(url))
        } else {
            DatabaseSource::Managed
        };
        if let DatabaseSource::Url(url) = &database {
            aegis_postgres::ConnectTarget::parse(url.expose_secret())
                .map_err(|e| ConfigError(format!("DATABASE_URL (or DB_*): {e}")))?;
        }

        let (mode, mode_reason) = mode(&raw, &database);

        let master_api_key = raw
            .get("master_api_key")
            .map(|k| SecretString::from(k.to_owned()));
        let secret_key = raw
            .get("secret_key")
            .map(|k| SecretString::from(k.to_owned()));
        let secret_key_previous = raw
            .get("secret_key_previous")
            .map(|k| SecretString::from(k.to_owned()));
        if let (Some(current), Some(previous)) = (&secret_key, &secret_key_previous)
            && current.expose_secret() == previous.expose_secret()
        {
            return Err(ConfigError(
                "SECRET_KEY_PREVIOUS must differ from SECRET_KEY (unset it once a rotation is done)"
                    .into(),
            ));
        }

        if mode == Mode::Production {
            check_production_secret("MASTER_API_KEY", master_api_key.as_ref())?;
            check_production_secret("SECRET_KEY", secret_key.as_ref())?;
            if secret_key_previous.is_some() {
                // It still opens sealed mail: as sensitive as the current key.
                check_production_secret("SECRET_KEY_PREVIOUS", secret_key_previous.as_ref())?;
            }
            if matches!(database, DatabaseSource::Managed) {
                return Err(ConfigError(
                    "production needs an explicit database: set DATABASE_URL or the DB_* variables \
                     (the managed local PostgreSQL is for development only)"
                        .into(),
                ));
            }
        }

        let data_dir = PathBuf::from(raw.get("aegis_data_dir").unwrap_or(".aegis-data"));
        let outbox_dir = raw
            .get("aegis_outbox_dir")
            .map_or_else(|| data_dir.join("outbox"), PathBuf::from);
        let smtp = match raw.get("smtp_host") {
            Some(host) => {
                let tls = raw
                    .get("smtp_tls")
                    .unwrap_or("starttls")
                    .to_ascii_lowercase();
                if !matches!(tls.as_str(), "starttls" | "tls" | "none") {
                    return Err(ConfigError(format!(
                        "SMTP_TLS must be starttls, tls or none, got {tls:?}"
                    )));
                }
                Some(SmtpConfig {
                    host: host.to_owned(),
                    port: raw.parse("smtp_port", 587, "a port number")?,
                    tls,
                    username: raw.get("smtp_username").map(str::to_owned),
                    password: raw.get("smtp_password").map(str::to_owned),
                })
            }
            None => None,
        };
        let mailgun = MailTransport::Mailgun {
            api_base: raw
                .get("mailgun_api_base")
                .unwrap_or(aegis_mailgun::DEFAULT_API_BASE)
                .trim_end_matches('/')
                .to_owned(),
        };
        let mailgun_configured =
            raw.get("mailgun_api_key").is_some() && raw.get("mailgun_domain").is_some();
        let requested = raw.get("mail_transport").map(str::to_ascii_lowercase);
        let mail_transport = match requested.as_deref() {
            Some("mailgun") => mailgun,
            Some("smtp") => MailTransport::Smtp(
                smtp.ok_or_else(|| ConfigError("MAIL_TRANSPORT=smtp needs SMTP_HOST".into()))?,
            ),
            Some("outbox") if mode == Mode::Production => {
                return Err(ConfigError(
                    "MAIL_TRANSPORT=outbox writes mail to files and is refused in production"
                        .into(),
                ));
            }
            Some("outbox") => MailTransport::Outbox(outbox_dir),
            Some("none") => MailTransport::None,
            Some(v) => {
                return Err(ConfigError(format!(
                    "MAIL_TRANSPORT must be mailgun, smtp, outbox or none, got {v:?}"
                )));
            }
            // Nothing said: SMTP when configured, else Mailgun when configured (always in
            // production, as the reference sends through Mailgun and per-site keys may supply
            // what the environment does not), else the development outbox.
            None => match (smtp, mode) {
                (Some(smtp), _) => MailTransport::Smtp(smtp),
                (None, Mode::Production) => mailgun,
                (None, Mode::Development) if mailgun_configured => mailgun,
                (None, Mode::Development) => MailTransport::Outbox(outbox_dir),
            },
        };

        let mut proxies = Vec::new();
        for part in raw
            .get("trusted_proxies")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            proxies.push(crate::client_ip::Cidr::parse(part).ok_or_else(|| {
                ConfigError(format!(
                    "TRUSTED_PROXIES must be comma-separated addresses or CIDR ranges, got {part:?}"
                ))
            })?);
        }
        let client_ip = crate::client_ip::ClientIpPolicy {
            header: raw.get("trusted_client_ip_header").map(str::to_owned),
            proxies,
        };
        if let Some(header) = &client_ip.header {
            if actix_web::http::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(ConfigError(format!(
                    "TRUSTED_CLIENT_IP_HEADER must be a header name, got {header:?}"
                )));
            }
            if client_ip.proxies.is_empty() && mode == Mode::Production {
                return Err(ConfigError(
                    "TRUSTED_CLIENT_IP_HEADER is set but TRUSTED_PROXIES is not: the header would \
                     be believed from nobody, and every client would share its proxy's limits. \
                     Set TRUSTED_PROXIES to the addresses of the proxies that set the header"
                        .into(),
                ));
            }
        }
        let client_networks = aegis_domain::ratelimit::NetworkPrefixes {
            v4: prefix(&raw, "ratelimit_ipv4_prefix", 32)?,
            v6: prefix(&raw, "ratelimit_ipv6_prefix", 64)?,
        };

        let log_format = match raw
            .get("log_format")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(v) => {
                return Err(ConfigError(format!(
                    "LOG_FORMAT must be text or json, got {v:?}"
                )));
            }
        };

        let max_content_length: usize =
            raw.parse("max_content_length", 65_536, "a number of bytes")?;
        if max_content_length == 0 {
            return Err(ConfigError("MAX_CONTENT_LENGTH must be positive".into()));
        }
        let db_pool_size: usize = raw.parse("db_pool_size", 10, "a number of connections")?;
        if db_pool_size == 0 {
            return Err(ConfigError("DB_POOL_SIZE must be positive".into()));
        }
        let db_pool_timeout_ms: u64 =
            raw.parse("db_pool_timeout_ms", 80, "a number of milliseconds")?;
        if db_pool_timeout_ms == 0 {
            return Err(ConfigError("DB_POOL_TIMEOUT_MS must be positive".into()));
        }
        let token_cache_capacity: usize =
            raw.parse("token_cache_capacity", 10_000, "a number of entries")?;
        if token_cache_capacity == 0 {
            return Err(ConfigError(
                "TOKEN_CACHE_CAPACITY must be positive (TOKEN_CACHE_ENABLED=false turns the cache off)"
                    .into(),
            ));
        }
        let token_cache_ttl: u64 =
            raw.parse("token_cache_ttl_seconds", 30, "a number of seconds")?;
        if token_cache_ttl == 0 {
            return Err(ConfigError(
                "TOKEN_CACHE_TTL_SECONDS must be positive (TOKEN_CACHE_ENABLED=false turns the cache off)"
                    .into(),
            ));
        }
        let hosted_pages_url = match raw.get("hosted_pages_url") {
            None => None,
            Some(v) => Some(hosted_pages_url(v)?),
        };
        let metrics_addr = match raw.get("metrics_addr") {
            None => None,
            Some(addr) => {
                let port = addr
                    .trim()
                    .rsplit_once(':')
                    .map(|(_, port)| port.parse::<u16>());
                if !matches!(port, Some(Ok(_))) {
                    return Err(ConfigError(format!(
                        "METRICS_ADDR must be host:port (e.g. 127.0.0.1:9100), got {addr:?}"
                    )));
                }
                Some(addr.trim().to_owned())
            }
        };
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let hash_workers: usize =
            raw.parse("password_hash_concurrency", cpus, "a number of threads")?;
        if hash_workers == 0 {
            return Err(ConfigError(
                "PASSWORD_HASH_CONCURRENCY must be positive".into(),
            ));
        }
        let hash_queue: usize = raw.parse("password_hash_queue", 256, "a number of jobs")?;
        if hash_queue == 0 {
            return Err(ConfigError("PASSWORD_HASH_QUEUE must be positive".into()));
        }

        Ok(Self {
            mode,
            mode_reason,
            master_api_key,
            secret_key,
            secret_key_previous,
            database,
            db_pool_size,
            db_pool_timeout: std::time::Duration::from_millis(db_pool_timeout_ms),
            host: raw.get("app_host").map(str::to_owned),
            port: raw.parse("app_port", 5678, "a port number")?,
            max_content_length,
            data_dir,
            version_file: PathBuf::from(raw.get("aegis_version_file").unwrap_or("VERSION")),
            log_format,
            log_level: raw.get("log_level").unwrap_or("INFO").to_owned(),
            tokens: TokenSettings {
                auth_token_expiration: raw.seconds("auth_token_expiration", 3_600)?,
                email_verification_expiration: raw
                    .seconds("email_verification_expiration", 86_400)?,
                password_reset_expiration: raw.seconds("password_reset_expiration", 3_600)?,
                email_change_expiration: raw.seconds("email_change_expiration", 3_600)?,
                refresh_token_expiration: raw.seconds("refresh_token_expiration", 604_800)?,
                // The reference enables rotation only for the exact string "true", in any case.
                refresh_token_rotation: raw
                    .get("refresh_token_rotation")
                    .is_none_or(|v| v.eq_ignore_ascii_case("true")),
                refresh_token_grace_period: raw.parse(
                    "refresh_token_grace_period",
                    30,
                    "a whole number of seconds",
                )?,
            },
            argon2: Argon2Settings {
                memory_kib: raw.parse("password_hash_memory_kib", 19_456, "a number of KiB")?,
                iterations: raw.parse("password_hash_iterations", 2, "a whole number")?,
                parallelism: raw.parse("password_hash_parallelism", 1, "a whole number")?,
            },
            password_hash_pool: crate::passwords::HashPoolSize {
                workers: hash_workers,
                queue: hash_queue,
            },
            mailgun_api_key: raw
                .get("mailgun_api_key")
                .map(|k| SecretString::from(k.to_owned())),
            mailgun_domain: raw.get("mailgun_domain").map(str::to_owned),
            mail_transport,
            webhook_block_private_networks: raw.flag("webhook_block_private_networks", false)?,
            ratelimit_enabled: raw.flag("ratelimit_enabled", true)?,
            openapi_enabled: raw.flag("openapi_enabled", true)?,
            token_cache: aegis_postgres::TokenCacheSettings {
                enabled: raw.flag("token_cache_enabled", true)?,
                capacity: token_cache_capacity,
                ttl: std::time::Duration::from_secs(token_cache_ttl),
            },
            client_ip,
            client_networks,
            cors_origins: raw.get("cors_origins").map(str::to_owned),
            cors_extra_origins: raw
                .get("cors_extra_origins")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            verification_link_base: raw
                .get("verification_link_base")
                .map(|v| v.trim_end_matches('/').to_owned()),
            hosted_pages_url,
            loki_endpoint: raw.get("loki_endpoint").map(str::to_owned),
            metrics_addr,
        })
    }

    /// The address to listen on: `APP_HOST`, else `0.0.0.0` as in the reference, except with the
    /// managed local database, a development setup, where it is `127.0.0.1`.
    pub fn bind_host(&self) -> &str {
        match (&self.host, &self.database) {
            (Some(host), _) => host,
            (None, DatabaseSource::Managed) => "127.0.0.1",
            (None, DatabaseSource::Url(_)) => "0.0.0.0",
        }
    }

    /// What the account use cases need to know.
    pub fn account_settings(&self) -> AccountSettings {
        AccountSettings {
            auth_token_ttl: self.tokens.auth_token_expiration,
            refresh_token_ttl: self.tokens.refresh_token_expiration,
            refresh_rotation: self.tokens.refresh_token_rotation,
            refresh_grace: self.tokens.refresh_token_grace_period,
            verification_ttl: self.tokens.email_verification_expiration,
            password_reset_ttl: self.tokens.password_reset_expiration,
            email_change_ttl: self.tokens.email_change_expiration,
            verification_link_base: self.verification_link_base.clone(),
            hosted_pages_url: self.hosted_pages_url.clone(),
        }
    }

    /// The `EnvFilter` directive for `LOG_LEVEL` (Python level names accepted).
    pub fn log_directive(&self) -> String {
        match self.log_level.to_ascii_lowercase().as_str() {
            "warning" => "warn".into(),
            "critical" | "fatal" => "error".into(),
            other => other.to_owned(),
        }
    }
}

/// Production unless the environment says development, or there is no database to run against
/// (local mode): an operator's env file that omits `FLASK_ENV` gets the production checks
/// (decision 28). `AEGIS_ENV` wins over `FLASK_ENV`; as in Flask, any value but `development` is
/// production.
fn mode(raw: &Raw, database: &DatabaseSource) -> (Mode, String) {
    let named = [("aegis_env", "AEGIS_ENV"), ("flask_env", "FLASK_ENV")]
        .iter()
        .find_map(|(key, name)| raw.get(key).map(|v| (*name, v)));
    match (named, database) {
        (Some((name, v)), _) if v.eq_ignore_ascii_case("development") => {
            (Mode::Development, format!("{name}={v}"))
        }
        (Some((name, v)), _) => (Mode::Production, format!("{name}={v}")),
        (None, DatabaseSource::Url(_)) => (
            Mode::Production,
            "a database is configured and neither AEGIS_ENV nor FLASK_ENV says development".into(),
        ),
        (None, DatabaseSource::Managed) => (
            Mode::Development,
            "local mode: no database is configured".into(),
        ),
    }
}

/// Refuses a missing, short or placeholder-looking secret in production.
/// A network prefix length for grouping client addresses: 1 to 32 for IPv4, 1 to 128 for IPv6.
fn prefix(raw: &Raw, key: &str, default: u8) -> Result<u8, ConfigError> {
    let max = if key.contains("ipv4") { 32 } else { 128 };
    let value: u8 = raw.parse(key, default, "a prefix length")?;
    if (1..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError(format!(
            "{} must be between 1 and {max}, got {value}",
            key.to_uppercase()
        )))
    }
}

pub(crate) fn check_production_secret(
    name: &str,
    key: Option<&SecretString>,
) -> Result<(), ConfigError> {
    let Some(key) = key else {
        return Err(ConfigError(format!(
            "{name} must be set in production (e.g. `openssl rand -hex 32`)"
        )));
    };
    let key = key.expose_secret();
    let lower = key.to_ascii_lowercase();
    if key.chars().count() < MIN_PRODUCTION_KEY_LEN
        || PLACEHOLDER_MARKERS.iter().any(|m| lower.contains(m))
    {
        return Err(ConfigError(format!(
            "{name} looks like a placeholder: production needs a random secret of at least \
             {MIN_PRODUCTION_KEY_LEN} characters (e.g. `openssl rand -hex 32`)"
        )));
    }
    Ok(())
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    const KEY: &str = "0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a";
    const SECRET: &str = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d";
    /// Development with an explicit database.
    const DEV: (&str, &str) = ("AEGIS_ENV", "development");

    #[test]
    fn defaults_match_the_reference() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.mode, Mode::Development);
        assert!(matches!(s.database, DatabaseSource::Managed));
        assert_eq!((s.bind_host(), s.port), ("127.0.0.1", 5678));
        let s = settings(&[DEV, ("DATABASE_URL", "postgres://x/y")]).unwrap();
        assert_eq!(s.bind_host(), "0.0.0.0");
        assert_eq!(s.max_content_length, 65_536);
        assert_eq!(
            s.tokens,
            TokenSettings {
                auth_token_expiration: 3_600,
                email_verification_expiration: 86_400,
                password_reset_expiration: 3_600,
                email_change_expiration: 3_600,
                refresh_token_expiration: 604_800,
                refresh_token_rotation: true,
                refresh_token_grace_period: 30,
            }
        );
        assert!(s.ratelimit_enabled);
        assert!(s.master_api_key.is_none());
        assert_eq!(s.db_pool_timeout, std::time::Duration::from_millis(80));
        assert_eq!(
            s.token_cache,
            aegis_postgres::TokenCacheSettings {
                enabled: true,
                capacity: 10_000,
                ttl: std::time::Duration::from_secs(30),
            }
        );
        assert_eq!(s.password_hash_pool.queue, 256);
        assert_eq!(
            s.password_hash_pool.workers,
            std::thread::available_parallelism().map_or(1, usize::from)
        );
    }

    #[test]
    fn a_configured_database_means_production_unless_development_is_said() {
        let db = ("DATABASE_URL", "postgres://x/y");
        let secrets = [("MASTER_API_KEY", KEY), ("SECRET_KEY", SECRET)];
        // The original's env file often omits FLASK_ENV: the production checks apply to it.
        let err = settings(&[db, ("MASTER_API_KEY", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("MASTER_API_KEY"), "{err}");
        let err = settings(&[("DB_HOST", "db"), ("MASTER_API_KEY", KEY)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SECRET_KEY"), "{err}");
        let s = settings(&[db, secrets[0], secrets[1]]).unwrap();
        assert_eq!(s.mode, Mode::Production);
        assert!(
            s.mode_reason.contains("database is configured"),
            "{}",
            s.mode_reason
        );
        // As in Flask, anything but `development` is production.
        let s = settings(&[db, ("FLASK_ENV", "staging"), secrets[0], secrets[1]]).unwrap();
        assert_eq!(
            (s.mode, s.mode_reason.as_str()),
            (Mode::Production, "FLASK_ENV=staging")
        );
        for env in ["AEGIS_ENV", "FLASK_ENV"] {
            let s = settings(&[db, (env, "Development"), ("MASTER_API_KEY", "x")]).unwrap();
            assert_eq!(s.mode, Mode::Development);
            assert_eq!(s.mode_reason, format!("{env}=Development"));
        }
        // Local mode stays development with nothing set.
        let s = settings(&[]).unwrap();
        assert_eq!(s.mode, Mode::Development);
        assert!(s.mode_reason.contains("local mode"), "{}", s.mode_reason);
    }

    #[test]
    fn a_client_ip_header_needs_the_proxies_that_set_it() {
        let production = [
            ("DATABASE_URL", "postgres://x/y"),
            ("MASTER_API_KEY", KEY),
            ("SECRET_KEY", SECRET),
        ];
        let mut env = production.to_vec();
        env.push(("TRUSTED_CLIENT_IP_HEADER", "CF-Connecting-IP"));
        let err = settings(&env).unwrap_err().to_string();
        assert!(
            err.contains("TRUSTED_PROXIES") && err.contains("believed from nobody"),
            "{err}"
        );
        env.push(("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1"));
        let s = settings(&env).unwrap();
        assert_eq!(s.client_ip.proxies.len(), 2);
        // Development starts, and the header is believed from nobody.
        let s = settings(&[("TRUSTED_CLIENT_IP_HEADER", "CF-Connecting-IP")]).unwrap();
        assert!(s.client_ip.proxies.is_empty());
        let err = settings(&[("TRUSTED_CLIENT_IP_HEADER", "Bad Header")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("header name"), "{err}");
    }

    #[test]
    fn client_networks_are_configurable_within_bounds() {
        let s = settings(&[]).unwrap();
        assert_eq!((s.client_networks.v4, s.client_networks.v6), (32, 64));
        let s = settings(&[
            ("RATELIMIT_IPV4_PREFIX", "24"),
            ("RATELIMIT_IPV6_PREFIX", "48"),
        ])
        .unwrap();
        assert_eq!((s.client_networks.v4, s.client_networks.v6), (24, 48));
        for (key, bad) in [
            ("RATELIMIT_IPV4_PREFIX", "33"),
            ("RATELIMIT_IPV4_PREFIX", "0"),
            ("RATELIMIT_IPV6_PREFIX", "129"),
            ("RATELIMIT_IPV6_PREFIX", "x"),
        ] {
            let err = settings(&[(key, bad)]).unwrap_err().to_string();
            assert!(err.contains(key), "{key}={bad}: {err}");
        }
    }

    #[test]
    fn production_refuses_a_weak_or_missing_secret_key() {
        let base = [
            ("AEGIS_ENV", "production"),
            ("DATABASE_URL", "postgres://x/y"),
            ("MASTER_API_KEY", KEY),
        ];
        for bad in [None, Some("dev-secret-key"), Some("short")] {
            let mut env = base.to_vec();
            if let Some(v) = bad {
                env.push(("SECRET_KEY", v));
            }
            let err = settings(&env).unwrap_err().to_string();
            assert!(err.contains("SECRET_KEY"), "{bad:?}: {err}");
            assert!(!err.contains("dev-secret-key"), "the value is never echoed");
        }
        for previous in ["dev-secret-key", SECRET] {
            let mut env = base.to_vec();
            env.extend([("SECRET_KEY", SECRET), ("SECRET_KEY_PREVIOUS", previous)]);
            let err = settings(&env).unwrap_err().to_string();
            assert!(err.contains("SECRET_KEY_PREVIOUS"), "{err}");
            assert!(!err.contains(previous), "the value is never echoed");
        }
        let mut env = base.to_vec();
        env.extend([("SECRET_KEY", SECRET), ("SECRET_KEY_PREVIOUS", KEY)]);
        let s = settings(&env).unwrap();
        assert_eq!(s.secret_key.unwrap().expose_secret(), SECRET);
        assert_eq!(s.secret_key_previous.unwrap().expose_secret(), KEY);
    }

    #[test]
    fn the_metrics_address_is_optional_and_needs_a_port() {
        assert_eq!(settings(&[]).unwrap().metrics_addr, None);
        let s = settings(&[("METRICS_ADDR", "127.0.0.1:9100")]).unwrap();
        assert_eq!(s.metrics_addr.as_deref(), Some("127.0.0.1:9100"));
        for bad in ["127.0.0.1", "localhost:metrics", ":99999"] {
            let err = settings(&[("METRICS_ADDR", bad)]).unwrap_err().to_string();
            assert!(err.contains("METRICS_ADDR"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_token_cache_settings_are_read_and_checked() {
        let s = settings(&[
            ("TOKEN_CACHE_ENABLED", "false"),
            ("TOKEN_CACHE_CAPACITY", "7"),
            ("TOKEN_CACHE_TTL_SECONDS", "5"),
        ])
        .unwrap();
        assert_eq!(
            s.token_cache,
            aegis_postgres::TokenCacheSettings {
                enabled: false,
                capacity: 7,
                ttl: std::time::Duration::from_secs(5),
            }
        );
        for (var, value) in [
            ("TOKEN_CACHE_CAPACITY", "0"),
            ("TOKEN_CACHE_CAPACITY", "many"),
            ("TOKEN_CACHE_TTL_SECONDS", "0"),
            ("TOKEN_CACHE_TTL_SECONDS", "-1"),
            ("TOKEN_CACHE_ENABLED", "maybe"),
        ] {
            let err = settings(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{var}={value}: {err}");
        }
    }

    #[test]
    fn pool_and_hashing_sizes_are_read_and_checked() {
        let s = settings(&[
            ("DB_POOL_TIMEOUT_MS", "250"),
            ("PASSWORD_HASH_CONCURRENCY", "3"),
            ("PASSWORD_HASH_QUEUE", "1"),
        ])
        .unwrap();
        assert_eq!(s.db_pool_timeout, std::time::Duration::from_millis(250));
        assert_eq!(
            s.password_hash_pool,
            crate::passwords::HashPoolSize {
                workers: 3,
                queue: 1
            }
        );
        for (var, value) in [
            ("DB_POOL_TIMEOUT_MS", "0"),
            ("PASSWORD_HASH_CONCURRENCY", "0"),
            ("PASSWORD_HASH_QUEUE", "many"),
            ("PASSWORD_HASH_QUEUE", "0"),
        ] {
            let err = settings(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{err}");
        }
    }

    #[test]
    fn tls_settings_for_the_database() {
        let s = settings(&[
            DEV,
            ("DB_HOST", "db.example.com"),
            ("DB_SSLMODE", "verify-full"),
            ("DB_SSLROOTCERT", "/etc/ssl/certs/ca-certificates.crt"),
        ])
        .unwrap();
        let DatabaseSource::Url(url) = s.database else {
            panic!()
        };
        assert_eq!(
            url.expose_secret(),
            "postgres://aegis_admin:aegis_admin@db.example.com:5432/aegis\
             ?sslmode=verify-full&sslrootcert=%2Fetc%2Fssl%2Fcerts%2Fca-certificates.crt"
        );
        for env in [
            [DEV, ("DB_HOST", "db"), ("DB_SSLMODE", "sometimes")],
            [
                DEV,
                ("DATABASE_URL", "postgres://db/a?sslmode=sometimes"),
                ("X", ""),
            ],
        ] {
            let err = settings(&env).unwrap_err().to_string();
            assert!(err.contains("sslmode"), "{err}");
        }
    }

    #[test]
    fn db_variables_build_a_url_and_database_url_wins() {
        let s = settings(&[DEV, ("DB_HOST", "db"), ("DB_PASSWORD", "p@ss word")]).unwrap();
        let DatabaseSource::Url(url) = s.database else {
            panic!()
        };
        assert_eq!(
            url.expose_secret(),
            "postgres://aegis_admin:p%40ss%20word@db:5432/aegis"
        );
        let s = settings(&[DEV, ("DB_HOST", "db"), ("DATABASE_URL", "postgres://x/y")]).unwrap();
        let DatabaseSource::Url(url) = s.database else {
            panic!()
        };
        assert_eq!(url.expose_secret(), "postgres://x/y");
    }

    #[test]
    fn production_refuses_missing_default_or_short_keys_and_a_managed_database() {
        for env in ["AEGIS_ENV", "FLASK_ENV"] {
            let db = ("DATABASE_URL", "postgres://x/y");
            assert!(settings(&[(env, "production"), db]).is_err());
            assert!(settings(&[(env, "production"), db, ("MASTER_API_KEY", "short")]).is_err());
            let placeholder = "your-secure-master-api-key-change-me";
            assert!(settings(&[(env, "production"), db, ("MASTER_API_KEY", placeholder)]).is_err());
            let key = ("MASTER_API_KEY", KEY);
            let secret = ("SECRET_KEY", SECRET);
            assert!(settings(&[(env, "production"), key, secret]).is_err());
            let s = settings(&[(env, "production"), db, key, secret]).unwrap();
            assert_eq!(s.mode, Mode::Production);
        }
        // AEGIS_ENV wins over FLASK_ENV.
        let s = settings(&[("AEGIS_ENV", "development"), ("FLASK_ENV", "production")]).unwrap();
        assert_eq!(s.mode, Mode::Development);
    }

    #[test]
    fn mail_goes_to_the_outbox_folder_in_development_only() {
        let s = settings(&[]).unwrap();
        assert_eq!(
            s.mail_transport,
            MailTransport::Outbox(PathBuf::from(".aegis-data/outbox"))
        );
        let s = settings(&[("AEGIS_OUTBOX_DIR", "/tmp/mail")]).unwrap();
        assert_eq!(
            s.mail_transport,
            MailTransport::Outbox(PathBuf::from("/tmp/mail"))
        );
        let prod = [
            ("AEGIS_ENV", "production"),
            ("DATABASE_URL", "postgres://x/y"),
            ("MASTER_API_KEY", KEY),
            ("SECRET_KEY", SECRET),
        ];
        assert_eq!(
            settings(&prod).unwrap().mail_transport,
            MailTransport::Mailgun {
                api_base: "https://api.mailgun.net".into()
            }
        );
        let s = settings(&[
            ("MAILGUN_API_KEY", "k"),
            ("MAILGUN_DOMAIN", "mg.example.com"),
            ("MAILGUN_API_BASE", "https://api.eu.mailgun.net/"),
        ])
        .unwrap();
        assert_eq!(
            s.mail_transport,
            MailTransport::Mailgun {
                api_base: "https://api.eu.mailgun.net".into()
            }
        );
        let s = settings(&[
            ("SMTP_HOST", "127.0.0.1"),
            ("SMTP_PORT", "1025"),
            ("SMTP_TLS", "none"),
        ])
        .unwrap();
        assert!(matches!(
            s.mail_transport,
            MailTransport::Smtp(SmtpConfig { port: 1025, .. })
        ));
        assert!(settings(&[("MAIL_TRANSPORT", "smtp")]).is_err());
        assert!(settings(&[("SMTP_HOST", "h"), ("SMTP_TLS", "maybe")]).is_err());
        let mut with_outbox = prod.to_vec();
        with_outbox.push(("MAIL_TRANSPORT", "outbox"));
        assert!(
            settings(&with_outbox)
                .unwrap_err()
                .to_string()
                .contains("MAIL_TRANSPORT")
        );
        assert!(settings(&[("MAIL_TRANSPORT", "pigeon")]).is_err());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = settings(&[("APP_PORT", "http")]).unwrap_err().to_string();
        assert!(err.contains("APP_PORT"), "{err}");
        let err = settings(&[("AUTH_TOKEN_EXPIRATION", "-5")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("AUTH_TOKEN_EXPIRATION"), "{err}");
        let err = settings(&[("RATELIMIT_ENABLED", "maybe")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("RATELIMIT_ENABLED"), "{err}");
    }

    #[test]
    fn refresh_rotation_is_on_only_for_true() {
        assert!(
            !settings(&[("REFRESH_TOKEN_ROTATION", "1")])
                .unwrap()
                .tokens
                .refresh_token_rotation
        );
        assert!(
            settings(&[("REFRESH_TOKEN_ROTATION", "TRUE")])
                .unwrap()
                .tokens
                .refresh_token_rotation
        );
    }

    #[test]
    fn hosted_pages_url_is_an_http_base_without_a_query() {
        assert_eq!(settings(&[]).unwrap().hosted_pages_url, None);
        let s = settings(&[("HOSTED_PAGES_URL", "https://auth.example.com/")]).unwrap();
        assert_eq!(
            s.hosted_pages_url.as_deref(),
            Some("https://auth.example.com")
        );
        assert_eq!(
            s.account_settings().hosted_pages_url.as_deref(),
            Some("https://auth.example.com")
        );
        for bad in [
            "auth.example.com",
            "ftp://a.com",
            "https://a.com/?x=1",
            "https://u@a.com",
        ] {
            let err = settings(&[("HOSTED_PAGES_URL", bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains("HOSTED_PAGES_URL"), "{bad}: {err}");
        }
    }

    #[test]
    fn extra_origins_are_split_and_trimmed() {
        let s = settings(&[("CORS_EXTRA_ORIGINS", " https://a.com, ,https://b.com")]).unwrap();
        assert_eq!(s.cors_extra_origins, ["https://a.com", "https://b.com"]);
    }
}
