//! Storage ports. One port method is one atomic operation; a use case spanning several writes runs
//! them through a [`UnitOfWork`] transaction.

use async_trait::async_trait;

use crate::ids::SiteId;
use crate::site::Site;

/// What went wrong in storage, as the domain needs to know it.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// A uniqueness constraint refused the write; carries the constraint name.
    #[error("unique constraint violated: {0}")]
    Conflict(String),
    /// The database could not be reached or did not answer in time.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Any other storage failure.
    #[error("storage error: {0}")]
    Other(String),
}

/// Sites, outside a transaction.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SiteRepository: Send + Sync {
    /// Stores a new site. A taken domain is [`RepoError::Conflict`].
    async fn insert(&self, site: &Site) -> Result<(), RepoError>;
    /// Every site, newest first (`created_at` descending).
    async fn list(&self) -> Result<Vec<Site>, RepoError>;
    /// The site with this id.
    async fn find(&self, id: SiteId) -> Result<Option<Site>, RepoError>;
    /// The site with exactly this (normalised) domain.
    async fn find_by_domain(&self, domain: &str) -> Result<Option<Site>, RepoError>;
}

/// Starts transactions.
#[async_trait]
pub trait UnitOfWork: Send + Sync {
    /// Begins a transaction. Dropping the returned object without calling
    /// [`Transaction::commit`] rolls it back.
    async fn begin(&self) -> Result<Box<dyn Transaction>, RepoError>;
}

/// An open transaction exposing the write ports.
#[async_trait]
pub trait Transaction: Send {
    /// Site operations inside this transaction.
    fn sites(&mut self) -> &mut dyn SiteTxRepository;
    /// Makes every write of this transaction durable at once.
    async fn commit(self: Box<Self>) -> Result<(), RepoError>;
}

/// Site operations that take part in a transaction.
#[async_trait]
pub trait SiteTxRepository: Send {
    /// Reads the site and locks it against concurrent updates and deletes until the transaction
    /// ends, without blocking work on its users.
    async fn lock(&mut self, id: SiteId) -> Result<Option<Site>, RepoError>;
    /// Reads the site and locks it exclusively, as a delete needs: until the transaction ends, no
    /// user can be added to it.
    async fn lock_for_delete(&mut self, id: SiteId) -> Result<Option<Site>, RepoError>;
    /// Writes every field of the site. A taken domain is [`RepoError::Conflict`].
    async fn update(&mut self, site: &Site) -> Result<(), RepoError>;
    /// How many users of the site are deletion-protected.
    async fn count_protected_users(&mut self, id: SiteId) -> Result<i64, RepoError>;
    /// Deletes the site (cascading to its users, tokens and deliveries) unless it or one of its
    /// users is deletion-protected at the time of the statement. Returns whether it was deleted.
    async fn delete_unprotected(&mut self, id: SiteId) -> Result<bool, RepoError>;
}
