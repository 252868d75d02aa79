use aegis_domain::RepoError;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Messages with which the server ends or refuses a session because it is stopping, restarting or
/// not ready (SQLSTATE class 57P, which diesel does not expose): an outage, not a failure.
const SERVER_GOING_AWAY: [&str; 3] = [
    "terminating connection",
    "the database system is",
    "canceling statement due to conflict with recovery",
];

/// Messages with which the server ends one transaction to let another through (a deadlock, which
/// PostgreSQL breaks after `deadlock_timeout`): the request may simply be tried again.
const TRY_AGAIN: [&str; 1] = ["deadlock detected"];

/// Translates a diesel error at the adapter boundary. The diesel error stays the source of the
/// `RepoError`, so nothing of the driver's message is lost.
pub(crate) fn map_diesel_error(err: DieselError) -> RepoError {
    let unavailable = match &err {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            return RepoError::Conflict(info.constraint_name().unwrap_or("unique").to_owned());
        }
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => true,
        // Nothing was written; the answer is the 503 with `Retry-After`, not a 500.
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(_, info) => SERVER_GOING_AWAY
            .iter()
            .chain(TRY_AGAIN.iter())
            .any(|m| info.message().starts_with(m)),
        _ => false,
    };
    if unavailable {
        RepoError::Unavailable(Box::new(err))
    } else {
        RepoError::Other(Box::new(err))
    }
}
