//! Owned row values built from domain types, so the database work can move to a blocking thread.
//!
//! `None` is written as `NULL` (`treat_none_as_default_value = false`), never as SQL `DEFAULT`:
//! SQLite has no `DEFAULT` keyword, so diesel inserts a batch of rows with one statement only when
//! no value can be `DEFAULT` (else one statement per row). Every nullable column defaults to `NULL` anyway.
//!
//! The message and event rows also serialise to JSON objects keyed by column name: on PostgreSQL a
//! batch of them is written with one statement that reads its rows from two JSON arrays
//! (`statements::PgWriteBatch`).

use diesel::prelude::*;
use domain::PlatformEvent;
use domain::ports::{ArchivedMessage, SubscriptionChange, SubscriptionState};
use serde::Serialize;

use crate::schema::{email_events, sns_messages, sns_subscriptions};
use crate::sql_types::{JsonParam, TimeParam};

/// A row of `sns_messages` to insert.
#[derive(Debug, Clone, Insertable, Serialize)]
#[diesel(table_name = sns_messages, treat_none_as_default_value = false)]
pub(crate) struct NewSnsMessage {
    pub sns_message_id: String,
    pub message_type: &'static str,
    pub topic_arn: String,
    pub sns_timestamp: TimeParam,
    pub received_at: TimeParam,
    pub ses_type: Option<String>,
    pub outcome: &'static str,
    pub error_count: i32,
    pub error_detail: Option<String>,
    pub raw_body: Option<String>,
    pub events_stored: i32,
}

impl From<&ArchivedMessage> for NewSnsMessage {
    fn from(message: &ArchivedMessage) -> Self {
        Self {
            sns_message_id: storable(&message.sns_message_id),
            message_type: message.message_type.as_str(),
            topic_arn: storable(&message.topic_arn),
            sns_timestamp: TimeParam(message.sns_timestamp),
            received_at: TimeParam(message.received_at),
            ses_type: storable_opt(message.ses_type.as_deref()),
            outcome: message.outcome.as_str(),
            error_count: saturating_i32(u64::from(message.error_count)),
            error_detail: storable_opt(message.error_detail.as_deref()),
            // Verified JSON, which cannot hold a NUL character: kept exactly as received.
            raw_body: Some(message.raw_body.clone()),
            events_stored: 0,
        }
    }
}

/// A row of `email_events` to insert.
#[derive(Debug, Clone, Insertable, Serialize)]
#[diesel(table_name = email_events, treat_none_as_default_value = false)]
pub(crate) struct NewEmailEvent {
    pub event_key: String,
    pub event_type: &'static str,
    pub recipient: Option<String>,
    pub bounce_type: Option<&'static str>,
    pub ses_message_id: String,
    pub sns_message_id: String,
    pub event_time: TimeParam,
    pub mail_time: Option<TimeParam>,
    pub source: Option<String>,
    pub subject: Option<String>,
    pub ses_bounce_type: Option<String>,
    pub bounce_subtype: Option<String>,
    pub bounce_action: Option<String>,
    pub bounce_status: Option<String>,
    pub diagnostic_code: Option<String>,
    pub feedback_id: Option<String>,
    pub complaint_feedback_type: Option<String>,
    pub complaint_subtype: Option<String>,
    pub smtp_response: Option<String>,
    pub reporting_mta: Option<String>,
    pub remote_mta_ip: Option<String>,
    pub processing_time_ms: Option<i64>,
    pub link: Option<String>,
    pub link_tags: Option<JsonParam>,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    pub tags: Option<JsonParam>,
}

impl NewEmailEvent {
    pub(crate) fn new(event: &PlatformEvent, sns_message_id: &str) -> Self {
        Self {
            event_key: storable(&event.event_key),
            event_type: event.event_type.as_str(),
            recipient: storable_opt(event.recipient.as_deref()),
            bounce_type: event.bounce_type.map(|b| b.as_str()),
            ses_message_id: storable(&event.ses_message_id),
            sns_message_id: storable(sns_message_id),
            event_time: TimeParam(event.event_time),
            mail_time: event.mail_time.map(TimeParam),
            source: storable_opt(event.source.as_deref()),
            subject: storable_opt(event.subject.as_deref()),
            ses_bounce_type: storable_opt(event.ses_bounce_type.as_deref()),
            bounce_subtype: storable_opt(event.bounce_subtype.as_deref()),
            bounce_action: storable_opt(event.action.as_deref()),
            bounce_status: storable_opt(event.status.as_deref()),
            diagnostic_code: storable_opt(event.diagnostic_code.as_deref()),
            feedback_id: storable_opt(event.feedback_id.as_deref()),
            complaint_feedback_type: storable_opt(event.complaint_feedback_type.as_deref()),
            complaint_subtype: storable_opt(event.complaint_subtype.as_deref()),
            smtp_response: storable_opt(event.smtp_response.as_deref()),
            reporting_mta: storable_opt(event.reporting_mta.as_deref()),
            remote_mta_ip: storable_opt(event.remote_mta_ip.as_deref()),
            processing_time_ms: event.processing_time_millis,
            link: storable_opt(event.link.as_deref()),
            link_tags: event
                .link_tags
                .as_ref()
                .map(|value| JsonParam(storable_json(value))),
            user_agent: storable_opt(event.user_agent.as_deref()),
            ip_address: storable_opt(event.ip_address.as_deref()),
            tags: event
                .tags
                .as_ref()
                .map(|value| JsonParam(storable_json(value))),
        }
    }
}

/// A row of `sns_subscriptions` carrying one subscription change, with the state times it sets.
/// As an upsert, `created_at` only counts when the topic is new.
#[derive(Debug, Insertable)]
#[diesel(table_name = sns_subscriptions, treat_none_as_default_value = false)]
pub(crate) struct SubscriptionUpsert {
    pub topic_arn: String,
    pub state: &'static str,
    pub subscribe_url: Option<String>,
    pub created_at: TimeParam,
    pub updated_at: TimeParam,
    pub confirmed_at: Option<TimeParam>,
    pub unsubscribed_at: Option<TimeParam>,
}

impl From<&SubscriptionChange> for SubscriptionUpsert {
    fn from(change: &SubscriptionChange) -> Self {
        let at = TimeParam(change.at);
        Self {
            topic_arn: storable(&change.topic_arn),
            state: change.state.as_str(),
            subscribe_url: storable_opt(change.subscribe_url.as_deref()),
            created_at: at,
            updated_at: at,
            confirmed_at: (change.state == SubscriptionState::Confirmed).then_some(at),
            unsubscribed_at: (change.state == SubscriptionState::Unsubscribed).then_some(at),
        }
    }
}

/// Text as stored: PostgreSQL's `TEXT` and `JSONB` cannot hold U+0000 (NUL), which a remote mail
/// server's diagnostic text may carry; refusing the row would lose the event for good, so NUL is
/// stored as U+FFFD (the replacement character), on both backends alike.
pub(crate) fn storable(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

fn storable_opt(text: Option<&str>) -> Option<String> {
    text.map(storable)
}

/// [`storable`] for every string and object key of a JSON document.
fn storable_json(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) => Value::String(storable(text)),
        Value::Array(items) => Value::Array(items.iter().map(storable_json).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, field)| (storable(key), storable_json(field)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Counts are stored as `INTEGER`; a count beyond it is stored as `i32::MAX`.
pub(crate) fn saturating_i32(value: impl TryInto<i32>) -> i32 {
    value.try_into().unwrap_or(i32::MAX)
}
