//! Idempotency: SNS retries, the same SES event under another SNS message id, and concurrent
//! copies of one message.

use std::sync::Arc;

use test_support::{fixtures_dir, spawn_app};

fn delivery_to_three() -> String {
    serde_json::json!({
        "notificationType": "Delivery",
        "mail": {
            "timestamp": "2026-11-27T11:59:58.000Z",
            "messageId": "0100019abcdef-duplicates-test",
            "source": "Sender <sender@example.com>",
            "destination": ["a@example.com", "b@example.com", "c@example.com"]
        },
        "delivery": {
            "timestamp": "2026-11-27T11:59:59.512Z",
            "recipients": ["a@example.com", "b@example.com", "c@example.com"],
            "processingTimeMillis": 1511,
            "smtpResponse": "250 2.0.0 OK",
            "reportingMTA": "a8-70.smtp-out.amazonses.com"
        }
    })
    .to_string()
}

#[tokio::test]
async fn sns_retry_of_the_same_message_is_all_duplicates() {
    let app = spawn_app().await;
    let envelope = app.notification(&delivery_to_three());

    let (_, first) = app.post(&envelope).await;
    let (status, second) = app.post(&envelope).await;

    assert_eq!(first["processed"], 3);
    assert_eq!(status, 200);
    assert_eq!(second["processed"], 0);
    assert_eq!(second["duplicates"], 3);
    assert_eq!(app.count("email_events"), 3);
    assert_eq!(app.count("sns_messages"), 1);
}

#[tokio::test]
async fn the_same_ses_event_under_another_sns_message_id_is_a_duplicate() {
    let app = spawn_app().await;
    let message = delivery_to_three();

    let (_, first) = app.post(&app.notification(&message)).await;
    let (_, second) = app.post(&app.notification(&message)).await;

    assert_eq!(first["processed"], 3);
    assert_eq!(second["processed"], 0);
    assert_eq!(second["duplicates"], 3);
    assert_eq!(app.count("email_events"), 3);
    assert_eq!(
        app.count("sns_messages"),
        2,
        "both SNS messages are archived"
    );
}

#[tokio::test]
async fn both_notification_formats_of_one_delivery_count_once() {
    let app = spawn_app().await;
    let identity = serde_json::json!({
        "notificationType": "Delivery",
        "mail": {"timestamp": "2026-11-27T11:59:58.000Z", "messageId": "both-formats-1",
                 "source": "s@example.com", "destination": ["r@example.com"]},
        "delivery": {"timestamp": "2026-11-27T11:59:59.000Z", "recipients": ["r@example.com"],
                     "smtpResponse": "250 ok", "processingTimeMillis": 10}
    });
    let mut event_publishing = identity.clone();
    event_publishing
        .as_object_mut()
        .unwrap()
        .remove("notificationType");
    event_publishing["eventType"] = "Delivery".into();
    event_publishing["mail"]["tags"] = serde_json::json!({"ses:configuration-set": ["cs"]});

    let (_, first) = app.post(&app.notification(&identity.to_string())).await;
    let (_, second) = app
        .post(&app.notification(&event_publishing.to_string()))
        .await;

    assert_eq!(first["processed"], 1);
    assert_eq!(second["duplicates"], 1);
    assert_eq!(app.count("email_events"), 1);
}

#[tokio::test]
async fn concurrent_copies_of_one_message_yield_one_set_of_rows() {
    let app = Arc::new(spawn_app().await);
    let envelope = Arc::new(app.notification(&delivery_to_three()));

    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let app = Arc::clone(&app);
            let envelope = Arc::clone(&envelope);
            tokio::spawn(async move { app.post(&envelope).await })
        })
        .collect();
    let mut processed = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["processed"].as_u64().unwrap() + body["duplicates"].as_u64().unwrap(),
            3
        );
        processed += body["processed"].as_u64().unwrap();
    }

    assert_eq!(processed, 3, "each event acknowledged as new exactly once");
    assert_eq!(app.count("email_events"), 3);
    assert_eq!(app.count("sns_messages"), 1);
}

#[tokio::test]
async fn concurrent_copies_under_different_sns_ids_yield_one_set_of_events() {
    let app = Arc::new(spawn_app().await);
    let text = std::fs::read_to_string(fixtures_dir().join("notification_bounce_1.json")).unwrap();

    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let app = Arc::clone(&app);
            let envelope = app.notification(&text);
            tokio::spawn(async move { app.post(&envelope).await })
        })
        .collect();
    let mut processed = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        processed += body["processed"].as_u64().unwrap();
    }

    assert_eq!(processed, 1);
    assert_eq!(app.count("email_events"), 1);
    assert_eq!(app.count("sns_messages"), 12);
}

#[tokio::test]
async fn copies_delivered_to_two_servers_sharing_one_database_yield_one_set_of_rows() {
    let app = Arc::new(spawn_app().await);
    let second = Arc::new(app.second_server().await);
    let first = Arc::new(app.webhook_url());
    let messages: Vec<_> = (0..20)
        .map(|i| {
            let text = delivery_to_three()
                .replace("0100019abcdef-duplicates-test", &format!("two-servers-{i}"));
            Arc::new(app.notification(&text).to_string())
        })
        .collect();

    let mut tasks = tokio::task::JoinSet::new();
    for body in &messages {
        for copy in 0..4 {
            let url = if copy % 2 == 0 {
                Arc::clone(&first)
            } else {
                Arc::clone(&second)
            };
            let body = Arc::clone(body);
            let client = app.client.clone();
            tasks.spawn(async move {
                let response = client
                    .post(url.as_str())
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status().as_u16(), 200);
                let json: serde_json::Value = response.json().await.unwrap();
                json["processed"].as_u64().unwrap()
            });
        }
    }
    let mut processed = 0;
    while let Some(result) = tasks.join_next().await {
        processed += result.unwrap();
    }

    assert_eq!(
        processed, 60,
        "each of the 60 events acknowledged as new exactly once"
    );
    assert_eq!(app.count("email_events"), 60);
    assert_eq!(app.count("sns_messages"), 20);
}
