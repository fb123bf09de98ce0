//! Test support (feature `test-util`): a fresh, uniquely named PostgreSQL database per test, or
//! an SQLite file in a fresh temporary directory.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use adapters_store::testing::{TestDatabase, TestSqliteFile};
//! use adapters_store::{PoolOptions, Store};
//!
//! let db = TestDatabase::from_env(); // TEST_DATABASE_URL, or postgres://postgres@127.0.0.1:5432
//! let store = Store::connect(db.url(), PoolOptions::default())?;
//! store.run_migrations().await?;
//! // ... the database is dropped when `db` goes out of scope.
//!
//! let file = TestSqliteFile::new(); // sqlite:///tmp/.../ses-webhook.db, not created yet
//! let store = Store::connect(file.url(), PoolOptions::default())?;
//! store.run_migrations().await?;
//! // ... the directory and the file are removed when `file` goes out of scope.
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use domain::PlatformEvent;
use domain::ports::{ArchivedMessage, StoreError, StoreReport};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, SqliteConnection};
use tempfile::TempDir;
use url::Url;

/// The environment variable naming the PostgreSQL server tests may create databases on.
pub const TEST_DATABASE_URL_VAR: &str = "TEST_DATABASE_URL";

/// The server used when [`TEST_DATABASE_URL_VAR`] is not set.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432";

/// The database every PostgreSQL server has, used to create and drop test databases.
const MAINTENANCE_DATABASE: &str = "postgres";

const HOW_TO_START: &str = "\
is PostgreSQL running? Run the tests with ./scripts/test, which starts a throwaway server when \
PostgreSQL's programs are installed; or start one with \
`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` (Debian/Ubuntu) \
or `docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16`, \
or set TEST_DATABASE_URL to a server where the user may CREATE DATABASE \
(default postgres://postgres@127.0.0.1:5432)";

/// Why a test database could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TestDatabaseError {
    #[error("invalid test database URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot connect to PostgreSQL at {server}: {source}; {HOW_TO_START}")]
    Unreachable {
        server: String,
        #[source]
        source: diesel::ConnectionError,
    },
    #[error("cannot create database {name} on {server}: {source}")]
    Create {
        name: String,
        server: String,
        #[source]
        source: diesel::result::Error,
    },
}

/// A freshly created, empty (unmigrated) database, dropped (`WITH (FORCE)`) on drop.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    maintenance_url: String,
}

impl TestDatabase {
    /// The server URL from [`TEST_DATABASE_URL_VAR`], or [`DEFAULT_TEST_DATABASE_URL`].
    #[must_use]
    pub fn base_url_from_env() -> String {
        std::env::var(TEST_DATABASE_URL_VAR)
            .ok()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_TEST_DATABASE_URL.to_owned())
    }

    /// [`TestDatabase::create`] on the server named by the environment.
    ///
    /// # Panics
    /// As for [`TestDatabase::create`].
    #[must_use]
    pub fn from_env() -> Self {
        Self::create(&Self::base_url_from_env())
    }

    /// Creates a new database named `ses_webhook_test_<uuid>` on the server at `base_url` (a
    /// `postgres://` URL; any database name in it is ignored).
    ///
    /// # Panics
    /// When it cannot, with the [`TestDatabaseError`] as message: for an unreachable server it
    /// explains how to start PostgreSQL. Use [`TestDatabase::try_create`] to handle the error.
    #[must_use]
    pub fn create(base_url: &str) -> Self {
        match Self::try_create(base_url) {
            Ok(db) => db,
            Err(error) => panic!("cannot create a test database: {error}"),
        }
    }

    /// [`TestDatabase::create`], returning the error instead of panicking.
    ///
    /// # Errors
    /// [`TestDatabaseError::Unreachable`] (with instructions to start PostgreSQL) when the server
    /// cannot be reached, [`TestDatabaseError::Create`] when the database cannot be created.
    pub fn try_create(base_url: &str) -> Result<Self, TestDatabaseError> {
        let base = Url::parse(base_url).map_err(|e| TestDatabaseError::InvalidUrl {
            url: base_url.to_owned(),
            reason: e.to_string(),
        })?;
        if !matches!(base.scheme(), "postgres" | "postgresql") {
            return Err(TestDatabaseError::InvalidUrl {
                url: base_url.to_owned(),
                reason: "the scheme must be postgres:// or postgresql://".into(),
            });
        }
        let name = format!("ses_webhook_test_{}", uuid::Uuid::new_v4().simple());
        let maintenance_url = with_database(&base, MAINTENANCE_DATABASE);
        let url = with_database(&base, &name);
        let server = redacted(&base);

        let mut conn = PgConnection::establish(&maintenance_url).map_err(|source| {
            TestDatabaseError::Unreachable {
                server: server.clone(),
                source,
            }
        })?;
        conn.batch_execute(&format!(r#"CREATE DATABASE "{name}""#))
            .map_err(|source| TestDatabaseError::Create {
                name: name.clone(),
                server,
                source,
            })?;
        Ok(Self {
            name,
            url,
            maintenance_url,
        })
    }

    /// The connection URL of this database.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name, `ses_webhook_test_<uuid>`.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let dropped = PgConnection::establish(&self.maintenance_url)
            .map_err(|e| e.to_string())
            .and_then(|mut conn| {
                conn.batch_execute(&format!(
                    r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#,
                    self.name
                ))
                .map_err(|e| e.to_string())
            });
        if let Err(error) = dropped {
            eprintln!(
                "warning: could not drop test database {}: {error}",
                self.name
            );
        }
    }
}

fn with_database(base: &Url, database: &str) -> String {
    let mut url = base.clone();
    url.set_path(&format!("/{database}"));
    url.to_string()
}

/// The server's URL (no database), safe to print.
fn redacted(base: &Url) -> String {
    let mut url = base.clone();
    url.set_path("");
    crate::redact_password(url.as_str())
}

/// The file name of a [`TestSqliteFile`] in its directory.
const SQLITE_FILE_NAME: &str = "ses-webhook.db";

/// The path of an SQLite database file in a new temporary directory (nested one level down, so
/// the store has to create its directory). Nothing exists until a store opens it; the directory
/// and everything in it are removed on drop.
#[derive(Debug)]
pub struct TestSqliteFile {
    path: PathBuf,
    url: String,
    _dir: TempDir,
}

impl TestSqliteFile {
    /// A new path, `<tmp>/<random>/data/ses-webhook.db`.
    ///
    /// # Panics
    /// When no temporary directory can be created.
    #[must_use]
    pub fn new() -> Self {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(error) => panic!("cannot create a temporary directory: {error}"),
        };
        let path = dir.path().join("data").join(SQLITE_FILE_NAME);
        let url = format!("sqlite://{}", path.display());
        Self {
            path,
            url,
            _dir: dir,
        }
    }

    /// `sqlite://<path>`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new connection of its own to the file (not from a store's pool).
    ///
    /// # Panics
    /// When the file cannot be opened.
    #[must_use]
    pub fn connect(&self) -> SqliteConnection {
        let path = self.path.to_string_lossy();
        match SqliteConnection::establish(&path) {
            Ok(mut conn) => {
                // Wait for a store's writers rather than fail while they hold the lock.
                if let Err(error) = conn.batch_execute("PRAGMA busy_timeout = 5000") {
                    panic!("cannot set busy_timeout on {path}: {error}");
                }
                conn
            }
            Err(error) => panic!("cannot open SQLite file {path}: {error}"),
        }
    }
}

impl Default for TestSqliteFile {
    fn default() -> Self {
        Self::new()
    }
}

/// Stores `notifications` as one group-commit batch, exactly as a writer thread would if they
/// had all been queued at once (one by one when the batch fails), and returns each one's answer
/// in order. [`Store`](crate::Store) forms batches from concurrent requests on its own; this makes
/// one on purpose.
///
/// # Errors
/// [`StoreError`] when no connection could be had; each notification's own failure is in its
/// answer.
pub async fn store_as_one_batch(
    store: &crate::Store,
    notifications: Vec<(ArchivedMessage, Vec<PlatformEvent>)>,
) -> Result<Vec<Result<StoreReport, StoreError>>, StoreError> {
    let notifications: Vec<crate::writer::Notification> = notifications
        .into_iter()
        .map(|(message, events)| crate::writer::Notification::new(message, events, &store.hook))
        .collect();
    let hook = store.hook.clone();
    store
        .blocking(move |conn| {
            Ok(crate::writer::write_as_one_batch(
                conn,
                notifications,
                &hook,
            ))
        })
        .await
}

/// Directory of the SES fixtures shipped with the repository (`tests/fixtures/ses/`).
#[must_use]
pub fn ses_fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ses")
}

/// Every whole SES record of [`ses_fixtures_dir`] (not the `fragment` files), by file name.
///
/// # Panics
/// When the directory or a file cannot be read: the repository is incomplete.
#[must_use]
pub fn whole_ses_records() -> BTreeMap<String, String> {
    let dir = ses_fixtures_dir();
    let read_error = |error: std::io::Error| -> ! {
        panic!("cannot read the SES fixtures in {}: {error}", dir.display())
    };
    let mut records = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| read_error(e)) {
        let path = entry.unwrap_or_else(|e| read_error(e)).path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if let Some(name) = name.filter(|n| n.ends_with(".json") && !n.contains("fragment")) {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| read_error(e));
            records.insert(name, text);
        }
    }
    records
}
