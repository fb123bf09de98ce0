//! The NATS JetStream sink: each entry published to a stream, delivered once JetStream
//! acknowledged it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::header::{NATS_EXPECTED_STREAM, NATS_MESSAGE_ID};
use async_nats::jetstream::context::{
    CreateStreamErrorKind, GetStreamErrorKind, PublishError, PublishErrorKind, RequestError,
    RequestErrorKind,
};
use async_nats::jetstream::{self, stream};
use async_nats::{ClientError, ConnectOptions, Event, HeaderMap, ServerAddr};
use async_trait::async_trait;
use bytes::Bytes;
use domain::delivery::{OutboundMessage, SinkClient};
use futures::StreamExt as _;
use url::Url;

/// What [`NatsSettings::subject`] replaces by the entry type.
pub const EVENT_TYPE_PLACEHOLDER: &str = "{eventType}";

/// The default subject template: `ses.events.email_bounce`, `ses.events.suppression.added`, ...
pub const DEFAULT_SUBJECT: &str = "ses.events.{eventType}";

/// How often a delivery looks whether the client got connected, while it waits for that.
const CONNECTION_POLL: Duration = Duration::from_millis(20);

/// What a delivery answers when nothing answers JetStream's API on a connected server.
const NO_JETSTREAM: &str = "JetStream is not enabled on the NATS server (nothing answers its API)";

/// How a NATS JetStream sink is reached and what it publishes.
#[derive(Clone)]
pub struct NatsSettings {
    /// The server: `nats://host:port` (`tls://host:port` for TLS; port 4222 when left out). A
    /// user and password in the URL are used to log in, and never shown.
    pub url: Url,
    /// The JetStream stream that stores the messages: letters, digits, `-` and `_`.
    pub stream: String,
    /// The subject template; [`EVENT_TYPE_PLACEHOLDER`] (`{eventType}`) is replaced by the entry
    /// type (`email_bounce`, `suppression.added`). Tokens are separated by `.`; no wildcards;
    /// the first token must not hold the placeholder. Default [`DEFAULT_SUBJECT`].
    pub subject: String,
    /// A NATS credentials file (`.creds`: a user JWT and its nkey seed), read once, by
    /// [`NatsSink::new`]. Default none.
    pub credentials_file: Option<PathBuf>,
    /// Whether the stream is created when it is missing (see [`NatsSink`]).
    /// Default `true`.
    pub create_stream: bool,
    /// The duplicate window of a stream this sink creates: a message whose `Nats-Msg-Id` the
    /// stream took less than this long ago is acknowledged as a duplicate and not stored again.
    /// The server keeps the ids of that long in memory. Default 2 minutes (JetStream's own).
    pub duplicate_window: Duration,
    /// How long a publish may wait for its acknowledgement, and a delivery for the connection or
    /// for the stream's look-up and creation. Default 5 s.
    pub timeout: Duration,
    /// How many messages may await their acknowledgement at once. Default 128.
    pub concurrency: usize,
}

impl NatsSettings {
    /// Settings for `stream` on the server at `url`, the rest at its default.
    pub fn new(url: Url, stream: impl Into<String>) -> Self {
        Self {
            url,
            stream: stream.into(),
            subject: DEFAULT_SUBJECT.to_owned(),
            credentials_file: None,
            create_stream: true,
            duplicate_window: Duration::from_secs(120),
            timeout: Duration::from_secs(5),
            concurrency: 128,
        }
    }
}

impl std::fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSettings")
            .field("url", &crate::shown_url(&self.url))
            .field("stream", &self.stream)
            .field("subject", &self.subject)
            .field("credentials_file", &self.credentials_file)
            .field("create_stream", &self.create_stream)
            .field("duplicate_window", &self.duplicate_window)
            .field("timeout", &self.timeout)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// Why a NATS sink could not be set up; each names what is wrong, never a password or the
/// credentials.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NatsSetupError {
    #[error("the URL must be nats:// or tls://, not {0}")]
    Scheme(String),
    #[error("the URL names no host")]
    NoHost,
    #[error(
        "the stream name {0:?} is not valid: it must be letters, digits, `-` and `_` \
         (no `.`, `*`, `>`, `/`, `\\` or spaces)"
    )]
    Stream(String),
    #[error("the subject template {template:?} is not valid: {reason}")]
    Subject {
        template: String,
        reason: &'static str,
    },
    #[error("the credentials file {path} cannot be used: {reason}")]
    Credentials { path: String, reason: String },
    #[error("the timeout must be longer than zero")]
    NoTimeout,
    #[error("the duplicate window must be longer than zero")]
    NoDuplicateWindow,
    #[error("concurrency must be at least 1")]
    NoConcurrency,
    #[error("the NATS client could not be set up: {0}")]
    Client(String),
}

/// Whether `name` may name a JetStream stream.
fn valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !".*>/\\".contains(c))
}

/// Checks a subject template (see [`NatsSettings::subject`]).
fn check_template(template: &str) -> Result<(), &'static str> {
    if template.is_empty() {
        return Err("it is empty");
    }
    if template
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("it holds spaces or control characters");
    }
    if template.contains(['*', '>']) {
        return Err("it holds a wildcard (`*` or `>`)");
    }
    if template.split('.').any(str::is_empty) {
        return Err("it has an empty token (`..`, or a `.` at either end)");
    }
    if template
        .replace(EVENT_TYPE_PLACEHOLDER, "")
        .contains(['{', '}'])
    {
        return Err("the only placeholder is {eventType}");
    }
    if template
        .split('.')
        .next()
        .is_some_and(|first| first.contains(EVENT_TYPE_PLACEHOLDER))
    {
        return Err("its first token must not hold {eventType}");
    }
    Ok(())
}

/// The subject a created stream takes for a (checked) subject `template`: the tokens before the
/// first one holding `{eventType}`, then `>` (which matches one or more tokens, as
/// `suppression.added` makes two). `ses.events.{eventType}` gives `ses.events.>`,
/// `ses.{eventType}.v1` gives `ses.>`; a template without the placeholder is its own subject.
pub fn stream_subject(template: &str) -> String {
    let tokens: Vec<&str> = template.split('.').collect();
    match tokens
        .iter()
        .position(|t| t.contains(EVENT_TYPE_PLACEHOLDER))
    {
        Some(at) => {
            let mut subject = tokens[..at].join(".");
            subject.push_str(".>");
            subject
        }
        None => template.to_owned(),
    }
}

/// Whether an entry type can stand in a subject: tokens of letters, digits, `-` and `_`.
fn valid_entry_type(entry_type: &str) -> bool {
    entry_type.split('.').all(|token| {
        !token.is_empty()
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    })
}

/// Whether a JetStream API request failed because nothing answered it: the server has no
/// JetStream (the API answers "not found" for a missing stream, never nothing).
fn no_responders(error: &(dyn std::error::Error + 'static)) -> bool {
    error
        .source()
        .and_then(|source| source.downcast_ref::<RequestError>())
        .is_some_and(|request| request.kind() == RequestErrorKind::NoResponders)
}

/// The last reason the client was not connected, from its events: `None` while connected.
type ConnectionProblem = Arc<Mutex<Option<String>>>;

fn note_event(problem: &ConnectionProblem, event: &Event) {
    let note = match event {
        Event::Connected => None,
        Event::Disconnected => Some("the connection was lost".to_owned()),
        // What the connector failed on ("IO error", "timed out", "authorization violation"):
        // the kind of the failure, never its details.
        Event::ClientError(ClientError::Other(kind)) => Some(kind.clone()),
        Event::ServerError(error) => {
            Some(error.to_string().trim_start_matches("nats: ").to_owned())
        }
        _ => return,
    };
    if let Ok(mut problem) = problem.lock() {
        *problem = note;
    }
}

/// A NATS JetStream sink: publishes each entry to its stream. An entry is delivered once
/// JetStream acknowledged it, a duplicate included (it is stored already); a timeout, a lost
/// connection, a missing stream or a refusal is a failure to retry.
///
/// # Connecting
/// [`NatsSink::new`] never waits for the server: the client connects in the background and keeps
/// reconnecting, without end, with a growing delay (up to 4 s) between attempts. A server that
/// is down when the service starts therefore does not stop it: until the client is connected,
/// each [`SinkClient::deliver`] waits up to [`NatsSettings::timeout`] for the connection, then
/// answers every message with "not connected to the NATS server ..." and the relay tries again
/// on its schedule.
///
/// # The stream
/// With [`NatsSettings::create_stream`] (the default), the first delivery after the client is
/// connected makes sure the stream exists: it is looked up and, when missing, created with the
/// subjects that [`stream_subject`] derives from the template (`ses.events.>` for the default),
/// file storage and [`NatsSettings::duplicate_window`]; JetStream's defaults otherwise (no limits,
/// one replica). An existing stream is used as it is, whatever its configuration. When a
/// publish later finds no stream for its subject ("no responders": the stream was deleted, or a
/// server that kept nothing came back), the stream is made sure of once more and the message
/// published again; concurrent publishes that failed the same way share that one attempt.
/// Without `create_stream` the stream must exist: a message that finds none fails, naming the
/// subject and the stream.
///
/// # What a message carries
/// Subject: the template with `{eventType}` replaced by the entry type. Headers: `Nats-Msg-Id`
/// (the entry id: JetStream drops a redelivery within the stream's duplicate window, and
/// consumers deduplicate by it after that), `Nats-Expected-Stream` (the stream: JetStream refuses
/// the message if another stream took its subject) and `Content-Type: application/json`. Body:
/// the envelope, as it is.
pub struct NatsSink {
    server: String,
    stream: String,
    subject: String,
    create_stream: bool,
    duplicate_window: Duration,
    timeout: Duration,
    concurrency: usize,
    client: async_nats::Client,
    jetstream: jetstream::Context,
    problem: ConnectionProblem,
    /// Whether the stream was made sure of since the last failure to.
    stream_ready: AtomicBool,
    /// Counts the attempts to make sure of the stream, so that publishes failing together
    /// share one.
    stream_attempts: AtomicU64,
    ensuring: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSink")
            .field("url", &self.server)
            .field("stream", &self.stream)
            .field("subject", &self.subject)
            .field("create_stream", &self.create_stream)
            .field("timeout", &self.timeout)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl NatsSink {
    /// A sink for `settings`. It does not wait for the server, which may be down (see
    /// [`NatsSink`]); the credentials file, if any, is read here. Must be called
    /// within a Tokio runtime (the client's tasks run on it).
    ///
    /// # Errors
    /// [`NatsSetupError`] when the URL is not `nats://` or `tls://` or has no host, the stream
    /// name or the subject template is not valid, the timeout or duplicate window is zero, the
    /// concurrency is 0, or the credentials file cannot be read or is not a credentials file.
    pub async fn new(settings: NatsSettings) -> Result<Self, NatsSetupError> {
        match settings.url.scheme() {
            "nats" | "tls" => {}
            other => return Err(NatsSetupError::Scheme(format!("{other}:"))),
        }
        if settings.url.host_str().is_none_or(str::is_empty) {
            return Err(NatsSetupError::NoHost);
        }
        if !valid_stream_name(&settings.stream) {
            return Err(NatsSetupError::Stream(settings.stream));
        }
        check_template(&settings.subject).map_err(|reason| NatsSetupError::Subject {
            template: settings.subject.clone(),
            reason,
        })?;
        if settings.timeout.is_zero() {
            return Err(NatsSetupError::NoTimeout);
        }
        if settings.duplicate_window.is_zero() {
            return Err(NatsSetupError::NoDuplicateWindow);
        }
        if settings.concurrency == 0 {
            return Err(NatsSetupError::NoConcurrency);
        }
        let server = crate::shown_url(&settings.url);
        let address = ServerAddr::from_url(settings.url)
            .map_err(|e| NatsSetupError::Client(e.to_string()))?;

        let problem = ConnectionProblem::default();
        let noted = problem.clone();
        let mut options = ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(settings.timeout)
            .request_timeout(Some(settings.timeout))
            .name(concat!("ses-webhook/", env!("CARGO_PKG_VERSION")))
            .event_callback(move |event| {
                note_event(&noted, &event);
                std::future::ready(())
            });
        if let Some(path) = &settings.credentials_file {
            let failed = |reason: String| NatsSetupError::Credentials {
                path: path.display().to_string(),
                reason,
            };
            let contents = tokio::fs::read_to_string(path)
                .await
                .map_err(|e| failed(e.kind().to_string()))?;
            // The parser's messages say what is missing, never what the file holds.
            options = options
                .credentials(&contents)
                .map_err(|e| failed(e.to_string()))?;
        }
        let client = options
            .connect(address)
            .await
            .map_err(|e| NatsSetupError::Client(e.to_string()))?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(settings.timeout)
            .build(client.clone());
        Ok(Self {
            server,
            stream: settings.stream,
            subject: settings.subject,
            create_stream: settings.create_stream,
            duplicate_window: settings.duplicate_window,
            timeout: settings.timeout,
            concurrency: settings.concurrency,
            client,
            jetstream,
            problem,
            stream_ready: AtomicBool::new(false),
            stream_attempts: AtomicU64::new(0),
            ensuring: tokio::sync::Mutex::new(()),
        })
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// "not connected to the NATS server ..." with the last reason known.
    fn not_connected(&self) -> String {
        let problem = self.problem.lock().ok().and_then(|p| p.clone());
        match problem {
            Some(problem) => format!(
                "not connected to the NATS server at {} ({problem})",
                self.server
            ),
            None => format!("not connected to the NATS server at {}", self.server),
        }
    }

    /// Waits up to the timeout for the client to be connected.
    async fn wait_connected(&self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        while !self.connected() {
            if tokio::time::Instant::now() >= deadline {
                return Err(self.not_connected());
            }
            tokio::time::sleep(CONNECTION_POLL).await;
        }
        Ok(())
    }

    /// Makes sure the stream exists, creating it when missing. `failed_after`: the count of
    /// attempts seen by a publish that found no stream; `None` before the first publishes of
    /// a delivery. Nothing is done when the stream is ready and no publish found it missing
    /// since the last attempt.
    async fn ensure_stream(&self, failed_after: Option<u64>) -> Result<(), String> {
        let _one_at_a_time = self.ensuring.lock().await;
        let needed = match failed_after {
            None => !self.stream_ready.load(Ordering::Acquire),
            Some(seen) => self.stream_attempts.load(Ordering::Acquire) == seen,
        };
        if !needed {
            return Ok(());
        }
        let result = self.get_or_create_stream().await;
        self.stream_ready.store(result.is_ok(), Ordering::Release);
        self.stream_attempts.fetch_add(1, Ordering::AcqRel);
        result
    }

    async fn get_or_create_stream(&self) -> Result<(), String> {
        let stream = &self.stream;
        match self.jetstream.get_stream(stream).await {
            Ok(_) => return Ok(()),
            Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(ref api) if api.code() == 404) =>
                {}
            Err(e) => {
                return Err(match e.kind() {
                    GetStreamErrorKind::Request if !self.connected() => self.not_connected(),
                    // The look-up comes first: without this, a server without JetStream would
                    // read as a missing stream ("requested JetStream resource does not exist").
                    GetStreamErrorKind::Request if no_responders(&e) => NO_JETSTREAM.to_owned(),
                    _ => format!("could not look up the JetStream stream {stream}: {e}"),
                });
            }
        }
        let subject = stream_subject(&self.subject);
        let config = stream::Config {
            name: stream.clone(),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            duplicate_window: self.duplicate_window,
            ..Default::default()
        };
        match self.jetstream.create_stream(config).await {
            Ok(_) => {
                tracing::info!(stream, subject, "created the JetStream stream");
                Ok(())
            }
            Err(e) => Err(match e.kind() {
                CreateStreamErrorKind::JetStreamUnavailable => NO_JETSTREAM.to_owned(),
                CreateStreamErrorKind::TimedOut if !self.connected() => self.not_connected(),
                _ => format!("could not create the JetStream stream {stream} ({subject}): {e}"),
            }),
        }
    }

    async fn publish_once(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<(), PublishError> {
        // A duplicate (`ack.duplicate`) is stored already: delivered all the same.
        let _ack = self
            .jetstream
            .publish_with_headers(subject.to_owned(), headers, payload)
            .await?
            .await?;
        Ok(())
    }

    /// Publishes one message and waits for its acknowledgement; what went wrong, if anything,
    /// in words fit for `last_error`.
    async fn publish(&self, message: OutboundMessage) -> Result<(), String> {
        if !valid_entry_type(&message.entry_type) {
            return Err(format!(
                "the entry type {:?} cannot stand in a NATS subject",
                message.entry_type
            ));
        }
        let subject = self
            .subject
            .replace(EVENT_TYPE_PLACEHOLDER, &message.entry_type);
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, message.entry_id.as_str());
        headers.insert(NATS_EXPECTED_STREAM, self.stream.as_str());
        headers.insert("Content-Type", "application/json");
        let payload = Bytes::from(message.body);

        let attempts = self.stream_attempts.load(Ordering::Acquire);
        match self
            .publish_once(&subject, headers.clone(), payload.clone())
            .await
        {
            Err(e) if e.kind() == PublishErrorKind::StreamNotFound && self.create_stream => {
                self.ensure_stream(Some(attempts)).await.map_err(|why| {
                    format!(
                        "{}; making sure of it failed: {why}",
                        self.no_stream(&subject)
                    )
                })?;
                self.publish_once(&subject, headers, payload)
                    .await
                    .map_err(|e| self.describe(&e, &subject))
            }
            result => result.map_err(|e| self.describe(&e, &subject)),
        }
    }

    fn no_stream(&self, subject: &str) -> String {
        format!(
            "no JetStream stream takes subject {subject} (no responders): the stream {} is \
             missing or does not cover it",
            self.stream
        )
    }

    fn describe(&self, error: &PublishError, subject: &str) -> String {
        match error.kind() {
            PublishErrorKind::TimedOut if !self.connected() => format!(
                "no acknowledgement from JetStream within {} s: {}",
                self.timeout.as_secs_f64(),
                self.not_connected()
            ),
            PublishErrorKind::TimedOut => format!(
                "no acknowledgement from JetStream within {} s",
                self.timeout.as_secs_f64()
            ),
            PublishErrorKind::StreamNotFound => self.no_stream(subject),
            PublishErrorKind::BrokenPipe => {
                "the connection to the NATS server was lost before the acknowledgement".to_owned()
            }
            PublishErrorKind::MaxPayloadExceeded => {
                "the message is larger than the NATS server's max_payload".to_owned()
            }
            // JetStream's own refusals ("expected stream does not match", "insufficient
            // resources", ...) come with its description.
            _ => format!("JetStream did not take the message: {error}"),
        }
    }
}

#[async_trait]
impl SinkClient for NatsSink {
    async fn deliver(&self, messages: Vec<OutboundMessage>) -> Vec<Result<(), String>> {
        if messages.is_empty() {
            return Vec::new();
        }
        let ready = match self.wait_connected().await {
            Ok(()) if self.create_stream => self.ensure_stream(None).await,
            other => other,
        };
        if let Err(why) = ready {
            return vec![Err(why); messages.len()];
        }
        futures::stream::iter(messages)
            .map(|m| self.publish(m))
            .buffered(self.concurrency)
            .collect()
            .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_takes_the_template_up_to_the_placeholder() {
        assert_eq!(stream_subject(DEFAULT_SUBJECT), "ses.events.>");
        assert_eq!(stream_subject("ses.{eventType}.v1"), "ses.>");
        assert_eq!(stream_subject("ses.events-{eventType}"), "ses.>");
        assert_eq!(stream_subject("ses.events"), "ses.events");
    }

    #[test]
    fn templates_are_checked() {
        assert_eq!(check_template(DEFAULT_SUBJECT), Ok(()));
        assert_eq!(check_template("fixed.subject"), Ok(()));
        for bad in [
            "",
            "ses events.{eventType}",
            "ses.*.{eventType}",
            "ses.>",
            "ses..{eventType}",
            "ses.{eventType}.",
            ".ses.{eventType}",
            "ses.{event_type}",
            "{eventType}.ses",
        ] {
            assert!(check_template(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn entry_types_and_stream_names_are_checked() {
        for good in ["email_bounce", "suppression.added", "a-b"] {
            assert!(valid_entry_type(good), "{good}");
        }
        for bad in ["", "a..b", ".a", "a b", "a.*", "a.>", "é"] {
            assert!(!valid_entry_type(bad), "{bad:?}");
        }
        assert!(valid_stream_name("SES_EVENTS-1"));
        for bad in ["", "ses.events", "a b", "a*", "a>", "a/b", "a\\b"] {
            assert!(!valid_stream_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn connection_events_leave_the_last_problem() {
        let problem = ConnectionProblem::default();
        note_event(
            &problem,
            &Event::ClientError(ClientError::Other("IO error".into())),
        );
        assert_eq!(problem.lock().unwrap().as_deref(), Some("IO error"));
        note_event(&problem, &Event::Connected);
        assert_eq!(problem.lock().unwrap().as_deref(), None);
        note_event(&problem, &Event::Disconnected);
        assert_eq!(
            problem.lock().unwrap().as_deref(),
            Some("the connection was lost")
        );
    }
}
