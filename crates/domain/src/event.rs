//! The platform's own email events: the product contract.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The platform event types. Their names are part of the data contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum EventType {
    #[serde(rename = "email_delivered")]
    Delivered,
    #[serde(rename = "email_bounce")]
    Bounce,
    #[serde(rename = "email_spam_report")]
    SpamReport,
    #[serde(rename = "email_open")]
    Open,
    #[serde(rename = "email_click")]
    Click,
}

impl EventType {
    pub const ALL: [Self; 5] = [
        Self::Delivered,
        Self::Bounce,
        Self::SpamReport,
        Self::Open,
        Self::Click,
    ];

    /// The stored name, for example `email_bounce`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "email_delivered",
            Self::Bounce => "email_bounce",
            Self::SpamReport => "email_spam_report",
            Self::Open => "email_open",
            Self::Click => "email_click",
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bounce classification: SES `Permanent` is hard; `Transient` and `Undetermined` are soft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BounceClass {
    Hard,
    Soft,
}

impl BounceClass {
    /// Classifies an SES `bounceType`. Unknown or missing types are soft: a hard bounce
    /// suppresses the address for good, so only an explicit `Permanent` earns it.
    #[must_use]
    pub fn from_ses_bounce_type(bounce_type: Option<&str>) -> Self {
        match bounce_type {
            Some(t) if t.eq_ignore_ascii_case("Permanent") => Self::Hard,
            _ => Self::Soft,
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hard => "hard",
            Self::Soft => "soft",
        }
    }
}

/// One platform event, ready to be stored. [`crate::mapping`] builds them from SES records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlatformEvent {
    /// Deterministic key derived from the SES payload alone, so that the same SES event arriving
    /// twice (SNS retry, or both notification formats enabled) is stored once.
    pub event_key: String,
    pub event_type: EventType,
    /// The bare address (`john@example.com`, display name removed). `None` for opens and
    /// clicks of messages sent to more than one recipient.
    pub recipient: Option<String>,
    pub bounce_type: Option<BounceClass>,
    /// SES `mail.messageId`.
    pub ses_message_id: String,
    /// When the event happened, from the SES record.
    pub event_time: DateTime<Utc>,
    /// SES `mail.timestamp`: when the message was sent.
    pub mail_time: Option<DateTime<Utc>>,
    /// SES `mail.source`.
    pub source: Option<String>,
    /// `mail.commonHeaders.subject`, when SES sent it.
    pub subject: Option<String>,
    /// SES `bounceType` as received (`Permanent`, `Transient`, `Undetermined`).
    pub ses_bounce_type: Option<String>,
    pub bounce_subtype: Option<String>,
    /// Bounced recipient `action` (`failed`, `delayed`, ...).
    pub action: Option<String>,
    /// Bounced recipient enhanced status code (`5.1.1`).
    pub status: Option<String>,
    pub diagnostic_code: Option<String>,
    /// Bounce or complaint `feedbackId`.
    pub feedback_id: Option<String>,
    pub complaint_feedback_type: Option<String>,
    pub complaint_subtype: Option<String>,
    pub smtp_response: Option<String>,
    pub reporting_mta: Option<String>,
    pub remote_mta_ip: Option<String>,
    pub processing_time_millis: Option<i64>,
    pub link: Option<String>,
    pub link_tags: Option<serde_json::Value>,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    /// `mail.tags` (event publishing only), as a JSON object of string arrays.
    pub tags: Option<serde_json::Value>,
}

impl PlatformEvent {
    /// An event of `event_type` for the sent message `ses_message_id`, at `event_time`, with no
    /// key yet (the mapping derives it from the finished event) and every optional field empty.
    #[must_use]
    pub fn new(event_type: EventType, ses_message_id: &str, event_time: DateTime<Utc>) -> Self {
        Self {
            event_key: String::new(),
            event_type,
            recipient: None,
            bounce_type: None,
            ses_message_id: ses_message_id.to_owned(),
            event_time,
            mail_time: None,
            source: None,
            subject: None,
            ses_bounce_type: None,
            bounce_subtype: None,
            action: None,
            status: None,
            diagnostic_code: None,
            feedback_id: None,
            complaint_feedback_type: None,
            complaint_subtype: None,
            smtp_response: None,
            reporting_mta: None,
            remote_mta_ip: None,
            processing_time_millis: None,
            link: None,
            link_tags: None,
            user_agent: None,
            ip_address: None,
            tags: None,
        }
    }
}
