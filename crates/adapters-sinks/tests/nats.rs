//! The NATS JetStream sink against real servers: the one at `TEST_NATS_URL` (default
//! `nats://127.0.0.1:4222`; `scripts/ensure-nats` provides one, and `scripts/test` sources it),
//! and throwaway `nats-server -js` processes that the tests start, kill and restart themselves
//! (the program from `TEST_NATS_SERVER_BIN`, else `nats-server` on `PATH` or in `/usr/sbin`).
//! Each test publishes to a stream and subjects of its own and reads them back with async-nats;
//! a stream on the shared server is deleted when the test ends, passed or failed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::Write as _;
use std::net::{TcpListener, TcpStream, ToSocketAddrs as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adapters_sinks::{DEFAULT_SUBJECT, NatsSettings, NatsSink, stream_subject};
use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::{self, stream};
use domain::delivery::{OutboundMessage, SinkClient};
use tokio::io::AsyncBufReadExt as _;
use url::Url;

const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// How long a single call may take before the test calls it hung: far more than any timeout
/// the sinks here are given. A liveness bound, not a timing assertion.
const HANG: Duration = Duration::from_secs(30);

/// How long a test keeps retrying deliveries after a server came (back), as the relay would.
const RECOVERY: Duration = Duration::from_secs(25);

/// The shared server, which must answer: these tests fail rather than skip without it.
fn shared_url() -> Url {
    let url = std::env::var("TEST_NATS_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let parsed: Url = url
        .parse()
        .unwrap_or_else(|e| panic!("TEST_NATS_URL={url} is not a URL: {e}"));
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = parsed.port().unwrap_or(4222);
    let answers = (host.as_str(), port)
        .to_socket_addrs()
        .into_iter()
        .flatten()
        .any(|address| TcpStream::connect_timeout(&address, Duration::from_secs(3)).is_ok());
    assert!(
        answers,
        "no NATS server answers at {url} (TEST_NATS_URL, default {DEFAULT_URL}). The NATS sink's \
         tests need one with JetStream: run them through scripts/test, or run \
         `source scripts/ensure-nats` first (it starts a throwaway nats-server -js when none \
         answers), or point TEST_NATS_URL at one"
    );
    parsed
}

/// A name no other test, run or process uses: letters, digits and `_`, fit for a stream name
/// and a subject token.
fn unique(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{test}_{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A stream name and a subject template of a test's own on the shared server; the stream is
/// deleted when this is dropped, also when the test panicked.
struct Scratch {
    url: Url,
    stream: String,
    /// `sinktest.<unique>.{eventType}`: no other stream on the server overlaps it.
    template: String,
}

impl Scratch {
    fn new(test: &str) -> Self {
        let name = unique(test);
        Self {
            url: shared_url(),
            stream: format!("SINKTEST_{name}"),
            template: format!("sinktest.{name}.{{eventType}}"),
        }
    }

    fn settings(&self) -> NatsSettings {
        let mut settings = NatsSettings::new(self.url.clone(), self.stream.clone());
        settings.subject = self.template.clone();
        settings.timeout = Duration::from_secs(2);
        settings
    }

    fn subject(&self, entry_type: &str) -> String {
        self.template.replace("{eventType}", entry_type)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let url = self.url.to_string();
        let stream = self.stream.clone();
        // Drop cannot await, and may run inside the test's runtime: a runtime of its own on a
        // thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let cleanup = async {
                    if let Ok(client) = async_nats::connect(url).await {
                        let _ = jetstream::new(client).delete_stream(&stream).await;
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(5), cleanup).await;
            });
        })
        .join();
    }
}

/// An entry as the relay hands it over: the body is the envelope, which names the id.
fn message(id: &str, entry_type: &str) -> OutboundMessage {
    OutboundMessage {
        entry_id: id.to_owned(),
        entry_type: entry_type.to_owned(),
        body: format!(
            r#"{{"id":"{id}","type":"{entry_type}","timestamp":"2026-11-30T12:00:00.000000Z","data":{{"mail":{{"destination":["é@example.com"]}}}}}}"#
        )
        .into_bytes(),
    }
}

fn messages(prefix: &str, range: std::ops::Range<usize>) -> Vec<OutboundMessage> {
    range
        .map(|i| message(&format!("{prefix}-{i}"), "email_bounce"))
        .collect()
}

/// Fails the test when `future` does not finish within [`HANG`].
async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {HANG:?}: it hangs"))
}

/// Delivers `messages` again and again, only those that failed, as the relay does, until every
/// one is delivered; fails the test when some still fail after [`RECOVERY`].
async fn deliver_until_delivered(sink: &NatsSink, mut messages: Vec<OutboundMessage>) {
    let deadline = tokio::time::Instant::now() + RECOVERY;
    loop {
        let results = bounded("a delivery", sink.deliver(messages.clone())).await;
        assert_eq!(results.len(), messages.len());
        let failed: Vec<(OutboundMessage, String)> = messages
            .into_iter()
            .zip(results)
            .filter_map(|(m, r)| r.err().map(|e| (m, e)))
            .collect();
        let Some((_, error)) = failed.first() else {
            return;
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} entries still fail after {RECOVERY:?}, the first with: {error}",
            failed.len()
        );
        messages = failed.into_iter().map(|(m, _)| m).collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A message as JetStream stored it.
#[derive(Debug)]
struct Stored {
    subject: String,
    id: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

async fn jetstream_at(url: &Url) -> jetstream::Context {
    let client = bounded("connecting", async_nats::connect(url.as_str()))
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    jetstream::new(client)
}

/// Every message in `stream`, in the stream's order.
async fn stored(url: &Url, stream: &str) -> Vec<Stored> {
    let jetstream = jetstream_at(url).await;
    let mut handle = jetstream
        .get_stream(stream)
        .await
        .unwrap_or_else(|e| panic!("the stream {stream} is not there: {e}"));
    let state = handle.info().await.unwrap().state.clone();
    let mut messages = Vec::new();
    if state.messages == 0 {
        return messages;
    }
    for sequence in state.first_sequence..=state.last_sequence {
        let message = handle.get_raw_message(sequence).await.unwrap();
        let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
        messages.push(Stored {
            subject: message.subject.to_string(),
            id: message
                .headers
                .get(NATS_MESSAGE_ID)
                .map(|v| v.as_str().to_owned()),
            content_type: header("Content-Type"),
            body: message.payload.to_vec(),
        });
    }
    messages
}

fn stored_ids(stored: &[Stored]) -> Vec<String> {
    stored.iter().map(|m| m.id.clone().unwrap()).collect()
}

async fn stream_exists(url: &Url, stream: &str) -> bool {
    jetstream_at(url).await.get_stream(stream).await.is_ok()
}

// --- Throwaway servers ---

/// The nats-server program for the tests' own servers.
fn nats_server_program() -> PathBuf {
    if let Ok(program) = std::env::var("TEST_NATS_SERVER_BIN") {
        let program = PathBuf::from(program);
        assert!(
            program.is_file(),
            "TEST_NATS_SERVER_BIN={} is not a file",
            program.display()
        );
        return program;
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("nats-server"));
    on_path
        .chain([
            "/usr/sbin/nats-server".into(),
            "/usr/bin/nats-server".into(),
        ])
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nats-server is not installed (not on PATH nor in /usr/sbin or /usr/bin), and \
                 the fault tests start servers of their own: `source scripts/ensure-nats` \
                 installs it (Debian's package nats-server) and sets TEST_NATS_SERVER_BIN, or \
                 set TEST_NATS_SERVER_BIN yourself"
            )
        })
}

/// A loopback port nothing listens on (free when asked).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `nats-server -js` of a test's own on 127.0.0.1, its store in a temporary directory;
/// killed when dropped. It can be killed and started again on the same port and store.
struct Throwaway {
    program: PathBuf,
    /// Whether it runs with `-js`.
    jetstream: bool,
    port: u16,
    dir: tempfile::TempDir,
    process: Option<Child>,
}

impl Throwaway {
    /// A server to be on `port`, not started yet.
    fn on(port: u16) -> Self {
        Self {
            program: nats_server_program(),
            jetstream: true,
            port,
            dir: tempfile::tempdir().unwrap(),
            process: None,
        }
    }

    async fn start_new() -> Self {
        let mut server = Self::on(free_port());
        server.start().await;
        server
    }

    fn url(&self) -> Url {
        format!("nats://127.0.0.1:{}", self.port).parse().unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats-server.log")).unwrap_or_default()
    }

    /// Starts the server and waits until it greets with JetStream enabled.
    async fn start(&mut self) {
        assert!(self.process.is_none(), "already running");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nats-server.log"))
            .unwrap();
        writeln!(log, "--- starting").unwrap();
        let mut command = Command::new(&self.program);
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        if self.jetstream {
            command
                .arg("-js")
                .arg("-sd")
                .arg(self.dir.path().join("store"));
        }
        let child = command
            .arg("-l")
            .arg(self.dir.path().join("nats-server.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        self.process = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if self.greets().await {
                return;
            }
            let exited = self.process.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && tokio::time::Instant::now() < deadline,
                "nats-server on port {} did not come up ({exited:?}); its log:\n{}",
                self.port,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the server's first line is an INFO (that says JetStream is enabled, when it
    /// should be).
    async fn greets(&self) -> bool {
        let greeting = async {
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .ok()?;
            let mut line = String::new();
            tokio::io::BufReader::new(stream)
                .read_line(&mut line)
                .await
                .ok()?;
            Some(line)
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(2), greeting).await,
            Ok(Some(line)) if line.starts_with("INFO")
                && (!self.jetstream || line.contains(r#""jetstream":true"#))
        )
    }

    /// SIGKILL: no clean shutdown, connections dropped as by a crash.
    fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        self.kill();
    }
}

// --- The shared server ---

#[tokio::test]
async fn each_entry_is_published_with_its_id_on_its_subject_with_the_envelope_as_body() {
    let scratch = Scratch::new("publish");
    let mut settings = scratch.settings();
    settings.duplicate_window = Duration::from_secs(30);
    assert!(!stream_exists(&scratch.url, &scratch.stream).await);
    let sink = NatsSink::new(settings).await.unwrap();
    let sent: Vec<OutboundMessage> = (0..10)
        .map(|i| {
            let entry_type = if i % 3 == 0 {
                "suppression.added"
            } else {
                "email_bounce"
            };
            message(&format!("entry-{i}"), entry_type)
        })
        .collect();

    let results = bounded("a delivery", sink.deliver(sent.clone())).await;

    assert_eq!(results, vec![Ok(()); 10]);
    // The stream was created, as the settings say.
    let jetstream = jetstream_at(&scratch.url).await;
    let mut stream = jetstream.get_stream(&scratch.stream).await.unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert_eq!(config.subjects, vec![stream_subject(&scratch.template)]);
    assert_eq!(
        config.subjects,
        vec![format!(
            "{}>",
            scratch.template.trim_end_matches("{eventType}")
        )]
    );
    assert_eq!(config.storage, stream::StorageType::File);
    assert_eq!(config.duplicate_window, Duration::from_secs(30));
    // One message per entry: its id, its subject, its envelope.
    let stored = stored(&scratch.url, &scratch.stream).await;
    assert_eq!(stored.len(), sent.len(), "{stored:?}");
    let by_id: BTreeMap<&str, &Stored> = stored
        .iter()
        .map(|m| (m.id.as_deref().expect("no Nats-Msg-Id"), m))
        .collect();
    for entry in &sent {
        let message = by_id
            .get(entry.entry_id.as_str())
            .unwrap_or_else(|| panic!("{} is not in the stream", entry.entry_id));
        assert_eq!(message.subject, scratch.subject(&entry.entry_type));
        assert_eq!(message.body, entry.body);
        assert_eq!(message.content_type.as_deref(), Some("application/json"));
    }
    assert!(
        stored
            .iter()
            .any(|m| m.subject.ends_with(".suppression.added"))
    );
}

#[tokio::test]
async fn a_redelivery_is_acknowledged_and_jetstream_keeps_one_message() {
    let scratch = Scratch::new("duplicate");
    let sink = NatsSink::new(scratch.settings()).await.unwrap();
    let [a, b, c] = ["a", "b", "c"].map(|id| message(id, "email_bounce"));
    assert_eq!(
        sink.deliver(vec![a.clone(), b.clone()]).await,
        vec![Ok(()); 2]
    );

    // The same entries again: from this sink, and from another one (another relay, or this
    // service after a restart), which knows nothing of the first deliveries.
    let again = sink.deliver(vec![a.clone()]).await;
    let other = NatsSink::new(scratch.settings()).await.unwrap();
    let mixed = other.deliver(vec![b, c, a]).await;

    assert_eq!(again, vec![Ok(())]);
    assert_eq!(mixed, vec![Ok(()); 3]);
    let ids = stored_ids(&stored(&scratch.url, &scratch.stream).await);
    assert_eq!(ids, ["a", "b", "c"]);
}

#[tokio::test]
async fn without_create_stream_a_missing_stream_fails_the_messages_and_is_not_created() {
    let scratch = Scratch::new("nocreate");
    let mut settings = scratch.settings();
    settings.create_stream = false;
    let sink = NatsSink::new(settings).await.unwrap();
    let sent = messages("entry", 0..3);

    let results = bounded("a delivery", sink.deliver(sent.clone())).await;

    assert_eq!(results.len(), 3);
    for result in &results {
        let error = result.as_ref().expect_err("delivered to a missing stream");
        assert!(
            error.contains(&scratch.subject("email_bounce")) && error.contains(&scratch.stream),
            "{error}"
        );
    }
    assert!(!stream_exists(&scratch.url, &scratch.stream).await);

    // Once someone creates it, the same entries go through.
    jetstream_at(&scratch.url)
        .await
        .create_stream(stream::Config {
            name: scratch.stream.clone(),
            subjects: vec![stream_subject(&scratch.template)],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sink.deliver(sent).await, vec![Ok(()); 3]);
    let ids = stored_ids(&stored(&scratch.url, &scratch.stream).await);
    assert_eq!(ids, ["entry-0", "entry-1", "entry-2"]);
}

#[tokio::test]
async fn a_stream_deleted_under_the_sink_is_created_again() {
    let scratch = Scratch::new("recreate");
    let sink = NatsSink::new(scratch.settings()).await.unwrap();
    assert_eq!(sink.deliver(messages("first", 0..1)).await, vec![Ok(())]);
    jetstream_at(&scratch.url)
        .await
        .delete_stream(&scratch.stream)
        .await
        .unwrap();

    let results = bounded("a delivery", sink.deliver(messages("second", 0..5))).await;

    assert_eq!(results, vec![Ok(()); 5]);
    let ids = stored_ids(&stored(&scratch.url, &scratch.stream).await);
    let ids: BTreeSet<String> = ids.into_iter().collect();
    let expected: BTreeSet<String> = (0..5).map(|i| format!("second-{i}")).collect();
    assert_eq!(ids, expected);
}

// --- Servers of the tests' own ---

#[tokio::test]
async fn a_server_down_at_start_up_does_not_fail_new_and_deliveries_fail_until_it_comes() {
    let mut server = Throwaway::on(free_port());
    let mut settings = NatsSettings::new(
        format!("nats://relay:s3cret@127.0.0.1:{}", server.port)
            .parse()
            .unwrap(),
        "SES_EVENTS",
    );
    settings.timeout = Duration::from_millis(500);

    let sink = bounded("NatsSink::new", NatsSink::new(settings))
        .await
        .expect("NatsSink::new must not need the server");
    let sent = messages("entry", 0..3);
    let results = bounded("a delivery", sink.deliver(sent.clone())).await;

    assert_eq!(results.len(), 3);
    for result in &results {
        let error = result.as_ref().expect_err("delivered without a server");
        assert!(
            error.starts_with(&format!(
                "not connected to the NATS server at nats://127.0.0.1:{}",
                server.port
            )),
            "{error}"
        );
        assert!(!error.contains("s3cret"), "{error}");
    }

    // The server comes: the same sink delivers, without being made again.
    server.start().await;
    deliver_until_delivered(&sink, sent).await;
    let ids = stored_ids(&stored(&server.url(), "SES_EVENTS").await);
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>().len(), 3);
}

#[tokio::test]
async fn the_server_killed_and_restarted_loses_no_entry_and_keeps_every_id() {
    let mut server = Throwaway::start_new().await;
    let mut settings = NatsSettings::new(server.url(), "SES_EVENTS");
    assert_eq!(settings.subject, DEFAULT_SUBJECT);
    settings.timeout = Duration::from_secs(1);
    // All of the cut delivery in flight at once: each publish that lost its server waits its own
    // timeout, so with fewer at a time the failures would take a timeout per wave.
    settings.concurrency = 2000;
    let sink = Arc::new(NatsSink::new(settings).await.unwrap());
    let before = messages("before", 0..50);
    let during = messages("during", 0..2000);
    let down = messages("down", 0..20);
    assert_eq!(
        bounded("a delivery", sink.deliver(before.clone())).await,
        vec![Ok(()); 50]
    );

    // Killed (SIGKILL) while a delivery is under way, then a delivery while it is down.
    let in_flight = tokio::spawn({
        let sink = sink.clone();
        let during = during.clone();
        async move { sink.deliver(during).await }
    });
    // Killed once JetStream has taken a part of it.
    let mut stream = jetstream_at(&server.url())
        .await
        .get_stream("SES_EVENTS")
        .await
        .unwrap();
    bounded("waiting for the delivery to start", async {
        while stream.info().await.unwrap().state.messages < 60 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    server.kill();
    let during_results = bounded("the delivery cut by the kill", in_flight)
        .await
        .unwrap();
    let down_results = bounded("a delivery to a dead server", sink.deliver(down.clone())).await;

    assert_eq!(during_results.len(), during.len());
    assert!(
        during_results.iter().any(Result::is_err),
        "the kill did not cut the delivery short: the test proves less than it should"
    );
    assert_eq!(down_results.len(), down.len());
    for result in &down_results {
        let error = result.as_ref().expect_err("delivered to a dead server");
        assert!(!error.is_empty());
    }
    // An entry acknowledged before the kill is in the stream (file storage) after the restart.
    let acknowledged: Vec<&OutboundMessage> = during
        .iter()
        .zip(&during_results)
        .filter(|(_, r)| r.is_ok())
        .map(|(m, _)| m)
        .collect();

    // Back on the same port and store: the relay delivers what failed, and redelivers the
    // first batch (as it would after losing its claims).
    server.start().await;
    let failed: Vec<OutboundMessage> = during
        .iter()
        .zip(&during_results)
        .filter(|(_, r)| r.is_err())
        .map(|(m, _)| m.clone())
        .chain(down.iter().cloned())
        .collect();
    deliver_until_delivered(&sink, failed).await;
    deliver_until_delivered(&sink, before.clone()).await;

    let stored = stored(&server.url(), "SES_EVENTS").await;
    let sent: BTreeMap<&str, &OutboundMessage> = before
        .iter()
        .chain(&during)
        .chain(&down)
        .map(|m| (m.entry_id.as_str(), m))
        .collect();
    let mut seen = BTreeSet::new();
    for message in &stored {
        let id = message
            .id
            .as_deref()
            .expect("a message without Nats-Msg-Id");
        let entry = sent
            .get(id)
            .unwrap_or_else(|| panic!("{id} was never sent"));
        // Every copy of an entry carries its id and its own envelope.
        assert_eq!(message.body, entry.body, "{id}");
        assert_eq!(message.subject, "ses.events.email_bounce");
        seen.insert(id);
    }
    for entry in acknowledged {
        assert!(seen.contains(entry.entry_id.as_str()), "{}", entry.entry_id);
    }
    let missing: Vec<&&str> = sent.keys().filter(|id| !seen.contains(**id)).collect();
    assert!(missing.is_empty(), "not in the stream: {missing:?}");
}

#[tokio::test]
async fn a_server_without_jetstream_fails_every_message_saying_so() {
    let mut server = Throwaway::on(free_port());
    server.jetstream = false;
    server.start().await;
    let mut settings = NatsSettings::new(server.url(), "SES_EVENTS");
    settings.timeout = Duration::from_secs(1);
    let sink = NatsSink::new(settings).await.unwrap();

    let results = bounded("a delivery", sink.deliver(messages("entry", 0..2))).await;

    assert_eq!(
        results,
        vec![
            Err("JetStream is not enabled on the NATS server (nothing answers its API)".to_owned());
            2
        ]
    );
}
