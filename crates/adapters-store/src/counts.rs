//! The reputation counts (`email_counts`, `counted_records`): what a write adds to them, and
//! how they are read.
//!
//! On PostgreSQL the group-commit batch statement appends its counts to `email_count_deltas`
//! itself (see `statements::push_batch_inserts`), and [`Store::fold_count_deltas`] folds them
//! into `email_counts`; everywhere else (SQLite's batch, `reprocess` on both backends)
//! [`count_written`] adds them to `email_counts` in the caller's transaction, from the rows it
//! knows were inserted. The readers read both tables ([`counts_source`]).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, DurationRound, NaiveDate, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use domain::ports::{StoreError, SubscriptionState};
use domain::reputation::{CountStore, Counts, HourlyCounts, RecordTally};
use domain::status::{ActivityStore, FailedMessage, MAX_TOPICS, SubscriptionStatus, TopicActivity};
use serde::Serialize;

use crate::Store;
use crate::connection::AnyConnection;
use crate::error::from_diesel;

use crate::rows::{NewEmailEvent, storable};
use crate::schema::{counted_records, email_counts};
use crate::sql_types::TimeParam;
use crate::statements::Statements;

/// A counted record to insert, with what it adds: serialised as a JSON row for PostgreSQL's
/// batch statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct NewRecord {
    pub record_key: String,
    pub kind: &'static str,
    pub at: TimeParam,
    /// `None` for messages without a configuration set.
    pub configuration_set: Option<String>,
    pub count: i64,
}

impl From<RecordTally> for NewRecord {
    fn from(tally: RecordTally) -> Self {
        Self {
            record_key: storable(tally.record_key),
            kind: tally.kind.as_str(),
            at: TimeParam(tally.at),
            configuration_set: tally.configuration_set.map(storable),
            count: i64::from(tally.count),
        }
    }
}

/// A row of `counted_records`.
#[derive(Debug, Insertable)]
#[diesel(table_name = counted_records)]
pub(crate) struct CountedRecordRow<'a> {
    pub record_key: &'a str,
    pub kind: &'static str,
    pub at: TimeParam,
}

impl NewRecord {
    pub(crate) fn row(&self) -> CountedRecordRow<'_> {
        CountedRecordRow {
            record_key: &self.record_key,
            kind: self.kind,
            at: self.at,
        }
    }
}

/// A row of `email_counts` to add to the stored one.
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = email_counts)]
pub(crate) struct CountRow {
    pub hour: TimeParam,
    pub configuration_set: String,
    pub shard: i16,
    pub sent: i64,
    pub delivered: i64,
    pub hard_bounces: i64,
    pub soft_bounces: i64,
    pub complaints: i64,
    pub rejects: i64,
    pub delivery_delays: i64,
    pub opens: i64,
    pub clicks: i64,
}

/// The start of `at`'s UTC hour.
pub(crate) fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}

/// What `events` (inserted) and `records` (newly counted) add, per hour and configuration set
/// (rows of shard 0, the only one written since the counts' deltas), sorted by both (the order
/// their rows are locked in).
pub(crate) fn tally<'a>(
    events: impl IntoIterator<Item = &'a NewEmailEvent>,
    records: impl IntoIterator<Item = &'a NewRecord>,
) -> Vec<CountRow> {
    let mut sums: BTreeMap<(DateTime<Utc>, String), CountRow> = BTreeMap::new();
    for event in events {
        let row = entry(&mut sums, event.event_time.0, event.configuration_set());
        match (event.event_type, event.bounce_type) {
            ("email_delivered", _) => row.delivered += 1,
            ("email_bounce", Some("hard")) => row.hard_bounces += 1,
            ("email_bounce", _) => row.soft_bounces += 1,
            ("email_spam_report", _) => row.complaints += 1,
            ("email_open", _) => row.opens += 1,
            ("email_click", _) => row.clicks += 1,
            _ => {}
        }
    }
    for record in records {
        let row = entry(&mut sums, record.at.0, record.configuration_set.as_deref());
        match record.kind {
            "send" => row.sent += record.count,
            "reject" => row.rejects += record.count,
            _ => row.delivery_delays += record.count,
        }
    }
    sums.into_values().collect()
}

fn entry<'m>(
    sums: &'m mut BTreeMap<(DateTime<Utc>, String), CountRow>,
    at: DateTime<Utc>,
    configuration_set: Option<&str>,
) -> &'m mut CountRow {
    let hour = hour_of(at);
    let set = configuration_set.unwrap_or_default().to_owned();
    sums.entry((hour, set.clone())).or_insert_with(|| CountRow {
        hour: TimeParam(hour),
        configuration_set: set,
        shard: 0,
        sent: 0,
        delivered: 0,
        hard_bounces: 0,
        soft_bounces: 0,
        complaints: 0,
        rejects: 0,
        delivery_delays: 0,
        opens: 0,
        clicks: 0,
    })
}

/// Counts `records` not counted yet and adds them and `inserted` (events the caller's
/// transaction inserted) to `email_counts` (shard 0), inside the caller's transaction.
///
/// # Errors
/// Any database error.
pub(crate) fn count_written<'a, C: Statements>(
    conn: &mut C,
    inserted: impl IntoIterator<Item = &'a NewEmailEvent>,
    records: &[&'a NewRecord],
) -> QueryResult<()> {
    let mut new_records = Vec::new();
    if !records.is_empty() {
        let rows: Vec<CountedRecordRow<'_>> = records.iter().map(|r| r.row()).collect();
        let keys = conn.insert_new_records(&rows)?;
        new_records.extend(
            records
                .iter()
                .filter(|r| keys.contains(&r.record_key))
                .copied(),
        );
    }
    let rows = tally(inserted, new_records);
    if rows.is_empty() {
        return Ok(());
    }
    conn.add_counts(&rows)
}

/// Loads the rows of a read statement `$sql` on either backend's connection, with `$binds`
/// (each `(sql type, value)`).
macro_rules! load_on_backend {
    ($conn:expr, $row:ty, $sql:expr $(, ($ty:ty, $value:expr))*) => {
        crate::connection::on_backend!($conn, c => diesel::sql_query($sql)
            $(.bind::<$ty, _>($value))*
            .load::<$row>(c))
    };
}

/// The nine sums of a row read from the counts ([`counts_source`]).
#[derive(QueryableByName)]
struct Sums {
    #[diesel(sql_type = BigInt)]
    sent: i64,
    #[diesel(sql_type = BigInt)]
    delivered: i64,
    #[diesel(sql_type = BigInt)]
    hard_bounces: i64,
    #[diesel(sql_type = BigInt)]
    soft_bounces: i64,
    #[diesel(sql_type = BigInt)]
    complaints: i64,
    #[diesel(sql_type = BigInt)]
    rejects: i64,
    #[diesel(sql_type = BigInt)]
    delivery_delays: i64,
    #[diesel(sql_type = BigInt)]
    opens: i64,
    #[diesel(sql_type = BigInt)]
    clicks: i64,
}

impl From<Sums> for Counts {
    fn from(s: Sums) -> Self {
        // Sums of counts the writers only ever add to are never negative.
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Counts {
            sent: n(s.sent),
            delivered: n(s.delivered),
            hard_bounces: n(s.hard_bounces),
            soft_bounces: n(s.soft_bounces),
            complaints: n(s.complaints),
            rejects: n(s.rejects),
            delivery_delays: n(s.delivery_delays),
            opens: n(s.opens),
            clicks: n(s.clicks),
        }
    }
}

/// A row of [`hourly_sums`].
#[derive(QueryableByName)]
struct HourRow {
    #[diesel(sql_type = crate::sql_types::Instant)]
    hour: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    configuration_set: String,
    #[diesel(embed)]
    sums: Sums,
}

/// A row of [`window_sums`] (keyed by configuration set) or [`daily_sums`] (by UTC day).
#[derive(QueryableByName)]
struct KeyedRow {
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(embed)]
    sums: Sums,
}

/// The nine counts' columns of `email_counts`, each a field of [`Sums`].
const COUNT_COLUMNS: [&str; 9] = [
    "sent",
    "delivered",
    "hard_bounces",
    "soft_bounces",
    "complaints",
    "rejects",
    "delivery_delays",
    "opens",
    "clicks",
];

/// The counts as the readers see them, a relation of hour, configuration set and the nine
/// counts (to be aliased). On PostgreSQL `email_counts` and the deltas not folded into it yet
/// (`email_count_deltas`; PostgreSQL pushes a range on `hour` into both). On SQLite
/// `email_counts` alone: its writer adds there directly and its deltas table is always empty
/// (reading it through the union made SQLite's year of days half again as slow).
fn counts_source(conn: &AnyConnection) -> String {
    match conn {
        AnyConnection::Postgresql(_) => {
            let columns = COUNT_COLUMNS.join(", ");
            format!(
                "(SELECT hour, configuration_set, {columns} FROM email_counts \
                 UNION ALL SELECT hour, configuration_set, {columns} FROM email_count_deltas)"
            )
        }
        AnyConnection::Sqlite(_) => "email_counts".to_owned(),
    }
}

/// `select` of each of the nine counts' columns, joined with commas.
fn each_count(select: impl Fn(&str) -> String) -> String {
    COUNT_COLUMNS.map(select).join(", ")
}

/// The nine sums, from the table aliased `c`, named as the columns.
fn sums() -> String {
    each_count(|c| format!("CAST(sum(c.{c}) AS BIGINT) AS {c}"))
}

/// Loads the rows of a read of the counts ([`counts_source`]) on either backend:
/// `$1 <= hour < $2` bound to `from` and `to`, and `$3` to the configuration set when one is
/// given (`sql` then names it).
/// `$n` reads as a numbered parameter on PostgreSQL and as a named one, numbered in order of
/// first appearance, on SQLite.
fn load_sums<R>(
    conn: &mut AnyConnection,
    sql: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    configuration_set: Option<&str>,
) -> QueryResult<Vec<R>>
where
    R: QueryableByName<diesel::pg::Pg> + QueryableByName<diesel::sqlite::Sqlite> + 'static,
{
    use crate::sql_types::Instant;
    let query = diesel::sql_query(sql)
        .bind::<Instant, _>(TimeParam(from))
        .bind::<Instant, _>(TimeParam(to));
    match configuration_set {
        None => crate::connection::on_backend!(conn, c => query.load::<R>(c)),
        Some(set) => {
            let query = query.bind::<Text, _>(set.to_owned());
            crate::connection::on_backend!(conn, c => query.load::<R>(c))
        }
    }
}

/// The filter on one configuration set, if one is given, for [`load_sums`].
fn only(configuration_set: Option<&str>) -> &'static str {
    if configuration_set.is_some() {
        " AND c.configuration_set = $3"
    } else {
        ""
    }
}

/// The counts of every hour in `[from, to)`, per configuration set (only `configuration_set`
/// when given; `""` is messages without one).
pub(crate) fn hourly_sums(
    conn: &mut AnyConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    configuration_set: Option<&str>,
) -> QueryResult<Vec<HourlyCounts>> {
    let sums = sums();
    let source = counts_source(conn);
    let sql = format!(
        "SELECT c.hour AS hour, c.configuration_set AS configuration_set, {sums} \
         FROM {source} c \
         WHERE c.hour >= $1 AND c.hour < $2{} GROUP BY c.hour, c.configuration_set",
        only(configuration_set)
    );
    let rows: Vec<HourRow> = load_sums(conn, &sql, from, to, configuration_set)?;
    Ok(rows
        .into_iter()
        .map(|r| HourlyCounts {
            hour: r.hour,
            configuration_set: (!r.configuration_set.is_empty()).then_some(r.configuration_set),
            counts: r.sums.into(),
        })
        .collect())
}

/// Per configuration set, the sums of `$1 <= hour < $2` from its first hour with a send, if
/// it has one (`CountStore::window_counts`), and one row per set to the server. One pass over
/// the window's range of the primary key sums every hour and finds each set's first send
/// (`w`); a second reads only the hours before the latest of those first sends (`b`, usually
/// none or a few: a set sends every hour it is active) and is taken off. A set without a send
/// keeps every hour.
fn window_sums(
    conn: &mut AnyConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    configuration_set: Option<&str>,
) -> QueryResult<Vec<(Option<String>, Counts)>> {
    let sums = sums();
    let source = counts_source(conn);
    let differences = each_count(|c| format!("CAST(w.{c} - coalesce(b.{c}, 0) AS BIGINT) AS {c}"));
    let sql = format!(
        "WITH w AS (SELECT c.configuration_set, \
         min(CASE WHEN c.sent > 0 THEN c.hour END) AS first_send, {sums} \
         FROM {source} c WHERE c.hour >= $1 AND c.hour < $2{only} \
         GROUP BY c.configuration_set), \
         b AS (SELECT c.configuration_set, {sums} FROM w JOIN {source} c \
         ON c.configuration_set = w.configuration_set AND c.hour < w.first_send \
         WHERE c.hour >= $1 AND c.hour < (SELECT max(first_send) FROM w) \
         GROUP BY c.configuration_set) \
         SELECT w.configuration_set AS key, {differences} \
         FROM w LEFT JOIN b ON b.configuration_set = w.configuration_set",
        only = only(configuration_set)
    );
    let rows: Vec<KeyedRow> = load_sums(conn, &sql, from, to, configuration_set)?;
    Ok(rows
        .into_iter()
        .map(|r| ((!r.key.is_empty()).then_some(r.key), r.sums.into()))
        .collect())
}

/// Per UTC day, the sums of `$1 <= hour < $2` (`CountStore::daily_counts`).
fn daily_sums(
    conn: &mut AnyConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    configuration_set: Option<&str>,
) -> QueryResult<Vec<(NaiveDate, Counts)>> {
    // The UTC day, grouped on, then as `YYYY-MM-DD` text (whatever the session's time zone):
    // PostgreSQL groups on a date and formats only the days (`to_char` on every hour of a year
    // was a third of the query's time).
    let (day, key) = match conn {
        AnyConnection::Postgresql(_) => (
            "(c.hour AT TIME ZONE 'UTC')::date",
            "to_char(d.day, 'YYYY-MM-DD')",
        ),
        AnyConnection::Sqlite(_) => ("substr(c.hour, 1, 10)", "d.day"),
    };
    let sums = sums();
    let source = counts_source(conn);
    let columns = each_count(|c| format!("d.{c}"));
    let sql = format!(
        "SELECT {key} AS key, {columns} FROM (SELECT {day} AS day, {sums} FROM {source} c \
         WHERE c.hour >= $1 AND c.hour < $2{} GROUP BY 1) d",
        only(configuration_set)
    );
    let rows: Vec<KeyedRow> = load_sums(conn, &sql, from, to, configuration_set)?;
    rows.into_iter()
        .map(|r| {
            NaiveDate::parse_from_str(&r.key, "%Y-%m-%d")
                .map(|day| (day, r.sums.into()))
                .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))
        })
        .collect()
}

#[derive(QueryableByName)]
struct SubscriptionRow {
    #[diesel(sql_type = Text)]
    topic_arn: String,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = crate::sql_types::Instant)]
    updated_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct TopicRow {
    #[diesel(sql_type = Text)]
    topic_arn: String,
    #[diesel(sql_type = Nullable<crate::sql_types::Instant>)]
    last_notification_at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct FailureRow {
    #[diesel(sql_type = crate::sql_types::Instant)]
    received_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    ses_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    error_detail: Option<String>,
}

/// The distinct topics of the archive, by a walk of the `(topic_arn, received_at)` index (one
/// probe per topic, not a scan of the archive), each with its last notification.
const TOPICS_SQL: &str = "WITH RECURSIVE topics(topic_arn) AS (\
     SELECT min(topic_arn) FROM sns_messages \
     UNION ALL SELECT (SELECT min(m.topic_arn) FROM sns_messages m \
     WHERE m.topic_arn > t.topic_arn) FROM topics t WHERE t.topic_arn IS NOT NULL) \
     SELECT topic_arn, (SELECT max(m.received_at) FROM sns_messages m \
     WHERE m.topic_arn = topics.topic_arn AND m.message_type = 'Notification') \
     AS last_notification_at FROM topics WHERE topic_arn IS NOT NULL LIMIT ";

#[async_trait]
impl CountStore for Store {
    async fn hourly_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        configuration_set: Option<String>,
    ) -> Result<Vec<HourlyCounts>, StoreError> {
        self.blocking(move |conn| {
            hourly_sums(conn, from, to, configuration_set.as_deref()).map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn window_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        configuration_set: Option<String>,
    ) -> Result<Vec<(Option<String>, Counts)>, StoreError> {
        self.blocking(move |conn| {
            window_sums(conn, from, to, configuration_set.as_deref()).map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn daily_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        configuration_set: Option<String>,
    ) -> Result<Vec<(NaiveDate, Counts)>, StoreError> {
        self.blocking(move |conn| {
            daily_sums(conn, from, to, configuration_set.as_deref()).map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn purge_counted_records(
        &self,
        cutoff: DateTime<Utc>,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let batch = i64::try_from(batch).unwrap_or(i64::MAX);
        self.blocking(move |conn| {
            crate::connection::on_backend!(conn, c => {
                use crate::schema::counted_records::dsl as r;
                c.write_transaction(|c| {
                    let keys: Vec<String> = r::counted_records
                        .select(r::record_key)
                        .filter(r::at.lt(TimeParam(cutoff)))
                        .order(r::at.asc())
                        .limit(batch)
                        .load(c)?;
                    if keys.is_empty() {
                        return Ok(0);
                    }
                    diesel::delete(r::counted_records.filter(r::record_key.eq_any(keys)))
                        .execute(c)
                })
            })
            .map_err(|e| from_diesel(&e))
        })
        .await
    }
}

/// The number of deltas a fold moved.
#[derive(QueryableByName)]
struct Folded {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl Store {
    /// Folds up to `batch` of the counts' deltas (`email_count_deltas`, appended by
    /// PostgreSQL's batch statement) into `email_counts` (shard 0), in one statement that
    /// deletes them and adds their sums per hour and configuration set (rows locked in the
    /// order every writer of `email_counts` uses), so a count is never lost or counted twice.
    /// Deltas another fold holds right now (another instance's) are skipped, not waited for;
    /// a delta committed meanwhile is folded by a later call. The readers sum both tables, so
    /// a fold changes no answer; it keeps the deltas few. Returns how many deltas it folded:
    /// fewer than `batch` means none was left (but those skipped). On SQLite there are none
    /// (its writer adds to `email_counts` directly): 0 without a query.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be committed.
    pub async fn fold_count_deltas(&self, batch: usize) -> Result<usize, StoreError> {
        if self.backend() == crate::Backend::Sqlite {
            return Ok(0);
        }
        let batch = i64::try_from(batch).unwrap_or(i64::MAX);
        let columns = COUNT_COLUMNS.join(", ");
        let sums = each_count(|c| format!("sum({c}) AS {c}"));
        let added = each_count(|c| format!("{c} = c.{c} + excluded.{c}"));
        let sql = format!(
            "WITH moved AS (DELETE FROM email_count_deltas WHERE ctid = ANY(ARRAY(\
             SELECT ctid FROM email_count_deltas LIMIT $1 FOR UPDATE SKIP LOCKED)) \
             RETURNING *), \
             sums AS (SELECT hour, configuration_set, {sums}, count(*) AS n FROM moved \
             GROUP BY hour, configuration_set), \
             added AS (INSERT INTO email_counts AS c (hour, configuration_set, shard, {columns}) \
             SELECT hour, configuration_set, 0, {columns} FROM sums \
             ORDER BY hour, configuration_set COLLATE \"C\" \
             ON CONFLICT (hour, configuration_set, shard) DO UPDATE SET {added}) \
             SELECT CAST(coalesce(sum(n), 0) AS BIGINT) AS n FROM sums"
        );
        self.blocking(move |conn| {
            crate::connection::on_backend!(conn, c => diesel::sql_query(&sql)
                .bind::<BigInt, _>(batch)
                .get_result::<Folded>(c))
            .map(|folded| usize::try_from(folded.n).unwrap_or(0))
            .map_err(|e| from_diesel(&e))
        })
        .await
    }
}

#[async_trait]
impl ActivityStore for Store {
    async fn subscriptions(&self) -> Result<Vec<SubscriptionStatus>, StoreError> {
        let rows: Vec<SubscriptionRow> = self
            .blocking(|conn| {
                load_on_backend!(
                    conn,
                    SubscriptionRow,
                    "SELECT topic_arn, state, updated_at FROM sns_subscriptions ORDER BY topic_arn"
                )
                .map_err(|e| from_diesel(&e))
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                Some(SubscriptionStatus {
                    state: SubscriptionState::parse(&row.state)?,
                    topic_arn: row.topic_arn,
                    updated_at: row.updated_at,
                })
            })
            .collect())
    }

    async fn topic_activity(&self) -> Result<Vec<TopicActivity>, StoreError> {
        let rows: Vec<TopicRow> = self
            .blocking(|conn| {
                load_on_backend!(conn, TopicRow, format!("{TOPICS_SQL}{MAX_TOPICS}"))
                    .map_err(|e| from_diesel(&e))
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| TopicActivity {
                topic_arn: row.topic_arn,
                last_notification_at: row.last_notification_at,
            })
            .collect())
    }

    async fn recent_failures(&self, limit: usize) -> Result<Vec<FailedMessage>, StoreError> {
        let rows: Vec<FailureRow> = self
            .blocking(move |conn| {
                load_on_backend!(
                    conn,
                    FailureRow,
                    format!(
                        "SELECT received_at, ses_type, error_detail FROM sns_messages \
                         WHERE outcome = 'failed' ORDER BY received_at DESC LIMIT {limit}"
                    )
                )
                .map_err(|e| from_diesel(&e))
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| FailedMessage {
                received_at: row.received_at,
                ses_type: row.ses_type,
                reason: row.error_detail,
            })
            .collect())
    }
}
