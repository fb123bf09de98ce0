//! `Store` against both backends: a real PostgreSQL server (each test on its own fresh database)
//! and an SQLite file in a fresh temporary directory. Every test written with `both_backends!`
//! runs once per backend, as `<name>::postgres` and `<name>::sqlite`.
//! Set `TEST_DATABASE_URL` to use a PostgreSQL server other than `postgres://postgres@127.0.0.1:5432`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use adapters_store::sql_types::{Instant, JsonDocument};
use adapters_store::testing::{TestDatabase, TestSqliteFile};
use adapters_store::{
    Backend, MAX_WRITE_BATCH, PoolOption, PoolOptions, SQLITE_MAX_CONNECTIONS, SetupError, Store,
    redact_password,
};
use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};
use domain::mapping::{MappedKind, map_message};
use domain::ports::{
    ArchivedMessage, EventStore, MessageArchive, MessageOutcome, ReprocessFilter, Reprocessed,
    StoreError, StoreReport, StoredMessage, SubscriptionChange, SubscriptionState,
};
use domain::{BounceClass, EventType, PlatformEvent, SnsMessageType};
use serde_json::json;

#[macro_use]
mod common;

use common::*;

fn bare_event(event_key: &str, event_type: EventType) -> PlatformEvent {
    PlatformEvent {
        event_key: event_key.to_owned(),
        ..PlatformEvent::new(event_type, "0100018f-ses-message", at(0))
    }
}

/// A delivery, a hard bounce and a click of one sent message.
fn three_events() -> Vec<PlatformEvent> {
    let delivered = PlatformEvent {
        recipient: Some("alice@example.com".to_owned()),
        event_time: at(10),
        mail_time: Some(at(0)),
        source: Some("sender@example.com".to_owned()),
        subject: Some("Hello".to_owned()),
        smtp_response: Some("250 2.6.0 Message received".to_owned()),
        reporting_mta: Some("a8-70.smtp-out.amazonses.com".to_owned()),
        remote_mta_ip: Some("203.0.113.7".to_owned()),
        processing_time_millis: Some(546),
        tags: Some(json!({"campaign": ["spring"]})),
        ..bare_event("key-delivered", EventType::Delivered)
    };
    let bounce = PlatformEvent {
        recipient: Some("bob@example.com".to_owned()),
        bounce_type: Some(BounceClass::Hard),
        event_time: at(11),
        ses_bounce_type: Some("Permanent".to_owned()),
        bounce_subtype: Some("General".to_owned()),
        action: Some("failed".to_owned()),
        status: Some("5.1.1".to_owned()),
        diagnostic_code: Some("smtp; 550 5.1.1 user unknown".to_owned()),
        feedback_id: Some("feedback-1".to_owned()),
        reporting_mta: Some("dsn; mta.example.com".to_owned()),
        ..bare_event("key-bounce", EventType::Bounce)
    };
    let click = PlatformEvent {
        recipient: Some("carol@example.com".to_owned()),
        event_time: at(12),
        link: Some("https://example.com/offer".to_owned()),
        link_tags: Some(json!({"samplekey0": ["samplevalue0"]})),
        user_agent: Some("Mozilla/5.0".to_owned()),
        ip_address: Some("192.0.2.1".to_owned()),
        ..bare_event("key-click", EventType::Click)
    };
    vec![delivered, bounce, click]
}

/// The three events plus 300 opens: enough rows per statement for concurrent inserts to overlap.
fn many_events() -> Vec<PlatformEvent> {
    let mut events = three_events();
    events.extend((0..300).map(|i| PlatformEvent {
        event_time: at(i),
        ..bare_event(&format!("key-open-{i:03}"), EventType::Open)
    }));
    events
}

// ---------------------------------------------------------------------------------------------
// Reading back

#[derive(Debug, QueryableByName)]
struct MessageRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    sns_message_id: String,
    #[diesel(sql_type = Text)]
    message_type: String,
    #[diesel(sql_type = Text)]
    topic_arn: String,
    #[diesel(sql_type = Instant)]
    sns_timestamp: DateTime<Utc>,
    #[diesel(sql_type = Instant)]
    received_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    ses_type: Option<String>,
    #[diesel(sql_type = Text)]
    outcome: String,
    #[diesel(sql_type = Integer)]
    error_count: i32,
    #[diesel(sql_type = Nullable<Text>)]
    error_detail: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    raw_body: Option<String>,
    #[diesel(sql_type = Integer)]
    events_stored: i32,
}

fn messages(db: &TestDb) -> Vec<MessageRow> {
    with_conn!(db, c => diesel::sql_query("SELECT * FROM sns_messages ORDER BY id").load(c).unwrap())
}

#[derive(Debug, QueryableByName)]
struct EventRow {
    #[diesel(sql_type = Text)]
    event_key: String,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Nullable<Text>)]
    recipient: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    bounce_type: Option<String>,
    #[diesel(sql_type = Text)]
    ses_message_id: String,
    #[diesel(sql_type = Text)]
    sns_message_id: String,
    #[diesel(sql_type = Instant)]
    event_time: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Instant>)]
    mail_time: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    source: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    subject: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    ses_bounce_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    bounce_subtype: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    bounce_action: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    bounce_status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    diagnostic_code: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    feedback_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    complaint_feedback_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    complaint_subtype: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    smtp_response: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    reporting_mta: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    remote_mta_ip: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    processing_time_ms: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    link: Option<String>,
    #[diesel(sql_type = Nullable<JsonDocument>)]
    link_tags: Option<serde_json::Value>,
    #[diesel(sql_type = Nullable<Text>)]
    user_agent: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    ip_address: Option<String>,
    #[diesel(sql_type = Nullable<JsonDocument>)]
    tags: Option<serde_json::Value>,
    #[diesel(sql_type = Instant)]
    created_at: DateTime<Utc>,
}

fn events(db: &TestDb) -> Vec<EventRow> {
    with_conn!(db, c => diesel::sql_query("SELECT * FROM email_events ORDER BY event_key").load(c).unwrap())
}

#[derive(Debug, QueryableByName)]
struct SubscriptionRow {
    #[diesel(sql_type = Text)]
    topic_arn: String,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Nullable<Text>)]
    subscribe_url: Option<String>,
    #[diesel(sql_type = Instant)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Instant)]
    updated_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Instant>)]
    confirmed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Instant>)]
    unsubscribed_at: Option<DateTime<Utc>>,
}

fn subscription(db: &TestDb, topic_arn: &str) -> SubscriptionRow {
    let rows: Vec<SubscriptionRow> =
        with_conn!(db, c => diesel::sql_query("SELECT * FROM sns_subscriptions").load(c).unwrap());
    rows.into_iter()
        .find(|row| row.topic_arn == topic_arn)
        .unwrap()
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    exists: bool,
}

fn table_exists(db: &TestDb, table: &str) -> bool {
    let sql = match db {
        TestDb::Postgres(_) => format!("SELECT to_regclass('{table}') IS NOT NULL AS exists"),
        TestDb::Sqlite(_) => format!(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{table}') \
             AS \"exists\""
        ),
    };
    with_conn!(db, c => diesel::sql_query(&sql).get_result::<Exists>(c).unwrap().exists)
}

// ---------------------------------------------------------------------------------------------
// Migrations and health

both_backends!(migrations_apply_revert_and_apply_again);
async fn migrations_apply_revert_and_apply_again(backend: Backend) {
    let db = TestDb::new(backend);
    let store = Store::connect(db.url(), options(2)).unwrap();
    let all = store.pending_migrations().await.unwrap();
    assert!(!all.is_empty());

    assert_eq!(store.run_migrations().await.unwrap(), all.len());
    assert!(store.pending_migrations().await.unwrap().is_empty());
    assert_eq!(store.run_migrations().await.unwrap(), 0, "idempotent");
    for table in ["sns_messages", "email_events", "sns_subscriptions"] {
        assert!(table_exists(&db, table), "{table} after up");
    }

    assert_eq!(store.revert_all_migrations().await.unwrap(), all.len());
    for table in ["sns_messages", "email_events", "sns_subscriptions"] {
        assert!(!table_exists(&db, table), "{table} after down");
    }
    assert_eq!(store.pending_migrations().await.unwrap(), all);

    assert_eq!(store.run_migrations().await.unwrap(), all.len());
    for table in ["sns_messages", "email_events", "sns_subscriptions"] {
        assert!(table_exists(&db, table), "{table} after up again");
    }
}

both_backends!(instances_migrating_at_once_take_turns, #[tokio::test(flavor = "multi_thread", worker_threads = 2)]);
async fn instances_migrating_at_once_take_turns(backend: Backend) {
    let db = TestDb::new(backend);
    let first = Store::connect(db.url(), options(2)).unwrap();
    let second = Store::connect(db.url(), options(2)).unwrap();
    let total = first.pending_migrations().await.unwrap().len();

    let (a, b) = tokio::join!(first.run_migrations(), second.run_migrations());

    assert_eq!(a.unwrap() + b.unwrap(), total);
    assert!(first.pending_migrations().await.unwrap().is_empty());
}

#[test]
fn an_unreachable_test_server_explains_how_to_start_postgres() {
    let error = TestDatabase::try_create("postgres://postgres@127.0.0.1:1").unwrap_err();

    let message = error.to_string();
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(message.contains("TEST_DATABASE_URL"), "{message}");
    assert!(message.contains("pg_ctlcluster"), "{message}");
}

both_backends!(health_check_fails_while_migrations_are_pending_and_passes_after);
async fn health_check_fails_while_migrations_are_pending_and_passes_after(backend: Backend) {
    let db = TestDb::new(backend);
    let store = Store::connect(db.url(), options(2)).unwrap();

    let before = store.health_check().await;
    assert!(
        matches!(&before, Err(StoreError::Failed(detail)) if detail.contains("pending")),
        "{before:?}"
    );
    assert!(
        !table_exists(&db, "__diesel_schema_migrations"),
        "the health check must not write"
    );

    store.run_migrations().await.unwrap();
    assert_eq!(store.health_check().await, Ok(()));
}

#[test]
fn connect_rejects_inconsistent_options_naming_the_option() {
    let url = "postgres://postgres@127.0.0.1:1/none";
    for (bad, named) in [
        (
            PoolOptions {
                max_size: 0,
                ..PoolOptions::default()
            },
            PoolOption::MaxSize,
        ),
        (
            PoolOptions {
                max_size: 2,
                min_idle: Some(3),
                ..PoolOptions::default()
            },
            PoolOption::MinIdle,
        ),
        (
            PoolOptions {
                connection_timeout: Duration::ZERO,
                ..PoolOptions::default()
            },
            PoolOption::ConnectionTimeout,
        ),
        (
            PoolOptions {
                statement_timeout: Some(Duration::ZERO),
                ..PoolOptions::default()
            },
            PoolOption::StatementTimeout,
        ),
        (
            PoolOptions {
                writers: 0,
                ..PoolOptions::default()
            },
            PoolOption::Writers,
        ),
        (
            PoolOptions {
                write_batch: MAX_WRITE_BATCH + 1,
                ..PoolOptions::default()
            },
            PoolOption::WriteBatch,
        ),
        (
            PoolOptions {
                write_queue: 0,
                ..PoolOptions::default()
            },
            PoolOption::WriteQueue,
        ),
    ] {
        assert_eq!(bad.validate().map_err(|e| option_of(&e)), Err(Some(named)));
        let connected = Store::connect(url, bad);
        assert!(
            matches!(&connected, Err(e) if option_of(e) == Some(named)),
            "{bad:?}: {connected:?}"
        );
    }
    assert_eq!(PoolOptions::default().validate(), Ok(()));
}

fn option_of(error: &SetupError) -> Option<PoolOption> {
    match error {
        SetupError::InvalidOption { option, .. } => Some(*option),
        _ => None,
    }
}

#[test]
fn an_sqlite_path_that_can_never_work_is_refused_at_once_with_its_absolute_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-file"), "").unwrap();
    std::fs::create_dir(dir.path().join("a-directory")).unwrap();

    let under_a_file = Store::connect(
        &format!("sqlite://{}/a-file/x.db", dir.path().display()),
        PoolOptions::default(),
    );
    let a_directory = Store::connect(
        &format!("sqlite://{}/a-directory", dir.path().display()),
        PoolOptions::default(),
    );

    assert!(
        matches!(&under_a_file, Err(SetupError::DataDirectory { path, .. }) if path.ends_with("a-file")),
        "{under_a_file:?}"
    );
    assert!(
        matches!(&a_directory, Err(SetupError::DatabaseFile { path, .. }) if path.starts_with('/') && path.ends_with("a-directory")),
        "{a_directory:?}"
    );
}

#[tokio::test]
async fn only_a_postgresql_server_that_refuses_for_good_is_an_error_at_start_up() {
    let db = TestDatabase::from_env();
    let (server, _) = db.url().rsplit_once('/').unwrap();
    let missing = Store::connect(
        &format!("{server}/ses_webhook_no_such_database"),
        PoolOptions::default(),
    )
    .unwrap();
    let down = Store::connect("postgres://postgres@127.0.0.1:1/x", PoolOptions::default()).unwrap();
    let fine = Store::connect(db.url(), PoolOptions::default()).unwrap();

    let refused = missing.check_not_refused().await;

    assert!(
        matches!(&refused, Err(SetupError::Refused(m)) if m.contains("ses_webhook_no_such_database") && m.contains("does not exist")),
        "{refused:?}"
    );
    assert_eq!(
        down.check_not_refused().await,
        Ok(()),
        "down is not refused"
    );
    assert_eq!(fine.check_not_refused().await, Ok(()));
}

#[test]
fn database_urls_are_logged_without_their_password() {
    for (url, shown) in [
        (
            "postgres://app:s3cret@db.internal:5432/ses",
            "postgres://app:****@db.internal:5432/ses",
        ),
        (
            "postgresql://app:p@ss:word@db/ses?sslmode=require",
            "postgresql://app:****@db/ses?sslmode=require",
        ),
        ("postgres://app@db/ses", "postgres://app@db/ses"),
        (
            "postgres://db/ses?user=app&password=s3cret&sslmode=require",
            "postgres://db/ses?user=app&password=****&sslmode=require",
        ),
        ("sqlite://data/x.db", "sqlite://data/x.db"),
    ] {
        assert_eq!(redact_password(url), shown, "{url}");
    }
}

#[test]
fn connect_chooses_the_backend_by_the_url_scheme_and_rejects_others() {
    let file = TestSqliteFile::new();
    let sqlite = Store::connect(file.url(), PoolOptions::default()).unwrap();
    let postgres = Store::connect(
        "postgresql://postgres:secret@127.0.0.1:1/none",
        PoolOptions::default(),
    )
    .unwrap();

    assert_eq!(sqlite.backend(), Backend::Sqlite);
    assert_eq!(postgres.backend(), Backend::Postgres);
    let shown = postgres.database().to_string();
    assert!(!shown.contains("secret"), "{shown}");
    assert!(
        sqlite
            .database()
            .to_string()
            .contains(&file.path().display().to_string())
    );
    for bad in [
        "mysql://root@127.0.0.1/x",
        "sqlite::memory:",
        "sqlite://",
        "sqlite://data/x.db?mode=memory",
        "data/x.db",
    ] {
        let result = Store::connect(bad, PoolOptions::default());
        assert!(
            matches!(&result, Err(SetupError::InvalidUrl { .. })),
            "{bad}: {result:?}"
        );
    }
}

#[tokio::test]
async fn unreachable_database_is_unavailable() {
    // Nothing listens on port 1; the pool is built anyway so the service can start.
    let store = Store::connect(
        "postgres://postgres@127.0.0.1:1/ses_webhook",
        PoolOptions {
            connection_timeout: Duration::from_millis(500),
            ..PoolOptions::default()
        },
    )
    .unwrap();

    // The timeout only guards against a hang; the pool gives up after `connection_timeout`.
    let guard = Duration::from_secs(30);
    let stored = tokio::time::timeout(
        guard,
        store.store_notification(message("m-1"), three_events()),
    )
    .await
    .expect("store_notification hung");
    assert!(
        matches!(stored, Err(StoreError::Unavailable(_))),
        "{stored:?}"
    );

    let health = tokio::time::timeout(guard, store.health_check())
        .await
        .expect("health_check hung");
    assert!(
        matches!(health, Err(StoreError::Unavailable(_))),
        "{health:?}"
    );

    let migrated = store.run_migrations().await;
    assert!(
        matches!(migrated, Err(SetupError::Unavailable(_))),
        "{migrated:?}"
    );
}

#[tokio::test]
async fn sqlite_creates_the_directory_and_the_file_with_write_ahead_logging() {
    let file = TestSqliteFile::new();
    assert!(!file.path().parent().unwrap().exists());

    #[derive(QueryableByName)]
    struct Mode {
        #[diesel(sql_type = Text)]
        journal_mode: String,
    }
    let mode = || -> String {
        diesel::sql_query("PRAGMA journal_mode")
            .get_result::<Mode>(&mut file.connect())
            .unwrap()
            .journal_mode
    };

    // No idle connection: the pool opens none before it is used.
    let no_idle = PoolOptions {
        min_idle: Some(0),
        ..options(2)
    };
    let store = Store::connect(file.url(), no_idle).unwrap();
    // In WAL mode before the pool opens a connection: the pooled connections (and migrations)
    // never race to switch it, which on a new file could fail with "database is locked".
    let before_any_use = mode();
    store.run_migrations().await.unwrap();

    assert!(file.path().is_file());
    assert_eq!(before_any_use, "wal");
    assert_eq!(mode(), "wal");
}

#[test]
fn sqlite_reports_a_directory_it_cannot_create() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, "a file").unwrap();
    let url = format!("sqlite://{}/x.db", blocker.display());

    let result = Store::connect(&url, PoolOptions::default());

    assert!(
        matches!(&result, Err(SetupError::DataDirectory { path, .. }) if path.contains("not-a-directory")),
        "{result:?}"
    );
}

#[test]
fn sqlite_pool_is_kept_small_whatever_max_size_says() {
    let file = TestSqliteFile::new();

    let sqlite = Store::connect(file.url(), options(50)).unwrap();
    let postgres = Store::connect("postgres://postgres@127.0.0.1:1/none", options(50)).unwrap();

    assert_eq!(sqlite.max_connections(), SQLITE_MAX_CONNECTIONS);
    assert_eq!(postgres.max_connections(), 50);
}

#[tokio::test]
async fn sqlite_write_locked_by_another_writer_is_unavailable_after_the_busy_timeout() {
    let file = TestSqliteFile::new();
    let store = Store::connect(
        file.url(),
        PoolOptions {
            connection_timeout: Duration::from_millis(300),
            ..options(2)
        },
    )
    .unwrap();
    store.run_migrations().await.unwrap();
    let mut other_writer = file.connect();
    other_writer.batch_execute("BEGIN IMMEDIATE").unwrap();

    let started = std::time::Instant::now();
    let stored = store
        .store_notification(message("m-1"), three_events())
        .await;

    assert!(
        matches!(&stored, Err(StoreError::Unavailable(detail)) if detail.contains("locked")),
        "{stored:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "it waited for the lock (busy_timeout) before giving up"
    );

    other_writer.batch_execute("COMMIT").unwrap();
    let stored = store
        .store_notification(message("m-1"), three_events())
        .await
        .unwrap();
    assert_eq!(
        stored.events_inserted, 3,
        "the lock released, the write goes through"
    );
}

// ---------------------------------------------------------------------------------------------
// Notifications

both_backends!(stores_a_notification_with_every_column);
async fn stores_a_notification_with_every_column(backend: Backend) {
    let (db, store) = migrated_store(backend, 2).await;
    let msg = message("sns-1");

    let report = store
        .store_notification(msg.clone(), three_events())
        .await
        .unwrap();

    assert_eq!(
        report,
        StoreReport {
            message_was_new: true,
            events_inserted: 3,
            events_duplicate: 0,
        }
    );

    let archived = messages(&db);
    assert_eq!(archived.len(), 1);
    let m = &archived[0];
    assert!(m.id > 0);
    assert_eq!(m.sns_message_id, "sns-1");
    assert_eq!(m.message_type, "Notification");
    assert_eq!(m.topic_arn, msg.topic_arn);
    assert_eq!(m.sns_timestamp, at(1));
    assert_eq!(m.received_at, at(2));
    assert_eq!(m.ses_type.as_deref(), Some("Bounce"));
    assert_eq!(m.outcome, "processed");
    assert_eq!(m.error_count, 1);
    assert_eq!(m.error_detail.as_deref(), Some("recipient 3: no address"));
    assert_eq!(m.raw_body.as_deref(), Some(msg.raw_body.as_str()));
    assert_eq!(m.events_stored, 3);

    let rows = events(&db);
    assert_eq!(
        rows.iter()
            .map(|r| r.event_key.as_str())
            .collect::<Vec<_>>(),
        ["key-bounce", "key-click", "key-delivered"]
    );
    for row in &rows {
        assert_eq!(row.sns_message_id, "sns-1");
        assert_eq!(row.ses_message_id, "0100018f-ses-message");
        assert!(row.created_at > at(0));
    }

    let bounce = &rows[0];
    assert_eq!(bounce.event_type, "email_bounce");
    assert_eq!(bounce.recipient.as_deref(), Some("bob@example.com"));
    assert_eq!(bounce.bounce_type.as_deref(), Some("hard"));
    assert_eq!(bounce.event_time, at(11));
    assert_eq!(bounce.ses_bounce_type.as_deref(), Some("Permanent"));
    assert_eq!(bounce.bounce_subtype.as_deref(), Some("General"));
    assert_eq!(bounce.bounce_action.as_deref(), Some("failed"));
    assert_eq!(bounce.bounce_status.as_deref(), Some("5.1.1"));
    assert_eq!(
        bounce.diagnostic_code.as_deref(),
        Some("smtp; 550 5.1.1 user unknown")
    );
    assert_eq!(bounce.feedback_id.as_deref(), Some("feedback-1"));
    assert_eq!(
        bounce.reporting_mta.as_deref(),
        Some("dsn; mta.example.com")
    );
    assert_eq!(bounce.link, None);

    let click = &rows[1];
    assert_eq!(click.event_type, "email_click");
    assert_eq!(click.bounce_type, None);
    assert_eq!(click.link.as_deref(), Some("https://example.com/offer"));
    assert_eq!(
        click.link_tags,
        Some(json!({"samplekey0": ["samplevalue0"]}))
    );
    assert_eq!(click.user_agent.as_deref(), Some("Mozilla/5.0"));
    assert_eq!(click.ip_address.as_deref(), Some("192.0.2.1"));

    let delivered = &rows[2];
    assert_eq!(delivered.event_type, "email_delivered");
    assert_eq!(delivered.recipient.as_deref(), Some("alice@example.com"));
    assert_eq!(delivered.mail_time, Some(at(0)));
    assert_eq!(delivered.source.as_deref(), Some("sender@example.com"));
    assert_eq!(delivered.subject.as_deref(), Some("Hello"));
    assert_eq!(
        delivered.smtp_response.as_deref(),
        Some("250 2.6.0 Message received")
    );
    assert_eq!(delivered.remote_mta_ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(delivered.processing_time_ms, Some(546));
    assert_eq!(delivered.tags, Some(json!({"campaign": ["spring"]})));
    assert_eq!(delivered.bounce_action, None);
}

both_backends!(a_message_without_events_is_archived);
async fn a_message_without_events_is_archived(backend: Backend) {
    let (db, store) = migrated_store(backend, 2).await;
    let msg = ArchivedMessage {
        ses_type: Some("Send".to_owned()),
        outcome: MessageOutcome::NoEvents,
        error_count: 0,
        error_detail: None,
        ..message("sns-send")
    };

    let report = store.store_notification(msg, Vec::new()).await.unwrap();

    assert_eq!(
        report,
        StoreReport {
            message_was_new: true,
            events_inserted: 0,
            events_duplicate: 0,
        }
    );
    let archived = messages(&db);
    assert_eq!(archived.len(), 1);
    assert_eq!(archived[0].outcome, "no_events");
    assert_eq!(archived[0].events_stored, 0);
    assert!(events(&db).is_empty());
}

both_backends!(the_same_message_again_stores_nothing_new);
async fn the_same_message_again_stores_nothing_new(backend: Backend) {
    let (db, store) = migrated_store(backend, 2).await;
    store
        .store_notification(message("sns-1"), three_events())
        .await
        .unwrap();

    let again = store
        .store_notification(message("sns-1"), three_events())
        .await
        .unwrap();

    assert_eq!(
        again,
        StoreReport {
            message_was_new: false,
            events_inserted: 0,
            events_duplicate: 3,
        }
    );
    let archived = messages(&db);
    assert_eq!(archived.len(), 1);
    assert_eq!(
        archived[0].events_stored, 3,
        "the first copy's count is kept"
    );
    assert_eq!(events(&db).len(), 3);
}

both_backends!(the_same_events_under_another_sns_message_are_duplicates);
async fn the_same_events_under_another_sns_message_are_duplicates(backend: Backend) {
    let (db, store) = migrated_store(backend, 2).await;
    store
        .store_notification(message("sns-1"), three_events())
        .await
        .unwrap();

    let other = store
        .store_notification(message("sns-2"), three_events())
        .await
        .unwrap();

    assert_eq!(
        other,
        StoreReport {
            message_was_new: true,
            events_inserted: 0,
            events_duplicate: 3,
        }
    );
    let archived = messages(&db);
    assert_eq!(
        archived
            .iter()
            .map(|m| (m.sns_message_id.as_str(), m.events_stored))
            .collect::<Vec<_>>(),
        [("sns-1", 3), ("sns-2", 0)]
    );
    let rows = events(&db);
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter().all(|r| r.sns_message_id == "sns-1"),
        "first carrier kept"
    );
}

both_backends!(some_new_events_among_duplicates_are_counted);
async fn some_new_events_among_duplicates_are_counted(backend: Backend) {
    let (db, store) = migrated_store(backend, 2).await;
    let mut first = three_events();
    let third = first.pop().unwrap();
    store
        .store_notification(message("sns-1"), first)
        .await
        .unwrap();

    let report = store
        .store_notification(message("sns-2"), three_events())
        .await
        .unwrap();

    assert_eq!(
        report,
        StoreReport {
            message_was_new: true,
            events_inserted: 1,
            events_duplicate: 2,
        }
    );
    let rows = events(&db);
    let stored_third = rows
        .iter()
        .find(|r| r.event_key == third.event_key)
        .unwrap();
    assert_eq!(stored_third.sns_message_id, "sns-2");
    assert_eq!(messages(&db)[1].events_stored, 1);
}

both_backends!(concurrent_copies_of_one_message_store_one_set_of_rows, #[tokio::test(flavor = "multi_thread", worker_threads = 4)]);
async fn concurrent_copies_of_one_message_store_one_set_of_rows(backend: Backend) {
    let (db, store) = migrated_store(backend, 10).await;
    let store = Arc::new(store);

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .store_notification(message("sns-dup"), three_events())
                    .await
            })
        })
        .collect();
    let mut reports = Vec::new();
    for task in tasks {
        reports.push(task.await.unwrap().unwrap());
    }

    assert_eq!(reports.iter().map(|r| r.events_inserted).sum::<usize>(), 3);
    assert_eq!(reports.iter().filter(|r| r.message_was_new).count(), 1);
    assert!(
        reports
            .iter()
            .all(|r| r.events_inserted + r.events_duplicate == 3)
    );
    assert_eq!(messages(&db).len(), 1);
    assert_eq!(events(&db).len(), 3);
}

both_backends!(concurrent_copies_of_the_same_events_under_different_messages_store_them_once, #[tokio::test(flavor = "multi_thread", worker_threads = 4)]);
async fn concurrent_copies_of_the_same_events_under_different_messages_store_them_once(
    backend: Backend,
) {
    let (db, store) = migrated_store(backend, 10).await;
    let store = Arc::new(store);

    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&store);
            // Many events, listed in alternating orders: two transactions inserting the same
            // keys in opposite orders would deadlock unless the store fixes the order.
            let mut events = many_events();
            if i % 2 == 1 {
                events.reverse();
            }
            tokio::spawn(async move {
                store
                    .store_notification(message(&format!("sns-{i}")), events)
                    .await
            })
        })
        .collect();
    let mut reports = Vec::new();
    for task in tasks {
        reports.push(task.await.unwrap().unwrap());
    }

    let total = many_events().len();
    assert_eq!(
        reports.iter().map(|r| r.events_inserted).sum::<usize>(),
        total
    );
    assert!(reports.iter().all(|r| r.message_was_new));
    let archived = messages(&db);
    assert_eq!(archived.len(), 20);
    assert_eq!(
        archived.iter().map(|m| m.events_stored).sum::<i32>(),
        i32::try_from(total).unwrap()
    );
    assert_eq!(events(&db).len(), total);
}

both_backends!(bounce_type_is_present_exactly_for_bounces);
async fn bounce_type_is_present_exactly_for_bounces(backend: Backend) {
    let (db, store) = migrated_store(backend, 2).await;

    // Through the store: a delivery carrying a bounce type fails, and nothing is half-written.
    let bad = PlatformEvent {
        bounce_type: Some(BounceClass::Soft),
        ..bare_event("key-bad", EventType::Delivered)
    };
    let good = bare_event("key-good", EventType::Open);
    let result = store
        .store_notification(message("sns-bad"), vec![good, bad])
        .await;
    assert!(matches!(result, Err(StoreError::Failed(_))), "{result:?}");
    assert!(messages(&db).is_empty(), "the transaction was rolled back");
    assert!(events(&db).is_empty(), "the transaction was rolled back");

    // Directly: a bounce without a bounce type, and an unknown bounce type.
    let at = "'2024-05-01T12:00:00.000000Z'";
    for sql in [
        format!(
            "INSERT INTO email_events (event_key, event_type, ses_message_id, sns_message_id, event_time) \
             VALUES ('k1', 'email_bounce', 'ses', 'sns', {at})"
        ),
        format!(
            "INSERT INTO email_events (event_key, event_type, bounce_type, ses_message_id, sns_message_id, event_time) \
             VALUES ('k2', 'email_bounce', 'medium', 'ses', 'sns', {at})"
        ),
        format!(
            "INSERT INTO email_events (event_key, event_type, ses_message_id, sns_message_id, event_time) \
             VALUES ('k3', 'email_unsubscribe', 'ses', 'sns', {at})"
        ),
    ] {
        let error = with_conn!(db, c => c.batch_execute(&sql).unwrap_err());
        assert!(
            matches!(
                error,
                DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, _)
            ),
            "{sql}: {error:?}"
        );
    }
    with_conn!(db, c => c.batch_execute(&format!(
        "INSERT INTO email_events (event_key, event_type, bounce_type, ses_message_id, sns_message_id, event_time) \
         VALUES ('k4', 'email_bounce', 'soft', 'ses', 'sns', {at})"
    )))
    .unwrap();
}

both_backends!(text_with_nul_characters_is_stored_with_replacement_characters);
async fn text_with_nul_characters_is_stored_with_replacement_characters(backend: Backend) {
    // A remote mail server's diagnostic text can hold anything; PostgreSQL's TEXT and JSONB
    // cannot hold U+0000. Refusing the row would lose the bounce for good (SNS gives up).
    let (db, store) = migrated_store(backend, 2).await;
    let bounce = PlatformEvent {
        recipient: Some("bob@example.com".to_owned()),
        bounce_type: Some(BounceClass::Hard),
        subject: Some("Hello\0there".to_owned()),
        diagnostic_code: Some("smtp; 550\0 user unknown".to_owned()),
        tags: Some(json!({"campaign\0": ["spr\0ing"]})),
        ..bare_event("key-nul", EventType::Bounce)
    };
    let archived = ArchivedMessage {
        error_detail: Some("recipient\0 3".to_owned()),
        ..message("sns-nul")
    };

    let report = store
        .store_notification(archived, vec![bounce])
        .await
        .unwrap();

    assert_eq!(report.events_inserted, 1);
    let rows = events(&db);
    assert_eq!(rows[0].subject.as_deref(), Some("Hello\u{FFFD}there"));
    assert_eq!(
        rows[0].diagnostic_code.as_deref(),
        Some("smtp; 550\u{FFFD} user unknown")
    );
    assert_eq!(
        rows[0].tags,
        Some(json!({"campaign\u{FFFD}": ["spr\u{FFFD}ing"]}))
    );
    assert_eq!(
        messages(&db)[0].error_detail.as_deref(),
        Some("recipient\u{FFFD} 3")
    );
}

// ---------------------------------------------------------------------------------------------
// Group commit

fn event_with_key(event_key: &str) -> PlatformEvent {
    PlatformEvent {
        recipient: Some(format!("{event_key}@example.com")),
        ..bare_event(event_key, EventType::Delivered)
    }
}

/// Notifications that meet every case a batch resolves: a message repeated in the batch, an
/// event carried by two messages, a message and events stored before the batch, a message
/// without events.
fn tangled_notifications() -> Vec<(ArchivedMessage, Vec<PlatformEvent>)> {
    let three = three_events();
    vec![
        (
            message("z-first"),
            vec![event_with_key("e-2"), event_with_key("e-1")],
        ),
        (
            message("z-first"),
            vec![event_with_key("e-2"), event_with_key("e-1")],
        ),
        (
            message("b-shares"),
            vec![event_with_key("e-1"), event_with_key("e-3")],
        ),
        (message("stored-before"), three.clone()),
        (message("no-events"), vec![]),
        (
            message("a-mixed"),
            vec![three[1].clone(), event_with_key("e-4")],
        ),
    ]
}

/// `(sns_message_id, events_stored)` of each archived message and `(event_key, sns_message_id)`
/// of each event.
type Contents = (Vec<(String, i32)>, Vec<(String, String)>);

/// What the tables hold, in an order that does not depend on how rows were inserted.
fn contents(db: &TestDb) -> Contents {
    let mut archived: Vec<(String, i32)> = messages(db)
        .into_iter()
        .map(|m| (m.sns_message_id, m.events_stored))
        .collect();
    archived.sort();
    let mut stored: Vec<(String, String)> = events(db)
        .into_iter()
        .map(|e| (e.event_key, e.sns_message_id))
        .collect();
    stored.sort();
    (archived, stored)
}

both_backends!(a_batch_stores_and_answers_exactly_as_one_notification_after_another);
async fn a_batch_stores_and_answers_exactly_as_one_notification_after_another(backend: Backend) {
    let notifications = tangled_notifications();
    let (batch_db, batch_store) = migrated_store(backend, 2).await;
    let (serial_db, serial_store) = migrated_store(backend, 2).await;
    for store in [&batch_store, &serial_store] {
        store
            .store_notification(message("stored-before"), three_events())
            .await
            .unwrap();
    }

    let batch: Vec<StoreReport> =
        adapters_store::testing::store_as_one_batch(&batch_store, notifications.clone())
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
    let mut serial = Vec::new();
    for (message, events) in notifications {
        serial.push(
            serial_store
                .store_notification(message, events)
                .await
                .unwrap(),
        );
    }

    let report = |new, inserted, duplicate| StoreReport {
        message_was_new: new,
        events_inserted: inserted,
        events_duplicate: duplicate,
    };
    assert_eq!(
        batch,
        [
            report(true, 2, 0),
            report(false, 0, 2),
            report(true, 1, 1),
            report(false, 0, 3),
            report(true, 0, 0),
            report(true, 1, 1),
        ]
    );
    assert_eq!(batch, serial);
    let (archived, stored) = contents(&batch_db);
    assert_eq!(
        archived,
        [
            ("a-mixed".to_owned(), 1),
            ("b-shares".to_owned(), 1),
            ("no-events".to_owned(), 0),
            ("stored-before".to_owned(), 3),
            ("z-first".to_owned(), 2),
        ]
    );
    let owner = |key: &str, id: &str| (key.to_owned(), id.to_owned());
    assert_eq!(
        stored,
        [
            owner("e-1", "z-first"),
            owner("e-2", "z-first"),
            owner("e-3", "b-shares"),
            owner("e-4", "a-mixed"),
            owner("key-bounce", "stored-before"),
            owner("key-click", "stored-before"),
            owner("key-delivered", "stored-before"),
        ]
    );
    assert_eq!((archived, stored), contents(&serial_db));
}

both_backends!(a_batch_the_database_refuses_is_stored_one_notification_at_a_time);
async fn a_batch_the_database_refuses_is_stored_one_notification_at_a_time(backend: Backend) {
    let (db, store) = migrated_store(backend, 2).await;
    // An empty event key breaks a CHECK constraint: the whole batch statement fails.
    let refused = vec![event_with_key("ok-2"), event_with_key("")];
    let notifications = vec![
        (message("before"), vec![event_with_key("ok-1")]),
        (message("refused"), refused),
        (message("after"), vec![event_with_key("ok-3")]),
    ];

    let answers = adapters_store::testing::store_as_one_batch(&store, notifications)
        .await
        .unwrap();

    let stored_one = StoreReport {
        message_was_new: true,
        events_inserted: 1,
        events_duplicate: 0,
    };
    assert_eq!(answers[0], Ok(stored_one));
    assert!(
        matches!(answers[1], Err(StoreError::Failed(_))),
        "{:?}",
        answers[1]
    );
    assert_eq!(answers[2], Ok(stored_one));
    let (archived, stored) = contents(&db);
    assert_eq!(
        archived,
        [("after".to_owned(), 1), ("before".to_owned(), 1)]
    );
    let keys: Vec<&str> = stored.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, ["ok-1", "ok-3"]);
}

both_backends!(many_concurrent_notifications_are_each_answered_for_their_own_rows, #[tokio::test(flavor = "multi_thread", worker_threads = 4)]);
async fn many_concurrent_notifications_are_each_answered_for_their_own_rows(backend: Backend) {
    let (db, store) = migrated_store(backend, 4).await;
    // 200 messages, each sent twice, each sharing one event with its neighbour: the writers
    // batch them however they arrive; the answers and rows must not depend on it.
    let notification = |i: usize| {
        let events = vec![
            event_with_key(&format!("own-{i:03}")),
            event_with_key(&format!("shared-{:03}", i / 2)),
        ];
        (message(&format!("m-{i:03}")), events)
    };
    let tasks: Vec<_> = (0..400)
        .map(|n| {
            let store = store.clone();
            let (message, events) = notification(n % 200);
            tokio::spawn(async move { store.store_notification(message, events).await })
        })
        .collect();
    let mut reports = Vec::new();
    for task in tasks {
        reports.push(task.await.unwrap().unwrap());
    }

    // Per message, over its two copies: one was new, and together they inserted what its row
    // says it stored (reports handed to the wrong request would break this).
    let mut per_message: std::collections::BTreeMap<String, (usize, usize)> =
        std::collections::BTreeMap::new();
    for (n, report) in reports.iter().enumerate() {
        let entry = per_message.entry(format!("m-{:03}", n % 200)).or_default();
        entry.0 += usize::from(report.message_was_new);
        entry.1 += report.events_inserted;
        assert_eq!(
            report.events_inserted + report.events_duplicate,
            2,
            "{report:?}"
        );
    }
    let new_messages = reports.iter().filter(|r| r.message_was_new).count();
    let inserted: usize = reports.iter().map(|r| r.events_inserted).sum();
    let duplicates: usize = reports.iter().map(|r| r.events_duplicate).sum();
    assert_eq!(new_messages, 200);
    assert_eq!(inserted, 300, "200 own events and 100 shared ones");
    assert_eq!(inserted + duplicates, 800);
    let (archived, stored) = contents(&db);
    assert_eq!(archived.len(), 200);
    assert_eq!(stored.len(), 300);
    let stored_per_message: i32 = archived.iter().map(|(_, n)| n).sum();
    assert_eq!(stored_per_message, 300);
    for (id, events_stored) in &archived {
        let owned = stored.iter().filter(|(_, owner)| owner == id).count();
        assert_eq!(usize::try_from(*events_stored).unwrap(), owned, "{id}");
        assert_eq!(per_message[id], (1, owned), "{id}");
    }
}

both_backends!(an_idle_writer_gives_its_connection_back_to_the_pool);
async fn an_idle_writer_gives_its_connection_back_to_the_pool(backend: Backend) {
    // One connection in all: the writer holds it while busy, so the health check can only get
    // it once the writer has let it go.
    let (_db, store) = migrated_store(backend, 1).await;
    store
        .store_notification(message("m-1"), three_events())
        .await
        .unwrap();

    let started = std::time::Instant::now();
    store.health_check().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the health check waited {:?} for the writer's connection",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_notification_that_waited_too_long_for_the_writer_is_refused_untried() {
    let db = TestDatabase::from_env();
    let store = Store::connect(
        db.url(),
        PoolOptions {
            max_size: 3,
            connection_timeout: Duration::from_millis(500),
            lock_timeout: Some(Duration::from_secs(2)),
            ..PoolOptions::default()
        },
    )
    .unwrap();
    store.run_migrations().await.unwrap();
    store
        .store_notification(message("locked"), Vec::new())
        .await
        .unwrap();
    // The writer is held for the lock timeout (2 s) by a copy of a message whose row another
    // session is deleting; a notification queued meanwhile waits 4x the connection timeout.
    let mut holder = PgConnection::establish(db.url()).unwrap();
    holder
        .batch_execute("BEGIN; DELETE FROM sns_messages WHERE sns_message_id = 'locked'")
        .unwrap();
    let blocked = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .store_notification(message("locked"), Vec::new())
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;

    let late = store
        .store_notification(message("late"), three_events())
        .await;
    holder.batch_execute("ROLLBACK").unwrap();
    let _ = blocked.await.unwrap();

    let Err(StoreError::Unavailable(reason)) = late else {
        panic!("expected unavailable, got {late:?}");
    };
    assert!(reason.contains("waited"), "{reason}");
    let (archived, stored) = contents(&TestDb::Postgres(db));
    assert_eq!(
        archived,
        [("locked".to_owned(), 0)],
        "the late notification was written"
    );
    assert!(stored.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_notification_blocked_by_a_lock_held_elsewhere_fails_alone_and_soon() {
    let db = TestDatabase::from_env();
    let store = Store::connect(
        db.url(),
        PoolOptions {
            max_size: 3,
            lock_timeout: Some(Duration::from_millis(300)),
            ..PoolOptions::default()
        },
    )
    .unwrap();
    store.run_migrations().await.unwrap();
    store
        .store_notification(message("locked"), Vec::new())
        .await
        .unwrap();
    // Another session deletes the archived message and does not commit: a new copy of it must
    // wait to learn whether that delete commits.
    let mut holder = PgConnection::establish(db.url()).unwrap();
    holder
        .batch_execute("BEGIN; DELETE FROM sns_messages WHERE sns_message_id = 'locked'")
        .unwrap();

    let started = std::time::Instant::now();
    let blocked = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .store_notification(message("locked"), Vec::new())
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let free = store
        .store_notification(message("free"), three_events())
        .await;
    let free_after = started.elapsed();
    let blocked = blocked.await.unwrap();
    holder.batch_execute("ROLLBACK").unwrap();

    assert!(matches!(blocked, Err(StoreError::Failed(_))), "{blocked:?}");
    assert_eq!(free.unwrap().events_inserted, 3);
    assert!(
        free_after < Duration::from_secs(3),
        "a notification queued behind a blocked one waited {free_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_write_queue_answers_unavailable_at_once() {
    // Nothing listens on port 1: the only writer waits for a connection while the queue fills.
    let store = Store::connect(
        "postgres://postgres@127.0.0.1:1/ses_webhook",
        PoolOptions {
            connection_timeout: Duration::from_secs(2),
            writers: 1,
            write_queue: 1,
            ..PoolOptions::default()
        },
    )
    .unwrap();

    let started = std::time::Instant::now();
    let writes = (0..6).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let result = store
                .store_notification(message(&format!("m-{i}")), Vec::new())
                .await;
            (result, started.elapsed())
        })
    });
    let mut full = 0;
    for write in writes.collect::<Vec<_>>() {
        let (result, elapsed) = write.await.unwrap();
        let Err(StoreError::Unavailable(reason)) = result else {
            panic!("expected unavailable, got {result:?}");
        };
        if reason.contains("write queue is full") {
            full += 1;
            assert!(
                elapsed < Duration::from_secs(1),
                "a full queue answered after {elapsed:?}"
            );
        }
    }
    assert!(
        full >= 3,
        "at most one write waits in the queue and one with the writer: {full} full"
    );
}

// ---------------------------------------------------------------------------------------------
// Subscriptions

fn subscription_message(sns_message_id: &str, message_type: SnsMessageType) -> ArchivedMessage {
    ArchivedMessage {
        message_type,
        ses_type: None,
        outcome: MessageOutcome::Subscription,
        error_count: 0,
        error_detail: None,
        ..message(sns_message_id)
    }
}

both_backends!(subscription_moves_from_pending_to_confirmed_to_unsubscribed);
async fn subscription_moves_from_pending_to_confirmed_to_unsubscribed(backend: Backend) {
    let (db, store) = migrated_store(backend, 2).await;
    let topic = "arn:aws:sns:us-east-1:123456789012:ses-events";
    let url = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=t";
    let change = |state, subscribe_url: Option<&str>, seconds| SubscriptionChange {
        topic_arn: topic.to_owned(),
        state,
        subscribe_url: subscribe_url.map(str::to_owned),
        at: at(seconds),
    };
    let confirmation = subscription_message("sub-1", SnsMessageType::SubscriptionConfirmation);

    store
        .record_subscription(
            confirmation.clone(),
            change(SubscriptionState::Pending, Some(url), 100),
        )
        .await
        .unwrap();
    let pending = subscription(&db, topic);
    assert_eq!(pending.state, "pending");
    assert_eq!(pending.subscribe_url.as_deref(), Some(url));
    assert_eq!((pending.created_at, pending.updated_at), (at(100), at(100)));
    assert_eq!(
        (pending.confirmed_at, pending.unsubscribed_at),
        (None, None)
    );

    // The same confirmation message again (an SNS retry) is archived once and changes nothing.
    store
        .record_subscription(
            confirmation.clone(),
            change(SubscriptionState::Pending, Some(url), 100),
        )
        .await
        .unwrap();
    assert_eq!(messages(&db).len(), 1);

    // A later change of an archived subscription: the upsert alone, no second archive row.
    store
        .change_subscription(change(SubscriptionState::Confirmed, None, 200))
        .await
        .unwrap();
    assert_eq!(messages(&db).len(), 1);
    let confirmed = subscription(&db, topic);
    assert_eq!(confirmed.state, "confirmed");
    assert_eq!(confirmed.subscribe_url, None);
    assert_eq!(
        (confirmed.created_at, confirmed.updated_at),
        (at(100), at(200))
    );
    assert_eq!(
        (confirmed.confirmed_at, confirmed.unsubscribed_at),
        (Some(at(200)), None)
    );

    // A late change older than the stored state is ignored.
    store
        .change_subscription(change(SubscriptionState::Pending, Some(url), 150))
        .await
        .unwrap();
    assert_eq!(subscription(&db, topic).state, "confirmed");

    let unsubscribe = subscription_message("unsub-1", SnsMessageType::UnsubscribeConfirmation);
    store
        .record_subscription(
            unsubscribe,
            change(SubscriptionState::Unsubscribed, None, 300),
        )
        .await
        .unwrap();
    let unsubscribed = subscription(&db, topic);
    assert_eq!(unsubscribed.state, "unsubscribed");
    assert_eq!(unsubscribed.updated_at, at(300));
    assert_eq!(
        (unsubscribed.confirmed_at, unsubscribed.unsubscribed_at),
        (Some(at(200)), Some(at(300)))
    );

    let archived = messages(&db);
    assert_eq!(
        archived
            .iter()
            .map(|m| (
                m.sns_message_id.as_str(),
                m.message_type.as_str(),
                m.outcome.as_str()
            ))
            .collect::<Vec<_>>(),
        [
            ("sub-1", "SubscriptionConfirmation", "subscription"),
            ("unsub-1", "UnsubscribeConfirmation", "subscription"),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Every SES fixture

/// The archive row of a notification carrying `text`, as the ingest use case builds it.
fn fixture_message(
    sns_message_id: &str,
    text: &str,
    mapped: &domain::mapping::Mapped,
) -> ArchivedMessage {
    let outcome = match mapped.kind {
        MappedKind::NotSes => MessageOutcome::NotSes,
        MappedKind::NoPlatformEvent => MessageOutcome::NoEvents,
        MappedKind::Events if mapped.events.is_empty() => MessageOutcome::Failed,
        MappedKind::Events => MessageOutcome::Processed,
    };
    ArchivedMessage {
        ses_type: mapped.ses_type.clone(),
        outcome,
        error_count: u32::try_from(mapped.errors.len()).unwrap(),
        error_detail: (!mapped.errors.is_empty()).then(|| mapped.errors.join("; ")),
        raw_body: text.to_owned(),
        ..message(sns_message_id)
    }
}

/// Every column of a stored event equals the event it was stored from.
fn assert_row_is(row: &EventRow, event: &PlatformEvent, name: &str) {
    assert_eq!(row.event_type, event.event_type.as_str(), "{name}");
    assert_eq!(row.recipient, event.recipient, "{name}");
    assert_eq!(
        row.bounce_type.as_deref(),
        event.bounce_type.map(|b| b.as_str()),
        "{name}"
    );
    assert_eq!(row.ses_message_id, event.ses_message_id, "{name}");
    assert_eq!(row.event_time, event.event_time, "{name}");
    assert_eq!(row.mail_time, event.mail_time, "{name}");
    assert_eq!(row.source, event.source, "{name}");
    assert_eq!(row.subject, event.subject, "{name}");
    assert_eq!(row.ses_bounce_type, event.ses_bounce_type, "{name}");
    assert_eq!(row.bounce_subtype, event.bounce_subtype, "{name}");
    assert_eq!(row.bounce_action, event.action, "{name}");
    assert_eq!(row.bounce_status, event.status, "{name}");
    assert_eq!(row.diagnostic_code, event.diagnostic_code, "{name}");
    assert_eq!(row.feedback_id, event.feedback_id, "{name}");
    assert_eq!(
        row.complaint_feedback_type, event.complaint_feedback_type,
        "{name}"
    );
    assert_eq!(row.complaint_subtype, event.complaint_subtype, "{name}");
    assert_eq!(row.smtp_response, event.smtp_response, "{name}");
    assert_eq!(row.reporting_mta, event.reporting_mta, "{name}");
    assert_eq!(row.remote_mta_ip, event.remote_mta_ip, "{name}");
    assert_eq!(
        row.processing_time_ms, event.processing_time_millis,
        "{name}"
    );
    assert_eq!(row.link, event.link, "{name}");
    assert_eq!(row.link_tags, event.link_tags, "{name}");
    assert_eq!(row.user_agent, event.user_agent, "{name}");
    assert_eq!(row.ip_address, event.ip_address, "{name}");
    assert_eq!(row.tags, event.tags, "{name}");
}

both_backends!(every_ses_fixture_is_stored_column_for_column_and_then_only_as_duplicates);
async fn every_ses_fixture_is_stored_column_for_column_and_then_only_as_duplicates(
    backend: Backend,
) {
    let (db, store) = migrated_store(backend, 2).await;
    let records = adapters_store::testing::whole_ses_records();
    assert!(records.len() >= 30, "fixtures missing: {}", records.len());
    let mapped: Vec<_> = records
        .iter()
        .map(|(name, text)| (name, text, map_message(text)))
        .collect();
    assert!(
        mapped.iter().map(|(_, _, m)| m.events.len()).sum::<usize>() >= 25,
        "the fixtures carry events"
    );

    // First delivery of each: every event is new unless an earlier fixture carried it.
    let mut first_carrier = std::collections::BTreeMap::new();
    for (name, text, m) in &mapped {
        let report = store
            .store_notification(
                fixture_message(&format!("sns-{name}"), text, m),
                m.events.clone(),
            )
            .await
            .unwrap();

        assert!(report.message_was_new, "{name}");
        let new_here: Vec<_> = m
            .events
            .iter()
            .filter(|e| !first_carrier.contains_key(&e.event_key))
            .collect();
        assert_eq!(report.events_inserted, new_here.len(), "{name}");
        assert_eq!(
            report.events_duplicate,
            m.events.len() - new_here.len(),
            "{name}"
        );
        for event in new_here {
            first_carrier.insert(event.event_key.clone(), (name.as_str(), event));
        }
    }

    let rows = events(&db);
    assert_eq!(rows.len(), first_carrier.len());
    for row in &rows {
        let (name, event) = first_carrier[&row.event_key];
        assert_eq!(row.sns_message_id, format!("sns-{name}"), "{name}");
        assert_row_is(row, event, name);
    }
    let archived = messages(&db);
    assert_eq!(archived.len(), records.len());
    assert_eq!(
        archived.iter().map(|m| m.events_stored).sum::<i32>(),
        i32::try_from(rows.len()).unwrap()
    );
    for (m, (name, text)) in archived.iter().zip(&records) {
        assert_eq!(m.sns_message_id, format!("sns-{name}"));
        assert_eq!(m.raw_body.as_deref(), Some(text.as_str()), "{name}");
    }

    // The same SNS messages again (an SNS retry), then the same SES records under new SNS
    // message ids: nothing new but the second archive rows.
    for (prefix, message_is_new) in [("sns-", false), ("again-", true)] {
        for (name, text, m) in &mapped {
            let report = store
                .store_notification(
                    fixture_message(&format!("{prefix}{name}"), text, m),
                    m.events.clone(),
                )
                .await
                .unwrap();

            assert_eq!(report.message_was_new, message_is_new, "{prefix}{name}");
            assert_eq!(report.events_inserted, 0, "{prefix}{name}");
            assert_eq!(report.events_duplicate, m.events.len(), "{prefix}{name}");
        }
    }
    assert_eq!(events(&db).len(), rows.len());
    assert_eq!(messages(&db).len(), 2 * records.len());
}

both_backends!(reprocess_candidates_are_the_messages_that_did_not_map_cleanly);
async fn reprocess_candidates_are_the_messages_that_did_not_map_cleanly(backend: Backend) {
    let (_db, store) = migrated_store(backend, 2).await;
    let clean = ArchivedMessage {
        error_count: 0,
        error_detail: None,
        ..message("clean")
    };
    let failed = ArchivedMessage {
        outcome: MessageOutcome::Failed,
        received_at: at(100),
        ..message("failed")
    };
    let not_ses = ArchivedMessage {
        outcome: MessageOutcome::NotSes,
        error_count: 0,
        received_at: at(200),
        ..message("not-ses")
    };
    for msg in [&clean, &failed, &not_ses] {
        store
            .store_notification(msg.clone(), Vec::new())
            .await
            .unwrap();
    }

    let all = store
        .reprocess_candidates(&ReprocessFilter::default(), 0, 10)
        .await
        .unwrap();
    let after_first = store
        .reprocess_candidates(&ReprocessFilter::default(), all[0].id, 10)
        .await
        .unwrap();
    let since = store
        .reprocess_candidates(
            &ReprocessFilter {
                since: Some(at(150)),
                ..ReprocessFilter::default()
            },
            0,
            10,
        )
        .await
        .unwrap();
    let by_id = store
        .reprocess_candidates(
            &ReprocessFilter {
                sns_message_id: Some("clean".into()),
                ..ReprocessFilter::default()
            },
            0,
            10,
        )
        .await
        .unwrap();

    let ids = |list: &[StoredMessage]| {
        list.iter()
            .map(|m| m.sns_message_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&all), ["failed", "not-ses"]);
    assert_eq!(all[0].outcome, MessageOutcome::Failed);
    assert_eq!(all[0].raw_body, failed.raw_body);
    assert_eq!(ids(&after_first), ["not-ses"]);
    assert_eq!(ids(&since), ["not-ses"]);
    assert_eq!(ids(&by_id), ["clean"]);
}

both_backends!(a_reprocessed_message_gets_its_events_and_new_outcome_once);
async fn a_reprocessed_message_gets_its_events_and_new_outcome_once(backend: Backend) {
    let (db, store) = migrated_store(backend, 2).await;
    let failed = ArchivedMessage {
        outcome: MessageOutcome::Failed,
        ..message("was-failed")
    };
    store.store_notification(failed, Vec::new()).await.unwrap();
    let update = Reprocessed {
        sns_message_id: "was-failed".into(),
        ses_type: Some("Bounce".into()),
        ses_message_id: Some("ses-was-failed".into()),
        outcome: MessageOutcome::Processed,
        error_count: 0,
        error_detail: None,
        at: at(500),
        tally: None,
    };

    let first = store
        .store_reprocessed(update.clone(), three_events())
        .await
        .unwrap();
    let second = store
        .store_reprocessed(update, three_events())
        .await
        .unwrap();

    assert_eq!((first.events_inserted, first.events_duplicate), (3, 0));
    assert_eq!((second.events_inserted, second.events_duplicate), (0, 3));
    let archived = messages(&db);
    assert_eq!(archived[0].outcome, "processed");
    assert_eq!(archived[0].events_stored, 3);
    assert_eq!(events(&db).len(), 3);
    // The SES message id the reprocessed record named is recorded: the email's timeline finds
    // the message by it.
    let timeline = domain::ports::HistoryStore::message_timeline(&store, "ses-was-failed".into())
        .await
        .unwrap();
    assert_eq!(timeline.messages.len(), 1);
    assert_eq!(timeline.messages[0].sns_message_id, "was-failed");
}

both_backends!(purging_raw_bodies_keeps_rows_and_events);
async fn purging_raw_bodies_keeps_rows_and_events(backend: Backend) {
    let (db, store) = migrated_store(backend, 2).await;
    let old = ArchivedMessage {
        received_at: at(10),
        ..message("old")
    };
    let older = ArchivedMessage {
        received_at: at(5),
        ..message("older")
    };
    let recent = ArchivedMessage {
        received_at: at(1_000),
        ..message("recent")
    };
    store.store_notification(old, three_events()).await.unwrap();
    store.store_notification(older, Vec::new()).await.unwrap();
    store.store_notification(recent, Vec::new()).await.unwrap();

    let first = store.purge_raw_bodies(at(100), 1).await.unwrap();
    let second = store.purge_raw_bodies(at(100), 1).await.unwrap();
    let third = store.purge_raw_bodies(at(100), 1).await.unwrap();

    assert_eq!((first, second, third), (1, 1, 0));
    let archived = messages(&db);
    assert_eq!(archived.len(), 3);
    let bodies: Vec<bool> = archived.iter().map(|m| m.raw_body.is_some()).collect();
    assert_eq!(bodies, [false, false, true]);
    assert_eq!(events(&db).len(), 3);
}
