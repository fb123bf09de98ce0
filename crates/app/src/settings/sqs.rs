//! `[[sqs]]`: the Amazon SQS queues the server reads SNS deliveries from (none by default).

use adapters_sqs::QueueSettings;
use serde::{Deserialize, Serialize};
use url::Url;

use super::SettingsError;

/// The keys of an `[[sqs]]` table.
pub const SQS_KEYS: [&str; 8] = [
    "queue_url",
    "region",
    "endpoint_url",
    "max_messages",
    "wait_secs",
    "visibility_timeout_secs",
    "concurrency",
    "raw",
];

/// One `[[sqs]]` table as written; [`SqsSettings::resolved`] checks it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SqsSettings {
    /// The queue's URL: `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`.
    pub queue_url: String,
    /// The AWS region; left out: the queue URL's (`sqs.REGION.amazonaws.com`), else
    /// `AWS_REGION` or the profile's.
    #[serde(default)]
    pub region: Option<String>,
    /// An endpoint instead of the regional one (LocalStack, moto, a VPC endpoint); wins over
    /// `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_SQS`.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Messages per `ReceiveMessage`, 1 to 10.
    #[serde(default = "default_max_messages")]
    pub max_messages: i64,
    /// Long polling, in seconds: 1 to 20.
    #[serde(default = "default_wait_secs")]
    pub wait_secs: i64,
    /// Seconds a received message stays invisible to other pollers, 1 to 43200 (12 hours);
    /// left out: the queue's own.
    #[serde(default)]
    pub visibility_timeout_secs: Option<i64>,
    /// Pollers for this queue, 1 to 64.
    #[serde(default = "default_concurrency")]
    pub concurrency: i64,
    /// Raw message delivery is on for the queue's subscription: bodies are bare SES records,
    /// accepted unverified (the queue's access policy is the trust boundary).
    #[serde(default)]
    pub raw: bool,
}

fn default_max_messages() -> i64 {
    10
}

fn default_wait_secs() -> i64 {
    20
}

fn default_concurrency() -> i64 {
    1
}

/// The key of `field` in the `index`th `[[sqs]]` table, as messages name it.
#[must_use]
pub fn sqs_key(index: usize, field: &str) -> String {
    format!("sqs[{index}].{field}")
}

/// Whether `url` is an http(s) URL with a host.
fn http_url(url: &str) -> bool {
    Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host_str().is_some())
}

impl SqsSettings {
    /// Checks this table (the `index`th) and gives the queue's settings.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming the key (`sqs[<index>].<field>`) and what is accepted.
    pub fn resolved(&self, index: usize) -> Result<QueueSettings, SettingsError> {
        let invalid = |field: &str, reason: String| SettingsError::Invalid {
            key: sqs_key(index, field).into(),
            reason,
        };
        let queue_url = self.queue_url.trim().to_owned();
        let path_ok = Url::parse(&queue_url).is_ok_and(|u| {
            u.path_segments()
                .is_some_and(|s| s.filter(|p| !p.is_empty()).count() == 2)
        });
        if !http_url(&queue_url) || !path_ok {
            return Err(invalid(
                "queue_url",
                format!(
                    "`{queue_url}` is not an SQS queue URL (https://sqs.REGION.amazonaws.com/\
                     ACCOUNT/NAME, as `aws sqs get-queue-url` prints it)"
                ),
            ));
        }
        let region = match self.region.as_deref().map(str::trim) {
            None => None,
            Some(region)
                if !region.is_empty()
                    && region
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') =>
            {
                Some(region.to_owned())
            }
            Some(region) => {
                return Err(invalid(
                    "region",
                    format!("`{region}` is not an AWS region (like eu-west-1)"),
                ));
            }
        };
        let endpoint_url = match self.endpoint_url.as_deref().map(str::trim) {
            None => None,
            Some(url) if http_url(url) => Some(url.to_owned()),
            Some(url) => {
                return Err(invalid(
                    "endpoint_url",
                    format!("`{url}` is not an http or https URL"),
                ));
            }
        };
        let in_range = |field: &str, value: i64, low: i64, high: i64, why: &str| {
            if (low..=high).contains(&value) {
                i32::try_from(value).map_err(|_| invalid(field, String::new()))
            } else {
                Err(invalid(
                    field,
                    format!("must be from {low} to {high}{why}, not {value}"),
                ))
            }
        };
        let max_messages = in_range(
            "max_messages",
            self.max_messages,
            1,
            10,
            " (SQS returns 10 messages at most)",
        )?;
        // At least 1: a short poll (0) of an idle queue would be a busy loop of requests.
        let wait_secs = in_range(
            "wait_secs",
            self.wait_secs,
            1,
            20,
            " (long polling; SQS's longest is 20)",
        )?;
        let visibility_timeout_secs = self
            .visibility_timeout_secs
            .map(|secs| {
                // At least 1: a failed message must not come straight back to be tried again.
                in_range(
                    "visibility_timeout_secs",
                    secs,
                    1,
                    43_200,
                    " (12 hours, SQS's longest)",
                )
            })
            .transpose()?;
        let concurrency = in_range("concurrency", self.concurrency, 1, 64, "")?;
        Ok(QueueSettings {
            queue_url,
            region,
            endpoint_url,
            max_messages,
            wait_secs,
            visibility_timeout_secs,
            concurrency: usize::try_from(concurrency).unwrap_or(1),
            raw: self.raw,
        })
    }
}

/// Every `[[sqs]]` table, checked; a queue URL may appear once.
///
/// # Errors
/// As [`SqsSettings::resolved`]; a queue URL given twice.
pub fn resolve_all(queues: &[SqsSettings]) -> Result<Vec<QueueSettings>, SettingsError> {
    let mut resolved: Vec<QueueSettings> = Vec::with_capacity(queues.len());
    for (index, queue) in queues.iter().enumerate() {
        let settings = queue.resolved(index)?;
        if resolved.iter().any(|q| q.queue_url == settings.queue_url) {
            return Err(SettingsError::Invalid {
                key: sqs_key(index, "queue_url").into(),
                reason: format!(
                    "`{}` is configured twice: give one table `concurrency` pollers instead",
                    settings.queue_url
                ),
            });
        }
        resolved.push(settings);
    }
    Ok(resolved)
}
