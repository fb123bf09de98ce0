//! The transactional outbox (`outbox`, `delivery_sinks`, `delivery_sink_types`).
//!
//! The entries themselves are written by the database: triggers on `email_events` and
//! `suppression_history` (see the `delivery_outbox` migrations) add one entry per sink in
//! `delivery_sinks` that takes the row's type, in the statement that inserts the row. So every
//! path that stores an event or changes the suppression list (the group-commit batch on either
//! backend, `reprocess`, the API, the policy) writes its entries in its own transaction, and a
//! duplicate, which inserts nothing, adds nothing. This module keeps `delivery_sinks` in step
//! with the settings and reads the entries.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use domain::delivery::{
    EntryQuery, EntrySource, EntryState, OutboxEntry, OutboxStore, SinkFilter, SinkSync,
};
use domain::ports::StoreError;

use crate::Store;
use crate::connection::on_backend;
use crate::error::from_diesel;
use crate::schema::{delivery_sink_types, delivery_sinks, outbox};
use crate::statements::Statements;

/// A row of `outbox` as read.
#[derive(Queryable)]
struct EntryRow {
    id: i64,
    sink: String,
    entry_id: String,
    entry_type: String,
    event_id: Option<i64>,
    history_id: Option<i64>,
    state: String,
    attempts: i32,
    created_at: DateTime<Utc>,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<String>,
    settled_at: Option<DateTime<Utc>>,
}

impl EntryRow {
    fn entry(self) -> QueryResult<OutboxEntry> {
        let bad = |what: String| diesel::result::Error::DeserializationError(what.into());
        let source = match (self.event_id, self.history_id) {
            (Some(id), None) => EntrySource::Event(id),
            (None, Some(id)) => EntrySource::SuppressionChange(id),
            _ => {
                return Err(bad(format!(
                    "outbox entry {} has no single source",
                    self.id
                )));
            }
        };
        let state = EntryState::parse(&self.state)
            .ok_or_else(|| bad(format!("unknown outbox state `{}`", self.state)))?;
        Ok(OutboxEntry {
            id: self.id,
            sink: self.sink,
            entry_id: self.entry_id,
            entry_type: self.entry_type,
            source,
            state,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            created_at: self.created_at,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error,
            settled_at: self.settled_at,
        })
    }
}

/// The columns of [`EntryRow`], in its order.
type EntryColumns = (
    outbox::id,
    outbox::sink,
    outbox::entry_id,
    outbox::entry_type,
    outbox::event_id,
    outbox::history_id,
    outbox::state,
    outbox::attempts,
    outbox::created_at,
    outbox::next_attempt_at,
    outbox::last_error,
    outbox::settled_at,
);

const ENTRY_COLUMNS: EntryColumns = (
    outbox::id,
    outbox::sink,
    outbox::entry_id,
    outbox::entry_type,
    outbox::event_id,
    outbox::history_id,
    outbox::state,
    outbox::attempts,
    outbox::created_at,
    outbox::next_attempt_at,
    outbox::last_error,
    outbox::settled_at,
);

#[async_trait]
impl OutboxStore for Store {
    async fn sync_sinks(&self, sinks: Vec<SinkFilter>) -> Result<SinkSync, StoreError> {
        self.blocking(move |conn| {
            on_backend!(conn, c => c.write_transaction(|c| {
                let known: Vec<String> = delivery_sinks::table
                    .select(delivery_sinks::name)
                    .order(delivery_sinks::name)
                    .load(c)?;
                let removed: Vec<String> = known
                    .into_iter()
                    .filter(|name| !sinks.iter().any(|s| &s.name == name))
                    .collect();
                diesel::delete(delivery_sink_types::table).execute(c)?;
                diesel::delete(delivery_sinks::table).execute(c)?;
                for sink in &sinks {
                    diesel::insert_into(delivery_sinks::table)
                        .values((
                            delivery_sinks::name.eq(&sink.name),
                            delivery_sinks::all_types.eq(sink.entry_types.is_none()),
                        ))
                        .execute(c)?;
                    for entry_type in sink.entry_types.iter().flatten() {
                        diesel::insert_into(delivery_sink_types::table)
                            .values((
                                delivery_sink_types::sink.eq(&sink.name),
                                delivery_sink_types::entry_type.eq(entry_type),
                            ))
                            .on_conflict_do_nothing()
                            .execute(c)?;
                    }
                }
                Ok(SinkSync { removed })
            }))
            .map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn outbox_entries(&self, query: EntryQuery) -> Result<Vec<OutboxEntry>, StoreError> {
        self.blocking(move |conn| {
            let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
            let rows: Vec<EntryRow> = on_backend!(conn, c => {
                let mut select = outbox::table
                    .select(ENTRY_COLUMNS)
                    .order(outbox::id)
                    .limit(limit)
                    .into_boxed();
                if let Some(sink) = &query.sink {
                    select = select.filter(outbox::sink.eq(sink.clone()));
                }
                if let Some(state) = query.state {
                    select = select.filter(outbox::state.eq(state.as_str()));
                }
                if let Some(after) = query.after_id {
                    select = select.filter(outbox::id.gt(after));
                }
                select.load(c)
            })
            .map_err(|e| from_diesel(&e))?;
            rows.into_iter()
                .map(|r| r.entry().map_err(|e| from_diesel(&e)))
                .collect()
        })
        .await
    }
}
