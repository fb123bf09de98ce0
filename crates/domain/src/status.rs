//! The operator's status page: whether events are flowing, the reputation at a glance, the
//! subscriptions, and what failed lately. Never an address: [`redact_addresses`] cleans every
//! text taken from a payload.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ports::{Clock, StoreError, SubscriptionState};
use crate::reputation::{
    DailyReputation, HourlyActivity, Reputation, ReputationPolicy, ReputationQueries,
};

/// One topic subscription as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionStatus {
    pub topic_arn: String,
    pub state: SubscriptionState,
    /// When the state last changed.
    pub updated_at: DateTime<Utc>,
}

/// When a topic's last SNS `Notification` was received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicActivity {
    pub topic_arn: String,
    /// `None` when the archive holds no notification of the topic (only confirmations, or
    /// retention removed them).
    pub last_notification_at: Option<DateTime<Utc>>,
}

/// An archived message that could not become events (outcome `failed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedMessage {
    pub received_at: DateTime<Utc>,
    /// SES `eventType` or `notificationType`.
    pub ses_type: Option<String>,
    /// What went wrong (`sns_messages.error_detail`), as stored: may quote the payload, so
    /// [`StatusReport`] carries it through [`redact_addresses`].
    pub reason: Option<String>,
}

/// The most topics, and failures, the status page lists.
pub const MAX_TOPICS: usize = 100;
/// How many recent failures the status page lists.
pub const RECENT_FAILURES: usize = 20;

/// Outbound port: what the status page reads besides the counts.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait ActivityStore: Send + Sync {
    /// Every recorded subscription, by topic ARN.
    ///
    /// # Errors
    /// [`StoreError`] when they cannot be read.
    async fn subscriptions(&self) -> Result<Vec<SubscriptionStatus>, StoreError>;

    /// Up to [`MAX_TOPICS`] topics of the archive, by ARN, with their last notification.
    ///
    /// # Errors
    /// [`StoreError`] when they cannot be read.
    async fn topic_activity(&self) -> Result<Vec<TopicActivity>, StoreError>;

    /// The `limit` most recent messages with outcome `failed`, newest first.
    ///
    /// # Errors
    /// [`StoreError`] when they cannot be read.
    async fn recent_failures(&self, limit: usize) -> Result<Vec<FailedMessage>, StoreError>;
}

/// Everything the status page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    pub generated_at: DateTime<Utc>,
    /// Events per hour over the last 48 hours.
    pub hourly: HourlyActivity,
    /// Rates per day over the last 30 days.
    pub daily: DailyReputation,
    /// The reputation over the policy's default window, per configuration set.
    pub reputation: Reputation,
    pub policy: ReputationPolicy,
    pub subscriptions: Vec<SubscriptionStatus>,
    pub topics: Vec<TopicActivity>,
    /// Reasons and SES types already passed through [`redact_addresses`].
    pub failures: Vec<FailedMessage>,
}

/// Hours of the status page's events chart.
pub const STATUS_HOURS: u32 = 48;
/// Days of the status page's rates chart.
pub const STATUS_DAYS: u32 = 30;

/// Inbound port: the status page.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait StatusQueries: Send + Sync {
    /// The status page's content, read now.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    async fn status(&self) -> Result<StatusReport, StoreError>;

    /// Every topic's last notification (the silence gauge).
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    async fn topic_activity(&self) -> Result<Vec<TopicActivity>, StoreError>;
}

/// The status page's use case.
pub struct StatusService {
    reputation: Arc<dyn ReputationQueries>,
    store: Arc<dyn ActivityStore>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for StatusService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusService").finish_non_exhaustive()
    }
}

impl StatusService {
    #[must_use]
    pub fn new(
        reputation: Arc<dyn ReputationQueries>,
        store: Arc<dyn ActivityStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            reputation,
            store,
            clock,
        }
    }
}

#[async_trait]
impl StatusQueries for StatusService {
    async fn status(&self) -> Result<StatusReport, StoreError> {
        let generated_at = self.clock.now();
        let hourly = self.reputation.hourly(STATUS_HOURS).await?;
        let daily = self.reputation.daily(STATUS_DAYS, None).await?;
        let reputation = self.reputation.reputation(None, None).await?;
        let subscriptions = self.store.subscriptions().await?;
        let topics = self.store.topic_activity().await?;
        let failures = self
            .store
            .recent_failures(RECENT_FAILURES)
            .await?
            .into_iter()
            .map(|failure| FailedMessage {
                received_at: failure.received_at,
                ses_type: failure.ses_type.as_deref().map(redact_addresses),
                reason: failure.reason.as_deref().map(redact_addresses),
            })
            .collect();
        Ok(StatusReport {
            generated_at,
            hourly,
            daily,
            reputation,
            policy: self.reputation.policy(),
            subscriptions,
            topics,
            failures,
        })
    }

    async fn topic_activity(&self) -> Result<Vec<TopicActivity>, StoreError> {
        self.store.topic_activity().await
    }
}

/// `text` with every word that holds an `@` (an address, quoted or not, or anything that may
/// be one) replaced by `[address]`. Words are separated by whitespace.
#[must_use]
pub fn redact_addresses(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.contains('@') || word.contains("%40") || word.contains("&#64;") {
            out.push_str("[address]");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_whitespace() {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn words_with_an_at_sign_are_redacted() {
        assert_eq!(
            redact_addresses("Bounce record: recipient 'John <john@example.com>' has no\taddress"),
            "Bounce record: recipient 'John [address] has no\taddress"
        );
        assert_eq!(redact_addresses("a%40b.example x"), "[address] x");
        assert_eq!(redact_addresses("no addresses here"), "no addresses here");
        assert_eq!(redact_addresses(""), "");
    }
}
