//! Every SES example in `tests/fixtures/ses/` posted through the endpoint, with the rows checked
//! against expectations computed from the fixture itself.

use serde_json::Value;
use test_support::{fixtures_dir, spawn_app};

struct Expected {
    event_type: Option<&'static str>,
    recipients: Vec<String>,
    bounce_type: Option<&'static str>,
}

fn bare(address: &str) -> String {
    match (address.rfind('<'), address.rfind('>')) {
        (Some(open), Some(close)) if open < close => address[open + 1..close].trim().to_owned(),
        _ => address.trim().to_owned(),
    }
}

fn addresses(list: &Value, key: Option<&str>) -> Vec<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| match key {
                    Some(key) => item[key].as_str(),
                    None => item.as_str(),
                })
                .map(bare)
                .collect()
        })
        .unwrap_or_default()
}

fn expected(record: &Value) -> Expected {
    let ses_type = record["eventType"]
        .as_str()
        .or_else(|| record["notificationType"].as_str())
        .unwrap_or_default();
    let single_destination = || {
        let destination = addresses(&record["mail"]["destination"], None);
        if destination.len() == 1 {
            destination
        } else {
            vec![String::new()]
        }
    };
    match ses_type {
        "Delivery" => Expected {
            event_type: Some("email_delivered"),
            recipients: addresses(&record["delivery"]["recipients"], None),
            bounce_type: None,
        },
        "Bounce" => Expected {
            event_type: Some("email_bounce"),
            recipients: addresses(&record["bounce"]["bouncedRecipients"], Some("emailAddress")),
            bounce_type: Some(if record["bounce"]["bounceType"] == "Permanent" {
                "hard"
            } else {
                "soft"
            }),
        },
        "Complaint" => Expected {
            event_type: Some("email_spam_report"),
            recipients: addresses(
                &record["complaint"]["complainedRecipients"],
                Some("emailAddress"),
            ),
            bounce_type: None,
        },
        "Open" => Expected {
            event_type: Some("email_open"),
            recipients: single_destination(),
            bounce_type: None,
        },
        "Click" => Expected {
            event_type: Some("email_click"),
            recipients: single_destination(),
            bounce_type: None,
        },
        _ => Expected {
            event_type: None,
            recipients: Vec::new(),
            bounce_type: None,
        },
    }
}

#[tokio::test]
async fn every_ses_fixture_becomes_the_expected_rows_and_a_second_delivery_adds_nothing() {
    let app = spawn_app().await;
    let records = adapters_store::testing::whole_ses_records();
    assert!(records.len() >= 30, "fixtures missing: {}", records.len());
    let mut sent = Vec::new();

    for (name, text) in &records {
        let record: Value = serde_json::from_str(text).unwrap();
        let expected = expected(&record);
        let envelope = app.notification(text);
        let message_id = envelope["MessageId"].as_str().unwrap().to_owned();

        let (status, body) = app.post(&envelope).await;

        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["success"], true, "{name}");
        assert_eq!(body["errors"], 0, "{name}: {body}");
        let handled = body["processed"].as_u64().unwrap() + body["duplicates"].as_u64().unwrap();
        assert_eq!(
            handled as usize,
            expected.recipients.len(),
            "{name}: {body}"
        );
        let rows: Vec<_> = app
            .events()
            .into_iter()
            .filter(|row| row.sns_message_id == message_id)
            .collect();
        assert_eq!(
            rows.len() as u64,
            body["processed"].as_u64().unwrap(),
            "{name}"
        );
        for row in &rows {
            assert_eq!(Some(row.event_type.as_str()), expected.event_type, "{name}");
            assert_eq!(row.bounce_type.as_deref(), expected.bounce_type, "{name}");
            let recipient = row.recipient.clone().unwrap_or_default();
            assert!(
                expected.recipients.contains(&recipient),
                "{name}: {recipient} not expected"
            );
            assert_eq!(
                row.ses_message_id,
                record["mail"]["messageId"].as_str().unwrap(),
                "{name}"
            );
        }
        sent.push((name.clone(), envelope, expected.recipients.len()));
    }
    let events_after_first_pass = app.events();
    assert_eq!(app.count("sns_messages") as usize, records.len());

    for (name, envelope, expected) in &sent {
        let (status, body) = app.post(envelope).await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(body["processed"], 0, "{name}: redelivery stored something");
        assert_eq!(
            body["duplicates"].as_u64().unwrap() as usize,
            *expected,
            "{name}"
        );
    }
    assert_eq!(app.events(), events_after_first_pass);
    assert_eq!(app.count("sns_messages") as usize, records.len());
}

#[tokio::test]
async fn bounce_detail_is_kept_beside_the_classification() {
    let app = spawn_app().await;
    let text = std::fs::read_to_string(fixtures_dir().join("notification_bounce_4.json")).unwrap();

    let (status, _) = app.post(&app.notification(&text)).await;

    assert_eq!(status, 200);
    let events = app.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].bounce_type.as_deref(), Some("hard"));
    assert!(events[0].bounce_subtype.is_some());
    assert!(
        events[0]
            .diagnostic_code
            .as_deref()
            .unwrap_or_default()
            .contains("User unknown")
    );
}

#[tokio::test]
async fn non_ses_and_eventless_messages_are_archived_with_zero_counts() {
    let app = spawn_app().await;
    let cases = [
        (
            "Successfully validated SNS topic for Amazon SES event publishing.".to_owned(),
            "not_ses",
        ),
        (
            std::fs::read_to_string(fixtures_dir().join("event_send_1.json")).unwrap(),
            "no_events",
        ),
    ];

    for (message, outcome) in &cases {
        let (status, body) = app.post(&app.notification(message)).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            serde_json::json!({"success": true, "processed": 0, "duplicates": 0, "errors": 0, "subscriptionConfirmed": false})
        );
        let messages = app.messages();
        let last = messages.last().unwrap();
        assert_eq!(&last.outcome, outcome);
        assert!(last.raw_body.is_some());
    }
    assert_eq!(app.count("email_events"), 0);
}
