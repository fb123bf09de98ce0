//! Owned row values built from domain types, so the database work can move to a blocking thread.
//!
//! `None` is written as `NULL` (`treat_none_as_default_value = false`), never as SQL `DEFAULT`:
//! SQLite has no `DEFAULT` keyword, so diesel inserts a batch of rows with one statement only when
//! no value can be `DEFAULT` (else one statement per row). Every nullable column defaults to `NULL` anyway.
//!
//! The message and event rows also serialise to JSON objects keyed by column name: on PostgreSQL a
//! batch of them is written with one statement that reads its rows from two JSON arrays
//! (`statements::pg_write_batch`).

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
            sns_message_id: message.sns_message_id.clone(),
            message_type: message.message_type.as_str(),
            topic_arn: message.topic_arn.clone(),
            sns_timestamp: TimeParam(message.sns_timestamp),
            received_at: TimeParam(message.received_at),
            ses_type: message.ses_type.clone(),
            outcome: message.outcome.as_str(),
            error_count: saturating_i32(u64::from(message.error_count)),
            error_detail: message.error_detail.clone(),
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
            event_key: event.event_key.clone(),
            event_type: event.event_type.as_str(),
            recipient: event.recipient.clone(),
            bounce_type: event.bounce_type.map(|b| b.as_str()),
            ses_message_id: event.ses_message_id.clone(),
            sns_message_id: sns_message_id.to_owned(),
            event_time: TimeParam(event.event_time),
            mail_time: event.mail_time.map(TimeParam),
            source: event.source.clone(),
            subject: event.subject.clone(),
            ses_bounce_type: event.ses_bounce_type.clone(),
            bounce_subtype: event.bounce_subtype.clone(),
            bounce_action: event.action.clone(),
            bounce_status: event.status.clone(),
            diagnostic_code: event.diagnostic_code.clone(),
            feedback_id: event.feedback_id.clone(),
            complaint_feedback_type: event.complaint_feedback_type.clone(),
            complaint_subtype: event.complaint_subtype.clone(),
            smtp_response: event.smtp_response.clone(),
            reporting_mta: event.reporting_mta.clone(),
            remote_mta_ip: event.remote_mta_ip.clone(),
            processing_time_ms: event.processing_time_millis,
            link: event.link.clone(),
            link_tags: event.link_tags.clone().map(JsonParam),
            user_agent: event.user_agent.clone(),
            ip_address: event.ip_address.clone(),
            tags: event.tags.clone().map(JsonParam),
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
            topic_arn: change.topic_arn.clone(),
            state: change.state.as_str(),
            subscribe_url: change.subscribe_url.clone(),
            created_at: at,
            updated_at: at,
            confirmed_at: (change.state == SubscriptionState::Confirmed).then_some(at),
            unsubscribed_at: (change.state == SubscriptionState::Unsubscribed).then_some(at),
        }
    }
}

/// Counts are stored as `INTEGER`; a count beyond it is stored as `i32::MAX`.
pub(crate) fn saturating_i32(value: impl TryInto<i32>) -> i32 {
    value.try_into().unwrap_or(i32::MAX)
}
