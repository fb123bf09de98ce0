//! The relay: one pass over a sink's due entries (claim, read, deliver, record), for the
//! driving loop of the server to repeat.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::{AttemptOutcome, OutboxEntry, OutboxStore, RetrySchedule, Settlement};
use crate::ports::{Clock, StoreError};

/// What an entry delivers: the time it is about (the event's time, or the change's) and its
/// `data` as the API shows it (an event as `GET /api/v1/events` lists it, a suppression-list
/// entry as `GET /api/v1/suppressions/{address}` shows it).
#[derive(Debug, Clone, PartialEq)]
pub struct EntryData {
    pub timestamp: DateTime<Utc>,
    pub data: serde_json::Value,
}

/// What was found for one entry.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryContent {
    Data(EntryData),
    /// Its event or change no longer exists (erased, or purged by retention).
    Gone,
    /// It exists but could not be read or shown, with why: the attempt fails (and is made
    /// again on the schedule), the other entries go on.
    Unreadable(String),
}

/// Where the content of entries is read from.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait EntryContents: Send + Sync {
    /// The content of each of `entries`, in their order.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read at all.
    async fn entry_data(&self, entries: &[OutboxEntry]) -> Result<Vec<EntryContent>, StoreError>;
}

/// One message for a sink: the entry's id and type, and the body to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// The id consumers deduplicate by ([`OutboxEntry::entry_id`]): the Standard Webhooks
    /// `webhook-id`, the JetStream `Nats-Msg-Id`.
    pub entry_id: String,
    /// The entry type (`email_bounce`, `suppression.added`, ...).
    pub entry_type: String,
    /// The JSON envelope `{"id", "type", "timestamp", "data"}` ([`envelope`]).
    pub body: Vec<u8>,
}

/// A sink: where the messages of one `[[sinks]]` entry go.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SinkClient: Send + Sync {
    /// Delivers `messages`, as concurrently as the sink allows, and answers for each, in their
    /// order: `Ok` once the sink acknowledged it (a 2xx; a JetStream acknowledgement), else
    /// what went wrong, for the entry's `last_error` (never a secret).
    async fn deliver(&self, messages: Vec<OutboundMessage>) -> Vec<Result<(), String>>;
}

/// The body of every delivery: `{"id", "type", "timestamp", "data"}`, `timestamp` in RFC 3339
/// with microseconds (as the API writes instants).
///
/// # Errors
/// When `data` cannot be written as JSON (it always can: it is a JSON value).
pub fn envelope(entry: &OutboxEntry, content: &EntryData) -> Result<Vec<u8>, serde_json::Error> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        id: &'a str,
        #[serde(rename = "type")]
        entry_type: &'a str,
        timestamp: String,
        data: &'a serde_json::Value,
    }
    serde_json::to_vec(&Envelope {
        id: &entry.entry_id,
        entry_type: &entry.entry_type,
        timestamp: content
            .timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        data: &content.data,
    })
}

/// What one pass did, for the logs and the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayPass {
    /// Entries claimed (0: nothing was due, so the loop may wait).
    pub claimed: usize,
    pub delivered: usize,
    /// Failed and due again later.
    pub retried: usize,
    /// Failed for the last time (or gone: their event or change no longer exists).
    pub dead: usize,
}

/// How a relay works a sink.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// The sink's name.
    pub sink: String,
    /// Entries claimed per pass.
    pub batch: usize,
    /// How long a claim holds. It must be longer than a whole pass can take, or another
    /// relay claims entries still being delivered and delivers them again: at least
    /// `ceil(batch / the sink's concurrency) x the sink's timeout`, plus the store's time.
    pub lease: TimeDelta,
    pub schedule: RetrySchedule,
}

/// The error recorded for an entry whose event or change no longer exists.
pub const GONE: &str = "its event or suppression-list change no longer exists (erased or purged)";

/// The relay of one sink.
pub struct Relay {
    settings: RelaySettings,
    store: Arc<dyn OutboxStore>,
    contents: Arc<dyn EntryContents>,
    sink: Arc<dyn SinkClient>,
    clock: Arc<dyn Clock>,
    /// A number in `[0, 1)` for [`RetrySchedule::next_attempt`].
    jitter: Arc<dyn Fn() -> f64 + Send + Sync>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay of `settings.sink`, with a random jitter.
    pub fn new(
        settings: RelaySettings,
        store: Arc<dyn OutboxStore>,
        contents: Arc<dyn EntryContents>,
        sink: Arc<dyn SinkClient>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            settings,
            store,
            contents,
            sink,
            clock,
            jitter: Arc::new(random_fraction),
        }
    }

    /// The same relay with `jitter` (tests).
    #[must_use]
    pub fn with_jitter(mut self, jitter: Arc<dyn Fn() -> f64 + Send + Sync>) -> Self {
        self.jitter = jitter;
        self
    }

    /// The sink's name.
    pub fn sink(&self) -> &str {
        &self.settings.sink
    }

    /// One pass: claims the sink's due entries, reads their content, delivers them, and
    /// records each outcome (delivered; due again on the schedule; dead when it ran out).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; the claims then run out and the entries are
    /// claimed again later, so nothing is lost (an entry the sink took may be delivered
    /// again, under the same id).
    pub async fn run_once(&self) -> Result<RelayPass, StoreError> {
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_entries(
                self.settings.sink.clone(),
                self.settings.batch,
                now,
                self.settings.lease,
            )
            .await?;
        let mut pass = RelayPass {
            claimed: claimed.len(),
            ..RelayPass::default()
        };
        if claimed.is_empty() {
            return Ok(pass);
        }
        let mut contents = self.contents.entry_data(&claimed).await?.into_iter();
        let mut messages = Vec::with_capacity(claimed.len());
        let mut sent = Vec::with_capacity(claimed.len());
        let mut settlements = Vec::with_capacity(claimed.len());
        for entry in &claimed {
            let content = contents.next().unwrap_or_else(|| {
                EntryContent::Unreadable("no content was read for it".to_owned())
            });
            let body = match content {
                EntryContent::Data(data) => envelope(entry, &data).map_err(|e| e.to_string()),
                EntryContent::Unreadable(why) => Err(why),
                EntryContent::Gone => {
                    let gone = AttemptOutcome::Dead {
                        error: GONE.to_owned(),
                    };
                    settlements.push(settle(entry, now, gone));
                    continue;
                }
            };
            match body {
                Ok(body) => {
                    messages.push(OutboundMessage {
                        entry_id: entry.entry_id.clone(),
                        entry_type: entry.entry_type.clone(),
                        body,
                    });
                    sent.push(entry);
                }
                Err(why) => settlements.push(self.failed(entry, now, why)),
            }
        }
        let results = if messages.is_empty() {
            Vec::new()
        } else {
            self.sink.deliver(messages).await
        };
        let attempted_at = self.clock.now();
        for (i, entry) in sent.into_iter().enumerate() {
            let result = results
                .get(i)
                .cloned()
                .unwrap_or_else(|| Err("the sink gave no answer".to_owned()));
            settlements.push(match result {
                Ok(()) => settle(entry, attempted_at, AttemptOutcome::Delivered),
                Err(error) => self.failed(entry, attempted_at, error),
            });
        }
        for s in &settlements {
            match s.outcome {
                AttemptOutcome::Delivered => pass.delivered += 1,
                AttemptOutcome::Retry { .. } => pass.retried += 1,
                AttemptOutcome::Dead { .. } => pass.dead += 1,
            }
        }
        self.store.settle_entries(settlements).await?;
        Ok(pass)
    }

    /// The settlement of a failed attempt: due again on the schedule, or dead.
    fn failed(&self, entry: &OutboxEntry, at: DateTime<Utc>, error: String) -> Settlement {
        let attempts = entry.attempts.saturating_add(1);
        let outcome = match self
            .settings
            .schedule
            .next_attempt(attempts, at, (self.jitter)())
        {
            Some(next) => AttemptOutcome::Retry { at: next, error },
            None => AttemptOutcome::Dead { error },
        };
        settle(entry, at, outcome)
    }
}

fn settle(entry: &OutboxEntry, at: DateTime<Utc>, outcome: AttemptOutcome) -> Settlement {
    Settlement {
        id: entry.id,
        // Claimed entries always have a lease; one without cannot match any row.
        lease_until: entry.lease_until.unwrap_or(DateTime::<Utc>::MIN_UTC),
        attempted_at: at,
        outcome,
    }
}

/// A uniformly random number in `[0, 1)` (0.5 should the system's source fail).
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
