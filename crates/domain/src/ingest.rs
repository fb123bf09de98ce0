//! The ingest use case: one SNS delivery in, verified, authorised, mapped and committed.

use std::sync::Arc;
use std::time::Duration;

use crate::mapping::{self, MappedKind};
use crate::ports::{
    ArchivedMessage, Clock, ConfirmError, EventStore, MessageOutcome, MessageVerifier,
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

/// Why a message was refused (HTTP 403).
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

/// Why a delivery was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// Not an SNS message at all. Final.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// Not authentic or not authorised. Final; nothing was stored.
    #[error("forbidden ({}): {detail}", reason.as_str())]
    Forbidden {
        reason: ForbiddenReason,
        detail: String,
    },
    /// Could not be completed now; nothing was acknowledged, SNS should retry.
    #[error("unavailable ({}): {detail}", dependency.as_str())]
    Unavailable {
        dependency: Dependency,
        detail: String,
    },
}

impl IngestError {
    /// Stable machine-readable code, used in error bodies, logs and metrics.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed_message",
            Self::Forbidden { reason, .. } => reason.as_str(),
            Self::Unavailable { dependency, .. } => dependency.as_str(),
        }
    }
}

impl From<VerifyFailure> for IngestError {
    fn from(failure: VerifyFailure) -> Self {
        match failure {
            VerifyFailure::Malformed(detail) => Self::Malformed(detail),
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

/// What an acknowledged delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    pub message_type: SnsMessageType,
    pub message_id: String,
    pub topic_arn: String,
    pub outcome: MessageOutcome,
    pub ses_type: Option<String>,
    /// Platform events newly stored.
    pub processed: usize,
    /// Platform events that were already stored.
    pub duplicates: usize,
    /// SES records or recipients that were recognised but could not become events.
    pub errors: usize,
    pub subscription_confirmed: bool,
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

    /// The store behind this service, for readiness checks.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Handles one SNS delivery. `Ok` means everything it carried is committed.
    ///
    /// # Errors
    /// See [`IngestError`]: malformed (final), forbidden (final, nothing stored) or unavailable
    /// (nothing acknowledged; SNS should retry).
    pub async fn ingest(&self, body: &[u8]) -> Result<IngestOutcome, IngestError> {
        let message = self.verifier.verify(body).await?;
        self.authorise(&message)?;
        match message.message_type {
            SnsMessageType::Notification => self.notification(message).await,
            SnsMessageType::SubscriptionConfirmation => self.subscription(message).await,
            SnsMessageType::UnsubscribeConfirmation => self.unsubscribe(message).await,
        }
    }

    fn authorise(&self, message: &SnsMessage) -> Result<(), IngestError> {
        if !self.policy.topic_allowed(&message.topic_arn) {
            return Err(IngestError::Forbidden {
                reason: ForbiddenReason::TopicNotAllowed,
                detail: format!("topic {} is not in sns.allowed_topic_arns", message.topic_arn),
            });
        }
        if let Some(max_age) = self.policy.max_message_age {
            let age = self.clock.now() - message.timestamp;
            let too_old = age
                .to_std()
                .is_ok_and(|age| age > max_age);
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

    fn archive(&self, message: &SnsMessage, outcome: MessageOutcome) -> ArchivedMessage {
        ArchivedMessage {
            sns_message_id: message.message_id.clone(),
            message_type: message.message_type,
            topic_arn: message.topic_arn.clone(),
            sns_timestamp: message.timestamp,
            received_at: self.clock.now(),
            ses_type: None,
            outcome,
            error_count: 0,
            error_detail: None,
            raw_body: message.raw.clone(),
        }
    }

    async fn notification(&self, message: SnsMessage) -> Result<IngestOutcome, IngestError> {
        let mapped = mapping::map_message(&message.message);
        let outcome = match mapped.kind {
            MappedKind::NotSes => MessageOutcome::NotSes,
            MappedKind::NoPlatformEvent => MessageOutcome::NoEvents,
            MappedKind::Events if mapped.events.is_empty() => MessageOutcome::Failed,
            MappedKind::Events => MessageOutcome::Processed,
        };
        let mut archived = self.archive(&message, outcome);
        archived.ses_type.clone_from(&mapped.ses_type);
        archived.error_count = u32::try_from(mapped.errors.len()).unwrap_or(u32::MAX);
        if !mapped.errors.is_empty() {
            archived.error_detail = Some(mapped.errors.join("; "));
        }
        let report = self
            .store
            .store_notification(&archived, &mapped.events)
            .await?;
        Ok(IngestOutcome {
            message_type: message.message_type,
            message_id: message.message_id,
            topic_arn: message.topic_arn,
            outcome,
            ses_type: mapped.ses_type,
            processed: report.events_inserted,
            duplicates: report.events_duplicate,
            errors: mapped.errors.len(),
            subscription_confirmed: false,
        })
    }

    async fn subscription(&self, message: SnsMessage) -> Result<IngestOutcome, IngestError> {
        let archived = self.archive(&message, MessageOutcome::Subscription);
        let pending = SubscriptionChange {
            topic_arn: message.topic_arn.clone(),
            state: SubscriptionState::Pending,
            subscribe_url: message.subscribe_url.clone(),
            at: self.clock.now(),
        };
        self.store.record_subscription(&archived, &pending).await?;
        let mut confirmed = false;
        if self.policy.auto_confirm {
            self.confirmer
                .confirm(&message)
                .await
                .map_err(|error| match error {
                    ConfirmError::UntrustedUrl(detail) => IngestError::Forbidden {
                        reason: ForbiddenReason::UntrustedSubscribeUrl,
                        detail,
                    },
                    ConfirmError::Failed(detail) => IngestError::Unavailable {
                        dependency: Dependency::SubscriptionConfirmation,
                        detail,
                    },
                })?;
            let change = SubscriptionChange {
                topic_arn: message.topic_arn.clone(),
                state: SubscriptionState::Confirmed,
                subscribe_url: None,
                at: self.clock.now(),
            };
            self.store.record_subscription(&archived, &change).await?;
            confirmed = true;
        } else {
            tracing::warn!(
                topic_arn = %message.topic_arn,
                subscribe_url = message.subscribe_url.as_deref().unwrap_or_default(),
                "subscription left pending because sns.auto_confirm is off; visit the SubscribeURL to confirm it"
            );
        }
        Ok(Self::subscription_outcome(message, confirmed))
    }

    async fn unsubscribe(&self, message: SnsMessage) -> Result<IngestOutcome, IngestError> {
        let archived = self.archive(&message, MessageOutcome::Subscription);
        let change = SubscriptionChange {
            topic_arn: message.topic_arn.clone(),
            state: SubscriptionState::Unsubscribed,
            subscribe_url: None,
            at: self.clock.now(),
        };
        self.store.record_subscription(&archived, &change).await?;
        Ok(Self::subscription_outcome(message, false))
    }

    fn subscription_outcome(message: SnsMessage, confirmed: bool) -> IngestOutcome {
        IngestOutcome {
            message_type: message.message_type,
            message_id: message.message_id,
            topic_arn: message.topic_arn,
            outcome: MessageOutcome::Subscription,
            ses_type: None,
            processed: 0,
            duplicates: 0,
            errors: 0,
            subscription_confirmed: confirmed,
        }
    }
}
