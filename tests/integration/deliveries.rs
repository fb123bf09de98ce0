//! The HTTP contract of the endpoint: content types, sizes, malformed bodies, the response shape.

use test_support::spawn_app;

#[tokio::test]
async fn a_delivery_is_acknowledged_with_the_documented_body_and_stored() {
    let app = spawn_app().await;
    let message = serde_json::json!({
        "eventType": "Bounce",
        "mail": {"timestamp": "2026-11-27T11:59:58.000Z", "messageId": "m-http-1",
                 "source": "s@example.com", "destination": ["x@example.com", "y@example.com"]},
        "bounce": {"bounceType": "Transient", "bounceSubType": "MailboxFull",
                   "bouncedRecipients": [
                       {"emailAddress": "x@example.com", "status": "4.2.2", "action": "failed", "diagnosticCode": "smtp; 452 full"},
                       {"emailAddress": "Why Not <y@example.com>"}],
                   "timestamp": "2026-11-27T11:59:59.000Z", "feedbackId": "fb-1"}
    });

    let (status, body) = app.post(&app.notification(&message.to_string())).await;

    assert_eq!(status, 200);
    assert_eq!(
        body,
        serde_json::json!({"success": true, "processed": 2, "duplicates": 0, "errors": 0, "subscriptionConfirmed": false})
    );
    let events = app.events();
    let recipients: Vec<_> = events
        .iter()
        .map(|e| e.recipient.clone().unwrap())
        .collect();
    assert_eq!(recipients, ["x@example.com", "y@example.com"]);
    assert!(
        events
            .iter()
            .all(|e| e.bounce_type.as_deref() == Some("soft"))
    );
    assert!(events.iter().all(|e| e.event_type == "email_bounce"));
}

#[tokio::test]
async fn a_bounce_without_recipients_is_counted_as_an_error_and_archived() {
    let app = spawn_app().await;
    let message = serde_json::json!({
        "notificationType": "Bounce",
        "mail": {"timestamp": "2026-11-27T11:59:58.000Z", "messageId": "m-http-2", "destination": ["x@example.com"]},
        "bounce": {"bounceType": "Permanent", "bouncedRecipients": [], "timestamp": "2026-11-27T11:59:59.000Z", "feedbackId": "fb-2"}
    });

    let (status, body) = app.post(&app.notification(&message.to_string())).await;

    assert_eq!(status, 200);
    assert_eq!(body["errors"], 1);
    assert_eq!(body["processed"], 0);
    assert_eq!(app.messages()[0].outcome, "failed");
}

#[tokio::test]
async fn malformed_bodies_are_400_with_a_json_error() {
    let app = spawn_app().await;
    for body in [
        "",
        "not json",
        "[]",
        "{\"Type\": \"Notification\"}",
        "{\"Type\": 5}",
    ] {
        let response = app.post_raw(body.to_owned()).await;
        assert_eq!(response.status().as_u16(), 400, "{body:?}");
        let json: serde_json::Value = response.json().await.unwrap();
        assert_eq!(json["success"], false);
        assert_eq!(json["error"], "malformed_message", "{body:?}");
    }
    let invalid_utf8 = app.post_raw(vec![0xff, 0xfe, b'{', b'}']).await;
    assert_eq!(invalid_utf8.status().as_u16(), 400);
    assert_eq!(app.count("sns_messages"), 0);
}

#[tokio::test]
async fn any_content_type_is_read_and_oversized_bodies_are_413() {
    let app = spawn_app().await;
    let envelope =
        app.notification("Successfully validated SNS topic for Amazon SES event publishing.");

    let as_json = app
        .client
        .post(app.webhook_url())
        .header("content-type", "application/json")
        .body(envelope.to_string())
        .send()
        .await
        .unwrap();
    let without = app
        .client
        .post(app.webhook_url())
        .body(app.notification("x").to_string())
        .send()
        .await
        .unwrap();
    let huge = app
        .post_raw(vec![b' '; app.settings.server.max_body_bytes + 1])
        .await;

    assert_eq!(as_json.status().as_u16(), 200);
    assert_eq!(without.status().as_u16(), 200);
    assert_eq!(huge.status().as_u16(), 413);
    let json: serde_json::Value = huge.json().await.unwrap();
    assert_eq!(json["error"], "payload_too_large");
}

#[tokio::test]
async fn raw_message_delivery_is_refused_with_advice() {
    let app = spawn_app().await;
    let bare_record = r#"{"notificationType":"Delivery","mail":{},"delivery":{}}"#;

    // With SNS's raw-delivery header, and without it (a proxy dropped it, or a test tool): the
    // same answer, recognised by the header or by the body.
    for header in [Some("true"), None] {
        let mut request = app.client.post(app.webhook_url()).body(bare_record);
        if let Some(value) = header {
            request = request.header("x-amz-sns-rawdelivery", value);
        }

        let response = request.send().await.unwrap();

        assert_eq!(response.status().as_u16(), 400, "{header:?}");
        let json: serde_json::Value = response.json().await.unwrap();
        assert_eq!(json["error"], "raw_message_delivery", "{header:?}");
        assert!(
            json["message"]
                .as_str()
                .unwrap()
                .contains("RawMessageDelivery"),
            "{json}"
        );
    }
    assert!(app.messages().is_empty());
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;

    let health = app.get("/healthz").await;
    let ready = app.get("/readyz").await;

    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(ready.status().as_u16(), 200);
}

#[tokio::test]
async fn the_readme_example_is_stored_then_counted_as_duplicates() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let app = test_support::spawn_app_with(|settings| {
        settings.sns.cert_dir = Some(root.join("docs/examples/certs"));
    })
    .await;
    let body = std::fs::read(root.join("docs/examples/notification.json")).unwrap();

    let first = app.post_raw(body.clone()).await;
    let first: serde_json::Value = first.json().await.unwrap();
    let second: serde_json::Value = app.post_raw(body).await.json().await.unwrap();

    assert_eq!(first["processed"], 2, "{first}");
    assert_eq!(second["duplicates"], 2, "{second}");
    assert_eq!(app.count("email_events"), 2);
}
