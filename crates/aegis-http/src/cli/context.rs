//! What every command runs on: the database `serve` would use and the domain services over it.

use std::future::Future;

use aegis_domain::service::accounts::AccountService;
use aegis_domain::{SiteId, UserId, site::Site, user::Email};
use aegis_domain::{SiteService, user::User};

use super::{CliError, OrApi as _};
use crate::config::Settings;
use crate::embed::Aegis;
use crate::error::ApiError;
use crate::error_map::{SITE_NOT_FOUND, USER_NOT_FOUND};
use crate::local;

/// The runtime the commands' futures run on.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the runtime: {e}")))
}

/// The services, on a runtime of their own; commands call them with [`Context::block`].
pub struct Context {
    aegis: Aegis,
    runtime: tokio::runtime::Runtime,
    // Declared last: the managed server this command started, stopped when the command ends.
    _local: Option<local::LocalMode>,
}

impl Context {
    /// Reaches the configured database: `DATABASE_URL`/`DB_*`, or in local mode the managed
    /// server of `AEGIS_DATA_DIR` (the running one of an `aegis serve`, else one started for this
    /// command). Pending migrations are applied first, as `serve` does.
    pub fn open(settings: &Settings) -> Result<Self, CliError> {
        let failed = |e: String| CliError::Failed(e);
        let runtime = runtime()?;
        let database = local::ServiceDatabase::reach(settings, true).map_err(failed)?;
        // A command answers no bearer checks: no token cache and no listener. Its changes still
        // reach running instances' caches, through the database's triggers (decision 88).
        let mut settings = settings.clone();
        settings.token_cache.enabled = false;
        let aegis = runtime.block_on(async {
            database.ensure().await.map_err(failed)?;
            Aegis::start_with(&settings, &database.url, &database.secret)
                .await
                .map_err(|e| failed(format!("cannot reach the database: {e}")))
        })?;
        Ok(Self {
            aegis,
            runtime,
            _local: database.started,
        })
    }

    /// Runs `future` to completion on the command's runtime.
    pub fn block<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Site use cases.
    pub fn sites(&self) -> &SiteService {
        self.aegis.sites()
    }

    /// Account use cases.
    pub fn accounts(&self) -> &AccountService {
        self.aegis.accounts()
    }

    /// A site by UUID or by domain; `Site not found` otherwise.
    pub fn site(&self, name: &str) -> Result<Site, CliError> {
        self.block(async {
            if let Some(id) = SiteId::parse(name)
                && let Some(site) = self.sites().get(id).await.or_api()?
            {
                return Ok(site);
            }
            self.sites()
                .get_by_domain(name)
                .await
                .or_api()?
                .ok_or_else(|| ApiError::not_found(SITE_NOT_FOUND).into())
        })
    }

    /// A user by UUID (of `site` when one is named) or by email within `site`;
    /// `User not found` otherwise.
    pub fn user(&self, name: &str, site: Option<&Site>) -> Result<User, CliError> {
        let not_found = || CliError::from(ApiError::not_found(USER_NOT_FOUND));
        self.block(async {
            if let Some(id) = UserId::parse(name) {
                let user = self.accounts().user(id).await.or_api()?;
                return user
                    .filter(|u| site.is_none_or(|s| s.id == u.site_id))
                    .ok_or_else(not_found);
            }
            let Some(site) = site else {
                return Err(CliError::Usage(format!(
                    "{name:?} is not a user UUID: naming a user by email needs --site"
                )));
            };
            let Ok(email) = Email::parse(name) else {
                return Err(not_found());
            };
            self.accounts()
                .user_by_email(site.id, &email)
                .await
                .or_api()?
                .ok_or_else(not_found)
        })
    }
}
