//! A login's writes in one statement (decision 99).
//!
//! [`UnitOfWork::open_session`](aegis_domain::UnitOfWork::open_session) by its default is a
//! transaction of five round trips: `BEGIN`, lock the user, insert the auth token, insert the
//! refresh token, `COMMIT`. Here it is one statement, which PostgreSQL runs as a transaction of its
//! own:
//!
//! ```sql
//! WITH u AS (SELECT uuid, coalesce(is_verified, false) AS verified FROM users
//!            WHERE uuid = $user AND password_hash = $checked_hash FOR NO KEY UPDATE),
//!      a AS (INSERT INTO auth_tokens (...) SELECT ... FROM u WHERE verified),
//!      r AS (INSERT INTO refresh_tokens (...) SELECT ... FROM u WHERE verified AND $has_refresh)
//! SELECT verified FROM u
//! ```
//!
//! The lock is the one the transaction took. A password change, reset or deletion that holds the
//! user row when the statement arrives makes it wait; PostgreSQL then checks the row as that change
//! left it, so a changed hash or a deleted user matches nothing and nothing is inserted. One that
//! comes after finds these tokens committed and revokes them with the rest.
//!
//! The statement only inserts, so it fires none of the triggers that evict cached bearer checks,
//! and it has no barrier to wait for. It is prepared once per connection like diesel's own queries
//! (a `sql_query` would be parsed and planned at every login).

use aegis_domain::RepoError;
use aegis_domain::repo::{NewSession, SessionOpened};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Untyped};
use diesel::{OptionalExtension as _, QueryResult, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::error::map_diesel_error;

/// Runs the statement above for `session`, which must carry no rehash (an update of the user
/// needs the transaction's barrier).
pub(crate) async fn open_session(
    conn: &mut AsyncPgConnection,
    session: &NewSession<'_>,
) -> Result<SessionOpened, RepoError> {
    debug_assert!(session.rehash.is_none());
    let refresh = session.refresh;
    let query = OpenSession {
        user: session.user.as_uuid(),
        checked_hash: session.checked_hash,
        auth_site: session.auth.site_id.as_uuid(),
        auth_token: &session.auth.digest,
        auth_expires_at: session.auth.expires_at,
        auth_created_at: session.auth.created_at,
        has_refresh: refresh.is_some(),
        refresh_site: refresh.map(|r| r.site_id.as_uuid()),
        refresh_token: refresh.map(|r| r.digest.as_str()),
        refresh_family: refresh.map(|r| r.family_id.as_str()),
        refresh_expires_at: refresh.map(|r| r.expires_at),
        refresh_created_at: refresh.map(|r| r.created_at),
        refresh_used_at: refresh.and_then(|r| r.used_at),
        refresh_revoked: refresh.map(|r| r.revoked),
    };
    let row: Option<Opened> = query
        .get_result(conn)
        .await
        .optional()
        .map_err(map_diesel_error)?;
    Ok(match row {
        None => SessionOpened::Stale,
        Some(row) if !row.verified => SessionOpened::Unverified,
        Some(_) => SessionOpened::Opened,
    })
}

#[derive(QueryableByName)]
struct Opened {
    #[diesel(sql_type = Bool)]
    verified: bool,
}

/// The statement's binds, in order of appearance.
struct OpenSession<'a> {
    user: Uuid,
    checked_hash: &'a str,
    auth_site: Uuid,
    auth_token: &'a str,
    auth_expires_at: i64,
    auth_created_at: i64,
    has_refresh: bool,
    refresh_site: Option<Uuid>,
    refresh_token: Option<&'a str>,
    refresh_family: Option<&'a str>,
    refresh_expires_at: Option<i64>,
    refresh_created_at: Option<i64>,
    refresh_used_at: Option<i64>,
    refresh_revoked: Option<bool>,
}

/// The statement's identity for diesel's cache of prepared statements: its text never varies.
struct OpenSessionStatement;

impl QueryId for OpenSession<'_> {
    type QueryId = OpenSessionStatement;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for OpenSession<'_> {
    type SqlType = Untyped;
}

impl QueryFragment<Pg> for OpenSession<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        type Id = diesel::sql_types::Uuid;
        out.push_sql(
            "WITH u AS (SELECT uuid, coalesce(is_verified, false) AS verified FROM users \
             WHERE uuid = ",
        );
        out.push_bind_param::<Id, _>(&self.user)?;
        out.push_sql(" AND password_hash = ");
        out.push_bind_param::<Text, _>(&self.checked_hash)?;
        out.push_sql(
            " FOR NO KEY UPDATE), \
             a AS (INSERT INTO auth_tokens (site_uuid, user_uuid, token, expires_at, created_at) \
             SELECT ",
        );
        out.push_bind_param::<Id, _>(&self.auth_site)?;
        out.push_sql(", uuid, ");
        out.push_bind_param::<Text, _>(&self.auth_token)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.auth_expires_at)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.auth_created_at)?;
        out.push_sql(
            " FROM u WHERE verified), \
             r AS (INSERT INTO refresh_tokens (site_uuid, user_uuid, token, family_id, \
             expires_at, created_at, used_at, revoked) SELECT ",
        );
        out.push_bind_param::<Nullable<Id>, _>(&self.refresh_site)?;
        out.push_sql(", uuid, ");
        out.push_bind_param::<Nullable<Text>, _>(&self.refresh_token)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&self.refresh_family)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.refresh_expires_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.refresh_created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.refresh_used_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Bool>, _>(&self.refresh_revoked)?;
        out.push_sql(" FROM u WHERE verified AND ");
        out.push_bind_param::<Bool, _>(&self.has_refresh)?;
        out.push_sql(") SELECT verified FROM u");
        Ok(())
    }
}
