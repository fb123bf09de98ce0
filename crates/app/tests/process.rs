//! The real binary as operators run it: structured logs, and graceful shutdown under load
//! losing nothing that was acknowledged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use adapters_store::testing::TestDatabase;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use sns_verify::SignatureVersion;
use sns_verify::testing::TestSigner;

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-events";

struct Server {
    child: Child,
    port: u16,
    /// The log lines up to `listening`.
    startup: Vec<serde_json::Value>,
    lines: mpsc::Receiver<String>,
    _certs: tempfile::TempDir,
}

/// `ses-webhook serve` with the configuration directory `config_dir`, on a free port, storing
/// in `database_url`, with `RUST_LOG` unset.
fn serve(config_dir: &std::path::Path, database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ses-webhook"));
    command
        .arg("serve")
        .arg("--config-dir")
        .arg(config_dir)
        .env_remove("RUST_LOG")
        .env("SES_WEBHOOK__SERVER__PORT", "0")
        .env("SES_WEBHOOK__DATABASE__URL", database_url);
    command
}

/// Starts `ses-webhook serve` with JSON logs on a free port against `database_url`.
fn start(database_url: &str, extra_env: &[(&str, &str)]) -> Server {
    let certs = tempfile::tempdir().unwrap();
    TestSigner::shared().write_pinned(certs.path()).unwrap();
    let config = tempfile::tempdir().unwrap();
    let mut command = serve(config.path(), database_url);
    command
        .env("SES_WEBHOOK__SERVER__HOST", "127.0.0.1")
        .env("SES_WEBHOOK__SERVER__WORKERS", "2")
        .env("SES_WEBHOOK__SNS__CERT_DIR", certs.path())
        .env("SES_WEBHOOK__SNS__FETCH_CERTIFICATES", "false")
        .env("SES_WEBHOOK__LOG__FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut startup = Vec::new();
    let port = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the server logs that it listens");
        let json: serde_json::Value = serde_json::from_str(&line).expect("every log line is JSON");
        if json["message"] == "listening" {
            break u16::try_from(json["port"].as_u64().unwrap()).unwrap();
        }
        startup.push(json);
    };
    Server {
        child,
        port,
        startup,
        lines,
        _certs: certs,
    }
}

fn delivery(message_id: &str, recipients: &[String]) -> String {
    serde_json::json!({
        "notificationType": "Delivery",
        "mail": {"timestamp": "2026-11-27T11:59:58.000Z", "messageId": message_id, "destination": recipients},
        "delivery": {"timestamp": "2026-11-27T11:59:59.000Z", "recipients": recipients}
    })
    .to_string()
}

fn terminate(server: &mut Server) -> std::process::ExitStatus {
    signal(server, "-TERM")
}

fn signal(server: &mut Server, signal: &str) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args([signal, &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    server.child.wait().unwrap()
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct MessageId {
    #[diesel(sql_type = Text)]
    sns_message_id: String,
}

/// Runs `ses-webhook serve` with `env` and an empty configuration directory, expecting it to
/// refuse to start; its exit code and standard error.
fn refused_start(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let config = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}/x.db", config.path().display());
    let mut command = serve(config.path(), &database_url);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_log_level_that_is_not_one_stops_start_up_naming_where_it_came_from() {
    for (env, named) in [
        (("SES_WEBHOOK__LOG__LEVEL", "warning"), "log.level"),
        (("RUST_LOG", "verbose"), "RUST_LOG"),
        (("RUST_LOG", ""), "RUST_LOG"),
    ] {
        let (code, stderr) = refused_start(&[env]);

        assert_eq!(code, Some(2), "{env:?}: {stderr}");
        assert!(stderr.contains(named), "{env:?}: {stderr}");
        assert!(!stderr.contains("listening"), "{env:?}: {stderr}");
    }
}

#[test]
fn start_up_logs_the_configuration_files_read_and_the_certificate_source() {
    let db = TestDatabase::from_env();
    let mut server = start(db.url(), &[]);
    let exit = terminate(&mut server);

    let said = |message: &str| {
        server
            .startup
            .iter()
            .find(|line| {
                line["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .unwrap_or_else(|| panic!("no `{message}` line in {:#?}", server.startup))
            .clone()
    };
    let configuration = said("configuration read");
    let certificates = said("signing certificates");
    // `start` uses an empty configuration directory.
    assert_eq!(configuration["files"], "none");
    let source = certificates["source"].as_str().unwrap();
    assert!(source.starts_with("pinned in /"), "{source}");
    assert!(
        source.contains("pinned in") && source.contains("only"),
        "{source}"
    );
    assert!(exit.success());
}

#[test]
fn a_configuration_directory_given_that_does_not_exist_stops_start_up() {
    let output = Command::new(env!("CARGO_BIN_EXE_ses-webhook"))
        .arg("serve")
        .env_remove("RUST_LOG")
        .env("SES_WEBHOOK_CONFIG_DIR", "/no/such/config-dir")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/no/such/config-dir"), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn text_logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ses-webhook"))
        .arg("migrate")
        .arg("--config-dir")
        .arg(dir.path())
        .env_remove("RUST_LOG")
        .env(
            "SES_WEBHOOK__DATABASE__URL",
            format!("sqlite://{}/x.db", dir.path().display()),
        )
        .env("SES_WEBHOOK__LOG__FORMAT", "text")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("migration applied"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI escape codes in: {stderr:?}"
    );
}

/// Posts `body` to the server's webhook with `headers`; the status.
async fn post_raw(server: &Server, body: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/api/rpc/webhooks/aws/ses",
            server.port
        ))
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_request_is_logged_once() {
    let db = TestDatabase::from_env();
    let mut server = start(db.url(), &[]);

    assert_eq!(post_raw(&server, "not an envelope", &[]).await, 400);
    let exit = terminate(&mut server);

    let logs = logs_after_start(&server);
    let warnings: Vec<&serde_json::Value> = logs
        .iter()
        .filter(|line| matches!(line["level"].as_str(), Some("WARN" | "ERROR")))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0]["message"], "delivery refused");
    assert_eq!(warnings[0]["code"], "malformed_message");
    assert!(exit.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn x_forwarded_for_is_logged_only_from_a_trusted_proxy() {
    let forged = [("x-forwarded-for", "203.0.113.9")];
    for (trusted, logged) in [("", false), ("127.0.0.1", true)] {
        let db = TestDatabase::from_env();
        let mut server = start(
            db.url(),
            &[("SES_WEBHOOK__SERVER__TRUSTED_PROXIES", trusted)],
        );

        assert_eq!(post_raw(&server, "not an envelope", &forged).await, 400);
        let exit = terminate(&mut server);

        let logs = logs_after_start(&server);
        let refused = logs
            .iter()
            .find(|line| line["message"] == "delivery refused")
            .expect("the refusal is logged");
        let span = &refused["span"];
        let spans = refused["spans"].to_string();
        assert!(
            spans.contains("\"client.address\":\"127.0.0.1\""),
            "{refused}"
        );
        assert_eq!(
            spans.contains("203.0.113.9"),
            logged,
            "trusted proxies {trusted:?}: {refused} {span}"
        );
        assert!(exit.success());
    }
}

/// Posts `envelope` to the server's webhook; the status.
async fn post(server: &Server, envelope: &serde_json::Value) -> u16 {
    reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/api/rpc/webhooks/aws/ses",
            server.port
        ))
        .body(envelope.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The JSON log lines a server wrote after it started listening.
/// Call it once the process has exited: it reads until the reader thread has passed on the
/// last line (standard error closed), so no line written just before the exit is missed.
fn logs_after_start(server: &Server) -> Vec<serde_json::Value> {
    server
        .lines
        .iter()
        .map(|line| serde_json::from_str(&line).expect("every log line is JSON"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_logs_carry_request_id_message_id_topic_and_outcome_but_never_the_body() {
    let db = TestDatabase::from_env();
    let mut server = start(db.url(), &[]);
    let secret = "a-recipient-that-must-not-be-logged@example.com";
    let envelope = TestSigner::shared().notification(
        TOPIC,
        "log-message-1",
        &delivery("ses-log-1", &[secret.to_owned()]),
        None,
        SignatureVersion::V2,
    );

    assert_eq!(post(&server, &envelope).await, 200);
    let exit = terminate(&mut server);

    let logs = logs_after_start(&server);
    let acknowledged = logs
        .iter()
        .find(|line| line["message"] == "delivery acknowledged")
        .expect("the outcome is logged");
    assert_eq!(acknowledged["message_id"], "log-message-1");
    assert_eq!(acknowledged["topic_arn"], TOPIC);
    assert_eq!(acknowledged["outcome"], "processed");
    let spans = acknowledged["spans"].to_string();
    assert!(spans.contains("request_id"), "{acknowledged}");
    let all = serde_json::to_string(&logs).unwrap();
    assert!(!all.contains(secret), "the body leaked into the logs");
    assert!(!all.contains(envelope["Signature"].as_str().unwrap()));
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscription_confirmation_is_logged_in_one_line() {
    let sns = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::query_param(
        "Action",
        "ConfirmSubscription",
    ))
    .respond_with(wiremock::ResponseTemplate::new(200))
    .expect(1)
    .mount(&sns)
    .await;
    let db = TestDatabase::from_env();
    let mut server = start(db.url(), &[("SES_WEBHOOK__SNS__DEV_ENDPOINTS", &sns.uri())]);
    let token = "one-line-token";
    let confirmation = TestSigner::shared().subscription_confirmation(
        TOPIC,
        "confirmation-1",
        &format!(
            "{}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={token}",
            sns.uri()
        ),
        token,
        SignatureVersion::V2,
    );

    assert_eq!(post(&server, &confirmation).await, 200);
    let exit = terminate(&mut server);

    let logs = logs_after_start(&server);
    let about_it: Vec<&serde_json::Value> = logs
        .iter()
        .filter(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.contains("confirm"))
                || line.get("subscription_confirmed").is_some()
        })
        .collect();
    assert_eq!(about_it.len(), 1, "{about_it:#?}");
    assert_eq!(about_it[0]["message"], "delivery acknowledged");
    assert_eq!(about_it[0]["subscription_confirmed"], true);
    assert_eq!(about_it[0]["message_type"], "SubscriptionConfirmation");
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_loses_nothing_acknowledged() {
    let stopped = signal_under_load("-TERM").await;
    stopped.assert_graceful();
}

/// Ctrl-C, and supervisors whose stop signal is SIGINT: as graceful as SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigint_under_load_is_as_graceful_as_sigterm() {
    let stopped = signal_under_load("-INT").await;
    stopped.assert_graceful();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_nothing_acknowledged() {
    let stopped = signal_under_load("-KILL").await;
    assert!(
        !stopped.exit.success(),
        "SIGKILL does not exit cleanly: {:?}",
        stopped.exit
    );
}

/// How a server ended.
struct Stopped {
    exit: std::process::ExitStatus,
    /// The server's log after it started.
    logs: Vec<serde_json::Value>,
}

impl Stopped {
    /// Exited cleanly and said that it let in-flight requests finish.
    fn assert_graceful(&self) {
        assert!(
            self.exit.success(),
            "graceful shutdown exits cleanly: {:?}",
            self.exit
        );
        let last = self.logs.last().expect("the server logs its stop");
        assert_eq!(
            last["message"], "server stopped; in-flight requests finished",
            "{last}"
        );
    }
}

/// Sends half of a delivery, then `stop_signal`, then the rest: a graceful stop must wait for
/// the request and answer it; a forced stop cuts the connection.
async fn in_flight_request_across(stop_signal: &'static str) -> (Option<u16>, Stopped) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDatabase::from_env();
    let mut server = start(
        db.url(),
        &[("SES_WEBHOOK__SERVER__SHUTDOWN_TIMEOUT_SECS", "20")],
    );
    let body = TestSigner::shared()
        .notification(
            TOPIC,
            "in-flight-1",
            &delivery("ses-in-flight", &["a@example.com".to_owned()]),
            None,
            SignatureVersion::V2,
        )
        .to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let head = format!(
        "POST /api/rpc/webhooks/aws/ses HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = server.child.id().to_string();
    let sent = Command::new("kill")
        .args([stop_signal, &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A graceful stop is still waiting for this request; a forced one has closed it by now.
    let _ = stream.write_all(rest.as_bytes()).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut response)).await;
    let status = String::from_utf8_lossy(&response)
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok());
    let (exit, server) = tokio::task::spawn_blocking(move || {
        let exit = server.child.wait().unwrap();
        (exit, server)
    })
    .await
    .unwrap();
    let logs = logs_after_start(&server);
    (status, Stopped { exit, logs })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_in_flight_request_is_answered_after_sigterm() {
    let (status, stopped) = in_flight_request_across("-TERM").await;

    assert_eq!(status, Some(200));
    stopped.assert_graceful();
}

/// A second SIGINT while a request still trickles in: the process stops now, not when the
/// request would have finished (here, after a 60 s body timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_sigint_stops_at_once() {
    use tokio::io::AsyncWriteExt;
    let db = TestDatabase::from_env();
    let mut server = start(
        db.url(),
        &[
            ("SES_WEBHOOK__SERVER__SHUTDOWN_TIMEOUT_SECS", "60"),
            ("SES_WEBHOOK__SERVER__BODY_READ_TIMEOUT_SECS", "60"),
        ],
    );
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    stream
        .write_all(
            b"POST /api/rpc/webhooks/aws/ses HTTP/1.1\r\nHost: localhost\r\n\
              Content-Length: 100\r\n\r\n{\"Type\"",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = server.child.id().to_string();
    for _ in 0..2 {
        assert!(
            Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap()
                .success()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Well within the 60 s the request could still take.
    let mut exit = None;
    for _ in 0..100 {
        if let Some(status) = server.child.try_wait().unwrap() {
            exit = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exit = exit.expect("the second SIGINT stops the server at once");
    // The reader thread passes on the last lines once the pipe closes.
    std::thread::sleep(Duration::from_millis(200));
    let logs = logs_after_start(&server);
    let last = logs.last().unwrap();
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("at once on a second signal"),
        "{last}"
    );
    drop(stream);
    assert!(exit.code().is_some(), "{exit:?}");
}

/// Ctrl-C, and supervisors whose stop signal is SIGINT: as graceful as SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_in_flight_request_is_answered_after_sigint() {
    let (status, stopped) = in_flight_request_across("-INT").await;

    assert_eq!(status, Some(200));
    stopped.assert_graceful();
}

/// Sends 400 deliveries spread over time, sends `kill_signal` to the server while they arrive,
/// and checks that every delivery answered 2xx has its events stored, none twice.
async fn signal_under_load(kill_signal: &'static str) -> Stopped {
    let db = TestDatabase::from_env();
    let mut server = start(
        db.url(),
        &[("SES_WEBHOOK__SERVER__SHUTDOWN_TIMEOUT_SECS", "20")],
    );
    let url = Arc::new(format!(
        "http://127.0.0.1:{}/api/rpc/webhooks/aws/ses",
        server.port
    ));
    let client = reqwest::Client::new();
    let signer = TestSigner::shared();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..400 {
        let recipients: Vec<String> = (0..3).map(|r| format!("r{r}-{i}@example.com")).collect();
        let message_id = format!("shutdown-{i}");
        let body = signer
            .notification(
                TOPIC,
                &message_id,
                &delivery(&format!("ses-{i}"), &recipients),
                None,
                SignatureVersion::V2,
            )
            .to_string();
        let client = client.clone();
        let url = Arc::clone(&url);
        tasks.spawn(async move {
            // Spread the requests over the shutdown.
            tokio::time::sleep(Duration::from_millis(i * 2)).await;
            let response = client.post(url.as_str()).body(body).send().await;
            let acknowledged = match response {
                Ok(response) if response.status().is_success() => {
                    // A body cut off by the shutdown is not an acknowledgement SNS would see.
                    let body = response.bytes().await.ok();
                    body.and_then(|body| serde_json::from_slice::<serde_json::Value>(&body).ok())
                        .map(|json| {
                            json["processed"].as_u64().unwrap()
                                + json["duplicates"].as_u64().unwrap()
                        })
                }
                _ => None,
            };
            (message_id, acknowledged)
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let exit = tokio::task::spawn_blocking(move || {
        let exit = signal(&mut server, kill_signal);
        (exit, server)
    });
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    while let Some(result) = tasks.join_next().await {
        let (message_id, events) = result.unwrap();
        match events {
            Some(events) => {
                assert_eq!(events, 3);
                acknowledged.push(message_id);
            }
            None => refused += 1,
        }
    }
    let (exit, server) = exit.await.unwrap();
    let logs = logs_after_start(&server);

    assert!(
        !acknowledged.is_empty(),
        "no request was served before the shutdown"
    );
    assert!(
        refused > 0,
        "the shutdown came after the load: the test proves nothing"
    );
    let mut conn = PgConnection::establish(db.url()).unwrap();
    let stored: Vec<MessageId> =
        diesel::sql_query("SELECT DISTINCT sns_message_id FROM email_events")
            .load(&mut conn)
            .unwrap();
    let stored: std::collections::HashSet<String> =
        stored.into_iter().map(|row| row.sns_message_id).collect();
    for message_id in &acknowledged {
        assert!(
            stored.contains(message_id),
            "{message_id} was acknowledged but is not stored"
        );
    }
    let events: Count = diesel::sql_query("SELECT COUNT(*) AS n FROM email_events")
        .get_result(&mut conn)
        .unwrap();
    let distinct: Count =
        diesel::sql_query("SELECT COUNT(DISTINCT event_key) AS n FROM email_events")
            .get_result(&mut conn)
            .unwrap();
    assert_eq!(events.n, distinct.n);
    assert!(events.n >= 3 * acknowledged.len() as i64);
    Stopped { exit, logs }
}
