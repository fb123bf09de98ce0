//! `PgStore` against a real PostgreSQL server, each test on its own fresh database.
//! Set `TEST_DATABASE_URL` to use a server other than `postgres://postgres@127.0.0.1:5432`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use adapters_store::testing::TestDatabase;
use adapters_store::{PgStore, PoolOptions, SetupError};
use chrono::{DateTime, TimeZone, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Integer, Jsonb, Nullable, Text, Timestamptz};
use domain::ports::{
    ArchivedMessage, EventStore, MessageOutcome, StoreError, StoreReport, SubscriptionChange,
    SubscriptionState,
};
use domain::{BounceClass, EventType, PlatformEvent, SnsMessageType};
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// Arrangement helpers

fn test_db() -> TestDatabase {
    TestDatabase::from_env()
}

fn options(max_size: u32) -> PoolOptions {
    PoolOptions {
        max_size,
        min_idle: Some(1),
        ..PoolOptions::default()
    }
}

/// A fresh database with the schema applied, and a store on it.
async fn migrated_store(max_size: u32) -> (TestDatabase, PgStore) {
    let db = test_db();
    let store = PgStore::connect(db.url(), options(max_size)).unwrap();
    store.run_migrations().await.unwrap();
    (db, store)
}

fn conn(db: &TestDatabase) -> PgConnection {
    PgConnection::establish(db.url()).unwrap()
}

fn at(seconds: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(seconds.into())
}

fn message(sns_message_id: &str) -> ArchivedMessage {
    ArchivedMessage {
        sns_message_id: sns_message_id.to_owned(),
        message_type: SnsMessageType::Notification,
        topic_arn: "arn:aws:sns:us-east-1:123456789012:ses-events".to_owned(),
        sns_timestamp: at(1),
        received_at: at(2),
        ses_type: Some("Bounce".to_owned()),
        outcome: MessageOutcome::Processed,
        error_count: 1,
        error_detail: Some("recipient 3: no address".to_owned()),
        raw_body: format!(r#"{{"Type":"Notification","MessageId":"{sns_message_id}"}}"#),
    }
}

fn bare_event(event_key: &str, event_type: EventType) -> PlatformEvent {
    PlatformEvent {
        event_key: event_key.to_owned(),
        event_type,
        recipient: None,
        bounce_type: None,
        ses_message_id: "0100018f-ses-message".to_owned(),
        event_time: at(0),
        mail_time: None,
        source: None,
        subject: None,
        ses_bounce_type: None,
        bounce_subtype: None,
        action: None,
        status: None,
        diagnostic_code: None,
        feedback_id: None,
        complaint_feedback_type: None,
        complaint_subtype: None,
        smtp_response: None,
        reporting_mta: None,
        remote_mta_ip: None,
        processing_time_millis: None,
        link: None,
        link_tags: None,
        user_agent: None,
        ip_address: None,
        tags: None,
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
    #[diesel(sql_type = Timestamptz)]
    sns_timestamp: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
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

fn messages(db: &TestDatabase) -> Vec<MessageRow> {
    diesel::sql_query("SELECT * FROM sns_messages ORDER BY id")
        .load(&mut conn(db))
        .unwrap()
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
    #[diesel(sql_type = Timestamptz)]
    event_time: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
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
    smtp_response: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    reporting_mta: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    remote_mta_ip: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    processing_time_ms: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    link: Option<String>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    link_tags: Option<serde_json::Value>,
    #[diesel(sql_type = Nullable<Text>)]
    user_agent: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    ip_address: Option<String>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    tags: Option<serde_json::Value>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

fn events(db: &TestDatabase) -> Vec<EventRow> {
    diesel::sql_query("SELECT * FROM email_events ORDER BY event_key")
        .load(&mut conn(db))
        .unwrap()
}

#[derive(Debug, QueryableByName)]
struct SubscriptionRow {
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Nullable<Text>)]
    subscribe_url: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    confirmed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    unsubscribed_at: Option<DateTime<Utc>>,
}

fn subscription(db: &TestDatabase, topic_arn: &str) -> SubscriptionRow {
    diesel::sql_query("SELECT * FROM sns_subscriptions WHERE topic_arn = $1")
        .bind::<Text, _>(topic_arn)
        .get_result(&mut conn(db))
        .unwrap()
}

fn table_exists(db: &TestDatabase, table: &str) -> bool {
    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    diesel::sql_query("SELECT to_regclass($1) IS NOT NULL AS exists")
        .bind::<Text, _>(table)
        .get_result::<Exists>(&mut conn(db))
        .unwrap()
        .exists
}

// ---------------------------------------------------------------------------------------------
// Migrations and health

#[tokio::test]
async fn migrations_apply_revert_and_apply_again() {
    let db = test_db();
    let store = PgStore::connect(db.url(), options(2)).unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_migrating_at_once_take_turns() {
    let db = test_db();
    let first = PgStore::connect(db.url(), options(2)).unwrap();
    let second = PgStore::connect(db.url(), options(2)).unwrap();
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

#[tokio::test]
async fn health_check_fails_while_migrations_are_pending_and_passes_after() {
    let db = test_db();
    let store = PgStore::connect(db.url(), options(2)).unwrap();

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
fn connect_rejects_inconsistent_options() {
    let url = "postgres://postgres@127.0.0.1:1/none";
    for bad in [
        PoolOptions {
            max_size: 0,
            ..PoolOptions::default()
        },
        PoolOptions {
            max_size: 2,
            min_idle: Some(3),
            ..PoolOptions::default()
        },
        PoolOptions {
            connection_timeout: Duration::ZERO,
            ..PoolOptions::default()
        },
        PoolOptions {
            statement_timeout: Some(Duration::ZERO),
            ..PoolOptions::default()
        },
    ] {
        assert!(
            matches!(
                PgStore::connect(url, bad),
                Err(SetupError::InvalidOptions(_))
            ),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn unreachable_database_is_unavailable() {
    // Nothing listens on port 1; the pool is built anyway so the service can start.
    let store = PgStore::connect(
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
        store.store_notification(&message("m-1"), &three_events()),
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

// ---------------------------------------------------------------------------------------------
// Notifications

#[tokio::test]
async fn stores_a_notification_with_every_column() {
    let (db, store) = migrated_store(2).await;
    let msg = message("sns-1");

    let report = store
        .store_notification(&msg, &three_events())
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

#[tokio::test]
async fn a_message_without_events_is_archived() {
    let (db, store) = migrated_store(2).await;
    let msg = ArchivedMessage {
        ses_type: Some("Send".to_owned()),
        outcome: MessageOutcome::NoEvents,
        error_count: 0,
        error_detail: None,
        ..message("sns-send")
    };

    let report = store.store_notification(&msg, &[]).await.unwrap();

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

#[tokio::test]
async fn the_same_message_again_stores_nothing_new() {
    let (db, store) = migrated_store(2).await;
    store
        .store_notification(&message("sns-1"), &three_events())
        .await
        .unwrap();

    let again = store
        .store_notification(&message("sns-1"), &three_events())
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

#[tokio::test]
async fn the_same_events_under_another_sns_message_are_duplicates() {
    let (db, store) = migrated_store(2).await;
    store
        .store_notification(&message("sns-1"), &three_events())
        .await
        .unwrap();

    let other = store
        .store_notification(&message("sns-2"), &three_events())
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

#[tokio::test]
async fn some_new_events_among_duplicates_are_counted() {
    let (db, store) = migrated_store(2).await;
    let mut first = three_events();
    let third = first.pop().unwrap();
    store
        .store_notification(&message("sns-1"), &first)
        .await
        .unwrap();

    let report = store
        .store_notification(&message("sns-2"), &three_events())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_copies_of_one_message_store_one_set_of_rows() {
    let (db, store) = migrated_store(10).await;
    let store = Arc::new(store);

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .store_notification(&message("sns-dup"), &three_events())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_copies_of_the_same_events_under_different_messages_store_them_once() {
    let (db, store) = migrated_store(10).await;
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
                    .store_notification(&message(&format!("sns-{i}")), &events)
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

#[tokio::test]
async fn bounce_type_is_present_exactly_for_bounces() {
    let (db, store) = migrated_store(2).await;

    // Through the store: a delivery carrying a bounce type fails, and nothing is half-written.
    let bad = PlatformEvent {
        bounce_type: Some(BounceClass::Soft),
        ..bare_event("key-bad", EventType::Delivered)
    };
    let good = bare_event("key-good", EventType::Open);
    let result = store
        .store_notification(&message("sns-bad"), &[good, bad])
        .await;
    assert!(matches!(result, Err(StoreError::Failed(_))), "{result:?}");
    assert!(messages(&db).is_empty(), "the transaction was rolled back");
    assert!(events(&db).is_empty(), "the transaction was rolled back");

    // Directly: a bounce without a bounce type, and an unknown bounce type.
    let mut c = conn(&db);
    for sql in [
        "INSERT INTO email_events (event_key, event_type, ses_message_id, sns_message_id, event_time) \
         VALUES ('k1', 'email_bounce', 'ses', 'sns', now())",
        "INSERT INTO email_events (event_key, event_type, bounce_type, ses_message_id, sns_message_id, event_time) \
         VALUES ('k2', 'email_bounce', 'medium', 'ses', 'sns', now())",
        "INSERT INTO email_events (event_key, event_type, ses_message_id, sns_message_id, event_time) \
         VALUES ('k3', 'email_unsubscribe', 'ses', 'sns', now())",
    ] {
        let error = c.batch_execute(sql).unwrap_err();
        assert!(
            matches!(
                error,
                DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, _)
            ),
            "{sql}: {error:?}"
        );
    }
    c.batch_execute(
        "INSERT INTO email_events (event_key, event_type, bounce_type, ses_message_id, sns_message_id, event_time) \
         VALUES ('k4', 'email_bounce', 'soft', 'ses', 'sns', now())",
    )
    .unwrap();
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

#[tokio::test]
async fn subscription_moves_from_pending_to_confirmed_to_unsubscribed() {
    let (db, store) = migrated_store(2).await;
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
            &confirmation,
            &change(SubscriptionState::Pending, Some(url), 100),
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
            &confirmation,
            &change(SubscriptionState::Pending, Some(url), 100),
        )
        .await
        .unwrap();
    assert_eq!(messages(&db).len(), 1);

    store
        .record_subscription(
            &confirmation,
            &change(SubscriptionState::Confirmed, None, 200),
        )
        .await
        .unwrap();
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
        .record_subscription(
            &confirmation,
            &change(SubscriptionState::Pending, Some(url), 150),
        )
        .await
        .unwrap();
    assert_eq!(subscription(&db, topic).state, "confirmed");

    let unsubscribe = subscription_message("unsub-1", SnsMessageType::UnsubscribeConfirmation);
    store
        .record_subscription(
            &unsubscribe,
            &change(SubscriptionState::Unsubscribed, None, 300),
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
