//! SES record → platform events: the mapping and one-event-per-recipient rules.
//!
//! # What a `Message` becomes
//!
//! [`map_message`] reads the SES type from `eventType`, else `notificationType`
//! ([`SesRecord::ses_type`]), and never fails:
//!
//! | SNS `Message` | [`MappedKind`] | events |
//! |---|---|---|
//! | not JSON, not a JSON object, or an object with no (non-empty string) type | `NotSes` | none |
//! | `AmazonSnsSubscriptionSucceeded` | `NoPlatformEvent` | none |
//! | `Send`, `Reject`, `DeliveryDelay`, `Rendering Failure`, `Subscription`, unknown types | `NoPlatformEvent` | none |
//! | `Delivery` | `Events` | one `email_delivered` per `delivery.recipients[]` entry |
//! | `Bounce` | `Events` | one `email_bounce` per `bounce.bouncedRecipients[]` entry |
//! | `Complaint` | `Events` | one `email_spam_report` per `complaint.complainedRecipients[]` entry |
//! | `Open` | `Events` | one `email_open` per record |
//! | `Click` | `Events` | one `email_click` per record |
//!
//! `AmazonSnsSubscriptionSucceeded` is sent by SES itself (it carries a `notificationType`),
//! so it counts as an SES record with no platform event rather than as "not SES"; its
//! `ses_type` is kept so the archive shows what it was.
//!
//! Every event carries `ses_message_id` (`mail.messageId`), `mail_time` (`mail.timestamp`),
//! `source` (`mail.source`, as received), `subject` (`mail.commonHeaders.subject`), `tags`
//! (`mail.tags`, a JSON object of string arrays) and `event_time`: the event object's
//! `timestamp`, or `mail.timestamp` when that is absent or unparsable (silently: SES sometimes
//! omits it). Recipients are bare addresses ([`bare_address`]): display names removed, case and
//! punycode kept. Recipients are not checked against `mail.destination` (SES reports recipients
//! it was never given, e.g. after forwarding).
//!
//! - Bounces: `bounce_type` is `hard` for `Permanent`, `soft` for `Transient`, `Undetermined`
//!   and anything else ([`BounceClass::from_ses_bounce_type`]); the classification is per
//!   record, so a `Permanent` bounce listing a recipient with `action: delayed` still gives a
//!   hard bounce for it. `ses_bounce_type`, subtype, `action`, `status`, `diagnosticCode`,
//!   `feedbackId`, `reportingMTA` and `remoteMtaIp` are kept beside it, so consumers can apply a
//!   stricter rule (a `Transient` bounce with a 5.x status stays soft, its status kept).
//! - Complaints keep `feedbackId`, `complaintFeedbackType`, `complaintSubType`, `userAgent`.
//! - Deliveries keep `smtpResponse`, `reportingMTA`, `remoteMtaIp`, `processingTimeMillis`.
//! - Opens and clicks name no recipient: they are attributed to the recipient only when
//!   `mail.destination` has exactly one entry, else `recipient` is `None`. They keep
//!   `ipAddress` and `userAgent`; clicks also `link` and `linkTags`.
//!
//! # Errors
//!
//! A record of a mappable type (`kind` stays `Events`) reports in [`Mapped::errors`], one
//! human-readable line each, what could not become an event: its type object (`bounce`,
//! `complaint`, `delivery`, `open`, `click`) missing or not an object; no recipients listed;
//! one recipient entry without a usable `emailAddress` (that entry only: the others still become
//! events); no `mail.messageId`; neither the event timestamp nor `mail.timestamp` parsable.
//! The first three apply to opens and clicks as well: without their object there is nothing
//! to tell two of them apart.
//!
//! # Event keys (data contract)
//!
//! [`event_key`] gives every event a deterministic key, derived from the SES payload alone, so
//! the same SES event is stored once however often and by whichever format it arrives (an SNS
//! retry, identity notifications and event publishing both enabled, two topics). The key is
//! the lowercase hex SHA-256 of a tuple of UTF-8 strings, each preceded by its byte length as
//! an 8-byte big-endian integer (so no two tuples encode alike):
//!
//! | event | tuple |
//! |---|---|
//! | `email_delivered` | `v1`, type, messageId, recipient |
//! | `email_bounce`, `email_spam_report` | `v1`, type, messageId, recipient, feedbackId, time-if-no-feedbackId |
//! | `email_open` | `v1`, type, messageId, recipient, time, ipAddress, userAgent |
//! | `email_click` | `v1`, type, messageId, recipient, time, link, ipAddress, userAgent |
//!
//! where type is the platform event name (`email_bounce`), messageId is `mail.messageId`,
//! recipient is the bare address in Unicode lowercase (empty when there is none), time is
//! `event_time` in UTC formatted RFC 3339 with milliseconds and `Z`
//! (`2017-08-09T22:00:19.652Z`, so format quirks of the received timestamp do not change the
//! key), and absent values are empty strings. The time is part of a bounce or complaint key
//! only when it has no `feedbackId`. Any change to this scheme must bump `v1`.

use std::collections::HashSet;

use chrono::SecondsFormat;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::event::{BounceClass, EventType, PlatformEvent};
use crate::history::CONFIGURATION_SET_TAG;
use crate::reputation::{RecordKind, RecordTally, record_key};
use crate::ses::{SesRecord, SesType, StringLists, bare_address, parse_timestamp};

/// The version tag that starts every event key tuple; see the module docs.
pub const EVENT_KEY_VERSION: &str = "v1";

/// What an SNS `Message` turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappedKind {
    /// Not an SES record: plain text, JSON that is not an object or has no SES type.
    NotSes,
    /// An SES record of a type that has no platform event (Send, Reject, DeliveryDelay,
    /// Rendering Failure, Subscription, `AmazonSnsSubscriptionSucceeded`, or a type we do not
    /// know yet).
    NoPlatformEvent,
    /// An SES record of a type that maps to platform events.
    Events,
}

/// The result of mapping one SNS `Message`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// What the message was.
    pub kind: MappedKind,
    /// SES `eventType` (preferred) or `notificationType`, as received.
    pub ses_type: Option<String>,
    /// SES `mail.messageId` of the record, when it is an SES record that has one (any type,
    /// `Send` and `DeliveryDelay` included).
    pub ses_message_id: Option<String>,
    /// The platform events, in the order of the record's recipients.
    pub events: Vec<PlatformEvent>,
    /// SES records or recipients that were recognised but could not become events.
    pub errors: Vec<String>,
    /// What a `Send`, `Reject` or `DeliveryDelay` record adds to the reputation counts
    /// ([`crate::reputation`]); `None` for every other record, and for one without a
    /// `mail.messageId` or a parsable time.
    pub tally: Option<RecordTally>,
}

impl Mapped {
    fn without_events(kind: MappedKind, ses_type: Option<String>) -> Self {
        Self {
            kind,
            ses_type,
            ses_message_id: None,
            events: Vec::new(),
            errors: Vec::new(),
            tally: None,
        }
    }
}

/// Maps the `Message` of a verified SNS notification. Never fails: whatever cannot be mapped is
/// reported in [`Mapped::errors`] or [`MappedKind`]. See the module docs for the rules.
#[must_use]
pub fn map_message(message: &str) -> Mapped {
    let Some(record) = SesRecord::from_message(message) else {
        return Mapped::without_events(MappedKind::NotSes, None);
    };
    let Some(ses_type) = record.ses_type().map(str::to_owned) else {
        return Mapped::without_events(MappedKind::NotSes, None);
    };
    let kind = SesType::parse(&ses_type);
    let mut mapped = Mapped::without_events(MappedKind::Events, Some(ses_type));
    mapped.ses_message_id = record
        .mail
        .as_ref()
        .and_then(|mail| mail.message_id.as_deref())
        .filter(|id| !id.trim().is_empty())
        .map(str::to_owned);
    let mut mapper = Mapper {
        record: &record,
        ses_type: kind,
        events: &mut mapped.events,
        errors: &mut mapped.errors,
    };
    match kind {
        SesType::Delivery => mapper.delivery(),
        SesType::Bounce => mapper.bounce(),
        SesType::Complaint => mapper.complaint(),
        SesType::Open => mapper.open(),
        SesType::Click => mapper.click(),
        SesType::Send
        | SesType::Reject
        | SesType::RenderingFailure
        | SesType::DeliveryDelay
        | SesType::Subscription
        | SesType::AmazonSnsSubscriptionSucceeded
        | SesType::Unknown => mapped.kind = MappedKind::NoPlatformEvent,
    }
    mapped.tally = record_tally(&record, kind);
    mapped
}

/// The reputation tally of a `Send`, `Reject` or `DeliveryDelay` record (see
/// [`RecordTally`]): `None` for other types, and when `mail.messageId` or the time is missing.
/// A `Send` counts its distinct `mail.destination` addresses (by [`bare_address`], compared
/// case-insensitively), a `DeliveryDelay` its `delayedRecipients` entries, a `Reject` one.
fn record_tally(record: &SesRecord, kind: SesType) -> Option<RecordTally> {
    let mail = record.mail.as_ref()?;
    let ses_message_id = mail
        .message_id
        .as_deref()
        .filter(|id| !id.trim().is_empty())?;
    let configuration_set = mail
        .tags
        .as_ref()
        .and_then(|tags| tags.get(CONFIGURATION_SET_TAG))
        .and_then(|values| values.first())
        .filter(|name| crate::reputation::is_configuration_set_name(name))
        .cloned();
    let (kind, at, delay_time, count) = match kind {
        SesType::Send => {
            let distinct: HashSet<String> = mail
                .destination
                .iter()
                .flatten()
                .flatten()
                .filter_map(|address| bare_address(address))
                .map(|address| address.to_lowercase())
                .collect();
            (RecordKind::Send, mail.time()?, None, distinct.len())
        }
        SesType::Reject => (RecordKind::Reject, mail.time()?, None, 1),
        SesType::DeliveryDelay => {
            let delay = record.delivery_delay.as_ref();
            let delay_at = delay.and_then(|d| d.timestamp.as_deref().and_then(parse_timestamp));
            let at = delay_at.or_else(|| mail.time())?;
            let count = delay
                .and_then(|d| d.delayed_recipients.as_ref())
                .map_or(0, Vec::len);
            let time = at.to_rfc3339_opts(SecondsFormat::Millis, true);
            (RecordKind::DeliveryDelay, at, Some(time), count)
        }
        _ => return None,
    };
    if count == 0 {
        return None;
    }
    Some(RecordTally {
        record_key: record_key(kind, ses_message_id, delay_time.as_deref()),
        kind,
        at,
        configuration_set,
        count: u32::try_from(count).unwrap_or(u32::MAX),
    })
}

/// The deterministic key of `event`, computed from its fields as described in the module docs.
/// [`map_message`] fills [`PlatformEvent::event_key`] with it.
#[must_use]
pub fn event_key(event: &PlatformEvent) -> String {
    let recipient = event
        .recipient
        .as_deref()
        .map(str::to_lowercase)
        .unwrap_or_default();
    let time = event
        .event_time
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    let opt = |value: &Option<String>| value.clone().unwrap_or_default();
    let mut parts = vec![
        EVENT_KEY_VERSION.to_owned(),
        event.event_type.as_str().to_owned(),
        event.ses_message_id.clone(),
        recipient,
    ];
    match event.event_type {
        EventType::Delivered => {}
        EventType::Bounce | EventType::SpamReport => {
            let feedback_id = opt(&event.feedback_id);
            let fallback_time = if feedback_id.is_empty() {
                time
            } else {
                String::new()
            };
            parts.extend([feedback_id, fallback_time]);
        }
        EventType::Open => {
            parts.extend([time, opt(&event.ip_address), opt(&event.user_agent)]);
        }
        EventType::Click => parts.extend([
            time,
            opt(&event.link),
            opt(&event.ip_address),
            opt(&event.user_agent),
        ]),
    }
    let mut hasher = Sha256::new();
    for part in &parts {
        let len = u64::try_from(part.len()).unwrap_or(u64::MAX);
        hasher.update(len.to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Error lines quote payload values; keep them short whatever the payload holds.
fn clip(value: &str) -> String {
    const MAX_CHARS: usize = 80;
    if value.chars().count() <= MAX_CHARS {
        value.to_owned()
    } else {
        let mut clipped: String = value.chars().take(MAX_CHARS).collect();
        clipped.push('…');
        clipped
    }
}

fn string_lists_json(lists: &StringLists) -> Value {
    Value::Object(
        lists
            .iter()
            .map(|(key, values)| {
                let values = values.iter().cloned().map(Value::String).collect();
                (key.clone(), Value::Array(values))
            })
            .collect(),
    )
}

/// A recipient as listed by SES: its position and raw address (`None` when unusable).
struct Listed<'a> {
    index: usize,
    address: Option<&'a str>,
}

/// Each entry of a recipient list with its position and its address (`None` when the list is
/// absent).
fn listed<'a, T>(
    recipients: Option<&'a Vec<T>>,
    address: impl Fn(&'a T) -> Option<&'a str>,
) -> Option<Vec<Listed<'a>>> {
    recipients.map(|recipients| {
        recipients
            .iter()
            .enumerate()
            .map(|(index, recipient)| Listed {
                index,
                address: address(recipient),
            })
            .collect()
    })
}

/// Maps one record of a type that has platform events.
struct Mapper<'r, 'o> {
    record: &'r SesRecord,
    ses_type: SesType,
    events: &'o mut Vec<PlatformEvent>,
    errors: &'o mut Vec<String>,
}

impl Mapper<'_, '_> {
    fn type_name(&self) -> &'static str {
        match self.ses_type {
            SesType::Bounce => "Bounce",
            SesType::Complaint => "Complaint",
            SesType::Delivery => "Delivery",
            SesType::Open => "Open",
            SesType::Click => "Click",
            _ => "SES",
        }
    }

    fn error(&mut self, problem: &str) {
        let message_id = self
            .record
            .mail
            .as_ref()
            .and_then(|mail| mail.message_id.as_deref())
            .filter(|id| !id.is_empty());
        let line = match message_id {
            Some(id) => format!(
                "{} record (mail.messageId {}): {problem}",
                self.type_name(),
                clip(id)
            ),
            None => format!("{} record: {problem}", self.type_name()),
        };
        self.errors.push(line);
    }

    /// The event with the fields every type shares, or `None` (error recorded) when the
    /// record lacks a message id or any usable time.
    fn base(
        &mut self,
        event_type: EventType,
        event_timestamp: Option<&str>,
    ) -> Option<PlatformEvent> {
        let mail = self.record.mail.as_ref();
        let message_id = mail
            .and_then(|mail| mail.message_id.as_deref())
            .filter(|id| !id.trim().is_empty());
        let Some(message_id) = message_id else {
            self.error("no mail.messageId");
            return None;
        };
        let mail_time = mail.and_then(crate::ses::Mail::time);
        let Some(event_time) = event_timestamp.and_then(parse_timestamp).or(mail_time) else {
            let shown =
                event_timestamp.map_or_else(|| "absent".to_owned(), |t| format!("{:?}", clip(t)));
            self.error(&format!(
                "event timestamp {shown} is not a time and mail.timestamp is unusable too"
            ));
            return None;
        };
        Some(PlatformEvent {
            mail_time,
            source: mail.and_then(|mail| mail.source.clone()),
            subject: mail
                .and_then(|mail| mail.common_headers.as_ref())
                .and_then(|headers| headers.subject.clone()),
            tags: mail
                .and_then(|mail| mail.tags.as_ref())
                .map(string_lists_json),
            ..PlatformEvent::new(event_type, message_id, event_time)
        })
    }

    fn push(&mut self, mut event: PlatformEvent) {
        event.event_key = event_key(&event);
        self.events.push(event);
    }

    fn missing_object(&mut self, key: &str) {
        self.error(&format!("`{key}` object is missing or not an object"));
    }

    /// One event per listed recipient: `fill` completes the shared event for recipient `index`.
    fn per_recipient(
        &mut self,
        list_name: &str,
        listed: Option<Vec<Listed<'_>>>,
        base: Option<PlatformEvent>,
        mut fill: impl FnMut(&mut PlatformEvent, usize),
    ) {
        let listed = listed.unwrap_or_default();
        if listed.is_empty() {
            self.error(&format!("{list_name} lists no recipients"));
            return;
        }
        let Some(base) = base else { return };
        for entry in listed {
            let Some(recipient) = entry.address.and_then(bare_address) else {
                self.error(&format!(
                    "{list_name}[{}] has no usable emailAddress",
                    entry.index
                ));
                continue;
            };
            let mut event = base.clone();
            event.recipient = Some(recipient);
            fill(&mut event, entry.index);
            self.push(event);
        }
    }

    fn delivery(&mut self) {
        let Some(delivery) = self.record.delivery.as_ref() else {
            self.missing_object("delivery");
            return;
        };
        let listed = listed(delivery.recipients.as_ref(), |address| address.as_deref());
        let base = self
            .base(EventType::Delivered, delivery.timestamp.as_deref())
            .map(|mut event| {
                event.smtp_response.clone_from(&delivery.smtp_response);
                event.reporting_mta.clone_from(&delivery.reporting_mta);
                event.remote_mta_ip.clone_from(&delivery.remote_mta_ip);
                event.processing_time_millis = delivery.processing_time_millis;
                event
            });
        self.per_recipient("delivery.recipients", listed, base, |_, _| {});
    }

    fn bounce(&mut self) {
        let Some(bounce) = self.record.bounce.as_ref() else {
            self.missing_object("bounce");
            return;
        };
        let recipients = bounce.bounced_recipients.as_deref().unwrap_or_default();
        let listed = listed(bounce.bounced_recipients.as_ref(), |recipient| {
            recipient.email_address.as_deref()
        });
        let base = self
            .base(EventType::Bounce, bounce.timestamp.as_deref())
            .map(|mut event| {
                event.bounce_type = Some(BounceClass::from_ses_bounce_type(
                    bounce.bounce_type.as_deref(),
                ));
                event.ses_bounce_type.clone_from(&bounce.bounce_type);
                event.bounce_subtype.clone_from(&bounce.bounce_sub_type);
                event.feedback_id.clone_from(&bounce.feedback_id);
                event.reporting_mta.clone_from(&bounce.reporting_mta);
                event.remote_mta_ip.clone_from(&bounce.remote_mta_ip);
                event
            });
        self.per_recipient("bounce.bouncedRecipients", listed, base, |event, index| {
            if let Some(recipient) = recipients.get(index) {
                event.action.clone_from(&recipient.action);
                event.status.clone_from(&recipient.status);
                event.diagnostic_code.clone_from(&recipient.diagnostic_code);
            }
        });
    }

    fn complaint(&mut self) {
        let Some(complaint) = self.record.complaint.as_ref() else {
            self.missing_object("complaint");
            return;
        };
        let listed = listed(complaint.complained_recipients.as_ref(), |recipient| {
            recipient.email_address.as_deref()
        });
        let base = self
            .base(EventType::SpamReport, complaint.timestamp.as_deref())
            .map(|mut event| {
                event.feedback_id.clone_from(&complaint.feedback_id);
                event
                    .complaint_feedback_type
                    .clone_from(&complaint.complaint_feedback_type);
                event
                    .complaint_subtype
                    .clone_from(&complaint.complaint_sub_type);
                event.user_agent.clone_from(&complaint.user_agent);
                event
            });
        self.per_recipient("complaint.complainedRecipients", listed, base, |_, _| {});
    }

    /// The recipient of an open or click: the only `mail.destination` entry, if there is
    /// exactly one.
    fn sole_destination(&self) -> Option<String> {
        match self
            .record
            .mail
            .as_ref()
            .and_then(|mail| mail.destination.as_deref())
        {
            Some([Some(only)]) => bare_address(only),
            _ => None,
        }
    }

    fn open(&mut self) {
        let Some(open) = self.record.open.as_ref() else {
            self.missing_object("open");
            return;
        };
        let Some(mut event) = self.base(EventType::Open, open.timestamp.as_deref()) else {
            return;
        };
        event.recipient = self.sole_destination();
        event.ip_address.clone_from(&open.ip_address);
        event.user_agent.clone_from(&open.user_agent);
        self.push(event);
    }

    fn click(&mut self) {
        let Some(click) = self.record.click.as_ref() else {
            self.missing_object("click");
            return;
        };
        let Some(mut event) = self.base(EventType::Click, click.timestamp.as_deref()) else {
            return;
        };
        event.recipient = self.sole_destination();
        event.ip_address.clone_from(&click.ip_address);
        event.user_agent.clone_from(&click.user_agent);
        event.link.clone_from(&click.link);
        event.link_tags = click.link_tags.as_ref().map(string_lists_json);
        self.push(event);
    }
}

#[cfg(test)]
mod tests;
