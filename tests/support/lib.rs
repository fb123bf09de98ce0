//! Shared helpers of the integration suite: a real server on a random port, backed by a fresh
//! PostgreSQL database, trusting a throwaway signing certificate pinned in a temporary directory,
//! with a local stand-in for SNS reachable through `sns.dev_endpoints`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use std::path::PathBuf;
use std::time::Duration;

use adapters_store::testing::{TestDatabase, TestSqliteFile};
use app::{Application, Settings};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use serde_json::Value;
use sns_verify::SignatureVersion;
use sns_verify::testing::TestSigner;
use tempfile::TempDir;
use wiremock::MockServer;

mod throwaway;
pub use throwaway::ThrowawayPostgres;

/// The topic every test message comes from unless a test says otherwise.
pub const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-webhook-tests";

/// Directory of the SES fixtures shipped with the repository.
#[must_use]
pub fn fixtures_dir() -> PathBuf {
    adapters_store::testing::ses_fixtures_dir()
}

/// A running server and everything around it.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    /// Port of the separate metrics listener, when `metrics.bind` was set.
    pub metrics_port: Option<u16>,
    /// Where the server stores.
    pub store: TestStore,
    pub settings: Settings,
    pub signer: &'static TestSigner,
    pub sns: MockServer,
    pub client: reqwest::Client,
    _cert_dir: TempDir,
}

/// The database behind a test server, dropped with it.
pub enum TestStore {
    Postgres(TestDatabase),
    Sqlite(TestSqliteFile),
    /// A database the test manages itself (a throwaway server), by URL.
    External(String),
}

impl TestStore {
    /// The `database.url` of this store.
    #[must_use]
    pub fn url(&self) -> &str {
        match self {
            Self::Postgres(db) => db.url(),
            Self::Sqlite(file) => file.url(),
            Self::External(url) => url,
        }
    }
}

/// A test server on PostgreSQL (a fresh database); `customise` may change any setting.
pub async fn spawn_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDatabase::from_env();
    start(TestStore::Postgres(db), customise).await
}

/// A test server storing in the PostgreSQL database at `url`, which the test manages.
pub async fn spawn_app_on(url: String, customise: impl FnOnce(&mut Settings)) -> TestApp {
    start(TestStore::External(url), customise).await
}

/// A test server like [`spawn_app`]'s, but with `database.url = sqlite://<tmp>/data/ses-webhook.db`
/// (the directory does not exist yet: the server creates it).
pub async fn spawn_sqlite_app() -> TestApp {
    spawn_sqlite_app_with(|_| {}).await
}

/// [`spawn_sqlite_app`] with settings `customise` may change.
pub async fn spawn_sqlite_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    start(TestStore::Sqlite(TestSqliteFile::new()), customise).await
}

/// The two backends, for tests that run on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A test server on `backend` (a fresh database or file), `customise` as for [`spawn_app_with`].
pub async fn spawn_on(backend: Backend, customise: impl FnOnce(&mut Settings)) -> TestApp {
    match backend {
        Backend::Postgres => spawn_app_with(customise).await,
        Backend::Sqlite => spawn_sqlite_app_with(customise).await,
    }
}

/// Environment variable that turns on the servers' logs in the integration suite: its value is
/// a tracing filter (`TEST_LOG=debug`, `TEST_LOG=ses_webhook=trace`; `1` or `true` mean `info`).
pub const TEST_LOG: &str = "TEST_LOG";

/// When [`TEST_LOG`] is set, installs (once per test binary) a subscriber that writes the
/// servers' logs to the test harness's captured output: the harness shows them with a test
/// that fails and drops them for a test that passes (`--nocapture` shows them all). The
/// servers' threads are started from the test's thread, so their lines land in that test's
/// output. Unset, nothing is logged and nothing is formatted.
pub fn init_test_log() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let shown = std::env::var(TEST_LOG).ok().map(|value| {
            let filter = match value.trim() {
                "" | "1" | "true" => "info",
                other => other,
            };
            let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|error| {
                panic!("{TEST_LOG}={value:?} is not a tracing filter: {error}")
            });
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_ansi(false)
                .with_filter(filter)
        });
        // Another subscriber may already be installed: keep it.
        let _ = tracing_subscriber::registry()
            .with(shown)
            .with(capture::layer())
            .try_init();
    });
}

/// Capturing the servers' logs (every level, span fields included) while a [`LogCapture`]
/// lives; off, and free, otherwise.
mod capture {
    use std::io::Write;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::DynFilterFn;
    use tracing_subscriber::fmt::MakeWriter;

    pub(super) static ACTIVE: AtomicUsize = AtomicUsize::new(0);
    pub(super) static BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());

    #[derive(Clone, Copy)]
    pub(super) struct Sink;

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            BUFFER.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Sink {
        type Writer = Sink;
        fn make_writer(&'a self) -> Sink {
            Sink
        }
    }

    pub(super) fn layer<S>() -> impl Layer<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let filter = DynFilterFn::new(|_, _| ACTIVE.load(Ordering::SeqCst) > 0);
        // Levels on every line, span fields with each event, and every span's fields when it
        // closes (so that what a request span carries is seen even if nothing logs inside it).
        tracing_subscriber::fmt::layer()
            .with_writer(Sink)
            .with_ansi(false)
            .with_level(true)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_filter(filter)
    }
}

/// While it lives, every log line of every server in this test binary (at every level, with
/// span fields) is captured; [`LogCapture::text`] gives them. Other tests running at the same
/// time are captured too: look for values unique to the test.
pub struct LogCapture(());

impl LogCapture {
    #[must_use]
    pub fn start() -> Self {
        init_test_log();
        capture::ACTIVE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(())
    }

    /// Everything captured so far (by this and any other live capture).
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&capture::BUFFER.lock().unwrap()).into_owned()
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        if capture::ACTIVE.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            capture::BUFFER.lock().unwrap().clear();
        }
    }
}

async fn start(store: TestStore, customise: impl FnOnce(&mut Settings)) -> TestApp {
    init_test_log();
    let signer = TestSigner::shared();
    let cert_dir = tempfile::tempdir().unwrap();
    signer.write_pinned(cert_dir.path()).unwrap();
    let sns = MockServer::start().await;

    let mut settings = Settings::default();
    settings.server.host = "127.0.0.1".into();
    settings.server.port = 0;
    settings.server.workers = 2;
    settings.database.url = store.url().to_owned();
    settings.database.connect_timeout_secs = 2;
    settings.sns.cert_dir = Some(cert_dir.path().to_path_buf());
    settings.sns.fetch_certificates = false;
    settings.sns.dev_endpoints = vec![sns.uri()];
    customise(&mut settings);

    let app = Application::build(&settings).await.expect("server builds");
    let port = app.port();
    let metrics_port = app.metrics_port();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        metrics_port,
        store,
        settings,
        signer,
        sns,
        // Idle connections are dropped well before the server's keep-alive (5 s) closes them:
        // otherwise a request after a pause of about 5 s can race the server's close and fail
        // with an incomplete message.
        client: reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
        _cert_dir: cert_dir,
    }
}

/// A test server with the default test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

#[derive(Debug, QueryableByName, PartialEq, Eq, Clone)]
pub struct EventRow {
    #[diesel(sql_type = Text)]
    pub event_type: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub recipient: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub bounce_type: Option<String>,
    #[diesel(sql_type = Text)]
    pub ses_message_id: String,
    #[diesel(sql_type = Text)]
    pub sns_message_id: String,
    #[diesel(sql_type = Text)]
    pub event_key: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub bounce_subtype: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub diagnostic_code: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub link: Option<String>,
}

#[derive(Debug, QueryableByName, PartialEq, Eq, Clone)]
pub struct MessageRow {
    #[diesel(sql_type = Text)]
    pub sns_message_id: String,
    #[diesel(sql_type = Text)]
    pub message_type: String,
    #[diesel(sql_type = Text)]
    pub outcome: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub ses_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub raw_body: Option<String>,
}

#[derive(Debug, QueryableByName, PartialEq, Eq, Clone)]
pub struct SubscriptionRow {
    #[diesel(sql_type = Text)]
    pub topic_arn: String,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub subscribe_url: Option<String>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

pub use domain::token::Scope;

impl TestApp {
    /// The token service on this server's database (a connection of its own).
    async fn tokens(&self) -> domain::token::TokenService {
        let store = app::startup::connect_store(&self.settings, 1)
            .await
            .expect("the test server's store connects");
        domain::token::TokenService::new(
            std::sync::Arc::new(store),
            std::sync::Arc::new(domain::ports::SystemClock),
        )
    }

    /// Creates an API token named `name` with `scope` in the server's database; returns it.
    pub async fn token(&self, name: &str, scope: Scope) -> String {
        let (secret, _) = self
            .tokens()
            .await
            .create(name, scope)
            .await
            .expect("token created");
        secret.expose().to_owned()
    }

    /// Revokes the token named `name`.
    pub async fn revoke_token(&self, name: &str) {
        assert!(
            self.tokens()
                .await
                .revoke(name)
                .await
                .expect("token revoked"),
            "no active token named {name:?}"
        );
    }

    /// A request to `path` (under the server's address) carrying `token` as a bearer token.
    pub fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let request = self
            .client
            .request(method, format!("{}{path}", self.address));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// The webhook URL.
    #[must_use]
    pub fn webhook_url(&self) -> String {
        format!("{}/api/rpc/webhooks/aws/ses", self.address)
    }

    /// `GET` of `path` (`/healthz`, ...) on the main port.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent")
    }

    /// Posts `body` as SNS does (`text/plain`).
    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.webhook_url())
            .header("content-type", "text/plain; charset=UTF-8")
            .header("x-amz-sns-message-type", "Notification")
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    /// Posts a JSON envelope and returns the status and the JSON body.
    pub async fn post(&self, envelope: &Value) -> (u16, Value) {
        let response = self.post_raw(envelope.to_string()).await;
        let status = response.status().as_u16();
        let body = response.json().await.expect("JSON response body");
        (status, body)
    }

    /// A signed notification carrying `message`, with a fresh SNS message id.
    #[must_use]
    pub fn notification(&self, message: &str) -> Value {
        self.notification_with_id(&uuid::Uuid::new_v4().to_string(), message)
    }

    /// A signed notification with the given SNS message id.
    #[must_use]
    pub fn notification_with_id(&self, message_id: &str, message: &str) -> Value {
        self.signer
            .notification(TOPIC, message_id, message, None, SignatureVersion::V2)
    }

    /// Starts a second server with the same settings, sharing this one's database (as several
    /// instances behind a load balancer do); returns its webhook URL.
    pub async fn second_server(&self) -> String {
        let mut settings = self.settings.clone();
        settings.server.port = 0;
        let app = Application::build(&settings)
            .await
            .expect("second server builds");
        let port = app.port();
        tokio::spawn(app.run_until_stopped());
        format!("http://127.0.0.1:{port}/api/rpc/webhooks/aws/ses")
    }

    /// The PostgreSQL test database (panics for an SQLite server).
    #[must_use]
    pub fn db(&self) -> &TestDatabase {
        match &self.store {
            TestStore::Postgres(db) => db,
            _ => panic!("this test server does not store in a test database"),
        }
    }

    /// Runs `query` on the server's database, whichever backend it is.
    fn load<T>(&self, query: &str) -> Vec<T>
    where
        T: QueryableByName<diesel::pg::Pg> + QueryableByName<diesel::sqlite::Sqlite> + 'static,
    {
        let query = diesel::sql_query(query);
        match &self.store {
            TestStore::Sqlite(file) => query.load(&mut file.connect()).unwrap(),
            postgres => query
                .load(
                    &mut PgConnection::establish(postgres.url()).expect("test database reachable"),
                )
                .unwrap(),
        }
    }

    /// Every stored platform event, oldest first.
    #[must_use]
    pub fn events(&self) -> Vec<EventRow> {
        self.load(
            "SELECT event_type, recipient, bounce_type, ses_message_id, sns_message_id, event_key, \
             bounce_subtype, diagnostic_code, link FROM email_events ORDER BY id",
        )
    }

    /// Every archived SNS message, oldest first.
    #[must_use]
    pub fn messages(&self) -> Vec<MessageRow> {
        self.load(
            "SELECT sns_message_id, message_type, outcome, ses_type, raw_body FROM sns_messages ORDER BY id",
        )
    }

    /// Every subscription row.
    #[must_use]
    pub fn subscriptions(&self) -> Vec<SubscriptionRow> {
        self.load(
            "SELECT topic_arn, state, subscribe_url FROM sns_subscriptions ORDER BY topic_arn",
        )
    }

    /// The `/metrics` text of the server (on the separate port when there is one).
    pub async fn metrics(&self) -> String {
        let port = self.metrics_port.unwrap_or(self.port);
        self.client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .expect("metrics request sent")
            .text()
            .await
            .expect("metrics text")
    }

    /// Asserts that no message was archived and no event stored (after a refused request).
    pub fn assert_nothing_stored(&self) {
        assert_eq!(
            self.count("sns_messages"),
            0,
            "a refused message was archived"
        );
        assert_eq!(
            self.count("email_events"),
            0,
            "a refused message stored events"
        );
    }

    /// Runs a statement against the test database (to stage what a test needs).
    pub fn execute(&self, statement: &str) {
        let statement = diesel::sql_query(statement);
        match &self.store {
            TestStore::Sqlite(file) => statement.execute(&mut file.connect()),
            postgres => statement.execute(
                &mut PgConnection::establish(postgres.url()).expect("test database reachable"),
            ),
        }
        .unwrap();
    }

    /// Number of rows in `table` (one of ours).
    #[must_use]
    pub fn count(&self, table: &str) -> i64 {
        assert!(matches!(
            table,
            "email_events" | "sns_messages" | "sns_subscriptions"
        ));
        self.load::<Count>(&format!("SELECT COUNT(*) AS n FROM {table}"))[0].n
    }
}

/// Asserts an API error body of the conventions (`../shared/docs/api-conventions.md`): the
/// status, and exactly `success` (false), `error` (`code`) and a non-empty `message`; `what`
/// names the request in a failure.
pub fn assert_error(
    status: u16,
    body: &serde_json::Value,
    expected_status: u16,
    code: &str,
    what: &str,
) {
    assert_eq!(status, expected_status, "{what}: {body}");
    assert_eq!(body["success"], false, "{what}: {body}");
    assert_eq!(body["error"], code, "{what}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
    assert_eq!(
        body.as_object().map(serde_json::Map::len),
        Some(3),
        "{what}: {body}"
    );
}
