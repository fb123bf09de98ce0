//! Delivery of events to the sender's systems through the transactional outbox.
//!
//! Every newly stored platform event, and every change to the suppression list, becomes one
//! outbox entry per configured sink that takes its type, in the transaction that stores it (the
//! store writes them; see `docs/delivery.md`). A relay delivers the entries at least once, each
//! always under the same [`OutboxEntry::entry_id`], so that consumers can deduplicate.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::EventType;
use crate::ports::StoreError;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// them any more; their entries stay until delivered entries are purged.
    pub removed: Vec<String>,
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
}

#[cfg(test)]
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
    fn states_read_back_as_written() {
        for s in [EntryState::Pending, EntryState::Delivered, EntryState::Dead] {
            assert_eq!(EntryState::parse(s.as_str()), Some(s));
        }
        assert_eq!(EntryState::parse("Pending"), None);
    }
}
