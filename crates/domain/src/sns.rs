//! A verified Amazon SNS message, as the domain sees it.

use chrono::{DateTime, Utc};

/// The three kinds of message SNS delivers to an HTTP(S) endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnsMessageType {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

impl SnsMessageType {
    /// The name SNS uses in the `Type` field.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Notification => "Notification",
            Self::SubscriptionConfirmation => "SubscriptionConfirmation",
            Self::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }
}

impl std::fmt::Display for SnsMessageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An SNS message whose signature has been verified. Every field here was covered by the
/// signature; unsigned parts of the request (headers, `MessageAttributes`) never reach the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsMessage {
    pub message_type: SnsMessageType,
    pub message_id: String,
    pub topic_arn: String,
    /// `Timestamp`, parsed.
    pub timestamp: DateTime<Utc>,
    pub subject: Option<String>,
    /// `Message`: for SES notifications, JSON text to be parsed a second time.
    pub message: String,
    /// Only for subscription and unsubscribe confirmations.
    pub subscribe_url: Option<String>,
    /// Only for subscription and unsubscribe confirmations.
    pub token: Option<String>,
    /// The request body exactly as received, archived so it can be verified and processed again.
    pub raw: String,
}
