//! The suppression policy on PostgreSQL in as few round trips as it can take: group commit
//! writes a batch in one statement, and every further round trip is time the single writer
//! thread waits.
//!
//! Every writer of the suppression list first takes the advisory locks of the addresses it
//! writes ([`lock`]: `(namespace, hashtext(key))`, ascending), so that writes of one address,
//! from this server or another sharing the database, happen one after the other; every
//! statement runs in `READ COMMITTED` (a session setting), so that a statement that starts after
//! a lock was granted sees what the lock's previous holder committed (and `INSERT ... ON
//! CONFLICT DO UPDATE` works on the latest committed row even in a statement that started
//! before).
//!
//! - A batch whose triggers are all Permanent bounces or complaints is one autocommitted
//!   statement ([`PgBatchLocked`]): it takes the locks of the triggering addresses, writes the
//!   events, the messages, and, for each address with a newly inserted trigger, the entry of
//!   the earliest such trigger and its history line: that decision depends on nothing but the
//!   stored entry, which the locks guard.
//! - A batch with a soft bounce first tries one autocommitted statement ([`PgBatchChecked`]).
//!   It opens with the migration's `sesw_soft_bounce_check`, which takes the locks and then, in
//!   a statement of its own, checks whether any soft-bounced address could reach the limit (a
//!   necessary condition of the policy's, never a sufficient one). When none can (almost
//!   always), the same statement writes what [`PgBatchLocked`] writes.
//! - Otherwise the statement writes nothing and the policy runs in full
//!   ([`write_batch_deciding`]): a transaction takes the locks, the batch statement returns
//!   what the policy decides on ([`PgBatchFacts`]), the policy decides in Rust, one statement
//!   writes the entries and their history lines ([`write_decisions`]).
//!
//! Entries are written with `INSERT ... ON CONFLICT DO UPDATE ... WHERE` the new entry
//! outranks the stored one, as `SuppressionPolicy::decide` ranks them, so the statement itself
//! never lowers an entry. Deadlocks: advisory locks are always taken first (in the batch
//! statements the inserts wait for the locks, or the check's answer), in one order; events are
//! inserted sorted by key, entries sorted by address key.
//!
//! The batch statements are prepared once per connection and variant: diesel keys their
//! statement cache by the SQL text (`statements::keyed_by_sql`), which has two variants, with
//! and without counted records. The text must never depend on anything else of the values
//! (the number of rows included), or every batch would prepare a statement of its own.

use chrono::{DateTime, SubsecRound, Utc};
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz};
use domain::suppression::{Actor, SuppressionReason, TriggerKind};

use crate::counts::NewRecord;
use crate::list_statements::{
    EntryRow, KnownFacts, LatestPerKey, NewSuppression, PendingTrigger, SoftBounceRow,
    TriggersByKey,
};
use crate::rows::{NewEmailEvent, NewSnsMessage};
use crate::sql_types::TimeParam;
use crate::statements::{
    BatchJson, BatchWritten, Returning, Statements, push_batch_ctes, push_batch_inserts,
    to_json_rows,
};

/// Advisory locks live in one namespace of ours (`'sesw'` as a 32-bit integer), the address
/// key's `hashtext` being the second half of the lock's key. Two addresses may share a hash;
/// they then wait for each other, which costs time, never correctness.
const LOCK_NAMESPACE: i32 = 0x7365_7377;

/// Takes the advisory locks of `keys` until the transaction ends: one statement, the distinct
/// hashes in ascending order (as `sesw_soft_bounce_check` takes them).
///
/// # Errors
/// Any database error, `lock_timeout` included.
pub(crate) fn lock(conn: &mut PgConnection, keys: &[&str]) -> QueryResult<()> {
    diesel::sql_query(
        "SELECT count(pg_advisory_xact_lock($1, h)) FROM \
         (SELECT DISTINCT hashtext(k) AS h FROM unnest($2::text[]) AS k ORDER BY h) AS locks",
    )
    .bind::<Integer, _>(LOCK_NAMESPACE)
    .bind::<Array<Text>, _>(keys)
    .execute(conn)
    .map(drop)
}

/// The columns an entry is written with.
const ENTRY_COLUMNS: &str =
    "address_key, address, reason, created_at, expires_at, ses_message_id, event_key, note";

/// The end of an entry's `INSERT ... SELECT ... FROM candidates`: it replaces a stored entry
/// only if that entry is expired (at the candidate's `created_at`, the time of the decision),
/// or expires and the candidate expires later or never, as `SuppressionPolicy::decide` ranks
/// them; the address keeps the form the entry shows; a replaced entry gets a new row id (the
/// list pages by `(created_at, id)`).
const UPSERT_ENTRY: &str = " ORDER BY address_key \
     ON CONFLICT (address_key) DO UPDATE SET id = DEFAULT, reason = EXCLUDED.reason, \
     created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at, \
     ses_message_id = EXCLUDED.ses_message_id, event_key = EXCLUDED.event_key, \
     note = EXCLUDED.note \
     WHERE suppressions.expires_at IS NOT NULL \
     AND (suppressions.expires_at <= EXCLUDED.created_at OR EXCLUDED.expires_at IS NULL \
     OR EXCLUDED.expires_at > suppressions.expires_at) \
     RETURNING address_key, address, reason, created_at, expires_at, ses_message_id, \
     event_key, note), \
     history AS (INSERT INTO suppression_history (address_key, address, action, reason, actor, \
     at, expires_at, ses_message_id, event_key, note) \
     SELECT address_key, address, 'added', reason, ";

/// After the actor's bind parameter: the history line's remaining columns.
const HISTORY_TAIL: &str =
    ", created_at, expires_at, ses_message_id, event_key, note FROM written) ";

/// Writes the policy's decisions and their history lines in one statement (see
/// `ListStatements::write_decisions`); the reasons of the rows written.
pub(crate) fn write_decisions(
    conn: &mut PgConnection,
    rows: &[NewSuppression],
    actor: &Actor,
    at: DateTime<Utc>,
) -> QueryResult<Vec<SuppressionReason>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // Every row's `created_at` is the decision's time, which the history line's `at` is.
    debug_assert!(rows.iter().all(|row| row.created_at.0 == at));
    let reasons: Vec<String> = PgWriteDecisions {
        rows: to_json_rows(&rows.iter().collect::<Vec<_>>())?,
        actor: actor.label(),
    }
    .load(conn)?;
    reasons.iter().map(|r| parse_reason(r)).collect()
}

fn parse_reason(reason: &str) -> QueryResult<SuppressionReason> {
    SuppressionReason::parse(reason).ok_or_else(|| {
        diesel::result::Error::DeserializationError(
            format!("an entry was written with an unknown reason `{reason}`").into(),
        )
    })
}

/// [`write_decisions`]' statement: the rows as one JSON array, so that its text (prepared once
/// per connection) does not depend on their number.
#[derive(QueryId)]
struct PgWriteDecisions {
    rows: String,
    actor: String,
}

impl QueryFragment<Pg> for PgWriteDecisions {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH written AS (INSERT INTO suppressions (");
        out.push_sql(ENTRY_COLUMNS);
        out.push_sql(") SELECT ");
        out.push_sql(ENTRY_COLUMNS);
        out.push_sql(" FROM json_populate_recordset(NULL::suppressions, ");
        out.push_bind_param::<Text, _>(&self.rows)?;
        out.push_sql("::json)");
        out.push_sql(UPSERT_ENTRY);
        out.push_bind_param::<Text, _>(&self.actor)?;
        out.push_sql(HISTORY_TAIL);
        out.push_sql("SELECT reason FROM written");
        Ok(())
    }
}

impl Query for PgWriteDecisions {
    type SqlType = Text;
}

impl RunQueryDsl<PgConnection> for PgWriteDecisions {}

/// A Permanent bounce or complaint as [`PgBatchChecked`] reads it: the entry it would write
/// (its time is taken by the statement), and its event.
#[derive(serde::Serialize)]
struct PermanentTrigger<'a> {
    address_key: &'a str,
    address: &'a str,
    reason: &'static str,
    ses_message_id: &'a str,
    event_key: &'a str,
}

/// A soft bounce of the batch as `sesw_soft_bounce_check` reads it.
#[derive(serde::Serialize)]
struct CheckedBounce<'a> {
    key: &'a str,
    event_time: TimeParam,
}

/// What both batch statements of a batch with suppression triggers write, and the locks they
/// take.
struct TriggeredBatch {
    rows: BatchJson,
    /// The keys of every triggering address.
    lock_keys: Vec<String>,
    /// The Permanent triggers, a JSON array of [`PermanentTrigger`].
    permanent: String,
    actor: String,
}

impl TriggeredBatch {
    /// Everything after the statement's first CTE, `first`, which takes the locks: the inserts,
    /// guarded by `guard` (which reads `first`: an init plan, evaluated before any row is
    /// written); `decided`, the time of the decision (it reads `first`, so the time is taken
    /// after any wait for the locks); then for each address the entry of the earliest (by event
    /// time, then event key) of its Permanent triggers that the statement inserted, as
    /// `SuppressionPolicy::decide` picks it, written unless the stored entry outranks it, with
    /// its history line. Returns `'e'` rows (events inserted), `'m'` (messages) and `'p'`
    /// (entries written).
    fn push_after<'b>(
        &'b self,
        out: &mut AstPass<'_, 'b, Pg>,
        first: &'static str,
        guard: &'static str,
    ) -> QueryResult<()> {
        push_batch_inserts(out, &self.rows, Some(guard), Returning::Keys)?;
        out.push_sql(", decided AS (SELECT clock_timestamp() AS at FROM ");
        out.push_sql(first);
        out.push_sql(
            "), permanent AS (SELECT DISTINCT ON (t.address_key) t.address_key, t.address, \
             t.reason, d.at AS created_at, t.ses_message_id, t.event_key \
             FROM decided AS d, json_populate_recordset(NULL::suppressions, ",
        );
        out.push_bind_param::<Text, _>(&self.permanent)?;
        out.push_sql(
            "::json) AS t JOIN new_events AS e ON e.event_key = t.event_key \
             ORDER BY t.address_key, e.event_time, t.event_key), \
             written AS (INSERT INTO suppressions (",
        );
        out.push_sql(ENTRY_COLUMNS);
        out.push_sql(
            ") SELECT address_key, address, reason, created_at, NULL, ses_message_id, \
             event_key, NULL FROM permanent",
        );
        out.push_sql(UPSERT_ENTRY);
        out.push_bind_param::<Text, _>(&self.actor)?;
        out.push_sql(HISTORY_TAIL);
        out.push_sql(
            "SELECT 'e', event_key, sns_message_id FROM new_events \
             UNION ALL SELECT 'm', NULL, sns_message_id FROM new_messages \
             UNION ALL SELECT 'p', reason, address_key FROM written",
        );
        Ok(())
    }
}

/// The batch statement of a batch with a soft bounce among its suppression triggers (see the
/// module's documentation): `checked` (the locks and the check) first, then what
/// [`TriggeredBatch::push_after`] writes, only when the check answers `false`, and one `'c'`
/// row, the check's answer (`"true"`: nothing was written).
struct PgBatchChecked {
    batch: TriggeredBatch,
    /// The soft bounces, a JSON array of [`CheckedBounce`].
    bounces: String,
    limit: i32,
    window_us: i64,
}

crate::statements::keyed_by_sql!(PgBatchChecked, PgBatchLocked, PgBatchFacts);

impl QueryFragment<Pg> for PgBatchChecked {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH checked AS (SELECT sesw_soft_bounce_check(");
        out.push_bind_param::<Integer, _>(&LOCK_NAMESPACE)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.batch.lock_keys)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.bounces)?;
        out.push_sql("::json, ");
        out.push_bind_param::<Integer, _>(&self.limit)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.window_us)?;
        out.push_sql(") AS may_suppress), ");
        self.batch.push_after(
            &mut out,
            "checked",
            "NOT (SELECT may_suppress FROM checked)",
        )?;
        out.push_sql(" UNION ALL SELECT 'c', may_suppress::text, NULL FROM checked");
        Ok(())
    }
}

impl Query for PgBatchChecked {
    type SqlType = (Text, Nullable<Text>, Nullable<Text>);
}

impl RunQueryDsl<PgConnection> for PgBatchChecked {}

/// The batch statement of a batch whose triggers are all Permanent bounces or complaints: the
/// locks in a CTE of its own instead of `sesw_soft_bounce_check` (nothing needs checking, so
/// nothing needs a snapshot taken after the locks: the entries are written by `INSERT ... ON
/// CONFLICT DO UPDATE`, which works on the latest committed row whatever the statement's
/// snapshot), then what [`TriggeredBatch::push_after`] writes.
struct PgBatchLocked(TriggeredBatch);

impl QueryFragment<Pg> for PgBatchLocked {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH locks AS (SELECT count(pg_advisory_xact_lock(");
        out.push_bind_param::<Integer, _>(&LOCK_NAMESPACE)?;
        out.push_sql(", h)) AS taken FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest(");
        out.push_bind_param::<Array<Text>, _>(&self.0.lock_keys)?;
        out.push_sql("::text[]) AS k ORDER BY h) AS l), ");
        self.0
            .push_after(&mut out, "locks", "(SELECT taken FROM locks) >= 0")
    }
}

impl Query for PgBatchLocked {
    type SqlType = (Text, Nullable<Text>, Nullable<Text>);
}

impl RunQueryDsl<PgConnection> for PgBatchLocked {}

/// The batch statement returning, besides what it inserted, what the policy decides on for the
/// addresses of a batch with a soft bounce, as one JSON object (`entries`, `delivered`,
/// `softBounces`: arrays of the rows `ListStatements::entries`, `last_delivered` and
/// `soft_bounces` read), the events the statement inserted included (its snapshot does not
/// show them).
///
/// The reads of deliveries and soft bounces go address key by address key (`unnest` and a
/// subquery per key; the latest delivery newest first until the first one, its event type
/// compared as `event_type || ''`; the soft bounces filtered on nothing but the key and the
/// event time inside the subquery) so that only the index on `(recipient_key, event_time)`
/// can serve them, whatever the planner believes of the table: a connection keeps the plan it made the first times it ran the statement, and one
/// made while the table was small or never analyzed (a new installation, a truncated table)
/// went on reading the whole event-type index as the table grew (seen in the load test: 5.8
/// instead of 2 ms per batch).
struct PgBatchFacts {
    rows: BatchJson,
    keys: Vec<String>,
    soft_keys: Vec<String>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

impl QueryFragment<Pg> for PgBatchFacts {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        push_batch_ctes(&mut out, &self.rows, Returning::Facts)?;
        // The snapshot does not show what this statement inserts: `inserted` adds it.
        out.push_sql(
            ", inserted AS (SELECT recipient_key, recipient, event_key, event_type, \
             bounce_type, ses_message_id, event_time FROM new_events WHERE recipient_key = ANY(",
        );
        out.push_bind_param::<Array<Text>, _>(&self.soft_keys)?;
        out.push_sql(
            ")) \
             SELECT 'e', event_key, sns_message_id FROM new_events \
             UNION ALL SELECT 'm', NULL, sns_message_id FROM new_messages \
             UNION ALL SELECT 'f', json_build_object(\
             'entries', (SELECT coalesce(json_agg(json_build_array(id, address_key, address, \
             reason, created_at, expires_at, ses_message_id, event_key, note)), '[]') \
             FROM suppressions WHERE address_key = ANY(",
        );
        out.push_bind_param::<Array<Text>, _>(&self.keys)?;
        out.push_sql(
            ")), \
             'delivered', (SELECT coalesce(json_agg(json_build_array(k, latest)), '[]') \
             FROM (SELECT k, greatest((SELECT event_time FROM email_events \
             WHERE recipient_key = k AND event_type || '' = 'email_delivered' \
             ORDER BY event_time DESC LIMIT 1), \
             (SELECT max(event_time) FROM inserted \
             WHERE recipient_key = k AND event_type = 'email_delivered')) AS latest \
             FROM unnest(",
        );
        out.push_bind_param::<Array<Text>, _>(&self.soft_keys)?;
        out.push_sql(
            "::text[]) AS k) AS d WHERE latest IS NOT NULL), \
             'softBounces', (SELECT coalesce(json_agg(json_build_array(recipient_key, \
             recipient, event_key, ses_message_id, event_time)), '[]') FROM (\
             SELECT b.recipient_key, b.recipient, b.event_key, b.ses_message_id, b.event_time, \
             b.event_type, b.bounce_type FROM unnest(",
        );
        out.push_bind_param::<Array<Text>, _>(&self.soft_keys)?;
        out.push_sql(
            "::text[]) AS k CROSS JOIN LATERAL (SELECT * FROM email_events \
             WHERE recipient_key = k AND event_time >= ",
        );
        out.push_bind_param::<Timestamptz, _>(&self.from)?;
        out.push_sql(" AND event_time <= ");
        out.push_bind_param::<Timestamptz, _>(&self.to)?;
        // `OFFSET 0` keeps the subquery a subquery (one index search per key), which the
        // planner would otherwise fold into a join on whichever index it believes best; the
        // event type is filtered outside it, so that no index but `(recipient_key,
        // event_time)` can serve it.
        out.push_sql(
            " OFFSET 0) AS b \
             UNION ALL SELECT recipient_key, recipient, event_key, ses_message_id, event_time, \
             event_type, bounce_type FROM inserted) AS b \
             WHERE event_type = 'email_bounce' AND bounce_type = 'soft' AND event_time >= ",
        );
        out.push_bind_param::<Timestamptz, _>(&self.from)?;
        out.push_sql(" AND event_time <= ");
        out.push_bind_param::<Timestamptz, _>(&self.to)?;
        out.push_sql("))::text, NULL");
        Ok(())
    }
}

impl Query for PgBatchFacts {
    type SqlType = (Text, Nullable<Text>, Nullable<Text>);
}

impl RunQueryDsl<PgConnection> for PgBatchFacts {}

/// The facts of [`PgBatchFacts`] as it returns them.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct FactsJson {
    entries: Vec<EntryRow>,
    delivered: Vec<LatestPerKey>,
    soft_bounces: Vec<SoftBounceRow>,
}

/// What a batch statement returned.
#[derive(Default)]
struct BatchRows {
    written: BatchWritten,
    /// The reasons of the entries it wrote.
    reasons: Vec<SuppressionReason>,
    /// The facts it read ([`PgBatchFacts`]).
    facts: Option<FactsJson>,
    /// [`PgBatchChecked`]'s answer: `true` when an address may reach the soft-bounce limit
    /// (and nothing was written).
    may_suppress: Option<bool>,
}

impl BatchRows {
    fn of(rows: Vec<(String, Option<String>, Option<String>)>) -> QueryResult<Self> {
        let unexpected = |kind: &str| {
            diesel::result::Error::DeserializationError(
                format!("the batch statement returned an unexpected `{kind}` row").into(),
            )
        };
        let mut out = Self::default();
        for (kind, first, second) in rows {
            match (kind.as_str(), first, second) {
                ("e", Some(key), Some(sns_message_id)) => {
                    out.written.events.push((key, sns_message_id));
                }
                ("m", None, Some(sns_message_id)) => out.written.messages.push(sns_message_id),
                ("p", Some(reason), _) => out.reasons.push(parse_reason(&reason)?),
                ("f", Some(json), None) => {
                    out.facts =
                        Some(serde_json::from_str(&json).map_err(|e| {
                            diesel::result::Error::DeserializationError(Box::new(e))
                        })?);
                }
                ("c", Some(answer), None) => {
                    out.may_suppress = Some(answer.parse().map_err(|_| unexpected("c"))?);
                }
                (kind, ..) => return Err(unexpected(kind)),
            }
        }
        Ok(out)
    }
}

/// The batch and the policy's entries for `triggers` (the triggers among its events), in as
/// few round trips as the module's documentation says; what was written and the reason of each
/// entry written.
///
/// # Errors
/// Any database error; nothing of the batch is then written.
pub(crate) fn write_batch_suppressing(
    conn: &mut PgConnection,
    messages: &[&NewSnsMessage],
    events: &[&NewEmailEvent],
    records: &[&NewRecord],
    triggers: Vec<PendingTrigger>,
    policy: &domain::suppression::SuppressionPolicy,
) -> QueryResult<(BatchWritten, Vec<SuppressionReason>)> {
    let triggers: Vec<PendingTrigger> =
        triggers.into_iter().filter(|t| !t.key.is_empty()).collect();
    let permanent: Vec<PermanentTrigger<'_>> = triggers
        .iter()
        .filter(|t| t.trigger.kind != TriggerKind::SoftBounce)
        .map(|t| PermanentTrigger {
            address_key: &t.key,
            address: &t.address,
            reason: t.trigger.kind.reason().as_str(),
            ses_message_id: &t.trigger.ses_message_id,
            event_key: &t.trigger.event_key,
        })
        .collect();
    let soft: Vec<CheckedBounce<'_>> = triggers
        .iter()
        .filter(|t| t.trigger.kind == TriggerKind::SoftBounce)
        .map(|t| CheckedBounce {
            key: &t.key,
            event_time: TimeParam(t.trigger.event_time),
        })
        .collect();
    let batch = TriggeredBatch {
        rows: BatchJson::of(messages, events, records)?,
        lock_keys: triggers.iter().map(|t| t.key.clone()).collect(),
        permanent: to_json_rows(&permanent.iter().collect::<Vec<_>>())?,
        actor: Actor::Policy.label(),
    };
    if soft.is_empty() {
        let rows = BatchRows::of(PgBatchLocked(batch).load(conn)?)?;
        return Ok((rows.written, rows.reasons));
    }
    let checked = PgBatchChecked {
        batch,
        bounces: to_json_rows(&soft.iter().collect::<Vec<_>>())?,
        limit: i32::try_from(policy.soft_bounce_limit).unwrap_or(i32::MAX),
        window_us: policy
            .soft_bounce_window
            .num_microseconds()
            .unwrap_or(i64::MAX),
    };
    let rows = BatchRows::of(checked.load(conn)?)?;
    if rows.may_suppress == Some(false) {
        return Ok((rows.written, rows.reasons));
    }
    // Rare (an address may reach the limit): the rows are serialised again for the second
    // attempt rather than copied for every batch with a soft bounce.
    write_batch_deciding(
        conn,
        BatchJson::of(messages, events, records)?,
        triggers,
        policy,
    )
}

/// The batch with the policy run in full (see the module's documentation).
fn write_batch_deciding(
    conn: &mut PgConnection,
    rows: BatchJson,
    triggers: Vec<PendingTrigger>,
    policy: &domain::suppression::SuppressionPolicy,
) -> QueryResult<(BatchWritten, Vec<SuppressionReason>)> {
    let actor = Actor::Policy;
    let by_key = TriggersByKey::new(triggers.iter().cloned());
    let keys = by_key.keys();
    conn.write_transaction(|conn| {
        lock(conn, &keys)?;
        // The time of the decision: after the locks, which may have been waited for.
        let now = Utc::now().trunc_subsecs(6);
        let (from, to) = by_key.soft_bounce_span(policy).unwrap_or((now, now));
        let statement = PgBatchFacts {
            rows,
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            soft_keys: by_key
                .soft_keys(policy)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            from,
            to,
        };
        let rows = BatchRows::of(statement.load(conn)?)?;
        let facts = rows.facts.ok_or_else(|| {
            diesel::result::Error::DeserializationError("the batch returned no facts".into())
        })?;
        let mut known = KnownFacts::default();
        for row in facts.entries {
            known.entry(row)?;
        }
        for latest in facts.delivered {
            known.last_delivered(latest);
        }
        for row in facts.soft_bounces {
            known.soft_bounce(row);
        }
        let inserted = crate::statements::inserted_triggers(&rows.written, triggers);
        let inserted = TriggersByKey::new(inserted);
        let decided = known.decisions(policy, &inserted, now);
        let reasons = write_decisions(conn, &decided, &actor, now)?;
        Ok((rows.written, reasons))
    })
}
