//! The event history: what is stored about addresses and emails, read back a page at a time
//! (`GET /api/v1/events`, its exports, `GET /api/v1/messages/{sesMessageId}`), and the erasure
//! of everything stored about one address (`DELETE /api/v1/recipients/{address}`,
//! `ses-webhook erase`).
//!
//! Pages are keyset-paginated newest first by (event time, row id): every stored event has one
//! fixed place in that order, so paging while new events arrive neither skips nor repeats a
//! row (a new event lands before the first page or after the position already passed, and is
//! then seen by a later page).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use sha2::{Digest, Sha256};

use crate::event::{BounceClass, EventType, PlatformEvent};
use crate::ports::{Clock, HistoryStore, MessageOutcome, StoreError};
use crate::suppression::{Actor, Address};

/// The most events one page holds.
pub const MAX_EVENTS_PAGE: usize = 1000;

/// The tag SES puts the configuration set's name in (`mail.tags`), which the
/// `configurationSet` filter matches.
pub const CONFIGURATION_SET_TAG: &str = "ses:configuration-set";

/// Which events a query returns. Every filter given must hold (they are combined with AND);
/// an empty filter returns every event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events of this address, matched case-insensitively (by its key).
    pub recipient: Option<Address>,
    /// Only events of this sent email (SES `mail.messageId`).
    pub ses_message_id: Option<String>,
    /// Only events of these types; empty: every type.
    pub types: Vec<EventType>,
    /// Only bounces of this class (implies `email_bounce`).
    pub bounce_type: Option<BounceClass>,
    /// Only events at or after this time (event time).
    pub since: Option<DateTime<Utc>>,
    /// Only events before this time (event time).
    pub until: Option<DateTime<Utc>>,
    /// Only events whose `mail.tags` hold every one of these `(name, value)` pairs. The
    /// `configurationSet` filter is the pair ([`CONFIGURATION_SET_TAG`], name).
    pub tags: Vec<(String, String)>,
}

impl EventFilter {
    /// A short, stable fingerprint of the filter (16 lower-case hex digits), the same for
    /// filters that select the same events whatever the order their parts were given in: a
    /// cursor carries it, so that a cursor is only ever used with the query that made it.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        let mut types: Vec<&str> = self.types.iter().map(|t| t.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        let mut tags: Vec<(&str, &str)> = self
            .tags
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        tags.sort_unstable();
        tags.dedup();
        let canonical = serde_json::json!([
            self.recipient.as_ref().map(Address::key),
            self.ses_message_id,
            types,
            self.bounce_type.map(BounceClass::as_str),
            self.since.map(|t| t.timestamp_micros()),
            self.until.map(|t| t.timestamp_micros()),
            tags,
        ]);
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        hex::encode(&digest[..8])
    }

    /// The check a cursor for `position` under this filter carries (16 lower-case hex digits):
    /// any change to the cursor's position, or its use with other filters, no longer matches
    /// it. A checksum, not a signature: whoever computes it anew can only move within what
    /// their token may read anyway.
    #[must_use]
    pub fn cursor_check(&self, position: &EventPosition) -> String {
        let text = format!(
            "{}.{}.{}",
            position.event_time.timestamp_micros(),
            position.id,
            self.fingerprint()
        );
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }

    /// Whether no event can match (a bounce type with types that exclude bounces, or an
    /// empty time range), so that the store need not be asked.
    #[must_use]
    pub fn is_empty_by_definition(&self) -> bool {
        let bounce_excluded = self.bounce_type.is_some()
            && !self.types.is_empty()
            && !self.types.contains(&EventType::Bounce);
        let empty_range = matches!((self.since, self.until), (Some(s), Some(u)) if s >= u);
        bounce_excluded || empty_range
    }
}

/// Where an event sits in the history: its event time and row id. Pages run newest first, so
/// the page after a position holds older events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPosition {
    pub event_time: DateTime<Utc>,
    pub id: i64,
}

/// A query for one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    pub filter: EventFilter,
    /// At most this many events (1 to [`MAX_EVENTS_PAGE`]).
    pub limit: usize,
    /// Only events after this position (older, in page order).
    pub after: Option<EventPosition>,
}

/// A stored event as read back: the event with what the store added to it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Its place in the history (the row id is not shown by the API).
    pub position: EventPosition,
    pub event: PlatformEvent,
    /// The SNS `MessageId` that first carried it.
    pub sns_message_id: String,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// One page of events, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub items: Vec<StoredEvent>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<EventPosition>,
}

/// An archived SNS message about one email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierMessage {
    /// SNS `MessageId`.
    pub sns_message_id: String,
    /// SES `eventType` or `notificationType` (`Send`, `Delivery`, `DeliveryDelay`, ...).
    pub ses_type: Option<String>,
    pub outcome: MessageOutcome,
    /// When this service received it.
    pub received_at: DateTime<Utc>,
    /// Platform events it stored (its copies of events stored before are not counted).
    pub events_stored: u32,
    /// Whether its raw body is still archived (so it can be processed again).
    pub raw_body_kept: bool,
}

/// The timeline of one sent email.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageTimeline {
    /// Its events, oldest first.
    pub events: Vec<StoredEvent>,
    /// The archived SNS messages about it, oldest first: those that carried its events, and
    /// every SES record of it archived since the archive records `mail.messageId` (`Send`,
    /// `DeliveryDelay`, `Reject` and the others without platform events included).
    pub messages: Vec<CarrierMessage>,
}

/// What an erasure is asked to do besides deleting events and raw bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErasureRequest {
    /// Keep the address's suppression entry (and its history), so that it still stops mail
    /// reaching the person. The default.
    pub keep_suppression: bool,
}

impl Default for ErasureRequest {
    fn default() -> Self {
        Self {
            keep_suppression: true,
        }
    }
}

/// What an erasure did. Counts are of this call: a second call for the same address finds
/// nothing left and answers zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ErasureReport {
    /// `email_events` rows of the address deleted.
    pub events_deleted: u64,
    /// Archived SNS messages whose raw body was cleared (they can no longer be processed
    /// again).
    pub messages_cleared: u64,
    /// Whether the address's suppression entry was removed (only when asked to).
    pub suppression_removed: bool,
    /// Lines of the address's suppression history deleted with it.
    pub history_deleted: u64,
    /// Whether a suppression entry of the address was kept (active or not).
    pub suppression_kept: bool,
    /// When this call recorded its erasure; `None` when it found nothing to do (and recorded
    /// nothing).
    pub recorded_at: Option<DateTime<Utc>>,
    /// When the latest earlier erasure of the same address was recorded, if any.
    pub previously_erased_at: Option<DateTime<Utc>>,
}

impl ErasureReport {
    /// Whether the call deleted, cleared or removed anything.
    #[must_use]
    pub fn changed_anything(&self) -> bool {
        self.events_deleted > 0
            || self.messages_cleared > 0
            || self.suppression_removed
            || self.history_deleted > 0
    }
}

/// The key of an erasure's audit row: the lower-case hex SHA-256 of the address's
/// [`key`](Address::key) (`printf '%s' john@example.com | sha256sum` computes it for a
/// lower-case address). It confirms that a given address was erased without the audit table
/// naming anyone; like any unsalted hash of an address it can be matched against a list of
/// candidate addresses, so it is a pseudonym, not an anonymisation.
#[must_use]
pub fn erasure_hash(address: &Address) -> String {
    hex::encode(Sha256::digest(address.key().as_bytes()))
}

/// The history use cases as the API and the command line see them. Implemented by
/// [`HistoryService`].
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait EventHistory: Send + Sync {
    /// One page of the events matching `query.filter`, newest first.
    ///
    /// # Errors
    /// [`StoreError`] when the events cannot be read.
    async fn events(&self, query: EventQuery) -> Result<EventPage, StoreError>;

    /// The timeline of the sent email `ses_message_id`; `None` when nothing is known of it.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    async fn message(&self, ses_message_id: &str) -> Result<Option<MessageTimeline>, StoreError>;

    /// Erases what is stored about `address` (see [`HistoryStore::erase_recipient`]), as
    /// `actor`.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be committed (nothing was then erased).
    async fn erase(
        &self,
        address: &Address,
        request: ErasureRequest,
        actor: Actor,
    ) -> Result<ErasureReport, StoreError>;
}

/// Told of every erasure that changed something, after it is committed (metrics).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait ErasureObserver: Send + Sync {
    fn erased(&self, report: &ErasureReport);
}

/// The history use cases, on a [`HistoryStore`].
#[derive(Clone)]
pub struct HistoryService {
    store: Arc<dyn HistoryStore>,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn ErasureObserver>,
}

impl std::fmt::Debug for HistoryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryService").finish_non_exhaustive()
    }
}

impl HistoryService {
    #[must_use]
    pub fn new(
        store: Arc<dyn HistoryStore>,
        clock: Arc<dyn Clock>,
        observer: Arc<dyn ErasureObserver>,
    ) -> Self {
        Self {
            store,
            clock,
            observer,
        }
    }
}

#[async_trait]
impl EventHistory for HistoryService {
    async fn events(&self, query: EventQuery) -> Result<EventPage, StoreError> {
        if query.filter.is_empty_by_definition() {
            return Ok(EventPage {
                items: Vec::new(),
                next: None,
            });
        }
        let limit = query.limit.clamp(1, MAX_EVENTS_PAGE);
        // One more than asked tells whether there is a next page.
        let probe = EventQuery {
            limit: limit + 1,
            ..query
        };
        let mut items = self.store.list_events(probe).await?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more {
            items.last().map(|e| e.position)
        } else {
            None
        };
        Ok(EventPage { items, next })
    }

    async fn message(&self, ses_message_id: &str) -> Result<Option<MessageTimeline>, StoreError> {
        let timeline = self
            .store
            .message_timeline(ses_message_id.to_owned())
            .await?;
        Ok((!timeline.events.is_empty() || !timeline.messages.is_empty()).then_some(timeline))
    }

    async fn erase(
        &self,
        address: &Address,
        request: ErasureRequest,
        actor: Actor,
    ) -> Result<ErasureReport, StoreError> {
        // Microseconds, as both databases keep them.
        let now = self.clock.now().trunc_subsecs(6);
        let report = self
            .store
            .erase_recipient(
                address.key().to_owned(),
                erasure_hash(address),
                request,
                actor,
                now,
            )
            .await?;
        if report.changed_anything() {
            self.observer.erased(&report);
        }
        Ok(report)
    }
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoErasureObserver;

impl ErasureObserver for NoErasureObserver {
    fn erased(&self, _: &ErasureReport) {}
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
