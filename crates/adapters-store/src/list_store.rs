//! [`SuppressionStore`] and [`TokenStore`] for [`Store`]: the suppression list, its history and
//! the API tokens, each call one transaction on a blocking thread.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use domain::ports::{
    ListPosition, ListQuery, RebuildReport, StoreError, SuppressionStore, TokenStore,
    TokenStoreError,
};
use domain::suppression::{
    Actor, Address, HistoryAction, HistoryItem, SuppressionEntry, SuppressionPolicy,
};
use domain::token::{ApiToken, NewToken, Scope};

use crate::Store;
use crate::connection::on_backend;
use crate::error::from_diesel;
use crate::list_statements::{
    ListStatements, NewHistory, NewSuppression, NewTokenRow, TokenRow, apply_policy, entry_of,
    history_of, triggers_of,
};
use crate::rows::storable;
use crate::sql_types::TimeParam;
use crate::statements::ROWS_PER_INSERT;
use crate::statements::Statements;

/// Addresses `rebuild` handles per transaction: it holds their locks meanwhile, and webhook
/// batches for them wait (at most `lock_timeout`).
const REBUILD_PAGE: i64 = 100;

#[async_trait]
impl SuppressionStore for Store {
    async fn suppression(&self, key: String) -> Result<Option<SuppressionEntry>, StoreError> {
        self.blocking(move |conn| {
            let rows =
                on_backend!(conn, c => c.entries(&[key.as_str()])).map_err(|e| from_diesel(&e))?;
            rows.into_iter()
                .next()
                .map(entry_of)
                .transpose()
                .map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn active_suppressions(
        &self,
        keys: Vec<String>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SuppressionEntry>, StoreError> {
        self.blocking(move |conn| {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let rows = on_backend!(conn, c => c.entries(&keys)).map_err(|e| from_diesel(&e))?;
            let mut entries = rows
                .into_iter()
                .map(entry_of)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| from_diesel(&e))?;
            entries.retain(|e| e.is_active(now));
            entries.sort_by(|a, b| a.address.cmp(&b.address));
            Ok(entries)
        })
        .await
    }

    async fn list_suppressions(
        &self,
        query: ListQuery,
        now: DateTime<Utc>,
    ) -> Result<Vec<(ListPosition, SuppressionEntry)>, StoreError> {
        self.blocking(move |conn| {
            let rows =
                on_backend!(conn, c => c.list_entries(&query, now)).map_err(|e| from_diesel(&e))?;
            rows.into_iter()
                .map(|row| {
                    let position = ListPosition {
                        created_at: row.4,
                        id: row.0,
                    };
                    entry_of(row).map(|entry| (position, entry))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn put_suppression(
        &self,
        address: Address,
        entry: SuppressionEntry,
        actor: Actor,
    ) -> Result<(bool, SuppressionEntry), StoreError> {
        self.blocking(move |conn| {
            on_backend!(conn, c => c.write_transaction(|c| put(c, &address, &entry, &actor)))
                .map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn remove_suppression(
        &self,
        key: String,
        actor: Actor,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.blocking(move |conn| {
            on_backend!(conn, c => c.write_transaction(|c| remove(c, &key, &actor, at)))
                .map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn suppression_history(&self, key: String) -> Result<Vec<HistoryItem>, StoreError> {
        self.blocking(move |conn| {
            let rows = on_backend!(conn, c => c.history(&key)).map_err(|e| from_diesel(&e))?;
            rows.into_iter()
                .map(history_of)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn import_suppressions(
        &self,
        entries: Vec<(Address, SuppressionEntry)>,
        actor: Actor,
    ) -> Result<usize, StoreError> {
        self.blocking(move |conn| {
            on_backend!(conn, c => import(c, &entries, &actor)).map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn rebuild_suppressions(
        &self,
        policy: SuppressionPolicy,
        now: DateTime<Utc>,
    ) -> Result<RebuildReport, StoreError> {
        let mut report = RebuildReport::default();
        let mut after = String::new();
        loop {
            let from = after.clone();
            let (keys, written) = self
                .blocking(move |conn| {
                    on_backend!(conn, c => c.write_transaction(|c| {
                        let keys: Vec<String> =
                            c.trigger_keys(&from, REBUILD_PAGE)?.into_iter().flatten().collect();
                        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                        let triggers = triggers_of(&policy, c.stored_triggers(&refs)?);
                        let written = apply_policy(c, &policy, triggers, now, &Actor::Command("rebuild"))?;
                        Ok((keys, written.len()))
                    }))
                    .map_err(|e| from_diesel(&e))
                })
                .await?;
            report.addresses += keys.len();
            report.written += written;
            match keys.last() {
                Some(last) if keys.len() == usize::try_from(REBUILD_PAGE).unwrap_or(0) => {
                    after.clone_from(last);
                }
                _ => return Ok(report),
            }
        }
    }
}

/// Replaces the entry of `address` with `entry`; whether an active one was replaced, and the
/// entry as written.
fn put<C: ListStatements>(
    conn: &mut C,
    address: &Address,
    entry: &SuppressionEntry,
    actor: &Actor,
) -> diesel::QueryResult<(bool, SuppressionEntry)> {
    conn.lock_addresses(&[address.key()])?;
    let existing = conn.entries(&[address.key()])?.into_iter().next();
    let existing = existing.map(entry_of).transpose()?;
    let replaced = existing
        .as_ref()
        .is_some_and(|e| e.is_active(entry.created_at));
    let entry = SuppressionEntry {
        // The address as first seen by the list.
        address: existing.map_or_else(|| entry.address.clone(), |e| e.address),
        ..entry.clone()
    };
    let row = NewSuppression::new(address.key(), &entry);
    let history = NewHistory::of(&row, HistoryAction::Added, actor, entry.created_at);
    conn.write_entries(&[row], &[history])?;
    Ok((replaced, entry))
}

/// Writes each entry whose address has no active entry (the first of several with one key),
/// one transaction per chunk of [`ROWS_PER_INSERT`] addresses (a transaction holds a lock per
/// address; PostgreSQL's lock table would not hold a whole list of 100,000); how many it wrote.
fn import<C: ListStatements>(
    conn: &mut C,
    entries: &[(Address, SuppressionEntry)],
    actor: &Actor,
) -> diesel::QueryResult<usize> {
    let mut seen = HashSet::new();
    let unique: Vec<&(Address, SuppressionEntry)> = entries
        .iter()
        .filter(|(address, _)| seen.insert(address.key()))
        .collect();
    let mut written = 0;
    for chunk in unique.chunks(ROWS_PER_INSERT) {
        written += conn.write_transaction(|conn| import_chunk(conn, chunk, actor))?;
    }
    Ok(written)
}

/// [`import`] of one chunk of distinct addresses, in the caller's transaction.
fn import_chunk<C: ListStatements>(
    conn: &mut C,
    chunk: &[&(Address, SuppressionEntry)],
    actor: &Actor,
) -> diesel::QueryResult<usize> {
    let keys: Vec<&str> = chunk.iter().map(|(address, _)| address.key()).collect();
    conn.lock_addresses(&keys)?;
    let mut active = HashSet::new();
    for row in conn.entries(&keys)? {
        let key = row.1.clone();
        let existing = entry_of(row)?;
        if chunk
            .iter()
            .any(|(a, e)| a.key() == key && existing.is_active(e.created_at))
        {
            active.insert(key);
        }
    }
    let rows: Vec<NewSuppression> = chunk
        .iter()
        .filter(|(address, _)| !active.contains(address.key()))
        .map(|(address, entry)| NewSuppression::new(address.key(), entry))
        .collect();
    let history: Vec<NewHistory> = rows
        .iter()
        .map(|row| NewHistory::of(row, HistoryAction::Added, actor, row.created_at.0))
        .collect();
    conn.write_entries(&rows, &history)?;
    Ok(rows.len())
}

/// Removes the entry of `key`; whether it was active.
fn remove<C: ListStatements>(
    conn: &mut C,
    key: &str,
    actor: &Actor,
    at: DateTime<Utc>,
) -> diesel::QueryResult<bool> {
    conn.lock_addresses(&[key])?;
    let Some(existing) = conn.entries(&[key])?.into_iter().next() else {
        return Ok(false);
    };
    let existing = entry_of(existing)?;
    if !existing.is_active(at) {
        // An expired entry reads as absent: removed without a history line.
        conn.delete_entry(key, None)?;
        return Ok(false);
    }
    let row = NewSuppression::new(key, &existing);
    let history = NewHistory::of(&row, HistoryAction::Removed, actor, at);
    conn.delete_entry(key, Some(&history))?;
    Ok(true)
}

fn token_of(row: TokenRow) -> Result<ApiToken, StoreError> {
    let (name, scope, created_at, last_used_at, revoked_at) = row;
    Ok(ApiToken {
        scope: Scope::parse(&scope).ok_or_else(|| {
            StoreError::Failed(format!("token {name:?} has an unknown scope `{scope}`"))
        })?,
        name,
        created_at,
        last_used_at,
        revoked_at,
    })
}

#[async_trait]
impl TokenStore for Store {
    async fn create_token(&self, token: NewToken) -> Result<(), TokenStoreError> {
        let row = NewTokenRow {
            name: storable(token.name),
            scope: token.scope.as_str(),
            token_hash: token.hash,
            created_at: TimeParam(token.created_at),
        };
        self.blocking(move |conn| {
            Ok(on_backend!(conn, c => c.write_transaction(|c| c.insert_token(&row))))
        })
        .await
        .map_err(TokenStoreError::Store)?
        .map_err(|e| match e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                TokenStoreError::NameTaken
            }
            other => TokenStoreError::Store(from_diesel(&other)),
        })
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rows = self
            .blocking(|conn| on_backend!(conn, c => c.tokens()).map_err(|e| from_diesel(&e)))
            .await?;
        rows.into_iter().map(token_of).collect()
    }

    async fn revoke_token(&self, name: String, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.blocking(move |conn| {
            on_backend!(conn, c => c.write_transaction(|c| c.revoke_token(&name, at)))
                .map(|changed| changed > 0)
                .map_err(|e| from_diesel(&e))
        })
        .await
    }

    async fn token_by_hash(&self, hash: String) -> Result<Option<ApiToken>, StoreError> {
        let row = self
            .blocking(move |conn| {
                on_backend!(conn, c => c.token_by_hash(&hash)).map_err(|e| from_diesel(&e))
            })
            .await?;
        row.map(token_of).transpose()
    }

    async fn touch_token(&self, name: String, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.blocking(move |conn| {
            on_backend!(conn, c => c.write_transaction(|c| c.touch_token(&name, at)))
                .map(drop)
                .map_err(|e| from_diesel(&e))
        })
        .await
    }
}
