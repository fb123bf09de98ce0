//! The webhook sink against a local HTTP receiver (wiremock) that checks every signature with
//! the Standard Webhooks algorithm written out here (HMAC-SHA256 over `id.timestamp.body`,
//! from `sha2`), not with the crate that signed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use adapters_sinks::{WebhookSettings, WebhookSetupError, WebhookSink};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use domain::delivery::{OutboundMessage, SinkClient};
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &[u8] = b"a test key of 32 bytes, exactly!";

fn secret() -> String {
    format!("whsec_{}", STANDARD.encode(KEY))
}

/// HMAC-SHA256 (RFC 2104), written out.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Checks a received request as a consumer would: the signature over `id.timestamp.body`.
fn verify(request: &wiremock::Request) -> (String, i64) {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let id = header("webhook-id");
    let timestamp = header("webhook-timestamp");
    let signed = format!("{id}.{timestamp}.");
    let mut message = signed.into_bytes();
    message.extend_from_slice(&request.body);
    let expected = format!("v1,{}", STANDARD.encode(hmac_sha256(KEY, &message)));
    let signatures = header("webhook-signature");
    assert!(
        signatures.split(' ').any(|s| s == expected),
        "bad signature {signatures} (expected {expected})"
    );
    assert_eq!(header("content-type"), "application/json");
    (id, timestamp.parse().unwrap())
}

fn settings(url: &str) -> WebhookSettings {
    WebhookSettings {
        url: url.parse().unwrap(),
        secret: secret(),
        timeout: Duration::from_secs(2),
        allow_http: true,
        concurrency: 4,
    }
}

fn message(id: &str) -> OutboundMessage {
    OutboundMessage {
        entry_id: id.to_owned(),
        entry_type: "email_bounce".into(),
        body: format!(r#"{{"id":"{id}","type":"email_bounce","data":{{"é":"ü"}}}}"#).into_bytes(),
    }
}

#[tokio::test]
async fn every_post_is_signed_with_the_entry_id_and_2xx_is_delivered() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let sink = WebhookSink::new(settings(&format!("{}/hooks", server.uri()))).unwrap();
    let before = chrono::Utc::now().timestamp();
    let messages: Vec<_> = (0..10).map(|i| message(&format!("key-{i}"))).collect();
    let results = sink.deliver(messages.clone()).await;
    assert_eq!(results, vec![Ok(()); 10]);
    // The same entry again (a retry): the same id.
    assert_eq!(sink.deliver(vec![message("key-3")]).await, vec![Ok(())]);

    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 11);
    let mut ids = Vec::new();
    for request in &received {
        let (id, timestamp) = verify(request);
        assert!((before..=before + 5).contains(&timestamp), "{timestamp}");
        let sent = messages.iter().find(|m| m.entry_id == id).unwrap();
        assert_eq!(request.body, sent.body);
        ids.push(id);
    }
    assert_eq!(ids.iter().filter(|id| *id == "key-3").count(), 2);
}

#[tokio::test]
async fn anything_but_2xx_is_a_failure_and_redirects_are_not_followed() {
    let server = MockServer::start().await;
    Mock::given(path("/fail"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    Mock::given(path("/moved"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", format!("{}/ok", server.uri())),
        )
        .mount(&server)
        .await;
    Mock::given(path("/ok"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;

    let at = |p: &str| WebhookSink::new(settings(&format!("{}{p}", server.uri()))).unwrap();
    let failed = at("/fail").deliver(vec![message("a")]).await;
    assert_eq!(failed, vec![Err("HTTP 503 Service Unavailable".to_owned())]);
    let moved = at("/moved").deliver(vec![message("a")]).await;
    assert_eq!(
        moved,
        vec![Err("HTTP 302 Found (redirects are not followed)".to_owned())]
    );
    let slow = at("/slow").deliver(vec![message("a")]).await;
    assert_eq!(slow, vec![Err("timed out after 2 s".to_owned())]);
    // Nothing listens on port 9 of the loopback address.
    let refused = WebhookSink::new(settings("http://127.0.0.1:9/hooks"))
        .unwrap()
        .deliver(vec![message("a")])
        .await;
    assert_eq!(refused, vec![Err("could not connect".to_owned())]);
}

#[test]
fn settings_are_checked_and_the_secret_is_never_shown() {
    let mut https_only = settings("http://127.0.0.1:1/hooks");
    https_only.allow_http = false;
    assert_eq!(
        WebhookSink::new(https_only).unwrap_err(),
        WebhookSetupError::NotHttps("http:".into())
    );
    let mut no_prefix = settings("https://example.com/hooks");
    no_prefix.secret = STANDARD.encode(KEY);
    assert_eq!(
        WebhookSink::new(no_prefix).unwrap_err(),
        WebhookSetupError::SecretFormat
    );
    let mut not_base64 = settings("https://example.com/hooks");
    not_base64.secret = "whsec_not base64!".into();
    assert_eq!(
        WebhookSink::new(not_base64).unwrap_err(),
        WebhookSetupError::SecretFormat
    );
    let mut short = settings("https://example.com/hooks");
    short.secret = format!("whsec_{}", STANDARD.encode(b"short"));
    assert_eq!(
        WebhookSink::new(short).unwrap_err(),
        WebhookSetupError::SecretTooShort(5)
    );
    let mut none = settings("https://example.com/hooks");
    none.concurrency = 0;
    assert_eq!(
        WebhookSink::new(none).unwrap_err(),
        WebhookSetupError::NoConcurrency
    );
    // Neither the secret nor what a URL may carry that is secret shows in `Debug`.
    let ok = settings("https://user:pass@example.com/hooks?token=t0ps3cret#f");
    let shown = format!("{ok:?} {:?}", WebhookSink::new(ok.clone()).unwrap());
    assert!(!shown.contains(&secret()), "{shown}");
    assert!(!shown.contains(&STANDARD.encode(KEY)), "{shown}");
    for secret_part in ["user", "pass", "t0ps3cret"] {
        assert!(!shown.contains(secret_part), "{shown}");
    }
    assert!(shown.contains("https://example.com/hooks"), "{shown}");
}
