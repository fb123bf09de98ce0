//! The real server storing in an SQLite file, as it does with no configuration: a signed
//! notification is stored once, its SNS retry is a duplicate, and no database server is involved.

use test_support::{fixtures_dir, spawn_sqlite_app};

#[tokio::test]
async fn a_signed_notification_is_stored_in_sqlite_once_and_its_retry_is_a_duplicate() {
    let app = spawn_sqlite_app().await;
    let test_support::TestStore::Sqlite(file) = &app.store else {
        panic!("spawn_sqlite_app stores in SQLite");
    };
    assert!(file.path().is_file(), "migrated at start-up");
    let text = std::fs::read_to_string(fixtures_dir().join("event_bounce_1.json")).unwrap();
    let envelope = app.notification(&text);
    let message_id = envelope["MessageId"].as_str().unwrap().to_owned();

    let (status, body) = app.post(&envelope).await;
    let (retry_status, retry) = app.post(&envelope).await;
    let ready = app.get("/readyz").await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["processed"], 1, "{body}");
    assert_eq!(body["duplicates"], 0, "{body}");
    assert_eq!(retry_status, 200, "{retry}");
    assert_eq!(retry["processed"], 0, "{retry}");
    assert_eq!(retry["duplicates"], 1, "{retry}");
    let events = app.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "email_bounce");
    assert_eq!(events[0].bounce_type.as_deref(), Some("hard"));
    assert_eq!(
        events[0].recipient.as_deref(),
        Some("recipient@example.com")
    );
    assert_eq!(events[0].sns_message_id, message_id);
    let messages = app.messages();
    assert_eq!(messages.len(), 1, "the retry is not archived twice");
    assert_eq!(messages[0].outcome, "processed");
    assert_eq!(
        messages[0].raw_body.as_deref(),
        Some(envelope.to_string().as_str())
    );
    assert_eq!(ready.status().as_u16(), 200);
}
