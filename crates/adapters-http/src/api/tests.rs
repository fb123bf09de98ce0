//! Handler tests of `/api/v1`: the real actix-web service around mocks of the inbound ports
//! [`Authenticate`] and [`Suppressions`]. They check what the adapter owns: tokens and scopes,
//! decoding of paths, queries, bodies and cursors, status codes, error codes and bodies field by
//! field. The list's rules are tested in `domain`, the storage in `adapters-store`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{App, test};
use chrono::{TimeZone, Utc};
use domain::ports::{ListPosition, MockAuthenticate, MockSuppressions, StoreError};
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
    let ports = ApiPorts {
        auth: Arc::new(auth),
        suppressions: Arc::new(suppressions),
    };
    let app = test::init_service(App::new().configure(|cfg| configure_api(cfg, ports))).await;
    let response = test::call_service(&app, request.to_request()).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = test::read_body(response).await;
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    (status, headers, json)
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
