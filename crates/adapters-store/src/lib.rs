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
mod counts;
mod database;
mod error;
mod history;
mod list_statements;
mod list_store;
mod migrations;
mod options;
mod outbox;
mod pg_policy;
mod rows;
mod schema;
pub mod sql_types;
mod statements;
mod store;
#[cfg(feature = "test-util")]
pub mod testing;
mod writer;

use diesel::r2d2::{Pool, PooledConnection};

use crate::connection::Manager;
pub use database::{Backend, Database, redact_password};
pub use error::SetupError;
pub use options::{
    MAX_WRITE_BATCH, MAX_WRITE_QUEUE, PoolOption, PoolOptions, SQLITE_MAX_CONNECTIONS,
};
pub use store::Store;

type AnyPool = Pool<Manager>;
type AnyPooled = PooledConnection<Manager>;
