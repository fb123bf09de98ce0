//! Connection pool and writer options, and their validation.

use std::time::Duration;

use crate::SetupError;

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

/// One of the [`PoolOptions`], as named in [`SetupError::InvalidOption`], so that a caller
/// can tell its own user which setting to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolOption {
    MaxSize,
    MinIdle,
    ConnectionTimeout,
    StatementTimeout,
    LockTimeout,
    Writers,
    WriteBatch,
    WriteQueue,
}

impl PoolOption {
    /// The field's name in [`PoolOptions`].
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxSize => "max_size",
            Self::MinIdle => "min_idle",
            Self::ConnectionTimeout => "connection_timeout",
            Self::StatementTimeout => "statement_timeout",
            Self::LockTimeout => "lock_timeout",
            Self::Writers => "writers",
            Self::WriteBatch => "write_batch",
            Self::WriteQueue => "write_queue",
        }
    }
}

impl std::fmt::Display for PoolOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PoolOptions {
    /// Checks the options the way [`Store::connect`](crate::Store::connect) does, so that a
    /// caller can report a bad setting before connecting.
    ///
    /// # Errors
    /// [`SetupError::InvalidOption`] naming the first option out of range and its range.
    pub fn validate(&self) -> Result<(), SetupError> {
        let invalid = |option, reason: String| SetupError::InvalidOption { option, reason };
        if self.max_size == 0 {
            return Err(invalid(PoolOption::MaxSize, "must be at least 1".into()));
        }
        if let Some(min_idle) = self.min_idle
            && min_idle > self.max_size
        {
            return Err(invalid(
                PoolOption::MinIdle,
                format!("({min_idle}) must not exceed max_size ({})", self.max_size),
            ));
        }
        if self.connection_timeout.is_zero() {
            return Err(invalid(
                PoolOption::ConnectionTimeout,
                "must not be zero".into(),
            ));
        }
        for (option, timeout) in [
            (PoolOption::StatementTimeout, self.statement_timeout),
            (PoolOption::LockTimeout, self.lock_timeout),
        ] {
            if timeout.is_some_and(|t| t.as_millis() == 0) {
                return Err(invalid(
                    option,
                    "must be at least 1 ms (or unset to keep the server default)".into(),
                ));
            }
        }
        if self.writers == 0 {
            return Err(invalid(PoolOption::Writers, "must be at least 1".into()));
        }
        if !(1..=MAX_WRITE_BATCH).contains(&self.write_batch) {
            return Err(invalid(
                PoolOption::WriteBatch,
                format!("must be between 1 and {MAX_WRITE_BATCH}"),
            ));
        }
        if !(1..=MAX_WRITE_QUEUE).contains(&self.write_queue) {
            return Err(invalid(
                PoolOption::WriteQueue,
                format!("must be between 1 and {MAX_WRITE_QUEUE}"),
            ));
        }
        Ok(())
    }
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
