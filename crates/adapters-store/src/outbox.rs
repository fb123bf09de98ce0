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
use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use domain::delivery::{
    AttemptOutcome, EntryQuery, EntrySource, EntrySources, EntryState, OutboxEntry, OutboxStore,
    ReplayOutcome, ReplayScope, Settlement, SinkBacklog, SinkFilter, SinkSync, SuppressionChange,
};
use domain::ports::StoreError;
use domain::suppression::SuppressionEntry;

use crate::Store;
use crate::connection::{AnyConnection, on_backend};
use crate::error::from_diesel;
use crate::history::EventRow;
use crate::list_statements::{HistoryRow, history_of};
use crate::schema::{
    delivery_sink_types, delivery_sinks, email_events, outbox, suppression_history,
};
use crate::sql_types::TimeParam;
use crate::statements::Statements;

/// A row of `outbox` as read.
#[derive(Queryable, Selectable)]
#[diesel(table_name = outbox)]
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
    lease_until: Option<DateTime<Utc>>,
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
            lease_until: self.lease_until,
        })
    }
}

/// A row of `suppression_history` as an entry delivers it: its id, the address, and the line
/// as the history reads it ([`HistoryRow`]).
type ChangeRow = (i64, String, HistoryRow);

fn change_of((id, address, line): ChangeRow) -> QueryResult<SuppressionChange> {
    let item = history_of(line)?;
    Ok(SuppressionChange {
        id,
        action: item.action,
        entry: SuppressionEntry {
            address,
            reason: item.reason,
            created_at: item.at,
            expires_at: item.expires_at,
            ses_message_id: item.ses_message_id,
            event_key: item.event_key,
            note: item.note,
        },
    })
}

/// Makes the servers that start together replace the sinks one after the other (on SQLite the
/// write transaction already does).
trait LockSinks {
    fn lock_sinks(&mut self) -> QueryResult<()>;
}

impl LockSinks for diesel::PgConnection {
    fn lock_sinks(&mut self) -> QueryResult<()> {
        diesel::sql_query("LOCK TABLE delivery_sinks IN EXCLUSIVE MODE")
            .execute(self)
            .map(|_| ())
    }
}

impl LockSinks for diesel::SqliteConnection {
    fn lock_sinks(&mut self) -> QueryResult<()> {
        Ok(())
    }
}

/// The ids of up to `limit` of `sink`'s pending entries due at `now` and not claimed, earliest
/// due first (the partial index `outbox_pending_idx` serves it).
macro_rules! due_ids {
    ($sink:expr, $now:expr, $limit:expr) => {
        outbox::table
            .select(outbox::id)
            .filter(outbox::sink.eq($sink))
            // A literal, not a parameter: a generic plan can then use the partial index
            // `outbox_pending_idx` (`WHERE state = 'pending'`).
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "state = 'pending'",
            ))
            .filter(outbox::next_attempt_at.le(TimeParam($now)))
            .filter(
                outbox::lease_until
                    .is_null()
                    .or(outbox::lease_until.le(TimeParam($now))),
            )
            .order((outbox::next_attempt_at, outbox::id))
            .limit($limit)
    };
}

/// Records one settlement, if its claim still holds; whether it did.
macro_rules! settle_one {
    ($c:expr, $s:expr) => {{
        let s: &Settlement = $s;
        let at = TimeParam(s.attempted_at);
        let target = outbox::table
            .filter(outbox::id.eq(s.id))
            .filter(outbox::state.eq(EntryState::Pending.as_str()))
            .filter(outbox::lease_until.eq(TimeParam(s.lease_until)));
        let attempts = outbox::attempts.eq(outbox::attempts + 1);
        let none: Option<TimeParam> = None;
        match &s.outcome {
            AttemptOutcome::Delivered => diesel::update(target)
                .set((
                    outbox::state.eq(EntryState::Delivered.as_str()),
                    attempts,
                    outbox::lease_until.eq(none),
                    outbox::settled_at.eq(Some(at)),
                ))
                .execute($c)?,
            AttemptOutcome::Retry { at: next, error } => diesel::update(target)
                .set((
                    attempts,
                    outbox::lease_until.eq(none),
                    outbox::next_attempt_at.eq(TimeParam(*next)),
                    outbox::last_error.eq(Some(error.as_str())),
                ))
                .execute($c)?,
            AttemptOutcome::Dead { error } => diesel::update(target)
                .set((
                    outbox::state.eq(EntryState::Dead.as_str()),
                    attempts,
                    outbox::lease_until.eq(none),
                    outbox::settled_at.eq(Some(at)),
                    outbox::last_error.eq(Some(error.as_str())),
                ))
                .execute($c)?,
        }
    }};
}

/// Writes `sink`'s entry `id` again (a replay of an entry no longer in the outbox): from the
/// event with that key, or the suppression-list change `suppression-<row id>`, when it still
/// exists and the sink takes its type; whether it did.
macro_rules! write_again {
    ($c:expr, $sink:expr, $id:expr, $now:expr) => {{
        let sink: &str = $sink;
        let id: &str = $id;
        let source: Option<(String, Option<i64>, Option<i64>)> = match id
            .strip_prefix("suppression-")
            .and_then(|n| n.parse::<i64>().ok())
        {
            Some(history_id) => suppression_history::table
                .select(suppression_history::action)
                .filter(suppression_history::id.eq(history_id))
                .first::<String>($c)
                .optional()?
                .map(|action| (format!("suppression.{action}"), None, Some(history_id))),
            None => email_events::table
                .select((email_events::event_type, email_events::id))
                .filter(email_events::event_key.eq(id))
                .first::<(String, i64)>($c)
                .optional()?
                .map(|(entry_type, event_id)| (entry_type, Some(event_id), None)),
        };
        match source {
            None => false,
            Some((entry_type, event_id, history_id)) => {
                let takes = delivery_sinks::table
                    .filter(delivery_sinks::name.eq(sink))
                    .filter(
                        delivery_sinks::all_types.eq(true).or(diesel::dsl::exists(
                            delivery_sink_types::table
                                .filter(delivery_sink_types::sink.eq(sink))
                                .filter(delivery_sink_types::entry_type.eq(&entry_type)),
                        )),
                    )
                    .count()
                    .get_result::<i64>($c)?
                    > 0;
                takes
                    && diesel::insert_into(outbox::table)
                        .values((
                            outbox::sink.eq(sink),
                            outbox::entry_id.eq(id),
                            outbox::entry_type.eq(&entry_type),
                            outbox::event_id.eq(event_id),
                            outbox::history_id.eq(history_id),
                            outbox::created_at.eq(TimeParam($now)),
                            outbox::next_attempt_at.eq(TimeParam($now)),
                        ))
                        .on_conflict_do_nothing()
                        .execute($c)?
                        > 0
            }
        }
    }};
}

#[async_trait]
impl OutboxStore for Store {
    async fn sync_sinks(&self, sinks: Vec<SinkFilter>) -> Result<SinkSync, StoreError> {
        self.blocking(move |conn| {
            on_backend!(conn, c => c.write_transaction(|c| {
                c.lock_sinks()?;
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
                    .select(EntryRow::as_select())
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

    async fn claim_entries(
        &self,
        sink: String,
        limit: usize,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        if lease <= TimeDelta::zero() {
            return Err(StoreError::Failed(format!(
                "a claim's lease must be positive, not {lease}"
            )));
        }
        let until = now
            .checked_add_signed(lease)
            .ok_or_else(|| StoreError::Failed(format!("a lease of {lease} is out of range")))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.blocking(move |conn| {
            let rows: Vec<EntryRow> = match conn {
                AnyConnection::Postgresql(c) => c.transaction(|c| {
                    let ids: Vec<i64> = due_ids!(&sink, now, limit)
                        .for_update()
                        .skip_locked()
                        .load(c)?;
                    diesel::update(outbox::table.filter(outbox::id.eq_any(&ids)))
                        .set(outbox::lease_until.eq(Some(TimeParam(until))))
                        .returning(EntryRow::as_returning())
                        .load(c)
                }),
                AnyConnection::Sqlite(c) => c.write_transaction(|c| {
                    let ids: Vec<i64> = due_ids!(&sink, now, limit).load(c)?;
                    diesel::update(outbox::table.filter(outbox::id.eq_any(&ids)))
                        .set(outbox::lease_until.eq(Some(TimeParam(until))))
                        .returning(EntryRow::as_returning())
                        .load(c)
                }),
            }
            .map_err(|e| from_diesel(&e))?;
            let mut entries = rows
                .into_iter()
                .map(|r| r.entry().map_err(|e| from_diesel(&e)))
                .collect::<Result<Vec<_>, _>>()?;
            entries.sort_by_key(|e| (e.next_attempt_at, e.id));
            Ok(entries)
        })
        .await
    }

    async fn settle_entries(&self, settlements: Vec<Settlement>) -> Result<usize, StoreError> {
        if settlements.is_empty() {
            return Ok(0);
        }
        self.blocking(move |conn| {
            // Deliveries, the usual outcome, in one statement per claim and attempt time (a
            // relay's pass shares both); failures one by one.
            let mut delivered: std::collections::BTreeMap<
                (DateTime<Utc>, DateTime<Utc>),
                Vec<i64>,
            > = std::collections::BTreeMap::new();
            let mut others = Vec::new();
            for s in settlements {
                if s.outcome == AttemptOutcome::Delivered {
                    delivered
                        .entry((s.lease_until, s.attempted_at))
                        .or_default()
                        .push(s.id);
                } else {
                    others.push(s);
                }
            }
            on_backend!(conn, c => c.write_transaction(|c| {
                let mut recorded = 0;
                for ((lease_until, attempted_at), ids) in &delivered {
                    for ids in ids.chunks(1000) {
                        recorded += diesel::update(
                            outbox::table
                                .filter(outbox::id.eq_any(ids))
                                .filter(outbox::state.eq(EntryState::Pending.as_str()))
                                .filter(outbox::lease_until.eq(TimeParam(*lease_until))),
                        )
                        .set((
                            outbox::state.eq(EntryState::Delivered.as_str()),
                            outbox::attempts.eq(outbox::attempts + 1),
                            outbox::lease_until.eq(None::<TimeParam>),
                            outbox::settled_at.eq(Some(TimeParam(*attempted_at))),
                        ))
                        .execute(c)?;
                    }
                }
                for s in &others {
                    recorded += settle_one!(c, s);
                }
                Ok(recorded)
            }))
            .map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn entry_sources(
        &self,
        event_ids: Vec<i64>,
        history_ids: Vec<i64>,
    ) -> Result<EntrySources, StoreError> {
        self.blocking(move |conn| {
            let (events, changes): (Vec<EventRow>, Vec<ChangeRow>) = on_backend!(conn, c => (|| {
                let events = if event_ids.is_empty() {
                    Vec::new()
                } else {
                    email_events::table
                        .select(EventRow::as_select())
                        .filter(email_events::id.eq_any(&event_ids))
                        .load(c)?
                };
                let changes = if history_ids.is_empty() {
                    Vec::new()
                } else {
                    use suppression_history::dsl as h;
                    h::suppression_history
                        .select((
                            h::id,
                            h::address,
                            (
                                h::action,
                                h::reason,
                                h::actor,
                                h::at,
                                h::expires_at,
                                h::ses_message_id,
                                h::event_key,
                                h::note,
                            ),
                        ))
                        .filter(h::id.eq_any(&history_ids))
                        .load(c)?
                };
                Ok::<_, diesel::result::Error>((events, changes))
            })())
            .map_err(|e| from_diesel(&e))?;
            let mut sources = EntrySources::default();
            for row in events {
                let id = row.id();
                match row.into_stored() {
                    Ok(event) => sources.events.push(event),
                    Err(e) => sources
                        .unreadable
                        .push((EntrySource::Event(id), e.to_string())),
                }
            }
            for row in changes {
                let id = row.0;
                match change_of(row) {
                    Ok(change) => sources.changes.push(change),
                    Err(e) => sources
                        .unreadable
                        .push((EntrySource::SuppressionChange(id), e.to_string())),
                }
            }
            Ok(sources)
        })
        .await
    }
    async fn replay_entries(
        &self,
        scope: ReplayScope,
        now: DateTime<Utc>,
    ) -> Result<ReplayOutcome, StoreError> {
        self.blocking(move |conn| {
            on_backend!(conn, c => c.write_transaction(|c| {
                let pending = (
                    outbox::state.eq(EntryState::Pending.as_str()),
                    outbox::attempts.eq(0),
                    outbox::next_attempt_at.eq(TimeParam(now)),
                    outbox::lease_until.eq(None::<TimeParam>),
                    outbox::settled_at.eq(None::<TimeParam>),
                );
                match &scope {
                    ReplayScope::State { sink, state, since } => {
                        // One statement, however many entries (no list of ids: SQLite
                        // takes at most 32766 parameters).
                        let target = outbox::table
                            .filter(outbox::sink.eq(sink))
                            .filter(outbox::state.eq(state.as_str()));
                        let replayed = match since {
                            Some(since) => diesel::update(
                                target.filter(outbox::created_at.ge(TimeParam(*since))),
                            )
                            .set(pending)
                            .execute(c)?,
                            None => diesel::update(target).set(pending).execute(c)?,
                        };
                        Ok(ReplayOutcome { replayed, not_found: Vec::new() })
                    }
                    ReplayScope::Entries { sink, entry_ids } => {
                        // An entry a relay holds now (pending, under a claim) is left to it:
                        // it is being delivered, and resetting it would send it twice at once.
                        let found: Vec<String> = diesel::update(
                            outbox::table
                                .filter(outbox::sink.eq(sink))
                                .filter(outbox::entry_id.eq_any(entry_ids))
                                .filter(
                                    outbox::state
                                        .ne(EntryState::Pending.as_str())
                                        .or(outbox::lease_until.is_null())
                                        .or(outbox::lease_until.le(TimeParam(now))),
                                ),
                        )
                        .set(pending)
                        .returning(outbox::entry_id)
                        .load(c)?;
                        let mut replayed = found.len();
                        let mut not_found = Vec::new();
                        let mut seen: std::collections::HashSet<&str> =
                            found.iter().map(String::as_str).collect();
                        for id in entry_ids {
                            if !seen.insert(id.as_str()) {
                                continue;
                            }
                            // Still in the outbox but not updated: held by a relay now.
                            let in_flight = outbox::table
                                .filter(outbox::sink.eq(sink))
                                .filter(outbox::entry_id.eq(id))
                                .count()
                                .get_result::<i64>(c)?
                                > 0;
                            if in_flight || write_again!(c, sink, id, now) {
                                replayed += 1;
                            } else {
                                not_found.push(id.clone());
                            }
                        }
                        Ok(ReplayOutcome { replayed, not_found })
                    }
                }
            }))
            .map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn purge_delivered(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.blocking(move |conn| {
            on_backend!(conn, c => c.write_transaction(|c| {
                let ids: Vec<i64> = outbox::table
                    .select(outbox::id)
                    .filter(outbox::state.eq(EntryState::Delivered.as_str()))
                    .filter(outbox::settled_at.lt(TimeParam(before)))
                    .order(outbox::settled_at)
                    .limit(limit)
                    .load(c)?;
                // The state again: a replay may have made one pending since the select.
                diesel::delete(
                    outbox::table
                        .filter(outbox::id.eq_any(ids))
                        .filter(outbox::state.eq(EntryState::Delivered.as_str()))
                        .filter(outbox::settled_at.lt(TimeParam(before))),
                )
                .execute(c)
            }))
            .map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn backlog(&self) -> Result<Vec<SinkBacklog>, StoreError> {
        self.blocking(move |conn| {
            // Literal states, so that the partial indexes serve them (`outbox_pending_idx`,
            // `outbox_dead_idx`): the delivered entries, most of the table, are never read.
            let by_state = |state: &'static str| {
                outbox::table
                    .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(state))
                    .group_by(outbox::sink)
                    .select((
                        outbox::sink,
                        diesel::dsl::count_star(),
                        diesel::dsl::min(outbox::created_at),
                    ))
                    .order(outbox::sink)
            };
            type Row = (String, i64, Option<DateTime<Utc>>);
            let (pending, dead): (Vec<Row>, Vec<Row>) = on_backend!(conn, c => {
                (|| -> diesel::QueryResult<_> {
                    Ok((
                        by_state("state = 'pending'").load(c)?,
                        by_state("state = 'dead'").load(c)?,
                    ))
                })()
            })
            .map_err(|e| from_diesel(&e))?;
            // Per sink, in name order: a sink with dead entries only has no pending row.
            let mut backlog: std::collections::BTreeMap<String, SinkBacklog> =
                std::collections::BTreeMap::new();
            let count = |n: i64| u64::try_from(n).unwrap_or(0);
            let empty = |sink: &String| SinkBacklog {
                sink: sink.clone(),
                pending: 0,
                oldest_pending: None,
                dead: 0,
            };
            for (sink, n, oldest) in pending {
                let b = backlog.entry(sink.clone()).or_insert_with(|| empty(&sink));
                b.pending = count(n);
                b.oldest_pending = oldest;
            }
            for (sink, n, _) in dead {
                backlog
                    .entry(sink.clone())
                    .or_insert_with(|| empty(&sink))
                    .dead = count(n);
            }
            let backlog: Vec<SinkBacklog> = backlog.into_values().collect();
            Ok(backlog)
        })
        .await
    }
}
