//! Handler tests of `/api/v1`: the real actix-web service around mocks of the inbound ports
//! [`Authenticate`] and [`Suppressions`]. They check what the adapter owns: tokens and scopes,
//! decoding of paths, queries, bodies and cursors, status codes, error codes and bodies field by
//! field. The list's rules are tested in `domain`, the storage in `adapters-store`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{App, test};
use chrono::{TimeZone, Utc};
use domain::history::MockEventHistory;
use domain::ports::{ListPosition, MockAuthenticate, MockSuppressions, StoreError};
use domain::reputation::MockReputationQueries;
use domain::suppression::{
    HistoryAction, HistoryItem, PutOutcome, SuppressionEntry, SuppressionPage, SuppressionReason,
};
use domain::token::{AuthError, Caller, Scope};
use serde_json::{Value, json};

use super::*;

const TOKEN: &str = "sesw_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
}

fn entry() -> SuppressionEntry {
    SuppressionEntry {
        address: "User+Tag@Example.com".into(),
        reason: SuppressionReason::HardBounce,
        created_at: at(),
        expires_at: None,
        ses_message_id: Some("ses-1".into()),
        event_key: Some("key-1".into()),
        note: None,
    }
}

/// An authenticator that knows [`TOKEN`] with `scope`.
fn auth(scope: Scope) -> MockAuthenticate {
    let mut auth = MockAuthenticate::new();
    auth.expect_authenticate().returning(move |token| {
        if token == TOKEN {
            Ok(Caller {
                token_name: "crm".into(),
                scope,
            })
        } else {
            Err(AuthError::Unauthorized)
        }
    });
    auth
}

/// Status, headers and JSON body (`Null` when empty) of `request` against the API.
async fn call(
    auth: MockAuthenticate,
    suppressions: MockSuppressions,
    request: test::TestRequest,
) -> (StatusCode, actix_web::http::header::HeaderMap, Value) {
    let (status, headers, body) =
        call_raw(auth, suppressions, MockEventHistory::new(), request).await;
    (status, headers, json_of(&body))
}

fn json_of(body: &[u8]) -> Value {
    if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).unwrap()
    }
}

/// Status, headers and body bytes of `request` against the API with these ports.
async fn call_raw(
    auth: MockAuthenticate,
    suppressions: MockSuppressions,
    history: MockEventHistory,
    request: test::TestRequest,
) -> (
    StatusCode,
    actix_web::http::header::HeaderMap,
    actix_web::web::Bytes,
) {
    let ports = ApiPorts {
        auth: Arc::new(auth),
        suppressions: Arc::new(suppressions),
        history: Arc::new(history),
        reputation: Arc::new(MockReputationQueries::new()),
        deliveries: Arc::new(domain::delivery::MockDeliveries::new()),
    };
    let app = test::init_service(App::new().configure(|cfg| configure_api(cfg, ports))).await;
    let response = test::call_service(&app, request.to_request()).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = test::read_body(response).await;
    (status, headers, body)
}

/// [`call_raw`] with only the history port, read as JSON.
async fn call_history(
    scope: Scope,
    history: MockEventHistory,
    request: test::TestRequest,
) -> (StatusCode, actix_web::http::header::HeaderMap, Value) {
    let (status, headers, body) = call_raw(
        auth(scope),
        MockSuppressions::new(),
        history,
        with_token(request),
    )
    .await;
    (status, headers, json_of(&body))
}

fn with_token(request: test::TestRequest) -> test::TestRequest {
    request.insert_header(("authorization", format!("Bearer {TOKEN}")))
}

fn json_put(uri: &str, body: &str) -> test::TestRequest {
    with_token(test::TestRequest::put().uri(uri))
        .insert_header(("content-type", "application/json"))
        .set_payload(body.to_owned())
}

fn check(body: &str) -> test::TestRequest {
    with_token(test::TestRequest::post().uri("/api/v1/suppressions/check"))
        .insert_header(("content-type", "application/json"))
        .set_payload(body.to_owned())
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], code);
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[actix_web::test]
async fn requests_without_a_valid_token_are_401_with_www_authenticate() {
    for request in [
        test::TestRequest::get().uri("/api/v1/suppressions/a%40example.com"),
        test::TestRequest::get()
            .uri("/api/v1/suppressions/a%40example.com")
            .insert_header(("authorization", "Basic dXNlcjpwYXNz")),
        test::TestRequest::get()
            .uri("/api/v1/suppressions/a%40example.com")
            .insert_header(("authorization", "Bearer sesw_unknown")),
    ] {
        let mut suppressions = MockSuppressions::new();
        suppressions.expect_get().times(0);
        let (status, headers, body) = call(auth(Scope::Write), suppressions, request).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(
            headers.get("www-authenticate").unwrap(),
            "Bearer realm=\"ses-webhook\""
        );
    }
}

#[actix_web::test]
async fn a_read_token_on_a_write_endpoint_is_403() {
    for request in [
        json_put("/api/v1/suppressions/a%40example.com", "{}"),
        with_token(test::TestRequest::delete().uri("/api/v1/suppressions/a%40example.com")),
    ] {
        let mut suppressions = MockSuppressions::new();
        suppressions.expect_put().times(0);
        suppressions.expect_remove().times(0);
        let (status, _, body) = call(auth(Scope::Read), suppressions, request).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
}

#[actix_web::test]
async fn an_unreadable_token_store_is_503_not_401() {
    let mut auth = MockAuthenticate::new();
    auth.expect_authenticate().returning(|_| {
        Err(AuthError::Unavailable(StoreError::Unavailable(
            "down".into(),
        )))
    });
    let request = with_token(test::TestRequest::get().uri("/api/v1/suppressions/a%40example.com"));
    let (status, _, body) = call(auth, MockSuppressions::new(), request).await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
    );
    assert!(
        !body["message"].as_str().unwrap().contains("down"),
        "nothing internal"
    );
}

#[actix_web::test]
async fn get_decodes_the_address_and_answers_the_entry_field_by_field() {
    let mut suppressions = MockSuppressions::new();
    suppressions
        .expect_get()
        .withf(|address| {
            address.as_str() == "User+Tag@Example.com" && address.key() == "user+tag@example.com"
        })
        .returning(|_| Ok(Some(entry())));
    let request =
        with_token(test::TestRequest::get().uri("/api/v1/suppressions/User%2BTag%40Example.com"));
    let (status, _, body) = call(auth(Scope::Read), suppressions, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "address": "User+Tag@Example.com",
            "reason": "hard_bounce",
            "createdAt": "2026-01-02T03:04:05.000000Z",
            "expiresAt": null,
            "sesMessageId": "ses-1",
            "eventKey": "key-1",
            "note": null
        })
    );
}

#[actix_web::test]
async fn an_address_not_listed_is_404_not_suppressed_and_an_invalid_one_400() {
    let mut suppressions = MockSuppressions::new();
    suppressions.expect_get().returning(|_| Ok(None));
    let request = with_token(test::TestRequest::get().uri("/api/v1/suppressions/a@example.com"));
    let (status, _, body) = call(auth(Scope::Read), suppressions, request).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_suppressed");

    let mut suppressions = MockSuppressions::new();
    suppressions.expect_get().times(0);
    let request = with_token(test::TestRequest::get().uri("/api/v1/suppressions/not-an-address"));
    let (status, _, body) = call(auth(Scope::Read), suppressions, request).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_address");
}

#[actix_web::test]
async fn check_takes_1_to_1000_valid_addresses_and_answers_only_the_suppressed() {
    let many = json!({"addresses": vec!["a@example.com"; 1001]}).to_string();
    for (body, code) in [
        (r#"{"addresses": []}"#.to_owned(), "no_addresses"),
        (many, "too_many_addresses"),
        (
            r#"{"addresses": ["a@example.com", "nope"]}"#.to_owned(),
            "invalid_address",
        ),
        (
            r#"{"addresses": "a@example.com"}"#.to_owned(),
            "invalid_json",
        ),
        ("{not json".to_owned(), "invalid_json"),
    ] {
        let mut suppressions = MockSuppressions::new();
        suppressions.expect_check().times(0);
        let (status, _, answer) = call(auth(Scope::Read), suppressions, check(&body)).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, code);
    }

    let mut suppressions = MockSuppressions::new();
    suppressions
        .expect_check()
        .withf(|addresses| addresses.len() == 2)
        .returning(|_| Ok(vec![entry()]));
    let (status, _, body) = call(
        auth(Scope::Read),
        suppressions,
        check(r#"{"addresses": ["User+Tag@example.com", "b@example.com"]}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["suppressed"].as_array().unwrap().len(), 1);
    assert_eq!(body["suppressed"][0]["address"], "User+Tag@Example.com");
}

#[actix_web::test]
async fn bodies_must_be_json_and_at_most_1_mib() {
    let mut suppressions = MockSuppressions::new();
    suppressions.expect_check().times(0);
    let request = with_token(test::TestRequest::post().uri("/api/v1/suppressions/check"))
        .insert_header(("content-type", "text/plain"))
        .set_payload(r#"{"addresses": ["a@example.com"]}"#);
    let (status, _, body) = call(auth(Scope::Read), suppressions, request).await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    let mut suppressions = MockSuppressions::new();
    suppressions.expect_check().times(0);
    let huge = format!(r#"{{"addresses": ["{}"]}}"#, "a".repeat(MAX_API_BODY_BYTES));
    let (status, _, body) = call(auth(Scope::Read), suppressions, check(&huge)).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
}

#[actix_web::test]
async fn list_parameters_are_checked_and_the_cursor_comes_back_as_the_position() {
    for (query, code) in [
        ("reason=bounce", "invalid_reason"),
        ("since=yesterday", "invalid_time"),
        ("limit=0", "invalid_limit"),
        ("limit=1001", "invalid_limit"),
        ("limit=ten", "invalid_limit"),
        ("cursor=not-a-cursor", "invalid_cursor"),
        ("cursor=djEuMTIzLi0x", "invalid_cursor"),
        // v1.-8000000000000000000.1: a time chrono takes and PostgreSQL refuses.
        (
            "cursor=djEuLTgwMDAwMDAwMDAwMDAwMDAwMDAuMQ",
            "invalid_cursor",
        ),
    ] {
        let mut suppressions = MockSuppressions::new();
        suppressions.expect_list().times(0);
        let request =
            with_token(test::TestRequest::get().uri(&format!("/api/v1/suppressions?{query}")));
        let (status, _, body) = call(auth(Scope::Read), suppressions, request).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, code);
    }

    let position = ListPosition {
        created_at: at(),
        id: 42,
    };
    let cursor = encode_cursor(position);
    let mut suppressions = MockSuppressions::new();
    suppressions
        .expect_list()
        .withf(move |q| {
            q.after == Some(position)
                && q.limit == 7
                && q.reason == Some(SuppressionReason::SoftBounce)
                && q.since == Some(at())
        })
        .returning(move |_| {
            Ok(SuppressionPage {
                items: vec![entry()],
                next: Some(ListPosition { id: 41, ..position }),
            })
        });
    let uri = format!(
        "/api/v1/suppressions?reason=soft_bounce&since=2026-01-02T03:04:05Z&limit=7&cursor={cursor}"
    );
    let (status, _, body) = call(
        auth(Scope::Read),
        suppressions,
        with_token(test::TestRequest::get().uri(&uri)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"][0]["reason"], "hard_bounce");
    let next = decode_cursor(body["nextCursor"].as_str().unwrap()).unwrap();
    assert_eq!(next.id, 41);

    let mut suppressions = MockSuppressions::new();
    suppressions
        .expect_list()
        .withf(|q| q.limit == DEFAULT_PAGE && q.after.is_none())
        .returning(|_| {
            Ok(SuppressionPage {
                items: vec![],
                next: None,
            })
        });
    let request = with_token(test::TestRequest::get().uri("/api/v1/suppressions"));
    let (_, _, body) = call(auth(Scope::Read), suppressions, request).await;
    assert_eq!(body, json!({"items": [], "nextCursor": null}));
}

#[actix_web::test]
async fn put_answers_201_when_created_200_when_replaced_and_checks_its_body() {
    for (created, expected) in [(true, StatusCode::CREATED), (false, StatusCode::OK)] {
        let mut suppressions = MockSuppressions::new();
        suppressions
            .expect_put()
            .withf(|address, change, caller| {
                address.key() == "a@example.com"
                    && change.note.as_deref() == Some("asked us")
                    && change.expires_at == Some(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap())
                    && caller.token_name == "crm"
            })
            .returning(move |_, _, _| {
                Ok(PutOutcome {
                    created,
                    entry: SuppressionEntry {
                        reason: SuppressionReason::Manual,
                        ..entry()
                    },
                })
            });
        let request = json_put(
            "/api/v1/suppressions/a%40example.com",
            r#"{"note": "asked us", "expiresAt": "2030-01-01T00:00:00Z"}"#,
        );
        let (status, _, body) = call(auth(Scope::Write), suppressions, request).await;
        assert_eq!(status, expected);
        assert_eq!(body["reason"], "manual");
    }

    for (body, code) in [
        (r#"{"expires_at": null}"#, "invalid_json"),
        (r#"{"expiresAt": "soon"}"#, "invalid_time"),
    ] {
        let mut suppressions = MockSuppressions::new();
        suppressions.expect_put().times(0);
        let request = json_put("/api/v1/suppressions/a%40example.com", body);
        let (status, _, answer) = call(auth(Scope::Write), suppressions, request).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, code);
    }

    let mut suppressions = MockSuppressions::new();
    suppressions
        .expect_put()
        .returning(|_, _, _| Err(domain::suppression::SuppressionError::ExpiryInPast));
    let request = json_put(
        "/api/v1/suppressions/a%40example.com",
        r#"{"expiresAt": "2020-01-01T00:00:00Z"}"#,
    );
    let (status, _, body) = call(auth(Scope::Write), suppressions, request).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_time");
}

#[actix_web::test]
async fn a_put_without_a_body_is_for_good_without_a_note() {
    let mut suppressions = MockSuppressions::new();
    suppressions
        .expect_put()
        .withf(|_, change, _| change.note.is_none() && change.expires_at.is_none())
        .returning(|_, _, _| {
            Ok(PutOutcome {
                created: true,
                entry: entry(),
            })
        });
    let request = with_token(test::TestRequest::put().uri("/api/v1/suppressions/a%40example.com"));
    let (status, _, _) = call(auth(Scope::Write), suppressions, request).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[actix_web::test]
async fn delete_is_204_or_404() {
    for (removed, expected) in [
        (true, StatusCode::NO_CONTENT),
        (false, StatusCode::NOT_FOUND),
    ] {
        let mut suppressions = MockSuppressions::new();
        suppressions
            .expect_remove()
            .returning(move |_, _| Ok(removed));
        let request =
            with_token(test::TestRequest::delete().uri("/api/v1/suppressions/a%40example.com"));
        let (status, _, body) = call(auth(Scope::Write), suppressions, request).await;
        assert_eq!(status, expected);
        if removed {
            assert_eq!(body, Value::Null);
        } else {
            assert_eq!(body["error"], "not_suppressed");
        }
    }
}

#[actix_web::test]
async fn history_lists_each_change_oldest_first() {
    let mut suppressions = MockSuppressions::new();
    suppressions.expect_history().returning(|_| {
        Ok(vec![HistoryItem {
            action: HistoryAction::Removed,
            reason: SuppressionReason::Complaint,
            by: "token:crm".into(),
            at: at(),
            expires_at: None,
            ses_message_id: None,
            event_key: Some("k".into()),
            note: None,
        }])
    });
    let request =
        with_token(test::TestRequest::get().uri("/api/v1/suppressions/a%40example.com/history"));
    let (status, _, body) = call(auth(Scope::Read), suppressions, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"items": [{
            "action": "removed", "reason": "complaint", "by": "token:crm",
            "at": "2026-01-02T03:04:05.000000Z", "expiresAt": null, "sesMessageId": null,
            "eventKey": "k", "note": null
        }]})
    );
}

#[actix_web::test]
async fn wrong_methods_are_405_with_allow_and_unknown_paths_404() {
    let request = with_token(test::TestRequest::post().uri("/api/v1/suppressions"));
    let (status, headers, body) = call(auth(Scope::Write), MockSuppressions::new(), request).await;
    assert_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_eq!(headers.get("allow").unwrap(), "GET");

    let request = with_token(test::TestRequest::get().uri("/api/v1/nothing"));
    let (status, _, body) = call(auth(Scope::Write), MockSuppressions::new(), request).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[actix_web::test]
async fn the_openapi_document_needs_no_token_and_lists_every_error_code() {
    let mut auth = MockAuthenticate::new();
    auth.expect_authenticate().times(0);
    let request = test::TestRequest::get().uri("/api/v1/openapi.json");
    let (status, _, body) = call(auth, MockSuppressions::new(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["openapi"], "3.1.0");
    let codes: Vec<&str> = body["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let produced = [
        V1Error::Unauthorized,
        V1Error::Forbidden("read"),
        V1Error::InvalidAddress(String::new()),
        V1Error::InvalidCursor,
        V1Error::InvalidTime(String::new()),
        V1Error::InvalidReason(String::new()),
        V1Error::InvalidLimit,
        V1Error::TooManyAddresses,
        V1Error::NoAddresses,
        V1Error::InvalidJson(String::new()),
        V1Error::UnsupportedMediaType,
        V1Error::TooLarge(1),
        V1Error::BodyRead(String::new()),
        V1Error::NotSuppressed,
        V1Error::NotFound,
        V1Error::MethodNotAllowed("GET"),
        V1Error::Unavailable(StoreError::Failed(String::new())),
    ];
    for error in produced {
        assert!(
            codes.contains(&error.code()),
            "{} is not in the description",
            error.code()
        );
    }
}

mod history {
    use domain::event::{BounceClass, EventType, PlatformEvent};
    use domain::history::{
        CarrierMessage, ErasureReport, EventFilter, EventPage, EventPosition, MessageTimeline,
        MockEventHistory, StoredEvent,
    };
    use domain::ports::MessageOutcome;
    use domain::suppression::Actor;

    use super::*;

    fn position(id: i64) -> EventPosition {
        EventPosition {
            event_time: at() - chrono::TimeDelta::seconds(id),
            id,
        }
    }

    fn bounce(id: i64) -> StoredEvent {
        let position = position(id);
        let mut event = PlatformEvent::new(EventType::Bounce, "ses-1", position.event_time);
        event.event_key = format!("key-{id}");
        event.recipient = Some("John@Example.com".into());
        event.bounce_type = Some(BounceClass::Hard);
        event.ses_bounce_type = Some("Permanent".into());
        event.diagnostic_code = Some("smtp; 550 5.1.1 \"no\", such user".into());
        event.processing_time_millis = Some(1200);
        event.tags = Some(json!({"campaign": ["spring"]}));
        StoredEvent {
            position,
            event,
            sns_message_id: "sns-1".into(),
            created_at: at(),
        }
    }

    fn page(ids: std::ops::RangeInclusive<i64>, next: Option<i64>) -> EventPage {
        EventPage {
            items: ids.map(bounce).collect(),
            next: next.map(position),
        }
    }

    #[actix_web::test]
    async fn the_filters_reach_the_port_and_the_page_comes_back_field_by_field_with_a_cursor() {
        let mut history = MockEventHistory::new();
        history
            .expect_events()
            .withf(|q| {
                let f = &q.filter;
                f.recipient.as_ref().map(|a| a.key()) == Some("john@example.com")
                    && f.ses_message_id.as_deref() == Some("ses-1")
                    && f.types == [EventType::Bounce, EventType::SpamReport]
                    && f.bounce_type == Some(BounceClass::Hard)
                    && f.since.is_some()
                    && f.until.is_some()
                    && f.tags
                        == [
                            ("ses:configuration-set".to_owned(), "marketing".to_owned()),
                            ("campaign".to_owned(), "spring".to_owned()),
                        ]
                    && q.limit == 2
                    && q.after.is_none()
            })
            .times(1)
            .returning(|_| Ok(page(1..=2, Some(2))));
        let uri = "/api/v1/events?recipient=John%40Example.com&sesMessageId=ses-1\
                   &type=email_bounce&type=email_spam_report&bounceType=hard\
                   &since=2026-01-01T00:00:00Z&until=2026-02-01T00:00:00Z\
                   &configurationSet=marketing&tag=campaign:spring&limit=2";
        let (status, _, body) =
            call_history(Scope::Read, history, test::TestRequest::get().uri(uri)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let items = body["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        let first = &items[0];
        assert_eq!(first["eventKey"], "key-1");
        assert_eq!(first["eventType"], "email_bounce");
        assert_eq!(first["recipient"], "John@Example.com");
        assert_eq!(first["bounceType"], "hard");
        assert_eq!(first["sesMessageId"], "ses-1");
        assert_eq!(first["snsMessageId"], "sns-1");
        assert_eq!(first["eventTime"], "2026-01-02T03:04:04.000000Z");
        assert_eq!(first["sesBounceType"], "Permanent");
        assert_eq!(first["processingTimeMs"], 1200);
        assert_eq!(first["tags"], json!({"campaign": ["spring"]}));
        assert_eq!(first["mailTime"], Value::Null);
        assert_eq!(first["linkTags"], Value::Null);
        assert_eq!(first["createdAt"], "2026-01-02T03:04:05.000000Z");
        assert_eq!(first.as_object().unwrap().len(), 28);

        // The cursor brings back the last item's position, with the same filters only.
        let cursor = body["nextCursor"].as_str().unwrap().to_owned();
        let mut history = MockEventHistory::new();
        history
            .expect_events()
            .withf(|q| q.after == Some(position(2)) && q.limit == 2)
            .times(1)
            .returning(|_| Ok(page(3..=3, None)));
        let (status, _, body) = call_history(
            Scope::Read,
            history,
            test::TestRequest::get().uri(&format!("{uri}&cursor={cursor}")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["nextCursor"], Value::Null);

        let mut other = MockEventHistory::new();
        other.expect_events().times(0);
        let (status, _, body) = call_history(
            Scope::Read,
            other,
            test::TestRequest::get().uri(&format!("/api/v1/events?limit=2&cursor={cursor}")),
        )
        .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_cursor");
    }

    #[actix_web::test]
    async fn every_bad_query_is_a_400_naming_the_problem_and_never_reaches_the_port() {
        let cases = [
            ("recipient=not-an-address", "invalid_address"),
            ("sesMessageId=%01", "invalid_message_id"),
            ("type=email_sent", "invalid_type"),
            ("bounceType=permanent", "invalid_bounce_type"),
            ("since=yesterday", "invalid_time"),
            (
                "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
                "invalid_time",
            ),
            ("tag=campaign", "invalid_tag"),
            ("configurationSet=", "invalid_tag"),
            ("limit=0", "invalid_limit"),
            ("limit=1001", "invalid_limit"),
            ("limit=ten", "invalid_limit"),
            ("cursor=bm90LWEtY3Vyc29y", "invalid_cursor"),
            ("recipents=a%40example.com", "unknown_parameter"),
            ("limit=1&limit=2", "invalid_parameter"),
            (
                "tag=a:1&tag=a:2&tag=a:3&tag=a:4&tag=a:5&tag=a:6&tag=a:7&tag=a:8&tag=a:9&tag=a:10\
                 &configurationSet=x",
                "invalid_tag",
            ),
            ("until=9999-12-31T23:00:00-02:00", "invalid_time"),
        ];
        for (query, code) in cases {
            let mut history = MockEventHistory::new();
            history.expect_events().times(0);
            let (status, _, body) = call_history(
                Scope::Read,
                history,
                test::TestRequest::get().uri(&format!("/api/v1/events?{query}")),
            )
            .await;
            assert_error(status, &body, StatusCode::BAD_REQUEST, code);
        }
    }

    #[actix_web::test]
    async fn an_accept_header_without_a_supported_format_is_406_and_a_store_failure_503() {
        let mut history = MockEventHistory::new();
        history.expect_events().times(0);
        let (status, _, body) = call_history(
            Scope::Read,
            history,
            test::TestRequest::get()
                .uri("/api/v1/events")
                .insert_header(("accept", "text/html")),
        )
        .await;
        assert_error(status, &body, StatusCode::NOT_ACCEPTABLE, "not_acceptable");

        let mut history = MockEventHistory::new();
        history
            .expect_events()
            .returning(|_| Err(StoreError::Unavailable("down".into())));
        let (status, _, body) = call_history(
            Scope::Read,
            history,
            test::TestRequest::get().uri("/api/v1/events"),
        )
        .await;
        assert_error(
            status,
            &body,
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
        );
    }

    #[actix_web::test]
    async fn an_export_of_a_store_that_is_down_is_a_503_and_one_failing_later_is_cut_off() {
        let mut history = MockEventHistory::new();
        history
            .expect_events()
            .times(1)
            .returning(|_| Err(StoreError::Unavailable("down".into())));
        let (status, _, body) = call_history(
            Scope::Read,
            history,
            test::TestRequest::get()
                .uri("/api/v1/events")
                .insert_header(("accept", "text/csv")),
        )
        .await;
        assert_error(
            status,
            &body,
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
        );

        let mut history = MockEventHistory::new();
        let mut seq = mockall::Sequence::new();
        history
            .expect_events()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(page(1..=2, Some(2))));
        history
            .expect_events()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Err(StoreError::Unavailable("gone".into())));
        let ports = ApiPorts {
            auth: Arc::new(auth(Scope::Read)),
            suppressions: Arc::new(MockSuppressions::new()),
            history: Arc::new(history),
            reputation: Arc::new(MockReputationQueries::new()),
            deliveries: Arc::new(domain::delivery::MockDeliveries::new()),
        };
        let app = test::init_service(App::new().configure(|cfg| configure_api(cfg, ports))).await;
        let request = with_token(
            test::TestRequest::get()
                .uri("/api/v1/events")
                .insert_header(("accept", "application/x-ndjson")),
        );
        let response = test::call_service(&app, request.to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            actix_web::body::to_bytes(response.into_body())
                .await
                .is_err(),
            "the body must end in an error, not look complete"
        );
    }

    #[actix_web::test]
    async fn exports_take_no_limit_or_cursor() {
        for (query, code) in [
            ("limit=5", "invalid_limit"),
            ("cursor=abc", "invalid_cursor"),
        ] {
            let mut history = MockEventHistory::new();
            history.expect_events().times(0);
            let (status, _, body) = call_history(
                Scope::Read,
                history,
                test::TestRequest::get()
                    .uri(&format!("/api/v1/events?{query}"))
                    .insert_header(("accept", "application/x-ndjson")),
            )
            .await;
            assert_error(status, &body, StatusCode::BAD_REQUEST, code);
        }
    }

    /// A history whose pages are 1..=2 (with a next position) then 3..=3, for an export.
    fn two_pages() -> MockEventHistory {
        let mut history = MockEventHistory::new();
        let mut seq = mockall::Sequence::new();
        history
            .expect_events()
            .withf(|q| q.after.is_none() && q.limit == crate::EXPORT_PAGE)
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(page(1..=2, Some(2))));
        history
            .expect_events()
            .withf(|q| q.after == Some(position(2)) && q.limit == crate::EXPORT_PAGE)
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(page(3..=3, None)));
        history
    }

    #[actix_web::test]
    async fn an_ndjson_export_streams_every_page_one_event_per_line() {
        let (status, headers, body) = call_raw(
            auth(Scope::Read),
            MockSuppressions::new(),
            two_pages(),
            with_token(
                test::TestRequest::get()
                    .uri("/api/v1/events?type=email_bounce")
                    .insert_header(("accept", "application/x-ndjson")),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers.get("content-type").unwrap(), "application/x-ndjson");
        let text = String::from_utf8(body.to_vec()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let keys: Vec<&str> = lines
            .iter()
            .map(|l| l["eventKey"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["key-1", "key-2", "key-3"]);
        assert!(text.ends_with('\n'));
    }

    #[actix_web::test]
    async fn a_csv_export_has_a_header_row_and_quotes_what_needs_it() {
        let (status, headers, body) = call_raw(
            auth(Scope::Read),
            MockSuppressions::new(),
            two_pages(),
            with_token(
                test::TestRequest::get()
                    .uri("/api/v1/events")
                    .insert_header(("accept", "text/csv")),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            headers
                .get("content-type")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let mut reader = csv::Reader::from_reader(body.as_ref());
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(header, crate::CSV_COLUMNS);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 3);
        let column = |name: &str| header.iter().position(|h| h == name).unwrap();
        assert_eq!(&rows[2][column("eventKey")], "key-3");
        assert_eq!(
            &rows[0][column("diagnosticCode")],
            "smtp; 550 5.1.1 \"no\", such user"
        );
        assert_eq!(&rows[0][column("tags")], r#"{"campaign":["spring"]}"#);
        assert_eq!(&rows[0][column("mailTime")], "");
        assert!(body.windows(2).any(|w| w == b"\r\n"), "RFC 4180 line ends");
    }

    #[actix_web::test]
    async fn a_message_timeline_is_200_with_events_and_messages_or_404() {
        let mut history = MockEventHistory::new();
        history
            .expect_message()
            .withf(|id| id == "0100-abc/1")
            .returning(|_| {
                Ok(Some(MessageTimeline {
                    events: vec![bounce(1)],
                    messages: vec![CarrierMessage {
                        sns_message_id: "sns-1".into(),
                        ses_type: Some("Bounce".into()),
                        outcome: MessageOutcome::Processed,
                        received_at: at(),
                        events_stored: 1,
                        raw_body_kept: true,
                    }],
                }))
            });
        let (status, _, body) = call_history(
            Scope::Read,
            history,
            test::TestRequest::get().uri("/api/v1/messages/0100-abc%2F1"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["sesMessageId"], "0100-abc/1");
        assert_eq!(body["events"][0]["eventKey"], "key-1");
        assert_eq!(
            body["messages"][0],
            json!({
                "snsMessageId": "sns-1",
                "sesType": "Bounce",
                "outcome": "processed",
                "receivedAt": "2026-01-02T03:04:05.000000Z",
                "eventsStored": 1,
                "rawBodyKept": true,
            })
        );

        let mut history = MockEventHistory::new();
        history.expect_message().returning(|_| Ok(None));
        let (status, _, body) = call_history(
            Scope::Read,
            history,
            test::TestRequest::get().uri("/api/v1/messages/unknown"),
        )
        .await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }

    #[actix_web::test]
    async fn an_erasure_needs_a_write_token_and_answers_its_counts() {
        let mut history = MockEventHistory::new();
        history.expect_erase().times(0);
        let (status, _, body) = call_history(
            Scope::Read,
            history,
            test::TestRequest::delete().uri("/api/v1/recipients/a%40example.com"),
        )
        .await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");

        for (query, keep) in [("", true), ("?keepSuppression=false", false)] {
            let mut history = MockEventHistory::new();
            history
                .expect_erase()
                .withf(move |address, request, actor| {
                    address.key() == "a+b@example.com"
                        && request.keep_suppression == keep
                        && *actor == Actor::Token("crm".into())
                })
                .times(1)
                .returning(move |_, _, _| {
                    Ok(ErasureReport {
                        events_deleted: 4,
                        messages_cleared: 2,
                        suppression_removed: !keep,
                        history_deleted: if keep { 0 } else { 3 },
                        suppression_kept: keep,
                        recorded_at: Some(at()),
                        previously_erased_at: None,
                    })
                });
            let (status, _, body) = call_history(
                Scope::Write,
                history,
                test::TestRequest::delete()
                    .uri(&format!("/api/v1/recipients/A%2Bb%40Example.com{query}")),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["eventsDeleted"], 4);
            assert_eq!(body["messagesCleared"], 2);
            assert_eq!(body["suppressionRemoved"], !keep);
            assert_eq!(body["suppressionKept"], keep);
            assert_eq!(body["historyDeleted"], if keep { 0 } else { 3 });
            assert_eq!(body["erasedAt"], "2026-01-02T03:04:05.000000Z");
            assert_eq!(body["previouslyErasedAt"], Value::Null);
            assert!(
                body["notice"]
                    .as_str()
                    .unwrap()
                    .contains("can no longer be reprocessed")
            );
        }

        for (query, code) in [
            ("?keepSuppression=maybe", "invalid_parameter"),
            (
                "?keepSuppression=true&keepSuppression=false",
                "invalid_parameter",
            ),
            ("?force=true", "unknown_parameter"),
        ] {
            let mut history = MockEventHistory::new();
            history.expect_erase().times(0);
            let (status, _, body) = call_history(
                Scope::Write,
                history,
                test::TestRequest::delete()
                    .uri(&format!("/api/v1/recipients/a%40example.com{query}")),
            )
            .await;
            assert_error(status, &body, StatusCode::BAD_REQUEST, code);
        }
    }

    #[actix_web::test]
    async fn the_filter_of_a_query_is_what_a_cursor_is_bound_to() {
        let request = crate::api::events::EventsRequest::parse(
            "type=email_open&type=email_open&tag=a:1&tag=a:1",
        )
        .unwrap();
        assert_eq!(request.filter.types, [EventType::Open]);
        assert_eq!(request.filter.tags.len(), 1);
        assert_ne!(
            request.filter.fingerprint(),
            EventFilter::default().fingerprint()
        );
    }
}

#[actix_web::test]
async fn a_query_parameter_an_endpoint_does_not_take_is_a_400_everywhere() {
    let requests = [
        test::TestRequest::get().uri("/api/v1/suppressions?reasn=manual"),
        test::TestRequest::get().uri("/api/v1/suppressions/a%40example.com?x=1"),
        test::TestRequest::get().uri("/api/v1/suppressions/a%40example.com/history?x=1"),
        test::TestRequest::delete().uri("/api/v1/suppressions/a%40example.com?force=1"),
        test::TestRequest::get().uri("/api/v1/messages/ses-1?x=1"),
    ];
    for request in requests {
        let (status, _, body) = call(
            auth(Scope::Write),
            MockSuppressions::new(),
            with_token(request),
        )
        .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "unknown_parameter");
    }
    let twice = test::TestRequest::get().uri("/api/v1/suppressions?reason=manual&reason=complaint");
    let (status, _, body) = call(
        auth(Scope::Write),
        MockSuppressions::new(),
        with_token(twice),
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_parameter");
}

mod reputation {
    use super::*;
    use domain::reputation::{
        Counts, DailyReputation, DayAssessment, Reputation, ReputationPolicy,
    };

    fn assessment(sent: u64, hard: u64) -> domain::reputation::Assessment {
        ReputationPolicy::default().assess(Counts {
            sent,
            hard_bounces: hard,
            soft_bounces: 7,
            ..Counts::default()
        })
    }

    fn queries() -> MockReputationQueries {
        let mut q = MockReputationQueries::new();
        q.expect_policy().returning(ReputationPolicy::default);
        q
    }

    async fn call_reputation(
        q: MockReputationQueries,
        request: test::TestRequest,
    ) -> (StatusCode, Value) {
        let ports = ApiPorts {
            auth: Arc::new(auth(Scope::Read)),
            suppressions: Arc::new(MockSuppressions::new()),
            history: Arc::new(MockEventHistory::new()),
            reputation: Arc::new(q),
            deliveries: Arc::new(domain::delivery::MockDeliveries::new()),
        };
        let app = test::init_service(App::new().configure(|cfg| configure_api(cfg, ports))).await;
        let response = test::call_service(&app, with_token(request).to_request()).await;
        let status = response.status();
        (status, json_of(&test::read_body(response).await))
    }

    #[actix_web::test]
    async fn the_reputation_answers_rates_statuses_and_each_configuration_set() {
        let mut q = queries();
        q.expect_reputation()
            .withf(|window, set| *window == Some(14) && set.as_deref() == Some("marketing"))
            .returning(|window, set| {
                Ok(Reputation {
                    window_days: window.unwrap_or(7),
                    configuration_set: set,
                    from: at(),
                    to: at(),
                    total: assessment(1000, 60),
                    by_configuration_set: vec![(Some("marketing".into()), assessment(1000, 60))],
                })
            });
        let (status, body) = call_reputation(
            q,
            test::TestRequest::get()
                .uri("/api/v1/reputation?windowDays=14&configurationSet=marketing"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["windowDays"], 14);
        assert_eq!(body["configurationSet"], "marketing");
        assert_eq!(body["denominator"], "sends");
        assert_eq!(body["sent"], 1000);
        assert_eq!(body["hardBounces"], 60);
        assert_eq!(body["softBounces"], 7);
        assert_eq!(body["bounceRate"], 0.06);
        assert_eq!(body["bounceStatus"], "review");
        assert_eq!(body["complaintRate"], 0.0);
        assert_eq!(body["complaintStatus"], "ok");
        assert_eq!(
            body["byConfigurationSet"][0]["configurationSet"],
            "marketing"
        );
        assert_eq!(body["byConfigurationSet"][0]["bounceStatus"], "review");
        assert_eq!(body["thresholds"]["bounce"]["review"], 0.05);
        assert_eq!(body["thresholds"]["bounce"]["warning"], 0.02);
        assert_eq!(body["thresholds"]["complaint"]["warning"], 0.0004);
        assert_eq!(body["thresholds"]["minVolume"], 200);
    }

    #[actix_web::test]
    async fn bad_parameters_are_400_naming_the_problem() {
        for uri in [
            "/api/v1/reputation?windowDays=0",
            "/api/v1/reputation?windowDays=91",
            "/api/v1/reputation?windowDays=7.5",
            "/api/v1/reputation?windowDays=7&windowDays=8",
            "/api/v1/reputation/daily?days=367",
            "/api/v1/reputation/daily?days=abc",
            "/api/v1/reputation?configurationSet=%01",
        ] {
            let (status, body) =
                call_reputation(queries(), test::TestRequest::get().uri(uri)).await;
            assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_parameter");
        }
        let (status, body) = call_reputation(
            queries(),
            test::TestRequest::get().uri("/api/v1/reputation?window=7"),
        )
        .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "unknown_parameter");
    }

    #[actix_web::test]
    async fn daily_lists_the_days_and_an_empty_configuration_set_means_every_message() {
        let mut q = queries();
        q.expect_daily()
            .withf(|days, set| *days == 30 && set.is_none())
            .returning(|days, set| {
                Ok(DailyReputation {
                    days,
                    configuration_set: set,
                    items: vec![DayAssessment {
                        day: chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
                        assessment: ReputationPolicy::default().assess(Counts::default()),
                    }],
                })
            });
        let (status, body) = call_reputation(
            q,
            test::TestRequest::get().uri("/api/v1/reputation/daily?configurationSet="),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["days"], 30);
        assert_eq!(body["items"][0]["day"], "2026-11-30");
        assert_eq!(body["items"][0]["bounceRate"], Value::Null);
        assert_eq!(body["items"][0]["denominator"], "deliveries_and_bounces");
        assert_eq!(body["items"][0]["bounceStatus"], "insufficient_volume");
    }

    #[actix_web::test]
    async fn a_store_that_is_down_is_503() {
        let mut q = queries();
        q.expect_reputation()
            .returning(|_, _| Err(StoreError::Unavailable("down".into())));
        let (status, body) =
            call_reputation(q, test::TestRequest::get().uri("/api/v1/reputation")).await;
        assert_error(
            status,
            &body,
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
        );
    }
}

/// `/api/v1/deliveries` over a mock of [`domain::delivery::Deliveries`].
mod deliveries {
    use domain::delivery::{
        DeliveryError, EntrySource, EntryState, MockDeliveries, OutboxEntry, ReplayOutcome,
        ReplayScope,
    };

    use super::*;

    fn outbox_entry(id: i64, state: EntryState) -> OutboxEntry {
        OutboxEntry {
            id,
            sink: "crm".into(),
            entry_id: format!("key-{id}"),
            entry_type: "email_bounce".into(),
            source: EntrySource::Event(id),
            state,
            attempts: 7,
            created_at: at(),
            next_attempt_at: at() + chrono::TimeDelta::minutes(5),
            last_error: Some("HTTP 503".into()),
            settled_at: (state != EntryState::Pending).then(at),
            lease_until: None,
        }
    }

    async fn call_deliveries(
        scope: Scope,
        deliveries: MockDeliveries,
        request: test::TestRequest,
    ) -> (StatusCode, Value) {
        let ports = ApiPorts {
            auth: Arc::new(auth(scope)),
            suppressions: Arc::new(MockSuppressions::new()),
            history: Arc::new(MockEventHistory::new()),
            reputation: Arc::new(MockReputationQueries::new()),
            deliveries: Arc::new(deliveries),
        };
        let app = test::init_service(App::new().configure(|cfg| configure_api(cfg, ports))).await;
        let response = test::call_service(&app, request.to_request()).await;
        let status = response.status();
        (status, json_of(&test::read_body(response).await))
    }

    fn get(query: &str) -> test::TestRequest {
        test::TestRequest::get()
            .uri(&format!("/api/v1/deliveries{query}"))
            .insert_header(("Authorization", format!("Bearer {TOKEN}")))
    }

    fn replay(body: Value) -> test::TestRequest {
        test::TestRequest::post()
            .uri("/api/v1/deliveries/replay")
            .insert_header(("Authorization", format!("Bearer {TOKEN}")))
            .set_json(body)
    }

    #[actix_web::test]
    async fn a_page_of_entries_field_by_field_and_its_cursor() {
        let mut deliveries = MockDeliveries::new();
        deliveries
            .expect_entries()
            .withf(|q| {
                q.sink.as_deref() == Some("crm")
                    && q.state == Some(EntryState::Dead)
                    && q.after_id.is_none()
                    && q.limit == 3
            })
            .returning(|_| {
                Ok(vec![
                    outbox_entry(4, EntryState::Dead),
                    outbox_entry(9, EntryState::Dead),
                    outbox_entry(12, EntryState::Dead),
                ])
            });
        deliveries
            .expect_entries()
            .withf(|q| q.after_id == Some(9) && q.limit == 3 && q.sink.is_none())
            .returning(|_| Ok(vec![outbox_entry(12, EntryState::Pending)]));
        let (status, body) =
            call_deliveries(Scope::Read, deliveries, get("?sink=crm&state=dead&limit=2")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["items"][0],
            json!({
                "eventId": "key-4",
                "type": "email_bounce",
                "sink": "crm",
                "state": "dead",
                "attempts": 7,
                "createdAt": "2026-01-02T03:04:05.000000Z",
                "nextAttemptAt": null,
                "lastError": "HTTP 503",
                "settledAt": "2026-01-02T03:04:05.000000Z",
            })
        );
        assert_eq!(body["items"].as_array().unwrap().len(), 2);
        let cursor = body["nextCursor"].as_str().unwrap().to_owned();

        let mut deliveries = MockDeliveries::new();
        deliveries
            .expect_entries()
            .withf(|q| q.after_id == Some(9) && q.limit == 3 && q.sink.is_none())
            .returning(|_| Ok(vec![outbox_entry(12, EntryState::Pending)]));
        let (status, body) = call_deliveries(
            Scope::Read,
            deliveries,
            get(&format!("?limit=2&cursor={cursor}")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["nextCursor"], Value::Null);
        assert_eq!(body["items"][0]["state"], "pending");
        assert_eq!(
            body["items"][0]["nextAttemptAt"],
            "2026-01-02T03:09:05.000000Z"
        );
        assert_eq!(body["items"][0]["settledAt"], Value::Null);
    }

    #[actix_web::test]
    async fn bad_queries_and_tokens_are_refused_with_their_codes() {
        let unknown = || {
            let mut d = MockDeliveries::new();
            d.expect_entries().returning(|_| {
                Err(DeliveryError::UnknownSink {
                    sink: "crn".into(),
                    known: "crm".into(),
                })
            });
            d
        };
        for (query, status, code) in [
            ("?state=lost", StatusCode::BAD_REQUEST, "invalid_state"),
            ("?limit=0", StatusCode::BAD_REQUEST, "invalid_limit"),
            ("?cursor=AAAA", StatusCode::BAD_REQUEST, "invalid_cursor"),
            ("?sinc=crm", StatusCode::BAD_REQUEST, "unknown_parameter"),
            ("?sink=crn", StatusCode::BAD_REQUEST, "unknown_sink"),
        ] {
            let (got, body) = call_deliveries(Scope::Read, unknown(), get(query)).await;
            assert_eq!(
                (got, body["error"].as_str()),
                (status, Some(code)),
                "{query}"
            );
        }
        let (got, body) = call_deliveries(
            Scope::Read,
            MockDeliveries::new(),
            test::TestRequest::get().uri("/api/v1/deliveries"),
        )
        .await;
        assert_eq!(
            (got, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized"))
        );
        let mut down = MockDeliveries::new();
        down.expect_entries()
            .returning(|_| Err(DeliveryError::Store(StoreError::Unavailable("down".into()))));
        let (got, body) = call_deliveries(Scope::Read, down, get("")).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("store_unavailable"))
        );
    }

    #[actix_web::test]
    async fn replays_by_state_or_by_event_ids_need_a_write_token() {
        let mut deliveries = MockDeliveries::new();
        deliveries
            .expect_replay()
            .withf(|scope| {
                *scope
                    == ReplayScope::State {
                        sink: "crm".into(),
                        state: EntryState::Dead,
                        since: Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
                    }
            })
            .returning(|_| {
                Ok(ReplayOutcome {
                    replayed: 3,
                    not_found: vec![],
                })
            });
        let (status, body) = call_deliveries(
            Scope::Write,
            deliveries,
            replay(json!({"sink": "crm", "state": "dead", "since": "2026-01-01T00:00:00Z"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"replayed": 3, "notFound": []}));

        let mut deliveries = MockDeliveries::new();
        deliveries
            .expect_replay()
            .withf(|scope| {
                *scope
                    == ReplayScope::Entries {
                        sink: "crm".into(),
                        entry_ids: vec!["a".into(), "b".into()],
                    }
            })
            .returning(|_| {
                Ok(ReplayOutcome {
                    replayed: 1,
                    not_found: vec!["b".into()],
                })
            });
        let (status, body) = call_deliveries(
            Scope::Write,
            deliveries,
            replay(json!({"sink": "crm", "eventIds": ["a", "b"]})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"replayed": 1, "notFound": ["b"]}));

        let (status, body) = call_deliveries(
            Scope::Read,
            MockDeliveries::new(),
            replay(json!({"sink": "crm", "state": "dead"})),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden"))
        );
    }

    #[actix_web::test]
    async fn bad_replay_bodies_are_refused_with_their_codes() {
        let too_many: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
        let refusing = || {
            let mut d = MockDeliveries::new();
            d.expect_replay().returning(|scope| match scope {
                ReplayScope::State {
                    state: EntryState::Pending,
                    ..
                } => Err(DeliveryError::NotReplayable("pending")),
                _ => Err(DeliveryError::UnknownSink {
                    sink: "x".into(),
                    known: "crm".into(),
                }),
            });
            d
        };
        for (body, code) in [
            (json!({"sink": "crm"}), "invalid_json"),
            (
                json!({"sink": "crm", "state": "dead", "eventIds": ["a"]}),
                "invalid_json",
            ),
            (
                json!({"sink": "crm", "eventIds": ["a"], "since": "2026-01-01T00:00:00Z"}),
                "invalid_json",
            ),
            (
                json!({"sink": "crm", "state": "dead", "colour": 1}),
                "invalid_json",
            ),
            (json!({"sink": "crm", "eventIds": []}), "invalid_event_ids"),
            (
                json!({"sink": "crm", "eventIds": too_many}),
                "invalid_event_ids",
            ),
            (json!({"sink": "crm", "state": "lost"}), "invalid_state"),
            (json!({"sink": "crm", "state": "pending"}), "invalid_state"),
            (
                json!({"sink": "crm", "state": "dead", "since": "yesterday"}),
                "invalid_time",
            ),
            (json!({"sink": "x", "state": "dead"}), "unknown_sink"),
        ] {
            let (status, got) =
                call_deliveries(Scope::Write, refusing(), replay(body.clone())).await;
            assert_eq!(
                (status, got["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some(code)),
                "{body}"
            );
        }
    }
}
