//! `docs/openapi.json` checked against the running server: every documented path, method and
//! status is produced by the server, every response the server gives is documented, and JSON
//! bodies validate against the documented schemas.

use std::collections::BTreeSet;

use serde_json::Value;
use test_support::{TestApp, spawn_app, spawn_app_with};

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

#[tokio::test]
async fn the_openapi_description_matches_the_server() {
    let spec = spec();
    let app = spawn_app().await;
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
