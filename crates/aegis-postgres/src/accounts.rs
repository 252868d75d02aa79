//! Users and tokens on PostgreSQL.

use std::io::Write as _;
use std::sync::Arc;

use aegis_domain::repo::{AccountRepository, CleanupCounts};
use aegis_domain::token::{
    EmailChangeRequest, RefreshToken, ResetRequest, ResetToken, StoredToken,
};
use aegis_domain::user::{Email, Role, User};
use aegis_domain::webhook::WebhookEvent;
use aegis_domain::{RepoError, SiteId, UserId};
use async_trait::async_trait;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::prelude::*;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::batch::Batcher;
use crate::error::map_diesel_error;
use crate::pool::PgPool;
use crate::schema::sql_types::UserRole;
use crate::schema::{
    auth_tokens, email_change_requests, email_verification_tokens, password_reset_tokens,
    refresh_tokens, users, webhook_deliveries,
};

/// The `user_role` enum of the reference schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = UserRole)]
pub(crate) struct DbRole(Role);

impl ToSql<UserRole, Pg> for DbRole {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(self.0.as_str().as_bytes())?;
        Ok(IsNull::No)
    }
}

impl FromSql<UserRole, Pg> for DbRole {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        match bytes.as_bytes() {
            b"user" => Ok(Self(Role::User)),
            b"admin" => Ok(Self(Role::Admin)),
            other => Err(format!("unknown user_role {:?}", String::from_utf8_lossy(other)).into()),
        }
    }
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub(crate) struct UserRow {
    uuid: Uuid,
    site_uuid: Uuid,
    email: String,
    password_hash: Option<String>,
    is_verified: Option<bool>,
    role: Option<DbRole>,
    created_at: i64,
    updated_at: i64,
    deletion_protected: bool,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self {
            id: UserId::from_uuid(r.uuid),
            site_id: SiteId::from_uuid(r.site_uuid),
            // Written in its normal form (decision 30); older rows were brought to it by the
            // migration's data step, except those it reported.
            email: Email::from_stored(r.email),
            password_hash: r.password_hash,
            is_verified: r.is_verified.unwrap_or(false),
            role: r.role.map_or(Role::User, |r| r.0),
            created_at: r.created_at,
            updated_at: r.updated_at,
            deletion_protected: r.deletion_protected,
        }
    }
}

impl From<&User> for UserRow {
    fn from(u: &User) -> Self {
        Self {
            uuid: u.id.as_uuid(),
            site_uuid: u.site_id.as_uuid(),
            email: u.email.as_str().to_owned(),
            password_hash: u.password_hash.clone(),
            is_verified: Some(u.is_verified),
            role: Some(DbRole(u.role)),
            created_at: u.created_at,
            updated_at: u.updated_at,
            deletion_protected: u.deletion_protected,
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = refresh_tokens, check_for_backend(diesel::pg::Pg))]
struct RefreshRow {
    site_uuid: Uuid,
    user_uuid: Uuid,
    token: String,
    family_id: String,
    expires_at: i64,
    created_at: i64,
    used_at: Option<i64>,
    revoked: Option<bool>,
}

impl From<RefreshRow> for RefreshToken {
    fn from(r: RefreshRow) -> Self {
        Self {
            digest: r.token,
            site_id: SiteId::from_uuid(r.site_uuid),
            user_id: UserId::from_uuid(r.user_uuid),
            family_id: r.family_id,
            expires_at: r.expires_at,
            created_at: r.created_at,
            used_at: r.used_at,
            revoked: r.revoked.unwrap_or(false),
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = email_verification_tokens, check_for_backend(diesel::pg::Pg))]
struct VerificationRow {
    site_uuid: Uuid,
    user_uuid: Uuid,
    token: String,
    expires_at: i64,
    created_at: i64,
}

impl From<VerificationRow> for StoredToken {
    fn from(r: VerificationRow) -> Self {
        Self {
            digest: r.token,
            site_id: SiteId::from_uuid(r.site_uuid),
            user_id: UserId::from_uuid(r.user_uuid),
            expires_at: r.expires_at,
            created_at: r.created_at,
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = password_reset_tokens, check_for_backend(diesel::pg::Pg))]
struct ResetRow {
    site_uuid: Uuid,
    user_uuid: Uuid,
    token: String,
    expires_at: i64,
    created_at: i64,
    used: Option<bool>,
}

impl From<ResetRow> for ResetToken {
    fn from(r: ResetRow) -> Self {
        Self {
            token: StoredToken {
                digest: r.token,
                site_id: SiteId::from_uuid(r.site_uuid),
                user_id: UserId::from_uuid(r.user_uuid),
                expires_at: r.expires_at,
                created_at: r.created_at,
            },
            used: r.used.unwrap_or(false),
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = email_change_requests, check_for_backend(diesel::pg::Pg))]
struct EmailChangeRow {
    site_uuid: Uuid,
    user_uuid: Uuid,
    new_email: String,
    token: String,
    expires_at: i64,
    created_at: i64,
}

impl From<EmailChangeRow> for EmailChangeRequest {
    fn from(r: EmailChangeRow) -> Self {
        Self {
            token: StoredToken {
                digest: r.token,
                site_id: SiteId::from_uuid(r.site_uuid),
                user_id: UserId::from_uuid(r.user_uuid),
                expires_at: r.expires_at,
                created_at: r.created_at,
            },
            new_email: r.new_email,
        }
    }
}

/// How many bearer checks go to the database in one statement at most. A line (one per sub-pool
/// of the pool, so per worker thread at the default sizing) has one such statement under way at
/// a time; the checks arriving meanwhile wait for the next (decision 97).
const BEARER_BATCH: usize = 32;

/// A user and the expiry of the bearer token that named them, by the token's digest.
type BearerBatcher = Batcher<String, (User, i64)>;

/// [`AccountRepository`] on a connection pool.
#[derive(Clone)]
pub struct PgAccountRepository {
    pool: PgPool,
    bearer: Arc<BearerBatcher>,
}

impl PgAccountRepository {
    /// The repository over `pool`; each method takes a connection for itself and returns it.
    pub fn new(pool: PgPool) -> Self {
        let bearer = Batcher::new(pool.shard_count(), BEARER_BATCH, pool.wait_timeout());
        Self {
            pool,
            bearer: Arc::new(bearer),
        }
    }

    /// [`AccountRepository::user_by_auth_token`], with the token's expiry: what the token cache
    /// keeps. One indexed query, which concurrent checks share (decision 97).
    pub async fn user_and_expiry_by_auth_token(
        &self,
        digest: &str,
        now: i64,
    ) -> Result<Option<(User, i64)>, RepoError> {
        let found = self
            .bearer
            .read(digest.to_owned(), |digests| {
                self.users_by_auth_tokens(digests)
            })
            .await?;
        Ok(found.filter(|(_, expires_at)| *expires_at >= now))
    }

    /// The users and expiries of the auth tokens with these digests, expired or not. A digest
    /// checked by several requests of one batch is sent once.
    async fn users_by_auth_tokens(
        &self,
        mut digests: Vec<String>,
    ) -> Result<Vec<(String, (User, i64))>, RepoError> {
        digests.sort_unstable();
        digests.dedup();
        let mut conn = self.pool.get().await?;
        let found = auth_tokens::table
            .inner_join(users::table.on(users::uuid.eq(auth_tokens::user_uuid)))
            .filter(auth_tokens::token.eq_any(&digests))
            .select((
                auth_tokens::token,
                UserRow::as_select(),
                auth_tokens::expires_at,
            ))
            .load::<(String, UserRow, i64)>(&mut conn)
            .await
            .map_err(map_diesel_error)?;
        Ok(found
            .into_iter()
            .map(|(digest, row, expires_at)| (digest, (User::from(row), expires_at)))
            .collect())
    }
}

#[async_trait]
impl AccountRepository for PgAccountRepository {
    async fn find_user(&self, id: UserId) -> Result<Option<User>, RepoError> {
        let mut conn = self.pool.get().await?;
        find_user(&mut conn, id, false).await
    }

    async fn find_user_by_email(
        &self,
        site: SiteId,
        email: &Email,
    ) -> Result<Option<User>, RepoError> {
        let mut conn = self.pool.get().await?;
        find_user_by_email(&mut conn, site, email, false).await
    }

    async fn user_by_auth_token(&self, digest: &str, now: i64) -> Result<Option<User>, RepoError> {
        Ok(self
            .user_and_expiry_by_auth_token(digest, now)
            .await?
            .map(|(user, _)| user))
    }

    async fn find_refresh_token(&self, digest: &str) -> Result<Option<RefreshToken>, RepoError> {
        find_refresh_token(&mut *self.pool.get().await?, digest, false).await
    }

    async fn record_reset_request(&self, request: &ResetRequest) -> Result<(), RepoError> {
        let mut conn = self.pool.get().await?;
        diesel::sql_query(
            "INSERT INTO password_reset_requests (id, site_uuid, email, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind::<diesel::sql_types::Uuid, _>(request.id)
        .bind::<diesel::sql_types::Uuid, _>(request.site_id.as_uuid())
        .bind::<diesel::sql_types::Text, _>(request.email.as_str())
        .bind::<diesel::sql_types::BigInt, _>(request.created_at)
        .execute(&mut conn)
        .await
        .map(drop)
        .map_err(map_diesel_error)
    }

    /// One statement: the oldest unclaimed (or no longer claimed) rows, skipping any another
    /// instance is claiming this instant.
    async fn claim_reset_requests(
        &self,
        limit: i64,
        now: i64,
        until: i64,
    ) -> Result<Vec<ResetRequest>, RepoError> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            id: Uuid,
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            site_uuid: Uuid,
            #[diesel(sql_type = diesel::sql_types::Text)]
            email: String,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            created_at: i64,
        }
        let mut conn = self.pool.get().await?;
        let rows: Vec<Row> = diesel::sql_query(
            "UPDATE password_reset_requests SET claimed_until = $3 WHERE id IN ( \
                 SELECT id FROM password_reset_requests \
                 WHERE claimed_until IS NULL OR claimed_until < $2 \
                 ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
             RETURNING id, site_uuid, email, created_at",
        )
        .bind::<diesel::sql_types::BigInt, _>(limit)
        .bind::<diesel::sql_types::BigInt, _>(now)
        .bind::<diesel::sql_types::BigInt, _>(until)
        .load(&mut conn)
        .await
        .map_err(map_diesel_error)?;
        let mut requests: Vec<ResetRequest> = rows
            .into_iter()
            .map(|r| ResetRequest {
                id: r.id,
                site_id: SiteId::from_uuid(r.site_uuid),
                // Recorded in its normal form by request-password-reset.
                email: Email::from_stored(r.email),
                created_at: r.created_at,
            })
            .collect();
        requests.sort_by_key(|r| r.created_at);
        Ok(requests)
    }

    async fn password_hash_kinds(&self) -> Result<Vec<String>, RepoError> {
        #[derive(QueryableByName)]
        struct Kind {
            #[diesel(sql_type = diesel::sql_types::Text)]
            kind: String,
        }
        // A full scan of users, kept cheap for a million rows: each hash is cut at its `$`s to the
        // part before the salt with plain string functions, and the regular expression only runs
        // on the few distinct prefixes that leaves (MATERIALIZED keeps the planner from pushing
        // it back down onto every row). 0.5 s instead of 10.5 s at 1,000,000 users (decision 95).
        let mut conn = self.pool.get().await?;
        diesel::sql_query(
            "WITH prefixes AS MATERIALIZED ( \
               SELECT DISTINCT CASE WHEN split_part(password_hash, '$', 3) LIKE 'v=%' \
                 THEN concat_ws('$', '', split_part(password_hash, '$', 2), \
                   split_part(password_hash, '$', 3), split_part(password_hash, '$', 4), '') \
                 ELSE concat_ws('$', '', split_part(password_hash, '$', 2), \
                   split_part(password_hash, '$', 3), '') END AS prefix \
               FROM users WHERE password_hash LIKE '$2%' OR password_hash LIKE '$argon2%') \
             SELECT kind FROM (SELECT DISTINCT substring(prefix FROM \
             '^(\\$2[aby]\\$[0-9]+\\$|\\$argon2[a-z]*\\$(?:v=[0-9]+\\$)?m=[0-9]+,t=[0-9]+,p=[0-9]+\\$)') \
             AS kind FROM prefixes) AS kinds WHERE kind IS NOT NULL LIMIT 32",
        )
        .load::<Kind>(&mut conn)
        .await
        .map(|rows| rows.into_iter().map(|r| r.kind).collect())
        .map_err(map_diesel_error)
    }

    async fn find_reset_token(&self, digest: &str) -> Result<Option<ResetToken>, RepoError> {
        let mut conn = self.pool.get().await?;
        password_reset_tokens::table
            .filter(password_reset_tokens::token.eq(digest))
            .select(ResetRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map(|r| r.map(ResetToken::from))
            .map_err(map_diesel_error)
    }

    async fn find_email_change(
        &self,
        digest: &str,
    ) -> Result<Option<EmailChangeRequest>, RepoError> {
        let mut conn = self.pool.get().await?;
        email_change_requests::table
            .filter(email_change_requests::token.eq(digest))
            .select(EmailChangeRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map(|r| r.map(EmailChangeRequest::from))
            .map_err(map_diesel_error)
    }

    async fn list_users(&self, site: SiteId) -> Result<Vec<User>, RepoError> {
        let mut conn = self.pool.get().await?;
        users::table
            .filter(users::site_uuid.eq(site.as_uuid()))
            .order((users::created_at.asc(), users::uuid.asc()))
            .select(UserRow::as_select())
            .load(&mut conn)
            .await
            .map(|rows| rows.into_iter().map(User::from).collect())
            .map_err(map_diesel_error)
    }

    async fn delete_expired_tokens(&self, now: i64) -> Result<CleanupCounts, RepoError> {
        let mut conn = self.pool.get().await?;
        let n = |r: QueryResult<usize>| r.map(|n| n as u64).map_err(map_diesel_error);
        Ok(CleanupCounts {
            auth_tokens: n(delete_expired_auth_tokens(&mut conn, now).await)?,
            refresh_tokens: n(diesel::delete(
                refresh_tokens::table.filter(refresh_tokens::expires_at.lt(now)),
            )
            .execute(&mut conn)
            .await)?,
            email_verification_tokens: n(diesel::delete(
                email_verification_tokens::table
                    .filter(email_verification_tokens::expires_at.lt(now)),
            )
            .execute(&mut conn)
            .await)?,
            password_reset_tokens: n(diesel::delete(
                password_reset_tokens::table.filter(password_reset_tokens::expires_at.lt(now)),
            )
            .execute(&mut conn)
            .await)?,
            email_change_requests: n(diesel::delete(
                email_change_requests::table.filter(email_change_requests::expires_at.lt(now)),
            )
            .execute(&mut conn)
            .await)?,
        })
    }

    async fn email_taken(
        &self,
        site: SiteId,
        email: &Email,
        except: Option<UserId>,
    ) -> Result<bool, RepoError> {
        let mut conn = self.pool.get().await?;
        email_taken(&mut conn, site, email, except).await
    }

    async fn find_verification_token(
        &self,
        digest: &str,
    ) -> Result<Option<StoredToken>, RepoError> {
        let mut conn = self.pool.get().await?;
        email_verification_tokens::table
            .filter(email_verification_tokens::token.eq(digest))
            .select(VerificationRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map(|r| r.map(StoredToken::from))
            .map_err(map_diesel_error)
    }
}

pub(crate) async fn find_user(
    conn: &mut AsyncPgConnection,
    id: UserId,
    lock: bool,
) -> Result<Option<User>, RepoError> {
    let query = users::table.find(id.as_uuid()).select(UserRow::as_select());
    let row = if lock {
        query.for_no_key_update().first(conn).await
    } else {
        query.first(conn).await
    };
    row.optional()
        .map(|r| r.map(User::from))
        .map_err(map_diesel_error)
}

/// Matches the normalised address exactly: Aegis, like the reference, stores addresses normalised.
pub(crate) async fn find_user_by_email(
    conn: &mut AsyncPgConnection,
    site: SiteId,
    email: &Email,
    lock: bool,
) -> Result<Option<User>, RepoError> {
    let query = users::table
        .filter(users::site_uuid.eq(site.as_uuid()))
        .filter(users::email.eq(email.as_str()))
        .select(UserRow::as_select());
    let row = if lock {
        query.for_no_key_update().first(conn).await
    } else {
        query.first(conn).await
    };
    row.optional()
        .map(|r| r.map(User::from))
        .map_err(map_diesel_error)
}

pub(crate) async fn insert_user(
    conn: &mut AsyncPgConnection,
    user: &User,
) -> Result<(), RepoError> {
    diesel::insert_into(users::table)
        .values(UserRow::from(user))
        .execute(conn)
        .await
        .map(drop)
        .map_err(map_diesel_error)
}

/// One statement for the whole batch: rows whose (site, email) is taken are skipped.
pub(crate) async fn insert_users_if_absent(
    conn: &mut AsyncPgConnection,
    batch: &[User],
) -> Result<Vec<bool>, RepoError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<UserRow> = batch.iter().map(UserRow::from).collect();
    let stored: std::collections::HashSet<Uuid> = diesel::insert_into(users::table)
        .values(&rows)
        .on_conflict((users::site_uuid, users::email))
        .do_nothing()
        .returning(users::uuid)
        .get_results::<Uuid>(conn)
        .await
        .map_err(map_diesel_error)?
        .into_iter()
        .collect();
    Ok(batch
        .iter()
        .map(|user| stored.contains(&user.id.as_uuid()))
        .collect())
}

pub(crate) async fn update_user(
    conn: &mut AsyncPgConnection,
    user: &User,
) -> Result<(), RepoError> {
    diesel::update(users::table.find(user.id.as_uuid()))
        .set(UserRow::from(user))
        .execute(conn)
        .await
        .map(drop)
        .map_err(map_diesel_error)
}

pub(crate) async fn find_refresh_token(
    conn: &mut AsyncPgConnection,
    digest: &str,
    lock: bool,
) -> Result<Option<RefreshToken>, RepoError> {
    let query = refresh_tokens::table
        .filter(refresh_tokens::token.eq(digest))
        .select(RefreshRow::as_select());
    let row = if lock {
        query.for_update().first(conn).await
    } else {
        query.first(conn).await
    };
    row.optional()
        .map(|r| r.map(RefreshToken::from))
        .map_err(map_diesel_error)
}

pub(crate) async fn delete_reset_request(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> Result<(), RepoError> {
    diesel::sql_query("DELETE FROM password_reset_requests WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(conn)
        .await
        .map(drop)
        .map_err(map_diesel_error)
}

pub(crate) async fn delete_reset_requests_for(
    conn: &mut AsyncPgConnection,
    site: SiteId,
    email: &Email,
) -> Result<u64, RepoError> {
    diesel::sql_query("DELETE FROM password_reset_requests WHERE site_uuid = $1 AND email = $2")
        .bind::<diesel::sql_types::Uuid, _>(site.as_uuid())
        .bind::<diesel::sql_types::Text, _>(email.as_str())
        .execute(conn)
        .await
        .map(|n| n as u64)
        .map_err(map_diesel_error)
}

/// Compare-and-set on the hash: one statement, so it never writes over a concurrent change.
pub(crate) async fn replace_password_hash(
    conn: &mut AsyncPgConnection,
    user: UserId,
    expected: &str,
    new: &str,
    now: i64,
) -> Result<bool, RepoError> {
    diesel::update(
        users::table
            .find(user.as_uuid())
            .filter(users::password_hash.eq(expected)),
    )
    .set((users::password_hash.eq(new), users::updated_at.eq(now)))
    .execute(conn)
    .await
    .map(|n| n == 1)
    .map_err(map_diesel_error)
}

pub(crate) async fn insert_refresh_token(
    conn: &mut AsyncPgConnection,
    t: &RefreshToken,
) -> Result<(), RepoError> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::site_uuid.eq(t.site_id.as_uuid()),
            refresh_tokens::user_uuid.eq(t.user_id.as_uuid()),
            refresh_tokens::token.eq(&t.digest),
            refresh_tokens::family_id.eq(&t.family_id),
            refresh_tokens::expires_at.eq(t.expires_at),
            refresh_tokens::created_at.eq(t.created_at),
            refresh_tokens::used_at.eq(t.used_at),
            refresh_tokens::revoked.eq(Some(t.revoked)),
        ))
        .execute(conn)
        .await
        .map(drop)
        .map_err(map_diesel_error)
}

/// The atomic claim: one statement, so exactly one of any number of concurrent callers wins.
pub(crate) async fn claim_refresh_token(
    conn: &mut AsyncPgConnection,
    digest: &str,
    now: i64,
) -> Result<bool, RepoError> {
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::token.eq(digest))
            .filter(refresh_tokens::used_at.is_null()),
    )
    .set(refresh_tokens::used_at.eq(Some(now)))
    .execute(conn)
    .await
    .map(|n| n == 1)
    .map_err(map_diesel_error)
}

pub(crate) async fn revoke_refresh_family(
    conn: &mut AsyncPgConnection,
    family_id: &str,
    user: Option<UserId>,
) -> Result<u64, RepoError> {
    let target = refresh_tokens::table.filter(refresh_tokens::family_id.eq(family_id));
    let result = match user {
        Some(user) => {
            diesel::update(target.filter(refresh_tokens::user_uuid.eq(user.as_uuid())))
                .set(refresh_tokens::revoked.eq(Some(true)))
                .execute(conn)
                .await
        }
        None => {
            diesel::update(target)
                .set(refresh_tokens::revoked.eq(Some(true)))
                .execute(conn)
                .await
        }
    };
    result.map(|n| n as u64).map_err(map_diesel_error)
}

pub(crate) async fn enqueue_webhook(
    conn: &mut AsyncPgConnection,
    e: &WebhookEvent,
) -> Result<(), RepoError> {
    diesel::insert_into(webhook_deliveries::table)
        .values((
            webhook_deliveries::event_id.eq(e.event_id),
            webhook_deliveries::site_uuid.eq(e.site_id.as_uuid()),
            webhook_deliveries::event_type.eq(e.event_type),
            webhook_deliveries::payload.eq(&e.payload),
            webhook_deliveries::status.eq("pending"),
            webhook_deliveries::attempts.eq(0),
            webhook_deliveries::next_attempt_at.eq(e.created_at),
            webhook_deliveries::created_at.eq(e.created_at),
            webhook_deliveries::updated_at.eq(e.created_at),
        ))
        .execute(conn)
        .await
        .map(drop)
        .map_err(map_diesel_error)
}

/// Case-insensitive: an address differing only in case is the same address (decision 4).
pub(crate) async fn email_taken(
    conn: &mut AsyncPgConnection,
    site: SiteId,
    email: &Email,
    except: Option<UserId>,
) -> Result<bool, RepoError> {
    let mut query = users::table
        .filter(users::site_uuid.eq(site.as_uuid()))
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("lower(email) = ")
                .bind::<diesel::sql_types::Text, _>(email.as_str()),
        )
        .into_boxed();
    if let Some(user) = except {
        query = query.filter(users::uuid.ne(user.as_uuid()));
    }
    diesel::select(diesel::dsl::exists(query.select(users::uuid)))
        .get_result(conn)
        .await
        .map_err(map_diesel_error)
}

pub(crate) async fn claim_reset_token(
    conn: &mut AsyncPgConnection,
    digest: &str,
) -> Result<bool, RepoError> {
    diesel::update(
        password_reset_tokens::table
            .filter(password_reset_tokens::token.eq(digest))
            .filter(password_reset_tokens::used.is_distinct_from(Some(true))),
    )
    .set(password_reset_tokens::used.eq(Some(true)))
    .execute(conn)
    .await
    .map(|n| n == 1)
    .map_err(map_diesel_error)
}

pub(crate) async fn insert_email_change(
    conn: &mut AsyncPgConnection,
    r: &EmailChangeRequest,
) -> Result<(), RepoError> {
    diesel::insert_into(email_change_requests::table)
        .values((
            email_change_requests::site_uuid.eq(r.token.site_id.as_uuid()),
            email_change_requests::user_uuid.eq(r.token.user_id.as_uuid()),
            email_change_requests::new_email.eq(&r.new_email),
            email_change_requests::token.eq(&r.token.digest),
            email_change_requests::expires_at.eq(r.token.expires_at),
            email_change_requests::created_at.eq(r.token.created_at),
        ))
        .execute(conn)
        .await
        .map(drop)
        .map_err(map_diesel_error)
}

pub(crate) async fn count_admins(
    conn: &mut AsyncPgConnection,
    site: SiteId,
) -> Result<i64, RepoError> {
    users::table
        .filter(users::site_uuid.eq(site.as_uuid()))
        .filter(users::role.eq(Some(DbRole(Role::Admin))))
        .count()
        .get_result(conn)
        .await
        .map_err(map_diesel_error)
}

/// The guards of `AccountService::delete_user` (site and user not protected, not the last admin)
/// are repeated inside the statement, so a protection or an admin change that lands after the
/// caller's checks still stops the delete.
pub(crate) async fn delete_user_guarded(
    conn: &mut AsyncPgConnection,
    user: UserId,
) -> Result<bool, RepoError> {
    diesel::sql_query(
        "DELETE FROM users u WHERE u.uuid = $1 AND NOT u.deletion_protected \
         AND NOT EXISTS (SELECT 1 FROM sites s WHERE s.uuid = u.site_uuid AND s.deletion_protected) \
         AND (u.role IS DISTINCT FROM 'admin'::user_role OR (SELECT count(*) FROM users a \
              WHERE a.site_uuid = u.site_uuid AND a.role = 'admin'::user_role) > 1)",
    )
    .bind::<diesel::sql_types::Uuid, _>(user.as_uuid())
    .execute(conn)
    .await
    .map(|n| n == 1)
    .map_err(map_diesel_error)
}

/// Every token table stores the same columns for a token (site, user, digest, expiry, creation):
/// one insert for all of them. Extra columns keep their defaults (`used = false` for resets).
macro_rules! insert_token {
    ($name:ident, $table:ident) => {
        pub(crate) async fn $name(
            conn: &mut AsyncPgConnection,
            t: &StoredToken,
        ) -> Result<(), RepoError> {
            diesel::insert_into($table::table)
                .values((
                    $table::site_uuid.eq(t.site_id.as_uuid()),
                    $table::user_uuid.eq(t.user_id.as_uuid()),
                    $table::token.eq(&t.digest),
                    $table::expires_at.eq(t.expires_at),
                    $table::created_at.eq(t.created_at),
                ))
                .execute(conn)
                .await
                .map(drop)
                .map_err(map_diesel_error)
        }
    };
}

/// Deletes one token by digest; whether this call removed it (exactly one caller can).
macro_rules! delete_token {
    ($name:ident, $table:ident) => {
        pub(crate) async fn $name(
            conn: &mut AsyncPgConnection,
            digest: &str,
        ) -> Result<bool, RepoError> {
            diesel::delete($table::table.filter($table::token.eq(digest)))
                .execute(conn)
                .await
                .map(|n| n > 0)
                .map_err(map_diesel_error)
        }
    };
}

/// Deletes every token of one user from a token table.
macro_rules! delete_tokens_of_user {
    ($name:ident, $table:ident) => {
        pub(crate) async fn $name(
            conn: &mut AsyncPgConnection,
            user: UserId,
        ) -> Result<u64, RepoError> {
            diesel::delete($table::table.filter($table::user_uuid.eq(user.as_uuid())))
                .execute(conn)
                .await
                .map(|n| n as u64)
                .map_err(map_diesel_error)
        }
    };
}

insert_token!(insert_auth_token, auth_tokens);
insert_token!(insert_verification_token, email_verification_tokens);
insert_token!(insert_reset_token, password_reset_tokens);
delete_token!(delete_auth_token, auth_tokens);
delete_token!(take_verification_token, email_verification_tokens);
delete_token!(take_email_change, email_change_requests);
delete_tokens_of_user!(delete_auth_tokens_of_user, auth_tokens);
delete_tokens_of_user!(delete_refresh_tokens_of_user, refresh_tokens);
delete_tokens_of_user!(
    delete_verification_tokens_of_user,
    email_verification_tokens
);
delete_tokens_of_user!(delete_reset_tokens_of_user, password_reset_tokens);
delete_tokens_of_user!(delete_email_changes_of_user, email_change_requests);

/// Deletes the expired auth tokens in a transaction marked `aegis.token_cleanup`, so the
/// notification trigger skips them (no cache answers for an expired token, decision 88).
async fn delete_expired_auth_tokens(conn: &mut AsyncPgConnection, now: i64) -> QueryResult<usize> {
    use diesel_async::AsyncConnection as _;
    conn.transaction(async |conn| {
        diesel::sql_query("SELECT set_config('aegis.token_cleanup', 'on', true)")
            .execute(conn)
            .await?;
        diesel::delete(auth_tokens::table.filter(auth_tokens::expires_at.lt(now)))
            .execute(conn)
            .await
    })
    .await
}
