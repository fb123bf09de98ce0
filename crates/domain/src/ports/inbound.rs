//! Inbound ports: one trait per use case, called by the driving adapters.

use std::sync::Arc;

use async_trait::async_trait;

use crate::ingest::{IngestError, IngestOutcome, QueuedMessage};
use crate::ports::{ListQuery, ReprocessFilter, StoreError};
use crate::reprocess::{ReprocessError, ReprocessLine, ReprocessReport};
use crate::suppression::{
    Address, HistoryItem, ManualSuppression, PutOutcome, SuppressionEntry, SuppressionError,
    SuppressionPage,
};
use crate::token::{AuthError, Caller};

/// The ingest use case as its callers see it: one SNS delivery in, committed or refused.
/// Implemented by [`IngestService`](crate::IngestService).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Ingest: Send + Sync {
    /// Handles one SNS delivery: `body` is the request body exactly as received (at most the
    /// adapter's size limit; an SNS envelope is UTF-8 JSON). It is taken by value so that it
    /// reaches the archive without being copied. `Ok` means everything the delivery carried is
    /// committed, and only then may the caller acknowledge it.
    ///
    /// # Errors
    /// [`IngestError`]: malformed or forbidden (final: never worth a retry), confirmation
    /// refused by SNS (final), or unavailable (nothing acknowledged; the sender should retry).
    async fn ingest(&self, body: Vec<u8>) -> Result<IngestOutcome, IngestError>;

    /// Handles one message read from an Amazon SQS queue, as [`ingest`](Self::ingest) does a
    /// delivery over HTTP (same verification, topic allow-list, mapping and idempotency: a
    /// message that arrives both ways is stored once), except that:
    /// - a `SubscriptionConfirmation` or `UnsubscribeConfirmation` is archived only: its
    ///   `SubscribeURL` is never visited and the topic's subscription state is not changed;
    /// - with `queued.raw` set (a queue with raw message delivery), a body that is a bare SES
    ///   record is taken as a notification of that origin, unverified; an SNS envelope on such
    ///   a queue is still verified.
    ///
    /// `Ok` means everything is committed (or was already): only then may the message be
    /// deleted from the queue.
    ///
    /// # Errors
    /// As [`ingest`](Self::ingest); a bare SES record without `queued.raw` is
    /// [`IngestError::RawDelivery`].
    async fn ingest_queued(&self, queued: QueuedMessage) -> Result<IngestOutcome, IngestError>;

    /// Whether deliveries can be stored now: the store is reachable and its schema up to date.
    ///
    /// # Errors
    /// [`StoreError`] saying why not.
    async fn ready(&self) -> Result<(), StoreError>;
}

/// The reprocess use case: archived notifications through the current verifier and parser
/// again. Implemented by [`ReprocessService`](crate::ReprocessService).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Reprocess: Send + Sync {
    /// Processes every archived candidate matching `filter` again, each committed on its own,
    /// telling `progress` as each is handled (so that progress is seen as it happens). A message
    /// whose signing certificate is unavailable is skipped (`retry_later`), and the run goes on.
    ///
    /// # Errors
    /// [`ReprocessError::Store`] when the store fails (the messages handled until then stay
    /// committed); [`ReprocessError::UnknownMessage`] when `filter.sns_message_id` names no
    /// candidate.
    async fn run(
        &self,
        filter: &ReprocessFilter,
        progress: Arc<dyn ReprocessProgress>,
    ) -> Result<ReprocessReport, ReprocessError>;
}

/// Told of each message a reprocess run has handled, as it is handled.
pub trait ReprocessProgress: Send + Sync {
    /// `line` says what became of one archived message; it is committed already.
    fn handled(&self, line: &ReprocessLine);
}

/// Authentication of API requests. Implemented by [`TokenService`](crate::token::TokenService).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Authenticate: Send + Sync {
    /// The caller a bearer token belongs to. `token` is the token alone, without `Bearer `.
    ///
    /// # Errors
    /// [`AuthError::Unauthorized`] for a malformed, unknown or revoked token;
    /// [`AuthError::Unavailable`] when the tokens cannot be read.
    async fn authenticate(&self, token: &str) -> Result<Caller, AuthError>;
}

/// The suppression list as the API sees it. Implemented by
/// [`SuppressionService`](crate::suppression::SuppressionService). Expired entries read as
/// absent everywhere.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Suppressions: Send + Sync {
    /// The active entry of `address`, if any.
    ///
    /// # Errors
    /// [`StoreError`] when the list cannot be read.
    async fn get(&self, address: &Address) -> Result<Option<SuppressionEntry>, StoreError>;

    /// The active entries among `addresses` (1 to [`MAX_CHECK`](crate::suppression::MAX_CHECK)).
    ///
    /// # Errors
    /// [`StoreError`] when the list cannot be read.
    async fn check(&self, addresses: Vec<Address>) -> Result<Vec<SuppressionEntry>, StoreError>;

    /// One page of active entries, newest first.
    ///
    /// # Errors
    /// [`StoreError`] when the list cannot be read.
    async fn list(&self, query: ListQuery) -> Result<SuppressionPage, StoreError>;

    /// Suppresses `address` by hand (reason `manual`), replacing any entry it has.
    ///
    /// # Errors
    /// [`SuppressionError::ExpiryInPast`] when `change.expires_at` is not in the future;
    /// [`SuppressionError::Store`] when nothing could be committed.
    async fn put(
        &self,
        address: Address,
        change: ManualSuppression,
        caller: &Caller,
    ) -> Result<PutOutcome, SuppressionError>;

    /// Removes the active entry of `address`; `false` when there is none.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be committed.
    async fn remove(&self, address: &Address, caller: &Caller) -> Result<bool, StoreError>;

    /// Every change to `address`'s entry, oldest first (empty for an address never listed).
    ///
    /// # Errors
    /// [`StoreError`] when the history cannot be read.
    async fn history(&self, address: &Address) -> Result<Vec<HistoryItem>, StoreError>;
}
