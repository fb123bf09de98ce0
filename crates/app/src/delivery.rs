//! Event delivery's wiring: the content of outbox entries as the API shows it, the sinks'
//! adapters built from the settings, and the background tasks (one relay per sink, the outbox
//! gauges, the purge of delivered entries).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use adapters_http::{EventDto, SuppressionDto};
use async_trait::async_trait;
use domain::delivery::{
    EntryContent, EntryContents, EntryData, EntrySource, OutboxEntry, OutboxStore, Relay,
    RelaySettings, SinkClient,
};
use domain::ports::StoreError;
use domain::ports::SystemClock;

use crate::metrics::Metrics;
use crate::settings::{OutboxSettings, SettingsError, SinkConfig, SinkKind, sink_key};

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

/// The adapter of a sink.
///
/// # Errors
/// [`SettingsError::Invalid`] naming the sink's key when the adapter refuses its settings
/// (a NATS credentials file that cannot be read, a subject template that is not valid). A
/// server that cannot be reached is no error: deliveries fail, and are retried, until it can.
pub async fn build_sink(config: &SinkConfig) -> Result<Arc<dyn SinkClient>, SettingsError> {
    let key = |field: &str| sink_key(0, config.name(), field);
    match &config.kind {
        SinkKind::Webhook(settings) => adapters_sinks::WebhookSink::new(settings.clone())
            .map(|sink| Arc::new(sink) as Arc<dyn SinkClient>)
            .map_err(|e| SettingsError::Invalid {
                key: key("url").into(),
                reason: e.to_string(),
            }),
        SinkKind::Nats(settings) => {
            use adapters_sinks::NatsSetupError as E;
            adapters_sinks::NatsSink::new(settings.clone())
                .await
                .map(|sink| Arc::new(sink) as Arc<dyn SinkClient>)
                .map_err(|e| {
                    let field = match &e {
                        E::Scheme(_) | E::NoHost => "url",
                        E::Stream(_) => "stream",
                        E::Subject { .. } => "subject",
                        E::Credentials { .. } => "credentials_file",
                        E::NoTimeout => "timeout_secs",
                        E::NoConcurrency => "concurrency",
                        _ => "type",
                    };
                    SettingsError::Invalid {
                        key: key(field).into(),
                        reason: e.to_string(),
                    }
                })
        }
    }
}

/// How often the outbox gauges are read from the store.
const BACKLOG_EVERY: Duration = Duration::from_secs(10);

/// The delivery tasks of a server: stopped by [`DeliveryTasks::stop`].
#[derive(Debug)]
pub struct DeliveryTasks {
    stop: tokio::sync::watch::Sender<bool>,
    relays: Vec<tokio::task::JoinHandle<()>>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl DeliveryTasks {
    /// Starts one relay per sink of `sinks` (each with its adapter), the outbox gauges and the
    /// purge of delivered entries older than `outbox.keep_delivered_hours` (every
    /// `purge_every`, `purge_batch` rows at a time). Without sinks, only the purge runs (entries
    /// of sinks since removed may remain).
    pub fn start(
        store: Arc<dyn OutboxStore>,
        sinks: Vec<(SinkConfig, Arc<dyn SinkClient>)>,
        outbox: &OutboxSettings,
        metrics: Arc<Metrics>,
        purge_every: Duration,
        purge_batch: usize,
    ) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let contents: Arc<dyn EntryContents> = Arc::new(ApiShapedContents::new(Arc::clone(&store)));
        let names: Vec<String> = sinks.iter().map(|(c, _)| c.name().to_owned()).collect();
        let poll = Duration::from_millis(outbox.poll_interval_ms);
        let relays = sinks
            .into_iter()
            .map(|(config, client)| {
                let relay = Relay::new(
                    RelaySettings {
                        sink: config.name().to_owned(),
                        batch: outbox.relay_batch,
                        lease: outbox.lease(&config),
                        schedule: config.schedule.clone(),
                    },
                    Arc::clone(&store),
                    Arc::clone(&contents),
                    client,
                    Arc::new(SystemClock),
                );
                tokio::spawn(run_relay(
                    relay,
                    outbox.relay_batch,
                    poll,
                    Arc::clone(&metrics),
                    stopped.clone(),
                ))
            })
            .collect();
        let mut background = Vec::new();
        if !names.is_empty() {
            metrics.set_outbox_backlog(&names, &[]);
            let (store, metrics) = (Arc::clone(&store), Arc::clone(&metrics));
            background.push(tokio::spawn(async move {
                let mut interval = tokio::time::interval(BACKLOG_EVERY);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    interval.tick().await;
                    match store.backlog().await {
                        Ok(backlog) => metrics.set_outbox_backlog(&names, &backlog),
                        Err(error) => tracing::warn!(%error, "reading the outbox backlog failed"),
                    }
                }
            }));
        }
        let keep = chrono::TimeDelta::hours(i64::from(outbox.keep_delivered_hours));
        background.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval(purge_every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let before = chrono::Utc::now() - keep;
                let mut purged = 0;
                loop {
                    match store.purge_delivered(before, purge_batch).await {
                        Ok(n) => {
                            purged += n;
                            metrics.retention_deleted("delivered_outbox_entries", n);
                            if n < purge_batch {
                                break;
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, "purging delivered outbox entries failed; retrying at the next interval");
                            break;
                        }
                    }
                }
                if purged > 0 {
                    tracing::info!(purged, "delivered outbox entries purged");
                }
            }
        }));
        Self {
            stop,
            relays,
            background,
        }
    }

    /// Adds a task to stop with the others.
    pub fn add_background(&mut self, task: tokio::task::JoinHandle<()>) {
        self.background.push(task);
    }

    /// Stops the relays after their current pass (waiting at most `timeout`; a pass cut off
    /// leaves its claims to run out, and those entries are delivered again later under the
    /// same ids) and the background tasks.
    pub async fn stop(mut self, timeout: Duration) {
        let _ = self.stop.send(true);
        for task in &self.background {
            task.abort();
        }
        let handles = std::mem::take(&mut self.relays);
        let relays = async {
            for relay in handles {
                let _ = relay.await;
            }
        };
        if tokio::time::timeout(timeout, relays).await.is_err() {
            tracing::warn!(
                "relays still delivering when the shutdown timeout ran out; their entries are \
                 delivered again after their claims run out (same ids)"
            );
        }
    }
}

impl Drop for DeliveryTasks {
    /// Tasks not stopped by [`DeliveryTasks::stop`] (a server that failed to start) are
    /// aborted: none outlives its server.
    fn drop(&mut self) {
        for task in self.relays.iter().chain(&self.background) {
            task.abort();
        }
    }
}

/// One sink's relay: a pass, then at once another when the pass claimed a whole batch (there
/// is more), else a wait of `poll`; until `stopped`.
async fn run_relay(
    relay: Relay,
    batch: usize,
    poll: Duration,
    metrics: Arc<Metrics>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let sink = relay.sink().to_owned();
    let mut failing = false;
    while !*stopped.borrow() {
        match relay.run_once().await {
            Ok(pass) => {
                metrics.relay_pass(&sink, &pass);
                if failing {
                    tracing::info!(sink, "the outbox can be read again");
                    failing = false;
                }
                if pass.retried > 0 || pass.dead > 0 {
                    tracing::warn!(
                        sink,
                        delivered = pass.delivered,
                        retried = pass.retried,
                        dead = pass.dead,
                        "deliveries failed"
                    );
                }
                if pass.claimed >= batch {
                    continue;
                }
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(sink, %error, "a relay pass failed; trying again");
                }
                failing = true;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            // A stop, or the tasks dropped without one: either way, stop.
            changed = stopped.changed() => if changed.is_err() {
                return;
            },
        }
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
