//! `docs/openapi.json` checked against the running server: every documented path, method and
//! status is produced by the server, every response the server gives is documented, and JSON
//! bodies validate against the documented schemas.

use std::collections::BTreeSet;

use serde_json::Value;
use sns_verify::SignatureVersion;
use test_support::{TOPIC, TestApp, spawn_app_with};
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

fn spec() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

struct Exchange {
    path: &'static str,
    method: &'static str,
    status: u16,
    content_type: String,
    body: String,
}

async fn exchange(
    app: &TestApp,
    method: &'static str,
    path: &'static str,
    body: Option<String>,
) -> Exchange {
    let url = format!("{}{path}", app.address);
    let request = match body {
        Some(body) => app
            .client
            .post(url)
            .header("content-type", "text/plain; charset=UTF-8")
            .body(body),
        None => app.client.get(url),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    Exchange {
        path,
        method,
        status,
        content_type,
        body: response.text().await.unwrap(),
    }
}

/// A client that sends the head and part of the body, then stalls: the server answers 408.
async fn stalled_body(app: &TestApp) -> Exchange {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let head = "POST /api/rpc/webhooks/aws/ses HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: text/plain\r\nContent-Length: 100\r\n\r\n{\"Type\"";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut buffer = [0_u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&raw);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .and_then(|v| v.parse::<usize>().ok());
                if length.is_some_and(|length| body.len() >= length) {
                    break;
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server did not answer a stalled body");
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    Exchange {
        path: "/api/rpc/webhooks/aws/ses",
        method: "post",
        status,
        content_type,
        body: body.to_owned(),
    }
}

#[tokio::test]
async fn the_openapi_description_matches_the_server() {
    let spec = spec();
    let app = spawn_app_with(|settings| settings.server.body_read_timeout_secs = 1).await;
    let down = spawn_app_with(|settings| {
        settings.database.url = "postgres://postgres@127.0.0.1:1/nowhere".into();
        settings.database.migrate_on_start = false;
        settings.database.connect_timeout_secs = 1;
    })
    .await;
    let webhook = "/api/rpc/webhooks/aws/ses";
    let delivery = serde_json::json!({
        "notificationType": "Delivery",
        "mail": {"timestamp": "2026-11-27T11:59:58.000Z", "messageId": "openapi-1", "destination": ["a@example.com"]},
        "delivery": {"timestamp": "2026-11-27T11:59:59.000Z", "recipients": ["a@example.com"]}
    })
    .to_string();
    let mut tampered = app.notification(&delivery);
    tampered["Message"] = "tampered".into();
    // SNS refuses the confirmation (an expired token, say): 422.
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&app.sns)
        .await;
    let token = "openapi-token";
    let refused_confirmation = app.signer.subscription_confirmation(
        TOPIC,
        "openapi-confirmation",
        &format!(
            "{}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={token}",
            app.sns.uri()
        ),
        token,
        SignatureVersion::V2,
    );

    let exchanges = vec![
        exchange(
            &app,
            "post",
            webhook,
            Some(app.notification(&delivery).to_string()),
        )
        .await,
        exchange(&app, "post", webhook, Some("not an envelope".into())).await,
        exchange(&app, "post", webhook, Some(tampered.to_string())).await,
        exchange(
            &app,
            "post",
            webhook,
            Some(refused_confirmation.to_string()),
        )
        .await,
        exchange(
            &app,
            "post",
            webhook,
            Some(" ".repeat(app.settings.server.max_body_bytes + 1)),
        )
        .await,
        exchange(
            &down,
            "post",
            webhook,
            Some(down.notification(&delivery).to_string()),
        )
        .await,
        exchange(&app, "get", "/healthz", None).await,
        exchange(&app, "get", "/readyz", None).await,
        exchange(&down, "get", "/readyz", None).await,
        exchange(&app, "get", "/metrics", None).await,
        stalled_body(&app).await,
    ];

    let mut observed = BTreeSet::new();
    for exchange in &exchanges {
        let what = format!(
            "{} {} -> {}",
            exchange.method, exchange.path, exchange.status
        );
        let response = &spec["paths"][exchange.path][exchange.method]["responses"]
            [exchange.status.to_string()];
        assert!(response.is_object(), "undocumented response: {what}");
        let media = &response["content"][&exchange.content_type];
        assert!(
            media.is_object(),
            "{what}: undocumented content type {}",
            exchange.content_type
        );
        if exchange.content_type == "application/json" {
            let mut schema = media["schema"].clone();
            schema["components"] = spec["components"].clone();
            let validator = jsonschema::validator_for(&schema).unwrap();
            let body: Value = serde_json::from_str(&exchange.body).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&body)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "{what}: {body} does not match its schema: {errors:?}"
            );
        }
        observed.insert((
            exchange.path.to_owned(),
            exchange.method.to_owned(),
            exchange.status.to_string(),
        ));
    }

    let mut documented = BTreeSet::new();
    for (path, methods) in spec["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            for status in operation["responses"].as_object().unwrap().keys() {
                documented.insert((path.clone(), method.clone(), status.clone()));
            }
        }
    }
    assert_eq!(
        observed, documented,
        "the description and the server disagree"
    );
}
