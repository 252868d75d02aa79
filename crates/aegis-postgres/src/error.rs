use aegis_domain::RepoError;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::PoolError;

/// Translates a diesel error at the adapter boundary.
pub(crate) fn map_diesel_error(err: DieselError) -> RepoError {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            RepoError::Conflict(info.constraint_name().unwrap_or("unique").to_owned())
        }
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
            RepoError::Unavailable(info.message().to_owned())
        }
        other => RepoError::Other(other.to_string()),
    }
}

/// Translates a failure to get a pooled connection: the database is unreachable or saturated.
pub fn map_pool_error(err: PoolError) -> RepoError {
    RepoError::Unavailable(err.to_string())
}
