//! `[[sinks]]` and `[outbox]`: where stored events and suppression-list changes are delivered
//! (`docs/delivery.md`), and how long delivered outbox entries are kept.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use domain::delivery::{ENTRY_TYPES, RetrySchedule, SinkFilter, is_sink_name};
use serde::{Deserialize, Serialize};
use url::Url;

use super::SettingsError;

/// The keys of a `[[sinks]]` table, in the order the documentation gives them.
pub const SINK_KEYS: [&str; 14] = [
    "name",
    "type",
    "event_types",
    "retry_schedule_secs",
    "url",
    "timeout_secs",
    "concurrency",
    "secret",
    "secret_env",
    "allow_http",
    "stream",
    "subject",
    "credentials_file",
    "create_stream",
];
/// The keys only a webhook sink takes.
const WEBHOOK_KEYS: [&str; 3] = ["secret", "secret_env", "allow_http"];
/// The keys only a NATS sink takes.
const NATS_KEYS: [&str; 4] = ["stream", "subject", "credentials_file", "create_stream"];

/// Most delays in a `retry_schedule_secs`.
pub const MAX_RETRIES: usize = 50;

/// A webhook signing secret (`whsec_` and base64): never shown by `Debug` nor serialized.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SinkSecret(String);

impl SinkSecret {
    /// A secret read from an environment variable (surrounding blanks dropped).
    #[must_use]
    pub fn from_env(value: &str) -> Self {
        Self(value.trim().to_owned())
    }

    /// The secret itself, for the signer only.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SinkSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One `[[sinks]]` table as written. Keys left out are `None` (their defaults depend on the
/// type); [`SinkSettings::resolved`] checks the table and gives the sink's typed settings.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct SinkSettings {
    /// Unique; used in metrics, the API and the command line: 1 to 64 ASCII letters, digits,
    /// `_` or `-`.
    pub name: String,
    /// `webhook` or `nats`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The entry types delivered (`email_delivered`, `email_bounce`, `email_spam_report`,
    /// `email_open`, `email_click`, `suppression.added`, `suppression.removed`); left out:
    /// all of them.
    pub event_types: Option<Vec<String>>,
    /// The delays between attempts, in seconds; default
    /// [`RetrySchedule::DEFAULT_SECS`]. After the last, an entry is dead.
    pub retry_schedule_secs: Option<Vec<u64>>,
    /// Webhook: the `https` URL entries are posted to. NATS: `nats://host:port` or
    /// `tls://host:port`.
    pub url: String,
    /// How long one request (webhook, default 10) or one acknowledgement (NATS, default 5)
    /// may take, in seconds.
    pub timeout_secs: Option<u64>,
    /// Deliveries in flight at once (webhook default 16, NATS default 128).
    pub concurrency: Option<usize>,
    /// Webhook: the Standard Webhooks signing secret, `whsec_` and base64 (at least 16 bytes).
    #[serde(skip_serializing)]
    pub secret: Option<SinkSecret>,
    /// Webhook: the environment variable that holds the secret, in place of `secret`.
    pub secret_env: Option<String>,
    /// Webhook: accept an `http` URL (tests, private networks). Default `false`.
    pub allow_http: Option<bool>,
    /// NATS: the JetStream stream.
    pub stream: Option<String>,
    /// NATS: the subject template, default `ses.events.{eventType}`.
    pub subject: Option<String>,
    /// NATS: a credentials file (`.creds`).
    pub credentials_file: Option<PathBuf>,
    /// NATS: create the stream when it is missing. Default `true`.
    pub create_stream: Option<bool>,
}

impl std::fmt::Debug for SinkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkSettings")
            .field("name", &self.name)
            .field("type", &self.kind)
            .field("event_types", &self.event_types)
            .field("retry_schedule_secs", &self.retry_schedule_secs)
            .field(
                "url",
                &Url::parse(&self.url).map_or_else(
                    |_| "<not a URL>".to_owned(),
                    |u| adapters_sinks::shown_url(&u),
                ),
            )
            .field("timeout_secs", &self.timeout_secs)
            .field("concurrency", &self.concurrency)
            .field("secret", &self.secret)
            .field("secret_env", &self.secret_env)
            .field("allow_http", &self.allow_http)
            .field("stream", &self.stream)
            .field("subject", &self.subject)
            .field("credentials_file", &self.credentials_file)
            .field("create_stream", &self.create_stream)
            .finish()
    }
}

/// A sink's settings, checked: what the relay and the sink's adapter are built from.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub filter: SinkFilter,
    pub schedule: RetrySchedule,
    /// How long one delivery may take.
    pub timeout: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    pub kind: SinkKind,
}

/// What a sink is.
#[derive(Debug, Clone)]
pub enum SinkKind {
    Webhook(adapters_sinks::WebhookSettings),
    Nats(adapters_sinks::NatsSettings),
}

impl SinkConfig {
    /// The sink's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.filter.name
    }
}

/// The key of a sink's setting in messages: `sinks.<name>.<field>` when the sink has a valid
/// name, else `sinks[<index>].<field>` (0-based, in the order of the file).
#[must_use]
pub fn sink_key(index: usize, name: &str, field: &str) -> String {
    if is_sink_name(name) {
        format!("sinks.{name}.{field}")
    } else {
        format!("sinks[{index}].{field}")
    }
}

impl SinkSettings {
    /// Checks this table (the `index`th) and gives the sink's settings. `env` holds the
    /// environment variables named by `secret_env`.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming the key (`sinks.<name>.<field>`) and what is accepted.
    pub fn resolved(
        &self,
        index: usize,
        env: &HashMap<String, SinkSecret>,
        strict: bool,
    ) -> Result<SinkConfig, SettingsError> {
        let key = |field: &str| sink_key(index, &self.name, field);
        let invalid = |field: &str, reason: String| SettingsError::Invalid {
            key: key(field).into(),
            reason,
        };
        if !is_sink_name(&self.name) {
            return Err(invalid(
                "name",
                format!(
                    "{:?} is not a sink name: 1 to 64 ASCII letters, digits, `_` or `-` \
                     (every sink needs one)",
                    self.name
                ),
            ));
        }
        let given = |field: &str| match field {
            "secret" => self.secret.is_some(),
            "secret_env" => self.secret_env.is_some(),
            "allow_http" => self.allow_http.is_some(),
            "stream" => self.stream.is_some(),
            "subject" => self.subject.is_some(),
            "credentials_file" => self.credentials_file.is_some(),
            "create_stream" => self.create_stream.is_some(),
            _ => false,
        };
        let others: &[&str] = match self.kind.as_str() {
            "webhook" => &NATS_KEYS,
            "nats" => &WEBHOOK_KEYS,
            other => {
                return Err(invalid(
                    "type",
                    format!("must be `webhook` or `nats`, not {other:?}"),
                ));
            }
        };
        if let Some(field) = others.iter().find(|f| given(f)) {
            return Err(invalid(
                field,
                format!("is not a setting of a {} sink", self.kind),
            ));
        }
        let entry_types = match &self.event_types {
            None => None,
            Some(types) if types.is_empty() => {
                return Err(invalid(
                    "event_types",
                    "is empty: the sink would receive nothing (leave the key out for every type)"
                        .into(),
                ));
            }
            Some(types) => {
                if let Some(unknown) = types.iter().find(|t| !ENTRY_TYPES.contains(&t.as_str())) {
                    return Err(invalid(
                        "event_types",
                        format!(
                            "{unknown:?} is not an event type; they are {}",
                            ENTRY_TYPES.join(", ")
                        ),
                    ));
                }
                let mut types = types.clone();
                types.sort_unstable();
                types.dedup();
                Some(types)
            }
        };
        let delays = self
            .retry_schedule_secs
            .clone()
            .unwrap_or_else(|| RetrySchedule::DEFAULT_SECS.to_vec());
        if delays.len() > MAX_RETRIES {
            return Err(invalid(
                "retry_schedule_secs",
                format!("has {} delays; at most {MAX_RETRIES}", delays.len()),
            ));
        }
        if delays.contains(&0) {
            return Err(invalid(
                "retry_schedule_secs",
                "has a delay of 0: each must be at least 1 second (a failing consumer would \
                 otherwise be attempted again at once, over and over)"
                    .into(),
            ));
        }
        if let Some(long) = delays.iter().find(|&&d| d > RetrySchedule::MAX_DELAY_SECS) {
            return Err(invalid(
                "retry_schedule_secs",
                format!(
                    "{long} is longer than {} seconds (a year)",
                    RetrySchedule::MAX_DELAY_SECS
                ),
            ));
        }
        let webhook = self.kind == "webhook";
        let timeout_secs = self.timeout_secs.unwrap_or(if webhook { 10 } else { 5 });
        if !(1..=300).contains(&timeout_secs) {
            return Err(invalid("timeout_secs", "must be from 1 to 300".into()));
        }
        let concurrency = self.concurrency.unwrap_or(if webhook { 16 } else { 128 });
        if !(1..=1024).contains(&concurrency) {
            return Err(invalid("concurrency", "must be from 1 to 1024".into()));
        }
        let url = Url::parse(self.url.trim()).map_err(|e| {
            invalid(
                "url",
                if self.url.trim().is_empty() {
                    "is required".to_owned()
                } else {
                    format!("is not a URL: {e}")
                },
            )
        })?;
        let timeout = Duration::from_secs(timeout_secs);
        let kind = if webhook {
            SinkKind::Webhook(self.webhook(url, timeout, concurrency, env, strict, &invalid)?)
        } else {
            SinkKind::Nats(self.nats(url, timeout, concurrency, strict, &invalid)?)
        };
        Ok(SinkConfig {
            filter: SinkFilter {
                name: self.name.clone(),
                entry_types,
            },
            schedule: RetrySchedule::from_secs(&delays),
            timeout,
            concurrency,
            kind,
        })
    }

    fn webhook(
        &self,
        url: Url,
        timeout: Duration,
        concurrency: usize,
        env: &HashMap<String, SinkSecret>,
        strict: bool,
        invalid: &dyn Fn(&str, String) -> SettingsError,
    ) -> Result<adapters_sinks::WebhookSettings, SettingsError> {
        let allow_http = self.allow_http.unwrap_or(false);
        match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            "http" => {
                return Err(invalid(
                    "url",
                    "must be https (set allow_http = true for a test or private network)".into(),
                ));
            }
            other => return Err(invalid("url", format!("must be https, not {other}:"))),
        }
        if url.host().is_none() {
            return Err(invalid("url", "names no host".into()));
        }
        let secret = match (&self.secret, &self.secret_env) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "secret_env",
                    "and secret are both set; give one of them".into(),
                ));
            }
            (Some(secret), None) => secret.expose().to_owned(),
            (None, Some(variable)) => match env.get(variable) {
                Some(value) if !value.expose().is_empty() => value.expose().to_owned(),
                // Commands other than `serve` need no secret: not looked at.
                _ if !strict => {
                    return Ok(adapters_sinks::WebhookSettings {
                        url,
                        secret: String::new(),
                        timeout,
                        allow_http,
                        concurrency,
                    });
                }
                _ => {
                    return Err(invalid(
                        "secret_env",
                        format!("names the environment variable {variable}, which is not set"),
                    ));
                }
            },
            (None, None) => {
                return Err(invalid(
                    "secret",
                    "is required (whsec_ and base64, or name an environment variable in \
                     secret_env)"
                        .into(),
                ));
            }
        };
        let secret_key = if self.secret_env.is_some() {
            "secret_env"
        } else {
            "secret"
        };
        let settings = adapters_sinks::WebhookSettings {
            url,
            secret,
            timeout,
            allow_http,
            concurrency,
        };
        // The sink checks the secret itself (its words never show it); only the key is ours.
        adapters_sinks::WebhookSink::new(settings.clone()).map_err(|e| {
            use adapters_sinks::WebhookSetupError as E;
            let field = match e {
                E::SecretFormat | E::SecretTooShort(_) => secret_key,
                E::NoConcurrency => "concurrency",
                E::NotHttps(_) => "url",
                _ => "type",
            };
            invalid(field, e.to_string())
        })?;
        Ok(settings)
    }

    fn nats(
        &self,
        url: Url,
        timeout: Duration,
        concurrency: usize,
        strict: bool,
        invalid: &dyn Fn(&str, String) -> SettingsError,
    ) -> Result<adapters_sinks::NatsSettings, SettingsError> {
        if !matches!(url.scheme(), "nats" | "tls") {
            return Err(invalid(
                "url",
                format!("must be nats:// or tls://, not {}:", url.scheme()),
            ));
        }
        let Some(stream) = self.stream.clone().filter(|s| !s.trim().is_empty()) else {
            return Err(invalid("stream", "is required for a NATS sink".into()));
        };
        if let Some(file) = &self.credentials_file
            && strict
            && !file.is_file()
        {
            return Err(invalid(
                "credentials_file",
                format!("{} is not a file", super::shown(file)),
            ));
        }
        let mut settings = adapters_sinks::NatsSettings::new(url, stream);
        if let Some(subject) = &self.subject {
            settings.subject.clone_from(subject);
        }
        settings.credentials_file.clone_from(&self.credentials_file);
        settings.create_stream = self.create_stream.unwrap_or(true);
        settings.timeout = timeout;
        settings.concurrency = concurrency;
        Ok(settings)
    }
}

/// `[outbox]`: the relay of entries to the sinks and how long delivered entries are kept.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSettings {
    /// Delivered entries are deleted this many hours after their delivery (they can be
    /// replayed by event id even then, from the event).
    pub keep_delivered_hours: u32,
    /// Entries a relay claims at once, per sink.
    pub relay_batch: usize,
    /// How long a relay with nothing due waits before it looks again, in milliseconds.
    pub poll_interval_ms: u64,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            keep_delivered_hours: 24,
            relay_batch: 200,
            poll_interval_ms: 1000,
        }
    }
}

impl OutboxSettings {
    /// Checks the values.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming the key.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(1..=8760).contains(&self.keep_delivered_hours) {
            return Err(SettingsError::Invalid {
                key: "outbox.keep_delivered_hours".into(),
                reason: "must be from 1 to 8760 (a year)".into(),
            });
        }
        if !(1..=1000).contains(&self.relay_batch) {
            return Err(SettingsError::Invalid {
                key: "outbox.relay_batch".into(),
                reason: "must be from 1 to 1000".into(),
            });
        }
        if !(10..=60_000).contains(&self.poll_interval_ms) {
            return Err(SettingsError::Invalid {
                key: "outbox.poll_interval_ms".into(),
                reason: "must be from 10 to 60000".into(),
            });
        }
        Ok(())
    }

    /// How long a relay's claim holds for `sink`: long enough for a whole pass, with `T` the
    /// sink's timeout and `waves = ceil(relay_batch / concurrency)`: a webhook's wave of
    /// requests may take `T`, so `(waves + 1) × T + 10 s`; a NATS pass may first wait `T` for
    /// the connection and `2 T` for the stream, and a wave may take `2 T` (a publish, the
    /// stream looked up again, the publish again), so `(2 × waves + 3) × T + 10 s`. The 10 s
    /// are the store's work.
    #[must_use]
    pub fn lease(&self, sink: &SinkConfig) -> chrono::TimeDelta {
        let waves = u64::try_from(self.relay_batch.div_ceil(sink.concurrency.max(1)))
            .unwrap_or(u64::MAX / 8);
        let timeouts = match sink.kind {
            SinkKind::Webhook(_) => waves + 1,
            SinkKind::Nats(_) => 2 * waves + 3,
        };
        let secs = timeouts
            .saturating_mul(sink.timeout.as_secs())
            .saturating_add(10);
        chrono::TimeDelta::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
    }
}

/// Checks every `[[sinks]]` table and that their names are unique. Not `strict`: a
/// `secret_env` variable that is not set and a `credentials_file` that does not exist are let
/// through (the commands other than `serve` do not deliver).
///
/// # Errors
/// [`SettingsError::Invalid`] for the first problem, naming its key.
pub fn resolve_all(
    sinks: &[SinkSettings],
    env: &HashMap<String, SinkSecret>,
    strict: bool,
) -> Result<Vec<SinkConfig>, SettingsError> {
    let mut resolved: Vec<SinkConfig> = Vec::new();
    for (index, sink) in sinks.iter().enumerate() {
        let config = sink.resolved(index, env, strict)?;
        if resolved.iter().any(|r| r.name() == config.name()) {
            return Err(SettingsError::Invalid {
                key: format!("sinks[{index}].name").into(),
                reason: format!("{:?} names two sinks; names must be unique", sink.name),
            });
        }
        resolved.push(config);
    }
    Ok(resolved)
}
