//! Handler tests: the real actix-web service around the real ingest use case, with every port
//! mocked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{App, test};
use chrono::{TimeZone, Utc};
use domain::ports::{
    MockClock, MockEventStore, MockMessageVerifier, MockSubscriptionConfirmer, RejectReason,
    StoreError, StoreReport, SubscriptionState, VerifyFailure,
};
use domain::{IngestPolicy, IngestService, SnsMessage, SnsMessageType};
use serde_json::Value;

use crate::{HttpSettings, WEBHOOK_PATH, configure};

fn message(message_type: SnsMessageType) -> SnsMessage {
    SnsMessage {
        message_type,
        message_id: "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324".into(),
        topic_arn: "arn:aws:sns:us-east-1:123456789012:ses-events".into(),
        timestamp: Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap(),
        subject: None,
        message: "Successfully validated SNS topic for Amazon SES event publishing.".into(),
        subscribe_url: Some(
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription".into(),
        ),
        token: Some("token".into()),
        raw: "{}".into(),
    }
}

struct Ports {
    verifier: MockMessageVerifier,
    store: MockEventStore,
    confirmer: MockSubscriptionConfirmer,
}

impl Ports {
    fn new() -> Self {
        Self {
            verifier: MockMessageVerifier::new(),
            store: MockEventStore::new(),
            confirmer: MockSubscriptionConfirmer::new(),
        }
    }

    fn service(self, policy: IngestPolicy) -> IngestService {
        let mut clock = MockClock::new();
        clock
            .expect_now()
            .returning(|| Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 5).unwrap());
        IngestService::new(
            Arc::new(self.verifier),
            Arc::new(self.store),
            Arc::new(self.confirmer),
            Arc::new(clock),
            policy,
        )
    }
}

async fn post(
    service: IngestService,
    settings: HttpSettings,
    body: &'static str,
    headers: &[(&'static str, &'static str)],
) -> (StatusCode, Value) {
    let app =
        test::init_service(App::new().configure(|cfg| configure(cfg, service, settings))).await;
    let mut req = test::TestRequest::post()
        .uri(WEBHOOK_PATH)
        .insert_header(("content-type", "text/plain; charset=UTF-8"))
        .set_payload(body);
    for header in headers {
        req = req.insert_header(*header);
    }
    let resp = test::call_service(&app, req.to_request()).await;
    let status = resp.status();
    let body: Value = test::read_body_json(resp).await;
    (status, body)
}

#[actix_web::test]
async fn text_plain_notification_is_acknowledged_with_counts() {
    let mut ports = Ports::new();
    ports
        .verifier
        .expect_verify()
        .times(1)
        .returning(|_| Ok(message(SnsMessageType::Notification)));
    ports
        .store
        .expect_store_notification()
        .times(1)
        .returning(|_, _| {
            Ok(StoreReport {
                message_was_new: true,
                events_inserted: 0,
                events_duplicate: 0,
            })
        });

    let (status, body) = post(
        ports.service(IngestPolicy::default()),
        HttpSettings::default(),
        "{}",
        &[],
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        serde_json::json!({
            "success": true, "processed": 0, "duplicates": 0, "errors": 0,
            "subscriptionConfirmed": false
        })
    );
}

#[actix_web::test]
async fn auto_confirmed_subscription_says_so() {
    let mut ports = Ports::new();
    ports
        .verifier
        .expect_verify()
        .returning(|_| Ok(message(SnsMessageType::SubscriptionConfirmation)));
    ports
        .store
        .expect_record_subscription()
        .times(2)
        .returning(|_, _| Ok(()));
    ports
        .confirmer
        .expect_confirm()
        .times(1)
        .returning(|_| Ok(()));
    let policy = IngestPolicy {
        auto_confirm: true,
        ..IngestPolicy::default()
    };

    let (status, body) = post(ports.service(policy), HttpSettings::default(), "{}", &[]).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["subscriptionConfirmed"], true);
}

#[actix_web::test]
async fn malformed_body_is_400_with_json_error() {
    let mut ports = Ports::new();
    ports
        .verifier
        .expect_verify()
        .returning(|_| Err(VerifyFailure::Malformed("not JSON".into())));

    let (status, body) = post(
        ports.service(IngestPolicy::default()),
        HttpSettings::default(),
        "hello",
        &[],
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], "malformed_message");
    assert!(body["message"].as_str().unwrap().contains("not JSON"));
}

#[actix_web::test]
async fn bad_signature_is_403_and_nothing_is_stored() {
    let mut ports = Ports::new();
    ports.verifier.expect_verify().returning(|_| {
        Err(VerifyFailure::Rejected {
            reason: RejectReason::BadSignature,
            detail: "signature does not match".into(),
        })
    });
    ports.store.expect_store_notification().times(0);

    let (status, body) = post(
        ports.service(IngestPolicy::default()),
        HttpSettings::default(),
        "{}",
        &[],
    )
    .await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "bad_signature");
}

#[actix_web::test]
async fn topic_outside_allow_list_is_403() {
    let mut ports = Ports::new();
    ports
        .verifier
        .expect_verify()
        .returning(|_| Ok(message(SnsMessageType::Notification)));
    ports.store.expect_store_notification().times(0);
    let policy = IngestPolicy {
        allowed_topic_arns: vec!["arn:aws:sns:us-east-1:123456789012:other".into()],
        ..IngestPolicy::default()
    };

    let (status, body) = post(ports.service(policy), HttpSettings::default(), "{}", &[]).await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "topic_not_allowed");
}

#[actix_web::test]
async fn certificate_unavailable_is_503() {
    let mut ports = Ports::new();
    ports
        .verifier
        .expect_verify()
        .returning(|_| Err(VerifyFailure::Unavailable("connect timeout".into())));

    let (status, body) = post(
        ports.service(IngestPolicy::default()),
        HttpSettings::default(),
        "{}",
        &[],
    )
    .await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "certificate_unavailable");
    assert!(
        !body["message"]
            .as_str()
            .unwrap()
            .contains("connect timeout"),
        "5xx bodies must not leak internals: {body}"
    );
}

#[actix_web::test]
async fn store_failure_is_503_not_acknowledged() {
    let mut ports = Ports::new();
    ports
        .verifier
        .expect_verify()
        .returning(|_| Ok(message(SnsMessageType::Notification)));
    ports
        .store
        .expect_store_notification()
        .returning(|_, _| Err(StoreError::Unavailable("pool timed out".into())));

    let (status, body) = post(
        ports.service(IngestPolicy::default()),
        HttpSettings::default(),
        "{}",
        &[],
    )
    .await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "store_unavailable");
    assert_eq!(body["success"], false);
}

#[actix_web::test]
async fn oversized_body_is_413_before_verification() {
    let mut ports = Ports::new();
    ports.verifier.expect_verify().times(0);
    let settings = HttpSettings {
        max_body_bytes: 8,
        ..HttpSettings::default()
    };

    let (status, body) = post(
        ports.service(IngestPolicy::default()),
        settings,
        "0123456789",
        &[],
    )
    .await;

    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "payload_too_large");
}

#[actix_web::test]
async fn raw_message_delivery_is_refused_with_advice() {
    let mut ports = Ports::new();
    ports.verifier.expect_verify().times(0);

    let (status, body) = post(
        ports.service(IngestPolicy::default()),
        HttpSettings::default(),
        r#"{"notificationType":"Delivery"}"#,
        &[("x-amz-sns-rawdelivery", "true")],
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "raw_message_delivery");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("RawMessageDelivery")
    );
}

#[actix_web::test]
async fn unsubscribe_confirmation_is_recorded_and_never_confirmed() {
    let mut ports = Ports::new();
    ports
        .verifier
        .expect_verify()
        .returning(|_| Ok(message(SnsMessageType::UnsubscribeConfirmation)));
    ports
        .store
        .expect_record_subscription()
        .withf(|_, change| change.state == SubscriptionState::Unsubscribed)
        .times(1)
        .returning(|_, _| Ok(()));
    ports.confirmer.expect_confirm().times(0);
    let policy = IngestPolicy {
        auto_confirm: true,
        ..IngestPolicy::default()
    };

    let (status, body) = post(ports.service(policy), HttpSettings::default(), "{}", &[]).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["subscriptionConfirmed"], false);
}

#[actix_web::test]
async fn readiness_follows_the_store() {
    let mut ports = Ports::new();
    ports
        .store
        .expect_health_check()
        .returning(|| Err(StoreError::Unavailable("down".into())));
    let service = ports.service(IngestPolicy::default());
    let app = test::init_service(
        App::new().configure(|cfg| configure(cfg, service, HttpSettings::default())),
    )
    .await;

    let ready =
        test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request()).await;
    let alive =
        test::call_service(&app, test::TestRequest::get().uri("/healthz").to_request()).await;

    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(alive.status(), StatusCode::OK);
}

#[actix_web::test]
async fn get_on_the_webhook_is_refused() {
    let ports = Ports::new();
    let service = ports.service(IngestPolicy::default());
    let app = test::init_service(
        App::new().configure(|cfg| configure(cfg, service, HttpSettings::default())),
    )
    .await;

    let resp = test::call_service(
        &app,
        test::TestRequest::get().uri(WEBHOOK_PATH).to_request(),
    )
    .await;

    assert!(resp.status().is_client_error());
}

#[actix_web::test]
async fn the_result_is_attached_for_middleware() {
    let mut ports = Ports::new();
    let mut calls = 0;
    ports.verifier.expect_verify().times(2).returning(move |_| {
        calls += 1;
        if calls == 1 {
            Ok(message(SnsMessageType::Notification))
        } else {
            Err(VerifyFailure::Malformed("x".into()))
        }
    });
    ports.store.expect_store_notification().returning(|_, _| {
        Ok(StoreReport {
            message_was_new: true,
            events_inserted: 0,
            events_duplicate: 0,
        })
    });
    let service = ports.service(IngestPolicy::default());
    let app = test::init_service(
        App::new().configure(|cfg| configure(cfg, service, HttpSettings::default())),
    )
    .await;
    let request = || {
        test::TestRequest::post()
            .uri(WEBHOOK_PATH)
            .set_payload("{}")
            .to_request()
    };

    let ok = test::call_service(&app, request()).await;
    let failed = test::call_service(&app, request()).await;

    assert!(matches!(
        ok.response().extensions().get::<crate::WebhookResult>(),
        Some(crate::WebhookResult::Acknowledged(outcome)) if outcome.message_type == SnsMessageType::Notification
    ));
    assert_eq!(
        failed.response().extensions().get::<crate::WebhookResult>(),
        Some(&crate::WebhookResult::Failed {
            code: "malformed_message"
        })
    );
}
