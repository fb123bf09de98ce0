//! Intake from Amazon SQS: a queue subscribed to the SES topic keeps what SNS publishes for up to
//! 14 days, so that nothing is lost while this service or its database is down (SNS retries an
//! HTTP/S endpoint for an hour at most). See docs/operations.md, "Intake from Amazon SQS".
//!
//! Each [`Poller`] long-polls one queue (`ReceiveMessage`), hands every message to the ingest
//! use case ([`Ingest::ingest_queued`]: the very verification, topic allow-list, mapping and
//! idempotency of the HTTP endpoint), and deletes from the queue only the messages that were
//! committed or found to be duplicates (`DeleteMessageBatch`). A message whose failure is
//! transient (database down, certificate unavailable) is left to reappear after the visibility
//! timeout; one that can never succeed (bad signature, not SNS, topic not allowed) is left for
//! the queue's redrive policy to move to its dead-letter queue, and counted and logged with its
//! reason. [`drain`] processes a queue until it is empty (an SNS subscription's dead-letter
//! queue, say).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use chrono::{DateTime, TimeZone, Utc};
use domain::{Ingest, IngestError, QueuedMessage, RawOrigin};
use futures::future::join_all;
use tokio::sync::watch;

/// One queue's settings (`[[sqs]]`). See docs/operations.md for their meaning and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// The queue's URL, as `GetQueueUrl` gives it: `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`.
    pub queue_url: String,
    /// The AWS region; `None`: the queue URL's (`sqs.REGION.amazonaws.com`), else the standard
    /// chain's (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// An endpoint to use instead of the regional one (LocalStack, moto, a VPC endpoint); wins
    /// over `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_SQS`.
    pub endpoint_url: Option<String>,
    /// Messages per `ReceiveMessage`, 1 to 10 (SQS's maximum).
    pub max_messages: i32,
    /// Long polling: seconds a `ReceiveMessage` waits for a message, 1 to 20 (SQS's maximum).
    pub wait_secs: i32,
    /// Seconds a received message stays invisible to other pollers; `None`: the queue's own
    /// visibility timeout. A message that failed reappears after it.
    pub visibility_timeout_secs: Option<i32>,
    /// Pollers for this queue, each with its own `ReceiveMessage` loop.
    pub concurrency: usize,
    /// Raw message delivery: bodies are bare SES records, not SNS envelopes. They cannot be
    /// verified by signature; the queue's access policy is the trust boundary.
    pub raw: bool,
}

/// A queue to poll: its settings, its client and the names it goes by.
#[derive(Debug, Clone)]
pub struct Queue {
    client: Client,
    settings: Arc<QueueSettings>,
    name: Arc<str>,
    arn: Arc<str>,
    health: Arc<QueueHealth>,
}

/// Why a queue's settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue URL is not `scheme://host/ACCOUNT/NAME`.
    #[error(
        "queue_url {0} is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
    )]
    BadUrl(String),
    /// No region in the settings nor in the standard chain.
    #[error("no AWS region for queue {0}: set region in its [[sqs]] table, or AWS_REGION")]
    NoRegion(String),
    /// An SQS call failed.
    #[error("SQS {call} on queue {queue} failed: {detail}")]
    Call {
        call: &'static str,
        queue: String,
        detail: String,
    },
}

impl Queue {
    /// The client for `settings`: credentials from the standard AWS chain, the region from the
    /// settings or the chain, the endpoint from the settings or the standard variables.
    /// Nothing is sent to SQS yet.
    ///
    /// # Errors
    /// [`QueueError::BadUrl`] when the URL names no account and queue; [`QueueError::NoRegion`]
    /// when no region is known.
    pub async fn connect(settings: QueueSettings) -> Result<Self, QueueError> {
        let (account, name) = account_and_name(&settings.queue_url)
            .ok_or_else(|| QueueError::BadUrl(settings.queue_url.clone()))?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &settings.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let url_region = region_of_url(&settings.queue_url);
        if settings.region.is_none()
            && let Some(region) = &url_region
        {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let shared = loader.load().await;
        let region = shared
            .region()
            .map(ToString::to_string)
            .ok_or_else(|| QueueError::NoRegion(settings.queue_url.clone()))?;
        // A call that hangs (a half-open connection) must not stall a poller for good: a
        // receive may wait `wait_secs` for messages, anything more is a failure.
        let attempt_timeout = Duration::from_secs(u64::try_from(settings.wait_secs).unwrap_or(20))
            + Duration::from_secs(15);
        let mut config = aws_sdk_sqs::config::Builder::from(&shared).timeout_config(
            aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        );
        if let Some(endpoint) = &settings.endpoint_url {
            config = config.endpoint_url(endpoint);
        }
        let client = Client::from_conf(config.build());
        let arn = format!("arn:{}:sqs:{region}:{account}:{name}", partition(&region));
        Ok(Self {
            client,
            name: name.into(),
            arn: arn.into(),
            settings: Arc::new(settings),
            health: Arc::new(QueueHealth::default()),
        })
    }

    /// The queue's name (the last segment of its URL), as metrics and logs name it.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The queue's ARN, derived from its URL and region; what a raw record is archived under.
    #[must_use]
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The queue's settings.
    #[must_use]
    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// Whether the queue could be reached at the last `ReceiveMessage`.
    #[must_use]
    pub fn health(&self) -> Arc<QueueHealth> {
        Arc::clone(&self.health)
    }

    /// One `ReceiveMessage`: up to `max_messages`, waiting up to `wait_secs`.
    async fn receive(
        &self,
        wait_secs: i32,
        visibility_timeout_secs: Option<i32>,
    ) -> Result<Vec<Message>, QueueError> {
        let received = self
            .client
            .receive_message()
            .queue_url(&self.settings.queue_url)
            .max_number_of_messages(self.settings.max_messages)
            .wait_time_seconds(wait_secs)
            .set_visibility_timeout(visibility_timeout_secs)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await;
        match received {
            Ok(output) => {
                self.health.set_reachable();
                Ok(output.messages.unwrap_or_default())
            }
            Err(error) => {
                let detail = DisplayErrorContext(&error).to_string();
                self.health.set_unreachable(&detail);
                Err(QueueError::Call {
                    call: "ReceiveMessage",
                    queue: self.name.to_string(),
                    detail,
                })
            }
        }
    }

    /// Deletes the messages whose receipt handles are given; the number that could not be
    /// deleted (they reappear after the visibility timeout, and are then duplicates).
    async fn delete(&self, receipt_handles: Vec<String>) -> usize {
        let mut failed = 0;
        // DeleteMessageBatch takes 10 entries at most.
        for chunk in receipt_handles.chunks(10) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, handle)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .build()
                        .ok()
                })
                .collect();
            let sent = entries.len();
            failed += chunk.len() - sent;
            match self
                .client
                .delete_message_batch()
                .queue_url(&self.settings.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(output) => {
                    for entry in output.failed() {
                        tracing::warn!(
                            queue = %self.name,
                            code = entry.code(),
                            message = entry.message().unwrap_or_default(),
                            "deleting a stored message from the queue failed; it will come back \
                             after its visibility timeout and be a duplicate"
                        );
                    }
                    failed += output.failed().len();
                }
                Err(error) => {
                    tracing::warn!(
                        queue = %self.name,
                        error = %DisplayErrorContext(&error),
                        "deleting stored messages from the queue failed; they will come back \
                         after their visibility timeout and be duplicates"
                    );
                    failed += sent;
                }
            }
        }
        failed
    }

    /// The raw origin of `message`, on a raw queue.
    fn raw_origin(&self, message: &Message) -> Option<RawOrigin> {
        if !self.settings.raw {
            return None;
        }
        Some(RawOrigin {
            message_id: raw_message_id(&self.name, message.message_id().unwrap_or_default()),
            source_arn: self.arn.to_string(),
            sent_at: sent_at(message).unwrap_or_else(Utc::now),
        })
    }
}

/// The id a bare SES record from a raw queue is archived under, in place of an SNS
/// `MessageId`: `sqs:` + the queue's name + `:` + the SQS `MessageId` (unique within its queue,
/// and the same on every receive of the message, so a redelivered message is a duplicate).
#[must_use]
pub fn raw_message_id(queue_name: &str, sqs_message_id: &str) -> String {
    format!("sqs:{queue_name}:{sqs_message_id}")
}

/// The account and the name in a queue URL's path (`/ACCOUNT/NAME`).
fn account_and_name(queue_url: &str) -> Option<(String, String)> {
    let url = url::Url::parse(queue_url).ok()?;
    let mut segments = url.path_segments()?.filter(|s| !s.is_empty());
    let account = segments.next()?.to_owned();
    let name = segments.next()?.to_owned();
    segments.next().is_none().then_some((account, name))
}

/// The region in an AWS queue URL's host (`sqs.REGION.amazonaws.com`, or the legacy
/// `REGION.queue.amazonaws.com`), when it is one.
fn region_of_url(queue_url: &str) -> Option<String> {
    let url = url::Url::parse(queue_url).ok()?;
    let host = url.host_str()?;
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        ["sqs", region, "amazonaws", ..] | [region, "queue", "amazonaws", ..] => {
            Some((*region).to_owned())
        }
        _ => None,
    }
}

/// The ARN partition of a region.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Whether a queue could be reached: unknown (0) until the first `ReceiveMessage` answers.
#[derive(Debug, Default)]
pub struct QueueHealth {
    state: AtomicU8,
    error: Mutex<Option<String>>,
}

const REACHABLE: u8 = 1;
const UNREACHABLE: u8 = 2;

impl QueueHealth {
    fn set_reachable(&self) {
        self.state.store(REACHABLE, Ordering::Relaxed);
    }

    fn set_unreachable(&self, detail: &str) {
        if let Ok(mut error) = self.error.lock() {
            *error = Some(detail.to_owned());
        }
        self.state.store(UNREACHABLE, Ordering::Relaxed);
    }

    /// `Some(true)` when the last `ReceiveMessage` answered, `Some(false)` when it failed,
    /// `None` before the first.
    #[must_use]
    pub fn reachable(&self) -> Option<bool> {
        match self.state.load(Ordering::Relaxed) {
            REACHABLE => Some(true),
            UNREACHABLE => Some(false),
            _ => None,
        }
    }

    /// Why the last `ReceiveMessage` failed, when it did.
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        if self.reachable() != Some(false) {
            return None;
        }
        self.error.lock().ok().and_then(|e| e.clone())
    }
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Committed: `processed` platform events new, `duplicates` already stored. Deleted.
    Stored { processed: usize, duplicates: usize },
    /// The same SNS message (or SQS message, on a raw queue) was stored before. Deleted.
    Duplicate,
    /// A failure that may pass (`code`: `store_unavailable`, `certificate_unavailable`). Left
    /// in the queue; it reappears after the visibility timeout.
    Retry { code: &'static str },
    /// Can never succeed (`code`: `bad_signature`, `malformed_message`, `topic_not_allowed`,
    /// `raw_message_delivery`, ...). Left in the queue for its redrive policy.
    Refused { code: &'static str },
}

impl Handled {
    /// Whether the message is to be deleted from the queue: only once it is stored.
    #[must_use]
    pub fn deletes(self) -> bool {
        matches!(self, Self::Stored { .. } | Self::Duplicate)
    }

    /// The metric's name for it: `stored`, `duplicate`, `retry`, `refused`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stored { .. } => "stored",
            Self::Duplicate => "duplicate",
            Self::Retry { .. } => "retry",
            Self::Refused { .. } => "refused",
        }
    }

    fn from_result(result: &Result<domain::IngestOutcome, IngestError>) -> Self {
        match result {
            Ok(outcome) if outcome.redelivery => Self::Duplicate,
            Ok(outcome) => Self::Stored {
                processed: outcome.processed,
                duplicates: outcome.duplicates,
            },
            Err(error) if error.kind().is_transient() => Self::Retry { code: error.code() },
            Err(error) => Self::Refused { code: error.code() },
        }
    }
}

/// Told what the pollers do, for metrics. Every method takes the queue's name.
pub trait QueueObserver: Send + Sync {
    /// `count` messages came back from one `ReceiveMessage` (possibly 0).
    fn received(&self, queue: &str, count: usize);
    /// One message was handled.
    fn handled(&self, queue: &str, handled: Handled);
    /// A `ReceiveMessage` failed.
    fn receive_failed(&self, queue: &str);
    /// `count` stored messages could not be deleted (they will come back as duplicates).
    fn delete_failed(&self, queue: &str, count: usize);
}

/// An observer that ignores everything (for `sqs drain`, which prints its own summary).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl QueueObserver for NoObserver {
    fn received(&self, _: &str, _: usize) {}
    fn handled(&self, _: &str, _: Handled) {}
    fn receive_failed(&self, _: &str) {}
    fn delete_failed(&self, _: &str, _: usize) {}
}

/// Ingests one batch as received, all its messages at once (so that the store's group commit
/// takes them together), then deletes those stored. Never interrupted: a batch started is
/// finished. What became of each message, and how many stored ones could not be deleted.
async fn handle_batch(
    queue: &Queue,
    ingest: &Arc<dyn Ingest>,
    observer: &Arc<dyn QueueObserver>,
    messages: Vec<Message>,
) -> (Vec<Handled>, usize) {
    let handling = messages.iter().map(|message| async move {
        let body = message.body().unwrap_or_default().as_bytes().to_vec();
        let result = ingest
            .ingest_queued(QueuedMessage {
                body,
                raw: queue.raw_origin(message),
            })
            .await;
        let handled = Handled::from_result(&result);
        if let Err(error) = &result {
            let receive_count = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .map_or("?", String::as_str);
            let sqs_message_id = message.message_id().unwrap_or_default();
            if error.kind().is_transient() {
                tracing::warn!(
                    queue = %queue.name, sqs_message_id, receive_count, code = error.code(),
                    error = %error,
                    "queued message left for a retry after its visibility timeout"
                );
            } else {
                tracing::warn!(
                    queue = %queue.name, sqs_message_id, receive_count, code = error.code(),
                    error = %error,
                    "queued message refused: left in the queue for its redrive policy (its \
                     dead-letter queue)"
                );
            }
        }
        handled
    });
    let handled = join_all(handling).await;
    let deletions: Vec<String> = messages
        .iter()
        .zip(&handled)
        .filter(|(_, h)| h.deletes())
        .filter_map(|(m, _)| m.receipt_handle().map(str::to_owned))
        .collect();
    for h in &handled {
        observer.handled(&queue.name, *h);
    }
    let failed = if deletions.is_empty() {
        0
    } else {
        queue.delete(deletions).await
    };
    if failed > 0 {
        observer.delete_failed(&queue.name, failed);
    }
    (handled, failed)
}

/// One `ReceiveMessage` loop on one queue.
pub struct Poller {
    queue: Queue,
    ingest: Arc<dyn Ingest>,
    observer: Arc<dyn QueueObserver>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("queue", &self.queue.name)
            .finish_non_exhaustive()
    }
}

/// How long a poller waits after a failed `ReceiveMessage` before the next, at first; doubled
/// on each further failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between failed `ReceiveMessage` calls.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Poller {
    #[must_use]
    pub fn new(queue: Queue, ingest: Arc<dyn Ingest>, observer: Arc<dyn QueueObserver>) -> Self {
        Self {
            queue,
            ingest,
            observer,
        }
    }

    /// After a transient failure (store or certificate unavailable): receives nothing until
    /// the store answers again, waiting 0.5 s doubling to 30 s between checks (at least once).
    /// Receiving meanwhile would only raise each message's receive count towards the queue's
    /// `maxReceiveCount`, and an outage would move the whole queue to its dead-letter queue.
    /// `false` when `stop` turned `true` meanwhile.
    async fn pause_until_ready(&self, stop: &mut watch::Receiver<bool>) -> bool {
        let mut pause = FIRST_BACKOFF;
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => return false,
                () = tokio::time::sleep(pause) => {}
            }
            match self.ingest.ready().await {
                Ok(()) => return true,
                Err(error) => {
                    tracing::warn!(
                        queue = %self.queue.name, %error, retry_in_ms = pause.as_millis(),
                        "the store is unavailable: receiving nothing from the queue until it is \
                         back"
                    );
                }
            }
            pause = (pause * 2).min(MAX_BACKOFF);
        }
    }

    /// Polls until `stop` turns `true`. A `ReceiveMessage` waiting for messages is abandoned
    /// at once (what it would have returned stays in the queue); a batch being handled is
    /// finished first, deletions included. Failed receives are retried with a growing pause
    /// (0.5 s doubling to 30 s); after a batch with a transient failure, nothing is received
    /// until the store answers (see `pause_until_ready`).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            if *stop.borrow() {
                return;
            }
            let received = tokio::select! {
                biased;
                _ = stop.changed() => return,
                received = self.queue.receive(
                    self.queue.settings.wait_secs,
                    self.queue.settings.visibility_timeout_secs,
                ) => received,
            };
            match received {
                Ok(messages) => {
                    backoff = FIRST_BACKOFF;
                    self.observer.received(&self.queue.name, messages.len());
                    if !messages.is_empty() {
                        let (handled, _) =
                            handle_batch(&self.queue, &self.ingest, &self.observer, messages).await;
                        if handled.iter().any(|h| matches!(h, Handled::Retry { .. }))
                            && !self.pause_until_ready(&mut stop).await
                        {
                            return;
                        }
                    }
                }
                Err(error) => {
                    self.observer.receive_failed(&self.queue.name);
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis(), "receiving from the queue failed");
                    tokio::select! {
                        biased;
                        _ = stop.changed() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// What [`drain`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainSummary {
    /// Messages received (each counted once, however often it came back).
    pub received: usize,
    /// Messages committed and deleted.
    pub stored: usize,
    /// Messages stored before, deleted.
    pub duplicates: usize,
    /// Platform events newly stored.
    pub events: usize,
    /// Messages left in the queue for a retry (transient failures), by code.
    pub left_for_retry: Vec<(&'static str, usize)>,
    /// Messages left in the queue as refused (they can never succeed), by code.
    pub refused: Vec<(&'static str, usize)>,
    /// Stored messages that could not be deleted.
    pub delete_failures: usize,
}

impl DrainSummary {
    /// Messages left in the queue (for a retry or refused).
    #[must_use]
    pub fn left(&self) -> usize {
        self.left_for_retry.iter().map(|(_, n)| n).sum::<usize>()
            + self.refused.iter().map(|(_, n)| n).sum::<usize>()
    }

    fn count(&mut self, handled: Handled) {
        fn bump(list: &mut Vec<(&'static str, usize)>, code: &'static str) {
            match list.iter_mut().find(|(c, _)| *c == code) {
                Some((_, n)) => *n += 1,
                None => list.push((code, 1)),
            }
        }
        match handled {
            Handled::Stored { processed, .. } => {
                self.stored += 1;
                self.events += processed;
            }
            Handled::Duplicate => self.duplicates += 1,
            Handled::Retry { code } => bump(&mut self.left_for_retry, code),
            Handled::Refused { code } => bump(&mut self.refused, code),
        }
    }
}

/// How long [`drain`] hides each message it receives: longer than a drain takes, so that a
/// message it left (refused, or to be retried) does not come back during the drain and end it
/// early, looking like nothing new.
pub const DRAIN_VISIBILITY_SECS: i32 = 900;

/// A [`drain`] that stopped on a failed `ReceiveMessage`: what it had done until then
/// (committed and deleted) and the failure.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct DrainError {
    pub summary: DrainSummary,
    pub error: QueueError,
}

/// Processes `queue` until a `ReceiveMessage` (waiting up to `wait_secs`) brings no message
/// not seen before, then returns what it did. Every message it receives stays hidden from other
/// readers for [`DRAIN_VISIBILITY_SECS`] (or the queue's own visibility timeout when longer);
/// those that failed are left in the queue, and each is counted once.
///
/// # Errors
/// [`DrainError`] when a `ReceiveMessage` fails, with the summary of what was done until then.
pub async fn drain(
    queue: &Queue,
    ingest: Arc<dyn Ingest>,
    observer: Arc<dyn QueueObserver>,
    wait_secs: i32,
) -> Result<DrainSummary, DrainError> {
    let visibility = queue
        .settings
        .visibility_timeout_secs
        .map_or(DRAIN_VISIBILITY_SECS, |secs| {
            secs.max(DRAIN_VISIBILITY_SECS)
        });
    let mut summary = DrainSummary::default();
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let messages = match queue.receive(wait_secs, Some(visibility)).await {
            Ok(messages) => messages,
            Err(error) => return Err(DrainError { summary, error }),
        };
        observer.received(&queue.name, messages.len());
        let new: Vec<Message> = messages
            .into_iter()
            .filter(|m| seen.insert(m.message_id().unwrap_or_default().to_owned()))
            .collect();
        if new.is_empty() {
            return Ok(summary);
        }
        summary.received += new.len();
        let (handled, delete_failures) = handle_batch(queue, &ingest, &observer, new).await;
        for handled in handled {
            summary.count(handled);
        }
        summary.delete_failures += delete_failures;
    }
}

/// When SQS received a message (its `SentTimestamp`), if it says.
#[must_use]
pub fn sent_at(message: &Message) -> Option<DateTime<Utc>> {
    message
        .attributes()?
        .get(&MessageSystemAttributeName::SentTimestamp)?
        .parse::<i64>()
        .ok()
        .and_then(|millis| Utc.timestamp_millis_opt(millis).single())
}

#[cfg(test)]
mod tests;
