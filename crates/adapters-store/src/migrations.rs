//! The embedded schema migrations (top-level `migrations/`) and the operations on them.

use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use domain::ports::StoreError;

use crate::{PgStore, SetupError};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Session-level advisory lock held while migrating, so instances starting at the same moment
/// against one database migrate one after the other instead of racing.
const MIGRATION_LOCK_KEY: i64 = 0x5E5_0000_0001;

#[derive(QueryableByName)]
struct AppliedVersion {
    #[diesel(sql_type = Text)]
    version: String,
}

impl PgStore {
    /// Applies every embedded migration not yet applied, in order, and returns how many it
    /// applied (0 when the schema was already up to date, so it is safe to call at every
    /// start-up; each applied version is logged). Instances starting at the same moment against
    /// one database take turns. Runs on the blocking thread pool.
    ///
    /// # Errors
    /// [`SetupError::Unavailable`] when no connection could be had, [`SetupError::Migration`]
    /// when a migration failed (that migration is rolled back).
    pub async fn run_migrations(&self) -> Result<usize, SetupError> {
        self.blocking_setup(|store| {
            store.with_migration_lock(|conn| {
                let applied = conn
                    .run_pending_migrations(MIGRATIONS)
                    .map_err(|e| SetupError::Migration(e.to_string()))?;
                for version in &applied {
                    tracing::info!(%version, "database migration applied");
                }
                Ok(applied.len())
            })
        })
        .await
    }

    /// Reverts every applied migration, newest first, and returns how many it reverted. This
    /// drops every table and all data in them: for tests and for tearing a database down.
    ///
    /// # Errors
    /// As for [`PgStore::run_migrations`].
    #[cfg(feature = "test-util")]
    pub async fn revert_all_migrations(&self) -> Result<usize, SetupError> {
        self.blocking_setup(|store| {
            store.with_migration_lock(|conn| {
                conn.revert_all_migrations(MIGRATIONS)
                    .map(|versions| versions.len())
                    .map_err(|e| SetupError::Migration(e.to_string()))
            })
        })
        .await
    }

    /// The versions of the embedded migrations not yet applied to the database, oldest first
    /// (for example `20261127160000`). Read-only: it does not create diesel's bookkeeping table.
    ///
    /// # Errors
    /// [`SetupError::Unavailable`] when no connection could be had, [`SetupError::Migration`]
    /// when the migration history could not be read.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, SetupError> {
        self.blocking_setup(|store| {
            let mut conn = store
                .conn()
                .map_err(|e| SetupError::Unavailable(e.to_string()))?;
            pending_versions(&mut conn).map_err(|e| match crate::error::from_diesel(&e) {
                StoreError::Unavailable(detail) => SetupError::Unavailable(detail),
                StoreError::Failed(detail) => SetupError::Migration(detail),
            })
        })
        .await
    }

    /// Runs blocking set-up work on the blocking thread pool, in the current span.
    async fn blocking_setup<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Self) -> Result<T, SetupError> + Send + 'static,
    ) -> Result<T, SetupError> {
        let store = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| work(&store)))
            .await
            .map_err(|e| SetupError::Migration(format!("migration task did not complete: {e}")))?
    }

    fn with_migration_lock<T>(
        &self,
        work: impl FnOnce(&mut PgConnection) -> Result<T, SetupError>,
    ) -> Result<T, SetupError> {
        let mut conn = self
            .conn()
            .map_err(|e| SetupError::Unavailable(e.to_string()))?;
        conn.batch_execute(&format!(
            "SET statement_timeout = 0; SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"
        ))
        .map_err(|e| SetupError::Unavailable(e.to_string()))?;
        let result = work(&mut conn);
        let restored = conn.batch_execute(&format!(
            "SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY}); {}",
            self.restore_statement_timeout_sql()
        ));
        let value = result?;
        restored.map_err(|e| SetupError::Migration(format!("releasing migration lock: {e}")))?;
        Ok(value)
    }
}

/// Versions of the embedded migrations that the database has not recorded as applied.
pub(crate) fn pending_versions(conn: &mut PgConnection) -> QueryResult<Vec<String>> {
    let migrations = diesel::migration::MigrationSource::<Pg>::migrations(&MIGRATIONS)
        .map_err(diesel::result::Error::QueryBuilderError)?;
    let history_exists: bool = diesel::select(diesel::dsl::sql::<Bool>(
        "to_regclass('__diesel_schema_migrations') IS NOT NULL",
    ))
    .get_result(conn)?;
    let applied: Vec<String> = if history_exists {
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
            .load::<AppliedVersion>(conn)?
            .into_iter()
            .map(|v| v.version)
            .collect()
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
