//! Subscription confirmation against a local stand-in for SNS reached through
//! `sns.dev_endpoints`.

use sns_verify::SignatureVersion;
use test_support::{TOPIC, TestApp, spawn_app, spawn_app_with};
use wiremock::matchers::{method, query_param};
use wiremock::{Mock, ResponseTemplate};

const TOKEN: &str = "2336412f37fb687f5d51e6e2425dacbba0d8d8f1a6b3e9b7";

fn subscribe_url(app: &TestApp, token: &str) -> String {
    format!(
        "{}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={token}",
        app.sns.uri()
    )
}

async fn stand_in(app: &TestApp, status: u16, expected_calls: u64) {
    Mock::given(method("GET"))
        .and(query_param("Action", "ConfirmSubscription"))
        .and(query_param("TopicArn", TOPIC))
        .and(query_param("Token", TOKEN))
        .respond_with(ResponseTemplate::new(status).set_body_string(
            "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>arn</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>",
        ))
        .expect(expected_calls)
        .mount(&app.sns)
        .await;
}

fn confirmation(app: &TestApp, url: &str, token: &str) -> serde_json::Value {
    app.signer.subscription_confirmation(
        TOPIC,
        &uuid::Uuid::new_v4().to_string(),
        url,
        token,
        SignatureVersion::V1,
    )
}

#[tokio::test]
async fn a_verified_confirmation_is_confirmed_by_visiting_the_subscribe_url() {
    let app = spawn_app().await;
    stand_in(&app, 200, 1).await;

    let (status, body) = app
        .post(&confirmation(&app, &subscribe_url(&app, TOKEN), TOKEN))
        .await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"success": true, "processed": 0, "duplicates": 0, "errors": 0, "subscriptionConfirmed": true})
    );
    let subscriptions = app.subscriptions();
    assert_eq!(subscriptions.len(), 1);
    assert_eq!(subscriptions[0].topic_arn, TOPIC);
    assert_eq!(subscriptions[0].state, "confirmed");
}

#[tokio::test]
async fn a_failed_confirmation_is_503_so_sns_sends_it_again() {
    let app = spawn_app().await;
    stand_in(&app, 500, 1).await;

    let (status, body) = app
        .post(&confirmation(&app, &subscribe_url(&app, TOKEN), TOKEN))
        .await;

    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "confirmation_failed");
    assert_eq!(app.subscriptions()[0].state, "pending");
}

#[tokio::test]
async fn a_confirmation_sns_refuses_is_a_final_4xx_and_stays_pending() {
    // An expired token, say: SNS answers 403. (Which statuses are refusals is tested with the
    // confirmation call itself, in sns-verify.)
    let app = spawn_app().await;
    stand_in(&app, 403, 1).await;

    let (status, body) = app
        .post(&confirmation(&app, &subscribe_url(&app, TOKEN), TOKEN))
        .await;

    // SNS treats a 4xx as final: it must not send a confirmation that can never succeed again
    // and again.
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "confirmation_refused");
    assert!(
        body["message"].as_str().unwrap().contains("HTTP 403"),
        "{body}"
    );
    assert_eq!(app.subscriptions()[0].state, "pending");
}

#[tokio::test]
async fn a_subscribe_url_that_is_not_sns_is_never_visited() {
    let app = spawn_app().await;
    stand_in(&app, 200, 0).await;
    let elsewhere = format!(
        "https://evil.example.com/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={TOKEN}"
    );
    let wrong_token = subscribe_url(&app, "another-token");

    for url in [elsewhere, wrong_token] {
        let (status, body) = app.post(&confirmation(&app, &url, TOKEN)).await;
        assert_eq!(status, 403, "{url}: {body}");
        assert_eq!(body["error"], "untrusted_subscribe_url");
    }
}

#[tokio::test]
async fn without_auto_confirm_the_subscription_is_stored_pending_for_the_operator() {
    let app = spawn_app_with(|settings| settings.sns.auto_confirm = false).await;
    stand_in(&app, 200, 0).await;
    let url = subscribe_url(&app, TOKEN);

    let (status, body) = app.post(&confirmation(&app, &url, TOKEN)).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subscriptionConfirmed"], false);
    let subscriptions = app.subscriptions();
    assert_eq!(subscriptions[0].state, "pending");
    assert_eq!(
        subscriptions[0].subscribe_url.as_deref(),
        Some(url.as_str())
    );
}

#[tokio::test]
async fn a_confirmation_from_a_topic_not_allowed_is_403_and_never_visited() {
    let app = spawn_app_with(|settings| {
        settings.sns.allowed_topic_arns = vec!["arn:aws:sns:us-east-1:123456789012:other".into()];
    })
    .await;
    stand_in(&app, 200, 0).await;

    let (status, body) = app
        .post(&confirmation(&app, &subscribe_url(&app, TOKEN), TOKEN))
        .await;

    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "topic_not_allowed");
    assert!(app.subscriptions().is_empty());
}

#[tokio::test]
async fn an_unsubscribe_confirmation_is_recorded_and_never_visited() {
    let app = spawn_app().await;
    stand_in(&app, 200, 0).await;
    let envelope = app.signer.unsubscribe_confirmation(
        TOPIC,
        "unsub-1",
        &subscribe_url(&app, TOKEN),
        TOKEN,
        SignatureVersion::V2,
    );

    let (status, body) = app.post(&envelope).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subscriptionConfirmed"], false);
    assert_eq!(app.subscriptions()[0].state, "unsubscribed");
    assert_eq!(app.messages()[0].message_type, "UnsubscribeConfirmation");
}
