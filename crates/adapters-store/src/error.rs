//! Error translation at the seam: diesel and r2d2 errors become domain [`StoreError`]s here and
//! nowhere else.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use domain::ports::StoreError;

/// Why the store could not be set up or its schema migrated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// The database URL names no database this store can use. Fix the configuration.
    #[error(
        "invalid database URL {url:?}: {reason} (use postgres://user@host:port/database, \
         postgresql://..., or sqlite://path/to/file.db)"
    )]
    InvalidUrl { url: String, reason: String },
    /// The directory that should hold the SQLite file does not exist and cannot be created, or
    /// is not a directory. Fix the path or the permissions.
    #[error("cannot create the directory {path} for the SQLite database: {reason}")]
    DataDirectory { path: String, reason: String },
    /// A pool option is out of range. Fix the configuration.
    #[error("invalid database pool option `{option}`: {reason}")]
    InvalidOption {
        option: crate::PoolOption,
        reason: String,
    },
    /// The store's writer threads could not be started (the system refused a thread).
    #[error("cannot start a store writer thread: {0}")]
    WriterThread(String),
    /// The SQLite file cannot be opened for writing (permission denied, its directory is a
    /// file, ...). Fix the path or the permissions.
    #[error("cannot open the SQLite file {path} for writing: {reason}")]
    DatabaseFile { path: String, reason: String },
    /// The database server answered, and refused for good: the database or the role does not
    /// exist, or the password is wrong. Retrying cannot help; fix the URL or the server.
    #[error("{0}")]
    Refused(String),
    /// The database could not be reached. Worth retrying.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A migration (or reading the migration history) failed.
    #[error("database migration failed: {0}")]
    Migration(String),
}

/// No connection could be checked out of the pool in time.
pub(crate) fn pool_unavailable(error: &diesel::r2d2::PoolError) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// A database error: a lost connection, or (SQLite) a write lock still held by another writer
/// after the busy timeout, means the database is unavailable; anything else is a failure of the
/// statement itself.
pub(crate) fn from_diesel(error: &DieselError) -> StoreError {
    match error {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            info,
        ) => StoreError::Unavailable(info.message().to_owned()),
        // SQLITE_BUSY and SQLITE_LOCKED: diesel gives them no kind of their own; these are
        // SQLite's fixed messages for them (sqlite3_errstr).
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
            if is_sqlite_busy(info.message()) =>
        {
            StoreError::Unavailable(info.message().to_owned())
        }
        other => StoreError::Failed(other.to_string()),
    }
}

fn is_sqlite_busy(message: &str) -> bool {
    message.starts_with("database is locked") || message.starts_with("database table is locked")
}

/// The blocking task running the database work panicked or was cancelled.
pub(crate) fn from_join(error: &tokio::task::JoinError) -> StoreError {
    StoreError::Failed(format!("storage task did not complete: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(kind: DatabaseErrorKind, message: &'static str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn a_busy_sqlite_database_is_unavailable_and_a_broken_statement_failed() {
        let busy = database_error(DatabaseErrorKind::Unknown, "database is locked");
        let syntax = database_error(DatabaseErrorKind::Unknown, "near \"SELEC\": syntax error");
        let check = database_error(DatabaseErrorKind::CheckViolation, "CHECK constraint failed");

        assert!(matches!(from_diesel(&busy), StoreError::Unavailable(_)));
        assert!(matches!(from_diesel(&syntax), StoreError::Failed(_)));
        assert!(matches!(from_diesel(&check), StoreError::Failed(_)));
    }
}
