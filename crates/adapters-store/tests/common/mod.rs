//! What the store's test files share: running a test on both backends, a fresh database of
//! either, and the rows most tests write.

#![allow(dead_code, unreachable_pub)]

use adapters_store::testing::{TestDatabase, TestSqliteFile};
use adapters_store::{Backend, PoolOptions, Store};
use chrono::{DateTime, TimeZone, Utc};
use diesel::prelude::*;
use domain::SnsMessageType;
use domain::ports::{ArchivedMessage, MessageOutcome};

// ---------------------------------------------------------------------------------------------
// Both backends

/// Runs the test body `async fn $name(backend: Backend)` once per backend: defines the tests
/// `$name::postgres` and `$name::sqlite` (a module and a function may share a name).
macro_rules! both_backends {
    ($name:ident) => {
        both_backends!($name, #[tokio::test]);
    };
    ($name:ident, #[$test:meta]) => {
        mod $name {
            use adapters_store::Backend;

            #[$test]
            async fn postgres() {
                super::$name(Backend::Postgres).await;
            }

            #[$test]
            async fn sqlite() {
                super::$name(Backend::Sqlite).await;
            }
        }
    };
}

/// A fresh, empty (unmigrated) database of one backend, removed when dropped.
pub enum TestDb {
    Postgres(TestDatabase),
    Sqlite(TestSqliteFile),
}

/// A connection of the test's own to a [`TestDb`], for reading rows back.
pub enum Conn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Evaluates `$body` with `$c` bound to a new `&mut` connection to `$db`, whichever backend.
macro_rules! with_conn {
    ($db:expr, $c:ident => $body:expr) => {
        match $db.connect() {
            Conn::Postgres(mut conn) => {
                let $c = &mut conn;
                $body
            }
            Conn::Sqlite(mut conn) => {
                let $c = &mut conn;
                $body
            }
        }
    };
}

impl TestDb {
    pub fn new(backend: Backend) -> Self {
        match backend {
            Backend::Postgres => Self::Postgres(TestDatabase::from_env()),
            Backend::Sqlite => Self::Sqlite(TestSqliteFile::new()),
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Self::Postgres(db) => db.url(),
            Self::Sqlite(file) => file.url(),
        }
    }

    pub fn connect(&self) -> Conn {
        match self {
            Self::Postgres(db) => Conn::Postgres(PgConnection::establish(db.url()).unwrap()),
            Self::Sqlite(file) => Conn::Sqlite(file.connect()),
        }
    }
}

pub fn options(max_size: u32) -> PoolOptions {
    PoolOptions {
        max_size,
        min_idle: Some(1),
        ..PoolOptions::default()
    }
}

/// A fresh database with the schema applied, and a store on it.
pub async fn migrated_store(backend: Backend, max_size: u32) -> (TestDb, Store) {
    let db = TestDb::new(backend);
    let store = Store::connect(db.url(), options(max_size)).unwrap();
    store.run_migrations().await.unwrap();
    (db, store)
}

pub fn at(seconds: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(seconds.into())
}

pub fn message(sns_message_id: &str) -> ArchivedMessage {
    ArchivedMessage {
        sns_message_id: sns_message_id.to_owned(),
        message_type: SnsMessageType::Notification,
        topic_arn: "arn:aws:sns:us-east-1:123456789012:ses-events".to_owned(),
        sns_timestamp: at(1),
        received_at: at(2),
        ses_type: Some("Bounce".to_owned()),
        ses_message_id: None,
        outcome: MessageOutcome::Processed,
        error_count: 1,
        error_detail: Some("recipient 3: no address".to_owned()),
        raw_body: format!(r#"{{"Type":"Notification","MessageId":"{sns_message_id}"}}"#),
        tally: None,
    }
}

/// Rows of `table` (or of `table WHERE ...`: the text after `FROM`).
pub fn count(db: &TestDb, table: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = format!("SELECT COUNT(*) AS n FROM {table}");
    with_conn!(db, c => diesel::RunQueryDsl::get_result::<Count>(diesel::sql_query(&sql), c).unwrap().n)
}
