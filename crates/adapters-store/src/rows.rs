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
    pub ses_message_id: Option<String>,
}

/// Moves every value out of the archived message: the raw body (up to the body size limit)
/// becomes the row's without a copy.
impl From<ArchivedMessage> for NewSnsMessage {
    fn from(message: ArchivedMessage) -> Self {
        Self {
            sns_message_id: storable(message.sns_message_id),
            message_type: message.message_type.as_str(),
            topic_arn: storable(message.topic_arn),
            sns_timestamp: TimeParam(message.sns_timestamp),
            received_at: TimeParam(message.received_at),
            ses_type: message.ses_type.map(storable),
            outcome: message.outcome.as_str(),
            error_count: saturating_i32(u64::from(message.error_count)),
            error_detail: message.error_detail.map(storable),
            // Verified JSON, which cannot hold a NUL character: kept exactly as received.
            raw_body: Some(message.raw_body),
            events_stored: 0,
            ses_message_id: message.ses_message_id.map(storable),
        }
    }
}

impl NewSnsMessage {
    /// This row with `events_stored` set, borrowing every value (the raw body included) instead
    /// of copying it: how the SQLite batch archives its messages once it knows the counts.
    pub(crate) fn counted(&self, events_stored: i32) -> CountedSnsMessage<'_> {
        CountedSnsMessage {
            sns_message_id: &self.sns_message_id,
            message_type: self.message_type,
            topic_arn: &self.topic_arn,
            sns_timestamp: self.sns_timestamp,
            received_at: self.received_at,
            ses_type: self.ses_type.as_deref(),
            outcome: self.outcome,
            error_count: self.error_count,
            error_detail: self.error_detail.as_deref(),
            raw_body: self.raw_body.as_deref(),
            events_stored,
            ses_message_id: self.ses_message_id.as_deref(),
        }
    }
}

/// A row of `sns_messages` borrowed from a [`NewSnsMessage`], with its own `events_stored`.
#[derive(Debug, Insertable)]
#[diesel(table_name = sns_messages, treat_none_as_default_value = false)]
pub(crate) struct CountedSnsMessage<'a> {
    pub sns_message_id: &'a str,
    pub message_type: &'static str,
    pub topic_arn: &'a str,
    pub sns_timestamp: TimeParam,
    pub received_at: TimeParam,
    pub ses_type: Option<&'a str>,
    pub outcome: &'static str,
    pub error_count: i32,
    pub error_detail: Option<&'a str>,
    pub raw_body: Option<&'a str>,
    pub events_stored: i32,
    pub ses_message_id: Option<&'a str>,
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
    /// [`domain::suppression::address_key`] of `recipient`.
    pub recipient_key: Option<String>,
}

impl NewEmailEvent {
    /// The first value of the `ses:configuration-set` mail tag, as the counts group by it.
    pub(crate) fn configuration_set(&self) -> Option<&str> {
        self.tags
            .as_ref()?
            .0
            .get(domain::history::CONFIGURATION_SET_TAG)?
            .get(0)?
            .as_str()
            .filter(|name| domain::reputation::is_configuration_set_name(name))
    }

    /// Moves every value out of `event`.
    pub(crate) fn new(event: PlatformEvent, sns_message_id: &str) -> Self {
        Self {
            event_key: storable(event.event_key),
            event_type: event.event_type.as_str(),
            recipient_key: event
                .recipient
                .as_deref()
                .map(|r| storable(domain::suppression::address_key(r))),
            recipient: event.recipient.map(storable),
            bounce_type: event.bounce_type.map(|b| b.as_str()),
            ses_message_id: storable(event.ses_message_id),
            sns_message_id: storable(sns_message_id.to_owned()),
            event_time: TimeParam(event.event_time),
            mail_time: event.mail_time.map(TimeParam),
            source: event.source.map(storable),
            subject: event.subject.map(storable),
            ses_bounce_type: event.ses_bounce_type.map(storable),
            bounce_subtype: event.bounce_subtype.map(storable),
            bounce_action: event.action.map(storable),
            bounce_status: event.status.map(storable),
            diagnostic_code: event.diagnostic_code.map(storable),
            feedback_id: event.feedback_id.map(storable),
            complaint_feedback_type: event.complaint_feedback_type.map(storable),
            complaint_subtype: event.complaint_subtype.map(storable),
            smtp_response: event.smtp_response.map(storable),
            reporting_mta: event.reporting_mta.map(storable),
            remote_mta_ip: event.remote_mta_ip.map(storable),
            processing_time_ms: event.processing_time_millis,
            link: event.link.map(storable),
            link_tags: event.link_tags.map(|value| JsonParam(storable_json(value))),
            user_agent: event.user_agent.map(storable),
            ip_address: event.ip_address.map(storable),
            tags: event.tags.map(|value| JsonParam(storable_json(value))),
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

impl From<SubscriptionChange> for SubscriptionUpsert {
    fn from(change: SubscriptionChange) -> Self {
        let at = TimeParam(change.at);
        Self {
            topic_arn: storable(change.topic_arn),
            state: change.state.as_str(),
            subscribe_url: change.subscribe_url.map(storable),
            created_at: at,
            updated_at: at,
            confirmed_at: (change.state == SubscriptionState::Confirmed).then_some(at),
            unsubscribed_at: (change.state == SubscriptionState::Unsubscribed).then_some(at),
        }
    }
}

/// Text as stored: PostgreSQL's `TEXT` and `JSONB` cannot hold U+0000 (NUL), which a remote mail
/// server's diagnostic text may carry; refusing the row would lose the event for good, so NUL is
/// stored as U+FFFD (the replacement character), on both backends alike. Text without NUL (all
/// but hostile input) is moved, not copied.
pub(crate) fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

/// [`storable`] for every string and object key of a JSON document.
fn storable_json(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) => Value::String(storable(text)),
        Value::Array(items) => Value::Array(items.into_iter().map(storable_json).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, field)| (storable(key), storable_json(field)))
                .collect(),
        ),
        other => other,
    }
}

/// Counts are stored as `INTEGER`; a count beyond it is stored as `i32::MAX`.
pub(crate) fn saturating_i32(value: impl TryInto<i32>) -> i32 {
    value.try_into().unwrap_or(i32::MAX)
}
