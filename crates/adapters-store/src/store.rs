//! [`Store`]: connecting it, and the [`EventStore`] port on it. Notifications go to the
//! group-commit writers (`writer.rs`); the other methods run their diesel work on a blocking
//! thread, inside the caller's tracing span, in one transaction, on whichever backend the store
//! uses.

use std::sync::Arc;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::r2d2::Pool;
use domain::PlatformEvent;
use domain::ports::{
    ArchivedMessage, EventStore, NoObserver, StoreError, StoreReport, SubscriptionChange,
    SuppressionObserver,
};
use domain::suppression::SuppressionPolicy;

use crate::connection::{AnyConnection, Manager, SessionSettings, TracingErrorHandler, on_backend};
use crate::database::{Backend, Database, ensure_parent_directory, ensure_writable};
use crate::error::{from_diesel, from_join, pool_unavailable};
use crate::list_statements::PolicyHook;
use crate::migrations::pending_versions;
use crate::options::{PoolOptions, SQLITE_MAX_CONNECTIONS, millis};
use crate::rows::{NewSnsMessage, SubscriptionUpsert};
use crate::statements::{self, Statements};
use crate::writer::{Notification, Writer, WriterSettings};
use crate::{AnyPool, AnyPooled, SetupError};

/// The event store: a cheap-to-clone handle on an r2d2 pool of connections to PostgreSQL or to
/// an SQLite file, and on the writer threads that store notifications in batches. The writers
/// stop when the last clone is dropped, after writing what is queued.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    database: Arc<Database>,
    pub(crate) statement_timeout_ms: Option<u64>,
    pub(crate) lock_timeout_ms: Option<u64>,
    writer: Arc<Writer>,
    /// The suppression policy applied to what is stored.
    pub(crate) hook: PolicyHook,
}

impl Store {
    /// Builds the connection pool for `url`: `postgres://user:password@host:5432/dbname` (or
    /// `postgresql://`) for PostgreSQL, `sqlite://path/to/file.db` for an SQLite file, which is
    /// created, with its directory, when missing.
    ///
    /// Starts the writer threads ([`PoolOptions::writers`]; one on SQLite).
    ///
    /// This does not wait for the database: the pool is built unchecked and opens its connections
    /// in the background, so the service starts, and answers 503 (every store call reports
    /// [`StoreError::Unavailable`](domain::ports::StoreError::Unavailable) after
    /// `connection_timeout`), until the database is reachable. [`Store::run_migrations`]
    /// likewise fails with [`SetupError::Unavailable`] while it is down; the health check
    /// reports both an unreachable database and pending migrations.
    ///
    /// # Errors
    /// [`SetupError::InvalidUrl`] for a URL naming neither backend,
    /// [`SetupError::InvalidOption`] when `options` are inconsistent (see [`PoolOptions::validate`]),
    /// [`SetupError::DataDirectory`] when the SQLite file's directory cannot be created,
    /// [`SetupError::WriterThread`] when the system refuses a writer thread.
    pub fn connect(url: &str, options: PoolOptions) -> Result<Self, SetupError> {
        Self::connect_with_policy(
            url,
            options,
            SuppressionPolicy::default(),
            Arc::new(NoObserver),
        )
    }

    /// [`Store::connect`], applying `policy` to every notification and reprocessed message it
    /// stores, in the transaction that stores the events, and telling `observer` of each entry
    /// the policy wrote, after the commit.
    ///
    /// # Errors
    /// As [`Store::connect`].
    pub fn connect_with_policy(
        url: &str,
        options: PoolOptions,
        policy: SuppressionPolicy,
        observer: Arc<dyn SuppressionObserver>,
    ) -> Result<Self, SetupError> {
        options.validate()?;
        let hook = PolicyHook { policy, observer };
        let database = Database::parse(url)?;
        let max_size = match database.backend() {
            Backend::Postgres => options.max_size,
            Backend::Sqlite => options.max_size.min(SQLITE_MAX_CONNECTIONS),
        };
        if let Database::Sqlite { path } = &database {
            ensure_parent_directory(path)?;
            ensure_writable(path)?;
            crate::connection::prepare_sqlite_file(path, options.connection_timeout).map_err(
                |reason| SetupError::DatabaseFile {
                    path: std::path::absolute(path)
                        .unwrap_or_else(|_| path.clone())
                        .display()
                        .to_string(),
                    reason,
                },
            )?;
        }
        let statement_timeout_ms = options.statement_timeout.map(millis);
        let lock_timeout_ms = options.lock_timeout.map(millis);
        let pool = Pool::builder()
            .max_size(max_size)
            .min_idle(options.min_idle.map(|min| min.min(max_size)))
            .connection_timeout(options.connection_timeout)
            .error_handler(Box::new(TracingErrorHandler))
            .connection_customizer(Box::new(SessionSettings {
                statement_timeout_ms,
                lock_timeout_ms,
                busy_timeout: options.connection_timeout,
            }))
            .build_unchecked(Manager::new(database.clone()));
        let writers = match database.backend() {
            Backend::Postgres => options.writers.min(max_size),
            Backend::Sqlite => 1,
        };
        let writer = Writer::start(
            &pool,
            WriterSettings {
                threads: writers,
                max_batch: options.write_batch,
                queue_capacity: options.write_queue,
                max_wait: options.connection_timeout,
            },
            &hook,
        )?;
        Ok(Self {
            pool,
            database: Arc::new(database),
            statement_timeout_ms,
            lock_timeout_ms,
            writer: Arc::new(writer),
            hook,
        })
    }

    /// Opens one connection now, outside the pool, to tell a database that refuses for good
    /// from one that is only down: a PostgreSQL database or role that does not exist, or a
    /// password that is wrong, will never come right by waiting, so the caller should stop
    /// instead of starting and answering 503 for ever. A server that cannot be reached is not
    /// an error here: whether to wait for it is the caller's choice (the pool keeps trying, and
    /// requests get 503 meanwhile).
    ///
    /// # Errors
    /// [`SetupError::Refused`] naming the database or role and what to do.
    pub async fn check_not_refused(&self) -> Result<(), SetupError> {
        let Database::Postgres { url } = self.database.as_ref().clone() else {
            return Ok(());
        };
        let shown = crate::redact_password(&url);
        let attempt =
            tokio::task::spawn_blocking(move || match diesel::PgConnection::establish(&url) {
                Ok(_) => Ok(()),
                Err(error) => {
                    let message = error.to_string();
                    // libpq reports these only as text; they are its fixed server messages.
                    let permanent = [
                        "does not exist",
                        "password authentication failed",
                        "no pg_hba.conf entry",
                    ]
                    .iter()
                    .any(|words| message.contains(words));
                    if permanent {
                        Err(SetupError::Refused(format!(
                            "PostgreSQL at {shown} refused the connection: {}",
                            message.trim()
                        )))
                    } else {
                        Ok(())
                    }
                }
            });
        // A server that does not answer at all (dropped packets) is down, not refusing: the
        // pool goes on trying in the background.
        match tokio::time::timeout(self.pool.connection_timeout(), attempt).await {
            Ok(joined) => joined.map_err(|e| SetupError::Unavailable(e.to_string()))?,
            Err(_) => Ok(()),
        }
    }

    /// Where the data lives (its `Display` is safe to log: no password).
    #[must_use]
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The backend this store runs on.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.database.backend()
    }

    /// The most connections the pool opens: [`PoolOptions::max_size`], at most
    /// [`SQLITE_MAX_CONNECTIONS`] on SQLite.
    #[must_use]
    pub fn max_connections(&self) -> u32 {
        self.pool.max_size()
    }

    /// Checks a connection out of the pool (blocking for up to `connection_timeout`).
    pub(crate) fn conn(&self) -> Result<AnyPooled, diesel::r2d2::PoolError> {
        self.pool.get()
    }
}

impl Store {
    /// Runs `work` with a pooled connection on the blocking thread pool, in the current span.
    pub(crate) async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let mut conn = store.conn().map_err(|e| pool_unavailable(&e))?;
                work(&mut conn)
            })
        })
        .await
        .map_err(|e| from_join(&e))?
    }
}

#[async_trait]
impl EventStore for Store {
    async fn store_notification(
        &self,
        message: ArchivedMessage,
        events: Vec<PlatformEvent>,
    ) -> Result<StoreReport, StoreError> {
        self.writer
            .write(Notification::new(message, events, &self.hook))
            .await
    }

    async fn record_subscription(
        &self,
        message: ArchivedMessage,
        change: SubscriptionChange,
    ) -> Result<(), StoreError> {
        let message_row = NewSnsMessage::from(message);
        let upsert = SubscriptionUpsert::from(change);
        self.blocking(move |conn| {
            on_backend!(conn, c => statements::record_subscription(c, &message_row, &upsert))
                .map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn change_subscription(&self, change: SubscriptionChange) -> Result<(), StoreError> {
        let upsert = SubscriptionUpsert::from(change);
        self.blocking(move |conn| {
            on_backend!(conn, c => c.write_transaction(|c| c.upsert_subscription(&upsert)))
                .map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn health_check(&self) -> Result<(), StoreError> {
        self.blocking(|conn| {
            // Backend-neutral: runs on the MultiConnection itself.
            diesel::sql_query("SELECT 1")
                .execute(conn)
                .map_err(|e| from_diesel(&e))?;
            let pending =
                on_backend!(conn, c => pending_versions(c)).map_err(|e| from_diesel(&e))?;
            if pending.is_empty() {
                Ok(())
            } else {
                Err(StoreError::Failed(format!(
                    "database schema is not up to date: {} migration(s) pending ({})",
                    pending.len(),
                    pending.join(", ")
                )))
            }
        })
        .await
    }
}
