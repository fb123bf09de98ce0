//! The deliveries use case: listing outbox entries and replaying them, for the API and the
//! command line.

use std::sync::Arc;

use async_trait::async_trait;

use super::{EntryQuery, EntryState, OutboxEntry, OutboxStore, ReplayOutcome, ReplayScope};
use crate::ports::{Clock, StoreError};

/// The most entry ids one replay may name.
pub const MAX_REPLAY_IDS: usize = 1000;

/// Why a deliveries request was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No `[[sinks]]` entry has this name.
    #[error("no sink is named {sink:?}; the sinks are: {known}")]
    UnknownSink {
        sink: String,
        /// The configured names, comma-separated (`none` when there are none).
        known: String,
    },
    /// A replay by state names a state that cannot be replayed.
    #[error("only dead or delivered entries can be replayed, not {0} ones")]
    NotReplayable(&'static str),
    /// A replay by entry ids with none, or with more than [`MAX_REPLAY_IDS`].
    #[error("name 1 to {MAX_REPLAY_IDS} entry ids, not {0}")]
    ReplayIdCount(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Inbound port: the outbox as the API and the command line see it.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Deliveries: Send + Sync {
    /// The configured sinks' names, in the settings' order.
    fn sinks(&self) -> Vec<String>;

    /// The entries `query` selects, oldest first.
    ///
    /// # Errors
    /// [`DeliveryError::UnknownSink`] when `query.sink` names no configured sink (entries of a
    /// sink removed from the settings stay listed under no filter);
    /// [`DeliveryError::Store`] when the store cannot be read.
    async fn entries(&self, query: EntryQuery) -> Result<Vec<OutboxEntry>, DeliveryError>;

    /// Delivers the entries `scope` selects again, at once, with the sink's whole retry
    /// schedule.
    ///
    /// # Errors
    /// [`DeliveryError::UnknownSink`], [`DeliveryError::NotReplayable`] (a state other than
    /// dead or delivered), [`DeliveryError::ReplayIdCount`], [`DeliveryError::Store`].
    async fn replay(&self, scope: ReplayScope) -> Result<ReplayOutcome, DeliveryError>;
}

/// [`Deliveries`] over the outbox store, for the configured sinks.
pub struct DeliveryService {
    store: Arc<dyn OutboxStore>,
    sinks: Vec<String>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DeliveryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryService")
            .field("sinks", &self.sinks)
            .finish_non_exhaustive()
    }
}

impl DeliveryService {
    /// The service for the sinks named `sinks`.
    pub fn new(store: Arc<dyn OutboxStore>, sinks: Vec<String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            sinks,
            clock,
        }
    }

    fn known(&self, sink: &str) -> Result<(), DeliveryError> {
        if self.sinks.iter().any(|s| s == sink) {
            Ok(())
        } else {
            Err(DeliveryError::UnknownSink {
                sink: sink.to_owned(),
                known: if self.sinks.is_empty() {
                    "none".to_owned()
                } else {
                    self.sinks.join(", ")
                },
            })
        }
    }
}

#[async_trait]
impl Deliveries for DeliveryService {
    fn sinks(&self) -> Vec<String> {
        self.sinks.clone()
    }

    async fn entries(&self, query: EntryQuery) -> Result<Vec<OutboxEntry>, DeliveryError> {
        if let Some(sink) = &query.sink {
            self.known(sink)?;
        }
        Ok(self.store.outbox_entries(query).await?)
    }

    async fn replay(&self, scope: ReplayScope) -> Result<ReplayOutcome, DeliveryError> {
        self.known(scope.sink())?;
        match &scope {
            ReplayScope::State { state, .. } if *state == EntryState::Pending => {
                return Err(DeliveryError::NotReplayable(state.as_str()));
            }
            ReplayScope::Entries { entry_ids, .. }
                if entry_ids.is_empty() || entry_ids.len() > MAX_REPLAY_IDS =>
            {
                return Err(DeliveryError::ReplayIdCount(entry_ids.len()));
            }
            _ => {}
        }
        Ok(self.store.replay_entries(scope, self.clock.now()).await?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::{DateTime, Utc};
    use mockall::predicate::eq;

    use super::*;
    use crate::delivery::MockOutboxStore;
    use crate::ports::MockClock;

    fn now() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn service(store: MockOutboxStore) -> DeliveryService {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(now());
        DeliveryService::new(
            Arc::new(store),
            vec!["crm".into(), "stream".into()],
            Arc::new(clock),
        )
    }

    #[tokio::test]
    async fn a_replay_reaches_the_store_only_for_a_known_sink_and_a_replayable_scope() {
        let dead = ReplayScope::State {
            sink: "crm".into(),
            state: EntryState::Dead,
            since: None,
        };
        let mut store = MockOutboxStore::new();
        store
            .expect_replay_entries()
            .with(eq(dead.clone()), eq(now()))
            .times(1)
            .returning(|_, _| {
                Ok(ReplayOutcome {
                    replayed: 3,
                    not_found: Vec::new(),
                })
            });
        let service = service(store);
        assert_eq!(service.replay(dead).await.unwrap().replayed, 3);

        let unknown = service
            .replay(ReplayScope::State {
                sink: "nope".into(),
                state: EntryState::Dead,
                since: None,
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&unknown, DeliveryError::UnknownSink { sink, known } if sink == "nope" && known == "crm, stream"),
            "{unknown:?}"
        );
        let pending = service
            .replay(ReplayScope::State {
                sink: "crm".into(),
                state: EntryState::Pending,
                since: None,
            })
            .await
            .unwrap_err();
        assert!(matches!(pending, DeliveryError::NotReplayable("pending")));
        for count in [0, MAX_REPLAY_IDS + 1] {
            let error = service
                .replay(ReplayScope::Entries {
                    sink: "crm".into(),
                    entry_ids: vec!["k".into(); count],
                })
                .await
                .unwrap_err();
            assert!(
                matches!(error, DeliveryError::ReplayIdCount(n) if n == count),
                "{error:?}"
            );
        }
    }

    #[tokio::test]
    async fn listing_by_an_unknown_sink_is_refused_and_without_a_sink_lists_all() {
        let mut store = MockOutboxStore::new();
        store
            .expect_outbox_entries()
            .withf(|q| q.sink.is_none() && q.limit == 10)
            .times(1)
            .returning(|_| Ok(Vec::new()));
        let service = service(store);
        let query = |sink: Option<&str>| EntryQuery {
            sink: sink.map(str::to_owned),
            state: None,
            after_id: None,
            limit: 10,
        };
        assert!(service.entries(query(None)).await.unwrap().is_empty());
        assert!(matches!(
            service.entries(query(Some("gone"))).await,
            Err(DeliveryError::UnknownSink { .. })
        ));
        assert_eq!(service.sinks(), vec!["crm".to_owned(), "stream".to_owned()]);
    }
}
