//! Typed settings, layered with the `config` crate:
//! built-in defaults, then `config/default.toml`, then `config/<SES_WEBHOOK_ENV>.toml`, then
//! environment variables `SES_WEBHOOK__<SECTION>__<KEY>` (lists comma-separated).
//! Unknown keys and invalid values stop start-up with a message naming the key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use adapters_store::{PoolOption, PoolOptions, SetupError};
use serde::{Deserialize, Serialize};
use url::Url;

mod sinks;
mod sources;
mod sqs;

pub use sinks::{
    MAX_RETRIES, OutboxSettings, SINK_KEYS, SinkConfig, SinkKind, SinkSecret, SinkSettings,
    sink_key,
};
pub use sqs::{SQS_KEYS, SqsSettings, sqs_key};

/// Environment variable naming the extra configuration file (`config/<name>.toml`).
pub const ENVIRONMENT_VAR: &str = "SES_WEBHOOK_ENV";
/// Prefix of the environment variables that override settings.
pub const ENV_PREFIX: &str = "SES_WEBHOOK";
/// The store used when nothing is configured: an SQLite file under `./data/`, so the service runs
/// with no database server. Production, and several instances, use PostgreSQL.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/ses-webhook.db";
/// Keys read as comma-separated lists from the environment.
const LIST_KEYS: [&str; 3] = [
    "sns.allowed_topic_arns",
    "sns.dev_endpoints",
    "server.trusted_proxies",
];

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub sns: SnsSettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub retention: RetentionSettings,
    pub suppression: SuppressionSettings,
    pub reputation: ReputationSettings,
    pub outbox: OutboxSettings,
    /// `[[sinks]]`: where events and suppression-list changes are delivered; none by default.
    /// Set in configuration files only (not from environment variables).
    pub sinks: Vec<SinkSettings>,
    /// `[[sqs]]`: Amazon SQS queues read for SNS deliveries; none by default. Set in
    /// configuration files only (not from environment variables).
    pub sqs: Vec<SqsSettings>,
    /// The configuration files these settings were read from, in order (not a setting).
    #[serde(skip)]
    pub files_read: Vec<PathBuf>,
    /// The environment variables named by the sinks' `secret_env`, read at load time (not a
    /// setting).
    #[serde(skip)]
    pub sink_secrets: HashMap<String, SinkSecret>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Worker threads; 0 = one per core.
    pub workers: usize,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    pub shutdown_timeout_secs: u64,
    /// How long a client may take to send a request body (408 after that).
    pub body_read_timeout_secs: u64,
    /// IP addresses or CIDR ranges of the proxies (load balancers) in front of the server: only
    /// from these is `X-Forwarded-For` believed enough to be logged beside the peer address.
    /// Empty: the header is never logged (anyone can send it).
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` (a file, created with its directory; relative to the working directory)
    /// or `postgres://user:password@host:port/database` (`postgresql://` too).
    pub url: String,
    /// Pool size. SQLite uses at most [`adapters_store::SQLITE_MAX_CONNECTIONS`].
    pub max_connections: u32,
    /// How long a request waits for a database connection before answering 503.
    pub connect_timeout_secs: u64,
    /// Apply pending migrations when the server starts.
    pub migrate_on_start: bool,
    /// Threads writing notifications in batches (group commit); each holds a connection while
    /// busy. One on SQLite.
    pub writers: u32,
    /// Most notifications written in one transaction.
    pub write_batch: usize,
    /// Notifications that may wait for a writer before requests get 503.
    pub write_queue: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SnsSettings {
    /// Directory of pinned signing certificates (file name = last segment of `SigningCertURL`).
    pub cert_dir: Option<PathBuf>,
    /// Fetch signing certificates from Amazon SNS when they are not pinned.
    pub fetch_certificates: bool,
    /// Topic ARNs accepted; empty accepts any topic (a warning is logged at start-up).
    pub allowed_topic_arns: Vec<String>,
    /// Confirm subscriptions by visiting their `SubscribeURL`.
    pub auto_confirm: bool,
    /// Refuse messages older than this many seconds; 0 turns the check off.
    pub max_message_age_secs: u64,
    /// Extra base URLs (for example LocalStack) whose certificate and subscribe URLs are trusted.
    pub dev_endpoints: Vec<String>,
    /// Signing certificates kept in memory.
    pub cert_cache_capacity: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Serve `GET /metrics` in the Prometheus text format.
    pub enabled: bool,
    /// `host:port` of a separate listener for `/metrics`; empty serves it on the main port.
    pub bind: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Raw SNS bodies older than this many days are removed from `sns_messages` (the row and
    /// the platform events stay); 0 keeps them forever.
    pub raw_messages_days: u32,
    /// Events (rows of `email_events`) whose event time is older than this many days are
    /// deleted; 0 keeps them forever. Suppression entries stay.
    pub events_days: u32,
    /// Archived SNS messages (rows of `sns_messages`) received more than this many days ago
    /// are deleted; 0 keeps them forever. Events and suppression entries stay.
    pub messages_days: u32,
    /// How often the purge runs.
    pub purge_interval_secs: u64,
    /// Rows updated per purge statement, so the purge never holds long locks.
    pub purge_batch_size: usize,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            raw_messages_days: 0,
            events_days: 0,
            messages_days: 0,
            purge_interval_secs: 3600,
            purge_batch_size: 1000,
        }
    }
}

/// `[reputation]`: how bounce and complaint rates are judged (`docs/reputation.md`). The
/// thresholds default to those AWS publishes (Amazon SES developer guide, "Sending review process
/// FAQs"): an account is reviewed at a 5% bounce or 0.1% complaint rate and may be paused at
/// 10% or 0.5%.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReputationSettings {
    /// The window of `GET /api/v1/reputation`, the gauges and the status page, in UTC days
    /// (today included), 1 to 90.
    pub window_days: u32,
    /// Fewer recipients than this in the denominator: status `insufficient_volume`.
    pub min_volume: u64,
    /// The warning level, as a fraction of the review threshold (0 < x < 1).
    pub warning_fraction: f64,
    /// Bounce rate (a fraction) at which AWS reviews the account.
    pub bounce_review: f64,
    /// Bounce rate at which AWS may pause sending.
    pub bounce_pause: f64,
    /// Complaint rate at which AWS reviews the account.
    pub complaint_review: f64,
    /// Complaint rate at which AWS may pause sending.
    pub complaint_pause: f64,
    /// How often the reputation gauges are read from the database, in seconds.
    pub refresh_secs: u64,
}

impl Default for ReputationSettings {
    fn default() -> Self {
        let policy = domain::reputation::ReputationPolicy::default();
        Self {
            window_days: policy.default_window_days,
            min_volume: policy.min_volume,
            warning_fraction: policy.warning_fraction,
            bounce_review: policy.bounce.review,
            bounce_pause: policy.bounce.pause,
            complaint_review: policy.complaint.review,
            complaint_pause: policy.complaint.pause,
            refresh_secs: 60,
        }
    }
}

impl ReputationSettings {
    /// The domain's policy.
    #[must_use]
    pub fn policy(&self) -> domain::reputation::ReputationPolicy {
        use domain::reputation::{ReputationPolicy, Thresholds};
        ReputationPolicy {
            bounce: Thresholds {
                review: self.bounce_review,
                pause: self.bounce_pause,
            },
            complaint: Thresholds {
                review: self.complaint_review,
                pause: self.complaint_pause,
            },
            warning_fraction: self.warning_fraction,
            min_volume: self.min_volume,
            default_window_days: self.window_days,
        }
    }
}

/// `[suppression]`: the policy that puts bounced and complaining recipients on the suppression
/// list (`docs/suppressions.md`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SuppressionSettings {
    /// Whether newly stored events change the list (the API works either way).
    pub enabled: bool,
    /// Soft bounces from distinct SES messages that suppress an address.
    pub soft_bounce_limit: u32,
    /// How close together, in days, those soft bounces must be.
    pub soft_bounce_window_days: u32,
    /// How long, in days after the newest soft bounce, a soft-bounce entry lasts.
    pub soft_bounce_suppression_days: u32,
}

impl Default for SuppressionSettings {
    fn default() -> Self {
        let policy = domain::suppression::SuppressionPolicy::default();
        Self {
            enabled: policy.enabled,
            soft_bounce_limit: policy.soft_bounce_limit,
            soft_bounce_window_days: u32::try_from(policy.soft_bounce_window.num_days())
                .unwrap_or(7),
            soft_bounce_suppression_days: u32::try_from(policy.soft_bounce_suppression.num_days())
                .unwrap_or(30),
        }
    }
}

impl SuppressionSettings {
    /// The domain's policy with these settings.
    #[must_use]
    pub fn policy(&self) -> domain::suppression::SuppressionPolicy {
        domain::suppression::SuppressionPolicy {
            enabled: self.enabled,
            soft_bounce_limit: self.soft_bounce_limit,
            soft_bounce_window: chrono::TimeDelta::days(i64::from(self.soft_bounce_window_days)),
            soft_bounce_suppression: chrono::TimeDelta::days(i64::from(
                self.soft_bounce_suppression_days,
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A level (`info`) or comma-separated `target=level` directives, overridden by `RUST_LOG`;
    /// see [`crate::telemetry::check_filter`].
    pub level: String,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 8080,
            max_body_bytes: adapters_http::DEFAULT_MAX_BODY_BYTES,
            workers: 0,
            shutdown_timeout_secs: 30,
            body_read_timeout_secs: adapters_http::DEFAULT_BODY_READ_TIMEOUT.as_secs(),
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: DEFAULT_DATABASE_URL.into(),
            max_connections: 16,
            connect_timeout_secs: 5,
            migrate_on_start: true,
            writers: 1,
            write_batch: 32,
            write_queue: 1024,
        }
    }
}

impl Default for SnsSettings {
    fn default() -> Self {
        Self {
            cert_dir: None,
            fetch_certificates: true,
            allowed_topic_arns: Vec::new(),
            auto_confirm: true,
            max_message_age_secs: 0,
            dev_endpoints: Vec::new(),
            cert_cache_capacity: 256,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// A setting that could not be loaded or is invalid, in words for the operator: each says
/// which key (or file, or variable) and what is accepted.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A configuration file that cannot be found or read.
    #[error("{0}")]
    Load(String),
    /// A key that is no setting.
    #[error("unknown setting `{key}` {origin}; {known}")]
    Unknown {
        key: String,
        /// `in FILE` or `from the environment variable NAME`.
        origin: String,
        /// The keys that exist there.
        known: String,
    },
    /// A value of the wrong kind.
    #[error("invalid setting `{key}` {origin}: {reason}")]
    Value {
        key: String,
        /// `in FILE` or `from the environment variable NAME`.
        origin: String,
        reason: String,
    },
    /// A value out of range or inconsistent with another.
    #[error("invalid setting `{key}`: {reason}")]
    Invalid {
        key: std::borrow::Cow<'static, str>,
        reason: String,
    },
}

impl Settings {
    /// Loads settings from `config_dir` and the process environment.
    ///
    /// # Errors
    /// [`SettingsError`] naming the offending key.
    pub fn load(config_dir: &Path) -> Result<Self, SettingsError> {
        Self::load_from(config_dir, None)
    }

    /// Loads settings from `config_dir` and `env` (the process environment when `None`).
    ///
    /// # Errors
    /// [`SettingsError`] naming the offending key.
    pub fn load_from(
        config_dir: &Path,
        env: Option<HashMap<String, String>>,
    ) -> Result<Self, SettingsError> {
        let env = env.unwrap_or_else(|| std::env::vars().collect());
        sources::check_variable_names(env.keys())?;
        let secrets_of = |settings: &Settings| -> HashMap<String, SinkSecret> {
            settings
                .sinks
                .iter()
                .filter_map(|sink| sink.secret_env.as_ref())
                .filter_map(|name| {
                    env.get(name)
                        .map(|value| (name.clone(), SinkSecret::from_env(value)))
                })
                .collect()
        };
        let files = sources::files(config_dir, env.get(ENVIRONMENT_VAR).map(String::as_str))?;
        let variables: HashMap<String, String> = env
            .iter()
            .filter(|(name, _)| name.starts_with(&format!("{ENV_PREFIX}__")))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let names: Vec<String> = variables.keys().cloned().collect();
        let mut settings = sources::read(&files, variables)?;
        settings.files_read.clone_from(&files);
        settings.sink_secrets = secrets_of(&settings);
        settings.validated().map_err(|error| match error {
            SettingsError::Invalid { key, reason } => SettingsError::Value {
                origin: sources::origin_of(&key, &files, &names),
                key: key.into_owned(),
                reason,
            },
            other => other,
        })
    }

    fn validated(mut self) -> Result<Self, SettingsError> {
        let invalid = |key: &'static str, reason: String| SettingsError::Invalid {
            key: key.into(),
            reason,
        };
        // `SES_WEBHOOK__SNS__CERT_DIR=` (empty) means unset.
        if self
            .sns
            .cert_dir
            .as_ref()
            .is_some_and(|dir| dir.as_os_str().is_empty())
        {
            self.sns.cert_dir = None;
        }

        if self.server.host.trim().is_empty() {
            return Err(invalid("server.host", "must not be empty".into()));
        }
        if self.server.max_body_bytes < 16 * 1024 {
            return Err(invalid(
                "server.max_body_bytes",
                "must be at least 16384: SNS messages carry up to 256 KiB".into(),
            ));
        }
        adapters_store::Database::parse(&self.database.url)
            .map_err(|e| invalid("database.url", e.to_string()))?;
        // The store validates its own options; only the names of the settings are ours.
        self.pool_options(self.database.max_connections)
            .validate()
            .map_err(|error| match error {
                SetupError::InvalidOption { option, reason } => {
                    invalid(database_key(option), reason)
                }
                other => invalid("database", other.to_string()),
            })?;
        self.sns.allowed_topic_arns.retain(|t| !t.trim().is_empty());
        for arn in &mut self.sns.allowed_topic_arns {
            *arn = arn.trim().to_owned();
            let parts: Vec<&str> = arn.split(':').collect();
            if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sns" {
                return Err(invalid(
                    "sns.allowed_topic_arns",
                    format!(
                        "`{arn}` is not an SNS topic ARN (arn:<partition>:sns:<region>:<account>:<topic>)"
                    ),
                ));
            }
        }
        self.sns.dev_endpoints.retain(|t| !t.trim().is_empty());
        self.dev_endpoint_urls()?;
        if !self.sns.fetch_certificates && self.sns.cert_dir.is_none() {
            return Err(invalid(
                "sns.fetch_certificates",
                "is false but sns.cert_dir is not set: no certificate could ever be found".into(),
            ));
        }
        if self.server.body_read_timeout_secs == 0 {
            return Err(invalid(
                "server.body_read_timeout_secs",
                "must be at least 1".into(),
            ));
        }
        let bind = self.metrics.bind.trim();
        let port_ok = bind
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !bind.is_empty() && !port_ok {
            return Err(invalid(
                "metrics.bind",
                format!("`{bind}` is not host:port (for example 127.0.0.1:9090)"),
            ));
        }
        if self.retention.purge_interval_secs == 0 {
            return Err(invalid(
                "retention.purge_interval_secs",
                "must be at least 1".into(),
            ));
        }
        for (key, days) in [
            (
                "retention.raw_messages_days",
                self.retention.raw_messages_days,
            ),
            ("retention.events_days", self.retention.events_days),
            ("retention.messages_days", self.retention.messages_days),
        ] {
            if days > 36_500 {
                return Err(invalid(key, "must be 0 (forever) to 36500 days".into()));
            }
        }
        if !(1..=10_000).contains(&self.retention.purge_batch_size) {
            return Err(invalid(
                "retention.purge_batch_size",
                "must be 1 to 10000 (rows per purge transaction)".into(),
            ));
        }
        for (key, value, max) in [
            (
                "suppression.soft_bounce_limit",
                self.suppression.soft_bounce_limit,
                1000,
            ),
            (
                "suppression.soft_bounce_window_days",
                self.suppression.soft_bounce_window_days,
                3650,
            ),
            (
                "suppression.soft_bounce_suppression_days",
                self.suppression.soft_bounce_suppression_days,
                3650,
            ),
        ] {
            if !(1..=max).contains(&value) {
                return Err(invalid(key, format!("must be from 1 to {max}")));
            }
        }
        self.validate_reputation()?;
        self.outbox.validate()?;
        sinks::resolve_all(&self.sinks, &self.sink_secrets, false)?;
        sqs::resolve_all(&self.sqs)?;
        if let Some(dir) = &self.sns.cert_dir
            && !dir.is_dir()
        {
            return Err(invalid(
                "sns.cert_dir",
                format!(
                    "{} is not a directory (give the directory of the pinned certificates, or \
                     unset it)",
                    shown(dir)
                ),
            ));
        }
        self.server.trusted_proxies.retain(|p| !p.trim().is_empty());
        self.trusted_proxy_addresses()?;
        crate::telemetry::check_filter(&self.log.level)
            .map_err(|reason| invalid("log.level", reason))?;
        if self.sns.cert_cache_capacity == 0 {
            return Err(invalid(
                "sns.cert_cache_capacity",
                "must be at least 1".into(),
            ));
        }
        Ok(self)
    }

    /// The `[[sinks]]`, checked, in the order of the configuration, for the server: each
    /// webhook's secret (or the variable `secret_env` names) and each NATS credentials file
    /// must be there. (Loading checks everything else, for every command.)
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming the first key that is wrong.
    pub fn sink_configs(&self) -> Result<Vec<SinkConfig>, SettingsError> {
        sinks::resolve_all(&self.sinks, &self.sink_secrets, true)
    }

    /// The `[[sqs]]` queues, checked, in the order of the configuration.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming the key (already checked when the settings loaded).
    pub fn queue_settings(&self) -> Result<Vec<adapters_sqs::QueueSettings>, SettingsError> {
        sqs::resolve_all(&self.sqs)
    }

    /// The names of the `[[sinks]]`, in the order of the configuration.
    #[must_use]
    pub fn sink_names(&self) -> Vec<String> {
        self.sinks.iter().map(|s| s.name.clone()).collect()
    }

    fn validate_reputation(&self) -> Result<(), SettingsError> {
        let invalid = |key: &'static str, reason: String| SettingsError::Invalid {
            key: key.into(),
            reason,
        };
        let r = &self.reputation;
        if !(1..=domain::reputation::MAX_WINDOW_DAYS).contains(&r.window_days) {
            return Err(invalid(
                "reputation.window_days",
                "must be from 1 to 90".into(),
            ));
        }
        if !(r.warning_fraction > 0.0 && r.warning_fraction < 1.0) {
            return Err(invalid(
                "reputation.warning_fraction",
                "must be a fraction of the review threshold, above 0 and below 1 (0.4 warns at 40%)"
                    .into(),
            ));
        }
        for (review_key, review, pause_key, pause) in [
            (
                "reputation.bounce_review",
                r.bounce_review,
                "reputation.bounce_pause",
                r.bounce_pause,
            ),
            (
                "reputation.complaint_review",
                r.complaint_review,
                "reputation.complaint_pause",
                r.complaint_pause,
            ),
        ] {
            if !(review > 0.0 && review < 1.0) {
                return Err(invalid(
                    review_key,
                    "must be a fraction above 0 and below 1 (0.05 is 5%)".into(),
                ));
            }
            if !(pause > review && pause <= 1.0) {
                return Err(invalid(
                    pause_key,
                    format!("must be a fraction above {review_key} and at most 1"),
                ));
            }
        }
        if r.refresh_secs == 0 {
            return Err(invalid(
                "reputation.refresh_secs",
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// `sns.dev_endpoints`, parsed.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] for an entry that is not an absolute http(s) URL.
    pub fn dev_endpoint_urls(&self) -> Result<Vec<Url>, SettingsError> {
        self.sns
            .dev_endpoints
            .iter()
            .map(|raw| {
                let url = Url::parse(raw.trim()).map_err(|e| SettingsError::Invalid {
                    key: "sns.dev_endpoints".into(),
                    reason: format!("`{raw}` is not a URL: {e}"),
                })?;
                if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                    return Err(SettingsError::Invalid {
                        key: "sns.dev_endpoints".into(),
                        reason: format!("`{raw}` must be an http(s) base URL"),
                    });
                }
                Ok(url)
            })
            .collect()
    }

    /// `server.trusted_proxies`, parsed: addresses (`10.0.0.5`) or ranges (`10.0.0.0/16`).
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] for an entry that is neither.
    pub fn trusted_proxy_addresses(&self) -> Result<Vec<crate::telemetry::IpRange>, SettingsError> {
        self.server
            .trusted_proxies
            .iter()
            .map(|raw| {
                crate::telemetry::IpRange::parse(raw).ok_or_else(|| SettingsError::Invalid {
                    key: "server.trusted_proxies".into(),
                    reason: format!(
                        "`{raw}` is not an IP address or range (for example 10.0.0.5, \
                         10.0.0.0/16 or fd00::/8)"
                    ),
                })
            })
            .collect()
    }

    /// The store's pool and writer options these settings ask for, with a pool of at most
    /// `max_size` connections (`database.max_connections` for the server; commands use fewer).
    /// The one place where settings become [`PoolOptions`]; [`PoolOptions::validate`] checks
    /// them when the settings load.
    #[must_use]
    pub fn pool_options(&self, max_size: u32) -> PoolOptions {
        PoolOptions {
            max_size,
            min_idle: Some(1),
            connection_timeout: Duration::from_secs(self.database.connect_timeout_secs),
            writers: self.database.writers,
            write_batch: self.database.write_batch,
            write_queue: self.database.write_queue,
            ..PoolOptions::default()
        }
    }

    /// `sns.max_message_age_secs` as a duration, `None` when off.
    #[must_use]
    pub fn max_message_age(&self) -> Option<Duration> {
        (self.sns.max_message_age_secs > 0)
            .then(|| Duration::from_secs(self.sns.max_message_age_secs))
    }
}

/// A path as messages and logs show it: absolute (relative paths are relative to the working
/// directory), so an operator sees which file or directory was meant.
#[must_use]
pub fn shown(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// The setting behind a pool option. `min_idle` and the PostgreSQL timeouts are not settings
/// (their values from [`Settings::pool_options`] are always valid).
fn database_key(option: PoolOption) -> &'static str {
    match option {
        PoolOption::MaxSize | PoolOption::MinIdle => "database.max_connections",
        PoolOption::ConnectionTimeout => "database.connect_timeout_secs",
        PoolOption::Writers => "database.writers",
        PoolOption::WriteBatch => "database.write_batch",
        PoolOption::WriteQueue => "database.write_queue",
        PoolOption::StatementTimeout | PoolOption::LockTimeout => "database",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn problems_are_said_once_in_plain_words_naming_where_the_value_came_from() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("default.toml"),
            "[server]\ncolour = \"blue\"\n",
        )
        .unwrap();
        let unknown = Settings::load_from(dir.path(), env(&[]))
            .unwrap_err()
            .to_string();
        std::fs::write(
            dir.path().join("default.toml"),
            "[server]\nport = \"abc\"\n",
        )
        .unwrap();
        let wrong_kind = Settings::load_from(dir.path(), env(&[]))
            .unwrap_err()
            .to_string();
        std::fs::remove_file(dir.path().join("default.toml")).unwrap();
        let cases = [
            (
                unknown,
                vec![
                    "`server.colour`",
                    "default.toml",
                    "the keys of [server] are",
                ],
            ),
            (
                wrong_kind,
                vec!["`server.port`", "default.toml", "a whole number", "\"abc\""],
            ),
            (
                Settings::load_from(dir.path(), env(&[("SES_WEBHOOK__LOG__FORMAT", "xml")]))
                    .unwrap_err()
                    .to_string(),
                vec![
                    "`log.format`",
                    "SES_WEBHOOK__LOG__FORMAT",
                    "`text` or `json`",
                    "`xml`",
                ],
            ),
            (
                Settings::load_from(dir.path(), env(&[("SES_WEBHOOK__SERVER__PORT", "-1")]))
                    .unwrap_err()
                    .to_string(),
                vec!["SES_WEBHOOK__SERVER__PORT", "from 0 to 65535", "`-1`"],
            ),
            (
                Settings::load_from(dir.path(), env(&[("SES_WEBHOOK_ENV", "prodution")]))
                    .unwrap_err()
                    .to_string(),
                vec![
                    "SES_WEBHOOK_ENV=prodution",
                    "prodution.toml",
                    "does not exist",
                ],
            ),
        ];
        for (message, wanted) in cases {
            for word in wanted {
                assert!(message.contains(word), "`{word}` missing from: {message}");
            }
            for jargon in ["variant constructor", "64 bit", "64-bit", "invalid type"] {
                assert!(!message.contains(jargon), "jargon in: {message}");
            }
            let first_words: String = message.chars().take(30).collect();
            assert_eq!(
                message.matches(&first_words).count(),
                1,
                "said twice: {message}"
            );
        }
    }

    #[test]
    fn a_value_out_of_range_names_the_file_or_variable_it_came_from() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("default.toml"),
            "[log]\nlevel = \"warning\"\n",
        )
        .unwrap();

        let from_file = Settings::load_from(dir.path(), env(&[]))
            .unwrap_err()
            .to_string();
        let from_variable = Settings::load_from(
            dir.path(),
            env(&[("SES_WEBHOOK__DATABASE__WRITE_BATCH", "0")]),
        )
        .unwrap_err()
        .to_string();

        assert!(from_file.contains("`log.level` in "), "{from_file}");
        assert!(from_file.contains("default.toml"), "{from_file}");
        assert!(
            from_variable
                .contains("from the environment variable SES_WEBHOOK__DATABASE__WRITE_BATCH"),
            "{from_variable}"
        );
    }

    #[test]
    fn a_variable_one_underscore_short_is_refused_not_ignored() {
        let dir = tempfile::tempdir().unwrap();

        let error = Settings::load_from(
            dir.path(),
            env(&[("SES_WEBHOOK_DATABASE__URL", "postgres://db/ses")]),
        )
        .unwrap_err()
        .to_string();

        assert!(error.contains("SES_WEBHOOK_DATABASE__URL"), "{error}");
        assert!(error.contains("SES_WEBHOOK__DATABASE__URL"), "{error}");
    }

    #[test]
    fn a_certificate_directory_that_does_not_exist_stops_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir");

        let error = Settings::load_from(
            dir.path(),
            env(&[("SES_WEBHOOK__SNS__CERT_DIR", missing.to_str().unwrap())]),
        )
        .unwrap_err()
        .to_string();

        assert!(error.contains("sns.cert_dir"), "{error}");
        assert!(error.contains("no-such-dir"), "{error}");
    }

    #[test]
    fn no_configuration_at_all_gives_safe_defaults() {
        let dir = tempfile::tempdir().unwrap();

        let settings = Settings::load_from(dir.path(), env(&[])).unwrap();

        assert_eq!(settings, Settings::default());
        assert_eq!(settings.server.port, 8080);
        assert_eq!(settings.database.url, "sqlite://data/ses-webhook.db");
        assert_eq!(
            adapters_store::Database::parse(&settings.database.url)
                .unwrap()
                .backend(),
            adapters_store::Backend::Sqlite
        );
        assert!(settings.sns.fetch_certificates);
        assert!(settings.sns.auto_confirm);
        assert!(settings.sns.allowed_topic_arns.is_empty());
        assert!(settings.sns.dev_endpoints.is_empty());
        assert_eq!(settings.max_message_age(), None);
    }

    #[test]
    fn the_repository_default_file_matches_the_built_in_defaults() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");

        let mut settings = Settings::load_from(&dir, env(&[])).unwrap();

        assert_eq!(settings.files_read, [dir.join("default.toml")]);
        settings.files_read.clear();
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn files_then_environment_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("default.toml"),
            "[server]\nport = 9000\nhost = \"127.0.0.1\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("staging.toml"), "[server]\nport = 9100\n").unwrap();

        let settings = Settings::load_from(
            dir.path(),
            env(&[
                ("SES_WEBHOOK_ENV", "staging"),
                (
                    "SES_WEBHOOK__SNS__ALLOWED_TOPIC_ARNS",
                    "arn:aws:sns:us-east-1:123456789012:a, arn:aws:sns:eu-west-1:123456789012:b",
                ),
                ("SES_WEBHOOK__SNS__AUTO_CONFIRM", "false"),
                ("SES_WEBHOOK__SNS__MAX_MESSAGE_AGE_SECS", "3600"),
                ("SES_WEBHOOK__SNS__DEV_ENDPOINTS", "http://localhost:4566"),
            ]),
        )
        .unwrap();

        assert_eq!(settings.server.port, 9100);
        assert_eq!(settings.server.host, "127.0.0.1");
        assert_eq!(
            settings.sns.allowed_topic_arns,
            vec![
                "arn:aws:sns:us-east-1:123456789012:a".to_owned(),
                "arn:aws:sns:eu-west-1:123456789012:b".to_owned()
            ]
        );
        assert!(!settings.sns.auto_confirm);
        assert_eq!(
            settings.max_message_age(),
            Some(std::time::Duration::from_secs(3600))
        );
        assert_eq!(
            settings.dev_endpoint_urls().unwrap()[0].as_str(),
            "http://localhost:4566/"
        );
    }

    #[test]
    fn a_single_topic_from_the_environment_is_a_list_of_one() {
        let dir = tempfile::tempdir().unwrap();

        let settings = Settings::load_from(
            dir.path(),
            env(&[(
                "SES_WEBHOOK__SNS__ALLOWED_TOPIC_ARNS",
                "arn:aws:sns:us-east-1:123456789012:a",
            )]),
        )
        .unwrap();

        assert_eq!(settings.sns.allowed_topic_arns.len(), 1);
    }

    #[test]
    fn invalid_values_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &str, &str); 20] = [
            ("SES_WEBHOOK__SERVER__PORT", "eighty", "port"),
            ("SES_WEBHOOK__DATABASE__URL", "mysql://x/y", "database.url"),
            (
                "SES_WEBHOOK__SNS__ALLOWED_TOPIC_ARNS",
                "my-topic",
                "sns.allowed_topic_arns",
            ),
            (
                "SES_WEBHOOK__SNS__DEV_ENDPOINTS",
                "localhost",
                "sns.dev_endpoints",
            ),
            (
                "SES_WEBHOOK__SNS__FETCH_CERTIFICATES",
                "false",
                "sns.fetch_certificates",
            ),
            ("SES_WEBHOOK__SERVER__COLOUR", "blue", "colour"),
            ("SES_WEBHOOK__METRICS__BIND", "9090", "metrics.bind"),
            (
                "SES_WEBHOOK__RETENTION__PURGE_BATCH_SIZE",
                "0",
                "retention.purge_batch_size",
            ),
            (
                "SES_WEBHOOK__RETENTION__EVENTS_DAYS",
                "0.4",
                "retention.events_days",
            ),
            (
                "SES_WEBHOOK__RETENTION__MESSAGES_DAYS",
                "1.5",
                "retention.messages_days",
            ),
            (
                "SES_WEBHOOK__RETENTION__PURGE_BATCH_SIZE",
                "10001",
                "retention.purge_batch_size",
            ),
            (
                "SES_WEBHOOK__RETENTION__EVENTS_DAYS",
                "true",
                "retention.events_days",
            ),
            (
                "SES_WEBHOOK__RETENTION__EVENTS_DAYS",
                "nan",
                "retention.events_days",
            ),
            ("SES_WEBHOOK__DATABASE__WRITERS", "0", "database.writers"),
            (
                "SES_WEBHOOK__DATABASE__WRITE_BATCH",
                "257",
                "database.write_batch",
            ),
            (
                "SES_WEBHOOK__DATABASE__WRITE_QUEUE",
                "0",
                "database.write_queue",
            ),
            (
                "SES_WEBHOOK__DATABASE__MAX_CONNECTIONS",
                "0",
                "database.max_connections",
            ),
            (
                "SES_WEBHOOK__DATABASE__CONNECT_TIMEOUT_SECS",
                "0",
                "database.connect_timeout_secs",
            ),
            ("SES_WEBHOOK__LOG__LEVEL", "warning", "log.level"),
            ("SES_WEBHOOK__LOG__LEVEL", "verbose", "log.level"),
        ];
        for (key, value, named) in cases {
            let error = Settings::load_from(dir.path(), env(&[(key, value)])).unwrap_err();
            assert!(
                error.to_string().contains(named),
                "{key}={value}: `{error}` does not name `{named}`"
            );
        }
    }

    #[test]
    fn reputation_thresholds_are_fractions_and_the_window_whole_days() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::load_from(
            dir.path(),
            env(&[
                ("SES_WEBHOOK__REPUTATION__BOUNCE_REVIEW", "0.03"),
                ("SES_WEBHOOK__REPUTATION__WINDOW_DAYS", "14"),
            ]),
        )
        .unwrap();
        let policy = settings.reputation.policy();
        assert!((policy.bounce.review - 0.03).abs() < f64::EPSILON);
        assert_eq!(policy.default_window_days, 14);
        assert_eq!(policy.min_volume, 200);
        for (key, value, named) in [
            (
                "SES_WEBHOOK__REPUTATION__WINDOW_DAYS",
                "0",
                "reputation.window_days",
            ),
            (
                "SES_WEBHOOK__REPUTATION__WINDOW_DAYS",
                "91",
                "reputation.window_days",
            ),
            (
                "SES_WEBHOOK__REPUTATION__WINDOW_DAYS",
                "7.5",
                "reputation.window_days",
            ),
            (
                "SES_WEBHOOK__REPUTATION__BOUNCE_REVIEW",
                "5",
                "reputation.bounce_review",
            ),
            (
                "SES_WEBHOOK__REPUTATION__BOUNCE_PAUSE",
                "0.04",
                "reputation.bounce_pause",
            ),
            (
                "SES_WEBHOOK__REPUTATION__COMPLAINT_REVIEW",
                "0",
                "reputation.complaint_review",
            ),
            (
                "SES_WEBHOOK__REPUTATION__WARNING_FRACTION",
                "1",
                "reputation.warning_fraction",
            ),
            (
                "SES_WEBHOOK__REPUTATION__REFRESH_SECS",
                "0",
                "reputation.refresh_secs",
            ),
        ] {
            let error = Settings::load_from(dir.path(), env(&[(key, value)])).unwrap_err();
            assert!(
                error.to_string().contains(named),
                "{key}={value}: `{error}` does not name `{named}`"
            );
        }
    }

    #[test]
    fn database_url_accepts_both_backends_and_names_the_key_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        for good in [
            "postgres://postgres@127.0.0.1:5432/ses_webhook",
            "postgresql://user:secret@db.internal/ses",
            "sqlite://data/ses-webhook.db",
            "sqlite:///var/lib/ses-webhook/events.db",
        ] {
            let settings =
                Settings::load_from(dir.path(), env(&[("SES_WEBHOOK__DATABASE__URL", good)]))
                    .unwrap();
            assert_eq!(settings.database.url, good);
        }
        for bad in ["sqlite::memory:", "sqlite://", "data/x.db", "mysql://x/y"] {
            let error =
                Settings::load_from(dir.path(), env(&[("SES_WEBHOOK__DATABASE__URL", bad)]))
                    .unwrap_err()
                    .to_string();
            assert!(error.contains("database.url"), "{bad}: {error}");
            assert!(
                error.contains("sqlite://"),
                "{bad}: the message says what works: {error}"
            );
        }
    }

    #[test]
    fn a_missing_environment_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();

        let result = Settings::load_from(dir.path(), env(&[("SES_WEBHOOK_ENV", "production")]));

        assert!(result.is_err());
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn with_file(toml: &str, vars: &[(&str, &str)]) -> Result<Settings, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.toml"), toml).unwrap();
        Settings::load_from(dir.path(), env(vars)).map_err(|e| e.to_string())
    }

    #[test]
    fn sinks_load_with_their_defaults_and_never_show_the_secret() {
        let toml = r#"
[outbox]
keep_delivered_hours = 48

[[sinks]]
name = "crm"
type = "webhook"
url = "https://hooks.example.com/ses?token=hidden-token"
secret_env = "CRM_SECRET"
event_types = ["email_bounce", "suppression.added"]

[[sinks]]
name = "stream"
type = "nats"
url = "nats://127.0.0.1:4222"
stream = "SES"
retry_schedule_secs = [1, 2]
"#;
        let settings = with_file(toml, &[("CRM_SECRET", SECRET)]).unwrap();
        assert_eq!(settings.outbox.keep_delivered_hours, 48);
        let sinks = settings.sink_configs().unwrap();
        assert_eq!(sinks.len(), 2);
        let (crm, stream) = (&sinks[0], &sinks[1]);
        assert_eq!(crm.name(), "crm");
        assert_eq!(
            crm.filter.entry_types,
            Some(vec![
                "email_bounce".to_owned(),
                "suppression.added".to_owned()
            ])
        );
        assert_eq!(crm.schedule, domain::delivery::RetrySchedule::default());
        assert_eq!((crm.timeout.as_secs(), crm.concurrency), (10, 16));
        match &crm.kind {
            SinkKind::Webhook(w) => {
                assert_eq!(w.secret, SECRET);
                assert!(!w.allow_http);
            }
            SinkKind::Nats(_) => panic!("crm is a webhook"),
        }
        assert_eq!(stream.filter.entry_types, None);
        assert_eq!(stream.schedule.attempts(), 3);
        assert_eq!((stream.timeout.as_secs(), stream.concurrency), (5, 128));
        match &stream.kind {
            SinkKind::Nats(n) => {
                assert_eq!(n.stream, "SES");
                assert_eq!(n.subject, "ses.events.{eventType}");
                assert!(n.create_stream);
            }
            SinkKind::Webhook(_) => panic!("stream is NATS"),
        }
        // Neither the secret nor the URL's query is shown.
        let shown = format!("{settings:?} {sinks:?}");
        assert!(!shown.contains("MfKQ9r8G"), "{shown}");
        assert!(!shown.contains("hidden-token"), "{shown}");
        assert!(shown.contains("hooks.example.com"));
        // A claim outlives a pass: 200 entries in waves of 16, 10 s each, and a margin.
        assert_eq!(settings.outbox.lease(crm).num_seconds(), (13 + 1) * 10 + 10);
        assert_eq!(
            settings.outbox.lease(stream).num_seconds(),
            (2 * 2 + 3) * 5 + 10
        );
    }

    #[test]
    fn each_sink_problem_names_its_key() {
        let webhook = |extra: &str| {
            format!(
                "[[sinks]]\nname = \"crm\"\ntype = \"webhook\"\nurl = \"https://h.example.com/\"\n{extra}\n"
            )
        };
        let secret = format!("secret = \"{SECRET}\"");
        type Case<'a> = (String, Vec<(&'a str, &'a str)>, Vec<&'a str>);
        let cases: Vec<Case<'_>> = vec![
            (
                "[[sinks]]\ntype = \"webhook\"\n".into(),
                vec![],
                vec!["`sinks[0].name`", "letters, digits"],
            ),
            (
                webhook(&format!("{secret}\nstream = \"S\"")),
                vec![],
                vec!["`sinks.crm.stream`", "not a setting of a webhook sink"],
            ),
            (
                webhook(&format!("{secret}\ncolour = \"blue\"")),
                vec![],
                vec!["`sinks.crm.colour`", "default.toml", "the keys of [[sinks]]"],
            ),
            (
                webhook(""),
                vec![],
                vec!["`sinks.crm.secret`", "is required"],
            ),
            (
                webhook("secret = \"not-a-secret\""),
                vec![],
                vec!["`sinks.crm.secret`", "whsec_"],
            ),
            (
                webhook(&format!("{secret}\nretry_schedule_secs = [5, 0]")),
                vec![],
                vec!["`sinks.crm.retry_schedule_secs`", "at least 1"],
            ),
            (
                webhook(&format!("{secret}\nevent_types = [\"email_bonce\"]")),
                vec![],
                vec!["`sinks.crm.event_types`", "email_bonce", "email_bounce"],
            ),
            (
                webhook(&format!("{secret}\nevent_types = []")),
                vec![],
                vec!["`sinks.crm.event_types`", "leave the key out"],
            ),
            (
                webhook(&format!("{secret}\nretry_schedule_secs = [1, 40000000]")),
                vec![],
                vec!["`sinks.crm.retry_schedule_secs`", "40000000"],
            ),
            (
                "[[sinks]]\nname = \"crm\"\ntype = \"webhook\"\nurl = \"http://h.example.com/\"\nsecret_env = \"S\"\n".into(),
                vec![("S", SECRET)],
                vec!["`sinks.crm.url`", "allow_http"],
            ),
            (
                format!("{}{}", webhook(&secret), webhook(&secret)),
                vec![],
                vec!["`sinks[1].name`", "unique"],
            ),
            (
                "[[sinks]]\nname = \"q\"\ntype = \"kafka\"\n".into(),
                vec![],
                vec!["`sinks.q.type`", "`webhook` or `nats`", "kafka"],
            ),
            (
                "[[sinks]]\nname = \"q\"\ntype = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\n".into(),
                vec![],
                vec!["`sinks.q.stream`", "required"],
            ),
            (
                "[[sinks]]\nname = \"q\"\ntype = \"nats\"\nurl = \"https://x/\"\nstream = \"S\"\n".into(),
                vec![],
                vec!["`sinks.q.url`", "nats://"],
            ),
            (
                "[sinks]\nname = \"q\"\n".into(),
                vec![],
                vec!["`sinks`", "[[sinks]] tables"],
            ),
            (
                String::new(),
                vec![("SES_WEBHOOK__SINKS__URL", "https://x/")],
                vec!["SES_WEBHOOK__SINKS__URL", "configuration file only"],
            ),
            (
                "[outbox]\nkeep_delivered_hours = 0\n".into(),
                vec![],
                vec!["`outbox.keep_delivered_hours`", "default.toml", "from 1"],
            ),
        ];
        for (toml, vars, wanted) in cases {
            let message = with_file(&toml, &vars).expect_err(&toml);
            for word in wanted {
                assert!(message.contains(word), "`{word}` missing from: {message}");
            }
            assert!(!message.contains("MfKQ9r8G"), "the secret shown: {message}");
        }
    }

    #[test]
    fn queues_load_with_their_defaults() {
        let toml = r#"
[[sqs]]
queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/ses-events"

[[sqs]]
queue_url = "http://127.0.0.1:5000/123456789012/raw"
region = "us-east-1"
endpoint_url = "http://127.0.0.1:5000"
max_messages = 3
wait_secs = 1
visibility_timeout_secs = 60
concurrency = 4
raw = true
"#;
        let settings = with_file(toml, &[]).unwrap();
        let queues = settings.queue_settings().unwrap();
        assert_eq!(queues.len(), 2);
        let (plain, raw) = (&queues[0], &queues[1]);
        assert_eq!(
            (
                plain.max_messages,
                plain.wait_secs,
                plain.concurrency,
                plain.raw
            ),
            (10, 20, 1, false)
        );
        assert_eq!(plain.region, None);
        assert_eq!(plain.endpoint_url, None);
        assert_eq!(plain.visibility_timeout_secs, None);
        assert_eq!(raw.region.as_deref(), Some("us-east-1"));
        assert_eq!(raw.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(
            (raw.max_messages, raw.wait_secs, raw.concurrency, raw.raw),
            (3, 1, 4, true)
        );
        assert_eq!(raw.visibility_timeout_secs, Some(60));
        assert!(Settings::default().sqs.is_empty(), "no queue by default");
    }

    #[test]
    fn each_queue_problem_names_its_key() {
        let url = "queue_url = \"https://sqs.eu-west-1.amazonaws.com/1/q\"";
        let queue = |extra: &str| format!("[[sqs]]\n{url}\n{extra}\n");
        type Case<'a> = (String, Vec<(&'a str, &'a str)>, Vec<&'a str>);
        let cases: Vec<Case<'_>> = vec![
            (
                "[[sqs]]\nqueue_url = \"https://sqs.eu-west-1.amazonaws.com/q\"\n".into(),
                vec![],
                vec!["`sqs[0].queue_url`", "not an SQS queue URL"],
            ),
            (
                "[[sqs]]\nregion = \"eu-west-1\"\n".into(),
                vec![],
                vec!["queue_url"],
            ),
            (
                queue("max_messages = 11"),
                vec![],
                vec!["`sqs[0].max_messages`", "from 1 to 10", "11"],
            ),
            (
                queue("wait_secs = 0"),
                vec![],
                vec!["`sqs[0].wait_secs`", "from 1 to 20"],
            ),
            (
                queue("visibility_timeout_secs = 50000"),
                vec![],
                vec!["`sqs[0].visibility_timeout_secs`", "43200"],
            ),
            (
                queue("visibility_timeout_secs = 0"),
                vec![],
                vec!["`sqs[0].visibility_timeout_secs`", "from 1"],
            ),
            (
                queue("concurrency = 0"),
                vec![],
                vec!["`sqs[0].concurrency`", "from 1 to 64"],
            ),
            (
                queue("region = \"EU West\""),
                vec![],
                vec!["`sqs[0].region`", "not an AWS region"],
            ),
            (
                queue("endpoint_url = \"localhost:5000\""),
                vec![],
                vec!["`sqs[0].endpoint_url`", "http or https"],
            ),
            (
                queue("colour = \"blue\""),
                vec![],
                vec!["`sqs[0].colour`", "default.toml", "the keys of [[sqs]]"],
            ),
            (
                format!("{}{}", queue(""), queue("")),
                vec![],
                vec!["`sqs[1].queue_url`", "configured twice"],
            ),
            (
                "[sqs]\nqueue_url = \"x\"\n".into(),
                vec![],
                vec!["`sqs`", "[[sqs]] tables"],
            ),
            (
                String::new(),
                vec![("SES_WEBHOOK__SQS__QUEUE_URL", "https://x/1/q")],
                vec!["SES_WEBHOOK__SQS__QUEUE_URL", "configuration file only"],
            ),
        ];
        for (toml, vars, wanted) in cases {
            let message = with_file(&toml, &vars).expect_err(&toml);
            for word in wanted {
                assert!(message.contains(word), "`{word}` missing from: {message}");
            }
        }
    }

    #[test]
    fn a_missing_secret_stops_the_server_but_not_the_other_commands() {
        let toml = "[[sinks]]\nname = \"crm\"\ntype = \"webhook\"\nurl = \"https://h.example.com/\"\nsecret_env = \"NOPE\"\n\n[[sinks]]\nname = \"stream\"\ntype = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\nstream = \"S\"\ncredentials_file = \"/nonexistent/nats.creds\"\n";
        let settings = with_file(toml, &[]).unwrap();
        assert_eq!(settings.sink_names(), vec!["crm", "stream"]);
        let message = settings.sink_configs().unwrap_err().to_string();
        for word in ["`sinks.crm.secret_env`", "NOPE", "not set"] {
            assert!(message.contains(word), "`{word}` missing from: {message}");
        }
        let with_secret = with_file(toml, &[("NOPE", SECRET)]).unwrap();
        let message = with_secret.sink_configs().unwrap_err().to_string();
        assert!(
            message.contains("`sinks.stream.credentials_file`"),
            "{message}"
        );
    }
}
