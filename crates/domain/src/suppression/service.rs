//! The suppression list's use cases behind the [`Suppressions`] port.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};

use super::{Actor, Address, HistoryItem, SuppressionEntry, SuppressionReason};
use crate::ports::{
    Clock, ListPosition, ListQuery, StoreError, SuppressionObserver, SuppressionStore, Suppressions,
};
use crate::token::Caller;

/// The most addresses one `check` call takes.
pub const MAX_CHECK: usize = 1000;

/// The most entries one list page holds.
pub const MAX_PAGE: usize = 1000;

/// A manual entry's settings (`PUT /api/v1/suppressions/{address}`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ManualSuppression {
    pub note: Option<String>,
    /// `None`: for good.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a put did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// `true` when the address had no active entry.
    pub created: bool,
    pub entry: SuppressionEntry,
}

/// One page of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionPage {
    pub items: Vec<SuppressionEntry>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<ListPosition>,
}

/// Why a put was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuppressionError {
    /// `expiresAt` is not in the future.
    #[error("expiresAt must be in the future")]
    ExpiryInPast,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The suppression list's use cases, on a [`SuppressionStore`].
#[derive(Clone)]
pub struct SuppressionService {
    store: Arc<dyn SuppressionStore>,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn SuppressionObserver>,
}

impl std::fmt::Debug for SuppressionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuppressionService").finish_non_exhaustive()
    }
}

impl SuppressionService {
    #[must_use]
    pub fn new(
        store: Arc<dyn SuppressionStore>,
        clock: Arc<dyn Clock>,
        observer: Arc<dyn SuppressionObserver>,
    ) -> Self {
        Self {
            store,
            clock,
            observer,
        }
    }
}

/// One address of the SES account-level suppression list (`aws sesv2
/// list-suppressed-destinations`), to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSuppressed {
    pub address: Address,
    /// SES's `Reason`: `BOUNCE` or `COMPLAINT`.
    pub aws_reason: String,
    /// SES's `LastUpdateTime`.
    pub last_update: Option<DateTime<Utc>>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportReport {
    /// Entries written.
    pub added: usize,
    /// Addresses that had an active entry already (left as they were).
    pub already_suppressed: usize,
}

impl SuppressionService {
    /// Imports addresses of the SES account-level suppression list: each address without an
    /// active entry gets one for good with reason `aws_import` and a note giving SES's reason
    /// and time; the others are left as they are. Idempotent, so a run that failed half-way is
    /// completed by running it again.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be committed.
    pub async fn import(&self, items: Vec<AwsSuppressed>) -> Result<ImportReport, StoreError> {
        let now = self.clock.now();
        let total = items.len();
        let entries = items
            .into_iter()
            .map(|item| {
                let when = item
                    .last_update
                    .map(|at| format!(" (last updated {})", at.to_rfc3339()))
                    .unwrap_or_default();
                let entry = SuppressionEntry {
                    address: item.address.as_str().to_owned(),
                    reason: SuppressionReason::AwsImport,
                    created_at: now,
                    expires_at: None,
                    ses_message_id: None,
                    event_key: None,
                    note: Some(format!(
                        "SES account-level suppression list: {}{when}",
                        item.aws_reason
                    )),
                };
                (item.address, entry)
            })
            .collect();
        let added = self
            .store
            .import_suppressions(entries, super::Actor::Command("import"))
            .await?;
        Ok(ImportReport {
            added,
            already_suppressed: total - added,
        })
    }

    /// Applies `policy` (enabled or not) to every stored bounce and complaint: for an
    /// installation that stored events before it had the list. Idempotent.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn rebuild(
        &self,
        policy: super::SuppressionPolicy,
    ) -> Result<crate::ports::RebuildReport, StoreError> {
        self.store
            .rebuild_suppressions(policy, self.clock.now())
            .await
    }
}

#[async_trait]
impl Suppressions for SuppressionService {
    async fn get(&self, address: &Address) -> Result<Option<SuppressionEntry>, StoreError> {
        let now = self.clock.now();
        Ok(self
            .store
            .suppression(address.key().to_owned())
            .await?
            .filter(|e| e.is_active(now)))
    }

    async fn check(&self, addresses: Vec<Address>) -> Result<Vec<SuppressionEntry>, StoreError> {
        let mut keys: Vec<String> = addresses.iter().map(|a| a.key().to_owned()).collect();
        keys.sort_unstable();
        keys.dedup();
        self.store.active_suppressions(keys, self.clock.now()).await
    }

    async fn list(&self, query: ListQuery) -> Result<SuppressionPage, StoreError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        // One more than asked tells whether there is a next page.
        let probe = ListQuery {
            limit: limit + 1,
            ..query
        };
        let mut rows = self
            .store
            .list_suppressions(probe, self.clock.now())
            .await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more {
            rows.last().map(|(position, _)| *position)
        } else {
            None
        };
        Ok(SuppressionPage {
            items: rows.into_iter().map(|(_, entry)| entry).collect(),
            next,
        })
    }

    async fn put(
        &self,
        address: Address,
        change: ManualSuppression,
        caller: &Caller,
    ) -> Result<PutOutcome, SuppressionError> {
        // Microseconds, as both databases keep them: the answer shows what a read gives later.
        let now = self.clock.now().trunc_subsecs(6);
        if change.expires_at.is_some_and(|at| at <= now) {
            return Err(SuppressionError::ExpiryInPast);
        }
        let entry = SuppressionEntry {
            address: address.as_str().to_owned(),
            reason: SuppressionReason::Manual,
            created_at: now,
            expires_at: change.expires_at,
            ses_message_id: None,
            event_key: None,
            note: change.note,
        };
        let (replaced, entry) = self
            .store
            .put_suppression(address, entry, Actor::Token(caller.token_name.clone()))
            .await?;
        self.observer.added(SuppressionReason::Manual);
        Ok(PutOutcome {
            created: !replaced,
            entry,
        })
    }

    async fn remove(&self, address: &Address, caller: &Caller) -> Result<bool, StoreError> {
        let removed = self
            .store
            .remove_suppression(
                address.key().to_owned(),
                Actor::Token(caller.token_name.clone()),
                self.clock.now(),
            )
            .await?;
        if removed {
            self.observer.removed();
        }
        Ok(removed)
    }

    async fn history(&self, address: &Address) -> Result<Vec<HistoryItem>, StoreError> {
        self.store
            .suppression_history(address.key().to_owned())
            .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;
    use crate::ports::{MockClock, MockSuppressionObserver, MockSuppressionStore};
    use crate::token::Scope;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
    }

    fn clock() -> Arc<MockClock> {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(now());
        Arc::new(clock)
    }

    fn caller() -> Caller {
        Caller {
            token_name: "crm".into(),
            scope: Scope::Write,
        }
    }

    fn entry(expires_at: Option<DateTime<Utc>>) -> SuppressionEntry {
        SuppressionEntry {
            address: "A@example.com".into(),
            reason: SuppressionReason::HardBounce,
            created_at: now(),
            expires_at,
            ses_message_id: None,
            event_key: None,
            note: None,
        }
    }

    fn service(
        store: MockSuppressionStore,
        observer: MockSuppressionObserver,
    ) -> SuppressionService {
        SuppressionService::new(Arc::new(store), clock(), Arc::new(observer))
    }

    #[tokio::test]
    async fn an_expired_entry_reads_as_absent() {
        let mut store = MockSuppressionStore::new();
        store
            .expect_suppression()
            .withf(|key| key == "a@example.com")
            .returning(|_| Ok(Some(entry(Some(now())))));
        let service = service(store, MockSuppressionObserver::new());
        let address = Address::parse("A@Example.com").unwrap();
        assert_eq!(service.get(&address).await.unwrap(), None);
    }

    #[tokio::test]
    async fn check_asks_for_each_key_once() {
        let mut store = MockSuppressionStore::new();
        store
            .expect_active_suppressions()
            .withf(|keys, at| keys == &["a@example.com", "b@example.com"] && *at == now())
            .returning(|_, _| Ok(vec![entry(None)]));
        let service = service(store, MockSuppressionObserver::new());
        let addresses = ["b@example.com", "A@example.com", "a@EXAMPLE.com"]
            .map(|a| Address::parse(a).unwrap())
            .to_vec();
        assert_eq!(service.check(addresses).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_page_has_a_next_position_only_when_more_rows_follow() {
        for (rows, expect_next) in [(3_i64, true), (2, false)] {
            let mut store = MockSuppressionStore::new();
            store
                .expect_list_suppressions()
                .withf(|q, _| q.limit == 3)
                .returning(move |_, _| {
                    Ok((0..rows)
                        .map(|id| {
                            (
                                ListPosition {
                                    created_at: now(),
                                    id: 10 - id,
                                },
                                entry(None),
                            )
                        })
                        .collect())
                });
            let service = service(store, MockSuppressionObserver::new());
            let page = service
                .list(ListQuery {
                    reason: None,
                    since: None,
                    limit: 2,
                    after: None,
                })
                .await
                .unwrap();
            assert_eq!(page.items.len(), 2);
            assert_eq!(page.next.map(|p| p.id), expect_next.then_some(9));
        }
    }

    #[tokio::test]
    async fn a_put_is_manual_by_the_token_and_tells_created_from_replaced() {
        for (replaced, created) in [(false, true), (true, false)] {
            let mut store = MockSuppressionStore::new();
            store
                .expect_put_suppression()
                .withf(|address, entry, actor| {
                    address.key() == "a@example.com"
                        && entry.reason == SuppressionReason::Manual
                        && entry.note.as_deref() == Some("asked us")
                        && *actor == Actor::Token("crm".into())
                })
                .returning(move |_, entry, _| Ok((replaced, entry)));
            let mut observer = MockSuppressionObserver::new();
            observer
                .expect_added()
                .withf(|r| *r == SuppressionReason::Manual)
                .times(1)
                .return_const(());
            let outcome = service(store, observer)
                .put(
                    Address::parse("a@example.com").unwrap(),
                    ManualSuppression {
                        note: Some("asked us".into()),
                        expires_at: Some(now() + TimeDelta::days(1)),
                    },
                    &caller(),
                )
                .await
                .unwrap();
            assert_eq!(outcome.created, created);
        }
    }

    #[tokio::test]
    async fn an_expiry_in_the_past_is_refused() {
        let mut store = MockSuppressionStore::new();
        store.expect_put_suppression().times(0);
        let result = service(store, MockSuppressionObserver::new())
            .put(
                Address::parse("a@example.com").unwrap(),
                ManualSuppression {
                    note: None,
                    expires_at: Some(now()),
                },
                &caller(),
            )
            .await;
        assert_eq!(result, Err(SuppressionError::ExpiryInPast));
    }

    #[tokio::test]
    async fn a_removal_is_counted_only_when_something_was_removed() {
        for (removed, counted) in [(true, 1), (false, 0)] {
            let mut store = MockSuppressionStore::new();
            store
                .expect_remove_suppression()
                .returning(move |_, _, _| Ok(removed));
            let mut observer = MockSuppressionObserver::new();
            observer.expect_removed().times(counted).return_const(());
            let address = Address::parse("a@example.com").unwrap();
            assert_eq!(
                service(store, observer)
                    .remove(&address, &caller())
                    .await
                    .unwrap(),
                removed
            );
        }
    }
}
