//! The store's statements and transactions, written once with diesel's query builder and
//! compiled for each backend's connection type.
//!
//! diesel's `MultiConnection` backend cannot express `ON CONFLICT` (its generated SQL dialect
//! declares no support for it), so these statements cannot run on
//! [`AnyConnection`](crate::connection::AnyConnection) itself. Instead [`Statements`] is
//! implemented for `PgConnection` and `SqliteConnection` by one macro whose body is the same for
//! both; only the kind of write transaction differs (SQLite's `BEGIN IMMEDIATE`). The logic that
//! uses the statements is generic over [`Statements`].

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::query_dsl::methods::FilterDsl;
use diesel::sql_types::{Bool, Nullable, Text};
use diesel::upsert::excluded;
use std::collections::HashSet;

use chrono::Utc;
use domain::ports::{ReprocessFilter, Reprocessed, StoreReport};
use domain::suppression::{Actor, SuppressionPolicy, SuppressionReason};

use crate::counts::{CountRow, CountedRecordRow, NewRecord, count_written};
use crate::list_statements::{ListStatements, PendingTrigger, PolicyHook, apply_policy};
use crate::rows::{
    CountedSnsMessage, NewEmailEvent, NewSnsMessage, SubscriptionUpsert, saturating_i32, storable,
};
use crate::schema::{counted_records, email_counts, email_events, sns_messages, sns_subscriptions};
use crate::sql_types::{Instant, TimeParam};

/// Rows per `INSERT` statement: an event has 28 bind parameters, a message 11, so at most 14 000
/// in all, under SQLite's limit of 32 766 and PostgreSQL's of 65 535.
pub(crate) const ROWS_PER_INSERT: usize = 500;

#[diesel::declare_sql_function]
extern "SQL" {
    /// SQL `COALESCE` of two nullable instants.
    fn coalesce(first: Nullable<Instant>, second: Nullable<Instant>) -> Nullable<Instant>;
}

/// The statements of the store on one backend's connection.
pub(crate) trait Statements: Connection {
    /// Runs `work` in a transaction that may write. On SQLite it starts with `BEGIN IMMEDIATE`,
    /// taking the write lock at once (waiting up to `busy_timeout` for it), so concurrent writers
    /// queue at the start instead of failing with `SQLITE_BUSY` half-way through.
    fn write_transaction<T>(
        &mut self,
        work: impl FnOnce(&mut Self) -> QueryResult<T>,
    ) -> QueryResult<T>;

    /// Archives the message unless its SNS `MessageId` is already archived. Returns the new
    /// row's id.
    fn archive_message(&mut self, message: &NewSnsMessage) -> QueryResult<Option<i64>>;

    /// Archives the messages whose SNS `MessageId` is not archived yet (at most
    /// [`ROWS_PER_INSERT`] of them, with distinct ids), returning the ids it archived.
    fn archive_messages(&mut self, messages: &[CountedSnsMessage<'_>]) -> QueryResult<Vec<String>>;

    /// Inserts the events whose `event_key` is not stored yet (at most [`ROWS_PER_INSERT`]),
    /// returning the key and SNS message id of each event it inserted.
    fn insert_new_events(
        &mut self,
        events: Vec<&NewEmailEvent>,
    ) -> QueryResult<Vec<(String, String)>>;

    /// Inserts the counted records not counted yet, returning the keys it inserted.
    fn insert_new_records(&mut self, records: &[CountedRecordRow<'_>]) -> QueryResult<Vec<String>>;

    /// Adds `rows` to the stored counts (a missing row is created).
    fn add_counts(&mut self, rows: &[CountRow]) -> QueryResult<()>;

    /// Upserts one topic's subscription. A change older than the stored one (a late SNS retry)
    /// is ignored, so the state only moves forward in time.
    fn upsert_subscription(&mut self, change: &SubscriptionUpsert) -> QueryResult<()>;

    /// Whether diesel's migration history table exists. Read-only: never creates it.
    fn migration_history_exists(&mut self) -> QueryResult<bool>;

    /// The versions recorded in diesel's migration history table.
    fn applied_migration_versions(&mut self) -> QueryResult<Vec<String>>;

    /// Archived notifications to process again, oldest first (see
    /// `domain::ports::MessageArchive::reprocess_candidates`).
    fn reprocess_candidates(
        &mut self,
        filter: &ReprocessFilter,
        after_id: i64,
        limit: i64,
    ) -> QueryResult<Vec<CandidateRow>>;

    /// Records the new outcome of a message processed again; adds `inserted` to its
    /// `events_stored`.
    fn update_reprocessed(&mut self, update: &Reprocessed, inserted: i32) -> QueryResult<()>;

    /// Clears the raw bodies of up to `batch` messages received before `cutoff`.
    fn purge_raw_bodies(&mut self, cutoff: TimeParam, batch: i64) -> QueryResult<usize>;
}

/// One archived message handed back for re-processing: id, SNS message id, outcome, raw body.
pub(crate) type CandidateRow = (i64, String, String, Option<String>);

/// Outcomes whose messages `reprocess` looks at again.
const REPROCESS_OUTCOMES: [&str; 3] = ["failed", "no_events", "not_ses"];

#[derive(QueryableByName)]
struct AppliedVersion {
    #[diesel(sql_type = Text)]
    version: String,
}

/// Implements [`Statements`] for a connection type. `$transaction` is the connection's method
/// that opens a write transaction; `$history_exists` the SQL (a boolean) telling whether the
/// migration history table exists.
macro_rules! impl_statements {
    ($connection:ty, $transaction:ident, $history_exists:expr) => {
        impl Statements for $connection {
            fn write_transaction<T>(
                &mut self,
                work: impl FnOnce(&mut Self) -> QueryResult<T>,
            ) -> QueryResult<T> {
                self.$transaction(work)
            }

            fn archive_message(&mut self, message: &NewSnsMessage) -> QueryResult<Option<i64>> {
                diesel::insert_into(sns_messages::table)
                    .values(message)
                    .on_conflict(sns_messages::sns_message_id)
                    .do_nothing()
                    .returning(sns_messages::id)
                    .get_result(self)
                    .optional()
            }

            fn archive_messages(
                &mut self,
                messages: &[CountedSnsMessage<'_>],
            ) -> QueryResult<Vec<String>> {
                diesel::insert_into(sns_messages::table)
                    .values(messages)
                    .on_conflict(sns_messages::sns_message_id)
                    .do_nothing()
                    .returning(sns_messages::sns_message_id)
                    .get_results(self)
            }

            fn insert_new_events(
                &mut self,
                events: Vec<&NewEmailEvent>,
            ) -> QueryResult<Vec<(String, String)>> {
                diesel::insert_into(email_events::table)
                    .values(events)
                    .on_conflict(email_events::event_key)
                    .do_nothing()
                    .returning((email_events::event_key, email_events::sns_message_id))
                    .get_results(self)
            }

            fn insert_new_records(
                &mut self,
                records: &[CountedRecordRow<'_>],
            ) -> QueryResult<Vec<String>> {
                // One statement per record (a message carries at most one): `execute` tells
                // whether it was inserted.
                let mut inserted = Vec::new();
                for record in records {
                    let rows = diesel::insert_into(counted_records::table)
                        .values(record)
                        .on_conflict(counted_records::record_key)
                        .do_nothing()
                        .execute(self)?;
                    if rows > 0 {
                        inserted.push(record.record_key.to_owned());
                    }
                }
                Ok(inserted)
            }

            fn add_counts(&mut self, rows: &[CountRow]) -> QueryResult<()> {
                use email_counts::dsl as c;
                for row in rows {
                    diesel::insert_into(c::email_counts)
                        .values(row)
                        .on_conflict((c::hour, c::configuration_set, c::shard))
                        .do_update()
                        .set((
                            c::sent.eq(c::sent + excluded(c::sent)),
                            c::delivered.eq(c::delivered + excluded(c::delivered)),
                            c::hard_bounces.eq(c::hard_bounces + excluded(c::hard_bounces)),
                            c::soft_bounces.eq(c::soft_bounces + excluded(c::soft_bounces)),
                            c::complaints.eq(c::complaints + excluded(c::complaints)),
                            c::rejects.eq(c::rejects + excluded(c::rejects)),
                            c::delivery_delays
                                .eq(c::delivery_delays + excluded(c::delivery_delays)),
                            c::opens.eq(c::opens + excluded(c::opens)),
                            c::clicks.eq(c::clicks + excluded(c::clicks)),
                        ))
                        .execute(self)?;
                }
                Ok(())
            }

            fn upsert_subscription(&mut self, change: &SubscriptionUpsert) -> QueryResult<()> {
                use sns_subscriptions::dsl as s;
                diesel::insert_into(s::sns_subscriptions)
                    .values(change)
                    .on_conflict(s::topic_arn)
                    .do_update()
                    .set((
                        s::state.eq(excluded(s::state)),
                        s::subscribe_url.eq(excluded(s::subscribe_url)),
                        s::updated_at.eq(excluded(s::updated_at)),
                        s::confirmed_at.eq(coalesce(excluded(s::confirmed_at), s::confirmed_at)),
                        s::unsubscribed_at
                            .eq(coalesce(excluded(s::unsubscribed_at), s::unsubscribed_at)),
                    ))
                    .filter(s::updated_at.le(excluded(s::updated_at)))
                    .execute(self)
                    .map(drop)
            }

            fn migration_history_exists(&mut self) -> QueryResult<bool> {
                diesel::select(sql::<Bool>($history_exists)).get_result(self)
            }

            fn reprocess_candidates(
                &mut self,
                filter: &ReprocessFilter,
                after_id: i64,
                limit: i64,
            ) -> QueryResult<Vec<CandidateRow>> {
                use sns_messages::dsl as m;
                let mut query = QueryDsl::filter(
                    m::sns_messages.select((m::id, m::sns_message_id, m::outcome, m::raw_body)),
                    m::id
                        .gt(after_id)
                        .and(m::message_type.eq("Notification"))
                        .and(m::raw_body.is_not_null()),
                )
                .order(m::id.asc())
                .limit(limit)
                .into_boxed();
                query = match &filter.sns_message_id {
                    Some(id) => QueryDsl::filter(query, m::sns_message_id.eq(id.clone())),
                    None => QueryDsl::filter(
                        query,
                        m::outcome
                            .eq_any(REPROCESS_OUTCOMES)
                            .or(m::error_count.gt(0)),
                    ),
                };
                if let Some(since) = filter.since {
                    query = QueryDsl::filter(query, m::received_at.ge(TimeParam(since)));
                }
                query.load(self)
            }

            fn update_reprocessed(
                &mut self,
                update: &Reprocessed,
                inserted: i32,
            ) -> QueryResult<()> {
                use sns_messages::dsl as m;
                diesel::update(QueryDsl::filter(
                    m::sns_messages,
                    m::sns_message_id.eq(&update.sns_message_id),
                ))
                .set((
                    m::outcome.eq(update.outcome.as_str()),
                    m::ses_type.eq(&update.ses_type),
                    m::ses_message_id.eq(update.ses_message_id.clone().map(storable)),
                    m::error_count.eq(saturating_i32(update.error_count as usize)),
                    m::error_detail.eq(&update.error_detail),
                    m::events_stored.eq(m::events_stored + inserted),
                ))
                .execute(self)
                .map(drop)
            }

            fn purge_raw_bodies(&mut self, cutoff: TimeParam, batch: i64) -> QueryResult<usize> {
                use sns_messages::dsl as m;
                let oldest = QueryDsl::filter(
                    m::sns_messages.select(m::id),
                    m::received_at.lt(cutoff).and(m::raw_body.is_not_null()),
                )
                .order(m::id.asc())
                .limit(batch);
                let ids: Vec<i64> = oldest.load(self)?;
                if ids.is_empty() {
                    return Ok(0);
                }
                diesel::update(QueryDsl::filter(m::sns_messages, m::id.eq_any(ids)))
                    .set(m::raw_body.eq(None::<String>))
                    .execute(self)
            }

            fn applied_migration_versions(&mut self) -> QueryResult<Vec<String>> {
                Ok(
                    diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
                        .load::<AppliedVersion>(self)?
                        .into_iter()
                        .map(|v| v.version)
                        .collect(),
                )
            }
        }
    };
}

/// PostgreSQL's write transactions are `READ COMMITTED` whatever the database's or role's
/// default: the suppression policy relies on it (after waiting for an address's lock, the next
/// statement must see what the lock's previous holder committed; a snapshot taken at the
/// transaction's start would not).
trait ReadCommitted {
    fn read_committed_transaction<T>(
        &mut self,
        work: impl FnOnce(&mut Self) -> QueryResult<T>,
    ) -> QueryResult<T>;
}

impl ReadCommitted for diesel::PgConnection {
    fn read_committed_transaction<T>(
        &mut self,
        work: impl FnOnce(&mut Self) -> QueryResult<T>,
    ) -> QueryResult<T> {
        self.build_transaction().read_committed().run(work)
    }
}

impl_statements!(
    diesel::PgConnection,
    read_committed_transaction,
    "to_regclass('__diesel_schema_migrations') IS NOT NULL"
);
impl_statements!(
    diesel::SqliteConnection,
    immediate_transaction,
    "EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' \
     AND name = '__diesel_schema_migrations')"
);

/// Inserts `events` (sorted by key), applies the suppression policy to the triggers among
/// them that were inserted, and records the message's new outcome, in one write transaction.
pub(crate) fn store_reprocessed<C: ListStatements>(
    conn: &mut C,
    update: &Reprocessed,
    events: &[NewEmailEvent],
    triggers: Vec<PendingTrigger>,
    hook: &PolicyHook,
) -> QueryResult<(StoreReport, Vec<SuppressionReason>)> {
    conn.write_transaction(|conn| {
        // The addresses' locks before any row lock (the order every writer takes them in; the
        // policy below takes them again, which a transaction may).
        let mut keys: Vec<&str> = triggers.iter().map(|t| t.key.as_str()).collect();
        keys.retain(|k| !k.is_empty());
        conn.lock_addresses(&keys)?;
        let mut inserted = HashSet::new();
        for chunk in events.chunks(ROWS_PER_INSERT) {
            inserted.extend(
                conn.insert_new_events(chunk.iter().collect())?
                    .into_iter()
                    .map(|(key, _)| key),
            );
        }
        let triggers = triggers
            .into_iter()
            .filter(|t| inserted.contains(&t.trigger.event_key))
            .collect();
        let added = apply_policy(conn, &hook.policy, triggers, Utc::now(), &Actor::Policy)?;
        let record = update.tally.clone().map(NewRecord::from);
        count_written(
            conn,
            events
                .iter()
                .filter(|e| inserted.contains(e.event_key.as_str())),
            &record.iter().collect::<Vec<_>>(),
        )?;
        conn.update_reprocessed(update, saturating_i32(inserted.len()))?;
        let report = StoreReport {
            message_was_new: false,
            events_inserted: inserted.len(),
            events_duplicate: events.len() - inserted.len(),
        };
        Ok((report, added))
    })
}

/// Archives `message` and applies the subscription change in one write transaction.
pub(crate) fn record_subscription<C: Statements>(
    conn: &mut C,
    message: &NewSnsMessage,
    change: &SubscriptionUpsert,
) -> QueryResult<()> {
    conn.write_transaction(|conn| {
        conn.archive_message(message)?;
        conn.upsert_subscription(change)
    })
}

/// What a batch write inserted.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct BatchWritten {
    /// Key and SNS message id of each event inserted.
    pub events: Vec<(String, String)>,
    /// SNS message id of each message archived.
    pub messages: Vec<String>,
}

impl BatchWritten {
    /// How many of the inserted events each SNS message id carried.
    pub(crate) fn events_per_message(&self) -> std::collections::HashMap<&str, usize> {
        let mut counts = std::collections::HashMap::new();
        for (_, sns_message_id) in &self.events {
            *counts.entry(sns_message_id.as_str()).or_default() += 1;
        }
        counts
    }
}

/// Writes a batch of notifications (the group commit of `writer.rs`) atomically: the events
/// first, then the messages, each message with `events_stored` = the events inserted under its
/// SNS message id. Message ids are distinct and sorted, event keys distinct and sorted, so that
/// concurrent batches take their row locks in one order and cannot deadlock.
pub(crate) trait WriteBatch: ListStatements {
    /// The batch's statements, inside the caller's transaction when it has one (on PostgreSQL
    /// one statement, atomic on its own).
    fn batch_statements(
        &mut self,
        messages: &[&NewSnsMessage],
        events: &[&NewEmailEvent],
        records: &[&NewRecord],
    ) -> QueryResult<BatchWritten>;

    /// The batch, atomically.
    fn write_batch(
        &mut self,
        messages: &[&NewSnsMessage],
        events: &[&NewEmailEvent],
        records: &[&NewRecord],
    ) -> QueryResult<BatchWritten>;

    /// [`WriteBatch::write_batch`], then the suppression policy applied to those of `triggers`
    /// whose events were inserted, in the same transaction. Returns what was written and the
    /// reason of every entry the policy wrote.
    fn write_batch_suppressing(
        &mut self,
        messages: &[&NewSnsMessage],
        events: &[&NewEmailEvent],
        records: &[&NewRecord],
        triggers: Vec<PendingTrigger>,
        policy: &SuppressionPolicy,
    ) -> QueryResult<(BatchWritten, Vec<SuppressionReason>)> {
        self.write_transaction(|conn| {
            let written = conn.batch_statements(messages, events, records)?;
            let triggers = inserted_triggers(&written, triggers);
            let added = apply_policy(conn, policy, triggers, Utc::now(), &Actor::Policy)?;
            Ok((written, added))
        })
    }
}

/// The triggers whose events the batch inserted.
pub(crate) fn inserted_triggers(
    written: &BatchWritten,
    triggers: Vec<PendingTrigger>,
) -> Vec<PendingTrigger> {
    let inserted: HashSet<&str> = written.events.iter().map(|(key, _)| key.as_str()).collect();
    triggers
        .into_iter()
        .filter(|t| inserted.contains(t.trigger.event_key.as_str()))
        .collect()
}

/// SQLite: a few statements in one `BEGIN IMMEDIATE` transaction (they cost no round trip).
impl WriteBatch for diesel::SqliteConnection {
    fn batch_statements(
        &mut self,
        messages: &[&NewSnsMessage],
        events: &[&NewEmailEvent],
        records: &[&NewRecord],
    ) -> QueryResult<BatchWritten> {
        write_batch_statements(self, messages, events, records)
    }

    fn write_batch(
        &mut self,
        messages: &[&NewSnsMessage],
        events: &[&NewEmailEvent],
        records: &[&NewRecord],
    ) -> QueryResult<BatchWritten> {
        self.write_transaction(|conn| write_batch_statements(conn, messages, events, records))
    }
}

/// PostgreSQL: one statement, so one round trip and one commit for the whole batch, whatever
/// its size (see [`PgWriteBatch`]). With the policy to apply, the statement and the policy's
/// share one transaction.
impl WriteBatch for diesel::PgConnection {
    fn batch_statements(
        &mut self,
        messages: &[&NewSnsMessage],
        events: &[&NewEmailEvent],
        records: &[&NewRecord],
    ) -> QueryResult<BatchWritten> {
        let query = PgWriteBatch(BatchJson::of(messages, events, records)?);
        let rows: Vec<(Option<String>, String)> = query.load(self)?;
        let mut written = BatchWritten::default();
        for (event_key, sns_message_id) in rows {
            match event_key {
                Some(key) => written.events.push((key, sns_message_id)),
                None => written.messages.push(sns_message_id),
            }
        }
        Ok(written)
    }

    fn write_batch(
        &mut self,
        messages: &[&NewSnsMessage],
        events: &[&NewEmailEvent],
        records: &[&NewRecord],
    ) -> QueryResult<BatchWritten> {
        self.batch_statements(messages, events, records)
    }

    /// In one statement unless a soft bounce may complete the limit (see `pg_policy`).
    fn write_batch_suppressing(
        &mut self,
        messages: &[&NewSnsMessage],
        events: &[&NewEmailEvent],
        records: &[&NewRecord],
        triggers: Vec<PendingTrigger>,
        policy: &SuppressionPolicy,
    ) -> QueryResult<(BatchWritten, Vec<SuppressionReason>)> {
        crate::pg_policy::write_batch_suppressing(self, messages, events, records, triggers, policy)
    }
}

/// The batch write with the portable statements, inside the caller's write transaction.
pub(crate) fn write_batch_statements<C: Statements>(
    conn: &mut C,
    messages: &[&NewSnsMessage],
    events: &[&NewEmailEvent],
    records: &[&NewRecord],
) -> QueryResult<BatchWritten> {
    let mut written = BatchWritten::default();
    for chunk in events.chunks(ROWS_PER_INSERT) {
        written
            .events
            .extend(conn.insert_new_events(chunk.to_vec())?);
    }
    let stored = written.events_per_message();
    let rows: Vec<CountedSnsMessage<'_>> = messages
        .iter()
        .map(|message| {
            let count = stored.get(message.sns_message_id.as_str()).copied();
            message.counted(saturating_i32(count.unwrap_or(0)))
        })
        .collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        written.messages.extend(conn.archive_messages(chunk)?);
    }
    let inserted: HashSet<&str> = written.events.iter().map(|(key, _)| key.as_str()).collect();
    count_written(
        conn,
        events
            .iter()
            .filter(|e| inserted.contains(e.event_key.as_str()))
            .copied(),
        records,
    )?;
    Ok(written)
}

pub(crate) fn to_json_rows<T: serde::Serialize>(rows: &[&T]) -> QueryResult<String> {
    serde_json::to_string(rows).map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
}

/// The whole batch as one PostgreSQL statement, prepared once per connection and variant (see
/// [`keyed_by_sql`]). The rows arrive as JSON arrays (`json_populate_recordset` turns each
/// object into a row of the table's type; `ORDER BY ordinality` keeps the sorted order, hence
/// the lock order), so the statement's text does not depend on the batch size. A single
/// statement is atomic on its own: no `BEGIN`/`COMMIT` round trips. The message insert counts
/// the rows the event insert returned, which makes PostgreSQL finish the events before the
/// first message.
struct PgWriteBatch(BatchJson);

/// Makes diesel key a batch statement's prepared statement by its SQL text instead of its
/// type: the text has two variants, with and without the `counted_records` part (see
/// [`push_batch_inserts`]), and each is prepared once per connection. (With a type key,
/// the first variant prepared would serve both.) Building the text costs a few microseconds
/// per batch; leaving the `counted_records` insert out of the three batches in four that have
/// no counted record saves far more (`docs/performance.md`).
macro_rules! keyed_by_sql {
    ($($statement:ty),* $(,)?) => {
        $(
            impl diesel::query_builder::QueryId for $statement {
                type QueryId = ();
                const HAS_STATIC_QUERY_ID: bool = false;
            }
        )*
    };
}
pub(crate) use keyed_by_sql;

keyed_by_sql!(PgWriteBatch);

/// A batch's rows as the JSON arrays PostgreSQL's batch statements read them from.
pub(crate) struct BatchJson {
    pub events: String,
    pub messages: String,
    /// The counted records ([`NewRecord`]), with what each adds.
    pub records: String,
    /// Whether there are any counted records: without, the statement leaves their insert out.
    pub has_records: bool,
}

impl BatchJson {
    pub(crate) fn of(
        messages: &[&NewSnsMessage],
        events: &[&NewEmailEvent],
        records: &[&NewRecord],
    ) -> QueryResult<Self> {
        Ok(Self {
            events: to_json_rows(events)?,
            messages: to_json_rows(messages)?,
            records: to_json_rows(records)?,
            has_records: !records.is_empty(),
        })
    }
}

const PG_EVENT_COLUMNS: &str = "event_key, event_type, recipient, bounce_type, ses_message_id, \
     sns_message_id, event_time, mail_time, source, subject, ses_bounce_type, bounce_subtype, \
     bounce_action, bounce_status, diagnostic_code, feedback_id, complaint_feedback_type, \
     complaint_subtype, smtp_response, reporting_mta, remote_mta_ip, processing_time_ms, link, \
     link_tags, user_agent, ip_address, tags, recipient_key";

const PG_MESSAGE_COLUMNS: &str = "sns_message_id, message_type, topic_arn, sns_timestamp, \
     received_at, ses_type, outcome, error_count, error_detail, raw_body, ses_message_id";

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for PgWriteBatch {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        push_batch_ctes(&mut out, &self.0, Returning::Keys)?;
        out.push_sql(
            " SELECT event_key, sns_message_id FROM new_events \
             UNION ALL SELECT NULL, sns_message_id FROM new_messages",
        );
        Ok(())
    }
}

/// The common head of the batch statements: `WITH` and [`push_batch_inserts`].
pub(crate) fn push_batch_ctes<'b>(
    out: &mut diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    rows: &'b BatchJson,
    returning: Returning,
) -> QueryResult<()> {
    out.push_sql("WITH ");
    push_batch_inserts(out, rows, None, returning)
}

/// What `new_events` returns of each event inserted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Returning {
    /// Key, SNS message id, event time, event type, bounce type, configuration set.
    Keys,
    /// Also recipient key, recipient and SES message id.
    Facts,
}

/// The columns of `counted_records` rows with what each adds, as `json_to_recordset` reads
/// them from the JSON array of [`NewRecord`].
const PG_RECORD_COLUMNS: &str =
    "r(record_key text, kind text, at timestamptz, configuration_set text, count bigint)";

/// The start of the UTC hour of a `timestamptz` expression `{}` (whatever the session's time
/// zone).
fn pg_hour(expression: &str) -> String {
    format!("date_trunc('hour', {expression} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'")
}

/// `new_events AS (...), new_messages AS (...), new_records AS (...), counted AS (...)`: the
/// events inserted from the JSON array `rows.events`, returning what `returning` says of each;
/// the messages from `rows.messages`, returning their SNS message id; the counted records of
/// `rows.records` not counted yet (left out of the text when there are none:
/// `rows.has_records`); and what the new events and records add, appended to
/// `email_count_deltas` (one row per hour and configuration set; no index, no row lock: as
/// an upsert of `email_counts`, the counting's part cost about three times as much), which
/// `Store::fold_count_deltas` folds into `email_counts`. With `guard` (a boolean SQL
/// expression), rows are inserted only when it holds. A data-modifying CTE runs to completion
/// whether or not the statement reads it.
pub(crate) fn push_batch_inserts<'b>(
    out: &mut diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    rows: &'b BatchJson,
    guard: Option<&'static str>,
    returning: Returning,
) -> QueryResult<()> {
    out.push_sql("new_events AS (INSERT INTO email_events (");
    out.push_sql(PG_EVENT_COLUMNS);
    out.push_sql(") SELECT ");
    out.push_sql(PG_EVENT_COLUMNS);
    out.push_sql(" FROM json_populate_recordset(NULL::email_events, ");
    out.push_bind_param::<Text, _>(&rows.events)?;
    out.push_sql("::json) WITH ORDINALITY");
    if let Some(guard) = guard {
        out.push_sql(" WHERE ");
        out.push_sql(guard);
    }
    out.push_sql(
        " ORDER BY ordinality \
         ON CONFLICT (event_key) DO NOTHING RETURNING event_key, sns_message_id, event_time, \
         event_type, bounce_type, CASE WHEN tags -> 'ses:configuration-set' ->> 0 \
         ~ '^[A-Za-z0-9_-]{1,64}$' THEN tags -> 'ses:configuration-set' ->> 0 END \
         AS configuration_set",
    );
    if let Returning::Facts = returning {
        out.push_sql(", recipient_key, recipient, ses_message_id");
    }
    out.push_sql("), new_messages AS (INSERT INTO sns_messages (");
    out.push_sql(PG_MESSAGE_COLUMNS);
    out.push_sql(", events_stored) SELECT ");
    out.push_sql(PG_MESSAGE_COLUMNS);
    out.push_sql(
        ", (SELECT count(*) FROM new_events e \
         WHERE e.sns_message_id = m.sns_message_id)::integer \
         FROM json_populate_recordset(NULL::sns_messages, ",
    );
    out.push_bind_param::<Text, _>(&rows.messages)?;
    out.push_sql("::json) WITH ORDINALITY AS m");
    if let Some(guard) = guard {
        out.push_sql(" WHERE ");
        out.push_sql(guard);
    }
    out.push_sql(
        " ORDER BY m.ordinality \
         ON CONFLICT (sns_message_id) DO NOTHING RETURNING sns_message_id), ",
    );
    if rows.has_records {
        out.push_sql(
            "new_records AS (INSERT INTO counted_records (record_key, kind, at) \
             SELECT r.record_key, r.kind, r.at FROM json_to_recordset(",
        );
        out.push_bind_param::<Text, _>(&rows.records)?;
        out.push_sql("::json) AS ");
        out.push_sql(PG_RECORD_COLUMNS);
        if let Some(guard) = guard {
            out.push_sql(" WHERE ");
            out.push_sql(guard);
        }
        out.push_sql(
            " ORDER BY r.record_key ON CONFLICT (record_key) DO NOTHING RETURNING record_key), ",
        );
    }
    out.push_sql("tallies AS (SELECT ");
    out.push_sql(&pg_hour("e.event_time"));
    out.push_sql(
        " AS hour, coalesce(e.configuration_set, '') AS configuration_set, 0 AS sent, \
         (e.event_type = 'email_delivered')::int AS delivered, \
         (e.event_type = 'email_bounce' AND e.bounce_type = 'hard')::int AS hard_bounces, \
         (e.event_type = 'email_bounce' AND e.bounce_type IS DISTINCT FROM 'hard')::int \
         AS soft_bounces, \
         (e.event_type = 'email_spam_report')::int AS complaints, 0 AS rejects, \
         0 AS delivery_delays, (e.event_type = 'email_open')::int AS opens, \
         (e.event_type = 'email_click')::int AS clicks FROM new_events e",
    );
    if rows.has_records {
        out.push_sql(" UNION ALL SELECT ");
        out.push_sql(&pg_hour("r.at"));
        out.push_sql(
            ", coalesce(r.configuration_set, ''), \
             CASE r.kind WHEN 'send' THEN r.count ELSE 0 END, 0, 0, 0, 0, \
             CASE r.kind WHEN 'reject' THEN r.count ELSE 0 END, \
             CASE r.kind WHEN 'delivery_delay' THEN r.count ELSE 0 END, 0, 0 \
             FROM json_to_recordset(",
        );
        out.push_bind_param::<Text, _>(&rows.records)?;
        out.push_sql("::json) AS ");
        out.push_sql(PG_RECORD_COLUMNS);
        out.push_sql(" JOIN new_records n ON n.record_key = r.record_key");
    }
    out.push_sql(
        "), \
         counted AS (INSERT INTO email_count_deltas (hour, configuration_set, sent, delivered, \
         hard_bounces, soft_bounces, complaints, rejects, delivery_delays, opens, clicks) \
         SELECT hour, configuration_set, sum(sent), sum(delivered), sum(hard_bounces), \
         sum(soft_bounces), sum(complaints), sum(rejects), sum(delivery_delays), sum(opens), \
         sum(clicks) FROM tallies GROUP BY hour, configuration_set)",
    );
    Ok(())
}

impl diesel::query_builder::Query for PgWriteBatch {
    type SqlType = (Nullable<Text>, Text);
}

impl RunQueryDsl<diesel::PgConnection> for PgWriteBatch {}
