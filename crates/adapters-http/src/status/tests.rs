#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{App, test};
use base64::Engine as _;
use chrono::{Duration, TimeZone, Utc};
use domain::ports::{MockAuthenticate, StoreError, SubscriptionState};
use domain::reputation::{
    Counts, DailyReputation, DayAssessment, HourlyActivity, Reputation, ReputationPolicy,
};
use domain::status::{
    FailedMessage, MockStatusQueries, StatusReport, SubscriptionStatus, TopicActivity,
};
use domain::token::{AuthError, Caller, Scope};

use super::*;

const TOKEN: &str = "sesw_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-events";

fn auth() -> MockAuthenticate {
    let mut auth = MockAuthenticate::new();
    auth.expect_authenticate().returning(|token| {
        if token == TOKEN {
            Ok(Caller {
                token_name: "ops".into(),
                scope: Scope::Read,
            })
        } else {
            Err(AuthError::Unauthorized)
        }
    });
    auth
}

fn report() -> StatusReport {
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 15, 30, 0).unwrap();
    let policy = ReputationPolicy::default();
    let hours = (0..48)
        .map(|i| {
            let hour = Utc.with_ymd_and_hms(2026, 11, 28, 16, 0, 0).unwrap() + Duration::hours(i);
            let counts = if i == 47 {
                Counts {
                    delivered: 3,
                    hard_bounces: 1,
                    soft_bounces: 1,
                    ..Counts::default()
                }
            } else {
                Counts::default()
            };
            (hour, counts)
        })
        .collect();
    let day = |d: u32, sent: u64, hard: u64| DayAssessment {
        day: chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap(),
        assessment: policy.assess(Counts {
            sent,
            hard_bounces: hard,
            ..Counts::default()
        }),
    };
    let marketing = policy.assess(Counts {
        sent: 400,
        hard_bounces: 24,
        ..Counts::default()
    });
    StatusReport {
        generated_at: now,
        hourly: HourlyActivity { hours },
        daily: DailyReputation {
            days: 2,
            configuration_set: None,
            items: vec![day(29, 0, 0), day(30, 400, 24)],
        },
        reputation: Reputation {
            window_days: 7,
            configuration_set: None,
            from: now,
            to: now,
            total: marketing,
            by_configuration_set: vec![(Some("marketing<b>".into()), marketing)],
        },
        policy,
        subscriptions: vec![SubscriptionStatus {
            topic_arn: TOPIC.into(),
            state: SubscriptionState::Confirmed,
            updated_at: now,
        }],
        topics: vec![TopicActivity {
            topic_arn: TOPIC.into(),
            last_notification_at: Some(now - Duration::seconds(3 * 3600 + 300)),
        }],
        failures: vec![FailedMessage {
            received_at: now,
            ses_type: Some("Bounce".into()),
            reason: Some("Bounce record: no bouncedRecipients <script>".into()),
        }],
    }
}

async fn get(
    status: MockStatusQueries,
    authorization: Option<String>,
) -> (StatusCode, actix_web::http::header::HeaderMap, String) {
    let ports = StatusPorts {
        auth: Arc::new(auth()),
        status: Arc::new(status),
    };
    let app = test::init_service(App::new().configure(|cfg| configure_status(cfg, ports))).await;
    let mut request = test::TestRequest::get().uri("/status");
    if let Some(value) = authorization {
        request = request.insert_header((header::AUTHORIZATION, value));
    }
    let response = test::call_service(&app, request.to_request()).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = String::from_utf8(test::read_body(response).await.to_vec()).unwrap();
    (status, headers, body)
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[actix_web::test]
async fn without_the_right_token_the_browser_is_asked_for_one() {
    for authorization in [
        None,
        Some(basic("ops", "sesw_wrong")),
        Some(basic("ops", "")),
        Some(format!("Bearer {TOKEN}")),
        Some("Basic !!!".to_owned()),
    ] {
        let mut status = MockStatusQueries::new();
        status.expect_status().times(0);
        let (code, headers, body) = get(status, authorization.clone()).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(
            headers.get(header::WWW_AUTHENTICATE).unwrap(),
            "Basic realm=\"ses-webhook status\", charset=\"UTF-8\""
        );
        assert_eq!(headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
        assert!(!body.contains("ses-events"));
    }
}

#[actix_web::test]
async fn the_page_shows_every_section_with_strict_headers() {
    let mut status = MockStatusQueries::new();
    status.expect_status().returning(|| Ok(report()));
    let (code, headers, body) = get(status, Some(basic("anyone", TOKEN))).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
    assert_eq!(
        headers.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(),
        "nosniff"
    );
    let csp = headers
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"));
    // The stylesheet's hash is the one the policy names.
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE));
    assert!(csp.contains(&hash));
    assert!(body.contains(&format!("<style>{STYLE}</style>")));
    assert!(!body.contains("<script"));
    assert!(!body.contains("style=\""));
    for id in [
        "events-per-hour",
        "rates-per-day",
        "configuration-sets",
        "subscriptions",
        "topics",
        "failures",
    ] {
        assert!(body.contains(&format!("<section id=\"{id}\">")), "{id}");
    }
    // 48 points per event type; the last hour's counts.
    assert_eq!(
        body.matches("class=\"point\" data-series=\"email_delivered\"")
            .count(),
        48
    );
    assert!(body.contains(
        "data-series=\"email_bounce\" data-index=\"47\" data-x=\"30 15:00\" data-value=\"2\""
    ));
    // Rates: a point only on the day with volume, and the six thresholds.
    assert_eq!(
        body.matches("class=\"point\" data-series=\"bounce_rate\"")
            .count(),
        1
    );
    assert!(body.contains(
        "data-series=\"bounce_rate\" data-index=\"1\" data-x=\"11-30\" data-value=\"0.06\""
    ));
    for key in [
        "bounce_warning",
        "bounce_review",
        "bounce_pause",
        "complaint_warning",
        "complaint_review",
        "complaint_pause",
    ] {
        assert!(body.contains(&format!("data-threshold=\"{key}\"")), "{key}");
    }
    // The configuration set, escaped, with its status in colour and words, and the total.
    assert!(body.contains("data-configuration-set=\"marketing&lt;b&gt;\""));
    assert!(body.contains("<span class=\"status status-review\">Review</span>"));
    assert!(body.contains("data-configuration-set=\"(all)\""));
    assert!(body.contains(&format!(
        "<tr data-topic=\"{TOPIC}\"><td>{TOPIC}</td><td>confirmed</td>"
    )));
    assert!(body.contains("3 h 5 min"));
    assert!(body.contains("no bouncedRecipients &lt;script&gt;"));
}

#[actix_web::test]
async fn a_store_that_is_down_is_503() {
    let mut status = MockStatusQueries::new();
    status
        .expect_status()
        .returning(|| Err(StoreError::Unavailable("down".into())));
    let (code, headers, _) = get(status, Some(basic("", TOKEN))).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
}

#[actix_web::test]
async fn durations_read_as_words() {
    assert_eq!(duration_text(12), "12 s");
    assert_eq!(duration_text(250), "4 min 10 s");
    assert_eq!(duration_text(3 * 3600 + 300), "3 h 5 min");
    assert_eq!(duration_text(2 * 86_400 + 3 * 3600), "2 d 3 h");
    assert_eq!(duration_text(-5), "0 s");
}
