//! The statements of the suppression list and the API tokens, for both backends (as in
//! `statements.rs`, one macro body compiled for each connection type), and
//! [`apply_policy`]: the suppression policy applied inside the transaction that stored the
//! events that trigger it.
//!
//! Concurrency: every change to an address's entry first takes the address's lock, in one
//! global order ([`ListStatements::lock_addresses`]; the batch statement of group commit takes
//! them in its first step, see `pg_policy`). On PostgreSQL that is a transaction-level
//! advisory lock; in `READ COMMITTED` each later statement sees what the previous holder
//! committed, so two servers storing soft bounces of one address at once decide one after the
//! other, exactly as if the notifications had come one after the other. On SQLite the write
//! transaction (`BEGIN IMMEDIATE`) already serialises every writer.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use domain::ports::ListQuery;
use domain::suppression::{
    Actor, AddressFacts, HistoryAction, HistoryItem, SoftBounce, SuppressionEntry,
    SuppressionPolicy, SuppressionReason, Trigger,
};

use crate::pg_policy;
use crate::rows::storable;
use crate::schema::{api_tokens, email_events, suppression_history, suppressions};
use crate::sql_types::TimeParam;
use crate::statements::Statements;

/// A row of `suppressions` to insert (serialised as a JSON object for PostgreSQL's
/// `json_populate_recordset`).
#[derive(Debug, Clone, Insertable, serde::Serialize)]
#[diesel(table_name = suppressions, treat_none_as_default_value = false)]
pub(crate) struct NewSuppression {
    pub address_key: String,
    pub address: String,
    pub reason: &'static str,
    pub created_at: TimeParam,
    pub expires_at: Option<TimeParam>,
    pub ses_message_id: Option<String>,
    pub event_key: Option<String>,
    pub note: Option<String>,
}

impl NewSuppression {
    pub(crate) fn new(key: &str, entry: &SuppressionEntry) -> Self {
        Self {
            address_key: storable(key.to_owned()),
            address: storable(entry.address.clone()),
            reason: entry.reason.as_str(),
            created_at: TimeParam(entry.created_at),
            expires_at: entry.expires_at.map(TimeParam),
            ses_message_id: entry.ses_message_id.clone().map(storable),
            event_key: entry.event_key.clone().map(storable),
            note: entry.note.clone().map(storable),
        }
    }
}

/// A row of `suppression_history` to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = suppression_history, treat_none_as_default_value = false)]
pub(crate) struct NewHistory {
    pub address_key: String,
    pub address: String,
    pub action: &'static str,
    pub reason: &'static str,
    pub actor: String,
    pub at: TimeParam,
    pub expires_at: Option<TimeParam>,
    pub ses_message_id: Option<String>,
    pub event_key: Option<String>,
    pub note: Option<String>,
}

impl NewHistory {
    /// The history line of `entry` written (`added`) or removed, by `actor` at `at`.
    pub(crate) fn of(
        row: &NewSuppression,
        action: HistoryAction,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            address_key: row.address_key.clone(),
            address: row.address.clone(),
            action: action.as_str(),
            reason: row.reason,
            actor: storable(actor.label()),
            at: TimeParam(at),
            expires_at: row.expires_at,
            ses_message_id: row.ses_message_id.clone(),
            event_key: row.event_key.clone(),
            note: row.note.clone(),
        }
    }
}

/// A row of `api_tokens` to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = api_tokens, treat_none_as_default_value = false)]
pub(crate) struct NewTokenRow {
    pub name: String,
    pub scope: &'static str,
    pub token_hash: String,
    pub created_at: TimeParam,
}

/// An entry as read: row id, key, address, reason, created, expires, SES message id, event
/// key, note.
pub(crate) type EntryRow = (
    i64,
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// A history line as read: action, reason, actor, at, expires, SES message id, event key, note.
pub(crate) type HistoryRow = (
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// A recipient key and the latest time of something about it.
pub(crate) type LatestPerKey = (Option<String>, Option<DateTime<Utc>>);

/// A stored soft bounce as the policy reads it: recipient key, recipient, event key, SES
/// message id, event time.
pub(crate) type SoftBounceRow = (
    Option<String>,
    Option<String>,
    String,
    String,
    DateTime<Utc>,
);

/// A token as read: name, scope, created, last used, revoked.
pub(crate) type TokenRow = (
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// A stored bounce or complaint as `rebuild` reads it: recipient key, recipient, event key,
/// event type, bounce type, SES message id, event time, complaint feedback type.
pub(crate) type TriggerRow = (
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
    String,
    DateTime<Utc>,
    Option<String>,
);

/// The columns of [`EntryRow`].
macro_rules! entry_columns {
    () => {
        (
            suppressions::id,
            suppressions::address_key,
            suppressions::address,
            suppressions::reason,
            suppressions::created_at,
            suppressions::expires_at,
            suppressions::ses_message_id,
            suppressions::event_key,
            suppressions::note,
        )
    };
}

/// Turns a read row into an entry.
pub(crate) fn entry_of(row: EntryRow) -> QueryResult<SuppressionEntry> {
    let (id, _, address, reason, created_at, expires_at, ses_message_id, event_key, note) = row;
    Ok(SuppressionEntry {
        address,
        reason: parse_reason(&reason, id)?,
        created_at,
        expires_at,
        ses_message_id,
        event_key,
        note,
    })
}

fn parse_reason(reason: &str, id: i64) -> QueryResult<SuppressionReason> {
    SuppressionReason::parse(reason).ok_or_else(|| {
        diesel::result::Error::DeserializationError(
            format!("suppression row {id} has an unknown reason `{reason}`").into(),
        )
    })
}

/// Turns a read history row into a history item.
pub(crate) fn history_of(row: HistoryRow) -> QueryResult<HistoryItem> {
    let (action, reason, by, at, expires_at, ses_message_id, event_key, note) = row;
    Ok(HistoryItem {
        action: HistoryAction::parse(&action).ok_or_else(|| {
            diesel::result::Error::DeserializationError(
                format!("unknown history action `{action}`").into(),
            )
        })?,
        reason: parse_reason(&reason, 0)?,
        by,
        at,
        expires_at,
        ses_message_id,
        event_key,
        note,
    })
}

/// The statements of the suppression list and the tokens on one backend's connection.
pub(crate) trait ListStatements: Statements {
    /// Takes the locks of the addresses with these keys until the transaction ends, in one
    /// global order (PostgreSQL; a no-op on SQLite, whose write transaction is exclusive).
    fn lock_addresses(&mut self, keys: &[&str]) -> QueryResult<()>;

    /// The entries of these keys, expired or not.
    fn entries(&mut self, keys: &[&str]) -> QueryResult<Vec<EntryRow>>;

    /// Per key, the event time of its latest `email_delivered`.
    fn last_delivered(&mut self, keys: &[&str]) -> QueryResult<Vec<LatestPerKey>>;

    /// The soft bounces of these keys with an event time in `from..=to`.
    fn soft_bounces(
        &mut self,
        keys: &[&str],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> QueryResult<Vec<SoftBounceRow>>;

    /// Replaces the entries of the rows' address keys with `rows` (new row ids, so that the
    /// list's keyset order stays stable) and appends `history`: three statements whatever the
    /// number of rows (at most [`ROWS_PER_INSERT`](crate::statements::ROWS_PER_INSERT)).
    fn write_entries(&mut self, rows: &[NewSuppression], history: &[NewHistory])
    -> QueryResult<()>;

    /// Writes the policy's decisions (rows whose `created_at` is the time of the decision) at
    /// `at`, each with its `added` history line by `actor`, and returns the reason of each row
    /// written. A row replaces the address's entry only if it still outranks it when written
    /// (as [`SuppressionPolicy::decide`] ranks them: an active entry without expiry stays, an
    /// active one with an expiry stays unless the row expires later or never), and keeps the
    /// address as the entry shows it. The caller holds the addresses' locks, so the entry is
    /// as it was read; on PostgreSQL the write is still one `INSERT ... ON CONFLICT DO UPDATE
    /// ... WHERE` statement that checks the ranking itself (the batch statement writes
    /// Permanent entries the same way, see `pg_policy`), so no writer ever lowers an entry.
    fn write_decisions(
        &mut self,
        rows: &[NewSuppression],
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> QueryResult<Vec<SuppressionReason>>;

    /// Deletes the entry of `key`; appends `history` when given.
    fn delete_entry(&mut self, key: &str, history: Option<&NewHistory>) -> QueryResult<usize>;

    /// One page of active entries (see `SuppressionStore::list_suppressions`).
    fn list_entries(&mut self, query: &ListQuery, now: DateTime<Utc>)
    -> QueryResult<Vec<EntryRow>>;

    /// The history of `key`, oldest first.
    fn history(&mut self, key: &str) -> QueryResult<Vec<HistoryRow>>;

    /// Up to `limit` distinct recipient keys after `after` with a stored bounce or complaint.
    fn trigger_keys(&mut self, after: &str, limit: i64) -> QueryResult<Vec<Option<String>>>;

    /// Every stored bounce and complaint of these keys.
    fn stored_triggers(&mut self, keys: &[&str]) -> QueryResult<Vec<TriggerRow>>;

    fn insert_token(&mut self, row: &NewTokenRow) -> QueryResult<()>;
    fn tokens(&mut self) -> QueryResult<Vec<TokenRow>>;
    fn token_by_hash(&mut self, hash: &str) -> QueryResult<Option<TokenRow>>;
    /// Sets `revoked_at` of the active token `name`; how many rows changed.
    fn revoke_token(&mut self, name: &str, at: DateTime<Utc>) -> QueryResult<usize>;
    fn touch_token(&mut self, name: &str, at: DateTime<Utc>) -> QueryResult<usize>;
}

macro_rules! impl_list_statements {
    ($connection:ty) => {
        impl ListStatements for $connection {
            fn lock_addresses(&mut self, keys: &[&str]) -> QueryResult<()> {
                if keys.is_empty() {
                    return Ok(());
                }
                BackendList::lock(self, keys)
            }

            fn write_decisions(
                &mut self,
                rows: &[NewSuppression],
                actor: &Actor,
                at: DateTime<Utc>,
            ) -> QueryResult<Vec<SuppressionReason>> {
                if rows.is_empty() {
                    return Ok(Vec::new());
                }
                BackendList::write_decisions(self, rows, actor, at)
            }

            fn entries(&mut self, keys: &[&str]) -> QueryResult<Vec<EntryRow>> {
                QueryDsl::filter(
                    suppressions::table.select(entry_columns!()),
                    suppressions::address_key.eq_any(keys),
                )
                .load(self)
            }

            fn last_delivered(&mut self, keys: &[&str]) -> QueryResult<Vec<LatestPerKey>> {
                use email_events::dsl as e;
                // Key by key, newest first through `(recipient_key, event_time)`, stopping at
                // the first delivery. `event_type || ''` keeps the index on `(event_type,
                // event_time)` out: a planner without statistics (SQLite's) would otherwise
                // read every delivery ever stored.
                let mut latest = Vec::with_capacity(keys.len());
                for key in keys {
                    let at: Option<DateTime<Utc>> = QueryDsl::filter(
                        e::email_events.select(e::event_time),
                        e::recipient_key
                            .eq(*key)
                            .and(e::event_type.concat("").eq("email_delivered")),
                    )
                    .order(e::event_time.desc())
                    .first(self)
                    .optional()?;
                    if let Some(at) = at {
                        latest.push((Some((*key).to_owned()), Some(at)));
                    }
                }
                Ok(latest)
            }

            fn soft_bounces(
                &mut self,
                keys: &[&str],
                from: DateTime<Utc>,
                to: DateTime<Utc>,
            ) -> QueryResult<Vec<SoftBounceRow>> {
                use email_events::dsl as e;
                // The addresses' events in the span, soft bounces picked here: a condition on
                // the event type would let the planner (SQLite's without statistics, for one)
                // read every bounce of the span through `(event_type, event_time)` instead of
                // these addresses' events through `(recipient_key, event_time)`.
                let rows: Vec<(SoftBounceRow, String, Option<String>)> = QueryDsl::filter(
                    e::email_events.select((
                        (
                            e::recipient_key,
                            e::recipient,
                            e::event_key,
                            e::ses_message_id,
                            e::event_time,
                        ),
                        e::event_type,
                        e::bounce_type,
                    )),
                    e::recipient_key
                        .eq_any(keys)
                        .and(e::event_time.ge(TimeParam(from)))
                        .and(e::event_time.le(TimeParam(to))),
                )
                .load(self)?;
                Ok(rows
                    .into_iter()
                    .filter(|(_, event_type, bounce_type)| {
                        event_type == "email_bounce" && bounce_type.as_deref() == Some("soft")
                    })
                    .map(|(row, ..)| row)
                    .collect())
            }

            fn write_entries(
                &mut self,
                rows: &[NewSuppression],
                history: &[NewHistory],
            ) -> QueryResult<()> {
                if rows.is_empty() {
                    return Ok(());
                }
                let keys: Vec<&str> = rows.iter().map(|r| r.address_key.as_str()).collect();
                diesel::delete(QueryDsl::filter(
                    suppressions::table,
                    suppressions::address_key.eq_any(keys),
                ))
                .execute(self)?;
                diesel::insert_into(suppressions::table)
                    .values(rows)
                    .execute(self)?;
                diesel::insert_into(suppression_history::table)
                    .values(history)
                    .execute(self)
                    .map(drop)
            }

            fn delete_entry(
                &mut self,
                key: &str,
                history: Option<&NewHistory>,
            ) -> QueryResult<usize> {
                let deleted = diesel::delete(QueryDsl::filter(
                    suppressions::table,
                    suppressions::address_key.eq(key),
                ))
                .execute(self)?;
                if let Some(history) = history {
                    diesel::insert_into(suppression_history::table)
                        .values(history)
                        .execute(self)?;
                }
                Ok(deleted)
            }

            fn list_entries(
                &mut self,
                query: &ListQuery,
                now: DateTime<Utc>,
            ) -> QueryResult<Vec<EntryRow>> {
                use suppressions::dsl as s;
                let mut boxed = QueryDsl::filter(
                    s::suppressions.select(entry_columns!()),
                    s::expires_at.is_null().or(s::expires_at.gt(TimeParam(now))),
                )
                .order((s::created_at.desc(), s::id.desc()))
                .limit(i64::try_from(query.limit).unwrap_or(i64::MAX))
                .into_boxed();
                if let Some(reason) = query.reason {
                    boxed = QueryDsl::filter(boxed, s::reason.eq(reason.as_str()));
                }
                if let Some(since) = query.since {
                    boxed = QueryDsl::filter(boxed, s::created_at.ge(TimeParam(since)));
                }
                if let Some(after) = query.after {
                    let at = TimeParam(after.created_at);
                    boxed = QueryDsl::filter(
                        boxed,
                        s::created_at
                            .lt(at)
                            .or(s::created_at.eq(at).and(s::id.lt(after.id))),
                    );
                }
                boxed.load(self)
            }

            fn history(&mut self, key: &str) -> QueryResult<Vec<HistoryRow>> {
                use suppression_history::dsl as h;
                QueryDsl::filter(
                    h::suppression_history.select((
                        h::action,
                        h::reason,
                        h::actor,
                        h::at,
                        h::expires_at,
                        h::ses_message_id,
                        h::event_key,
                        h::note,
                    )),
                    h::address_key.eq(key),
                )
                .order(h::id.asc())
                .load(self)
            }

            fn trigger_keys(
                &mut self,
                after: &str,
                limit: i64,
            ) -> QueryResult<Vec<Option<String>>> {
                use email_events::dsl as e;
                QueryDsl::filter(
                    e::email_events.select(e::recipient_key),
                    e::recipient_key
                        .gt(after)
                        .and(e::event_type.eq_any(["email_bounce", "email_spam_report"])),
                )
                .distinct()
                .order(e::recipient_key.asc())
                .limit(limit)
                .load(self)
            }

            fn stored_triggers(&mut self, keys: &[&str]) -> QueryResult<Vec<TriggerRow>> {
                use email_events::dsl as e;
                QueryDsl::filter(
                    e::email_events.select((
                        e::recipient_key,
                        e::recipient,
                        e::event_key,
                        e::event_type,
                        e::bounce_type,
                        e::ses_message_id,
                        e::event_time,
                        e::complaint_feedback_type,
                    )),
                    e::recipient_key
                        .eq_any(keys)
                        .and(e::event_type.eq_any(["email_bounce", "email_spam_report"])),
                )
                .order(e::id.asc())
                .load(self)
            }

            fn insert_token(&mut self, row: &NewTokenRow) -> QueryResult<()> {
                diesel::insert_into(api_tokens::table)
                    .values(row)
                    .execute(self)
                    .map(drop)
            }

            fn tokens(&mut self) -> QueryResult<Vec<TokenRow>> {
                use api_tokens::dsl as t;
                t::api_tokens
                    .select((
                        t::name,
                        t::scope,
                        t::created_at,
                        t::last_used_at,
                        t::revoked_at,
                    ))
                    .order(t::id.asc())
                    .load(self)
            }

            fn token_by_hash(&mut self, hash: &str) -> QueryResult<Option<TokenRow>> {
                use api_tokens::dsl as t;
                QueryDsl::filter(
                    t::api_tokens.select((
                        t::name,
                        t::scope,
                        t::created_at,
                        t::last_used_at,
                        t::revoked_at,
                    )),
                    t::token_hash.eq(hash),
                )
                .first(self)
                .optional()
            }

            fn revoke_token(&mut self, name: &str, at: DateTime<Utc>) -> QueryResult<usize> {
                use api_tokens::dsl as t;
                diesel::update(QueryDsl::filter(
                    t::api_tokens,
                    t::name.eq(name).and(t::revoked_at.is_null()),
                ))
                .set(t::revoked_at.eq(Some(TimeParam(at))))
                .execute(self)
            }

            fn touch_token(&mut self, name: &str, at: DateTime<Utc>) -> QueryResult<usize> {
                use api_tokens::dsl as t;
                diesel::update(QueryDsl::filter(
                    t::api_tokens,
                    t::name.eq(name).and(t::revoked_at.is_null()),
                ))
                .set(t::last_used_at.eq(Some(TimeParam(at))))
                .execute(self)
            }
        }
    };
}

impl_list_statements!(diesel::PgConnection);
impl_list_statements!(diesel::SqliteConnection);

/// What differs between the backends in the statements above.
trait BackendList {
    fn lock(&mut self, keys: &[&str]) -> QueryResult<()>;
    fn write_decisions(
        &mut self,
        rows: &[NewSuppression],
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> QueryResult<Vec<SuppressionReason>>;
}

impl BackendList for diesel::PgConnection {
    /// One statement: the addresses' advisory locks (see [`pg_policy::lock`]).
    fn lock(&mut self, keys: &[&str]) -> QueryResult<()> {
        pg_policy::lock(self, keys)
    }

    fn write_decisions(
        &mut self,
        rows: &[NewSuppression],
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> QueryResult<Vec<SuppressionReason>> {
        pg_policy::write_decisions(self, rows, actor, at)
    }
}

impl BackendList for diesel::SqliteConnection {
    fn lock(&mut self, _: &[&str]) -> QueryResult<()> {
        Ok(())
    }

    fn write_decisions(
        &mut self,
        rows: &[NewSuppression],
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> QueryResult<Vec<SuppressionReason>> {
        let history: Vec<NewHistory> = rows
            .iter()
            .map(|row| NewHistory::of(row, HistoryAction::Added, actor, at))
            .collect();
        self.write_entries(rows, &history)?;
        rows.iter().map(|row| parse_reason(row.reason, 0)).collect()
    }
}

/// A newly stored event that may suppress its recipient: the recipient as written in the
/// event, its key, and the trigger.
#[derive(Debug, Clone)]
pub(crate) struct PendingTrigger {
    pub address: String,
    pub key: String,
    pub trigger: Trigger,
}

impl PendingTrigger {
    /// The trigger of `event` under `policy`, if any.
    pub(crate) fn of(policy: &SuppressionPolicy, event: &domain::PlatformEvent) -> Option<Self> {
        let mut trigger = policy.trigger(event)?;
        // As the event's row has them (NUL replaced), so that they match and can be bound.
        trigger.event_key = storable(trigger.event_key);
        trigger.ses_message_id = storable(trigger.ses_message_id);
        let address = storable(event.recipient.clone()?);
        Some(Self {
            key: storable(domain::suppression::address_key(&address)),
            address,
            trigger,
        })
    }
}

/// Triggers grouped by address key (triggers without a key dropped), in their order.
#[derive(Debug, Default)]
pub(crate) struct TriggersByKey(BTreeMap<String, Vec<PendingTrigger>>);

impl TriggersByKey {
    pub(crate) fn new(triggers: impl IntoIterator<Item = PendingTrigger>) -> Self {
        let mut by_key: BTreeMap<String, Vec<PendingTrigger>> = BTreeMap::new();
        for pending in triggers {
            if !pending.key.is_empty() {
                by_key.entry(pending.key.clone()).or_default().push(pending);
            }
        }
        Self(by_key)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every key, sorted.
    pub(crate) fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    /// The keys with a soft bounce among their triggers (those whose deliveries and soft
    /// bounces the policy reads), sorted.
    pub(crate) fn soft_keys(&self, policy: &SuppressionPolicy) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, pending)| policy.soft_bounce_span(&Self::triggers(pending)).is_some())
            .map(|(k, _)| k.as_str())
            .collect()
    }

    fn triggers(pending: &[PendingTrigger]) -> Vec<Trigger> {
        pending.iter().map(|p| p.trigger.clone()).collect()
    }

    /// The event times of the soft bounces to read (see
    /// [`SuppressionPolicy::soft_bounce_span`]) for all the triggers.
    pub(crate) fn soft_bounce_span(
        &self,
        policy: &SuppressionPolicy,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let all: Vec<Trigger> = self
            .0
            .values()
            .flat_map(|pending| pending.iter().map(|p| p.trigger.clone()))
            .collect();
        policy.soft_bounce_span(&all)
    }
}

/// What the store knows of the addresses the policy decides on, read in the transaction after
/// their locks were taken.
#[derive(Debug, Default)]
pub(crate) struct KnownFacts {
    per_key: HashMap<String, AddressFacts>,
    /// Per key, the recipient of its earliest soft bounce: how a soft-bounce entry shows the
    /// address (as first seen).
    first_seen: HashMap<String, (DateTime<Utc>, String)>,
}

impl KnownFacts {
    /// The entry of a key, expired or not.
    pub(crate) fn entry(&mut self, row: EntryRow) -> QueryResult<()> {
        let key = row.1.clone();
        self.per_key.entry(key).or_default().entry = Some(entry_of(row)?);
        Ok(())
    }

    /// The event time of a key's latest `email_delivered`.
    pub(crate) fn last_delivered(&mut self, (key, at): LatestPerKey) {
        if let Some(key) = key {
            let facts = self.per_key.entry(key).or_default();
            facts.last_delivered = facts.last_delivered.max(at);
        }
    }

    /// A stored soft bounce.
    pub(crate) fn soft_bounce(&mut self, row: SoftBounceRow) {
        let (key, recipient, event_key, ses_message_id, event_time) = row;
        let Some(key) = key else { return };
        if let Some(recipient) = recipient {
            let seen = self
                .first_seen
                .entry(key.clone())
                .or_insert_with(|| (event_time, recipient.clone()));
            if event_time < seen.0 {
                *seen = (event_time, recipient);
            }
        }
        self.per_key
            .entry(key)
            .or_default()
            .soft_bounces
            .push(SoftBounce {
                event_key,
                ses_message_id,
                event_time,
            });
    }

    /// Reads the facts of `triggers`' addresses: their entries, and for those with a soft
    /// bounce their latest delivery and their soft bounces in the span.
    pub(crate) fn read<C: ListStatements>(
        conn: &mut C,
        policy: &SuppressionPolicy,
        triggers: &TriggersByKey,
    ) -> QueryResult<Self> {
        let mut facts = Self::default();
        for row in conn.entries(&triggers.keys())? {
            facts.entry(row)?;
        }
        let soft_keys = triggers.soft_keys(policy);
        if let (false, Some((from, to))) = (soft_keys.is_empty(), triggers.soft_bounce_span(policy))
        {
            for latest in conn.last_delivered(&soft_keys)? {
                facts.last_delivered(latest);
            }
            for row in conn.soft_bounces(&soft_keys, from, to)? {
                facts.soft_bounce(row);
            }
        }
        Ok(facts)
    }

    /// The entry `policy` decides on for each address of `triggers` at `now`, as rows to
    /// write (see [`ListStatements::write_decisions`]).
    pub(crate) fn decisions(
        mut self,
        policy: &SuppressionPolicy,
        triggers: &TriggersByKey,
        now: DateTime<Utc>,
    ) -> Vec<NewSuppression> {
        let mut rows = Vec::new();
        for (key, pending) in &triggers.0 {
            let known = self.per_key.remove(key).unwrap_or_default();
            let Some(decision) = policy.decide(&TriggersByKey::triggers(pending), &known, now)
            else {
                continue;
            };
            // The recipient as written in the event that decided (as the batch statement
            // shows a Permanent bounce's), or, for soft bounces, in the earliest of them.
            let deciding = pending
                .iter()
                .find(|p| p.trigger.event_key == decision.event_key)
                .or(pending.first())
                .map_or("", |p| p.address.as_str());
            let shown = match decision.reason {
                SuppressionReason::SoftBounce => self
                    .first_seen
                    .get(key)
                    .map_or(deciding, |(_, r)| r.as_str()),
                _ => deciding,
            };
            let entry = decision.into_entry(shown, known.entry.as_ref(), now);
            rows.push(NewSuppression::new(key, &entry));
        }
        rows
    }
}

/// Applies `policy` to `triggers` (events this transaction stored), address by address, at
/// `now`, as `actor` (the policy itself, or the `rebuild` command): locks the addresses, reads
/// what is known of them, writes each decision and its history line. Returns the reason of
/// every entry written.
pub(crate) fn apply_policy<C: ListStatements>(
    conn: &mut C,
    policy: &SuppressionPolicy,
    triggers: Vec<PendingTrigger>,
    now: DateTime<Utc>,
    actor: &Actor,
) -> QueryResult<Vec<SuppressionReason>> {
    let triggers = TriggersByKey::new(triggers);
    if triggers.is_empty() {
        return Ok(Vec::new());
    }
    conn.lock_addresses(&triggers.keys())?;
    let rows = KnownFacts::read(conn, policy, &triggers)?.decisions(policy, &triggers, now);
    let mut written = Vec::new();
    for rows in rows.chunks(crate::statements::ROWS_PER_INSERT) {
        written.extend(conn.write_decisions(rows, actor, now)?);
    }
    Ok(written)
}

/// The triggers of stored bounce and complaint rows (for `rebuild`), under `policy` (enabled).
pub(crate) fn triggers_of(
    policy: &SuppressionPolicy,
    rows: Vec<TriggerRow>,
) -> Vec<PendingTrigger> {
    use domain::{BounceClass, EventType, PlatformEvent};
    let policy = SuppressionPolicy {
        enabled: true,
        ..*policy
    };
    rows.into_iter()
        .filter_map(|row| {
            let (
                _,
                recipient,
                event_key,
                event_type,
                bounce_type,
                ses_message_id,
                event_time,
                feedback,
            ) = row;
            let event_type = if event_type == EventType::Bounce.as_str() {
                EventType::Bounce
            } else {
                EventType::SpamReport
            };
            let event = PlatformEvent {
                event_key,
                recipient,
                bounce_type: match bounce_type.as_deref() {
                    Some("hard") => Some(BounceClass::Hard),
                    Some(_) => Some(BounceClass::Soft),
                    None => None,
                },
                complaint_feedback_type: feedback,
                ..PlatformEvent::new(event_type, &ses_message_id, event_time)
            };
            PendingTrigger::of(&policy, &event)
        })
        .collect()
}

/// The suppression policy the store applies to the events it stores, and who is told of the
/// entries it writes (after the commit).
#[derive(Clone)]
pub(crate) struct PolicyHook {
    pub policy: SuppressionPolicy,
    pub observer: std::sync::Arc<dyn domain::ports::SuppressionObserver>,
}

impl std::fmt::Debug for PolicyHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyHook")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Default for PolicyHook {
    /// The default policy (enabled), observed by no one.
    fn default() -> Self {
        Self {
            policy: SuppressionPolicy::default(),
            observer: std::sync::Arc::new(domain::ports::NoObserver),
        }
    }
}

impl PolicyHook {
    /// The triggers among `events` (before they become rows).
    pub(crate) fn triggers(&self, events: &[domain::PlatformEvent]) -> Vec<PendingTrigger> {
        events
            .iter()
            .filter_map(|event| PendingTrigger::of(&self.policy, event))
            .collect()
    }

    /// Tells the observer of the entries written.
    pub(crate) fn written(&self, reasons: &[SuppressionReason]) {
        for reason in reasons {
            self.observer.added(*reason);
        }
    }
}
