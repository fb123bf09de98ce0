//! One connection type for both backends, the pool's connection manager, and the per-connection
//! session settings (PostgreSQL `default_transaction_isolation`, `statement_timeout`,
//! `lock_timeout`; SQLite durability and locking pragmas).
//!
//! [`AnyConnection`] is diesel's `MultiConnection`: backend-neutral statements (`SELECT 1`) run on
//! it directly. What its generated backend cannot express (`ON CONFLICT`, which every write of
//! this store uses, and the `TIMESTAMPTZ`/`JSONB` column types) runs on the connection inside it,
//! through [`on_backend!`]: the statement is written once and compiled for each backend.

use std::fmt;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{CustomizeConnection, HandleError, ManageConnection, R2D2Connection};
use diesel::sql_types::Text;

use crate::Database;

/// A connection to either backend.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// Evaluates `$body` with `$inner` bound to the backend's own connection inside an
/// [`AnyConnection`]: the body is written once and type-checked for each backend.
macro_rules! on_backend {
    ($conn:expr, $inner:ident => $body:expr) => {
        match $conn {
            $crate::connection::AnyConnection::Postgresql($inner) => $body,
            $crate::connection::AnyConnection::Sqlite($inner) => $body,
        }
    };
}
pub(crate) use on_backend;

/// Opens connections of the backend the URL names.
///
/// Not diesel's `ConnectionManager<AnyConnection>`: the derived `AnyConnection::establish` tries
/// each backend in turn, so an unreachable PostgreSQL server would be reported as SQLite failing
/// to open a file named like the URL. The scheme decides here, and the error is the backend's.
pub(crate) struct Manager {
    database: Database,
}

impl Manager {
    pub(crate) fn new(database: Database) -> Self {
        Self { database }
    }
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("database", &self.database.to_string())
            .finish()
    }
}

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, diesel::r2d2::Error> {
        match &self.database {
            Database::Postgres { url } => diesel::PgConnection::establish(url)
                .map(AnyConnection::Postgresql)
                .map_err(diesel::r2d2::Error::ConnectionError),
            Database::Sqlite { path } => sqlite_path(path)
                .and_then(|path| diesel::SqliteConnection::establish(&path))
                .map(AnyConnection::Sqlite)
                .map_err(diesel::r2d2::Error::ConnectionError),
        }
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), diesel::r2d2::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// The file name as SQLite's `open` takes it. A plain path, not a `file:` URI, so characters
/// such as `?` or `%` in it mean nothing special.
fn sqlite_path(path: &std::path::Path) -> ConnectionResult<String> {
    let text = path.to_str().ok_or_else(|| {
        ConnectionError::BadConnection(format!("SQLite path {} is not UTF-8", path.display()))
    })?;
    if text.starts_with("file:") {
        // SQLite would read it as a URI; `./file:x` is the same file, read as a path.
        Ok(PathBuf::from(".").join(path).to_string_lossy().into_owned())
    } else {
        Ok(text.to_owned())
    }
}

/// Settings applied to every new pooled connection.
#[derive(Debug)]
pub(crate) struct SessionSettings {
    /// PostgreSQL `statement_timeout`.
    pub statement_timeout_ms: Option<u64>,
    /// PostgreSQL `lock_timeout`.
    pub lock_timeout_ms: Option<u64>,
    /// SQLite `busy_timeout`: how long a statement waits for another connection's lock.
    pub busy_timeout: Duration,
}

/// SQLite pragmas for a webhook that acknowledges an event only once it is durable:
///
/// - `journal_mode = WAL`: readers (health checks) never block the writer, and the writer
///   never blocks readers. Kept in the file; set on every connection so a file created by
///   something else is switched too.
/// - `synchronous = FULL`: each commit is fsynced before it returns, so a 200 answered to SNS
///   survives a power cut. (`NORMAL`, common with WAL, may lose the last commits on power loss:
///   SNS would not resend them, having had its 200.)
/// - `busy_timeout`: a statement that finds the database locked by another connection waits
///   (up to the pool's `connection_timeout`) instead of failing at once with `SQLITE_BUSY`.
///   Writes also begin with `BEGIN IMMEDIATE`, so writers queue for the lock at the start of the
///   transaction, where waiting is safe, never half-way through it.
/// - `foreign_keys = ON`: enforce foreign keys should a migration add any (off by default in
///   SQLite, per connection).
fn sqlite_pragmas(busy_timeout: Duration) -> String {
    format!(
        "PRAGMA busy_timeout = {}; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        busy_timeout.as_millis()
    )
}

#[derive(QueryableByName)]
struct JournalMode {
    #[diesel(sql_type = Text)]
    journal_mode: String,
}

/// Sets `journal_mode = WAL` on `conn`, which SQLite keeps in the file.
fn set_wal(conn: &mut diesel::SqliteConnection) -> Result<(), diesel::r2d2::Error> {
    let mode = diesel::sql_query("PRAGMA journal_mode = WAL")
        .get_result::<JournalMode>(conn)
        .map_err(diesel::r2d2::Error::QueryError)?
        .journal_mode;
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(diesel::r2d2::Error::ConnectionError(
            ConnectionError::BadConnection(format!(
                "SQLite could not switch to write-ahead logging (journal_mode is {mode}); is \
                 the file on a network file system?"
            )),
        ))
    }
}

/// Switches the SQLite file at `path` to write-ahead logging once, before any pooled
/// connection exists. Switching needs the file to itself; done by the pool's connections as
/// they open, it could meet the migrations' write lock and fail with "database is locked" (and
/// be retried), so the first start of a new file logged a spurious warning. Once the file is in
/// WAL mode, the pooled connections' own `journal_mode = WAL` is a no-op.
///
/// # Errors
/// What SQLite said, when the file cannot be opened or switched.
pub(crate) fn prepare_sqlite_file(
    path: &std::path::Path,
    busy_timeout: Duration,
) -> Result<(), String> {
    let path = sqlite_path(path).map_err(|e| e.to_string())?;
    let mut conn = diesel::SqliteConnection::establish(&path).map_err(|e| e.to_string())?;
    // Another process (or store) may have the file open: wait for it like every connection does.
    conn.batch_execute(&sqlite_pragmas(busy_timeout))
        .map_err(|e| e.to_string())?;
    set_wal(&mut conn).map_err(|e| e.to_string())
}

impl CustomizeConnection<AnyConnection, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), diesel::r2d2::Error> {
        match conn {
            AnyConnection::Postgresql(conn) => {
                // The suppression policy's statements rely on READ COMMITTED (each statement
                // sees what was committed before it started, and a function's statements
                // what was committed before each of them), also those that run on their own,
                // whatever the database's or role's default (see `pg_policy`).
                let mut settings =
                    String::from("SET default_transaction_isolation = 'read committed';");
                for (name, ms) in [
                    ("statement_timeout", self.statement_timeout_ms),
                    ("lock_timeout", self.lock_timeout_ms),
                ] {
                    if let Some(ms) = ms {
                        let _ = write!(settings, "SET {name} = {ms};");
                    }
                }
                conn.batch_execute(&settings)
                    .map_err(diesel::r2d2::Error::QueryError)?;
            }
            AnyConnection::Sqlite(conn) => {
                conn.batch_execute(&sqlite_pragmas(self.busy_timeout))
                    .map_err(diesel::r2d2::Error::QueryError)?;
                set_wal(conn)?;
            }
        }
        Ok(())
    }
}

/// Reports the pool's background connection failures through `tracing` instead of `log`.
#[derive(Debug)]
pub(crate) struct TracingErrorHandler;

impl HandleError<diesel::r2d2::Error> for TracingErrorHandler {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        tracing::warn!(error = %error, "database connection failed");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_never_read_as_uris() {
        assert_eq!(
            sqlite_path(std::path::Path::new("data/x.db")).unwrap(),
            "data/x.db"
        );
        assert_eq!(
            sqlite_path(std::path::Path::new("file:x.db")).unwrap(),
            "./file:x.db"
        );
    }

    #[derive(Debug, QueryableByName, PartialEq, Eq)]
    struct Pragmas {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        synchronous: i32,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        busy_timeout: i32,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        foreign_keys: i32,
        #[diesel(sql_type = Text)]
        journal_mode: String,
    }

    #[test]
    fn every_pooled_sqlite_connection_commits_durably_and_waits_for_locks() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/x.db", dir.path().display());
        let store = crate::Store::connect(
            &url,
            crate::PoolOptions {
                max_size: 2,
                min_idle: Some(2),
                connection_timeout: Duration::from_millis(1500),
                statement_timeout: None,
                ..crate::PoolOptions::default()
            },
        )
        .unwrap();

        let mut first = store.conn().unwrap();
        let mut second = store.conn().unwrap();
        for conn in [&mut first, &mut second] {
            let AnyConnection::Sqlite(conn) = &mut **conn else {
                panic!("an SQLite URL gave another backend");
            };
            let pragmas: Pragmas = diesel::sql_query(
                "SELECT (SELECT synchronous FROM pragma_synchronous) AS synchronous, \
                        (SELECT timeout FROM pragma_busy_timeout) AS busy_timeout, \
                        (SELECT foreign_keys FROM pragma_foreign_keys) AS foreign_keys, \
                        (SELECT journal_mode FROM pragma_journal_mode) AS journal_mode",
            )
            .get_result(conn)
            .unwrap();

            assert_eq!(
                pragmas,
                Pragmas {
                    synchronous: 2, // FULL
                    busy_timeout: 1500,
                    foreign_keys: 1,
                    journal_mode: "wal".into(),
                }
            );
        }
    }
}
