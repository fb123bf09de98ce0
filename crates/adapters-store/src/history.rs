//! [`HistoryStore`] for [`Store`]: the event history read back a page at a time, one email's
//! timeline, the erasure of an address, and retention of events and archived messages. The
//! statements are written once (one macro body per connection type, as in `statements.rs`);
//! only the tag filter differs: a `jsonb_path_ops` GIN index on PostgreSQL, the
//! `email_event_tags` table kept by triggers on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::expression::BoxableExpression;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use domain::event::{BounceClass, EventType, PlatformEvent};
use domain::history::{
    CarrierMessage, ErasureReport, ErasureRequest, EventPosition, EventQuery, MessageTimeline,
    StoredEvent,
};
use domain::ports::{HistoryStore, MessageOutcome, StoreError};
use domain::suppression::Actor;

use crate::Store;
use crate::connection::on_backend;
use crate::error::from_diesel;
use crate::list_statements::ListStatements;
use crate::rows::storable;
use crate::schema::{
    email_event_tags, email_events, erasures, sns_messages, suppression_history, suppressions,
};
use crate::sql_types::TimeParam;
use crate::statements::{ROWS_PER_INSERT, Statements};

/// An event as read back.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = email_events)]
pub(crate) struct EventRow {
    id: i64,
    event_key: String,
    event_type: String,
    recipient: Option<String>,
    bounce_type: Option<String>,
    ses_message_id: String,
    sns_message_id: String,
    event_time: DateTime<Utc>,
    mail_time: Option<DateTime<Utc>>,
    source: Option<String>,
    subject: Option<String>,
    ses_bounce_type: Option<String>,
    bounce_subtype: Option<String>,
    bounce_action: Option<String>,
    bounce_status: Option<String>,
    diagnostic_code: Option<String>,
    feedback_id: Option<String>,
    complaint_feedback_type: Option<String>,
    complaint_subtype: Option<String>,
    smtp_response: Option<String>,
    reporting_mta: Option<String>,
    remote_mta_ip: Option<String>,
    processing_time_ms: Option<i64>,
    link: Option<String>,
    link_tags: Option<serde_json::Value>,
    user_agent: Option<String>,
    ip_address: Option<String>,
    tags: Option<serde_json::Value>,
    created_at: DateTime<Utc>,
}

impl EventRow {
    /// The row's id.
    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    pub(crate) fn into_stored(self) -> QueryResult<StoredEvent> {
        let event_type = EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == self.event_type)
            .ok_or_else(|| corrupt(self.id, "event_type", &self.event_type))?;
        let bounce_type = match self.bounce_type.as_deref() {
            None => None,
            Some("hard") => Some(BounceClass::Hard),
            Some("soft") => Some(BounceClass::Soft),
            Some(other) => return Err(corrupt(self.id, "bounce_type", other)),
        };
        let mut event = PlatformEvent::new(event_type, &self.ses_message_id, self.event_time);
        event.event_key = self.event_key;
        event.recipient = self.recipient;
        event.bounce_type = bounce_type;
        event.mail_time = self.mail_time;
        event.source = self.source;
        event.subject = self.subject;
        event.ses_bounce_type = self.ses_bounce_type;
        event.bounce_subtype = self.bounce_subtype;
        event.action = self.bounce_action;
        event.status = self.bounce_status;
        event.diagnostic_code = self.diagnostic_code;
        event.feedback_id = self.feedback_id;
        event.complaint_feedback_type = self.complaint_feedback_type;
        event.complaint_subtype = self.complaint_subtype;
        event.smtp_response = self.smtp_response;
        event.reporting_mta = self.reporting_mta;
        event.remote_mta_ip = self.remote_mta_ip;
        event.processing_time_millis = self.processing_time_ms;
        event.link = self.link;
        event.link_tags = self.link_tags;
        event.user_agent = self.user_agent;
        event.ip_address = self.ip_address;
        event.tags = self.tags;
        Ok(StoredEvent {
            position: EventPosition {
                event_time: self.event_time,
                id: self.id,
            },
            event,
            sns_message_id: self.sns_message_id,
            created_at: self.created_at,
        })
    }
}

fn corrupt(id: i64, column: &str, value: &str) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(
        format!("email_events row {id} has an unknown {column} `{value}`").into(),
    )
}

/// An archived message as the timeline reads it: SNS message id, SES type, outcome, received,
/// events stored, whether the raw body is kept.
type CarrierRow = (String, Option<String>, String, DateTime<Utc>, i32, bool);

fn carrier_of(row: CarrierRow) -> QueryResult<CarrierMessage> {
    let (sns_message_id, ses_type, outcome, received_at, events_stored, raw_body_kept) = row;
    Ok(CarrierMessage {
        outcome: MessageOutcome::parse(&outcome).ok_or_else(|| {
            diesel::result::Error::DeserializationError(
                format!("sns_messages row {sns_message_id:?} has an unknown outcome `{outcome}`")
                    .into(),
            )
        })?,
        sns_message_id,
        ses_type,
        received_at,
        events_stored: u32::try_from(events_stored).unwrap_or(0),
        raw_body_kept,
    })
}

/// A row of `erasures` to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = erasures)]
struct NewErasure {
    address_hash: String,
    actor: String,
    at: TimeParam,
    events_deleted: i32,
    messages_cleared: i32,
    suppression_removed: bool,
    history_deleted: i32,
}

/// A condition on `email_events` for one backend.
type Condition<DB> = Box<dyn BoxableExpression<email_events::table, DB, SqlType = Bool>>;

/// `tag=name:value` on PostgreSQL: containment, served by the GIN index on `tags`.
fn pg_tag(name: &str, value: &str) -> Condition<diesel::pg::Pg> {
    let document = serde_json::json!({ name: [value] }).to_string();
    Box::new(
        sql::<Bool>("email_events.tags @> CAST(")
            .bind::<Text, _>(document)
            .sql(" AS jsonb)"),
    )
}

/// `tag=name:value` on SQLite: through `email_event_tags`, keyed `(name, value, event_time,
/// event_id)`.
fn sqlite_tag(name: &str, value: &str) -> Condition<diesel::sqlite::Sqlite> {
    Box::new(
        sql::<Bool>("email_events.id IN (SELECT event_id FROM email_event_tags WHERE name = ")
            .bind::<Text, _>(name.to_owned())
            .sql(" AND value = ")
            .bind::<Text, _>(value.to_owned())
            .sql(")"),
    )
}

/// `$query` with the filters on the event's own columns: recipient, SES message id, bounce
/// type, event types (the time range, the tags and the position are the caller's: they differ
/// with the table that drives the query).
macro_rules! event_filters {
    ($query:expr, $filter:expr) => {{
        use email_events::dsl as e;
        let mut q = $query;
        let filter: &domain::history::EventFilter = $filter;
        if let Some(address) = &filter.recipient {
            q = q.filter(e::recipient_key.eq(address.key().to_owned()));
        }
        if let Some(id) = &filter.ses_message_id {
            q = q.filter(e::ses_message_id.eq(id.clone()));
        }
        if let Some(class) = filter.bounce_type {
            q = q
                .filter(e::event_type.eq(EventType::Bounce.as_str()))
                .filter(e::bounce_type.eq(class.as_str()));
        }
        match filter.types.as_slice() {
            [] => {}
            [one] => q = q.filter(e::event_type.eq(one.as_str())),
            many => {
                let names: Vec<&'static str> = many.iter().map(|t| t.as_str()).collect();
                q = q.filter(e::event_type.eq_any(names));
            }
        }
        q
    }};
}

/// Defines `$name`, the query of one page of events on `$backend`, with `$tag` the backend's
/// tag condition.
macro_rules! events_query {
    ($name:ident, $backend:ty, $tag:path) => {
        fn $name(
            query: &EventQuery,
        ) -> email_events::BoxedQuery<'static, $backend, diesel::dsl::AsSelect<EventRow, $backend>>
        {
            use email_events::dsl as e;
            let filter = &query.filter;
            // `id > 0` (every row) lets the partial index on (event_time, id) serve the query.
            let mut q = e::email_events
                .select(EventRow::as_select())
                .filter(sql::<Bool>("email_events.id > 0"))
                .into_boxed::<$backend>();
            q = event_filters!(q, filter);
            if let Some(since) = filter.since {
                q = q.filter(e::event_time.ge(TimeParam(since)));
            }
            if let Some(until) = filter.until {
                q = q.filter(e::event_time.lt(TimeParam(until)));
            }
            for (name, value) in &filter.tags {
                q = q.filter($tag(name, value));
            }
            if let Some(after) = query.after {
                let at = TimeParam(after.event_time);
                q = q.filter(
                    e::event_time
                        .le(at)
                        .and(e::event_time.lt(at).or(e::id.lt(after.id))),
                );
            }
            q.order((e::event_time.desc(), e::id.desc()))
                .limit(i64::try_from(query.limit).unwrap_or(i64::MAX))
        }
    };
}

events_query!(pg_events_query, diesel::pg::Pg, pg_tag);
events_query!(sqlite_events_query, diesel::sqlite::Sqlite, sqlite_tag);

/// A page of events on SQLite when the filter names a tag: driven by `email_event_tags` and
/// its key `(name, value, event_time, event_id)` (the tag `(name, value)`, see
/// [`driving_tag`]), newest
/// first by the tag row's event time (the event's own), so that a page of a tag shared by many events reads one page of the index
/// instead of sorting every match. Further tags are conditions as in [`sqlite_tag`] (written
/// out: a boxed condition is typed for the table alone, not for the join).
fn sqlite_tagged_query(
    query: &EventQuery,
    (name, value): (&str, &str),
) -> impl diesel::query_dsl::LoadQuery<'static, diesel::SqliteConnection, EventRow>
+ diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite>
+ Send
+ 'static {
    use email_event_tags::dsl as t;
    use email_events::dsl as e;
    let filter = &query.filter;
    let mut q = e::email_events
        .inner_join(
            t::email_event_tags.on(t::event_id
                .eq(e::id)
                .and(t::name.eq(name.to_owned()))
                .and(t::value.eq(value.to_owned()))),
        )
        .select(EventRow::as_select())
        .into_boxed::<diesel::sqlite::Sqlite>();
    q = event_filters!(q, filter);
    if let Some(since) = filter.since {
        q = q.filter(t::event_time.ge(TimeParam(since)));
    }
    if let Some(until) = filter.until {
        q = q.filter(t::event_time.lt(TimeParam(until)));
    }
    for (other_name, other_value) in &filter.tags {
        if (other_name.as_str(), other_value.as_str()) != (name, value) {
            q = q.filter(
                sql::<Bool>(
                    "email_events.id IN (SELECT event_id FROM email_event_tags WHERE name = ",
                )
                .bind::<Text, _>(other_name.clone())
                .sql(" AND value = ")
                .bind::<Text, _>(other_value.clone())
                .sql(")"),
            );
        }
    }
    if let Some(after) = query.after {
        let at = TimeParam(after.event_time);
        q = q.filter(
            t::event_time
                .le(at)
                .and(t::event_time.lt(at).or(t::event_id.lt(after.id))),
        );
    }
    q.order((t::event_time.desc(), t::event_id.desc()))
        .limit(i64::try_from(query.limit).unwrap_or(i64::MAX))
}

/// A page of events on PostgreSQL.
fn pg_list(conn: &mut diesel::PgConnection, query: &EventQuery) -> QueryResult<Vec<EventRow>> {
    pg_events_query(query).load(conn)
}

/// A page of events on SQLite: through the first tag's rows when the filter names one.
fn sqlite_list(
    conn: &mut diesel::SqliteConnection,
    query: &EventQuery,
) -> QueryResult<Vec<EventRow>> {
    match driving_tag(query) {
        Some((name, value)) => sqlite_tagged_query(query, (name, value)).load(conn),
        None => sqlite_events_query(query).load(conn),
    }
}

/// The tag whose rows drive an SQLite tag query: the first of the sender's own tags, else the
/// first that SES adds (`ses:configuration-set`, `ses:from-domain`, ...: most of an
/// installation's events may share one).
fn driving_tag(query: &EventQuery) -> Option<(&str, &str)> {
    let tags = &query.filter.tags;
    tags.iter()
        .find(|(name, _)| !name.starts_with("ses:"))
        .or_else(|| tags.first())
        .map(|(name, value)| (name.as_str(), value.as_str()))
}

/// A condition on `sns_messages` for one backend.
type MessageCondition<DB> = Box<dyn BoxableExpression<sns_messages::table, DB, SqlType = Bool>>;

/// Whether a raw body holds `key` (an address key: ASCII lower-case) in any ASCII case, on
/// PostgreSQL. `COLLATE "C"` keeps `lower()` to ASCII, as the key.
fn pg_mentions(key: &str) -> MessageCondition<diesel::pg::Pg> {
    Box::new(
        sql::<Bool>("strpos(lower(sns_messages.raw_body COLLATE \"C\"), ")
            .bind::<Text, _>(key.to_owned())
            .sql(") > 0"),
    )
}

/// [`pg_mentions`] on SQLite, whose `lower()` changes only ASCII letters.
fn sqlite_mentions(key: &str) -> MessageCondition<diesel::sqlite::Sqlite> {
    Box::new(
        sql::<Bool>("instr(lower(sns_messages.raw_body), ")
            .bind::<Text, _>(key.to_owned())
            .sql(") > 0"),
    )
}

/// Whether `body` names the address whose key is `key` (ASCII lower-case), in any ASCII case,
/// as a whole address: not inside a longer one (`jim.bob@example.net`,
/// `bob@example.network`). Anything else may stand before it (`=`, `/`, a quote, `<`) and
/// so may a JSON escape (`\n`, `\u003c`: the raw body is JSON, its SES record JSON inside
/// a JSON string).
pub(crate) fn names_address(body: &str, key: &str) -> bool {
    let body = body.to_ascii_lowercase();
    let bytes = body.as_bytes();
    // What continues a local part in practice (the RFC allows more, which real addresses
    // next to a mention, such as `?email=` or `/u/`, use as separators).
    let local = |b: u8| b.is_ascii_alphanumeric() || b"._+-".contains(&b);
    let domain = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
    // Whether the byte before `at` ends a JSON escape: `\n`, `\t`, ... or `\u` and four hex
    // digits.
    let escaped = |at: usize| {
        let simple = at >= 2 && bytes[at - 2] == b'\\' && b"nrtbf".contains(&bytes[at - 1]);
        let unicode = at >= 6
            && bytes[at - 6] == b'\\'
            && bytes[at - 5] == b'u'
            && bytes[at - 4..at].iter().all(u8::is_ascii_hexdigit);
        simple || unicode
    };
    body.match_indices(key).any(|(at, _)| {
        let end = at + key.len();
        let before_ok = at == 0 || !local(bytes[at - 1]) || escaped(at);
        let after_ok = match bytes.get(end) {
            None => true,
            Some(&b'.') => !bytes.get(end + 1).copied().is_some_and(domain),
            Some(&b) => !domain(b),
        };
        before_ok && after_ok
    })
}

/// Archived messages whose raw bodies one transaction of an erasure reads for the address (by
/// row id), so that each stays short (well within `statement_timeout`, and not holding
/// SQLite's write lock for long) however large the archive.
const ERASURE_SCAN_ROWS: i64 = 20_000;

/// The history's statements on one backend's connection.
pub(crate) trait HistoryStatements: ListStatements {
    /// Up to `query.limit` events matching the query, newest first.
    fn list_events(&mut self, query: &EventQuery) -> QueryResult<Vec<EventRow>>;

    /// The events of one SES message, oldest first.
    fn message_events(&mut self, ses_message_id: &str) -> QueryResult<Vec<EventRow>>;

    /// The archived messages with one of these SNS message ids or about this SES message,
    /// oldest first.
    fn carriers(
        &mut self,
        sns_message_ids: &[&str],
        ses_message_id: &str,
    ) -> QueryResult<Vec<CarrierRow>>;

    /// The lowest and highest row ids of the archive (`None` when it is empty).
    fn archive_ids(&mut self) -> QueryResult<(Option<i64>, Option<i64>)>;

    /// Clears the raw body of every archived message with `after < id <= upto` that names
    /// the address whose key is `key` ([`names_address`]); how many. In the caller's
    /// transaction.
    fn clear_mentions(&mut self, key: &str, after: i64, upto: i64) -> QueryResult<u64>;

    /// The rest of [`HistoryStore::erase_recipient`] in one write transaction holding the
    /// address's lock: first the bodies of messages archived after `scanned_to` (during the
    /// scan), then the events, their messages, the suppression entry and the audit row,
    /// `cleared_before` bodies having been cleared by the scan.
    #[allow(clippy::too_many_arguments)]
    fn erase(
        &mut self,
        key: &str,
        address_hash: &str,
        request: ErasureRequest,
        actor: &Actor,
        at: DateTime<Utc>,
        cleared_before: u64,
        scanned_to: i64,
    ) -> QueryResult<ErasureReport>;

    /// Deletes up to `batch` events older than `cutoff`.
    fn purge_events(&mut self, cutoff: TimeParam, batch: i64) -> QueryResult<usize>;

    /// Deletes up to `batch` archived messages received before `cutoff`.
    fn purge_messages(&mut self, cutoff: TimeParam, batch: i64) -> QueryResult<usize>;
}

macro_rules! impl_history_statements {
    ($connection:ty, $list:path, $mentions:path) => {
        impl HistoryStatements for $connection {
            fn list_events(&mut self, query: &EventQuery) -> QueryResult<Vec<EventRow>> {
                $list(self, query)
            }

            fn message_events(&mut self, ses_message_id: &str) -> QueryResult<Vec<EventRow>> {
                use email_events::dsl as e;
                e::email_events
                    .select(EventRow::as_select())
                    .filter(e::ses_message_id.eq(ses_message_id))
                    .order((e::event_time.asc(), e::id.asc()))
                    .load(self)
            }

            fn carriers(
                &mut self,
                sns_message_ids: &[&str],
                ses_message_id: &str,
            ) -> QueryResult<Vec<CarrierRow>> {
                use sns_messages::dsl as m;
                let mut rows: Vec<(i64, CarrierRow)> = Vec::new();
                let columns = (
                    m::id,
                    (
                        m::sns_message_id,
                        m::ses_type,
                        m::outcome,
                        m::received_at,
                        m::events_stored,
                        m::raw_body.is_not_null(),
                    ),
                );
                rows.extend(
                    m::sns_messages
                        .select(columns)
                        .filter(m::ses_message_id.eq(ses_message_id))
                        .load::<(i64, CarrierRow)>(self)?,
                );
                for chunk in sns_message_ids.chunks(ROWS_PER_INSERT) {
                    rows.extend(
                        m::sns_messages
                            .select(columns)
                            .filter(m::sns_message_id.eq_any(chunk))
                            .load::<(i64, CarrierRow)>(self)?,
                    );
                }
                rows.sort_by(|a, b| (a.1.3, a.0).cmp(&(b.1.3, b.0)));
                rows.dedup_by_key(|row| row.0);
                Ok(rows.into_iter().map(|(_, row)| row).collect())
            }

            fn archive_ids(&mut self) -> QueryResult<(Option<i64>, Option<i64>)> {
                use sns_messages::dsl as m;
                m::sns_messages
                    .select((diesel::dsl::min(m::id), diesel::dsl::max(m::id)))
                    .get_result(self)
            }

            fn clear_mentions(&mut self, key: &str, after: i64, upto: i64) -> QueryResult<u64> {
                use sns_messages::dsl as m;
                let candidates: Vec<(i64, Option<String>)> = m::sns_messages
                    .select((m::id, m::raw_body))
                    .filter(m::id.gt(after).and(m::id.le(upto)))
                    .filter(m::raw_body.is_not_null())
                    .filter($mentions(key))
                    .load(self)?;
                let ids: Vec<i64> = candidates
                    .into_iter()
                    .filter(|(_, body)| body.as_deref().is_some_and(|b| names_address(b, key)))
                    .map(|(id, _)| id)
                    .collect();
                let mut cleared = 0_u64;
                for chunk in ids.chunks(ROWS_PER_INSERT) {
                    cleared += diesel::update(m::sns_messages.filter(m::id.eq_any(chunk)))
                        .set(m::raw_body.eq(None::<String>))
                        .execute(self)? as u64;
                }
                Ok(cleared)
            }

            fn erase(
                &mut self,
                key: &str,
                address_hash: &str,
                request: ErasureRequest,
                actor: &Actor,
                at: DateTime<Utc>,
                cleared_before: u64,
                scanned_to: i64,
            ) -> QueryResult<ErasureReport> {
                use email_events::dsl as e;
                use sns_messages::dsl as m;
                self.write_transaction(|conn| {
                    // Serialises with the policy writing this address's entry.
                    conn.lock_addresses(&[key])?;
                    // What was archived while the archive was being scanned.
                    let late = conn.clear_mentions(key, scanned_to, i64::MAX)?;
                    let deleted: Vec<(String, String)> =
                        diesel::delete(e::email_events.filter(e::recipient_key.eq(key)))
                            .returning((e::sns_message_id, e::ses_message_id))
                            .get_results(conn)?;
                    let mut carriers: Vec<&str> =
                        deleted.iter().map(|(sns, _)| sns.as_str()).collect();
                    carriers.sort_unstable();
                    carriers.dedup();
                    let mut emails: Vec<&str> =
                        deleted.iter().map(|(_, ses)| ses.as_str()).collect();
                    emails.sort_unstable();
                    emails.dedup();
                    let mut cleared = cleared_before + late;
                    for chunk in carriers.chunks(ROWS_PER_INSERT) {
                        cleared += diesel::update(
                            m::sns_messages.filter(
                                m::sns_message_id
                                    .eq_any(chunk)
                                    .and(m::raw_body.is_not_null()),
                            ),
                        )
                        .set(m::raw_body.eq(None::<String>))
                        .execute(conn)? as u64;
                    }
                    for chunk in emails.chunks(ROWS_PER_INSERT) {
                        cleared += diesel::update(
                            m::sns_messages.filter(
                                m::ses_message_id
                                    .eq_any(chunk)
                                    .and(m::raw_body.is_not_null()),
                            ),
                        )
                        .set(m::raw_body.eq(None::<String>))
                        .execute(conn)? as u64;
                    }
                    let (suppression_removed, history_deleted, suppression_kept) =
                        if request.keep_suppression {
                            let kept = suppressions::table
                                .filter(suppressions::address_key.eq(key))
                                .count()
                                .get_result::<i64>(conn)?
                                > 0;
                            // Without an entry, its history (which names the address) explains
                            // nothing that is kept.
                            let history = if kept {
                                0
                            } else {
                                diesel::delete(
                                    suppression_history::table
                                        .filter(suppression_history::address_key.eq(key)),
                                )
                                .execute(conn)? as u64
                            };
                            (false, history, kept)
                        } else {
                            let removed = diesel::delete(
                                suppressions::table.filter(suppressions::address_key.eq(key)),
                            )
                            .execute(conn)?;
                            let history = diesel::delete(
                                suppression_history::table
                                    .filter(suppression_history::address_key.eq(key)),
                            )
                            .execute(conn)?;
                            (removed > 0, history as u64, false)
                        };
                    let previously_erased_at: Option<DateTime<Utc>> = erasures::table
                        .filter(erasures::address_hash.eq(address_hash))
                        .select(diesel::dsl::max(erasures::at))
                        .get_result(conn)?;
                    let mut report = ErasureReport {
                        events_deleted: deleted.len() as u64,
                        messages_cleared: cleared,
                        suppression_removed,
                        history_deleted,
                        suppression_kept,
                        recorded_at: None,
                        previously_erased_at,
                    };
                    if report.changed_anything() {
                        let count = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
                        diesel::insert_into(erasures::table)
                            .values(NewErasure {
                                address_hash: address_hash.to_owned(),
                                actor: storable(actor.label()),
                                at: TimeParam(at),
                                events_deleted: count(report.events_deleted),
                                messages_cleared: count(report.messages_cleared),
                                suppression_removed,
                                history_deleted: count(history_deleted),
                            })
                            .execute(conn)?;
                        report.recorded_at = Some(at);
                    }
                    Ok(report)
                })
            }

            fn purge_events(&mut self, cutoff: TimeParam, batch: i64) -> QueryResult<usize> {
                use email_events::dsl as e;
                self.write_transaction(|conn| {
                    let ids: Vec<i64> = e::email_events
                        .select(e::id)
                        // A literal, so that even a cached generic plan can use the partial
                        // index.
                        .filter(sql::<Bool>("email_events.id > 0"))
                        .filter(e::event_time.lt(cutoff))
                        .order((e::event_time.asc(), e::id.asc()))
                        .limit(batch)
                        .load(conn)?;
                    if ids.is_empty() {
                        return Ok(0);
                    }
                    diesel::delete(e::email_events.filter(e::id.eq_any(ids))).execute(conn)
                })
            }

            fn purge_messages(&mut self, cutoff: TimeParam, batch: i64) -> QueryResult<usize> {
                use sns_messages::dsl as m;
                self.write_transaction(|conn| {
                    let ids: Vec<i64> = m::sns_messages
                        .select(m::id)
                        .filter(m::received_at.lt(cutoff))
                        .order((m::received_at.asc(), m::id.asc()))
                        .limit(batch)
                        .load(conn)?;
                    if ids.is_empty() {
                        return Ok(0);
                    }
                    diesel::delete(m::sns_messages.filter(m::id.eq_any(ids))).execute(conn)
                })
            }
        }
    };
}

impl_history_statements!(diesel::PgConnection, pg_list, pg_mentions);
impl_history_statements!(diesel::SqliteConnection, sqlite_list, sqlite_mentions);

/// An erasure: the archive's bodies naming the address first, in short transactions, then the
/// rest in one holding the address's lock.
fn erase_in_steps<C: HistoryStatements>(
    conn: &mut C,
    key: &str,
    address_hash: &str,
    request: ErasureRequest,
    actor: &Actor,
    at: DateTime<Utc>,
) -> QueryResult<ErasureReport> {
    let (first, last) = conn.archive_ids()?;
    let mut cleared = 0_u64;
    let mut scanned_to = 0_i64;
    if let (Some(first), Some(last)) = (first, last) {
        let mut from = first - 1;
        while from < last {
            let to = from.saturating_add(ERASURE_SCAN_ROWS);
            cleared += conn.write_transaction(|c| c.clear_mentions(key, from, to))?;
            from = to;
        }
        scanned_to = last;
    }
    conn.erase(key, address_hash, request, actor, at, cleared, scanned_to)
}

/// The events of one SES message and the archived messages about it.
fn timeline_rows<C: HistoryStatements>(
    conn: &mut C,
    ses_message_id: &str,
) -> QueryResult<(Vec<EventRow>, Vec<CarrierRow>)> {
    let events = conn.message_events(ses_message_id)?;
    let mut ids: Vec<&str> = events.iter().map(|e| e.sns_message_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let carriers = conn.carriers(&ids, ses_message_id)?;
    Ok((events, carriers))
}

fn stored_of(rows: Vec<EventRow>) -> Result<Vec<StoredEvent>, StoreError> {
    rows.into_iter()
        .map(EventRow::into_stored)
        .collect::<QueryResult<Vec<_>>>()
        .map_err(|e| from_diesel(&e))
}

#[async_trait]
impl HistoryStore for Store {
    async fn list_events(&self, query: EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = self
            .blocking(move |conn| {
                on_backend!(conn, c => c.list_events(&query)).map_err(|e| from_diesel(&e))
            })
            .await?;
        stored_of(rows)
    }

    async fn message_timeline(
        &self,
        ses_message_id: String,
    ) -> Result<MessageTimeline, StoreError> {
        let (events, carriers) = self
            .blocking(move |conn| {
                on_backend!(conn, c => timeline_rows(c, &ses_message_id))
                    .map_err(|e| from_diesel(&e))
            })
            .await?;
        Ok(MessageTimeline {
            events: stored_of(events)?,
            messages: carriers
                .into_iter()
                .map(carrier_of)
                .collect::<QueryResult<Vec<_>>>()
                .map_err(|e| from_diesel(&e))?,
        })
    }

    async fn erase_recipient(
        &self,
        key: String,
        address_hash: String,
        request: ErasureRequest,
        actor: Actor,
        at: DateTime<Utc>,
    ) -> Result<ErasureReport, StoreError> {
        self.blocking(move |conn| {
            on_backend!(conn, c => erase_in_steps(c, &key, &address_hash, request, &actor, at))
                .map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn purge_events(&self, cutoff: DateTime<Utc>, batch: usize) -> Result<usize, StoreError> {
        let batch = i64::try_from(batch).unwrap_or(i64::MAX);
        self.blocking(move |conn| {
            on_backend!(conn, c => c.purge_events(TimeParam(cutoff), batch))
                .map_err(|e| from_diesel(&e))
        })
        .await
    }
}

/// Used by [`crate::archive`] for `MessageArchive::purge_messages`.
pub(crate) async fn purge_messages(
    store: &Store,
    cutoff: DateTime<Utc>,
    batch: usize,
) -> Result<usize, StoreError> {
    let batch = i64::try_from(batch).unwrap_or(i64::MAX);
    store
        .blocking(move |conn| {
            on_backend!(conn, c => c.purge_messages(TimeParam(cutoff), batch))
                .map_err(|e| from_diesel(&e))
        })
        .await
}

/// `EXPLAIN` of a query, for the tests that check which index serves each filter.
#[cfg(feature = "test-util")]
mod explain {
    use diesel::backend::Backend;
    use diesel::prelude::*;
    use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
    use diesel::sql_types::{Integer, Text};

    /// `EXPLAIN <query>` on PostgreSQL: one text line per row.
    pub(super) struct PgExplain<Q>(pub Q);

    /// `EXPLAIN QUERY PLAN <query>` on SQLite: id, parent, unused, detail.
    pub(super) struct SqliteExplain<Q>(pub Q);

    macro_rules! explain {
        ($wrapper:ident, $prefix:literal, $sql_type:ty) => {
            impl<Q: QueryFragment<DB>, DB: Backend> QueryFragment<DB> for $wrapper<Q> {
                fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
                    out.push_sql($prefix);
                    self.0.walk_ast(out.reborrow())
                }
            }

            impl<Q> QueryId for $wrapper<Q> {
                type QueryId = ();
                const HAS_STATIC_QUERY_ID: bool = false;
            }

            impl<Q> Query for $wrapper<Q> {
                type SqlType = $sql_type;
            }

            impl<Q, C> RunQueryDsl<C> for $wrapper<Q> {}
        };
    }

    explain!(PgExplain, "EXPLAIN ", Text);
    explain!(
        SqliteExplain,
        "EXPLAIN QUERY PLAN ",
        (Integer, Integer, Integer, Text)
    );
}

#[cfg(feature = "test-util")]
impl Store {
    /// The plan of the query [`HistoryStore::list_events`] runs for `query`, one line per
    /// step: PostgreSQL's `EXPLAIN` with sequential scans disabled (so that the plan shows
    /// whether an index can serve the query at all, however small the test's table), or
    /// SQLite's `EXPLAIN QUERY PLAN`.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub async fn explain_events(&self, query: EventQuery) -> Result<String, StoreError> {
        use crate::connection::AnyConnection;
        self.blocking(move |conn| {
            match conn {
                AnyConnection::Postgresql(c) => c
                    .transaction(|c| {
                        diesel::sql_query("SET LOCAL enable_seqscan = off").execute(c)?;
                        explain::PgExplain(pg_events_query(&query)).load::<String>(c)
                    })
                    .map(|lines| lines.join("\n")),
                AnyConnection::Sqlite(c) => match driving_tag(&query) {
                    Some((name, value)) => explain::SqliteExplain(sqlite_tagged_query(
                        &query,
                        (name, value),
                    ))
                    .load::<(i32, i32, i32, String)>(c),
                    None => {
                        explain::SqliteExplain(sqlite_events_query(&query))
                            .load::<(i32, i32, i32, String)>(c)
                    }
                }
                .map(|rows| {
                    rows.into_iter()
                        .map(|(_, _, _, detail)| detail)
                        .collect::<Vec<_>>()
                        .join("\n")
                }),
            }
            .map_err(|e| from_diesel(&e))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::names_address;

    #[test]
    fn an_address_is_named_whole_in_any_case_never_inside_a_longer_one() {
        let key = "bob@example.net";
        for body in [
            r#"{"destination":["Bob@Example.NET"]}"#,
            r#"\"to\":[\"Bob <bob@example.net>\"]"#,
            "bob@example.net",
            "write to bob@example.net.",
            "jim.bob@example.net, bob@example.net",
            "https://example.org/unsubscribe?email=bob@example.net",
            "/u/bob@example.net",
            "'bob@example.net'",
            "{bob@example.net}",
            r"diagnostic\\nbob@example.net",
            r"tab\\tbob@example.net",
            r"\\u003cbob@example.net\\u003e",
        ] {
            assert!(names_address(body, key), "{body}");
        }
        for body in [
            r#"["jim.bob@example.net"]"#,
            r#"["jimbob@example.net"]"#,
            r#"["bob@example.network"]"#,
            r#"["bob@example.net.au"]"#,
            r#"["bob@example.net-mail.com"]"#,
            r#"["jim+bob@example.net"]"#,
            r#"["jim_bob@example.net"]"#,
            r#"["alice@example.net"]"#,
        ] {
            assert!(!names_address(body, key), "{body}");
        }
    }
}
