//! Sites on PostgreSQL.

use aegis_domain::{RepoError, Site, SiteId, SiteRepository};
use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::error::map_diesel_error;
use crate::pool::PgPool;
use crate::schema::{sites, users};

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = sites, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub(crate) struct SiteRow {
    uuid: Uuid,
    name: String,
    domain: String,
    frontend_url: String,
    verification_redirect_url: Option<String>,
    email_from: String,
    email_from_name: String,
    created_at: i64,
    updated_at: i64,
    allow_self_registration: bool,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    tenant_api_key: String,
    mailgun_domain: Option<String>,
    mailgun_api_key: Option<String>,
    deletion_protected: bool,
}

impl From<SiteRow> for Site {
    fn from(r: SiteRow) -> Self {
        Self {
            id: SiteId::from_uuid(r.uuid),
            name: r.name,
            domain: r.domain,
            frontend_url: r.frontend_url,
            verification_redirect_url: r.verification_redirect_url,
            email_from: r.email_from,
            email_from_name: r.email_from_name,
            created_at: r.created_at,
            updated_at: r.updated_at,
            allow_self_registration: r.allow_self_registration,
            webhook_url: r.webhook_url,
            webhook_secret: r.webhook_secret,
            tenant_api_key: r.tenant_api_key,
            mailgun_domain: r.mailgun_domain,
            mailgun_api_key: r.mailgun_api_key,
            deletion_protected: r.deletion_protected,
        }
    }
}

impl From<&Site> for SiteRow {
    fn from(s: &Site) -> Self {
        Self {
            uuid: s.id.as_uuid(),
            name: s.name.clone(),
            domain: s.domain.clone(),
            frontend_url: s.frontend_url.clone(),
            verification_redirect_url: s.verification_redirect_url.clone(),
            email_from: s.email_from.clone(),
            email_from_name: s.email_from_name.clone(),
            created_at: s.created_at,
            updated_at: s.updated_at,
            allow_self_registration: s.allow_self_registration,
            webhook_url: s.webhook_url.clone(),
            webhook_secret: s.webhook_secret.clone(),
            tenant_api_key: s.tenant_api_key.clone(),
            mailgun_domain: s.mailgun_domain.clone(),
            mailgun_api_key: s.mailgun_api_key.clone(),
            deletion_protected: s.deletion_protected,
        }
    }
}

/// [`SiteRepository`] on a connection pool.
#[derive(Clone)]
pub struct PgSiteRepository {
    pool: PgPool,
}

impl PgSiteRepository {
    /// The repository over `pool`; each method takes a connection for itself and returns it.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl SiteRepository for PgSiteRepository {
    async fn insert(&self, site: &Site) -> Result<(), RepoError> {
        let mut conn = self.pool.get().await?;
        diesel::insert_into(sites::table)
            .values(SiteRow::from(site))
            .execute(&mut conn)
            .await
            .map(drop)
            .map_err(map_diesel_error)
    }

    async fn list(&self) -> Result<Vec<Site>, RepoError> {
        let mut conn = self.pool.get().await?;
        let rows: Vec<SiteRow> = sites::table
            .select(SiteRow::as_select())
            .order((sites::created_at.desc(), sites::uuid.desc()))
            .load(&mut conn)
            .await
            .map_err(map_diesel_error)?;
        Ok(rows.into_iter().map(Site::from).collect())
    }

    async fn find(&self, id: SiteId) -> Result<Option<Site>, RepoError> {
        let mut conn = self.pool.get().await?;
        find_site(&mut conn, id, Lock::None).await
    }

    async fn find_by_domain(&self, domain: &str) -> Result<Option<Site>, RepoError> {
        let mut conn = self.pool.get().await?;
        sites::table
            .filter(sites::domain.eq(domain))
            .select(SiteRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map(|row| row.map(Site::from))
            .map_err(map_diesel_error)
    }
}

/// How a read locks the site row.
#[derive(Clone, Copy)]
pub(crate) enum Lock {
    None,
    /// `FOR KEY SHARE`: only excludes a delete (and key changes), as a user's foreign key does.
    Hold,
    /// `FOR NO KEY UPDATE`: excludes other writers of the row, but not inserts of its users (whose
    /// foreign-key checks take `KEY SHARE`).
    Update,
    /// `FOR UPDATE`: also excludes new users of the site until the transaction ends.
    Delete,
}

pub(crate) async fn find_site(
    conn: &mut AsyncPgConnection,
    id: SiteId,
    lock: Lock,
) -> Result<Option<Site>, RepoError> {
    let query = sites::table.find(id.as_uuid()).select(SiteRow::as_select());
    let row = match lock {
        Lock::None => query.first(conn).await,
        Lock::Hold => query.for_key_share().first(conn).await,
        Lock::Update => query.for_no_key_update().first(conn).await,
        Lock::Delete => query.for_update().first(conn).await,
    };
    row.optional()
        .map(|row| row.map(Site::from))
        .map_err(map_diesel_error)
}

pub(crate) async fn update_site(
    conn: &mut AsyncPgConnection,
    site: &Site,
) -> Result<(), RepoError> {
    diesel::update(sites::table.find(site.id.as_uuid()))
        .set(SiteRow::from(site))
        .execute(conn)
        .await
        .map(drop)
        .map_err(map_diesel_error)
}

pub(crate) async fn count_protected_users(
    conn: &mut AsyncPgConnection,
    id: SiteId,
) -> Result<i64, RepoError> {
    users::table
        .filter(users::site_uuid.eq(id.as_uuid()))
        .filter(users::deletion_protected.eq(true))
        .count()
        .get_result(conn)
        .await
        .map_err(map_diesel_error)
}

/// The protection guard is part of the statement itself, so a protection that appears after the
/// caller's checks still stops the delete.
pub(crate) async fn delete_unprotected(
    conn: &mut AsyncPgConnection,
    id: SiteId,
) -> Result<bool, RepoError> {
    let protected_user = users::table
        .filter(users::site_uuid.eq(id.as_uuid()))
        .filter(users::deletion_protected.eq(true));
    diesel::delete(
        sites::table
            .find(id.as_uuid())
            .filter(sites::deletion_protected.eq(false))
            .filter(diesel::dsl::not(diesel::dsl::exists(protected_user))),
    )
    .execute(conn)
    .await
    .map(|n| n == 1)
    .map_err(map_diesel_error)
}
