//! [`MessageArchive`] for [`Store`]: re-processing archived messages and purging old raw bodies.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::PlatformEvent;
use domain::ports::{
    MessageArchive, MessageOutcome, ReprocessFilter, Reprocessed, StoreError, StoreReport,
    StoredMessage,
};

use crate::Store;
use crate::connection::on_backend;
use crate::error::from_diesel;
use crate::rows::NewEmailEvent;
use crate::sql_types::TimeParam;
use crate::statements::{self, Statements};

#[async_trait]
impl MessageArchive for Store {
    async fn reprocess_candidates(
        &self,
        filter: &ReprocessFilter,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let filter = filter.clone();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .blocking(move |conn| {
                on_backend!(conn, c => c.reprocess_candidates(&filter, after_id, limit))
                    .map_err(|e| from_diesel(&e))
            })
            .await?;
        rows.into_iter()
            .filter_map(|(id, sns_message_id, outcome, raw_body)| {
                Some((id, sns_message_id, outcome, raw_body?))
            })
            .map(|(id, sns_message_id, outcome, raw_body)| {
                let outcome = MessageOutcome::parse(&outcome).ok_or_else(|| {
                    StoreError::Failed(format!(
                        "sns_messages row {id} has an unknown outcome `{outcome}`"
                    ))
                })?;
                Ok(StoredMessage {
                    id,
                    sns_message_id,
                    outcome,
                    raw_body,
                })
            })
            .collect()
    }

    async fn store_reprocessed(
        &self,
        update: Reprocessed,
        events: Vec<PlatformEvent>,
    ) -> Result<StoreReport, StoreError> {
        let triggers = self.hook.triggers(&events);
        let hook = self.hook.clone();
        let mut event_rows: Vec<NewEmailEvent> = events
            .into_iter()
            .map(|event| NewEmailEvent::new(event, &update.sns_message_id))
            .collect();
        event_rows.sort_by(|a, b| a.event_key.cmp(&b.event_key));
        let (report, added) = self
            .blocking(move |conn| {
                on_backend!(conn, c => statements::store_reprocessed(c, &update, &event_rows, triggers, &hook))
                    .map_err(|e| from_diesel(&e))
            })
            .await?;
        self.hook.written(&added);
        Ok(report)
    }

    async fn purge_raw_bodies(
        &self,
        cutoff: DateTime<Utc>,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let batch = i64::try_from(batch).unwrap_or(i64::MAX);
        self.blocking(move |conn| {
            on_backend!(conn, c => c.write_transaction(|c| c.purge_raw_bodies(TimeParam(cutoff), batch)))
                .map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn purge_messages(
        &self,
        cutoff: DateTime<Utc>,
        batch: usize,
    ) -> Result<usize, StoreError> {
        crate::history::purge_messages(self, cutoff, batch).await
    }
}
