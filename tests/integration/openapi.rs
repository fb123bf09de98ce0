//! `docs/openapi.json` checked against the running server: every documented path, method and
//! status (the webhook's, the health routes' and every one of `/api/v1`) is produced by the
//! server, every response the server gives is documented, and JSON bodies validate against the
//! documented schemas. The committed file is the generated description, byte for byte.

use std::collections::BTreeSet;

use serde_json::Value;
use sns_verify::SignatureVersion;
use test_support::{Scope, TOPIC, TestApp, spawn_app_with};
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
    let content_type = media_type(&response);
    Exchange {
        path,
        method,
        status,
        content_type,
        body: response.text().await.unwrap(),
    }
}

/// The media type of `response`'s `Content-Type`, without parameters.
fn media_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// `method url` (a path under the API, `template` its documented form) with an optional bearer
/// token and an optional body of the given content type.
async fn api_exchange(
    app: &TestApp,
    method: &'static str,
    template: &'static str,
    url: &str,
    token: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> Exchange {
    let mut request = app.client.request(
        method.to_uppercase().parse().unwrap(),
        format!("{}{url}", app.address),
    );
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some((content_type, body)) = body {
        request = request.header("content-type", content_type).body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = media_type(&response);
    Exchange {
        path: template,
        method,
        status,
        content_type,
        body: response.text().await.unwrap(),
    }
}

fn json_body(value: &Value) -> Option<(&'static str, Vec<u8>)> {
    Some(("application/json", value.to_string().into_bytes()))
}

/// One request for every documented status of every `/api/v1` operation.
async fn api_exchanges(app: &TestApp, down: &TestApp) -> Vec<Exchange> {
    let write = app.token("openapi-write", Scope::Write).await;
    let read = app.token("openapi-read", Scope::Read).await;
    let well_formed = format!("sesw_{}", "A".repeat(43));
    let list = "/api/v1/suppressions";
    let check = "/api/v1/suppressions/check";
    let entry = "/api/v1/suppressions/{address}";
    let history = "/api/v1/suppressions/{address}/history";
    let a = "/api/v1/suppressions/a%40example.com";
    let a_history = "/api/v1/suppressions/a%40example.com/history";
    let bad = "/api/v1/suppressions/not-an-address";
    let too_large = Some((
        "application/json",
        format!("{{\"addresses\": []}}{}", " ".repeat(1024 * 1024)).into_bytes(),
    ));
    let plain = Some(("text/plain", b"{}".to_vec()));
    let empty = json_body(&serde_json::json!({}));
    let some = json_body(&serde_json::json!({"addresses": ["a@example.com", "b@example.com"]}));
    let w = Some(write.as_str());
    let r = Some(read.as_str());
    let d = Some(well_formed.as_str());
    vec![
        api_exchange(
            app,
            "get",
            "/api/v1/openapi.json",
            "/api/v1/openapi.json",
            None,
            None,
        )
        .await,
        // PUT first: the entry the others read.
        api_exchange(
            app,
            "put",
            entry,
            a,
            w,
            json_body(&serde_json::json!({"note": "n", "expiresAt": null})),
        )
        .await,
        api_exchange(
            app,
            "put",
            entry,
            a,
            w,
            json_body(&serde_json::json!({"expiresAt": "2099-01-01T00:00:00Z"})),
        )
        .await,
        api_exchange(
            app,
            "put",
            entry,
            a,
            w,
            json_body(&serde_json::json!({"expiresAt": "2000-01-01T00:00:00Z"})),
        )
        .await,
        api_exchange(app, "put", entry, a, None, empty.clone()).await,
        api_exchange(app, "put", entry, a, r, empty.clone()).await,
        api_exchange(app, "put", entry, a, w, too_large.clone()).await,
        api_exchange(app, "put", entry, a, w, plain.clone()).await,
        api_exchange(down, "put", entry, a, d, empty.clone()).await,
        api_exchange(app, "get", entry, a, r, None).await,
        api_exchange(app, "get", entry, bad, r, None).await,
        api_exchange(app, "get", entry, a, None, None).await,
        api_exchange(
            app,
            "get",
            entry,
            "/api/v1/suppressions/b%40example.com",
            r,
            None,
        )
        .await,
        api_exchange(down, "get", entry, a, d, None).await,
        api_exchange(app, "post", check, check, r, some.clone()).await,
        api_exchange(
            app,
            "post",
            check,
            check,
            r,
            json_body(&serde_json::json!({"addresses": []})),
        )
        .await,
        api_exchange(app, "post", check, check, None, some.clone()).await,
        api_exchange(app, "post", check, check, r, too_large.clone()).await,
        api_exchange(app, "post", check, check, r, plain.clone()).await,
        api_exchange(down, "post", check, check, d, some.clone()).await,
        api_exchange(app, "get", list, "/api/v1/suppressions?limit=1", r, None).await,
        api_exchange(app, "get", list, "/api/v1/suppressions?limit=0", r, None).await,
        api_exchange(app, "get", list, list, None, None).await,
        api_exchange(down, "get", list, list, d, None).await,
        api_exchange(app, "delete", entry, a, r, None).await,
        api_exchange(app, "delete", entry, a, w, None).await,
        api_exchange(app, "delete", entry, a, w, None).await,
        api_exchange(app, "delete", entry, bad, w, None).await,
        api_exchange(app, "delete", entry, a, None, None).await,
        api_exchange(down, "delete", entry, a, d, None).await,
        api_exchange(app, "get", history, a_history, r, None).await,
        api_exchange(
            app,
            "get",
            history,
            "/api/v1/suppressions/x/history",
            r,
            None,
        )
        .await,
        api_exchange(app, "get", history, a_history, None, None).await,
        api_exchange(down, "get", history, a_history, d, None).await,
    ]
}

/// `GET url` (documented as `template`) with a bearer token and an `Accept` header.
async fn accepting(
    app: &TestApp,
    template: &'static str,
    url: &str,
    token: &str,
    accept: &str,
) -> Exchange {
    let response = app
        .client
        .get(format!("{}{url}", app.address))
        .bearer_auth(token)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = media_type(&response);
    Exchange {
        path: template,
        method: "get",
        status,
        content_type,
        body: response.text().await.unwrap(),
    }
}

/// One request for every documented status of the event history's operations. The webhook
/// stored the delivery of `openapi-1` to a@example.com before.
async fn history_exchanges(app: &TestApp, down: &TestApp) -> Vec<Exchange> {
    let write = app.token("openapi-history-write", Scope::Write).await;
    let read = app.token("openapi-history-read", Scope::Read).await;
    let well_formed = format!("sesw_{}", "A".repeat(43));
    let events = "/api/v1/events";
    let message = "/api/v1/messages/{sesMessageId}";
    let recipient = "/api/v1/recipients/{address}";
    let w = Some(write.as_str());
    let r = Some(read.as_str());
    let d = Some(well_formed.as_str());
    vec![
        api_exchange(app, "get", events, "/api/v1/events?limit=1", r, None).await,
        accepting(app, events, events, &read, "application/x-ndjson").await,
        accepting(app, events, events, &read, "text/csv").await,
        accepting(app, events, events, &read, "text/html").await,
        api_exchange(app, "get", events, "/api/v1/events?type=sent", r, None).await,
        api_exchange(app, "get", events, events, None, None).await,
        api_exchange(down, "get", events, events, d, None).await,
        api_exchange(app, "get", message, "/api/v1/messages/openapi-1", r, None).await,
        api_exchange(app, "get", message, "/api/v1/messages/%01", r, None).await,
        api_exchange(app, "get", message, "/api/v1/messages/unknown", r, None).await,
        api_exchange(
            app,
            "get",
            message,
            "/api/v1/messages/openapi-1",
            None,
            None,
        )
        .await,
        api_exchange(down, "get", message, "/api/v1/messages/openapi-1", d, None).await,
        api_exchange(
            app,
            "delete",
            recipient,
            "/api/v1/recipients/a%40example.com",
            r,
            None,
        )
        .await,
        api_exchange(
            app,
            "delete",
            recipient,
            "/api/v1/recipients/a%40example.com",
            w,
            None,
        )
        .await,
        api_exchange(
            app,
            "delete",
            recipient,
            "/api/v1/recipients/nobody",
            w,
            None,
        )
        .await,
        api_exchange(
            app,
            "delete",
            recipient,
            "/api/v1/recipients/a%40example.com",
            None,
            None,
        )
        .await,
        api_exchange(
            down,
            "delete",
            recipient,
            "/api/v1/recipients/a%40example.com",
            d,
            None,
        )
        .await,
    ]
}

/// Every documented answer of the reputation operations.
async fn reputation_exchanges(app: &TestApp, down: &TestApp) -> Vec<Exchange> {
    let read = app.token("openapi-reputation-read", Scope::Read).await;
    let well_formed = format!("sesw_{}", "A".repeat(43));
    let r = Some(read.as_str());
    let d = Some(well_formed.as_str());
    let window = "/api/v1/reputation";
    let daily = "/api/v1/reputation/daily";
    vec![
        api_exchange(
            app,
            "get",
            window,
            "/api/v1/reputation?windowDays=7",
            r,
            None,
        )
        .await,
        api_exchange(
            app,
            "get",
            window,
            "/api/v1/reputation?windowDays=91",
            r,
            None,
        )
        .await,
        api_exchange(app, "get", window, window, None, None).await,
        api_exchange(down, "get", window, window, d, None).await,
        api_exchange(
            app,
            "get",
            daily,
            "/api/v1/reputation/daily?days=3",
            r,
            None,
        )
        .await,
        api_exchange(
            app,
            "get",
            daily,
            "/api/v1/reputation/daily?days=0",
            r,
            None,
        )
        .await,
        api_exchange(app, "get", daily, daily, None, None).await,
        api_exchange(down, "get", daily, daily, d, None).await,
    ]
}

/// The sink the deliveries operations are called for (a webhook nobody answers).
fn with_sink(settings: &mut app::Settings) {
    settings.sinks.push(app::settings::SinkSettings {
        name: "crm".into(),
        kind: "webhook".into(),
        url: "http://127.0.0.1:9/hooks".into(),
        allow_http: Some(true),
        secret: Some(
            serde_json::from_value(Value::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap(),
        ),
        ..app::settings::SinkSettings::default()
    });
}

/// Every documented answer of the deliveries operations.
async fn deliveries_exchanges(app: &TestApp, down: &TestApp) -> Vec<Exchange> {
    let write = app.token("openapi-deliveries-write", Scope::Write).await;
    let read = app.token("openapi-deliveries-read", Scope::Read).await;
    let well_formed = format!("sesw_{}", "A".repeat(43));
    let (w, r, d) = (
        Some(write.as_str()),
        Some(read.as_str()),
        Some(well_formed.as_str()),
    );
    let list = "/api/v1/deliveries";
    let replay = "/api/v1/deliveries/replay";
    let dead = serde_json::json!({"sink": "crm", "state": "dead"});
    vec![
        api_exchange(app, "get", list, "/api/v1/deliveries?sink=crm", r, None).await,
        api_exchange(app, "get", list, "/api/v1/deliveries?state=lost", r, None).await,
        api_exchange(app, "get", list, list, None, None).await,
        api_exchange(down, "get", list, list, d, None).await,
        api_exchange(app, "post", replay, replay, w, json_body(&dead)).await,
        api_exchange(
            app,
            "post",
            replay,
            replay,
            w,
            json_body(&serde_json::json!({"sink": "crm", "eventIds": []})),
        )
        .await,
        api_exchange(app, "post", replay, replay, None, json_body(&dead)).await,
        api_exchange(app, "post", replay, replay, r, json_body(&dead)).await,
        api_exchange(
            app,
            "post",
            replay,
            replay,
            w,
            Some((
                "application/json",
                format!("{dead}{}", " ".repeat(1024 * 1024)).into_bytes(),
            )),
        )
        .await,
        api_exchange(
            app,
            "post",
            replay,
            replay,
            w,
            Some(("text/plain", dead.to_string().into_bytes())),
        )
        .await,
        api_exchange(down, "post", replay, replay, d, json_body(&dead)).await,
    ]
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
    let app = spawn_app_with(|settings| {
        settings.server.body_read_timeout_secs = 1;
        with_sink(settings);
    })
    .await;
    let down = spawn_app_with(|settings| {
        with_sink(settings);
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

    let mut exchanges = vec![
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
    exchanges.extend(api_exchanges(&app, &down).await);
    exchanges.extend(history_exchanges(&app, &down).await);
    exchanges.extend(reputation_exchanges(&app, &down).await);
    exchanges.extend(deliveries_exchanges(&app, &down).await);

    let mut observed = BTreeSet::new();
    for exchange in &exchanges {
        let what = format!(
            "{} {} -> {}",
            exchange.method, exchange.path, exchange.status
        );
        let response = &spec["paths"][exchange.path][exchange.method]["responses"]
            [exchange.status.to_string()];
        assert!(
            response.is_object(),
            "undocumented response: {what}: {}",
            exchange.body
        );
        if exchange.status == 204 {
            assert!(
                exchange.body.is_empty(),
                "{what}: a body {:?}",
                exchange.body
            );
            assert!(
                response.get("content").is_none(),
                "{what}: documented with a body"
            );
            observed.insert((
                exchange.path.to_owned(),
                exchange.method.to_owned(),
                exchange.status.to_string(),
            ));
            continue;
        }
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

#[test]
fn the_committed_description_is_the_generated_one() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap();

    let generated = adapters_http::openapi_json();

    assert!(
        committed == generated,
        "docs/openapi.json is not the description the code generates: regenerate it with \
         `cargo run -q -- openapi > docs/openapi.json`"
    );
}
