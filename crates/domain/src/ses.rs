//! The SES record model for both formats: identity notifications (`notificationType`) and
//! configuration-set event publishing (`eventType`).
//!
//! The model is deliberately tolerant. SES payloads vary between the two formats, between
//! years (old mails lack `sourceArn`/`sendingAccountId`) and between the hands they passed
//! through (re-serialised, anonymised, hand-edited). So:
//!
//! - every field is an [`Option`], and unknown keys are ignored;
//! - a field whose value has an unexpected type reads as `None` (or, inside a list, as an
//!   empty entry) instead of rejecting the whole record: `"mail": 5` gives `mail: None`,
//!   `"bouncedRecipients": "x"` gives `bounced_recipients: None`, and a list entry that is not
//!   an object gives an entry whose fields are all `None`;
//! - timestamps are kept as received (strings) and parsed by [`parse_timestamp`], which accepts
//!   RFC 3339 and the non-RFC forms SES has been seen to send (`2018-10-08T14:05:45 +0000`);
//! - addresses are kept as received; [`bare_address`] strips display names.
//!
//! Only what the mapping needs, plus what is cheap, is modelled. The payloads of types with no
//! platform event (Send, Reject, DeliveryDelay, Rendering Failure, Subscription) are not.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A map of string lists, as SES sends `mail.tags` and `click.linkTags`.
pub type StringLists = BTreeMap<String, Vec<String>>;

/// One SES record: the parsed `Message` of an SNS notification sent by SES.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SesRecord {
    /// Event publishing: `Send`, `Reject`, `Bounce`, `Complaint`, `Delivery`, `Open`, `Click`,
    /// `Rendering Failure`, `DeliveryDelay`, `Subscription`.
    #[serde(default, deserialize_with = "lenient")]
    pub event_type: Option<String>,
    /// Identity notifications: `Bounce`, `Complaint`, `Delivery`,
    /// `AmazonSnsSubscriptionSucceeded`.
    #[serde(default, deserialize_with = "lenient")]
    pub notification_type: Option<String>,
    /// The original message. Absent from `AmazonSnsSubscriptionSucceeded`.
    #[serde(default, deserialize_with = "lenient_object")]
    pub mail: Option<Mail>,
    /// The `bounce` object of a Bounce record.
    #[serde(default, deserialize_with = "lenient_object")]
    pub bounce: Option<Bounce>,
    /// The `complaint` object of a Complaint record.
    #[serde(default, deserialize_with = "lenient_object")]
    pub complaint: Option<Complaint>,
    /// The `delivery` object of a Delivery record.
    #[serde(default, deserialize_with = "lenient_object")]
    pub delivery: Option<Delivery>,
    /// The `open` object of an Open record (event publishing only).
    #[serde(default, deserialize_with = "lenient_object")]
    pub open: Option<Open>,
    /// The `click` object of a Click record (event publishing only).
    #[serde(default, deserialize_with = "lenient_object")]
    pub click: Option<Click>,
    /// The `deliveryDelay` object of a `DeliveryDelay` record (event publishing only).
    #[serde(default, deserialize_with = "lenient_object")]
    pub delivery_delay: Option<DeliveryDelay>,
}

impl SesRecord {
    /// Parses an SNS `Message` as an SES record. `None` when the text is not JSON or not a JSON
    /// object; any JSON object parses (check [`SesRecord::ses_type`] to tell whether it is SES).
    ///
    /// Duplicate keys resolve to the last value, as in [`serde_json::Value`].
    #[must_use]
    pub fn from_message(message: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(message).ok()?;
        if !value.is_object() {
            return None;
        }
        Self::deserialize(value).ok()
    }

    /// The record type as received: `eventType` when present and non-empty, else
    /// `notificationType`. `None` means the JSON is not an SES record.
    #[must_use]
    pub fn ses_type(&self) -> Option<&str> {
        fn non_empty(t: Option<&str>) -> Option<&str> {
            t.filter(|t| !t.trim().is_empty())
        }
        non_empty(self.event_type.as_deref())
            .or_else(|| non_empty(self.notification_type.as_deref()))
    }
}

/// The SES record types this service knows, from [`SesRecord::ses_type`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SesType {
    /// `Send`: SES accepted the message.
    Send,
    /// `Reject`: SES refused the message (virus).
    Reject,
    /// `Bounce`.
    Bounce,
    /// `Complaint`.
    Complaint,
    /// `Delivery`.
    Delivery,
    /// `Open` (event publishing only).
    Open,
    /// `Click` (event publishing only).
    Click,
    /// `Rendering Failure`, spelled with a space.
    RenderingFailure,
    /// `DeliveryDelay` (event publishing only).
    DeliveryDelay,
    /// `Subscription`: a contact changed its list subscriptions.
    Subscription,
    /// Sent once when an identity's notification topic is set up; carries no `mail`.
    AmazonSnsSubscriptionSucceeded,
    /// A type SES may add later. Never an error.
    Unknown,
}

impl SesType {
    /// Classifies a type name exactly as SES spells it.
    #[must_use]
    pub fn parse(name: &str) -> Self {
        match name {
            "Send" => Self::Send,
            "Reject" => Self::Reject,
            "Bounce" => Self::Bounce,
            "Complaint" => Self::Complaint,
            "Delivery" => Self::Delivery,
            "Open" => Self::Open,
            "Click" => Self::Click,
            "Rendering Failure" => Self::RenderingFailure,
            "DeliveryDelay" => Self::DeliveryDelay,
            "Subscription" => Self::Subscription,
            "AmazonSnsSubscriptionSucceeded" => Self::AmazonSnsSubscriptionSucceeded,
            _ => Self::Unknown,
        }
    }
}

/// The `mail` object: the original message the event is about.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mail {
    /// When SES accepted the message, as received; see [`parse_timestamp`].
    #[serde(default, deserialize_with = "lenient")]
    pub timestamp: Option<String>,
    /// The SES message id.
    #[serde(default, deserialize_with = "lenient")]
    pub message_id: Option<String>,
    /// The envelope sender, possibly with a display name.
    #[serde(default, deserialize_with = "lenient")]
    pub source: Option<String>,
    /// Absent from old mails.
    #[serde(default, deserialize_with = "lenient")]
    pub source_arn: Option<String>,
    /// Absent from old mails.
    #[serde(default, deserialize_with = "lenient")]
    pub sending_account_id: Option<String>,
    /// The envelope recipients as received (possibly with display names). An entry that is
    /// not a string reads as `None`.
    #[serde(default, deserialize_with = "lenient_string_list")]
    pub destination: Option<Vec<Option<String>>>,
    /// Whether SES truncated `headers`.
    #[serde(default, deserialize_with = "lenient")]
    pub headers_truncated: Option<bool>,
    /// Absent when the configuration does not include headers.
    #[serde(default, deserialize_with = "lenient_object")]
    pub common_headers: Option<CommonHeaders>,
    /// Message tags (event publishing only).
    #[serde(default, deserialize_with = "lenient_string_lists")]
    pub tags: Option<StringLists>,
}

impl Mail {
    /// `timestamp`, parsed leniently.
    #[must_use]
    pub fn time(&self) -> Option<DateTime<Utc>> {
        self.timestamp.as_deref().and_then(parse_timestamp)
    }
}

/// `mail.commonHeaders`. Often partial (only `subject` in some payloads).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommonHeaders {
    /// The `Subject` header.
    #[serde(default, deserialize_with = "lenient")]
    pub subject: Option<String>,
    /// The `From` header addresses, as received.
    #[serde(default, deserialize_with = "lenient_string_list")]
    pub from: Option<Vec<Option<String>>>,
    /// The `To` header addresses, as received.
    #[serde(default, deserialize_with = "lenient_string_list")]
    pub to: Option<Vec<Option<String>>>,
    /// The `Message-ID` header (not the SES id), as received.
    #[serde(default, deserialize_with = "lenient")]
    pub message_id: Option<String>,
    /// The `Date` header, as received (RFC 2822).
    #[serde(default, deserialize_with = "lenient")]
    pub date: Option<String>,
}

/// The `bounce` object.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bounce {
    /// `Permanent`, `Transient` or `Undetermined`.
    #[serde(default, deserialize_with = "lenient")]
    pub bounce_type: Option<String>,
    /// `General`, `NoEmail`, `Suppressed`, `OnAccountSuppressionList`, `MailboxFull`, ...
    #[serde(default, deserialize_with = "lenient")]
    pub bounce_sub_type: Option<String>,
    /// The recipients that bounced; see [`BouncedRecipient`].
    #[serde(default, deserialize_with = "lenient_object_list")]
    pub bounced_recipients: Option<Vec<BouncedRecipient>>,
    /// When the bounce happened, as received; see [`parse_timestamp`].
    #[serde(default, deserialize_with = "lenient")]
    pub timestamp: Option<String>,
    /// Unique id of this bounce.
    #[serde(default, deserialize_with = "lenient")]
    pub feedback_id: Option<String>,
    /// `reportingMTA`: the MTA that reported the bounce (`dsn; ...`).
    #[serde(default, rename = "reportingMTA", deserialize_with = "lenient")]
    pub reporting_mta: Option<String>,
    /// IP of the remote MTA SES tried, when there was one.
    #[serde(default, deserialize_with = "lenient")]
    pub remote_mta_ip: Option<String>,
}

/// One `bouncedRecipients[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BouncedRecipient {
    /// As received: may carry a display name (`John <john@example.com>`).
    #[serde(default, deserialize_with = "lenient")]
    pub email_address: Option<String>,
    /// `failed`, `delayed`, ... (only with a DSN).
    #[serde(default, deserialize_with = "lenient")]
    pub action: Option<String>,
    /// Enhanced status code, e.g. `5.1.1`.
    #[serde(default, deserialize_with = "lenient")]
    pub status: Option<String>,
    /// The remote MTA's diagnostic, e.g. `smtp; 550 5.1.1 user unknown`.
    #[serde(default, deserialize_with = "lenient")]
    pub diagnostic_code: Option<String>,
}

/// The `complaint` object.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Complaint {
    /// The recipients that complained; see [`ComplainedRecipient`].
    #[serde(default, deserialize_with = "lenient_object_list")]
    pub complained_recipients: Option<Vec<ComplainedRecipient>>,
    /// `abuse`, `fraud`, `not-spam`, ... (only with a feedback report).
    #[serde(default, deserialize_with = "lenient")]
    pub complaint_feedback_type: Option<String>,
    /// `null` or `OnAccountSuppressionList`.
    #[serde(default, deserialize_with = "lenient")]
    pub complaint_sub_type: Option<String>,
    /// The feedback loop that reported the complaint.
    #[serde(default, deserialize_with = "lenient")]
    pub user_agent: Option<String>,
    /// When the feedback report arrived, as received.
    #[serde(default, deserialize_with = "lenient")]
    pub arrival_date: Option<String>,
    /// When the complaint was received, as received; see [`parse_timestamp`].
    #[serde(default, deserialize_with = "lenient")]
    pub timestamp: Option<String>,
    /// Unique id of this complaint.
    #[serde(default, deserialize_with = "lenient")]
    pub feedback_id: Option<String>,
}

/// One `complainedRecipients[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComplainedRecipient {
    /// As received: may carry a display name.
    #[serde(default, deserialize_with = "lenient")]
    pub email_address: Option<String>,
}

/// The `delivery` object.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The recipients this delivery is for. An entry that is not a string reads as `None`.
    #[serde(default, deserialize_with = "lenient_string_list")]
    pub recipients: Option<Vec<Option<String>>>,
    /// When the remote MTA accepted the mail, as received.
    #[serde(default, deserialize_with = "lenient")]
    pub timestamp: Option<String>,
    /// Time SES took from accepting to delivering, in milliseconds.
    #[serde(default, deserialize_with = "lenient")]
    pub processing_time_millis: Option<i64>,
    /// The remote MTA's SMTP response.
    #[serde(default, deserialize_with = "lenient")]
    pub smtp_response: Option<String>,
    /// `reportingMTA`: the SES MTA that delivered the mail.
    #[serde(default, rename = "reportingMTA", deserialize_with = "lenient")]
    pub reporting_mta: Option<String>,
    /// IP of the remote MTA, when SES sends it.
    #[serde(default, deserialize_with = "lenient")]
    pub remote_mta_ip: Option<String>,
}

/// The `deliveryDelay` object (event publishing only).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDelay {
    /// When the delay was reported, as received.
    #[serde(default, deserialize_with = "lenient")]
    pub timestamp: Option<String>,
    /// `TransientCommunicationFailure`, `MailboxFull`, `SpamDetected`, ...
    #[serde(default, deserialize_with = "lenient")]
    pub delay_type: Option<String>,
    /// The recipients whose delivery is delayed (only their count is used).
    #[serde(default, deserialize_with = "lenient_object_list")]
    pub delayed_recipients: Option<Vec<ComplainedRecipient>>,
}

/// The `open` object (event publishing only).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Open {
    /// IP address of the reader.
    #[serde(default, deserialize_with = "lenient")]
    pub ip_address: Option<String>,
    /// When the open happened, as received.
    #[serde(default, deserialize_with = "lenient")]
    pub timestamp: Option<String>,
    /// User agent that loaded the tracking pixel.
    #[serde(default, deserialize_with = "lenient")]
    pub user_agent: Option<String>,
}

/// The `click` object (event publishing only).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Click {
    /// IP address of the reader.
    #[serde(default, deserialize_with = "lenient")]
    pub ip_address: Option<String>,
    /// When the click happened, as received.
    #[serde(default, deserialize_with = "lenient")]
    pub timestamp: Option<String>,
    /// User agent that followed the link.
    #[serde(default, deserialize_with = "lenient")]
    pub user_agent: Option<String>,
    /// The URL that was clicked.
    #[serde(default, deserialize_with = "lenient")]
    pub link: Option<String>,
    /// Tags added to the link (`ses:tags`), as a map of string lists.
    #[serde(default, deserialize_with = "lenient_string_lists")]
    pub link_tags: Option<StringLists>,
}

/// Any value; `None` when it does not have the expected shape (including `null`).
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).ok())
}

/// A JSON object only (never a struct read from an array); `None` otherwise.
fn lenient_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(object_or_none(value))
}

fn object_or_none<T: DeserializeOwned>(value: Value) -> Option<T> {
    if value.is_object() {
        T::deserialize(value).ok()
    } else {
        None
    }
}

/// A list of objects. `None` when not a list; an entry that is not an object of the expected
/// shape becomes `T::default()`, so the entry is still counted (and reported) by the mapping.
fn lenient_object_list<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let value = Value::deserialize(deserializer)?;
    Ok(match value {
        Value::Array(items) => Some(
            items
                .into_iter()
                .map(|item| object_or_none(item).unwrap_or_default())
                .collect(),
        ),
        _ => None,
    })
}

/// A list of strings. `None` when not a list; an entry that is not a string becomes `None`.
fn lenient_string_list<'de, D>(deserializer: D) -> Result<Option<Vec<Option<String>>>, D::Error>
where
    D: Deserializer<'de>,
{
    let value = Value::deserialize(deserializer)?;
    Ok(match value {
        Value::Array(items) => Some(
            items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    })
}

/// A map of string lists (`mail.tags`, `click.linkTags`). `None` when not an object; a lone
/// string value becomes a one-element list; other entries and non-string list items are
/// dropped.
fn lenient_string_lists<'de, D>(deserializer: D) -> Result<Option<StringLists>, D::Error>
where
    D: Deserializer<'de>,
{
    let value = Value::deserialize(deserializer)?;
    let Value::Object(map) = value else {
        return Ok(None);
    };
    let lists = map
        .into_iter()
        .filter_map(|(key, value)| {
            let list = match value {
                Value::String(s) => vec![s],
                Value::Array(items) => items
                    .into_iter()
                    .filter_map(|item| match item {
                        Value::String(s) => Some(s),
                        _ => None,
                    })
                    .collect(),
                _ => return None,
            };
            Some((key, list))
        })
        .collect();
    Ok(Some(lists))
}

/// Parses an SES timestamp leniently, returning the instant in UTC.
///
/// Accepts RFC 3339 (`2016-01-27T14:05:45.000Z`, `2009-12-03T04:24:21.000-05:00`) and the
/// non-RFC forms seen in SES payloads: whitespace before the offset, offsets with or without a
/// colon (`+0000`, `+00:00`), a space instead of `T`, with or without fractional seconds, a
/// trailing `UTC`/`GMT`. A timestamp with no offset at all is read as UTC (SES only sends UTC).
/// `None` for anything else, including empty or absurdly long input.
#[must_use]
pub fn parse_timestamp(raw: &str) -> Option<DateTime<Utc>> {
    const MAX_LEN: usize = 64;
    let s = raw.trim();
    if s.is_empty() || s.len() > MAX_LEN {
        return None;
    }
    if let Ok(parsed) = DateTime::parse_from_rfc3339(s) {
        return Some(parsed.with_timezone(&Utc));
    }
    // Normalise to `YYYY-MM-DDThh:mm:ss[.fff][offset]` with no whitespace.
    let date = s.get(..10)?;
    let separator = s.get(10..11)?;
    if !matches!(separator, "T" | "t" | " ") {
        return None;
    }
    let mut rest: String = s.get(11..)?.split_whitespace().collect();
    for zone in ["UTC", "GMT", "utc", "gmt"] {
        if let Some(stripped) = rest.strip_suffix(zone) {
            rest = format!("{stripped}Z");
            break;
        }
    }
    let compact = format!("{date}T{rest}");
    if let Ok(parsed) = DateTime::parse_from_rfc3339(&compact) {
        return Some(parsed.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f%:z"] {
        if let Ok(parsed) = DateTime::parse_from_str(&compact, format) {
            return Some(parsed.with_timezone(&Utc));
        }
    }
    NaiveDateTime::parse_from_str(&compact, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

/// The bare address of an SES address field: the part inside the last `<...>` when there is
/// one (so `John <john@x>` and `"Some, Service" <a@b>` give `john@x` and `a@b`), otherwise the
/// whole value; surrounding whitespace and angle brackets removed. Case and punycode
/// are kept as received. `None` when nothing is left.
#[must_use]
pub fn bare_address(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let inner = match trimmed.rfind('<') {
        Some(open) => {
            let after = &trimmed[open + 1..];
            match after.find('>') {
                Some(close) => &after[..close],
                None => after,
            }
        }
        None => trimmed,
    };
    let bare = inner
        .trim()
        .trim_matches(|c: char| c == '<' || c == '>' || c.is_whitespace());
    (!bare.is_empty()).then(|| bare.to_owned())
}

#[cfg(test)]
mod tests;
