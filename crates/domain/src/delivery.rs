//! Delivery of events to the sender's systems through the transactional outbox.
//!
//! Every newly stored platform event, and every change to the suppression list, becomes one
//! outbox entry per configured sink that takes its type, in the transaction that stores it (the
//! store writes them; see `docs/data-contract.md`, `outbox`). A relay delivers the entries at
//! least once, each always under the same [`OutboxEntry::entry_id`], so that consumers can
//! deduplicate.

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};

use crate::EventType;
use crate::history::StoredEvent;
use crate::ports::StoreError;
use crate::suppression::{HistoryAction, SuppressionEntry};

mod relay;
mod service;
pub use relay::{
    EntryContent, EntryContents, EntryData, GONE, OutboundMessage, Relay, RelayPass, RelaySettings,
    SinkClient, envelope,
};
#[cfg(any(test, feature = "mock"))]
pub use relay::{MockEntryContents, MockSinkClient};
#[cfg(any(test, feature = "mock"))]
pub use service::MockDeliveries;
pub use service::{Deliveries, DeliveryError, DeliveryService, MAX_REPLAY_IDS};

/// The entry type of a suppression-list entry added (or replaced by one that outranks it).
pub const SUPPRESSION_ADDED: &str = "suppression.added";
/// The entry type of a suppression-list entry removed.
pub const SUPPRESSION_REMOVED: &str = "suppression.removed";

/// Every entry type a sink may take: the five platform event types, then
/// [`SUPPRESSION_ADDED`] and [`SUPPRESSION_REMOVED`].
pub const ENTRY_TYPES: [&str; 7] = [
    EventType::Delivered.as_str(),
    EventType::Bounce.as_str(),
    EventType::SpamReport.as_str(),
    EventType::Open.as_str(),
    EventType::Click.as_str(),
    SUPPRESSION_ADDED,
    SUPPRESSION_REMOVED,
];

/// The longest sink name, in bytes.
pub const MAX_SINK_NAME_LEN: usize = 64;

/// Whether `name` may name a sink: 1 to [`MAX_SINK_NAME_LEN`] ASCII letters, digits, `_` or
/// `-` (it appears in metric labels, URLs and the command line).
pub fn is_sink_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SINK_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A sink as the outbox sees it: its name and the entry types it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkFilter {
    /// The sink's `name` (see [`is_sink_name`]).
    pub name: String,
    /// The entry types it takes (each one of [`ENTRY_TYPES`]); `None`: every type.
    pub entry_types: Option<Vec<String>>,
}

impl SinkFilter {
    /// Whether the sink takes entries of `entry_type`.
    pub fn takes(&self, entry_type: &str) -> bool {
        self.entry_types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == entry_type))
    }
}

/// Where an outbox entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryState {
    /// Not delivered yet; attempted again at its next attempt time.
    Pending,
    /// Delivered (the sink acknowledged it).
    Delivered,
    /// Its sink's retry schedule ran out: delivered again only by a replay.
    Dead,
}

impl EntryState {
    /// `pending`, `delivered` or `dead`, as stored and as the API shows it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    /// The state `value` names ([`EntryState::as_str`]), if any.
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Dead]
            .into_iter()
            .find(|s| s.as_str() == value)
    }
}

/// What an outbox entry carries: a reference to the stored event or suppression-list change,
/// whose content is read when the entry is delivered (an erased event is never delivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntrySource {
    /// The row id of the event (`email_events.id`).
    Event(i64),
    /// The row id of the change (`suppression_history.id`).
    SuppressionChange(i64),
}

/// One outbox entry: what is to be delivered to one sink, and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The entry's row id (its place in the outbox; the API's cursor).
    pub id: i64,
    /// The sink it is for.
    pub sink: String,
    /// The id the consumer deduplicates by, the same on every attempt: the event key, or
    /// `suppression-` followed by the change's row id.
    pub entry_id: String,
    /// One of [`ENTRY_TYPES`].
    pub entry_type: String,
    pub source: EntrySource,
    pub state: EntryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the entry was written (with the event or the change).
    pub created_at: DateTime<Utc>,
    /// When it is due next (pending entries).
    pub next_attempt_at: DateTime<Utc>,
    /// What the last failed attempt got (status, timeout, connection error), if any.
    pub last_error: Option<String>,
    /// When it was delivered or became dead.
    pub settled_at: Option<DateTime<Utc>>,
    /// Until when the relay that claimed it holds it (see [`OutboxStore::claim_entries`]);
    /// also the claim's token: an outcome is recorded only under the claim it was made in.
    pub lease_until: Option<DateTime<Utc>>,
}

/// What became of one attempt to deliver a claimed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The sink acknowledged it.
    Delivered,
    /// It failed; attempt it again at `at`.
    Retry { at: DateTime<Utc>, error: String },
    /// It failed and its sink's schedule has run out.
    Dead { error: String },
}

/// The outcome of an attempt on a claimed entry, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The entry's row id.
    pub id: i64,
    /// The claim's [`OutboxEntry::lease_until`]: if the entry was claimed again since (the
    /// lease ran out), the outcome is not recorded.
    pub lease_until: DateTime<Utc>,
    /// When the attempt was made.
    pub attempted_at: DateTime<Utc>,
    pub outcome: AttemptOutcome,
}

/// The delays between a sink's attempts: after the `n`th failed attempt, the next comes
/// `delays[n - 1]` later, give or take [`RetrySchedule::JITTER`]; after the last, the entry is
/// dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<TimeDelta>,
}

impl RetrySchedule {
    /// The default delays, in seconds: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 27.6
    /// hours from the first attempt to the last).
    pub const DEFAULT_SECS: [u64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];

    /// The share of each delay by which an attempt may come earlier or later, so that the
    /// entries that failed together are not all attempted again at the same instant.
    pub const JITTER: f64 = 0.1;

    /// The longest delay: 365 days (a longer one is taken as this).
    pub const MAX_DELAY_SECS: u64 = 365 * 24 * 3600;

    /// A schedule of `delays_secs` (seconds, each at most [`Self::MAX_DELAY_SECS`]; an empty
    /// list: one attempt, then dead).
    pub fn from_secs(delays_secs: &[u64]) -> Self {
        Self {
            delays: delays_secs
                .iter()
                .map(|&s| {
                    // At most MAX_DELAY_SECS, so within i64 and TimeDelta's range.
                    let s = i64::try_from(s.min(Self::MAX_DELAY_SECS)).unwrap_or(0);
                    TimeDelta::seconds(s)
                })
                .collect(),
        }
    }

    /// How many attempts an entry gets in all.
    pub fn attempts(&self) -> usize {
        self.delays.len() + 1
    }

    /// When to attempt again after `failed_attempts` attempts (counting the one just made)
    /// failed, the last at `now`; `None` when the schedule has run out. `jitter` is a number
    /// in `[0, 1)` (uniformly random in use): 0 comes [`Self::JITTER`] early, 0.5 on time.
    pub fn next_attempt(
        &self,
        failed_attempts: u32,
        now: DateTime<Utc>,
        jitter: f64,
    ) -> Option<DateTime<Utc>> {
        let index = usize::try_from(failed_attempts).ok()?.checked_sub(1)?;
        let delay = *self.delays.get(index)?;
        let factor = 1.0 + Self::JITTER * (2.0 * jitter.clamp(0.0, 1.0) - 1.0);
        let millis = delay.num_milliseconds() as f64 * factor;
        // Never negative, and at most 1.1 x MAX_DELAY_SECS in milliseconds: within i64.
        #[allow(clippy::cast_possible_truncation)]
        let delay = TimeDelta::milliseconds(millis.max(0.0) as i64);
        now.checked_add_signed(delay)
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self::from_secs(&Self::DEFAULT_SECS)
    }
}

/// Which entries to list, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryQuery {
    /// Only this sink's entries.
    pub sink: Option<String>,
    /// Only entries in this state.
    pub state: Option<EntryState>,
    /// Only entries with a row id greater than this (the next page).
    pub after_id: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

/// What [`OutboxStore::sync_sinks`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkSync {
    /// The sinks the database knew that the settings no longer name: nothing is written for
    /// them any more, and no relay works their entries (which stay as they are).
    pub removed: Vec<String>,
}

/// A change to the suppression list, as an entry delivers it: what was done, and the entry as
/// it was written (added) or as it was when removed (`created_at`: the change's time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionChange {
    /// The change's row id ([`EntrySource::SuppressionChange`]).
    pub id: i64,
    pub action: HistoryAction,
    pub entry: SuppressionEntry,
}

/// What [`OutboxStore::entry_sources`] found: the events and changes that still exist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntrySources {
    /// The events, each with its row id in `position.id`.
    pub events: Vec<StoredEvent>,
    pub changes: Vec<SuppressionChange>,
    /// Rows that exist but could not be read, with why: each fails its own entry's attempt,
    /// never the others'.
    pub unreadable: Vec<(EntrySource, String)>,
}

/// Which entries a replay delivers again (`POST /api/v1/deliveries/replay`,
/// `ses-webhook deliveries replay`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayScope {
    /// Every entry of `sink` in `state` ([`EntryState::Dead`] or [`EntryState::Delivered`]),
    /// written at or after `since` when given.
    State {
        sink: String,
        state: EntryState,
        since: Option<DateTime<Utc>>,
    },
    /// The entries of `sink` with these entry ids (event keys, `suppression-<id>`), whatever
    /// their state; an entry no longer in the outbox (a delivered one purged) is written again
    /// when its event or change still exists and the sink takes its type.
    Entries {
        sink: String,
        entry_ids: Vec<String>,
    },
}

impl ReplayScope {
    /// The sink replayed to.
    pub fn sink(&self) -> &str {
        match self {
            Self::State { sink, .. } | Self::Entries { sink, .. } => sink,
        }
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayOutcome {
    /// Entries made pending again (or written again), due at once.
    pub replayed: usize,
    /// The requested entry ids with no event or change that the sink takes
    /// ([`ReplayScope::Entries`] only).
    pub not_found: Vec<String>,
}

/// The state of one sink's entries, for the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkBacklog {
    pub sink: String,
    /// Entries not delivered yet (due or waiting for their next attempt).
    pub pending: u64,
    /// When the oldest pending entry was written, if any.
    pub oldest_pending: Option<DateTime<Utc>>,
    /// Entries whose schedule ran out.
    pub dead: u64,
}

/// The outbox in the store.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Makes `sinks` the set of sinks entries are written for, from the next transaction on:
    /// every server sharing the database writes the entries of every sink, so all of them must
    /// have the same sinks.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be reached or refuses the change.
    async fn sync_sinks(&self, sinks: Vec<SinkFilter>) -> Result<SinkSync, StoreError>;

    /// The entries `query` selects, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be reached.
    async fn outbox_entries(&self, query: EntryQuery) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Claims up to `limit` of `sink`'s pending entries that are due at `now` and not claimed
    /// (or whose claim's lease ran out), earliest due first, for `lease`: until `now + lease`
    /// no other relay claims them (on PostgreSQL, several servers claim concurrently without
    /// waiting for each other: `FOR UPDATE SKIP LOCKED`). A relay killed mid-delivery leaves
    /// its claims to run out; the entries are then claimed again and delivered again, under
    /// the same entry id.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be reached.
    async fn claim_entries(
        &self,
        sink: String,
        limit: usize,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Records the outcomes of attempts on claimed entries, in one transaction, and releases
    /// their claims. An outcome whose claim is no longer the entry's (its lease ran out and
    /// another relay claimed it) is not recorded. Returns how many were recorded.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be committed.
    async fn settle_entries(&self, settlements: Vec<Settlement>) -> Result<usize, StoreError>;

    /// The events with the row ids `event_ids` and the suppression-list changes with the row
    /// ids `history_ids` that still exist (an erasure or retention may have removed some), in
    /// any order.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    async fn entry_sources(
        &self,
        event_ids: Vec<i64>,
        history_ids: Vec<i64>,
    ) -> Result<EntrySources, StoreError>;

    /// Makes the entries `scope` selects pending again, due at `now`, with no claim and their
    /// attempts counted from 0 (the sink's whole schedule again), in one transaction.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be reached or nothing could be committed.
    async fn replay_entries(
        &self,
        scope: ReplayScope,
        now: DateTime<Utc>,
    ) -> Result<ReplayOutcome, StoreError>;

    /// Deletes up to `limit` delivered entries delivered before `before`, oldest first;
    /// returns how many.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be reached.
    async fn purge_delivered(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, StoreError>;

    /// The pending and dead entries of every sink that has any, by sink name.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    async fn backlog(&self) -> Result<Vec<SinkBacklog>, StoreError>;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_without_types_takes_every_entry_and_one_with_types_only_those() {
        let all = SinkFilter {
            name: "all".into(),
            entry_types: None,
        };
        let bounces = SinkFilter {
            name: "bounces".into(),
            entry_types: Some(vec!["email_bounce".into(), SUPPRESSION_ADDED.into()]),
        };
        for t in ENTRY_TYPES {
            assert!(all.takes(t), "{t}");
        }
        assert!(bounces.takes("email_bounce"));
        assert!(bounces.takes(SUPPRESSION_ADDED));
        assert!(!bounces.takes("email_delivered"));
        assert!(!bounces.takes(SUPPRESSION_REMOVED));
    }

    #[test]
    fn sink_names_are_short_words() {
        assert!(is_sink_name("crm-hooks_2"));
        assert!(is_sink_name(&"a".repeat(MAX_SINK_NAME_LEN)));
        for bad in ["", "a b", "a/b", "ä", &"a".repeat(MAX_SINK_NAME_LEN + 1)] {
            assert!(!is_sink_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_schedule_spaces_attempts_by_its_delays_with_jitter_then_gives_up() {
        let now = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let schedule = RetrySchedule::from_secs(&[10, 100]);
        assert_eq!(schedule.attempts(), 3);
        // On time with a jitter of 0.5; 10% early at 0, 10% late towards 1.
        assert_eq!(
            schedule.next_attempt(1, now, 0.5),
            Some(now + TimeDelta::seconds(10))
        );
        assert_eq!(
            schedule.next_attempt(1, now, 0.0),
            Some(now + TimeDelta::seconds(9))
        );
        assert_eq!(
            schedule.next_attempt(2, now, 0.999_999_9),
            Some(now + TimeDelta::milliseconds(109_999))
        );
        // After the third attempt (and before any), nothing.
        assert_eq!(schedule.next_attempt(3, now, 0.5), None);
        assert_eq!(schedule.next_attempt(0, now, 0.5), None);
        // Out-of-range jitter is clamped.
        assert_eq!(
            schedule.next_attempt(1, now, 7.0),
            Some(now + TimeDelta::seconds(11))
        );
        let once = RetrySchedule::from_secs(&[]);
        assert_eq!(once.attempts(), 1);
        assert_eq!(once.next_attempt(1, now, 0.5), None);
        assert_eq!(RetrySchedule::default().attempts(), 8);
        // A delay beyond a year is a year.
        let long = RetrySchedule::from_secs(&[u64::MAX]);
        assert_eq!(
            long.next_attempt(1, now, 0.5),
            Some(now + TimeDelta::days(365))
        );
    }

    #[test]
    fn states_read_back_as_written() {
        for s in [EntryState::Pending, EntryState::Delivered, EntryState::Dead] {
            assert_eq!(EntryState::parse(s.as_str()), Some(s));
        }
        assert_eq!(EntryState::parse("Pending"), None);
    }
}
