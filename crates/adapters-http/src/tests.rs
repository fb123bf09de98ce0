//! Handler tests: the real actix-web service around a mock of the inbound port
//! [`Ingest`](domain::Ingest). They check what this adapter owns (reading the body, its limits,
//! raw delivery, status codes, bodies, the result attached for middleware); the use case's own
//! rules are tested in `domain`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Payload, Service, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{App, test};
use domain::ports::{MockIngest, RejectReason, StoreError};
use domain::{
    Dependency, ForbiddenReason, IngestError, IngestFailure, IngestOutcome, SnsMessageType,
    ports::MessageOutcome,
};
use futures::stream::{self, Stream, StreamExt};
use serde_json::Value;

use crate::{HttpSettings, RequestFailure, WEBHOOK_PATH, WebhookResult, configure};

fn acknowledged() -> IngestOutcome {
    IngestOutcome {
        message_type: SnsMessageType::Notification,
        message_id: "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324".into(),
        topic_arn: "arn:aws:sns:us-east-1:123456789012:ses-events".into(),
        outcome: MessageOutcome::Processed,
        ses_type: Some("Bounce".into()),
        event_type: Some(domain::EventType::Bounce),
        processed: 2,
        duplicates: 1,
        errors: 3,
        subscription_confirmed: true,
        redelivery: false,
    }
}

/// The handler's service around `ingest`.
async fn app(
    ingest: MockIngest,
    settings: HttpSettings,
) -> impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error> {
    let ingest: Arc<dyn domain::Ingest> = Arc::new(ingest);
    test::init_service(App::new().configure(|cfg| configure(cfg, ingest, settings))).await
}

fn post(body: &'static str) -> test::TestRequest {
    test::TestRequest::post()
        .uri(WEBHOOK_PATH)
        .insert_header(("content-type", "text/plain; charset=UTF-8"))
        .set_payload(body)
}

/// Status, JSON body and the result attached for middleware.
async fn call(
    ingest: MockIngest,
    settings: HttpSettings,
    request: actix_http::Request,
) -> (StatusCode, Value, Option<WebhookResult>) {
    let app = app(ingest, settings).await;
    let response = test::call_service(&app, request).await;
    let status = response.status();
    let result = response
        .response()
        .extensions()
        .get::<WebhookResult>()
        .cloned();
    let body: Value = test::read_body_json(response).await;
    (status, body, result)
}

fn failing_with(error: IngestError) -> MockIngest {
    let mut ingest = MockIngest::new();
    ingest
        .expect_ingest()
        .times(1)
        .return_once(move |_| Err(error));
    ingest
}

fn never_called() -> MockIngest {
    let mut ingest = MockIngest::new();
    ingest.expect_ingest().times(0);
    ingest
}

/// A request whose body is `chunks`, streamed (no Content-Length).
fn streamed<S>(chunks: S) -> actix_http::Request
where
    S: Stream<Item = Result<Bytes, PayloadError>> + 'static,
{
    let payload: actix_http::BoxedPayloadStream = Box::pin(chunks);
    let (request, _) = test::TestRequest::post()
        .uri(WEBHOOK_PATH)
        .to_request()
        .replace_payload(Payload::from(payload));
    request
}

fn ok(chunk: &'static str) -> Result<Bytes, PayloadError> {
    Ok(Bytes::from_static(chunk.as_bytes()))
}

#[actix_web::test]
async fn an_acknowledged_delivery_is_200_with_the_counts_and_the_outcome_attached() {
    let mut ingest = MockIngest::new();
    ingest
        .expect_ingest()
        .withf(|body| body.as_slice() == br#"{"Type":"Notification"}"#)
        .times(1)
        .returning(|_| Ok(acknowledged()));

    let (status, body, result) = call(
        ingest,
        HttpSettings::default(),
        post(r#"{"Type":"Notification"}"#).to_request(),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        serde_json::json!({
            "success": true, "processed": 2, "duplicates": 1, "errors": 3,
            "subscriptionConfirmed": true
        })
    );
    assert_eq!(result, Some(WebhookResult::Acknowledged(acknowledged())));
}

#[actix_web::test]
async fn a_streamed_body_reaches_the_use_case_whole() {
    let mut ingest = MockIngest::new();
    ingest
        .expect_ingest()
        .withf(|body| body.as_slice() == b"{\"Type\":\"Notification\"}")
        .times(1)
        .returning(|_| Ok(acknowledged()));
    let chunks = stream::iter([ok("{\"Type\""), ok(":\"Notif"), ok("ication\"}")]);

    let (status, _, _) = call(ingest, HttpSettings::default(), streamed(chunks)).await;

    assert_eq!(status, StatusCode::OK);
}

#[actix_web::test]
async fn each_ingest_failure_has_its_status_code_and_body() {
    let cases = [
        (
            IngestError::Malformed("not JSON".into()),
            StatusCode::BAD_REQUEST,
            "malformed_message",
        ),
        (
            IngestError::Forbidden {
                reason: ForbiddenReason::Verification(RejectReason::BadSignature),
                detail: "signature does not match".into(),
            },
            StatusCode::FORBIDDEN,
            "bad_signature",
        ),
        (
            IngestError::Forbidden {
                reason: ForbiddenReason::TopicNotAllowed,
                detail: "topic x is not in sns.allowed_topic_arns".into(),
            },
            StatusCode::FORBIDDEN,
            "topic_not_allowed",
        ),
        (
            IngestError::Forbidden {
                reason: ForbiddenReason::UntrustedSubscribeUrl,
                detail: "the host is not an Amazon SNS endpoint".into(),
            },
            StatusCode::FORBIDDEN,
            "untrusted_subscribe_url",
        ),
        (
            IngestError::ConfirmationRefused {
                detail: "HTTP 403".into(),
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "confirmation_refused",
        ),
    ];
    for (error, status, code) in cases {
        let detail = error.to_string();
        let kind = error.kind();

        let (actual, body, result) = call(
            failing_with(error),
            HttpSettings::default(),
            post("{}").to_request(),
        )
        .await;

        assert_eq!(actual, status, "{code}");
        assert_eq!(body["success"], false, "{code}");
        assert_eq!(body["error"], code);
        let message = body["message"].as_str().unwrap();
        assert!(
            detail
                .split(": ")
                .last()
                .is_some_and(|d| message.contains(d)),
            "{code}: the message says what went wrong: {message}"
        );
        assert_eq!(
            result,
            Some(WebhookResult::Failed(RequestFailure::Ingest(kind)))
        );
    }
}

#[actix_web::test]
async fn every_unavailable_dependency_is_503_without_internals() {
    for (dependency, code) in [
        (Dependency::Certificate, "certificate_unavailable"),
        (Dependency::Store, "store_unavailable"),
        (Dependency::SubscriptionConfirmation, "confirmation_failed"),
    ] {
        let error = IngestError::Unavailable {
            dependency,
            detail: "connect timeout to 10.1.2.3:5432".into(),
        };

        let (status, body, result) = call(
            failing_with(error),
            HttpSettings::default(),
            post("{}").to_request(),
        )
        .await;

        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{code}");
        assert_eq!(body["error"], code);
        assert!(
            !body["message"].as_str().unwrap().contains("10.1.2.3"),
            "5xx bodies must not leak internals: {body}"
        );
        assert_eq!(
            result,
            Some(WebhookResult::Failed(RequestFailure::Ingest(
                IngestFailure::Unavailable(dependency)
            )))
        );
    }
}

#[actix_web::test]
async fn a_declared_oversized_body_is_413_before_the_use_case() {
    let settings = HttpSettings {
        max_body_bytes: 8,
        ..HttpSettings::default()
    };

    let (status, body, result) =
        call(never_called(), settings, post("0123456789").to_request()).await;

    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "payload_too_large");
    assert_eq!(
        result,
        Some(WebhookResult::Failed(RequestFailure::TooLarge))
    );
}

#[actix_web::test]
async fn a_streamed_body_growing_past_the_limit_is_413() {
    let settings = HttpSettings {
        max_body_bytes: 8,
        ..HttpSettings::default()
    };
    let chunks = stream::iter([ok("01234"), ok("56789")]);

    let (status, body, _) = call(never_called(), settings, streamed(chunks)).await;

    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "payload_too_large");
}

#[actix_web::test]
async fn a_body_that_stalls_is_408() {
    let settings = HttpSettings {
        body_read_timeout: Duration::from_millis(50),
        ..HttpSettings::default()
    };
    let stalled = stream::iter([ok("{\"Type\"")]).chain(stream::pending());

    let (status, body, result) = call(never_called(), settings, streamed(stalled)).await;

    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(body["error"], "request_timeout");
    assert_eq!(
        result,
        Some(WebhookResult::Failed(RequestFailure::BodyTimeout))
    );
}

#[actix_web::test]
async fn a_broken_body_is_400_body_read_failed() {
    let broken = stream::iter([ok("{\"Type\""), Err(PayloadError::Incomplete(None))]);

    let (status, body, _) = call(never_called(), HttpSettings::default(), streamed(broken)).await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "body_read_failed");
}

#[actix_web::test]
async fn raw_message_delivery_is_refused_with_advice_before_the_use_case() {
    let request = post(r#"{"notificationType":"Delivery"}"#)
        .insert_header(("x-amz-sns-rawdelivery", "true"))
        .to_request();

    let (status, body, result) = call(never_called(), HttpSettings::default(), request).await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "raw_message_delivery");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("RawMessageDelivery")
    );
    assert_eq!(
        result,
        Some(WebhookResult::Failed(RequestFailure::RawDelivery))
    );
}

#[actix_web::test]
async fn readiness_follows_the_use_case_and_liveness_does_not() {
    for (ready, expected) in [
        (Ok(()), StatusCode::OK),
        (
            Err(StoreError::Unavailable("down".into())),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    ] {
        let mut ingest = MockIngest::new();
        ingest.expect_ready().times(1).return_once(move || ready);
        let app = app(ingest, HttpSettings::default()).await;

        let readyz =
            test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request()).await;
        let healthz =
            test::call_service(&app, test::TestRequest::get().uri("/healthz").to_request()).await;

        assert_eq!(readyz.status(), expected);
        assert_eq!(healthz.status(), StatusCode::OK);
    }
}

struct Queues {
    states: Vec<crate::QueueState>,
    queues_only: bool,
}

impl crate::QueueStates for Queues {
    fn queues(&self) -> Vec<crate::QueueState> {
        self.states.clone()
    }
    fn queues_only(&self) -> bool {
        self.queues_only
    }
}

/// `GET /readyz` of a process reading `states`, with the webhook (`queues_only` false) or
/// without (health routes only): status and body.
async fn readiness_with_queues(
    states: Vec<crate::QueueState>,
    queues_only: bool,
) -> (StatusCode, Value) {
    let mut ingest = MockIngest::new();
    ingest.expect_ready().times(1).returning(|| Ok(()));
    let ingest: Arc<dyn domain::Ingest> = Arc::new(ingest);
    let queues: Arc<dyn crate::QueueStates> = Arc::new(Queues {
        states,
        queues_only,
    });
    let app = test::init_service(
        App::new()
            .app_data(actix_web::web::Data::from(queues))
            .configure(|cfg| {
                if queues_only {
                    crate::configure_health(cfg, ingest);
                } else {
                    configure(cfg, ingest, HttpSettings::default());
                }
            }),
    )
    .await;
    let response =
        test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request()).await;
    let status = response.status();
    (status, test::read_body_json(response).await)
}

#[actix_web::test]
async fn readiness_lists_the_queues_and_only_a_queue_only_process_depends_on_them() {
    let state = |queue: &str, reachable| crate::QueueState {
        queue: queue.into(),
        reachable,
    };
    let states = vec![
        state("ses-events", Some(true)),
        state("ses-raw", Some(false)),
        state("ses-new", None),
    ];

    let (status, body) = readiness_with_queues(states.clone(), false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(
        body["queues"],
        serde_json::json!([
            {"queue": "ses-events", "status": "reachable"},
            {"queue": "ses-raw", "status": "unreachable"},
            {"queue": "ses-new", "status": "unknown"},
        ])
    );

    let (status, body) = readiness_with_queues(states, true).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "queue_unreachable");
    assert_eq!(body["queues"][1]["status"], "unreachable");

    let (status, body) = readiness_with_queues(
        vec![state("ses-events", Some(true)), state("ses-new", None)],
        true,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[actix_web::test]
async fn a_queue_only_process_serves_no_webhook() {
    let ingest: Arc<dyn domain::Ingest> = Arc::new(never_called());
    let app =
        test::init_service(App::new().configure(|cfg| crate::configure_health(cfg, ingest))).await;

    let response = test::call_service(&app, post("{}").to_request()).await;

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn another_method_on_a_route_is_405_with_allow_and_a_json_body() {
    let app = app(never_called(), HttpSettings::default()).await;
    let cases = [
        (test::TestRequest::get().uri(WEBHOOK_PATH), "POST"),
        (test::TestRequest::put().uri(WEBHOOK_PATH), "POST"),
        (
            test::TestRequest::default()
                .method(actix_web::http::Method::HEAD)
                .uri(WEBHOOK_PATH),
            "POST",
        ),
        (test::TestRequest::post().uri("/healthz"), "GET, HEAD"),
        (test::TestRequest::delete().uri("/readyz"), "GET, HEAD"),
    ];
    for (request, allow) in cases {
        let request = request.to_request();
        let what = format!("{} {}", request.method(), request.path());

        let response = test::call_service(&app, request).await;

        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{what}");
        assert_eq!(response.headers().get("allow").unwrap(), allow, "{what}");
        if what.starts_with("HEAD") {
            continue;
        }
        let body: Value = test::read_body_json(response).await;
        assert_eq!(body["error"], "method_not_allowed", "{what}");
        assert!(
            body["message"].as_str().unwrap().contains(allow),
            "{what}: {body}"
        );
    }
}

#[actix_web::test]
async fn an_unknown_path_is_a_json_404() {
    let app = app(never_called(), HttpSettings::default()).await;

    let response = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/api/rpc/webhooks/aws/sns")
            .to_request(),
    )
    .await;

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = test::read_body_json(response).await;
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], "not_found");
}

#[actix_web::test]
async fn head_on_the_health_routes_answers_like_get() {
    let mut ingest = MockIngest::new();
    ingest.expect_ready().times(1).returning(|| Ok(()));
    let app = app(ingest, HttpSettings::default()).await;

    for path in ["/healthz", "/readyz"] {
        let head = test::TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri(path)
            .to_request();

        let response = test::call_service(&app, head).await;

        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}
