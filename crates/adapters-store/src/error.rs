//! Error translation at the seam: diesel and r2d2 errors become domain [`StoreError`]s here and
//! nowhere else.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use domain::ports::StoreError;

/// Why the store could not be set up or its schema migrated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// The pool options are inconsistent. Fix the configuration.
    #[error("invalid database pool options: {0}")]
    InvalidOptions(String),
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

/// A database error: a lost connection means the database is unavailable; anything else is a
/// failure of the statement itself.
pub(crate) fn from_diesel(error: &DieselError) -> StoreError {
    match error {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            info,
        ) => StoreError::Unavailable(info.message().to_owned()),
        other => StoreError::Failed(other.to_string()),
    }
}

/// The blocking task running the database work panicked or was cancelled.
pub(crate) fn from_join(error: &tokio::task::JoinError) -> StoreError {
    StoreError::Failed(format!("storage task did not complete: {error}"))
}
