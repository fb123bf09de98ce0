//! Sending reputation against the real server, on both backends: `Send` records and events
//! posted through the webhook as SNS delivers them (retries, both SES formats, one `Send`
//! published twice), then `GET /api/v1/reputation` and `/reputation/daily`, the gauges, and the
//! status page's access control.

use chrono::{SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use test_support::{Backend, Scope, TestApp, assert_error, spawn_on};

const SENT: usize = 250;
const HARD: usize = 15;

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn recipient(i: usize) -> String {
    format!("user{i}@example.com")
}

fn mail(message_id: &str, destination: &[String], set: Option<&str>) -> Value {
    let mut mail = json!({
        "timestamp": now(),
        "messageId": message_id,
        "source": "shop@example.com",
        "destination": destination,
    });
    if let Some(set) = set {
        mail["tags"] = json!({"ses:configuration-set": [set]});
    }
    mail
}

fn send(message_id: &str, destination: &[String], set: &str) -> String {
    json!({"eventType": "Send", "mail": mail(message_id, destination, Some(set)), "send": {}})
        .to_string()
}

/// A bounce of `address`, in event publishing (`set`) or identity notification (`None`) form.
fn bounce(message_id: &str, address: &str, kind: &str, set: Option<&str>) -> String {
    let field = if set.is_some() {
        "eventType"
    } else {
        "notificationType"
    };
    json!({
        field: "Bounce",
        "mail": mail(message_id, &[address.to_owned()], set),
        "bounce": {
            "bounceType": kind,
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": address}],
            "timestamp": now(),
            "feedbackId": format!("fb-{message_id}-{address}"),
        }
    })
    .to_string()
}

fn complaint(message_id: &str, address: &str, set: &str) -> String {
    json!({
        "eventType": "Complaint",
        "mail": mail(message_id, &[address.to_owned()], Some(set)),
        "complaint": {
            "complainedRecipients": [{"emailAddress": address}],
            "timestamp": now(),
            "feedbackId": format!("cfb-{message_id}"),
        }
    })
    .to_string()
}

fn delivery(message_id: &str, addresses: &[String]) -> String {
    json!({
        "notificationType": "Delivery",
        "mail": mail(message_id, addresses, None),
        "delivery": {"timestamp": now(), "recipients": addresses},
    })
    .to_string()
}

async fn post_ok(app: &TestApp, envelope: &Value) -> Value {
    let (status, body) = app.post(envelope).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Posts the corpus: a `Send` of 250 recipients for `marketing` (delivered again, and published
/// again under another SNS message id), 15 hard and 5 soft bounces of them (each hard bounce in
/// both SES formats), one complaint; 100 deliveries without a configuration set.
async fn seed(app: &TestApp) {
    let destination: Vec<String> = (0..SENT).map(recipient).collect();
    let record = send("m-send", &destination, "marketing");
    let envelope = app.notification_with_id("sns-send", &record);
    let body = post_ok(app, &envelope).await;
    assert_eq!(body["processed"], 0, "a Send still stores no event");
    post_ok(app, &envelope).await;
    post_ok(app, &app.notification(&record)).await;
    for i in 0..HARD {
        let address = recipient(i);
        let message_id = format!("m-send-{i}");
        post_ok(
            app,
            &app.notification(&bounce(
                &message_id,
                &address,
                "Permanent",
                Some("marketing"),
            )),
        )
        .await;
        post_ok(
            app,
            &app.notification(&bounce(&message_id, &address, "Permanent", None)),
        )
        .await;
    }
    for i in HARD..HARD + 5 {
        post_ok(
            app,
            &app.notification(&bounce(
                "m-soft",
                &recipient(i),
                "Transient",
                Some("marketing"),
            )),
        )
        .await;
    }
    post_ok(
        app,
        &app.notification(&complaint("m-c", &recipient(99), "marketing")),
    )
    .await;
    let others: Vec<String> = (0..100).map(|i| format!("other{i}@example.org")).collect();
    post_ok(app, &app.notification(&delivery("m-plain", &others))).await;
}

async fn get_json(app: &TestApp, path: &str, token: Option<&str>) -> (u16, Value) {
    let response = app.api(Method::GET, path, token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn rates_count_each_recipient_once_as_ses_does(backend: Backend) {
    let app = spawn_on(backend, |s| s.reputation.refresh_secs = 1).await;
    seed(&app).await;
    let token = app.token("reputation-read", Scope::Read).await;
    let (status, body) = get_json(&app, "/api/v1/reputation", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["windowDays"], 7);
    assert_eq!(body["configurationSet"], Value::Null);
    assert_eq!(body["denominator"], "sends");
    assert_eq!(body["sent"], SENT);
    assert_eq!(body["hardBounces"], HARD);
    assert_eq!(body["softBounces"], 5);
    assert_eq!(body["complaints"], 1);
    assert_eq!(body["delivered"], 100);
    assert_eq!(body["bounceRate"], 0.06);
    assert_eq!(body["bounceStatus"], "review");
    assert_eq!(body["complaintRate"], 0.004);
    assert_eq!(body["complaintStatus"], "review");
    let sets = body["byConfigurationSet"].as_array().unwrap();
    assert_eq!(sets.len(), 2, "{body}");
    // Messages without a configuration set: no Send, so deliveries and bounces divide.
    assert_eq!(sets[0]["configurationSet"], Value::Null);
    assert_eq!(sets[0]["denominator"], "deliveries_and_bounces");
    assert_eq!(sets[0]["delivered"], 100);
    assert_eq!(sets[0]["volume"], 100);
    assert_eq!(sets[0]["bounceStatus"], "insufficient_volume");
    assert_eq!(sets[1]["configurationSet"], "marketing");
    assert_eq!(sets[1]["sent"], SENT);
    assert_eq!(sets[1]["hardBounces"], HARD);

    let (_, one) = get_json(
        &app,
        "/api/v1/reputation?windowDays=1&configurationSet=marketing",
        Some(&token),
    )
    .await;
    assert_eq!(one["configurationSet"], "marketing");
    assert_eq!(one["sent"], SENT);
    assert_eq!(one["delivered"], 0);
    assert_eq!(one["byConfigurationSet"].as_array().unwrap().len(), 1);

    let (status, daily) = get_json(&app, "/api/v1/reputation/daily?days=3", Some(&token)).await;
    assert_eq!(status, 200, "{daily}");
    let items = daily["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let today = Utc::now().date_naive().format("%Y-%m-%d").to_string();
    assert_eq!(items[2]["day"], today);
    assert_eq!(items[2]["sent"], SENT);
    assert_eq!(items[0]["sent"], 0);
    assert_eq!(items[0]["bounceRate"], Value::Null);

    // Refused: no token, a bad window.
    let (status, body) = get_json(&app, "/api/v1/reputation", None).await;
    assert_error(status, &body, 401, "unauthorized", "no token");
    let (status, body) = get_json(&app, "/api/v1/reputation?windowDays=365", Some(&token)).await;
    assert_error(status, &body, 400, "invalid_parameter", "windowDays=365");

    // The gauges, refreshed every second from the database.
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = app.metrics().await;
        if metrics
            .contains("ses_webhook_reputation_sent_recipients{configuration_set=\"marketing\"} 250")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for line in [
        "ses_webhook_reputation_sent_recipients{configuration_set=\"marketing\"} 250",
        "ses_webhook_reputation_bounce_rate{configuration_set=\"(all)\"} 0.06",
        "ses_webhook_reputation_volume{configuration_set=\"(none)\"} 100",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    let silence = metrics
        .lines()
        .find(|l| l.starts_with("ses_webhook_seconds_since_last_notification{topic=\"arn:aws:sns:"))
        .unwrap_or_else(|| panic!("no silence gauge in\n{metrics}"));
    let seconds: f64 = silence.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((0.0..120.0).contains(&seconds), "{silence}");
}

on_both_backends!(rates_count_each_recipient_once_as_ses_does);

fn basic(password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("operator:{password}"))
    )
}

#[tokio::test]
async fn the_status_page_asks_for_a_token_and_shows_no_address() {
    let app = spawn_on(Backend::Postgres, |_| {}).await;
    seed(&app).await;
    let read = app.token("status-read", Scope::Read).await;
    let write = app.token("status-write", Scope::Write).await;
    app.revoke_token("status-write").await;
    for authorization in [
        None,
        Some(basic("sesw_not-a-token")),
        Some(basic(&write)),
        Some(format!("Bearer {read}")),
    ] {
        let mut request = app.api(Method::GET, "/status", None);
        if let Some(value) = &authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{authorization:?}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"ses-webhook status\", charset=\"UTF-8\""
        );
        let text = response.text().await.unwrap();
        assert!(!text.contains("marketing"));
    }
    let response = app
        .api(Method::GET, "/status", None)
        .header("authorization", basic(&read))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text().await.unwrap();
    assert!(html.contains("data-configuration-set=\"marketing\""));
    assert!(html.contains("<span class=\"status status-review\">Review</span>"));
    // Nothing like an address outside the stylesheet (which has its `@media`).
    let (_, after_style) = html.split_once("</style>").unwrap();
    assert!(!after_style.contains('@'), "an address on the page");
}
