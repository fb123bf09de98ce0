//! PostgreSQL storage for the SES webhook. This crate owns the database schema (the top-level
//! `migrations/`, embedded into the binary and documented in `docs/data-contract.md`), the r2d2
//! connection pool, and [`PgStore`], the diesel implementation of the domain's
//! [`EventStore`](domain::ports::EventStore) port. Idempotency is the database's job: unique keys
//! and `ON CONFLICT DO NOTHING`, never read-then-write. Diesel types never leave this crate; every
//! failure crosses the port as a [`StoreError`](domain::ports::StoreError).

mod error;
mod migrations;
mod rows;
mod schema;
mod store;
#[cfg(feature = "test-util")]
pub mod testing;

use std::time::Duration;

use diesel::PgConnection;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, HandleError, Pool, PooledConnection};

pub use error::SetupError;

type PgPool = Pool<ConnectionManager<PgConnection>>;
type PgPooled = PooledConnection<ConnectionManager<PgConnection>>;

/// Connection pool settings. [`PoolOptions::default`] suits one service instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// Most connections open at once. At least 1.
    pub max_size: u32,
    /// Idle connections the pool keeps open, at most `max_size`. `None` keeps `max_size` open.
    pub min_idle: Option<u32>,
    /// How long a request waits for a connection before the store reports
    /// [`StoreError::Unavailable`](domain::ports::StoreError::Unavailable). Keep it short: it is
    /// how long an SNS delivery waits for its 503 when the database is down. Not zero.
    pub connection_timeout: Duration,
    /// PostgreSQL `statement_timeout` for every pooled connection, so a stuck statement (a lock
    /// held elsewhere, an overloaded server) fails instead of holding the request. `None` keeps
    /// the server's default. Not zero. Migrations run without it.
    pub statement_timeout: Option<Duration>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 10,
            min_idle: Some(1),
            connection_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(10)),
        }
    }
}

impl PoolOptions {
    fn validate(&self) -> Result<(), SetupError> {
        if self.max_size == 0 {
            return Err(SetupError::InvalidOptions(
                "max_size must be at least 1".into(),
            ));
        }
        if let Some(min_idle) = self.min_idle
            && min_idle > self.max_size
        {
            return Err(SetupError::InvalidOptions(format!(
                "min_idle ({min_idle}) must not exceed max_size ({})",
                self.max_size
            )));
        }
        if self.connection_timeout.is_zero() {
            return Err(SetupError::InvalidOptions(
                "connection_timeout must be positive".into(),
            ));
        }
        if let Some(timeout) = self.statement_timeout
            && timeout.as_millis() == 0
        {
            return Err(SetupError::InvalidOptions(
                "statement_timeout must be at least 1 ms (or unset to keep the server default)"
                    .into(),
            ));
        }
        Ok(())
    }

    fn statement_timeout_ms(&self) -> Option<u64> {
        self.statement_timeout
            .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
    }
}

/// The PostgreSQL event store: a cheap-to-clone handle on an r2d2 pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    statement_timeout_ms: Option<u64>,
}

impl PgStore {
    /// Builds the connection pool for `url` (a libpq URL, for example
    /// `postgres://user:password@host:5432/dbname`).
    ///
    /// This does not wait for the database: the pool is built unchecked and opens its connections
    /// in the background, so the service starts, and answers 503 (every store call reports
    /// [`StoreError::Unavailable`](domain::ports::StoreError::Unavailable) after
    /// `connection_timeout`), until the database is reachable. [`PgStore::run_migrations`]
    /// likewise fails with [`SetupError::Unavailable`] while it is down; the health check
    /// reports both an unreachable database and pending migrations.
    ///
    /// # Errors
    /// [`SetupError::InvalidOptions`] when `options` are inconsistent.
    pub fn connect(url: &str, options: PoolOptions) -> Result<Self, SetupError> {
        options.validate()?;
        let statement_timeout_ms = options.statement_timeout_ms();
        let pool = Pool::builder()
            .max_size(options.max_size)
            .min_idle(options.min_idle)
            .connection_timeout(options.connection_timeout)
            .error_handler(Box::new(TracingErrorHandler))
            .connection_customizer(Box::new(SessionSettings {
                statement_timeout_ms,
            }))
            .build_unchecked(ConnectionManager::<PgConnection>::new(url));
        Ok(Self {
            pool,
            statement_timeout_ms,
        })
    }

    /// Checks a connection out of the pool (blocking for up to `connection_timeout`).
    fn conn(&self) -> Result<PgPooled, diesel::r2d2::PoolError> {
        self.pool.get()
    }

    /// The SQL that puts a connection's `statement_timeout` back to the pool's setting.
    fn restore_statement_timeout_sql(&self) -> String {
        match self.statement_timeout_ms {
            Some(ms) => format!("SET statement_timeout = {ms}"),
            None => "RESET statement_timeout".to_owned(),
        }
    }
}

/// Applies per-session settings to every new pooled connection.
#[derive(Debug)]
struct SessionSettings {
    statement_timeout_ms: Option<u64>,
}

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        if let Some(ms) = self.statement_timeout_ms {
            conn.batch_execute(&format!("SET statement_timeout = {ms}"))
                .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// Reports the pool's background connection failures through `tracing` instead of `log`.
#[derive(Debug)]
struct TracingErrorHandler;

impl HandleError<diesel::r2d2::Error> for TracingErrorHandler {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        tracing::warn!(error = %error, "database connection failed");
    }
}
