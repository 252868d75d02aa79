//! Site management: the operator's view of tenants.

use std::sync::Arc;

use crate::clock::Clock;
use crate::ids::SiteId;
use crate::repo::{RepoError, SiteRepository, UnitOfWork};
use crate::secrets::SecretGenerator;
use crate::site::{NewSite, Site, SitePatch, normalize_domain};

/// Creating a site failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateSiteError {
    /// Another site already has this domain (after lowercasing).
    #[error("domain already exists")]
    DomainTaken,
    /// Storage failed (see [`RepoError`]); [`RepoError::Unavailable`] is an outage worth
    /// retrying.
    #[error("{0}")]
    Repo(#[from] RepoError),
}

/// Updating a site failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateSiteError {
    /// The patch names no field ([`SitePatch::is_empty`]); nothing was written.
    #[error("at least one field must be provided")]
    NothingToUpdate,
    /// No site has this id.
    #[error("site not found")]
    NotFound,
    /// The patch moves the site to a domain another site already has.
    #[error("domain already exists")]
    DomainTaken,
    /// Storage failed (see [`RepoError`]); [`RepoError::Unavailable`] is an outage worth
    /// retrying.
    #[error("{0}")]
    Repo(#[from] RepoError),
}

/// Deleting a site was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum DeleteSiteError {
    /// No site has this id.
    #[error("site not found")]
    NotFound,
    /// The site itself is deletion-protected ([`Site::deletion_protected`]); clear that first.
    #[error("site is deletion-protected")]
    Protected,
    /// This many of the site's users are deletion-protected; clear their protection first.
    #[error("site has {0} deletion-protected user(s)")]
    HasProtectedUsers(i64),
    /// A protection appeared between the checks and the delete statement, which refused.
    #[error("a deletion protection appeared concurrently")]
    ProtectionRace,
    /// Storage failed (see [`RepoError`]); [`RepoError::Unavailable`] is an outage worth
    /// retrying.
    #[error("{0}")]
    Repo(#[from] RepoError),
}

/// Site management use cases.
#[derive(Clone)]
pub struct SiteService {
    repo: Arc<dyn SiteRepository>,
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
    generator: Arc<dyn SecretGenerator>,
}

impl SiteService {
    /// The service over its ports: `repo` for reads, `uow` for transactional writes, `clock` for
    /// timestamps and `generator` for new ids, tenant API keys and webhook secrets.
    pub fn new(
        repo: Arc<dyn SiteRepository>,
        uow: Arc<dyn UnitOfWork>,
        clock: Arc<dyn Clock>,
        generator: Arc<dyn SecretGenerator>,
    ) -> Self {
        Self {
            repo,
            uow,
            clock,
            generator,
        }
    }

    /// Creates a site with a fresh tenant API key (and webhook secret when a webhook URL is given).
    pub async fn create(&self, new: NewSite) -> Result<Site, CreateSiteError> {
        let site = Site::create(new, self.clock.now(), self.generator.as_ref());
        match self.repo.insert(&site).await {
            Ok(()) => Ok(site),
            Err(RepoError::Conflict(_)) => Err(CreateSiteError::DomainTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Every site, newest first.
    pub async fn list(&self) -> Result<Vec<Site>, RepoError> {
        self.repo.list().await
    }

    /// One site by id.
    pub async fn get(&self, id: SiteId) -> Result<Option<Site>, RepoError> {
        self.repo.find(id).await
    }

    /// One site by domain, compared after normalisation (decision 17). Stored domains never hold
    /// NUL characters (validation refuses them), so such a lookup finds nothing.
    pub async fn get_by_domain(&self, domain: &str) -> Result<Option<Site>, RepoError> {
        if domain.contains('\0') {
            return Ok(None);
        }
        self.repo.find_by_domain(&normalize_domain(domain)).await
    }

    /// Applies a partial update under a row lock, so concurrent updates never lose each other's
    /// fields.
    pub async fn update(&self, id: SiteId, patch: SitePatch) -> Result<Site, UpdateSiteError> {
        if patch.is_empty() {
            return Err(UpdateSiteError::NothingToUpdate);
        }
        let mut tx = self.uow.begin().await?;
        let mut site = tx
            .sites()
            .lock(id)
            .await?
            .ok_or(UpdateSiteError::NotFound)?;
        site.apply(patch, self.clock.now(), self.generator.as_ref());
        match tx.sites().update(&site).await {
            Ok(()) => {}
            Err(RepoError::Conflict(_)) => return Err(UpdateSiteError::DomainTaken),
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(site)
    }

    /// Deletes a site and everything in it, unless the site or any of its users is protected.
    pub async fn delete(&self, id: SiteId) -> Result<(), DeleteSiteError> {
        let mut tx = self.uow.begin().await?;
        let site = tx
            .sites()
            .lock_for_delete(id)
            .await?
            .ok_or(DeleteSiteError::NotFound)?;
        if site.deletion_protected {
            return Err(DeleteSiteError::Protected);
        }
        let protected_users = tx.sites().count_protected_users(id).await?;
        if protected_users > 0 {
            return Err(DeleteSiteError::HasProtectedUsers(protected_users));
        }
        if !tx.sites().delete_unprotected(id).await? {
            return Err(DeleteSiteError::ProtectionRace);
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use futures_util::FutureExt as _;

    use super::*;
    use crate::clock::ManualClock;
    use crate::repo::{MockSiteRepository, SiteTxRepository, Transaction};
    use crate::site::tests::{CountingGenerator, new_site};

    /// In-memory storage standing in for a database: committed state plus protected-user counts.
    #[derive(Default)]
    struct Memory {
        sites: Mutex<HashMap<SiteId, Site>>,
        protected_users: Mutex<HashMap<SiteId, i64>>,
        /// Protected users that appear between the count and the delete statement.
        race_on_delete: Mutex<bool>,
    }

    struct MemoryTx {
        memory: Arc<Memory>,
        staged: HashMap<SiteId, Option<Site>>,
    }

    #[async_trait]
    impl UnitOfWork for Arc<Memory> {
        async fn begin(&self) -> Result<Box<dyn Transaction>, RepoError> {
            Ok(Box::new(MemoryTx {
                memory: self.clone(),
                staged: HashMap::new(),
            }))
        }
    }

    #[async_trait]
    impl Transaction for MemoryTx {
        fn sites(&mut self) -> &mut dyn SiteTxRepository {
            self
        }
        fn accounts(&mut self) -> &mut dyn crate::repo::AccountTxRepository {
            unreachable!("site management uses no account storage")
        }
        async fn commit(self: Box<Self>) -> Result<(), RepoError> {
            let mut sites = self.memory.sites.lock().unwrap();
            for (id, site) in self.staged {
                match site {
                    Some(site) => sites.insert(id, site),
                    None => sites.remove(&id),
                };
            }
            Ok(())
        }
    }

    #[async_trait]
    impl SiteTxRepository for MemoryTx {
        async fn lock(&mut self, id: SiteId) -> Result<Option<Site>, RepoError> {
            Ok(self.memory.sites.lock().unwrap().get(&id).cloned())
        }
        async fn hold(&mut self, id: SiteId) -> Result<Option<Site>, RepoError> {
            self.lock(id).await
        }
        async fn lock_for_delete(&mut self, id: SiteId) -> Result<Option<Site>, RepoError> {
            self.lock(id).await
        }
        async fn update(&mut self, site: &Site) -> Result<(), RepoError> {
            let taken = self
                .memory
                .sites
                .lock()
                .unwrap()
                .values()
                .any(|s| s.id != site.id && s.domain == site.domain);
            if taken {
                return Err(RepoError::Conflict("sites_domain_key".into()));
            }
            self.staged.insert(site.id, Some(site.clone()));
            Ok(())
        }
        async fn count_protected_users(&mut self, id: SiteId) -> Result<i64, RepoError> {
            Ok(*self
                .memory
                .protected_users
                .lock()
                .unwrap()
                .get(&id)
                .unwrap_or(&0))
        }
        async fn delete_unprotected(&mut self, id: SiteId) -> Result<bool, RepoError> {
            if *self.memory.race_on_delete.lock().unwrap() {
                return Ok(false);
            }
            self.staged.insert(id, None);
            Ok(true)
        }
    }

    fn service(repo: MockSiteRepository, memory: Arc<Memory>) -> SiteService {
        SiteService::new(
            Arc::new(repo),
            Arc::new(memory),
            Arc::new(ManualClock::new(1_000)),
            Arc::new(CountingGenerator::default()),
        )
    }

    fn stored(memory: &Memory, protected: bool) -> Site {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(100);
        let mut site = Site::create(new_site(None), 10, &CountingGenerator::default());
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        site.id = SiteId::from_uuid(uuid::Uuid::from_u128(u128::from(n)));
        site.domain = format!("site-{n}.example.com");
        site.deletion_protected = protected;
        memory.sites.lock().unwrap().insert(site.id, site.clone());
        site
    }

    #[test]
    fn create_stores_the_site_and_returns_it() {
        let mut repo = MockSiteRepository::new();
        repo.expect_insert()
            .withf(|s| s.domain == "example.com" && s.created_at == 1_000)
            .times(1)
            .returning(|_| Ok(()));
        let site = service(repo, Arc::default())
            .create(new_site(None))
            .now_or_never()
            .unwrap()
            .unwrap();
        assert_eq!(site.tenant_api_key.len(), "secret-N".len());
    }

    #[test]
    fn create_maps_a_unique_violation_to_domain_taken() {
        let mut repo = MockSiteRepository::new();
        repo.expect_insert()
            .returning(|_| Err(RepoError::Conflict("sites_domain_key".into())));
        let err = service(repo, Arc::default())
            .create(new_site(None))
            .now_or_never()
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, CreateSiteError::DomainTaken));
    }

    #[test]
    fn create_passes_other_storage_failures_through() {
        let mut repo = MockSiteRepository::new();
        repo.expect_insert()
            .returning(|_| Err(RepoError::Unavailable("down".into())));
        let err = service(repo, Arc::default())
            .create(new_site(None))
            .now_or_never()
            .unwrap()
            .unwrap_err();
        assert!(matches!(
            err,
            CreateSiteError::Repo(RepoError::Unavailable(_))
        ));
    }

    #[test]
    fn get_by_domain_normalises_the_lookup() {
        let mut repo = MockSiteRepository::new();
        repo.expect_find_by_domain()
            .withf(|d| d == "example.com")
            .returning(|_| Ok(None));
        let found = service(repo, Arc::default())
            .get_by_domain("EXAMPLE.com")
            .now_or_never()
            .unwrap()
            .unwrap();
        assert!(found.is_none());
    }

    #[test]
    fn update_refuses_an_empty_patch_before_looking_anything_up() {
        let err = service(MockSiteRepository::new(), Arc::default())
            .update(SiteId::from_uuid(uuid::Uuid::nil()), SitePatch::default())
            .now_or_never()
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, UpdateSiteError::NothingToUpdate));
    }

    #[test]
    fn update_of_an_unknown_site_is_not_found() {
        let patch = SitePatch {
            name: Some("x".into()),
            ..SitePatch::default()
        };
        let err = service(MockSiteRepository::new(), Arc::default())
            .update(SiteId::from_uuid(uuid::Uuid::nil()), patch)
            .now_or_never()
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, UpdateSiteError::NotFound));
    }

    #[test]
    fn update_applies_and_commits() {
        let memory = Arc::new(Memory::default());
        let site = stored(&memory, false);
        let patch = SitePatch {
            name: Some("Renamed".into()),
            ..SitePatch::default()
        };
        let updated = service(MockSiteRepository::new(), memory.clone())
            .update(site.id, patch)
            .now_or_never()
            .unwrap()
            .unwrap();
        assert_eq!(
            (updated.name.as_str(), updated.updated_at),
            ("Renamed", 1_000)
        );
        assert_eq!(memory.sites.lock().unwrap()[&site.id].name, "Renamed");
    }

    #[test]
    fn update_to_a_taken_domain_is_refused_and_changes_nothing() {
        let memory = Arc::new(Memory::default());
        let site = stored(&memory, false);
        let mut other = site.clone();
        other.id = SiteId::from_uuid(uuid::Uuid::from_u128(7));
        other.domain = "other.example.com".into();
        memory.sites.lock().unwrap().insert(other.id, other);
        let patch = SitePatch {
            domain: Some("OTHER.example.com".into()),
            name: Some("Renamed".into()),
            ..SitePatch::default()
        };
        let err = service(MockSiteRepository::new(), memory.clone())
            .update(site.id, patch)
            .now_or_never()
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, UpdateSiteError::DomainTaken));
        assert_eq!(memory.sites.lock().unwrap()[&site.id].name, "Example");
    }

    #[test]
    fn delete_outcomes() {
        let memory = Arc::new(Memory::default());
        let svc = service(MockSiteRepository::new(), memory.clone());
        let run = |id| svc.delete(id).now_or_never().unwrap();

        assert!(matches!(
            run(SiteId::from_uuid(uuid::Uuid::nil())),
            Err(DeleteSiteError::NotFound)
        ));

        let protected = stored(&memory, true);
        assert!(matches!(run(protected.id), Err(DeleteSiteError::Protected)));

        let with_users = stored(&memory, false);
        memory
            .protected_users
            .lock()
            .unwrap()
            .insert(with_users.id, 2);
        assert!(matches!(
            run(with_users.id),
            Err(DeleteSiteError::HasProtectedUsers(2))
        ));

        let racing = stored(&memory, false);
        *memory.race_on_delete.lock().unwrap() = true;
        assert!(matches!(
            run(racing.id),
            Err(DeleteSiteError::ProtectionRace)
        ));
        *memory.race_on_delete.lock().unwrap() = false;
        assert!(memory.sites.lock().unwrap().contains_key(&racing.id));

        run(racing.id).unwrap();
        assert!(!memory.sites.lock().unwrap().contains_key(&racing.id));
    }
}
