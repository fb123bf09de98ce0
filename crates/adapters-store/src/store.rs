//! [`EventStore`] for [`Store`]: notifications go to the group-commit writers (`writer.rs`); the
//! other methods run their diesel work on a blocking thread, inside the caller's tracing span, in
//! one transaction, on whichever backend the store uses.

use async_trait::async_trait;
use diesel::prelude::*;
use domain::PlatformEvent;
use domain::ports::{ArchivedMessage, EventStore, StoreError, StoreReport, SubscriptionChange};

use crate::Store;
use crate::connection::{AnyConnection, on_backend};
use crate::error::{from_diesel, from_join, pool_unavailable};
use crate::migrations::pending_versions;
use crate::rows::{NewSnsMessage, SubscriptionUpsert};
use crate::statements;
use crate::writer::Notification;

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
        self.writer.write(Notification::new(message, events)).await
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
