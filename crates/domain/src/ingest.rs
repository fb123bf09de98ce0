//! The ingest use case: one SNS delivery in, verified, authorised, mapped and committed.

use std::sync::Arc;
use std::time::Duration;

use crate::mapping::{self, Mapped, MappedKind};
use async_trait::async_trait;

use crate::ports::{
    ArchivedMessage, Clock, ConfirmError, EventStore, Ingest, MessageOutcome, MessageVerifier,
    RejectReason, StoreError, SubscriptionChange, SubscriptionConfirmer, SubscriptionState,
    VerifyFailure,
};
use crate::sns::{SnsMessage, SnsMessageType};

/// Authorisation rules applied after a message is proven to come from SNS.
#[derive(Debug, Clone, Default)]
pub struct IngestPolicy {
    /// Topic ARNs whose messages are accepted. Empty accepts any topic.
    pub allowed_topic_arns: Vec<String>,
    /// Visit the `SubscribeURL` of a verified, allowed `SubscriptionConfirmation`.
    pub auto_confirm: bool,
    /// Refuse messages whose signed `Timestamp` is older than this.
    pub max_message_age: Option<Duration>,
}

impl IngestPolicy {
    fn topic_allowed(&self, topic_arn: &str) -> bool {
        self.allowed_topic_arns.is_empty() || self.allowed_topic_arns.iter().any(|t| t == topic_arn)
    }
}

/// Why a message was refused as not authentic or not authorised (HTTP 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForbiddenReason {
    Verification(RejectReason),
    TopicNotAllowed,
    MessageTooOld,
    UntrustedSubscribeUrl,
}

impl ForbiddenReason {
    /// Stable machine-readable name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verification(reason) => reason.as_str(),
            Self::TopicNotAllowed => "topic_not_allowed",
            Self::MessageTooOld => "message_too_old",
            Self::UntrustedSubscribeUrl => "untrusted_subscribe_url",
        }
    }
}

/// A dependency that was unavailable (HTTP 503: SNS retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dependency {
    Certificate,
    Store,
    SubscriptionConfirmation,
}

impl Dependency {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Certificate => "certificate_unavailable",
            Self::Store => "store_unavailable",
            Self::SubscriptionConfirmation => "confirmation_failed",
        }
    }
}

/// What kind of failure an [`IngestError`] is, without its detail: small and `Copy`, so that
/// adapters and middleware (metrics, logs) can carry it and match on it instead of on strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IngestFailure {
    /// Not an SNS message at all. Final.
    Malformed,
    /// A bare SES record: raw message delivery is on. Final.
    RawDelivery,
    /// Not authentic or not authorised. Final.
    Forbidden(ForbiddenReason),
    /// Authentic and allowed, but SNS refused to confirm the subscription. Final.
    ConfirmationRefused,
    /// A dependency failed; SNS should retry.
    Unavailable(Dependency),
}

impl IngestFailure {
    /// Stable machine-readable code, used in error bodies, logs and metrics labels.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "malformed_message",
            Self::RawDelivery => "raw_message_delivery",
            Self::Forbidden(reason) => reason.as_str(),
            Self::ConfirmationRefused => "confirmation_refused",
            Self::Unavailable(dependency) => dependency.as_str(),
        }
    }

    /// `true` when retrying the same delivery later may succeed.
    #[must_use]
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Why a delivery was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// Not an SNS message at all. Final.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// A bare SES record: raw message delivery is enabled on the subscription, and such a body
    /// cannot be authenticated. Final; the detail says what to change.
    #[error("{0}")]
    RawDelivery(String),
    /// Not authentic or not authorised. Final. Nothing was stored, but for an untrusted
    /// `SubscribeURL`: that `SubscriptionConfirmation` is archived and left pending (the URL is
    /// never visited).
    #[error("forbidden ({}): {detail}", reason.as_str())]
    Forbidden {
        reason: ForbiddenReason,
        detail: String,
    },
    /// A verified, allowed `SubscriptionConfirmation` whose `SubscribeURL` SNS refused (an
    /// expired or already used token, a deleted topic). Final: the subscription stays pending,
    /// and sending the same confirmation again cannot succeed.
    #[error("SNS refused the subscription confirmation: {detail}")]
    ConfirmationRefused { detail: String },
    /// Could not be completed now; nothing was acknowledged, SNS should retry.
    #[error("unavailable ({}): {detail}", dependency.as_str())]
    Unavailable {
        dependency: Dependency,
        detail: String,
    },
}

impl IngestError {
    /// The kind of failure, without its detail.
    #[must_use]
    pub fn kind(&self) -> IngestFailure {
        match self {
            Self::Malformed(_) => IngestFailure::Malformed,
            Self::RawDelivery(_) => IngestFailure::RawDelivery,
            Self::Forbidden { reason, .. } => IngestFailure::Forbidden(*reason),
            Self::ConfirmationRefused { .. } => IngestFailure::ConfirmationRefused,
            Self::Unavailable { dependency, .. } => IngestFailure::Unavailable(*dependency),
        }
    }

    /// Stable machine-readable code, used in error bodies, logs and metrics.
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.kind().code()
    }
}

impl From<VerifyFailure> for IngestError {
    fn from(failure: VerifyFailure) -> Self {
        match failure {
            VerifyFailure::Malformed(detail) => Self::Malformed(detail),
            VerifyFailure::RawDelivery(detail) => Self::RawDelivery(detail),
            VerifyFailure::Rejected { reason, detail } => Self::Forbidden {
                reason: ForbiddenReason::Verification(reason),
                detail,
            },
            VerifyFailure::Unavailable(detail) => Self::Unavailable {
                dependency: Dependency::Certificate,
                detail,
            },
        }
    }
}

impl From<StoreError> for IngestError {
    fn from(error: StoreError) -> Self {
        Self::Unavailable {
            dependency: Dependency::Store,
            detail: error.to_string(),
        }
    }
}

impl From<ConfirmError> for IngestError {
    fn from(error: ConfirmError) -> Self {
        match error {
            ConfirmError::UntrustedUrl(detail) => Self::Forbidden {
                reason: ForbiddenReason::UntrustedSubscribeUrl,
                detail,
            },
            ConfirmError::Refused(detail) => Self::ConfirmationRefused { detail },
            ConfirmError::Unavailable(detail) => Self::Unavailable {
                dependency: Dependency::SubscriptionConfirmation,
                detail,
            },
        }
    }
}

/// What an acknowledged delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    pub message_type: SnsMessageType,
    pub message_id: String,
    pub topic_arn: String,
    pub outcome: MessageOutcome,
    pub ses_type: Option<String>,
    /// The platform event type the message carried, if any (one SES record has one type).
    pub event_type: Option<crate::event::EventType>,
    /// Platform events newly stored.
    pub processed: usize,
    /// Platform events that were already stored.
    pub duplicates: usize,
    /// SES records or recipients that were recognised but could not become events.
    pub errors: usize,
    pub subscription_confirmed: bool,
    /// `true` when the store already held this message (by SNS `MessageId`): a redelivery, of
    /// which nothing new was stored. Known for notifications and for subscription messages
    /// read from a queue; `false` for subscription messages over HTTP.
    pub redelivery: bool,
}

/// One message read from an Amazon SQS queue subscribed to the SES topic, for
/// [`Ingest::ingest_queued`](crate::ports::Ingest::ingest_queued).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// The SQS message's `Body`: an SNS envelope exactly as SNS wrote it to the queue, or, on a
    /// queue with raw message delivery, the bare SES record.
    pub body: Vec<u8>,
    /// Set only for a queue configured with `raw = true`: where a body that is a bare SES
    /// record came from. `None`: a bare SES record is refused (`raw_message_delivery`).
    pub raw: Option<RawOrigin>,
}

/// Where a bare SES record read from a raw queue came from. Such a record carries no SNS
/// signature: the queue's access policy is what vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOrigin {
    /// The id it is archived under, in place of an SNS `MessageId`: derived from the SQS
    /// message (see the SQS adapter), the same on every receive of that message.
    pub message_id: String,
    /// What is archived in place of the SNS `TopicArn`: the queue's ARN.
    pub source_arn: String,
    /// When SQS received the message (its `SentTimestamp` attribute), archived in place of
    /// the SNS `Timestamp`.
    pub sent_at: chrono::DateTime<chrono::Utc>,
}

/// The archive outcome of a mapped message, its error count and error detail.
pub(crate) fn classify(mapped: &Mapped) -> (MessageOutcome, u32, Option<String>) {
    let outcome = match mapped.kind {
        MappedKind::NotSes => MessageOutcome::NotSes,
        MappedKind::NoPlatformEvent => MessageOutcome::NoEvents,
        MappedKind::Events if mapped.events.is_empty() => MessageOutcome::Failed,
        MappedKind::Events => MessageOutcome::Processed,
    };
    let error_count = u32::try_from(mapped.errors.len()).unwrap_or(u32::MAX);
    let detail = (!mapped.errors.is_empty()).then(|| mapped.errors.join("; "));
    (outcome, error_count, detail)
}

/// The ingest use case, written against ports only.
#[derive(Clone)]
pub struct IngestService {
    verifier: Arc<dyn MessageVerifier>,
    store: Arc<dyn EventStore>,
    confirmer: Arc<dyn SubscriptionConfirmer>,
    clock: Arc<dyn Clock>,
    policy: IngestPolicy,
}

impl std::fmt::Debug for IngestService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestService")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl IngestService {
    #[must_use]
    pub fn new(
        verifier: Arc<dyn MessageVerifier>,
        store: Arc<dyn EventStore>,
        confirmer: Arc<dyn SubscriptionConfirmer>,
        clock: Arc<dyn Clock>,
        policy: IngestPolicy,
    ) -> Self {
        Self {
            verifier,
            store,
            confirmer,
            clock,
            policy,
        }
    }

    fn authorise(&self, message: &SnsMessage) -> Result<(), IngestError> {
        if !self.policy.topic_allowed(&message.topic_arn) {
            return Err(IngestError::Forbidden {
                reason: ForbiddenReason::TopicNotAllowed,
                detail: format!(
                    "topic {} is not in sns.allowed_topic_arns",
                    message.topic_arn
                ),
            });
        }
        if let Some(max_age) = self.policy.max_message_age {
            let age = self.clock.now() - message.timestamp;
            let too_old = age.to_std().is_ok_and(|age| age > max_age);
            if too_old {
                return Err(IngestError::Forbidden {
                    reason: ForbiddenReason::MessageTooOld,
                    detail: format!(
                        "message timestamp {} is older than {} s",
                        message.timestamp.to_rfc3339(),
                        max_age.as_secs()
                    ),
                });
            }
        }
        Ok(())
    }

    /// The archive row for `message`; moves the raw body out of it (nothing needs it after).
    fn archive(&self, message: &mut SnsMessage, outcome: MessageOutcome) -> ArchivedMessage {
        ArchivedMessage {
            sns_message_id: message.message_id.clone(),
            message_type: message.message_type,
            topic_arn: message.topic_arn.clone(),
            sns_timestamp: message.timestamp,
            received_at: self.clock.now(),
            ses_type: None,
            ses_message_id: None,
            outcome,
            error_count: 0,
            error_detail: None,
            raw_body: std::mem::take(&mut message.raw),
            tally: None,
        }
    }

    async fn notification(&self, mut message: SnsMessage) -> Result<IngestOutcome, IngestError> {
        let mapped = mapping::map_message(&message.message);
        let (outcome, error_count, error_detail) = classify(&mapped);
        let mut archived = self.archive(&mut message, outcome);
        archived.ses_type.clone_from(&mapped.ses_type);
        archived.ses_message_id.clone_from(&mapped.ses_message_id);
        archived.error_count = error_count;
        archived.error_detail = error_detail;
        archived.tally = mapped.tally;
        let event_type = mapped.events.first().map(|event| event.event_type);
        let errors = mapped.errors.len();
        let report = self
            .store
            .store_notification(archived, mapped.events)
            .await?;
        Ok(IngestOutcome {
            message_type: message.message_type,
            message_id: message.message_id,
            topic_arn: message.topic_arn,
            outcome,
            ses_type: mapped.ses_type,
            event_type,
            processed: report.events_inserted,
            duplicates: report.events_duplicate,
            errors,
            subscription_confirmed: false,
            redelivery: !report.message_was_new,
        })
    }

    async fn subscription(&self, mut message: SnsMessage) -> Result<IngestOutcome, IngestError> {
        let archived = self.archive(&mut message, MessageOutcome::Subscription);
        let pending = SubscriptionChange {
            topic_arn: message.topic_arn.clone(),
            state: SubscriptionState::Pending,
            subscribe_url: message.subscribe_url.clone(),
            at: self.clock.now(),
        };
        if !self.policy.auto_confirm {
            // Archived and pending: the operator confirms by hand.
            self.store.record_subscription(archived, pending).await?;
            tracing::warn!(
                topic_arn = %message.topic_arn,
                subscribe_url = message.subscribe_url.as_deref().unwrap_or_default(),
                "subscription left pending because sns.auto_confirm is off; visit the SubscribeURL to confirm it"
            );
            return Ok(Self::subscription_outcome(message, false));
        }
        // Pending first, so that a confirmation that fails leaves a record of it.
        self.store.record_subscription(archived, pending).await?;
        self.confirmer.confirm(&message).await?;
        let confirmed = SubscriptionChange {
            topic_arn: message.topic_arn.clone(),
            state: SubscriptionState::Confirmed,
            subscribe_url: None,
            at: self.clock.now(),
        };
        self.store.change_subscription(confirmed).await?;
        Ok(Self::subscription_outcome(message, true))
    }

    async fn unsubscribe(&self, mut message: SnsMessage) -> Result<IngestOutcome, IngestError> {
        let archived = self.archive(&mut message, MessageOutcome::Subscription);
        let change = SubscriptionChange {
            topic_arn: message.topic_arn.clone(),
            state: SubscriptionState::Unsubscribed,
            subscribe_url: None,
            at: self.clock.now(),
        };
        self.store.record_subscription(archived, change).await?;
        Ok(Self::subscription_outcome(message, false))
    }

    /// A `SubscriptionConfirmation` or `UnsubscribeConfirmation` read from a queue: archived
    /// (so that it is seen, and counted once), but neither visited nor recorded as the state of
    /// the topic's subscription, which is the HTTP endpoint's (a queue's own subscription is
    /// confirmed by AWS when the queue is subscribed).
    async fn queued_subscription(
        &self,
        mut message: SnsMessage,
    ) -> Result<IngestOutcome, IngestError> {
        let archived = self.archive(&mut message, MessageOutcome::Subscription);
        let report = self.store.store_notification(archived, Vec::new()).await?;
        tracing::info!(
            topic_arn = %message.topic_arn,
            message_type = message.message_type.as_str(),
            subscribe_url = message.subscribe_url.as_deref().unwrap_or_default(),
            "a subscription message arrived through an SQS queue: archived; its SubscribeURL is \
             not visited (a queue subscribed across accounts is confirmed by visiting it by hand)"
        );
        Ok(IngestOutcome {
            redelivery: !report.message_was_new,
            ..Self::subscription_outcome(message, false)
        })
    }

    /// A bare SES record from a raw queue, as a notification of `origin`: not verified (it
    /// cannot be), and not subject to the topic allow-list (it names no topic).
    async fn raw_record(
        &self,
        body: Vec<u8>,
        origin: RawOrigin,
    ) -> Result<IngestOutcome, IngestError> {
        let text = String::from_utf8(body)
            .map_err(|_| IngestError::Malformed("the SQS message body is not UTF-8".into()))?;
        let message = SnsMessage {
            message_type: SnsMessageType::Notification,
            message_id: origin.message_id,
            topic_arn: origin.source_arn,
            timestamp: origin.sent_at,
            subject: None,
            message: text.clone(),
            subscribe_url: None,
            token: None,
            raw: text,
        };
        self.notification(message).await
    }

    fn subscription_outcome(message: SnsMessage, confirmed: bool) -> IngestOutcome {
        IngestOutcome {
            message_type: message.message_type,
            message_id: message.message_id,
            topic_arn: message.topic_arn,
            outcome: MessageOutcome::Subscription,
            ses_type: None,
            event_type: None,
            processed: 0,
            duplicates: 0,
            errors: 0,
            subscription_confirmed: confirmed,
            redelivery: false,
        }
    }
}

#[async_trait]
impl Ingest for IngestService {
    async fn ingest(&self, body: Vec<u8>) -> Result<IngestOutcome, IngestError> {
        let message = self.verifier.verify(body).await?;
        self.authorise(&message)?;
        match message.message_type {
            SnsMessageType::Notification => self.notification(message).await,
            SnsMessageType::SubscriptionConfirmation => self.subscription(message).await,
            SnsMessageType::UnsubscribeConfirmation => self.unsubscribe(message).await,
        }
    }

    async fn ingest_queued(&self, queued: QueuedMessage) -> Result<IngestOutcome, IngestError> {
        let QueuedMessage { body, raw } = queued;
        let verified = match raw {
            // Only a raw queue needs the body again when it turns out to be a bare record.
            Some(origin) => match self.verifier.verify(body.clone()).await {
                Err(VerifyFailure::RawDelivery(_)) => return self.raw_record(body, origin).await,
                verified => verified,
            },
            None => self.verifier.verify(body).await,
        };
        let message = verified?;
        self.authorise(&message)?;
        match message.message_type {
            SnsMessageType::Notification => self.notification(message).await,
            SnsMessageType::SubscriptionConfirmation | SnsMessageType::UnsubscribeConfirmation => {
                self.queued_subscription(message).await
            }
        }
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.store.health_check().await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use mockall::Sequence;
    use mockall::predicate::always;

    use super::*;
    use crate::event::EventType;
    use crate::ports::{
        MockClock, MockEventStore, MockMessageVerifier, MockSubscriptionConfirmer, StoreReport,
    };

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-events";

    fn sent_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
    }

    fn sns(message_type: SnsMessageType, message: &str) -> SnsMessage {
        SnsMessage {
            message_type,
            message_id: "5bd1d1b3-3ea8-5a6e-8a3c-4c1c1d5d3e2f".into(),
            topic_arn: TOPIC.into(),
            timestamp: sent_at(),
            subject: None,
            message: message.into(),
            subscribe_url: Some(format!(
                "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=t"
            )),
            token: Some("t".into()),
            raw: "{\"Type\":\"...\"}".into(),
        }
    }

    fn delivery_to(recipients: &[&str]) -> String {
        serde_json::json!({
            "notificationType": "Delivery",
            "mail": {
                "timestamp": "2026-11-27T11:59:58.000Z",
                "messageId": "0100019abc-ses-id",
                "source": "sender@example.com",
                "destination": recipients,
            },
            "delivery": {
                "timestamp": "2026-11-27T11:59:59.000Z",
                "recipients": recipients,
                "smtpResponse": "250 ok",
                "processingTimeMillis": 500,
            }
        })
        .to_string()
    }

    struct Ports {
        verifier: MockMessageVerifier,
        store: MockEventStore,
        confirmer: MockSubscriptionConfirmer,
        now: DateTime<Utc>,
    }

    impl Ports {
        fn verifying(message: SnsMessage) -> Self {
            let mut verifier = MockMessageVerifier::new();
            verifier
                .expect_verify()
                .times(1)
                .return_once(move |_| Ok(message));
            Self::with_verifier(verifier)
        }

        fn with_verifier(verifier: MockMessageVerifier) -> Self {
            Self {
                verifier,
                store: MockEventStore::new(),
                confirmer: MockSubscriptionConfirmer::new(),
                now: sent_at() + chrono::Duration::seconds(2),
            }
        }

        fn service(self, policy: IngestPolicy) -> IngestService {
            let mut clock = MockClock::new();
            let now = self.now;
            clock.expect_now().returning(move || now);
            IngestService::new(
                Arc::new(self.verifier),
                Arc::new(self.store),
                Arc::new(self.confirmer),
                Arc::new(clock),
                policy,
            )
        }
    }

    fn report(inserted: usize, duplicate: usize) -> StoreReport {
        StoreReport {
            message_was_new: duplicate == 0,
            events_inserted: inserted,
            events_duplicate: duplicate,
        }
    }

    #[tokio::test]
    async fn delivery_becomes_one_event_per_recipient_and_counts_what_the_store_says() {
        let message = sns(
            SnsMessageType::Notification,
            &delivery_to(&["a@example.com", "b@example.com"]),
        );
        let mut ports = Ports::verifying(message);
        ports
            .store
            .expect_store_notification()
            .withf(|archived, events| {
                archived.outcome == MessageOutcome::Processed
                    && archived.ses_type.as_deref() == Some("Delivery")
                    && archived.sns_message_id == "5bd1d1b3-3ea8-5a6e-8a3c-4c1c1d5d3e2f"
                    && archived.raw_body == "{\"Type\":\"...\"}"
                    && events.len() == 2
                    && events.iter().all(|e| e.event_type == EventType::Delivered)
            })
            .times(1)
            .returning(|_, _| Ok(report(1, 1)));

        let outcome = ports
            .service(IngestPolicy::default())
            .ingest(b"{}".to_vec())
            .await
            .unwrap();

        assert_eq!(outcome.processed, 1);
        assert_eq!(outcome.duplicates, 1);
        assert_eq!(outcome.errors, 0);
        assert_eq!(outcome.outcome, MessageOutcome::Processed);
        assert_eq!(outcome.event_type, Some(EventType::Delivered));
        assert!(!outcome.subscription_confirmed);
    }

    #[tokio::test]
    async fn plain_text_message_is_archived_as_not_ses_with_zero_counts() {
        let message = sns(
            SnsMessageType::Notification,
            "Successfully validated SNS topic for Amazon SES event publishing.",
        );
        let mut ports = Ports::verifying(message);
        ports
            .store
            .expect_store_notification()
            .withf(|archived, events| {
                archived.outcome == MessageOutcome::NotSes && events.is_empty()
            })
            .times(1)
            .returning(|_, _| Ok(report(0, 0)));

        let outcome = ports
            .service(IngestPolicy::default())
            .ingest(b"{}".to_vec())
            .await
            .unwrap();

        assert_eq!(
            (outcome.processed, outcome.duplicates, outcome.errors),
            (0, 0, 0)
        );
        assert_eq!(outcome.outcome, MessageOutcome::NotSes);
    }

    #[tokio::test]
    async fn bounce_without_recipients_is_archived_as_failed_and_counted_as_an_error() {
        let bounce = serde_json::json!({
            "notificationType": "Bounce",
            "mail": { "timestamp": "2026-11-27T11:59:58.000Z", "messageId": "m-1", "destination": ["a@example.com"] },
            "bounce": { "bounceType": "Permanent", "bounceSubType": "General", "bouncedRecipients": [],
                        "timestamp": "2026-11-27T11:59:59.000Z", "feedbackId": "f-1" }
        });
        let mut ports = Ports::verifying(sns(SnsMessageType::Notification, &bounce.to_string()));
        ports
            .store
            .expect_store_notification()
            .withf(|archived, events| {
                archived.outcome == MessageOutcome::Failed
                    && archived.error_count == 1
                    && archived.error_detail.is_some()
                    && events.is_empty()
            })
            .times(1)
            .returning(|_, _| Ok(report(0, 0)));

        let outcome = ports
            .service(IngestPolicy::default())
            .ingest(b"{}".to_vec())
            .await
            .unwrap();

        assert_eq!(outcome.errors, 1);
        assert_eq!(outcome.processed, 0);
    }

    #[tokio::test]
    async fn topic_outside_the_allow_list_is_forbidden_and_nothing_is_stored() {
        let mut ports =
            Ports::verifying(sns(SnsMessageType::Notification, &delivery_to(&["a@x.io"])));
        ports.store.expect_store_notification().times(0);
        let policy = IngestPolicy {
            allowed_topic_arns: vec!["arn:aws:sns:us-east-1:123456789012:other".into()],
            ..IngestPolicy::default()
        };

        let error = ports
            .service(policy)
            .ingest(b"{}".to_vec())
            .await
            .unwrap_err();

        assert_eq!(error.code(), "topic_not_allowed");
    }

    #[tokio::test]
    async fn allowed_topic_passes() {
        let mut ports =
            Ports::verifying(sns(SnsMessageType::Notification, &delivery_to(&["a@x.io"])));
        ports
            .store
            .expect_store_notification()
            .times(1)
            .returning(|_, _| Ok(report(1, 0)));
        let policy = IngestPolicy {
            allowed_topic_arns: vec![
                "arn:aws:sns:us-east-1:123456789012:other".into(),
                TOPIC.into(),
            ],
            ..IngestPolicy::default()
        };

        let outcome = ports.service(policy).ingest(b"{}".to_vec()).await.unwrap();

        assert_eq!(outcome.processed, 1);
    }

    #[tokio::test]
    async fn message_older_than_the_maximum_age_is_forbidden() {
        let mut ports =
            Ports::verifying(sns(SnsMessageType::Notification, &delivery_to(&["a@x.io"])));
        ports.now = sent_at() + chrono::Duration::hours(2);
        ports.store.expect_store_notification().times(0);
        let policy = IngestPolicy {
            max_message_age: Some(Duration::from_secs(3600)),
            ..IngestPolicy::default()
        };

        let error = ports
            .service(policy)
            .ingest(b"{}".to_vec())
            .await
            .unwrap_err();

        assert_eq!(error.code(), "message_too_old");
    }

    #[tokio::test]
    async fn message_within_the_maximum_age_passes() {
        let mut ports =
            Ports::verifying(sns(SnsMessageType::Notification, &delivery_to(&["a@x.io"])));
        ports.now = sent_at() + chrono::Duration::minutes(59);
        ports
            .store
            .expect_store_notification()
            .times(1)
            .returning(|_, _| Ok(report(1, 0)));
        let policy = IngestPolicy {
            max_message_age: Some(Duration::from_secs(3600)),
            ..IngestPolicy::default()
        };

        assert!(ports.service(policy).ingest(b"{}".to_vec()).await.is_ok());
    }

    #[tokio::test]
    async fn verification_failures_keep_their_meaning() {
        let cases = [
            (VerifyFailure::Malformed("x".into()), "malformed_message"),
            (
                VerifyFailure::Rejected {
                    reason: RejectReason::BadSignature,
                    detail: "x".into(),
                },
                "bad_signature",
            ),
            (
                VerifyFailure::Unavailable("x".into()),
                "certificate_unavailable",
            ),
        ];
        for (failure, code) in cases {
            let mut verifier = MockMessageVerifier::new();
            verifier.expect_verify().return_once(move |_| Err(failure));
            let mut store = MockEventStore::new();
            store.expect_store_notification().times(0);
            let service = IngestService::new(
                Arc::new(verifier),
                Arc::new(store),
                Arc::new(MockSubscriptionConfirmer::new()),
                Arc::new(crate::ports::SystemClock),
                IngestPolicy::default(),
            );

            let error = service.ingest(b"{}".to_vec()).await.unwrap_err();

            assert_eq!(error.code(), code);
        }
    }

    #[tokio::test]
    async fn store_failure_is_unavailable_so_sns_retries() {
        let mut ports =
            Ports::verifying(sns(SnsMessageType::Notification, &delivery_to(&["a@x.io"])));
        ports
            .store
            .expect_store_notification()
            .returning(|_, _| Err(StoreError::Unavailable("connection refused".into())));

        let error = ports
            .service(IngestPolicy::default())
            .ingest(b"{}".to_vec())
            .await
            .unwrap_err();

        assert!(matches!(
            error,
            IngestError::Unavailable {
                dependency: Dependency::Store,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn subscription_is_recorded_pending_then_confirmed_then_recorded_confirmed() {
        let mut ports = Ports::verifying(sns(
            SnsMessageType::SubscriptionConfirmation,
            "You have chosen...",
        ));
        let mut seq = Sequence::new();
        ports
            .store
            .expect_record_subscription()
            .withf(|_, change| {
                change.state == SubscriptionState::Pending && change.subscribe_url.is_some()
            })
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(()));
        ports
            .confirmer
            .expect_confirm()
            .with(always())
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        ports
            .store
            .expect_change_subscription()
            .withf(|change| {
                change.state == SubscriptionState::Confirmed
                    && change.topic_arn == TOPIC
                    && change.subscribe_url.is_none()
            })
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        let policy = IngestPolicy {
            auto_confirm: true,
            ..IngestPolicy::default()
        };

        let outcome = ports.service(policy).ingest(b"{}".to_vec()).await.unwrap();

        assert!(outcome.subscription_confirmed);
        assert_eq!(
            (outcome.processed, outcome.duplicates, outcome.errors),
            (0, 0, 0)
        );
    }

    /// What ingesting a `SubscriptionConfirmation` answers when the confirmer fails with
    /// `error`; the subscription must have been recorded pending once, and never confirmed.
    async fn confirmation_failing_with(error: ConfirmError) -> IngestError {
        let mut ports = Ports::verifying(sns(SnsMessageType::SubscriptionConfirmation, "..."));
        ports
            .store
            .expect_record_subscription()
            .withf(|_, change| change.state == SubscriptionState::Pending)
            .times(1)
            .returning(|_, _| Ok(()));
        ports
            .confirmer
            .expect_confirm()
            .times(1)
            .return_once(move |_| Err(error));
        let policy = IngestPolicy {
            auto_confirm: true,
            ..IngestPolicy::default()
        };

        ports
            .service(policy)
            .ingest(b"{}".to_vec())
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn failed_confirmation_is_unavailable_and_never_recorded_as_confirmed() {
        let error =
            confirmation_failing_with(ConfirmError::Unavailable("HTTP 503 from SNS".into())).await;

        assert_eq!(error.code(), "confirmation_failed");
        assert!(error.kind().is_transient());
    }

    #[tokio::test]
    async fn a_confirmation_refused_by_sns_is_final_and_stays_pending() {
        let error = confirmation_failing_with(ConfirmError::Refused("HTTP 403".into())).await;

        assert_eq!(error.kind(), IngestFailure::ConfirmationRefused);
        assert_eq!(error.code(), "confirmation_refused");
        assert!(!error.kind().is_transient());
        assert!(error.to_string().contains("HTTP 403"), "{error}");
    }

    #[tokio::test]
    async fn untrusted_subscribe_url_is_forbidden() {
        let error =
            confirmation_failing_with(ConfirmError::UntrustedUrl("http://169.254.169.254/".into()))
                .await;

        assert_eq!(error.code(), "untrusted_subscribe_url");
    }

    #[test]
    fn every_failure_kind_has_its_own_code() {
        let kinds = [
            IngestFailure::Malformed,
            IngestFailure::RawDelivery,
            IngestFailure::Forbidden(ForbiddenReason::Verification(RejectReason::BadSignature)),
            IngestFailure::Forbidden(ForbiddenReason::TopicNotAllowed),
            IngestFailure::Forbidden(ForbiddenReason::MessageTooOld),
            IngestFailure::Forbidden(ForbiddenReason::UntrustedSubscribeUrl),
            IngestFailure::ConfirmationRefused,
            IngestFailure::Unavailable(Dependency::Certificate),
            IngestFailure::Unavailable(Dependency::Store),
            IngestFailure::Unavailable(Dependency::SubscriptionConfirmation),
        ];

        let codes: std::collections::HashSet<_> = kinds.iter().map(|k| k.code()).collect();

        assert_eq!(codes.len(), kinds.len(), "{codes:?}");
    }

    #[tokio::test]
    async fn ready_is_the_stores_health_check() {
        let mut store = MockEventStore::new();
        store
            .expect_health_check()
            .times(1)
            .returning(|| Err(StoreError::Failed("2 migration(s) pending".into())));
        let service = IngestService::new(
            Arc::new(MockMessageVerifier::new()),
            Arc::new(store),
            Arc::new(MockSubscriptionConfirmer::new()),
            Arc::new(crate::ports::SystemClock),
            IngestPolicy::default(),
        );

        let error = service.ready().await.unwrap_err();

        assert_eq!(error, StoreError::Failed("2 migration(s) pending".into()));
    }

    #[tokio::test]
    async fn without_auto_confirm_the_subscription_stays_pending() {
        let mut ports = Ports::verifying(sns(SnsMessageType::SubscriptionConfirmation, "..."));
        ports
            .store
            .expect_record_subscription()
            .withf(|_, change| change.state == SubscriptionState::Pending)
            .times(1)
            .returning(|_, _| Ok(()));
        ports.confirmer.expect_confirm().times(0);

        let outcome = ports
            .service(IngestPolicy::default())
            .ingest(b"{}".to_vec())
            .await
            .unwrap();

        assert!(!outcome.subscription_confirmed);
    }

    #[tokio::test]
    async fn unsubscribe_confirmation_is_recorded_and_never_visited() {
        let mut ports = Ports::verifying(sns(SnsMessageType::UnsubscribeConfirmation, "..."));
        ports
            .store
            .expect_record_subscription()
            .withf(|_, change| change.state == SubscriptionState::Unsubscribed)
            .times(1)
            .returning(|_, _| Ok(()));
        ports.confirmer.expect_confirm().times(0);
        let policy = IngestPolicy {
            auto_confirm: true,
            ..IngestPolicy::default()
        };

        let outcome = ports.service(policy).ingest(b"{}".to_vec()).await.unwrap();

        assert!(!outcome.subscription_confirmed);
        assert_eq!(
            outcome.message_type,
            SnsMessageType::UnsubscribeConfirmation
        );
    }

    fn queued(body: &[u8]) -> QueuedMessage {
        QueuedMessage {
            body: body.to_vec(),
            raw: None,
        }
    }

    fn raw_origin() -> RawOrigin {
        RawOrigin {
            message_id: "sqs-ses-events-raw-8b1f".into(),
            source_arn: "arn:aws:sqs:us-east-1:123456789012:ses-events-raw".into(),
            sent_at: sent_at(),
        }
    }

    fn verifier_refusing_raw() -> MockMessageVerifier {
        let mut verifier = MockMessageVerifier::new();
        verifier.expect_verify().times(1).returning(|_| {
            Err(VerifyFailure::RawDelivery(
                "raw message delivery is enabled".into(),
            ))
        });
        verifier
    }

    #[tokio::test]
    async fn a_queued_notification_is_stored_as_one_over_http_is() {
        let message = sns(
            SnsMessageType::Notification,
            &delivery_to(&["a@example.com"]),
        );
        let mut ports = Ports::verifying(message);
        ports
            .store
            .expect_store_notification()
            .withf(|archived, events| {
                archived.sns_message_id == "5bd1d1b3-3ea8-5a6e-8a3c-4c1c1d5d3e2f"
                    && archived.topic_arn == TOPIC
                    && events.len() == 1
            })
            .times(1)
            .returning(|_, _| Ok(report(1, 0)));

        let outcome = ports
            .service(IngestPolicy::default())
            .ingest_queued(queued(b"{}"))
            .await
            .unwrap();

        assert_eq!((outcome.processed, outcome.duplicates), (1, 0));
        assert_eq!(outcome.event_type, Some(EventType::Delivered));
    }

    #[tokio::test]
    async fn a_queued_subscription_confirmation_is_archived_never_visited_nor_made_state() {
        let mut ports = Ports::verifying(sns(SnsMessageType::SubscriptionConfirmation, "..."));
        ports
            .store
            .expect_store_notification()
            .withf(|archived, events| {
                archived.outcome == MessageOutcome::Subscription
                    && archived.message_type == SnsMessageType::SubscriptionConfirmation
                    && events.is_empty()
            })
            .times(1)
            .returning(|_, _| Ok(report(0, 0)));
        ports.store.expect_record_subscription().times(0);
        ports.store.expect_change_subscription().times(0);
        ports.confirmer.expect_confirm().times(0);
        let policy = IngestPolicy {
            auto_confirm: true,
            ..IngestPolicy::default()
        };

        let outcome = ports
            .service(policy)
            .ingest_queued(queued(b"{}"))
            .await
            .unwrap();

        assert!(!outcome.subscription_confirmed);
        assert_eq!(outcome.outcome, MessageOutcome::Subscription);
    }

    #[tokio::test]
    async fn a_queued_message_from_a_topic_not_allowed_is_forbidden_and_not_stored() {
        let ports = Ports::verifying(sns(
            SnsMessageType::Notification,
            &delivery_to(&["a@example.com"]),
        ));
        let policy = IngestPolicy {
            allowed_topic_arns: vec!["arn:aws:sns:us-east-1:123456789012:other".into()],
            ..IngestPolicy::default()
        };

        let error = ports
            .service(policy)
            .ingest_queued(queued(b"{}"))
            .await
            .unwrap_err();

        assert_eq!(
            error.kind(),
            IngestFailure::Forbidden(ForbiddenReason::TopicNotAllowed)
        );
    }

    #[tokio::test]
    async fn a_bare_ses_record_on_a_queue_not_raw_is_refused_and_not_stored() {
        let ports = Ports::with_verifier(verifier_refusing_raw());

        let error = ports
            .service(IngestPolicy::default())
            .ingest_queued(queued(delivery_to(&["a@example.com"]).as_bytes()))
            .await
            .unwrap_err();

        assert_eq!(error.kind(), IngestFailure::RawDelivery);
        assert!(!error.kind().is_transient());
    }

    #[tokio::test]
    async fn a_bare_ses_record_on_a_raw_queue_is_stored_under_its_origin() {
        let record = delivery_to(&["a@example.com", "b@example.com"]);
        let mut ports = Ports::with_verifier(verifier_refusing_raw());
        let expected_body = record.clone();
        ports
            .store
            .expect_store_notification()
            .withf(move |archived, events| {
                archived.sns_message_id == "sqs-ses-events-raw-8b1f"
                    && archived.topic_arn == "arn:aws:sqs:us-east-1:123456789012:ses-events-raw"
                    && archived.sns_timestamp == sent_at()
                    && archived.raw_body == expected_body
                    && archived.ses_type.as_deref() == Some("Delivery")
                    && events.len() == 2
            })
            .times(1)
            .returning(|_, _| Ok(report(2, 0)));
        // The topic allow-list names topics; a raw record names none, and the queue vouches.
        let policy = IngestPolicy {
            allowed_topic_arns: vec![TOPIC.into()],
            ..IngestPolicy::default()
        };

        let outcome = ports
            .service(policy)
            .ingest_queued(QueuedMessage {
                body: record.into_bytes(),
                raw: Some(raw_origin()),
            })
            .await
            .unwrap();

        assert_eq!(outcome.processed, 2);
        assert_eq!(outcome.message_id, "sqs-ses-events-raw-8b1f");
    }

    #[tokio::test]
    async fn an_envelope_on_a_raw_queue_is_still_verified() {
        let mut verifier = MockMessageVerifier::new();
        verifier.expect_verify().times(1).returning(|_| {
            Err(VerifyFailure::Rejected {
                reason: RejectReason::BadSignature,
                detail: "signature does not match".into(),
            })
        });
        let ports = Ports::with_verifier(verifier);

        let error = ports
            .service(IngestPolicy::default())
            .ingest_queued(QueuedMessage {
                body: b"{\"Type\":\"Notification\"}".to_vec(),
                raw: Some(raw_origin()),
            })
            .await
            .unwrap_err();

        assert_eq!(
            error.kind(),
            IngestFailure::Forbidden(ForbiddenReason::Verification(RejectReason::BadSignature))
        );
    }
}
