//! [`EventStore`] for [`Store`]: every method runs its diesel work on a blocking thread, inside
//! the caller's tracing span, in one transaction, on whichever backend the store uses.

use async_trait::async_trait;
use diesel::prelude::*;
use domain::PlatformEvent;
use domain::ports::{ArchivedMessage, EventStore, StoreError, StoreReport, SubscriptionChange};

use crate::Store;
use crate::connection::{AnyConnection, on_backend};
use crate::error::{from_diesel, from_join, pool_unavailable};
use crate::migrations::pending_versions;
use crate::rows::{NewEmailEvent, NewSnsMessage, SubscriptionUpsert};
use crate::statements;

impl Store {
    /// Runs `work` with a pooled connection on the blocking thread pool, in the current span.
    pub(crate) async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let mut conn = store.conn().map_err(|e| pool_unavailable(&e))?;
                work(&mut conn)
            })
        })
        .await
        .map_err(|e| from_join(&e))?
    }
}

#[async_trait]
impl EventStore for Store {
    async fn store_notification(
        &self,
        message: &ArchivedMessage,
        events: &[PlatformEvent],
    ) -> Result<StoreReport, StoreError> {
        let message_row = NewSnsMessage::from(message);
        let mut event_rows: Vec<NewEmailEvent> = events
            .iter()
            .map(|event| NewEmailEvent::new(event, &message.sns_message_id))
            .collect();
        // One insertion order for everyone, so concurrent PostgreSQL transactions carrying the
        // same events wait for each other instead of deadlocking.
        event_rows.sort_by(|a, b| a.event_key.cmp(&b.event_key));

        let report = self
            .blocking(move |conn| {
                on_backend!(conn, c => statements::store_notification(c, &message_row, &event_rows))
                    .map_err(|e| from_diesel(&e))
            })
            .await?;
        tracing::debug!(
            sns_message_id = %message.sns_message_id,
            message_was_new = report.message_was_new,
            events_inserted = report.events_inserted,
            events_duplicate = report.events_duplicate,
            "notification stored"
        );
        Ok(report)
    }

    async fn record_subscription(
        &self,
        message: &ArchivedMessage,
        change: &SubscriptionChange,
    ) -> Result<(), StoreError> {
        let message_row = NewSnsMessage::from(message);
        let upsert = SubscriptionUpsert::from(change);
        self.blocking(move |conn| {
            on_backend!(conn, c => statements::record_subscription(c, &message_row, &upsert))
                .map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn health_check(&self) -> Result<(), StoreError> {
        self.blocking(|conn| {
            // Backend-neutral: runs on the MultiConnection itself.
            diesel::sql_query("SELECT 1")
                .execute(conn)
                .map_err(|e| from_diesel(&e))?;
            let pending =
                on_backend!(conn, c => pending_versions(c)).map_err(|e| from_diesel(&e))?;
            if pending.is_empty() {
                Ok(())
            } else {
                Err(StoreError::Failed(format!(
                    "database schema is not up to date: {} migration(s) pending ({})",
                    pending.len(),
                    pending.join(", ")
                )))
            }
        })
        .await
    }
}
