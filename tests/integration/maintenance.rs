//! Re-processing stored messages and retention of raw bodies.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::commands::{ReprocessOptions, reprocess};
use test_support::{fixtures_dir, spawn_app, spawn_app_with};

/// What reprocess printed, readable after it ran.
#[derive(Clone, Default)]
struct Output(Arc<Mutex<Vec<u8>>>);

impl Output {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn bounce() -> String {
    std::fs::read_to_string(fixtures_dir().join("notification_bounce_1.json")).unwrap()
}

#[tokio::test]
async fn reprocess_restores_what_an_earlier_parser_missed_and_twice_adds_nothing() {
    let app = spawn_app().await;
    let envelope = app.notification(&bounce());
    let message_id = envelope["MessageId"].as_str().unwrap().to_owned();
    assert_eq!(app.post(&envelope).await.0, 200);
    let stored = app.events();
    assert_eq!(stored.len(), 1);
    // What an earlier, buggy parser would have left behind: the message archived as failed and
    // no events.
    app.execute("DELETE FROM email_events");
    app.execute("UPDATE sns_messages SET outcome = 'failed', events_stored = 0, error_count = 1");
    let out = Output::default();

    let first = reprocess(
        &app.settings,
        &ReprocessOptions::default(),
        Box::new(out.clone()),
    )
    .await
    .unwrap();
    let second = reprocess(
        &app.settings,
        &ReprocessOptions::default(),
        Box::new(out.clone()),
    )
    .await
    .unwrap();
    let forced = reprocess(
        &app.settings,
        &ReprocessOptions {
            sns_message_id: Some(message_id.clone()),
            ..ReprocessOptions::default()
        },
        Box::new(out.clone()),
    )
    .await
    .unwrap();

    assert_eq!((first.examined(), first.events_stored()), (1, 1));
    assert_eq!(
        second.examined(),
        0,
        "a processed message is no longer a candidate"
    );
    assert_eq!((forced.examined(), forced.events_stored()), (1, 0));
    assert_eq!(forced.lines[0].duplicates, 1);
    let events = app.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_key, stored[0].event_key);
    assert_eq!(app.messages()[0].outcome, "processed");
    let printed = out.text();
    assert!(printed.contains(&message_id), "{printed}");
}

#[tokio::test]
async fn reprocess_on_a_database_without_the_schema_says_to_migrate() {
    let db = adapters_store::testing::TestDatabase::from_env();
    let mut settings = app::Settings::default();
    settings.database.url = db.url().to_owned();

    let error = reprocess(
        &settings,
        &ReprocessOptions::default(),
        Box::new(std::io::sink()),
    )
    .await
    .unwrap_err();

    let message = format!("{error:#}");
    assert!(message.contains("ses-webhook migrate"), "{message}");
    assert!(message.contains("pending"), "{message}");
}

#[tokio::test]
async fn reprocess_of_an_unknown_sns_message_id_says_so() {
    let app = spawn_app().await;
    let options = ReprocessOptions {
        sns_message_id: Some("no-such-message".into()),
        ..ReprocessOptions::default()
    };

    let error = reprocess(&app.settings, &options, Box::new(std::io::sink()))
        .await
        .unwrap_err();

    assert!(error.to_string().contains("`no-such-message`"), "{error:#}");
}

#[tokio::test]
async fn reprocess_since_skips_older_messages() {
    let app = spawn_app().await;
    assert_eq!(app.post(&app.notification(&bounce())).await.0, 200);
    app.execute("DELETE FROM email_events");
    app.execute("UPDATE sns_messages SET outcome = 'failed', received_at = received_at - INTERVAL '10 days'");
    let options = ReprocessOptions {
        since: Some(chrono::Utc::now() - chrono::Duration::days(1)),
        ..ReprocessOptions::default()
    };

    let report = reprocess(&app.settings, &options, Box::new(std::io::sink()))
        .await
        .unwrap();

    assert_eq!(report.examined(), 0);
    assert_eq!(app.count("email_events"), 0);
}

#[tokio::test]
async fn retention_purges_old_raw_bodies_and_never_events() {
    let app = spawn_app_with(|settings| {
        settings.retention.raw_messages_days = 2;
        settings.retention.purge_interval_secs = 1;
        settings.retention.purge_batch_size = 1;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(app.post(&app.notification(&bounce())).await.0, 200);
    }
    let recent =
        app.notification("Successfully validated SNS topic for Amazon SES event publishing.");
    app.execute("UPDATE sns_messages SET received_at = received_at - INTERVAL '3 days'");
    assert_eq!(app.post(&recent).await.0, 200);

    let mut purged = 0;
    for _ in 0..100 {
        purged = app
            .messages()
            .iter()
            .filter(|m| m.raw_body.is_none())
            .count();
        if purged == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert_eq!(purged, 3, "old bodies were not purged");
    let messages = app.messages();
    assert_eq!(messages.len(), 4, "message rows are kept");
    assert!(messages[3].raw_body.is_some(), "a recent body was purged");
    assert_eq!(app.count("email_events"), 1, "events were touched");
}
