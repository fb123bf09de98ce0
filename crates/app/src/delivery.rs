//! Event delivery's wiring: the content of outbox entries as the API shows it.

use std::collections::HashMap;
use std::sync::Arc;

use adapters_http::{EventDto, SuppressionDto};
use async_trait::async_trait;
use domain::delivery::{
    EntryContent, EntryContents, EntryData, EntrySource, OutboxEntry, OutboxStore,
};
use domain::ports::StoreError;

/// The content of entries, read from the store and shown in the API's shapes: an event as
/// `GET /api/v1/events` lists it ([`EventDto`]); a suppression-list change as the entry
/// `GET /api/v1/suppressions/{address}` shows ([`SuppressionDto`]), the entry as written for
/// an addition and as it was removed for a removal (its `createdAt` then is the removal's
/// time; the envelope's `type` says which). The shapes are the HTTP adapter's, so this glue
/// between adapters lives here, in the composition root.
#[derive(Clone)]
pub struct ApiShapedContents {
    store: Arc<dyn OutboxStore>,
}

impl std::fmt::Debug for ApiShapedContents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiShapedContents").finish_non_exhaustive()
    }
}

impl ApiShapedContents {
    pub fn new(store: Arc<dyn OutboxStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl EntryContents for ApiShapedContents {
    async fn entry_data(&self, entries: &[OutboxEntry]) -> Result<Vec<EntryContent>, StoreError> {
        let mut event_ids = Vec::new();
        let mut history_ids = Vec::new();
        for entry in entries {
            match entry.source {
                EntrySource::Event(id) => event_ids.push(id),
                EntrySource::SuppressionChange(id) => history_ids.push(id),
            }
        }
        let sources = self.store.entry_sources(event_ids, history_ids).await?;
        let content = |timestamp, value: Result<serde_json::Value, serde_json::Error>| match value {
            Ok(data) => EntryContent::Data(EntryData { timestamp, data }),
            Err(e) => EntryContent::Unreadable(format!("it could not be shown as JSON: {e}")),
        };
        let mut found: HashMap<EntrySource, EntryContent> = HashMap::new();
        for stored in sources.events {
            let source = EntrySource::Event(stored.position.id);
            let timestamp = stored.event.event_time;
            let value = serde_json::to_value(EventDto::from(stored));
            found.insert(source, content(timestamp, value));
        }
        for change in sources.changes {
            let source = EntrySource::SuppressionChange(change.id);
            let timestamp = change.entry.created_at;
            let value = serde_json::to_value(SuppressionDto::from(change.entry));
            found.insert(source, content(timestamp, value));
        }
        for (source, why) in sources.unreadable {
            found.insert(source, EntryContent::Unreadable(why));
        }
        Ok(entries
            .iter()
            .map(|entry| {
                found
                    .get(&entry.source)
                    .cloned()
                    .unwrap_or(EntryContent::Gone)
            })
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::{TimeZone, Utc};
    use domain::delivery::{EntrySources, EntryState, MockOutboxStore, SuppressionChange};
    use domain::history::{EventPosition, StoredEvent};
    use domain::suppression::{HistoryAction, SuppressionEntry, SuppressionReason};
    use domain::{EventType, PlatformEvent};
    use serde_json::json;

    use super::*;

    fn entry(id: i64, entry_id: &str, source: EntrySource) -> OutboxEntry {
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        OutboxEntry {
            id,
            sink: "crm".into(),
            entry_id: entry_id.into(),
            entry_type: "email_bounce".into(),
            source,
            state: EntryState::Pending,
            attempts: 0,
            created_at: at,
            next_attempt_at: at,
            last_error: None,
            settled_at: None,
            lease_until: Some(at),
        }
    }

    #[tokio::test]
    async fn events_and_changes_are_shown_as_the_api_shows_them_and_the_gone_as_none() {
        let event_time = Utc.with_ymd_and_hms(2026, 11, 30, 11, 0, 0).unwrap();
        let changed = Utc.with_ymd_and_hms(2026, 11, 30, 11, 0, 1).unwrap();
        let mut store = MockOutboxStore::new();
        store
            .expect_entry_sources()
            .withf(|events, changes| events == &[7, 8, 9] && changes == &[3])
            .return_once(move |_, _| {
                Ok(EntrySources {
                    events: vec![StoredEvent {
                        position: EventPosition { event_time, id: 7 },
                        event: PlatformEvent {
                            event_key: "k7".into(),
                            recipient: Some("a@example.com".into()),
                            ..PlatformEvent::new(EventType::Bounce, "ses-1", event_time)
                        },
                        sns_message_id: "sns-1".into(),
                        created_at: changed,
                    }],
                    changes: vec![SuppressionChange {
                        id: 3,
                        action: HistoryAction::Added,
                        entry: SuppressionEntry {
                            address: "a@example.com".into(),
                            reason: SuppressionReason::HardBounce,
                            created_at: changed,
                            expires_at: None,
                            ses_message_id: Some("ses-1".into()),
                            event_key: Some("k7".into()),
                            note: None,
                        },
                    }],
                    unreadable: vec![(EntrySource::Event(9), "bad row".into())],
                })
            });
        let contents = ApiShapedContents::new(Arc::new(store));
        let got = contents
            .entry_data(&[
                entry(1, "k7", EntrySource::Event(7)),
                entry(2, "k8", EntrySource::Event(8)),
                entry(3, "suppression-3", EntrySource::SuppressionChange(3)),
                entry(4, "k9", EntrySource::Event(9)),
            ])
            .await
            .unwrap();
        assert_eq!(got.len(), 4);
        let EntryContent::Data(event) = &got[0] else {
            panic!("{:?}", got[0]);
        };
        assert_eq!(event.timestamp, event_time);
        assert_eq!(event.data["eventKey"], "k7");
        assert_eq!(event.data["eventType"], "email_bounce");
        assert_eq!(event.data["recipient"], "a@example.com");
        assert_eq!(event.data["snsMessageId"], "sns-1");
        // Every key the events API writes.
        assert_eq!(
            event.data.as_object().unwrap().len(),
            adapters_http::CSV_COLUMNS.len()
        );
        assert_eq!(got[1], EntryContent::Gone, "the erased event");
        assert_eq!(got[3], EntryContent::Unreadable("bad row".into()));
        let EntryContent::Data(change) = &got[2] else {
            panic!("{:?}", got[2]);
        };
        assert_eq!(change.timestamp, changed);
        assert_eq!(
            change.data,
            json!({
                "address": "a@example.com",
                "reason": "hard_bounce",
                "createdAt": "2026-11-30T11:00:01.000000Z",
                "expiresAt": null,
                "sesMessageId": "ses-1",
                "eventKey": "k7",
                "note": null
            })
        );
    }
}
