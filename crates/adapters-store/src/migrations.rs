//! The embedded schema migrations, one directory per backend (`migrations/postgres/`,
//! `migrations/sqlite/`), and the operations on them. Both directories carry the same versions:
//! a version is one revision of the data contract, written in each backend's SQL.

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use domain::ports::StoreError;

use crate::connection::{AnyConnection, on_backend};
use crate::statements::Statements;
use crate::{SetupError, Store};

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Session-level advisory lock held while migrating PostgreSQL, so instances starting at the
/// same moment against one database migrate one after the other instead of racing.
const MIGRATION_LOCK_KEY: i64 = 0x5E5_0000_0001;

/// What migrating differs in between the backends: the migrations, and the lock that makes
/// concurrent migrators take turns.
pub(crate) trait Migrations:
    Statements + MigrationHarness<<Self as Connection>::Backend> + Sized
{
    const MIGRATIONS: EmbeddedMigrations;

    /// Runs `work` holding the migration lock. `restore_sql` puts the session back as the pool
    /// configured it.
    fn with_migration_lock<T>(
        &mut self,
        restore_sql: &str,
        work: impl FnOnce(&mut Self) -> Result<T, SetupError>,
    ) -> Result<T, SetupError>;
}

impl Migrations for diesel::PgConnection {
    const MIGRATIONS: EmbeddedMigrations = POSTGRES_MIGRATIONS;

    fn with_migration_lock<T>(
        &mut self,
        restore_sql: &str,
        work: impl FnOnce(&mut Self) -> Result<T, SetupError>,
    ) -> Result<T, SetupError> {
        self.batch_execute(&format!(
            "SET statement_timeout = 0; SET lock_timeout = 0; \
             SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"
        ))
        .map_err(|e| SetupError::Unavailable(e.to_string()))?;
        let result = work(self);
        let restored = self.batch_execute(&format!(
            "SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY}); {restore_sql}"
        ));
        let value = result?;
        restored.map_err(|e| SetupError::Migration(format!("releasing migration lock: {e}")))?;
        Ok(value)
    }
}

impl Migrations for diesel::SqliteConnection {
    const MIGRATIONS: EmbeddedMigrations = SQLITE_MIGRATIONS;

    /// The lock is the database's write lock: one `BEGIN IMMEDIATE` transaction around every
    /// migration (each runs in a savepoint inside it).
    fn with_migration_lock<T>(
        &mut self,
        _restore_sql: &str,
        work: impl FnOnce(&mut Self) -> Result<T, SetupError>,
    ) -> Result<T, SetupError> {
        self.immediate_transaction(|conn| work(conn).map_err(MigrationAborted::Setup))
            .map_err(|e| match e {
                MigrationAborted::Setup(e) => e,
                MigrationAborted::Database(e) => SetupError::Unavailable(e.to_string()),
            })
    }
}

/// Why the SQLite migration transaction ended without committing.
enum MigrationAborted {
    Setup(SetupError),
    Database(diesel::result::Error),
}

impl From<diesel::result::Error> for MigrationAborted {
    fn from(error: diesel::result::Error) -> Self {
        Self::Database(error)
    }
}

fn apply_pending<C: Migrations>(conn: &mut C) -> Result<usize, SetupError> {
    let applied = conn
        .run_pending_migrations(C::MIGRATIONS)
        .map_err(|e| SetupError::Migration(e.to_string()))?;
    for version in &applied {
        tracing::info!(%version, "database migration applied");
    }
    Ok(applied.len())
}

#[cfg(feature = "test-util")]
fn revert_all<C: Migrations>(conn: &mut C) -> Result<usize, SetupError> {
    conn.revert_all_migrations(C::MIGRATIONS)
        .map(|versions| versions.len())
        .map_err(|e| SetupError::Migration(e.to_string()))
}

impl Store {
    /// Applies every embedded migration not yet applied, in order, and returns how many it
    /// applied (0 when the schema was already up to date, so it is safe to call at every
    /// start-up; each applied version is logged). Instances starting at the same moment against
    /// one database take turns. Runs on the blocking thread pool.
    ///
    /// # Errors
    /// [`SetupError::Unavailable`] when no connection could be had, [`SetupError::Migration`]
    /// when a migration failed (that migration is rolled back).
    pub async fn run_migrations(&self) -> Result<usize, SetupError> {
        let restore = self.restore_session_sql();
        self.blocking_setup(
            move |conn| on_backend!(conn, c => c.with_migration_lock(&restore, apply_pending)),
        )
        .await
    }

    /// Reverts every applied migration, newest first, and returns how many it reverted. This
    /// drops every table and all data in them: for tests and for tearing a database down.
    ///
    /// # Errors
    /// As for [`Store::run_migrations`].
    #[cfg(feature = "test-util")]
    pub async fn revert_all_migrations(&self) -> Result<usize, SetupError> {
        let restore = self.restore_session_sql();
        self.blocking_setup(
            move |conn| on_backend!(conn, c => c.with_migration_lock(&restore, revert_all)),
        )
        .await
    }

    /// The versions of the embedded migrations not yet applied to the database, oldest first
    /// (for example `20261127160000`). Read-only: it does not create diesel's bookkeeping table.
    ///
    /// # Errors
    /// [`SetupError::Unavailable`] when no connection could be had, [`SetupError::Migration`]
    /// when the migration history could not be read.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, SetupError> {
        self.blocking_setup(|conn| {
            on_backend!(conn, c => pending_versions(c)).map_err(
                |e| match crate::error::from_diesel(&e) {
                    StoreError::Unavailable(detail) => SetupError::Unavailable(detail),
                    StoreError::Failed(detail) => SetupError::Migration(detail),
                },
            )
        })
        .await
    }

    /// Runs blocking set-up work with a pooled connection on the blocking thread pool, in the
    /// current span.
    async fn blocking_setup<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut AnyConnection) -> Result<T, SetupError> + Send + 'static,
    ) -> Result<T, SetupError> {
        let store = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let mut conn = store
                    .conn()
                    .map_err(|e| SetupError::Unavailable(e.to_string()))?;
                work(&mut conn)
            })
        })
        .await
        .map_err(|e| SetupError::Migration(format!("migration task did not complete: {e}")))?
    }

    /// The SQL that puts a PostgreSQL session's `statement_timeout` and `lock_timeout` back to
    /// the pool's settings.
    fn restore_session_sql(&self) -> String {
        [
            ("statement_timeout", self.statement_timeout_ms),
            ("lock_timeout", self.lock_timeout_ms),
        ]
        .iter()
        .map(|(name, ms)| match ms {
            Some(ms) => format!("SET {name} = {ms};"),
            None => format!("RESET {name};"),
        })
        .collect()
    }
}

/// Versions of the embedded migrations that the database has not recorded as applied.
pub(crate) fn pending_versions<C: Migrations>(conn: &mut C) -> QueryResult<Vec<String>> {
    let migrations = MigrationSource::<C::Backend>::migrations(&C::MIGRATIONS)
        .map_err(diesel::result::Error::QueryBuilderError)?;
    let applied = if conn.migration_history_exists()? {
        conn.applied_migration_versions()?
    } else {
        Vec::new()
    };
    let mut pending: Vec<String> = migrations
        .iter()
        .map(|m| m.name().version().to_string())
        .filter(|version| !applied.contains(version))
        .collect();
    pending.sort();
    Ok(pending)
}
