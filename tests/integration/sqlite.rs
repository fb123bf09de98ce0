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

#[tokio::test]
async fn a_second_server_on_the_same_sqlite_file_refuses_to_start() {
    let app = spawn_sqlite_app().await;

    let second = app::Application::build(&app.settings).await;

    let error = format!("{:#}", second.expect_err("the file is taken"));
    assert!(error.contains("another ses-webhook"), "{error}");
    assert!(error.contains("PostgreSQL"), "{error}");
    // The first goes on serving.
    assert_eq!(app.get("/readyz").await.status().as_u16(), 200);
}

#[tokio::test]
async fn a_database_that_does_not_exist_stops_start_up_at_once_naming_it() {
    let db = adapters_store::testing::TestDatabase::from_env();
    let (server, _) = db.url().rsplit_once('/').unwrap();
    let missing = format!("{server}/ses_webhook_no_such_database");
    let mut settings = app::Settings::default();
    settings.server.host = "127.0.0.1".into();
    settings.server.port = 0;
    settings.database.url = missing;

    let error = format!(
        "{:#}",
        app::Application::build(&settings)
            .await
            .expect_err("a database that does not exist")
    );

    assert!(error.contains("ses_webhook_no_such_database"), "{error}");
    assert!(error.contains("does not exist"), "{error}");
}
