//! Hostile input at the public URL: huge and endless bodies, deeply nested JSON, invalid UTF-8,
//! wrong types and duplicate keys in the envelope, slow clients, and signing-certificate URLs
//! that redirect, stall or return megabytes. Whatever arrives, the server answers with a 4xx or
//! a 503 (never another 5xx), stores nothing it should not, stays bounded in time and memory,
//! and keeps serving everyone else.
//!
//! Raw HTTP is written with blocking `std::net` sockets on blocking threads, so the tests control
//! every byte and every pause. Timings are only ever asserted as generous upper bounds.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sns_verify::SignatureVersion;
use sns_verify::testing::TestSigner;
use test_support::{TOPIC, TestApp, spawn_app, spawn_app_with};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

/// Upper bound for anything that must merely be "bounded".
const BOUND: Duration = Duration::from_secs(30);
const WEBHOOK_PATH: &str = "/api/rpc/webhooks/aws/ses";
const CERT_FILE: &str = "SimpleNotificationService-xyz.pem";

fn delivery(message_id: &str) -> String {
    json!({
        "notificationType": "Delivery",
        "mail": {"timestamp": "2026-11-27T11:59:58.000Z", "messageId": message_id, "destination": ["a@example.com"]},
        "delivery": {"timestamp": "2026-11-27T11:59:59.000Z", "recipients": ["a@example.com"]}
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP helpers

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream.set_write_timeout(Some(BOUND)).unwrap();
    stream
}

fn request_head(port: u16, extra_headers: &str) -> String {
    format!(
        "POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: text/plain; charset=UTF-8\r\n{extra_headers}\r\n"
    )
}

/// Reads until the end of the response head, EOF, or an error; returns what was read.
fn read_head(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Sends `head`, then `chunks` from another thread while this one reads the answer; returns the
/// response head and how many body bytes were written before the server stopped reading.
async fn send_while_reading(port: u16, head: String, chunks: Vec<Vec<u8>>) -> (String, usize) {
    blocking(move || {
        let mut stream = connect(port);
        stream.write_all(head.as_bytes()).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&sent);
        let feeder = std::thread::spawn(move || {
            for chunk in chunks {
                if writer.write_all(&chunk).is_err() {
                    break;
                }
                counter.fetch_add(chunk.len(), Ordering::Relaxed);
            }
            let _ = writer.shutdown(Shutdown::Write);
        });
        let answer = read_head(&mut stream);
        let _ = stream.shutdown(Shutdown::Both);
        drop(stream);
        let _ = feeder.join();
        (answer, sent.load(Ordering::Relaxed))
    })
    .await
}

/// Runs blocking socket code off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// The server still answers: health check, a garbage post (400) and a signed delivery (200).
async fn assert_still_serving(app: &TestApp) {
    let started = Instant::now();
    let health = app.get("/healthz").await;
    assert_eq!(health.status().as_u16(), 200);
    let garbage = app.post_raw("not json").await;
    assert_eq!(garbage.status().as_u16(), 400);
    if app.settings.sns.cert_dir.is_some() {
        let id = uuid::Uuid::new_v4().to_string();
        let (status, body) = app.post(&app.notification(&delivery(&id))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["processed"], 1, "{body}");
    }
    assert!(started.elapsed() < BOUND, "the server answered slowly");
}

async fn assert_malformed(app: &TestApp, body: impl Into<reqwest::Body>, what: &str) {
    let response = app.post_raw(body).await;
    let status = response.status().as_u16();
    let json: Value = response.json().await.expect("JSON error body");
    assert_eq!(status, 400, "{what}: {json}");
    assert_eq!(json["success"], false, "{what}");
    assert_eq!(json["error"], "malformed_message", "{what}: {json}");
}

// ---------------------------------------------------------------------------------------------
// Huge bodies

#[tokio::test]
async fn a_declared_body_over_the_limit_is_413_before_it_is_sent() {
    let app = spawn_app().await;
    let limit = app.settings.server.max_body_bytes;
    let port = app.port;
    let head = blocking(move || {
        let mut stream = connect(port);
        let head = request_head(port, &format!("Content-Length: {}\r\n", limit + 1));
        stream.write_all(head.as_bytes()).unwrap();
        // Not a byte of the body: the answer must not wait for it.
        read_head(&mut stream)
    })
    .await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head:?}");
    assert!(head.contains("payload_too_large") || head.contains("content-length"));
    app.assert_nothing_stored();
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_body_at_the_limit_is_read_and_one_byte_more_is_413() {
    let app = spawn_app().await;
    let limit = app.settings.server.max_body_bytes;
    // Exactly at the limit: read in full, then refused as what it is (not JSON).
    assert_malformed(
        &app,
        vec![b' '; limit - 1]
            .into_iter()
            .chain(*b"x")
            .collect::<Vec<_>>(),
        "at limit",
    )
    .await;

    let head = request_head(app.port, &format!("Content-Length: {}\r\n", limit + 1));
    // The whole body is sent; the server may answer before it has all of it.
    let (head, _) = send_while_reading(app.port, head, vec![vec![b' '; limit + 1]]).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head:?}");
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn an_endless_chunked_body_is_cut_off_at_the_limit_with_413() {
    let app = spawn_app().await;
    let limit = app.settings.server.max_body_bytes;
    // No Content-Length: 64 KiB chunks, up to 64 MiB, until the server stops reading.
    let chunk = vec![b'['; 64 * 1024];
    let framed = [
        format!("{:x}\r\n", chunk.len()).into_bytes(),
        chunk,
        b"\r\n".to_vec(),
    ]
    .concat();
    let head = request_head(app.port, "Transfer-Encoding: chunked\r\n");
    let (head, sent) = send_while_reading(app.port, head, vec![framed; 1024]).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head:?}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "the server must close rather than drain the rest: {head:?}"
    );
    assert!(
        sent < 32 * 1024 * 1024,
        "the server kept reading an endless body: {sent} bytes (limit {limit})"
    );
    app.assert_nothing_stored();
    assert_still_serving(&app).await;
}

// ---------------------------------------------------------------------------------------------
// Deeply nested JSON

#[tokio::test]
async fn deeply_nested_json_as_the_envelope_is_400_and_the_server_survives() {
    let app = spawn_app().await;
    let depth = 400_000; // 800 KB, under the 1 MiB limit
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(depth / 5), "}".repeat(depth / 5));
    let unclosed = "[".repeat(depth);
    for (what, body) in [
        ("nested arrays", arrays.clone()),
        ("nested objects", objects.clone()),
        ("unclosed arrays", unclosed),
        // Under an unknown key the envelope parser skips values without recursing.
        (
            "nested arrays under an unknown key",
            format!(r#"{{"Type":"Notification","MessageAttributes":{arrays}}}"#),
        ),
        (
            "nested objects under an unknown key",
            format!(r#"{{"MessageAttributes":{objects},"Type":"Notification"}}"#),
        ),
        // ... and inside a known key, where a string is required.
        (
            "nested arrays as the Message",
            format!(r#"{{"Message":{arrays}}}"#),
        ),
    ] {
        assert_malformed(&app, body, what).await;
    }
    app.assert_nothing_stored();
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn deeply_nested_json_as_a_signed_message_is_200_with_zeros() {
    let app = spawn_app().await;
    let depth = 100_000; // a 200 KB Message: under SNS's 256 KiB
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let in_mail = format!(
        r#"{{"notificationType":"Delivery","mail":{{"messageId":"deep-1","tags":{arrays}}},"delivery":{{"recipients":["a@example.com"]}}}}"#
    );
    let in_recipient = format!(
        r#"{{"eventType":"Bounce","mail":{{"messageId":"deep-2","timestamp":"2026-11-27T11:59:58.000Z"}},"bounce":{{"bounceType":"Permanent","bouncedRecipients":[{{"emailAddress":{}1{}}}]}}}}"#,
        r#"{"a":"#.repeat(depth / 5),
        "}".repeat(depth / 5)
    );
    for (what, message) in [
        ("nested arrays", arrays.as_str()),
        ("nested inside mail", in_mail.as_str()),
        ("nested as a recipient", in_recipient.as_str()),
    ] {
        let (status, body) = app.post(&app.notification(message)).await;
        assert_eq!(status, 200, "{what}: {body}");
        assert_eq!(body["processed"], 0, "{what}: {body}");
        assert_eq!(body["duplicates"], 0, "{what}: {body}");
    }
    // Shallow enough to parse (serde_json stops at 128 levels), deep enough to be odd.
    let shallow = format!(
        r#"{{"notificationType":"Delivery","mail":{{"messageId":"deep-3","timestamp":"2026-11-27T11:59:58.000Z","tags":{{"t":{}{}}}}},"delivery":{{"recipients":["a@example.com"]}}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    let (status, body) = app.post(&app.notification(&shallow)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["processed"], 1, "{body}");
    assert_eq!(app.count("email_events"), 1);
    assert_still_serving(&app).await;
}

// ---------------------------------------------------------------------------------------------
// Invalid UTF-8, wrong types, duplicate keys

#[tokio::test]
async fn invalid_utf8_is_400_and_stores_nothing() {
    let app = spawn_app().await;
    let good = app.notification(&delivery("utf8-1")).to_string();
    let marker = "a@example.com";
    let with = |bytes: &[u8]| -> Vec<u8> {
        let at = good.find(marker).unwrap();
        [
            good.as_bytes()[..at].to_vec(),
            bytes.to_vec(),
            good.as_bytes()[at..].to_vec(),
        ]
        .concat()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("lone 0xff", b"\xff".to_vec()),
        ("a bare continuation byte", with(b"\x80")),
        ("a truncated sequence", with(b"\xe2\x82")),
        ("an overlong slash", with(b"\xc0\xaf")),
        ("an encoded surrogate", with(b"\xed\xa0\x80")),
        ("beyond U+10FFFF", with(b"\xf4\x90\x80\x80")),
        ("latin-1", with(b"caf\xe9")),
        (
            "utf-16",
            good.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        ),
        ("invalid in a key", {
            let at = good.find("\"Type\"").unwrap() + 3;
            [&good.as_bytes()[..at], b"\xff", &good.as_bytes()[at..]].concat()
        }),
    ];
    for (what, body) in cases {
        assert_malformed(&app, body, what).await;
    }
    app.assert_nothing_stored();
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_wrong_type_in_any_envelope_field_is_400() {
    let app = spawn_app().await;
    let good = app.notification(&delivery("types-1"));
    let keys = [
        "Type",
        "MessageId",
        "TopicArn",
        "Subject",
        "Message",
        "Timestamp",
        "SignatureVersion",
        "Signature",
        "SigningCertURL",
        "SigningCertUrl",
        "UnsubscribeURL",
        "UnsubscribeUrl",
        "SubscribeURL",
        "Token",
    ];
    let wrong = [
        json!(5),
        json!(-1.5e300),
        json!(true),
        json!([]),
        json!(["Notification"]),
        json!({}),
        json!({"Type": "Notification"}),
    ];
    for key in keys {
        for value in &wrong {
            let mut envelope = good.clone();
            let object = envelope.as_object_mut().unwrap();
            // The Lambda spellings replace the usual ones (both at once is a duplicate).
            match key {
                "SigningCertUrl" => {
                    object.remove("SigningCertURL");
                }
                "UnsubscribeUrl" => {
                    object.remove("UnsubscribeURL");
                }
                _ => {}
            }
            object.insert(key.to_owned(), value.clone());
            let what = format!("{key} = {value}");
            assert_malformed(&app, envelope.to_string(), &what).await;
        }
    }
    // `null` is a wrong type wherever a value is required.
    for key in [
        "Type",
        "MessageId",
        "TopicArn",
        "Message",
        "Timestamp",
        "SignatureVersion",
        "Signature",
        "SigningCertURL",
    ] {
        let mut envelope = good.clone();
        envelope[key] = Value::Null;
        assert_malformed(&app, envelope.to_string(), &format!("{key} = null")).await;
    }
    // A body that is not an object at all.
    for body in ["[]", "\"Notification\"", "42", "null", "true"] {
        assert_malformed(&app, body, body).await;
    }
    app.assert_nothing_stored();
    // The untouched message is fine: the refusals above were about the types alone.
    let (status, body) = app.post(&good).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn duplicate_keys_in_the_envelope_are_400_even_with_equal_values() {
    let app = spawn_app().await;
    let good = app.notification(&delivery("dup-1"));
    let text = good.to_string();
    let member = |key: &str| format!("{}:{}", Value::String(key.into()), good[key]);
    let prepend = |extra: &str| text.replacen('{', &format!("{{{extra},"), 1);
    let cases = vec![
        ("Type, same value", prepend(&member("Type"))),
        ("Message, same value", prepend(&member("Message"))),
        ("Signature, same value", prepend(&member("Signature"))),
        ("MessageId, other value", prepend(r#""MessageId":"other""#)),
        (
            "the other spelling of SigningCertURL",
            prepend(&format!(r#""SigningCertUrl":{}"#, good["SigningCertURL"])),
        ),
        (
            "the other spelling of UnsubscribeURL",
            prepend(r#""UnsubscribeUrl":"https://example.com/""#),
        ),
        (
            "an escaped key name",
            prepend(r#""T\u0079pe":"Notification""#),
        ),
        (
            "a null duplicate",
            prepend(r#""Subject":null,"Subject":null"#),
        ),
    ];
    for (what, body) in cases {
        assert_malformed(&app, body, what).await;
    }
    app.assert_nothing_stored();
    // Duplicates of unknown keys are skipped unread: the signed message still goes through.
    let with_unknown = prepend(r#""MessageAttributes":{},"MessageAttributes":[]"#);
    let response = app.post_raw(with_unknown).await;
    assert_eq!(response.status().as_u16(), 200);
}

// ---------------------------------------------------------------------------------------------
// Slow clients

/// A client that sends part of a request and then `stall`s; returns what the server answered
/// (empty when it closed without a word) and how long that took, or `None` if it never did.
async fn stalled_request(port: u16, first_bytes: String) -> Option<(String, Duration)> {
    blocking(move || {
        let mut stream = connect(port);
        let started = Instant::now();
        stream.write_all(first_bytes.as_bytes()).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => {
                    return Some((
                        String::from_utf8_lossy(&buf).into_owned(),
                        started.elapsed(),
                    ));
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None;
                }
                Err(_) => {
                    return Some((
                        String::from_utf8_lossy(&buf).into_owned(),
                        started.elapsed(),
                    ));
                }
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_client_stalling_in_the_headers_is_timed_out_while_others_are_served() {
    let app = spawn_app().await;
    let port = app.port;
    let partial_head =
        format!("POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Le");
    let stalled = tokio::spawn(stalled_request(port, partial_head));
    // While it hangs, everyone else is served.
    for _ in 0..3 {
        assert_still_serving(&app).await;
    }
    let outcome = stalled.await.unwrap();
    let Some((answer, elapsed)) = outcome else {
        panic!("the server never timed out a client stalling in its headers ({BOUND:?})");
    };
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    assert!(elapsed < BOUND);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_timed_out() {
    let app = spawn_app().await;
    let port = app.port;
    let outcome = blocking(move || {
        let mut stream = connect(port);
        let started = Instant::now();
        let head = request_head(port, "Content-Length: 2\r\n");
        // One byte every 250 ms: the head would take far longer than the request timeout.
        for byte in head.as_bytes() {
            if stream.write_all(&[*byte]).is_err() || started.elapsed() > BOUND {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let answer = read_head(&mut stream);
        (answer, started.elapsed())
    })
    .await;
    let (answer, elapsed) = outcome;
    assert!(
        elapsed < BOUND,
        "the head trickled in unhindered for {elapsed:?}"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    assert_still_serving(&app).await;
}

/// A connection that sent a full head and part of its body, then went quiet.
fn stalled_body(port: u16) -> TcpStream {
    let mut stream = connect(port);
    let first = format!(
        "{}{{\"Type\":",
        request_head(port, "Content-Length: 1000\r\n")
    );
    stream.write_all(first.as_bytes()).unwrap();
    stream
}

#[tokio::test]
async fn clients_stalling_in_the_body_do_not_block_others() {
    let app = spawn_app().await;
    let port = app.port;
    // More stalled bodies than workers, held open while others are served.
    let stalled = blocking(move || (0..16).map(|_| stalled_body(port)).collect::<Vec<_>>()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..3 {
        assert_still_serving(&app).await;
    }
    drop(stalled);
    assert_still_serving(&app).await;
    // Only the four deliveries of `assert_still_serving` were stored.
    assert_eq!(app.count("sns_messages"), 4);
}

#[tokio::test]
async fn a_client_stalling_in_the_body_is_timed_out() {
    let app = spawn_app_with(|settings| settings.server.body_read_timeout_secs = 2).await;
    let port = app.port;
    let outcome = blocking(move || {
        let mut stream = stalled_body(port);
        let started = Instant::now();
        let answer = read_head(&mut stream);
        (answer, started.elapsed())
    })
    .await;
    let (answer, elapsed) = outcome;
    assert!(
        elapsed < BOUND,
        "a stalled body held its connection for {elapsed:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert_still_serving(&app).await;
}

#[tokio::test]
#[ignore = "known limitation: actix's client_request_timeout covers only the first request of a \
            connection, so a kept-alive connection can hold a partial second head; deployments put \
            a proxy with header timeouts in front (docs/operations.md)"]
async fn a_kept_alive_client_stalling_in_its_second_head_is_timed_out() {
    let app = spawn_app().await;
    let port = app.port;
    let outcome = blocking(move || {
        let mut stream = connect(port);
        // A complete first request (kept alive), then half of a second head, then silence.
        let first = format!("{}not json", request_head(port, "Content-Length: 8\r\n"));
        stream.write_all(first.as_bytes()).unwrap();
        let first_answer = read_head(&mut stream);
        // The first answer's body is small and arrives with its head or right after it.
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        stream
            .write_all(
                format!("POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConte")
                    .as_bytes(),
            )
            .unwrap();
        let mut rest = Vec::new();
        let result = stream.read_to_end(&mut rest);
        (
            first_answer,
            result.map_err(|e| e.kind()),
            started.elapsed(),
            String::from_utf8_lossy(&rest).into_owned(),
        )
    })
    .await;
    let (first_answer, result, elapsed, rest) = outcome;
    assert!(first_answer.starts_with("HTTP/1.1 400"), "{first_answer:?}");
    assert!(
        !matches!(result, Err(ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "a stalled second head held its connection for {elapsed:?}: {rest:?}"
    );
    assert!(elapsed < BOUND);
    assert_still_serving(&app).await;
}

// ---------------------------------------------------------------------------------------------
// Certificate URLs that redirect, stall or return megabytes

/// A server that fetches certificates from its dev endpoints (nothing pinned).
async fn spawn_fetching_app(extra_endpoint: Option<String>) -> TestApp {
    spawn_app_with(|settings| {
        settings.sns.cert_dir = None;
        settings.sns.fetch_certificates = true;
        settings.sns.dev_endpoints.extend(extra_endpoint);
    })
    .await
}

fn signed_with_cert_at(app: &TestApp, base: &str) -> (TestSigner, Value) {
    let signer = app.signer.with_cert_url(format!("{base}/{CERT_FILE}"));
    let id = uuid::Uuid::new_v4().to_string();
    let envelope = signer.notification(TOPIC, &id, &delivery(&id), None, SignatureVersion::V2);
    (signer, envelope)
}

async fn assert_cert_refused(app: &TestApp, envelope: &Value, codes: &[(u16, &str)]) -> Duration {
    let started = Instant::now();
    let (status, body) = app.post(envelope).await;
    let elapsed = started.elapsed();
    assert!(
        codes
            .iter()
            .any(|(s, c)| *s == status && body["error"] == *c),
        "expected one of {codes:?}, got {status} {body}"
    );
    assert!(elapsed < BOUND, "took {elapsed:?}");
    app.assert_nothing_stored();
    elapsed
}

#[tokio::test]
async fn a_certificate_url_that_redirects_is_503_and_the_target_is_never_fetched() {
    let app = spawn_fetching_app(None).await;
    let sns = app.sns.uri();
    Mock::given(method("GET"))
        .and(path(format!("/{CERT_FILE}")))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{sns}/elsewhere/{CERT_FILE}")),
        )
        .expect(2)
        .mount(&app.sns)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/elsewhere/{CERT_FILE}")))
        .respond_with(ResponseTemplate::new(200).set_body_string(app.signer.cert_pem()))
        .expect(0)
        .mount(&app.sns)
        .await;
    let (_, envelope) = signed_with_cert_at(&app, &sns);
    assert_cert_refused(&app, &envelope, &[(503, "certificate_unavailable")]).await;
    // Failures are not cached: SNS's retry fetches again, and is refused again.
    assert_cert_refused(&app, &envelope, &[(503, "certificate_unavailable")]).await;
    app.sns.verify().await;
    assert_still_serving(&app).await;
}

/// A hand-made certificate server; `serve` handles each connection on its own thread.
fn cert_server(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            counter.fetch_add(1, Ordering::Relaxed);
            let serve = Arc::clone(&serve);
            std::thread::spawn(move || serve(stream));
        }
    });
    (base, connections)
}

/// Reads the request head the server's HTTP client sent.
fn read_request(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let _ = read_head(stream);
}

#[tokio::test]
async fn a_certificate_server_that_stalls_is_503_within_bounded_time() {
    // Accepts, reads the request, never answers.
    let (base, connections) = cert_server(|mut stream| {
        read_request(&mut stream);
        std::thread::sleep(Duration::from_secs(60));
    });
    let app = spawn_fetching_app(Some(base.clone())).await;
    let (_, envelope) = signed_with_cert_at(&app, &base);
    assert_cert_refused(&app, &envelope, &[(503, "certificate_unavailable")]).await;
    assert_eq!(connections.load(Ordering::Relaxed), 1);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_certificate_server_that_trickles_its_body_is_503_within_bounded_time() {
    let pem = TestSigner::shared().cert_pem();
    // Headers at once, then one byte of a valid certificate per second.
    let (base, _) = cert_server(move |mut stream| {
        read_request(&mut stream);
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-pem-file\r\nContent-Length: {}\r\n\r\n",
            pem.len()
        );
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        for byte in pem.as_bytes() {
            if stream.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let app = spawn_fetching_app(Some(base.clone())).await;
    let (_, envelope) = signed_with_cert_at(&app, &base);
    assert_cert_refused(&app, &envelope, &[(503, "certificate_unavailable")]).await;
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_certificate_of_megabytes_with_a_length_is_refused() {
    let app = spawn_fetching_app(None).await;
    let sns = app.sns.uri();
    // A valid certificate followed by 8 MiB of padding.
    let mut body = app.signer.cert_pem().into_bytes();
    body.extend(std::iter::repeat_n(b'\n', 8 * 1024 * 1024));
    Mock::given(method("GET"))
        .and(path(format!("/{CERT_FILE}")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(body))
        .mount(&app.sns)
        .await;
    let (_, envelope) = signed_with_cert_at(&app, &sns);
    assert_cert_refused(
        &app,
        &envelope,
        &[
            (403, "certificate_invalid"),
            (503, "certificate_unavailable"),
        ],
    )
    .await;
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn an_endless_chunked_certificate_is_cut_off_and_refused() {
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&sent);
    let pem = TestSigner::shared().cert_pem();
    // A valid certificate, then chunks of padding for up to 256 MiB, no Content-Length.
    let (base, _) = cert_server(move |mut stream| {
        read_request(&mut stream);
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-pem-file\r\n\
                    Transfer-Encoding: chunked\r\n\r\n";
        let first = format!("{:x}\r\n{pem}\r\n", pem.len());
        if stream.write_all(head.as_bytes()).is_err() || stream.write_all(first.as_bytes()).is_err()
        {
            return;
        }
        let chunk = [
            format!("{:x}\r\n", 64 * 1024).into_bytes(),
            vec![b'\n'; 64 * 1024],
            b"\r\n".to_vec(),
        ]
        .concat();
        for _ in 0..4096 {
            if stream.write_all(&chunk).is_err() {
                return;
            }
            counter.fetch_add(64 * 1024, Ordering::Relaxed);
        }
        let _ = stream.write_all(b"0\r\n\r\n");
    });
    let app = spawn_fetching_app(Some(base.clone())).await;
    let (_, envelope) = signed_with_cert_at(&app, &base);
    assert_cert_refused(
        &app,
        &envelope,
        &[
            (403, "certificate_invalid"),
            (503, "certificate_unavailable"),
        ],
    )
    .await;
    // The client stopped reading near the 64 KiB cap (plus socket buffers), not at the end.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = sent.load(Ordering::Relaxed);
    assert!(
        sent < 32 * 1024 * 1024,
        "the certificate download read {sent} bytes"
    );
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_valid_certificate_is_fetched_once_and_then_cached() {
    let app = spawn_fetching_app(None).await;
    let sns = app.sns.uri();
    Mock::given(method("GET"))
        .and(path(format!("/{CERT_FILE}")))
        .respond_with(ResponseTemplate::new(200).set_body_string(app.signer.cert_pem()))
        .expect(1)
        .mount(&app.sns)
        .await;
    let signer = app.signer.with_cert_url(format!("{sns}/{CERT_FILE}"));
    for n in 0..3 {
        let id = uuid::Uuid::new_v4().to_string();
        let envelope = signer.notification(TOPIC, &id, &delivery(&id), None, SignatureVersion::V2);
        let (status, body) = app.post(&envelope).await;
        assert_eq!(status, 200, "request {n}: {body}");
        assert_eq!(body["processed"], 1, "request {n}: {body}");
    }
    app.sns.verify().await;
    assert_eq!(app.count("email_events"), 3);
}
