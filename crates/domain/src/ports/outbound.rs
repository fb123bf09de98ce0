//! Outbound ports: what the use cases need from the outside world. Adapters implement them;
//! the use cases' tests mock them. Methods that store take their values by value, so the rows
//! reach the store's writer without being copied.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::event::PlatformEvent;
use crate::history::{ErasureReport, ErasureRequest, EventQuery, MessageTimeline, StoredEvent};
use crate::reputation::RecordTally;
use crate::sns::{SnsMessage, SnsMessageType};
use crate::suppression::{
    Actor, Address, HistoryItem, SuppressionEntry, SuppressionPolicy, SuppressionReason,
};
use crate::token::{ApiToken, NewToken};

/// Why a message was refused as not authentic. Stable names, used in logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    UnsupportedSignatureVersion,
    UntrustedCertificateUrl,
    CertificateInvalid,
    BadSignature,
}

impl RejectReason {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnsupportedSignatureVersion => "unsupported_signature_version",
            Self::UntrustedCertificateUrl => "untrusted_certificate_url",
            Self::CertificateInvalid => "certificate_invalid",
            Self::BadSignature => "bad_signature",
        }
    }
}

/// Verification failures, grouped by what the caller should do about them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyFailure {
    /// The body is not an SNS message. Final.
    #[error("malformed SNS message: {0}")]
    Malformed(String),
    /// The body is a bare SES record: raw message delivery is on, and the body carries no
    /// signature. Final. The text says what to change.
    #[error("{0}")]
    RawDelivery(String),
    /// The message is not provably from Amazon SNS. Final.
    #[error("{}: {detail}", reason.as_str())]
    Rejected {
        reason: RejectReason,
        detail: String,
    },
    /// The signing certificate could not be obtained right now. SNS should retry.
    #[error("signing certificate unavailable: {0}")]
    Unavailable(String),
}

/// Authenticates a raw SNS request body.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait MessageVerifier: Send + Sync {
    /// Parses and verifies `body` (the request body exactly as received), returning the signed
    /// content with the body itself as [`SnsMessage::raw`]: taken by value, checked as UTF-8
    /// once, never copied.
    ///
    /// # Errors
    /// [`VerifyFailure::Malformed`] when the body is not an SNS envelope,
    /// [`VerifyFailure::RawDelivery`] when it is a bare SES record (raw message delivery),
    /// [`VerifyFailure::Rejected`] when it is not authentic, and
    /// [`VerifyFailure::Unavailable`] when the signing certificate could not be fetched.
    async fn verify(&self, body: Vec<u8>) -> Result<SnsMessage, VerifyFailure>;
}

/// What became of an SNS message, as archived in `sns_messages.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageOutcome {
    /// An SES record that produced platform events (and possibly some errors).
    Processed,
    /// An SES record of a type with no platform event (Send, Reject, DeliveryDelay,
    /// `AmazonSnsSubscriptionSucceeded`, ...).
    NoEvents,
    /// Not an SES record (plain text, other JSON).
    NotSes,
    /// An SES record that could not be turned into events at all.
    Failed,
    /// A subscription or unsubscribe confirmation.
    Subscription,
}

impl MessageOutcome {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::NoEvents => "no_events",
            Self::NotSes => "not_ses",
            Self::Failed => "failed",
            Self::Subscription => "subscription",
        }
    }

    /// Parses a stored outcome name.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Processed,
            Self::NoEvents,
            Self::NotSes,
            Self::Failed,
            Self::Subscription,
        ]
        .into_iter()
        .find(|o| o.as_str() == value)
    }
}

/// An SNS message as it is archived in `sns_messages`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedMessage {
    pub sns_message_id: String,
    pub message_type: SnsMessageType,
    pub topic_arn: String,
    pub sns_timestamp: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// SES `eventType` or `notificationType`, when the message is an SES record.
    pub ses_type: Option<String>,
    /// SES `mail.messageId`, when the message is an SES record that has one.
    pub ses_message_id: Option<String>,
    pub outcome: MessageOutcome,
    /// Number of SES records or recipients that could not become events.
    pub error_count: u32,
    /// What went wrong, when `error_count > 0`.
    pub error_detail: Option<String>,
    /// The request body exactly as received.
    pub raw_body: String,
    /// What the record adds to the reputation counts, when it is a `Send`, `Reject` or
    /// `DeliveryDelay` (see [`crate::mapping::Mapped::tally`]). Counted in the same
    /// transaction, once per [`RecordTally::record_key`].
    pub tally: Option<RecordTally>,
}

/// How many of the events passed to [`EventStore::store_notification`] were new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreReport {
    /// `false` when a message with this SNS `MessageId` had already been archived.
    pub message_was_new: bool,
    pub events_inserted: usize,
    pub events_duplicate: usize,
}

/// State of a topic subscription, as kept in `sns_subscriptions.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionState {
    Pending,
    Confirmed,
    Unsubscribed,
}

impl SubscriptionState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Unsubscribed => "unsubscribed",
        }
    }

    /// Parses a stored state name.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Pending, Self::Confirmed, Self::Unsubscribed]
            .into_iter()
            .find(|s| s.as_str() == value)
    }
}

/// A change of subscription state for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionChange {
    pub topic_arn: String,
    pub state: SubscriptionState,
    /// Kept while pending, so an operator can confirm by hand.
    pub subscribe_url: Option<String>,
    pub at: DateTime<Utc>,
}

/// Storage failures. Every one of them is worth a retry by SNS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or did not answer in time.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database answered with an error.
    #[error("store failed: {0}")]
    Failed(String),
}

/// Durable storage of archived SNS messages, platform events and subscriptions.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Archives `message` and stores `events` in one transaction. Idempotent: a message already
    /// archived is left as it is, and an event whose `event_key` is already stored is counted as
    /// a duplicate. When this returns `Ok`, everything is committed.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be committed; nothing is then half-written.
    async fn store_notification(
        &self,
        message: ArchivedMessage,
        events: Vec<PlatformEvent>,
    ) -> Result<StoreReport, StoreError>;

    /// Archives `message` (idempotently) and records the subscription change, in one transaction.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be committed.
    async fn record_subscription(
        &self,
        message: ArchivedMessage,
        change: SubscriptionChange,
    ) -> Result<(), StoreError>;

    /// Records a later change of a subscription whose message is already archived (by
    /// [`EventStore::record_subscription`]): the same upsert, without the archive row, so the
    /// message is not handed over (and its body not copied) a second time.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be committed.
    async fn change_subscription(&self, change: SubscriptionChange) -> Result<(), StoreError>;

    /// Checks that the store is reachable and its schema up to date.
    ///
    /// # Errors
    /// [`StoreError`] when it is not.
    async fn health_check(&self) -> Result<(), StoreError>;
}

/// Why a subscription could not be confirmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfirmError {
    /// The `SubscribeURL` is not one we will visit. Final.
    #[error("untrusted SubscribeURL: {0}")]
    UntrustedUrl(String),
    /// SNS answered the `SubscribeURL` with a refusal (a 4xx other than 408 and 429: an expired
    /// or already used token, a deleted topic). Final: the same confirmation will never succeed, so SNS must not be
    /// asked to send it again.
    #[error("SNS refused the subscription confirmation: {0}")]
    Refused(String),
    /// SNS could not be reached, timed out, or answered anything but a 2xx or a refusal (5xx,
    /// 408, 429, ...). Transient: SNS should send the confirmation again.
    #[error("subscription confirmation failed: {0}")]
    Unavailable(String),
}

/// Confirms a topic subscription by visiting its `SubscribeURL`.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SubscriptionConfirmer: Send + Sync {
    /// Confirms the subscription announced by `message` (a verified `SubscriptionConfirmation`).
    ///
    /// # Errors
    /// [`ConfirmError::UntrustedUrl`] when the URL fails the SNS host rules or does not match the
    /// signed topic and token (nothing is visited); [`ConfirmError::Refused`] when SNS answered
    /// with a client error; [`ConfirmError::Unavailable`] when the call failed in a way a later
    /// attempt may not.
    async fn confirm(&self, message: &SnsMessage) -> Result<(), ConfirmError>;
}

/// The time, injectable for tests.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Which archived messages `reprocess` looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReprocessFilter {
    /// Only messages received at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only this SNS message (whatever its outcome).
    pub sns_message_id: Option<String>,
}

/// An archived notification handed back for another pass through the parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The archive's own row id, for paging.
    pub id: i64,
    pub sns_message_id: String,
    pub outcome: MessageOutcome,
    pub raw_body: String,
}

/// A new outcome for an archived message, after it was processed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reprocessed {
    pub sns_message_id: String,
    pub ses_type: Option<String>,
    /// SES `mail.messageId` of the record, when it has one.
    pub ses_message_id: Option<String>,
    pub outcome: MessageOutcome,
    pub error_count: u32,
    pub error_detail: Option<String>,
    pub at: DateTime<Utc>,
    /// What the record adds to the reputation counts (see [`ArchivedMessage::tally`]).
    pub tally: Option<RecordTally>,
}

/// Maintenance of the message archive: re-processing and retention.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait MessageArchive: Send + Sync {
    /// Archived notifications, oldest first, with a raw body and with `id > after_id`, that
    /// either match `filter.sns_message_id` or, without it, did not produce events cleanly
    /// (outcome `failed`, `no_events` or `not_ses`, or `error_count > 0`).
    ///
    /// # Errors
    /// [`StoreError`] when the archive cannot be read.
    async fn reprocess_candidates(
        &self,
        filter: &ReprocessFilter,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError>;

    /// Stores `events` (idempotently, as [`EventStore::store_notification`] does) and updates the
    /// archived message's outcome, in one transaction.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be committed.
    async fn store_reprocessed(
        &self,
        update: Reprocessed,
        events: Vec<PlatformEvent>,
    ) -> Result<StoreReport, StoreError>;

    /// Removes the raw bodies of up to `batch` messages received before `cutoff`; returns how
    /// many. Never touches `email_events`.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be committed.
    async fn purge_raw_bodies(
        &self,
        cutoff: DateTime<Utc>,
        batch: usize,
    ) -> Result<usize, StoreError>;

    /// Deletes up to `batch` archived messages (rows of `sns_messages`, whatever their
    /// outcome) received before `cutoff`; returns how many. Never touches `email_events`.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be committed.
    async fn purge_messages(
        &self,
        cutoff: DateTime<Utc>,
        batch: usize,
    ) -> Result<usize, StoreError>;
}

/// Reading and erasing stored events: the event history.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// Up to `query.limit` events matching `query.filter` after `query.after`, newest first
    /// (by event time, then row id).
    ///
    /// # Errors
    /// [`StoreError`] when the events cannot be read.
    async fn list_events(&self, query: EventQuery) -> Result<Vec<StoredEvent>, StoreError>;

    /// The events of the sent email `ses_message_id` and the archived messages about it,
    /// each oldest first (both empty when nothing is known).
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    async fn message_timeline(&self, ses_message_id: String)
    -> Result<MessageTimeline, StoreError>;

    /// In one transaction, holding the address's lock: deletes every event whose recipient
    /// key is `key`; clears the raw body of every archived message that carried one of them,
    /// is about one of their SES messages, or holds `key` in any ASCII case; unless `request.keep_suppression`, deletes the
    /// address's suppression entry and its history; and, when any of that changed something,
    /// appends an erasure row (`address_hash`, `actor`, `at`, the counts). Idempotent.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be committed.
    async fn erase_recipient(
        &self,
        key: String,
        address_hash: String,
        request: ErasureRequest,
        actor: Actor,
        at: DateTime<Utc>,
    ) -> Result<ErasureReport, StoreError>;

    /// Deletes up to `batch` events whose event time is before `cutoff` (oldest first);
    /// returns how many. Never touches the suppression list.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be committed.
    async fn purge_events(&self, cutoff: DateTime<Utc>, batch: usize) -> Result<usize, StoreError>;
}

/// Why a token could not be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenStoreError {
    /// A token not revoked has this name already.
    #[error("a token of this name exists")]
    NameTaken,
    #[error(transparent)]
    Store(StoreError),
}

/// Storage of API tokens (hashes only).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new token.
    ///
    /// # Errors
    /// [`TokenStoreError::NameTaken`] when a token not revoked has its name;
    /// [`TokenStoreError::Store`] when nothing could be committed.
    async fn create_token(&self, token: NewToken) -> Result<(), TokenStoreError>;

    /// Every token, revoked ones included, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError>;

    /// Marks the active token named `name` revoked at `at`; `false` when there is none.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be committed.
    async fn revoke_token(&self, name: String, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// The token whose [`token_hash`](crate::token::token_hash) is `hash`, revoked or not.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    async fn token_by_hash(&self, hash: String) -> Result<Option<ApiToken>, StoreError>;

    /// Records that the active token named `name` was used at `at`.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be committed.
    async fn touch_token(&self, name: String, at: DateTime<Utc>) -> Result<(), StoreError>;
}

/// Storage of the suppression list and its history. Every change writes the entry and its
/// history line in one transaction; on PostgreSQL it also holds the address's lock, so that it
/// serialises with the policy applied by concurrent batch writes.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SuppressionStore: Send + Sync {
    /// The entry of the address whose [`address_key`](crate::suppression::address_key) is
    /// `key`, expired or not.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    async fn suppression(&self, key: String) -> Result<Option<SuppressionEntry>, StoreError>;

    /// The entries active at `now` among the addresses with these keys.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    async fn active_suppressions(
        &self,
        keys: Vec<String>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SuppressionEntry>, StoreError>;

    /// Up to `query.limit` entries active at `now`, newest first (by `created_at`, then by the
    /// row's id), each with its position for the next page's cursor.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    async fn list_suppressions(
        &self,
        query: ListQuery,
        now: DateTime<Utc>,
    ) -> Result<Vec<(ListPosition, SuppressionEntry)>, StoreError>;

    /// Writes `entry` for `address`, replacing any entry it has (keeping the address as first
    /// seen), and appends the history line (`added` by `actor`). Returns whether it replaced an
    /// entry active at `entry.created_at`, and the entry as written.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be committed.
    async fn put_suppression(
        &self,
        address: Address,
        entry: SuppressionEntry,
        actor: Actor,
    ) -> Result<(bool, SuppressionEntry), StoreError>;

    /// Removes the entry of the address with `key` when it is active at `at`, appending the
    /// history line (`removed` by `actor`); `false` when there was none (an expired entry is
    /// removed silently).
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be committed.
    async fn remove_suppression(
        &self,
        key: String,
        actor: Actor,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// The history of the address with `key`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    async fn suppression_history(&self, key: String) -> Result<Vec<HistoryItem>, StoreError>;

    /// Writes each entry whose address has no active entry at its `created_at` (with its
    /// history line, by `actor`), a few hundred addresses per transaction; returns how many it
    /// wrote. Idempotent: after a failure, the same call again writes the rest.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; what was committed until then stays.
    async fn import_suppressions(
        &self,
        entries: Vec<(Address, SuppressionEntry)>,
        actor: Actor,
    ) -> Result<usize, StoreError>;

    /// Applies `policy` to every stored bounce and complaint, address by address, as if each
    /// were newly stored (see [`SuppressionPolicy::decide`]), at `now`.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; the addresses handled until then stay committed.
    async fn rebuild_suppressions(
        &self,
        policy: SuppressionPolicy,
        now: DateTime<Utc>,
    ) -> Result<RebuildReport, StoreError>;
}

/// Which entries a list call returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub reason: Option<SuppressionReason>,
    /// Only entries created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many (1 to 1000).
    pub limit: usize,
    /// Only entries after this position (older, in list order).
    pub after: Option<ListPosition>,
}

/// Where an entry sits in the list: its `created_at` and row id, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListPosition {
    pub created_at: DateTime<Utc>,
    pub id: i64,
}

/// What `suppressions rebuild` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RebuildReport {
    /// Addresses with a stored bounce or complaint.
    pub addresses: usize,
    /// Entries written.
    pub written: usize,
}

/// Told of every change to the suppression list after it is committed (metrics).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait SuppressionObserver: Send + Sync {
    /// An entry was written with `reason`.
    fn added(&self, reason: SuppressionReason);
    /// An entry was removed.
    fn removed(&self);
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl SuppressionObserver for NoObserver {
    fn added(&self, _: SuppressionReason) {}
    fn removed(&self) {}
}
