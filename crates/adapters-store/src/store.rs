//! [`EventStore`] for [`PgStore`]: every method runs its diesel work on a blocking thread, inside
//! the caller's tracing span, in one transaction.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Timestamptz};
use domain::PlatformEvent;
use domain::ports::{ArchivedMessage, EventStore, StoreError, StoreReport, SubscriptionChange};

use crate::PgStore;
use crate::error::{from_diesel, from_join, pool_unavailable};
use crate::migrations::pending_versions;
use crate::rows::{NewEmailEvent, NewSnsMessage, SubscriptionUpsert, saturating_i32};
use crate::schema::{email_events, sns_messages};

/// Events per `INSERT` statement: 27 bind parameters each, well under PostgreSQL's 65 535.
const EVENT_BATCH: usize = 1000;

/// Upsert of one topic's subscription. A change older than the stored one (a late SNS retry)
/// is ignored, so the state only moves forward in time.
const UPSERT_SUBSCRIPTION: &str = "\
INSERT INTO sns_subscriptions AS s
    (topic_arn, state, subscribe_url, created_at, updated_at, confirmed_at, unsubscribed_at)
VALUES ($1, $2, $3, $4, $4, $5, $6)
ON CONFLICT (topic_arn) DO UPDATE SET
    state = EXCLUDED.state,
    subscribe_url = EXCLUDED.subscribe_url,
    updated_at = EXCLUDED.updated_at,
    confirmed_at = COALESCE(EXCLUDED.confirmed_at, s.confirmed_at),
    unsubscribed_at = COALESCE(EXCLUDED.unsubscribed_at, s.unsubscribed_at)
WHERE s.updated_at <= EXCLUDED.updated_at";

impl PgStore {
    /// Runs `work` with a pooled connection on the blocking thread pool, in the current span.
    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection) -> Result<T, StoreError> + Send + 'static,
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
impl EventStore for PgStore {
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
        // One insertion order for everyone, so concurrent transactions carrying the same events
        // wait for each other instead of deadlocking.
        event_rows.sort_by(|a, b| a.event_key.cmp(&b.event_key));

        let report = self
            .blocking(move |conn| {
                conn.transaction(|conn| store_notification(conn, &message_row, &event_rows))
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
            conn.transaction(|conn| {
                archive_message(conn, &message_row)?;
                diesel::sql_query(UPSERT_SUBSCRIPTION)
                    .bind::<Text, _>(&upsert.topic_arn)
                    .bind::<Text, _>(upsert.state)
                    .bind::<Nullable<Text>, _>(&upsert.subscribe_url)
                    .bind::<Timestamptz, _>(upsert.at)
                    .bind::<Nullable<Timestamptz>, _>(upsert.confirmed_at)
                    .bind::<Nullable<Timestamptz>, _>(upsert.unsubscribed_at)
                    .execute(conn)?;
                Ok(())
            })
            .map_err(|e: diesel::result::Error| from_diesel(&e))
        })
        .await
    }

    async fn health_check(&self) -> Result<(), StoreError> {
        self.blocking(|conn| {
            diesel::sql_query("SELECT 1")
                .execute(conn)
                .map_err(|e| from_diesel(&e))?;
            let pending = pending_versions(conn).map_err(|e| from_diesel(&e))?;
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

/// Archives the message unless its SNS `MessageId` is already archived. Returns the new row's id.
fn archive_message(conn: &mut PgConnection, message: &NewSnsMessage) -> QueryResult<Option<i64>> {
    diesel::insert_into(sns_messages::table)
        .values(message)
        .on_conflict(sns_messages::sns_message_id)
        .do_nothing()
        .returning(sns_messages::id)
        .get_result(conn)
        .optional()
}

/// The body of the `store_notification` transaction.
fn store_notification(
    conn: &mut PgConnection,
    message: &NewSnsMessage,
    events: &[NewEmailEvent],
) -> QueryResult<StoreReport> {
    let new_message_id = archive_message(conn, message)?;

    let mut inserted = 0_usize;
    for batch in events.chunks(EVENT_BATCH) {
        let keys: Vec<String> = diesel::insert_into(email_events::table)
            .values(batch)
            .on_conflict(email_events::event_key)
            .do_nothing()
            .returning(email_events::event_key)
            .get_results(conn)?;
        inserted += keys.len();
    }

    if let Some(id) = new_message_id
        && inserted > 0
    {
        diesel::update(sns_messages::table.find(id))
            .set(sns_messages::events_stored.eq(saturating_i32(inserted)))
            .execute(conn)?;
    }

    Ok(StoreReport {
        message_was_new: new_message_id.is_some(),
        events_inserted: inserted,
        events_duplicate: events.len() - inserted,
    })
}
