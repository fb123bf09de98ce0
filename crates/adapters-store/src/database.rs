//! Where the data lives: the database URL, parsed into a backend and a location, safe to log.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::SetupError;

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

/// A URL safe to log: the password in the user info (`scheme://user:secret@host/...` becomes
/// `scheme://user:****@host/...`) and libpq's `password` parameter (`?password=secret` becomes
/// `?password=****`) are hidden; a URL with neither is returned as it is. The one redaction of
/// database URLs in the workspace (the test helpers use it too).
#[must_use]
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{user}:****@{host}")
        }
        _ => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=****")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Opens (creating it when missing; SQLite takes an empty file as a new database) the SQLite
/// file for writing once, so that a path that can never work is reported at once, with its
/// absolute path, instead of as connection timeouts.
pub(crate) fn ensure_writable(path: &Path) -> Result<(), SetupError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
        .map_err(|e| SetupError::DatabaseFile {
            path: std::path::absolute(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
                .to_string(),
            reason: e.to_string(),
        })
}

/// Creates the directory that will hold the SQLite file, when it is missing.
pub(crate) fn ensure_parent_directory(path: &Path) -> Result<(), SetupError> {
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    std::fs::create_dir_all(parent).map_err(|e| SetupError::DataDirectory {
        path: std::path::absolute(parent)
            .unwrap_or_else(|_| parent.to_path_buf())
            .display()
            .to_string(),
        reason: e.to_string(),
    })
}
