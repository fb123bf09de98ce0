//! Health, readiness and metrics of the running server.

use test_support::{fixtures_dir, spawn_app, spawn_app_with};

/// The value of one sample line (`name{labels} value`) in a metrics text, 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_change_as_requests_arrive() {
    let app = spawn_app().await;
    let bounce =
        std::fs::read_to_string(fixtures_dir().join("notification_bounce_1.json")).unwrap();
    let envelope = app.notification(&bounce);
    let before = app.metrics().await;

    assert_eq!(app.post(&envelope).await.0, 200);
    assert_eq!(app.post(&envelope).await.0, 200);
    let mut forged = app.notification(&bounce);
    forged["Message"] = "tampered".into();
    assert_eq!(app.post(&forged).await.0, 403);
    let after = app.metrics().await;

    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        delta(r#"ses_webhook_requests_total{outcome="processed",status="200"}"#),
        2.0,
        "{after}"
    );
    assert_eq!(
        delta(r#"ses_webhook_requests_total{outcome="bad_signature",status="403"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"ses_webhook_events_stored_total{event_type="email_bounce"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"ses_webhook_event_duplicates_total{event_type="email_bounce"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"ses_webhook_verification_failures_total{reason="bad_signature"}"#),
        1.0
    );
    assert_eq!(delta("ses_webhook_request_duration_seconds_count"), 3.0);
    assert_eq!(
        delta(r#"ses_webhook_store_duration_seconds_count{operation="store_notification"}"#),
        2.0
    );
    assert!(
        sample(
            &after,
            r#"ses_webhook_certificate_cache_total{result="hit"}"#
        ) >= 1.0
    );
    assert_eq!(
        sample(
            &after,
            r#"ses_webhook_certificate_cache_total{result="miss"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn metrics_can_be_served_on_a_separate_port_only() {
    let app = spawn_app_with(|settings| settings.metrics.bind = "127.0.0.1:0".into()).await;
    let metrics_port = app.metrics_port.expect("separate metrics listener");

    let on_main = app.get("/metrics").await;
    let text = app.metrics().await;

    assert_ne!(metrics_port, app.port);
    assert_eq!(on_main.status().as_u16(), 404);
    assert!(
        text.contains("# TYPE ses_webhook_request_duration_seconds histogram"),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let app = spawn_app_with(|settings| settings.metrics.enabled = false).await;

    let response = app.get("/metrics").await;

    assert_eq!(response.status().as_u16(), 404);
}
