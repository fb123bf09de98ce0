//! Forged, tampered and unauthorised requests change nothing.

use serde_json::Value;
use sns_verify::SignatureVersion;
use test_support::{TOPIC, TestApp, spawn_app, spawn_app_with};

fn delivery() -> String {
    serde_json::json!({
        "notificationType": "Delivery",
        "mail": {"timestamp": "2026-11-27T11:59:58.000Z", "messageId": "forgery-1", "destination": ["a@example.com"]},
        "delivery": {"timestamp": "2026-11-27T11:59:59.000Z", "recipients": ["a@example.com"]}
    })
    .to_string()
}

async fn assert_refused(app: &TestApp, envelope: &Value, status: u16, code: &str) {
    let (actual, body) = app.post(envelope).await;
    assert_eq!(actual, status, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], code, "{body}");
    app.assert_nothing_stored();
}

#[tokio::test]
async fn a_tampered_message_is_403_and_stores_nothing() {
    let app = spawn_app().await;
    let mut envelope = app.notification(&delivery());
    envelope["Message"] = Value::String(delivery().replace("a@example.com", "b@example.com"));

    assert_refused(&app, &envelope, 403, "bad_signature").await;
}

#[tokio::test]
async fn every_signed_field_is_covered() {
    let app = spawn_app().await;
    for field in ["MessageId", "TopicArn", "Timestamp", "Type"] {
        let mut envelope = app.notification(&delivery());
        let value = match field {
            "Timestamp" => "2026-11-27T12:00:01.000Z".to_owned(),
            "Type" => "SubscriptionConfirmation".to_owned(),
            "TopicArn" => "arn:aws:sns:us-east-1:123456789012:other".to_owned(),
            _ => "00000000-0000-0000-0000-000000000000".to_owned(),
        };
        envelope[field] = Value::String(value);
        let (status, body) = app.post(&envelope).await;
        assert!(status == 403 || status == 400, "{field}: {status} {body}");
    }
    let mut with_subject = app.notification(&delivery());
    with_subject["Subject"] = Value::String("injected".into());
    assert_refused(&app, &with_subject, 403, "bad_signature").await;
}

#[tokio::test]
async fn a_replaced_signature_is_403() {
    let app = spawn_app().await;
    let mut envelope = app.notification(&delivery());
    let other = app.notification("another message");
    envelope["Signature"] = other["Signature"].clone();

    assert_refused(&app, &envelope, 403, "bad_signature").await;
}

#[tokio::test]
async fn an_untrusted_certificate_url_is_403() {
    let app = spawn_app().await;
    for url in [
        "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
        "https://sns-us-east-1.s3.amazonaws.com/cert.pem",
        "http://sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com/cert.txt?x=.pem",
    ] {
        let mut envelope = app.notification(&delivery());
        envelope["SigningCertURL"] = Value::String(url.into());
        assert_refused(&app, &envelope, 403, "untrusted_certificate_url").await;
    }
}

#[tokio::test]
async fn an_unknown_signature_version_is_403() {
    let app = spawn_app().await;
    let mut envelope = app.notification(&delivery());
    envelope["SignatureVersion"] = Value::String("3".into());

    assert_refused(&app, &envelope, 403, "unsupported_signature_version").await;
}

#[tokio::test]
async fn signature_version_1_is_accepted() {
    let app = spawn_app().await;
    let envelope = app.signer.notification(
        TOPIC,
        "v1-message",
        &delivery(),
        Some("SES"),
        SignatureVersion::V1,
    );

    let (status, body) = app.post(&envelope).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["processed"], 1);
}

#[tokio::test]
async fn a_certificate_that_cannot_be_obtained_is_503_so_sns_retries() {
    let app = spawn_app().await;
    let elsewhere = app.signer.with_cert_url(
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-not-pinned.pem",
    );
    let envelope =
        elsewhere.notification(TOPIC, "m-unpinned", &delivery(), None, SignatureVersion::V2);

    assert_refused(&app, &envelope, 503, "certificate_unavailable").await;
}

#[tokio::test]
async fn a_topic_outside_the_allow_list_is_403_and_an_allowed_one_is_stored() {
    let app = spawn_app_with(|settings| {
        settings.sns.allowed_topic_arns =
            vec!["arn:aws:sns:us-east-1:123456789012:someone-else".into()];
    })
    .await;
    assert_refused(
        &app,
        &app.notification(&delivery()),
        403,
        "topic_not_allowed",
    )
    .await;

    let allowed = spawn_app_with(|settings| {
        settings.sns.allowed_topic_arns = vec![TOPIC.into()];
    })
    .await;
    let (status, _) = allowed.post(&allowed.notification(&delivery())).await;
    assert_eq!(status, 200);
    assert_eq!(allowed.count("email_events"), 1);
}
