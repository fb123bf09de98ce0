//! The event store of the SES webhook, on PostgreSQL or on an embedded SQLite file, chosen by the
//! scheme of the database URL. This crate owns the database schema (the top-level
//! `migrations/postgres/` and `migrations/sqlite/`, both embedded into the binary and documented
//! in `docs/data-contract.md`), the r2d2 connection pool, and [`Store`], the diesel
//! implementation of the domain's [`EventStore`](domain::ports::EventStore) port. Idempotency is
//! the database's job on both backends: unique keys and `INSERT ... ON CONFLICT DO NOTHING
//! RETURNING`, never read-then-write. Diesel types never leave this crate through the port; every
//! failure crosses it as a [`StoreError`](domain::ports::StoreError).

mod archive;
mod connection;
mod error;
mod migrations;
mod rows;
mod schema;
pub mod sql_types;
mod statements;
mod store;
#[cfg(feature = "test-util")]
pub mod testing;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::r2d2::{HandleError, Pool, PooledConnection};

use crate::connection::{Manager, SessionSettings};
use crate::writer::{Writer, WriterSettings};
pub use error::SetupError;

type AnyPool = Pool<Manager>;
type AnyPooled = PooledConnection<Manager>;

/// The most connections a pool opens to an SQLite file, whatever [`PoolOptions::max_size`]
/// says: SQLite has one writer at a time, so more connections only queue for the same lock.
pub const SQLITE_MAX_CONNECTIONS: u32 = 4;

/// Connection pool settings. [`PoolOptions::default`] suits one service instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// Most connections open at once. At least 1. For SQLite at most
    /// [`SQLITE_MAX_CONNECTIONS`] are used.
    pub max_size: u32,
    /// Idle connections the pool keeps open, at most `max_size`. `None` keeps `max_size` open.
    pub min_idle: Option<u32>,
    /// How long a request waits for a connection before the store reports
    /// [`StoreError::Unavailable`](domain::ports::StoreError::Unavailable). Keep it short: it is
    /// how long an SNS delivery waits for its 503 when the database is down. Not zero. On SQLite
    /// it is also the `busy_timeout`: how long a write waits for another writer to finish.
    pub connection_timeout: Duration,
    /// PostgreSQL `statement_timeout` for every pooled connection, so a stuck statement (an
    /// overloaded server) fails instead of holding the request, and the writer with it. `None`
    /// keeps the server's default. Not zero. Migrations run without it. Not used by SQLite.
    pub statement_timeout: Option<Duration>,
    /// PostgreSQL `lock_timeout` for every pooled connection: a statement waiting this long for
    /// a row lock held elsewhere (an operator's open transaction, say) fails. Keep it well below
    /// `connection_timeout`: a writer waiting on a lock makes the notifications queued behind it
    /// wait too. `None` keeps the server's default. Not zero. Not used by SQLite.
    pub lock_timeout: Option<Duration>,
    /// Threads writing notifications (group commit: each writes whatever is queued as one
    /// batch). At least 1; at most `max_size` are started, and one on SQLite (one writer at a
    /// time). Each keeps one pooled connection while it is busy.
    pub writers: u32,
    /// Most notifications written together. At least 1, at most [`MAX_WRITE_BATCH`].
    pub write_batch: usize,
    /// Notifications that may wait for a writer; beyond that a write fails at once with
    /// [`StoreError::Unavailable`](domain::ports::StoreError::Unavailable). At least 1, at most
    /// [`MAX_WRITE_QUEUE`] (the queue's slots are allocated up front).
    pub write_queue: usize,
}

/// The largest [`PoolOptions::write_batch`]: with SNS's 256 KiB messages, a batch statement's
/// parameters stay far below PostgreSQL's 1 GB limit for one value.
pub const MAX_WRITE_BATCH: usize = 256;

/// The largest [`PoolOptions::write_queue`].
pub const MAX_WRITE_QUEUE: usize = 100_000;
impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 10,
            min_idle: Some(1),
            connection_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(10)),
            lock_timeout: Some(Duration::from_secs(1)),
            writers: 1,
            write_batch: 32,
            write_queue: 1024,
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
        for (name, timeout) in [
            ("statement_timeout", self.statement_timeout),
            ("lock_timeout", self.lock_timeout),
        ] {
            if timeout.is_some_and(|t| t.as_millis() == 0) {
                return Err(SetupError::InvalidOptions(format!(
                    "{name} must be at least 1 ms (or unset to keep the server default)"
                )));
            }
        }
        if self.writers == 0 {
            return Err(SetupError::InvalidOptions(
                "writers must be at least 1".into(),
            ));
        }
        if !(1..=MAX_WRITE_BATCH).contains(&self.write_batch) {
            return Err(SetupError::InvalidOptions(format!(
                "write_batch must be between 1 and {MAX_WRITE_BATCH}"
            )));
        }
        if !(1..=MAX_WRITE_QUEUE).contains(&self.write_queue) {
            return Err(SetupError::InvalidOptions(format!(
                "write_queue must be between 1 and {MAX_WRITE_QUEUE}"
            )));
        }
        Ok(())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Which database engine a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A PostgreSQL server: for production, and required for several instances.
    Postgres,
    /// An SQLite file on local disk: no server needed; one instance at a time.
    Sqlite,
}

impl Backend {
    /// `postgres` or `sqlite`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

/// Where the data lives, parsed from a database URL.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// `postgres://...` or `postgresql://...`: a libpq URL, passed on as it is.
    Postgres { url: String },
    /// `sqlite://PATH`: everything after `sqlite://` is the file's path, relative to the working
    /// directory unless it starts with `/` (so `sqlite:///var/lib/x.db` is absolute).
    Sqlite { path: PathBuf },
}

impl Database {
    /// Parses a database URL: `postgres://`, `postgresql://` or `sqlite://PATH`.
    ///
    /// # Errors
    /// [`SetupError::InvalidUrl`] for any other scheme, an `sqlite://` URL without a path or with
    /// `?` options, and `sqlite::memory:` (each pooled connection would get its own empty
    /// database).
    pub fn parse(url: &str) -> Result<Self, SetupError> {
        let invalid = |reason: &str| SetupError::InvalidUrl {
            url: redact_password(url),
            reason: reason.to_owned(),
        };
        let trimmed = url.trim();
        let scheme = trimmed
            .split_once(':')
            .map(|(scheme, _)| scheme.to_ascii_lowercase())
            .unwrap_or_default();
        let rest = trimmed.get(scheme.len()..).unwrap_or_default();
        match scheme.as_str() {
            "postgres" | "postgresql" => {
                if rest.starts_with("://") {
                    Ok(Self::Postgres {
                        url: format!("{scheme}{rest}"),
                    })
                } else {
                    Err(invalid("write postgres://user@host:port/database"))
                }
            }
            "sqlite" => {
                let Some(path) = rest.strip_prefix("://") else {
                    return Err(invalid(
                        "write sqlite://PATH (in-memory SQLite is not supported: every pooled \
                         connection would see its own empty database)",
                    ));
                };
                if path.is_empty() {
                    return Err(invalid("no file path after sqlite://"));
                }
                if path.contains('?') {
                    return Err(invalid(
                        "options after `?` are not supported: the path is everything after sqlite://",
                    ));
                }
                Ok(Self::Sqlite {
                    path: PathBuf::from(path),
                })
            }
            "" => Err(invalid("not a URL")),
            other => Err(invalid(&format!("unsupported scheme `{other}`"))),
        }
    }

    /// The backend this URL names.
    #[must_use]
    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres { .. } => Backend::Postgres,
            Self::Sqlite { .. } => Backend::Sqlite,
        }
    }
}

/// For logs: the PostgreSQL URL without its password, or the SQLite file's absolute path.
impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres { url } => write!(f, "PostgreSQL at {}", redact_password(url)),
            Self::Sqlite { path } => {
                let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                write!(f, "SQLite file {}", absolute.display())
            }
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `scheme://user:secret@host/...` becomes `scheme://user:****@host/...`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:****@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

/// Creates the directory that will hold the SQLite file, when it is missing.
fn ensure_parent_directory(path: &Path) -> Result<(), SetupError> {
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    std::fs::create_dir_all(parent).map_err(|e| SetupError::DataDirectory {
        path: parent.display().to_string(),
        reason: e.to_string(),
    })
}

/// The event store: a cheap-to-clone handle on an r2d2 pool of connections to PostgreSQL or to
/// an SQLite file, and on the writer threads that store notifications in batches. The writers
/// stop when the last clone is dropped, after writing what is queued.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    database: std::sync::Arc<Database>,
    statement_timeout_ms: Option<u64>,
    lock_timeout_ms: Option<u64>,
    writer: std::sync::Arc<Writer>,
}

impl Store {
    /// Builds the connection pool for `url`: `postgres://user:password@host:5432/dbname` (or
    /// `postgresql://`) for PostgreSQL, `sqlite://path/to/file.db` for an SQLite file, which is
    /// created, with its directory, when missing.
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
    /// [`SetupError::InvalidOptions`] when `options` are inconsistent,
    /// [`SetupError::DataDirectory`] when the SQLite file's directory cannot be created.
    /// Starts the writer threads ([`PoolOptions::writers`]).
    pub fn connect(url: &str, options: PoolOptions) -> Result<Self, SetupError> {
        options.validate()?;
        let database = Database::parse(url)?;
        let max_size = match database.backend() {
            Backend::Postgres => options.max_size,
            Backend::Sqlite => options.max_size.min(SQLITE_MAX_CONNECTIONS),
        };
        if let Database::Sqlite { path } = &database {
            ensure_parent_directory(path)?;
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
        )?;
        Ok(Self {
            pool,
            database: std::sync::Arc::new(database),
            statement_timeout_ms,
            lock_timeout_ms,
            writer: std::sync::Arc::new(writer),
        })
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
    fn conn(&self) -> Result<AnyPooled, diesel::r2d2::PoolError> {
        self.pool.get()
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
