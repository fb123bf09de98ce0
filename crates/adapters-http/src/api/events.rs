//! The event history under `/api/v1`: `GET /events` (a page of JSON, or the whole match as
//! NDJSON or CSV, streamed a page at a time), `GET /messages/{sesMessageId}` (one email's
//! timeline) and `DELETE /recipients/{address}` (erasure). Requests become domain values here;
//! the [`EventHistory`] port does the rest.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use chrono::Datelike;
use domain::EventHistory;
use domain::event::{BounceClass, EventType};
use domain::history::{
    CONFIGURATION_SET_TAG, CarrierMessage, ErasureReport, ErasureRequest, EventFilter, EventPage,
    EventPosition, EventQuery, MAX_EVENTS_PAGE, MessageTimeline, StoredEvent,
};
use domain::suppression::{Actor, Address};
use domain::token::Scope;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiPorts, DEFAULT_PAGE, V1Error, authorize, parse_time, path_address, rfc3339};
use crate::error::ErrorBody;

/// Events per page of an export (each page one query).
pub const EXPORT_PAGE: usize = MAX_EVENTS_PAGE;

/// The longest SES message id, configuration set name or tag accepted, in bytes.
const MAX_ID_LEN: usize = 256;

/// The most tag conditions (`tag` and `configurationSet` together) one query takes.
pub const MAX_TAGS: usize = 10;

/// A stored platform event as the API shows it (`docs/data-contract.md`, in camelCase).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventDto {
    /// Deterministic idempotency key (opaque).
    pub event_key: String,
    /// `email_delivered`, `email_bounce`, `email_spam_report`, `email_open` or `email_click`.
    pub event_type: String,
    /// The recipient address (case as SES reported it); `null` for opens and clicks of emails
    /// sent to several recipients.
    #[schema(required = true)]
    pub recipient: Option<String>,
    /// `hard` or `soft` for bounces, else `null`.
    #[schema(required = true)]
    pub bounce_type: Option<String>,
    /// SES `mail.messageId`.
    pub ses_message_id: String,
    /// The SNS `MessageId` that first carried the event.
    pub sns_message_id: String,
    /// When the event happened (RFC 3339, UTC).
    pub event_time: String,
    /// SES `mail.timestamp`: when the email was sent.
    #[schema(required = true)]
    pub mail_time: Option<String>,
    /// SES `mail.source`.
    #[schema(required = true)]
    pub source: Option<String>,
    /// `mail.commonHeaders.subject`.
    #[schema(required = true)]
    pub subject: Option<String>,
    /// SES `bounce.bounceType` as received (`Permanent`, `Transient`, `Undetermined`).
    #[schema(required = true)]
    pub ses_bounce_type: Option<String>,
    /// SES `bounce.bounceSubType`.
    #[schema(required = true)]
    pub bounce_subtype: Option<String>,
    /// `bouncedRecipients[].action`.
    #[schema(required = true)]
    pub bounce_action: Option<String>,
    /// `bouncedRecipients[].status` (enhanced status code).
    #[schema(required = true)]
    pub bounce_status: Option<String>,
    /// `bouncedRecipients[].diagnosticCode`.
    #[schema(required = true)]
    pub diagnostic_code: Option<String>,
    /// `bounce.feedbackId` or `complaint.feedbackId`.
    #[schema(required = true)]
    pub feedback_id: Option<String>,
    /// `complaint.complaintFeedbackType`.
    #[schema(required = true)]
    pub complaint_feedback_type: Option<String>,
    /// `complaint.complaintSubType`.
    #[schema(required = true)]
    pub complaint_subtype: Option<String>,
    /// `delivery.smtpResponse`.
    #[schema(required = true)]
    pub smtp_response: Option<String>,
    /// `delivery.reportingMTA` or `bounce.reportingMTA`.
    #[schema(required = true)]
    pub reporting_mta: Option<String>,
    /// `delivery.remoteMtaIp` or `bounce.remoteMtaIp`.
    #[schema(required = true)]
    pub remote_mta_ip: Option<String>,
    /// `delivery.processingTimeMillis`, in milliseconds.
    #[schema(required = true)]
    pub processing_time_ms: Option<i64>,
    /// `click.link`.
    #[schema(required = true)]
    pub link: Option<String>,
    /// `click.linkTags`: an object of string arrays.
    #[schema(required = true, value_type = Option<Object>)]
    pub link_tags: Option<serde_json::Value>,
    /// `open.userAgent`, `click.userAgent` or `complaint.userAgent`.
    #[schema(required = true)]
    pub user_agent: Option<String>,
    /// `open.ipAddress` or `click.ipAddress`.
    #[schema(required = true)]
    pub ip_address: Option<String>,
    /// `mail.tags`: an object of string arrays.
    #[schema(required = true, value_type = Option<Object>)]
    pub tags: Option<serde_json::Value>,
    /// When the event was stored.
    pub created_at: String,
}

impl From<StoredEvent> for EventDto {
    fn from(stored: StoredEvent) -> Self {
        let e = stored.event;
        Self {
            event_key: e.event_key,
            event_type: e.event_type.as_str().to_owned(),
            recipient: e.recipient,
            bounce_type: e.bounce_type.map(|b| b.as_str().to_owned()),
            ses_message_id: e.ses_message_id,
            sns_message_id: stored.sns_message_id,
            event_time: rfc3339(e.event_time),
            mail_time: e.mail_time.map(rfc3339),
            source: e.source,
            subject: e.subject,
            ses_bounce_type: e.ses_bounce_type,
            bounce_subtype: e.bounce_subtype,
            bounce_action: e.action,
            bounce_status: e.status,
            diagnostic_code: e.diagnostic_code,
            feedback_id: e.feedback_id,
            complaint_feedback_type: e.complaint_feedback_type,
            complaint_subtype: e.complaint_subtype,
            smtp_response: e.smtp_response,
            reporting_mta: e.reporting_mta,
            remote_mta_ip: e.remote_mta_ip,
            processing_time_ms: e.processing_time_millis,
            link: e.link,
            link_tags: e.link_tags,
            user_agent: e.user_agent,
            ip_address: e.ip_address,
            tags: e.tags,
            created_at: rfc3339(stored.created_at),
        }
    }
}

/// The columns of a CSV export: the JSON item's keys, in the same order.
pub const CSV_COLUMNS: [&str; 28] = [
    "eventKey",
    "eventType",
    "recipient",
    "bounceType",
    "sesMessageId",
    "snsMessageId",
    "eventTime",
    "mailTime",
    "source",
    "subject",
    "sesBounceType",
    "bounceSubtype",
    "bounceAction",
    "bounceStatus",
    "diagnosticCode",
    "feedbackId",
    "complaintFeedbackType",
    "complaintSubtype",
    "smtpResponse",
    "reportingMta",
    "remoteMtaIp",
    "processingTimeMs",
    "link",
    "linkTags",
    "userAgent",
    "ipAddress",
    "tags",
    "createdAt",
];

impl EventDto {
    /// The CSV fields of [`CSV_COLUMNS`]: `null` as an empty field, numbers in decimal, JSON
    /// objects as JSON text.
    fn csv_record(&self) -> [String; 28] {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let json = |v: &Option<serde_json::Value>| v.as_ref().map(ToString::to_string);
        [
            self.event_key.clone(),
            self.event_type.clone(),
            text(&self.recipient),
            text(&self.bounce_type),
            self.ses_message_id.clone(),
            self.sns_message_id.clone(),
            self.event_time.clone(),
            text(&self.mail_time),
            text(&self.source),
            text(&self.subject),
            text(&self.ses_bounce_type),
            text(&self.bounce_subtype),
            text(&self.bounce_action),
            text(&self.bounce_status),
            text(&self.diagnostic_code),
            text(&self.feedback_id),
            text(&self.complaint_feedback_type),
            text(&self.complaint_subtype),
            text(&self.smtp_response),
            text(&self.reporting_mta),
            text(&self.remote_mta_ip),
            self.processing_time_ms
                .map(|ms| ms.to_string())
                .unwrap_or_default(),
            text(&self.link),
            text(&json(&self.link_tags)),
            text(&self.user_agent),
            text(&self.ip_address),
            text(&json(&self.tags)),
            self.created_at.clone(),
        ]
    }
}

/// One page of events, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPageDto {
    pub items: Vec<EventDto>,
    /// Pass as `cursor` (with the same filters) for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// What became of an archived SNS message.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeDto {
    Processed,
    NoEvents,
    NotSes,
    Failed,
    Subscription,
}

impl From<domain::ports::MessageOutcome> for OutcomeDto {
    fn from(outcome: domain::ports::MessageOutcome) -> Self {
        use domain::ports::MessageOutcome as O;
        match outcome {
            O::Processed => Self::Processed,
            O::NoEvents => Self::NoEvents,
            O::NotSes => Self::NotSes,
            O::Failed => Self::Failed,
            O::Subscription => Self::Subscription,
        }
    }
}

/// An archived SNS message about the email.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CarrierDto {
    /// SNS `MessageId`.
    pub sns_message_id: String,
    /// SES `eventType` or `notificationType`: `Send`, `Delivery`, `Bounce`, `DeliveryDelay`, ...
    #[schema(required = true)]
    pub ses_type: Option<String>,
    pub outcome: OutcomeDto,
    /// When this service received it.
    pub received_at: String,
    /// Platform events it stored (copies of events already stored are not counted).
    pub events_stored: u32,
    /// Whether its raw body is still archived (`false` after retention or an erasure: it can
    /// no longer be processed again).
    pub raw_body_kept: bool,
}

impl From<CarrierMessage> for CarrierDto {
    fn from(m: CarrierMessage) -> Self {
        Self {
            sns_message_id: m.sns_message_id,
            ses_type: m.ses_type,
            outcome: m.outcome.into(),
            received_at: rfc3339(m.received_at),
            events_stored: m.events_stored,
            raw_body_kept: m.raw_body_kept,
        }
    }
}

/// The timeline of one sent email.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageTimelineDto {
    /// SES `mail.messageId`.
    pub ses_message_id: String,
    /// Its events, oldest first.
    pub events: Vec<EventDto>,
    /// The archived SNS messages about it, oldest first: those that carried its events and,
    /// for messages archived since the archive records `mail.messageId`, every SES record of
    /// it (`Send`, `DeliveryDelay`, `Reject`, ... included).
    pub messages: Vec<CarrierDto>,
}

/// What an erasure did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureDto {
    /// Events of the address deleted.
    pub events_deleted: u64,
    /// Archived SNS messages whose raw body was cleared. They can no longer be processed
    /// again (`ses-webhook reprocess`).
    pub messages_cleared: u64,
    /// Whether the address's suppression entry was removed (`keepSuppression=false`).
    pub suppression_removed: bool,
    /// Whether the address has a suppression entry that was kept (it goes on stopping mail to
    /// the address, and keeps its history).
    pub suppression_kept: bool,
    /// Lines of the address's suppression history deleted: with its entry, or because it has
    /// none left.
    pub history_deleted: u64,
    /// When this erasure was recorded in the audit table; `null` when there was nothing left
    /// to erase (nothing was recorded).
    #[schema(required = true)]
    pub erased_at: Option<String>,
    /// When an earlier erasure of the same address was recorded, if any.
    #[schema(required = true)]
    pub previously_erased_at: Option<String>,
    /// What the erasure means for the archive, in words.
    pub notice: String,
}

impl From<ErasureReport> for ErasureDto {
    fn from(r: ErasureReport) -> Self {
        let notice = if r.messages_cleared > 0 {
            format!(
                "{} archived SNS message(s) lost their raw body and can no longer be reprocessed",
                r.messages_cleared
            )
        } else {
            "no archived raw body was cleared".to_owned()
        };
        Self {
            events_deleted: r.events_deleted,
            messages_cleared: r.messages_cleared,
            suppression_removed: r.suppression_removed,
            suppression_kept: r.suppression_kept,
            history_deleted: r.history_deleted,
            erased_at: r.recorded_at.map(rfc3339),
            previously_erased_at: r.previously_erased_at.map(rfc3339),
            notice,
        }
    }
}

/// The query of `GET /api/v1/events` (documentation only: it is parsed by hand, so that
/// repeated and unknown parameters are caught).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct EventsParams {
    /// Only events of this address (exact address, case-insensitive).
    recipient: Option<String>,
    /// Only events of this email (SES `mail.messageId`).
    #[param(rename = "sesMessageId")]
    ses_message_id: Option<String>,
    /// Only events of these types (repeatable: `type=email_bounce&type=email_spam_report`):
    /// `email_delivered`, `email_bounce`, `email_spam_report`, `email_open`, `email_click`.
    #[param(rename = "type", style = Form, explode)]
    types: Option<Vec<String>>,
    /// Only bounces of this class: `hard` or `soft` (implies `type=email_bounce`).
    #[param(rename = "bounceType")]
    bounce_type: Option<String>,
    /// Only events at or after this event time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// Only events before this event time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
    /// Only events of emails sent with this configuration set (the `ses:configuration-set`
    /// tag).
    #[param(rename = "configurationSet")]
    configuration_set: Option<String>,
    /// Only events whose `mail.tags` hold this value (repeatable; all must hold): `name:value`,
    /// for example `campaign:spring` or `ses:from-domain:example.com` (a name starting with
    /// `ses:` ends at its second colon). At most 10 `tag` and `configurationSet` together.
    #[param(style = Form, explode)]
    tag: Option<Vec<String>>,
    /// Events per page, 1 to 1000 (default 100). Not with an export.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `nextCursor` of the previous page, with the same filters. Not with an export.
    cursor: Option<String>,
}

/// The format the client asked for with `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Ndjson,
    Csv,
}

impl Format {
    /// The best format `Accept` allows (by quality, each format taking that of the most
    /// specific range that matches it; on a tie JSON, then NDJSON, then CSV); `Json` without
    /// the header.
    ///
    /// # Errors
    /// [`V1Error::NotAcceptable`] when it allows none of them.
    pub(crate) fn negotiate(accept: Option<&str>) -> Result<Self, V1Error> {
        let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
            return Ok(Self::Json);
        };
        // Each media range with its quality (RFC 9110, 12.5.1).
        let ranges: Vec<(String, f32)> = accept
            .split(',')
            .map(|range| {
                let mut parts = range.split(';');
                let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
                let quality = parts
                    .filter_map(|p| {
                        let (name, value) = p.split_once('=')?;
                        name.trim()
                            .eq_ignore_ascii_case("q")
                            .then(|| value.trim().parse::<f32>().ok())?
                    })
                    .next()
                    .unwrap_or(1.0);
                (media, quality)
            })
            .collect();
        // A format's quality is that of the most specific range that matches it.
        let quality = |format: Self| -> f32 {
            let (kind, subtype) = format.media_type();
            let exact = format!("{kind}/{subtype}");
            let any_subtype = format!("{kind}/*");
            [exact.as_str(), any_subtype.as_str(), "*/*"]
                .iter()
                .find_map(|wanted| ranges.iter().find(|(m, _)| m == wanted).map(|(_, q)| *q))
                .unwrap_or(0.0)
        };
        // The highest quality wins; on a tie, JSON, then NDJSON, then CSV.
        let mut best: Option<(f32, Self)> = None;
        for format in [Self::Json, Self::Ndjson, Self::Csv] {
            let q = quality(format);
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, format));
            }
        }
        best.map(|(_, f)| f).ok_or(V1Error::NotAcceptable)
    }

    /// The media type's type and subtype.
    fn media_type(self) -> (&'static str, &'static str) {
        match self {
            Self::Json => ("application", "json"),
            Self::Ndjson => ("application", "x-ndjson"),
            Self::Csv => ("text", "csv"),
        }
    }
}

/// The opaque cursor of an event position, bound to the filter it was made with: base64url of
/// `e1.<event time µs>.<id>.<check>`, the check being [`EventFilter::cursor_check`].
#[must_use]
pub fn encode_event_cursor(position: EventPosition, filter: &EventFilter) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "e1.{}.{}.{}",
        position.event_time.timestamp_micros(),
        position.id,
        filter.cursor_check(&position)
    ))
}

/// Reads a cursor made by [`encode_event_cursor`] for `filter`.
///
/// # Errors
/// [`V1Error::InvalidCursor`] for anything that does not decode;
/// [`V1Error::CursorFilterMismatch`] for a cursor whose check fails: changed, or made for
/// other filters.
pub fn decode_event_cursor(cursor: &str, filter: &EventFilter) -> Result<EventPosition, V1Error> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| V1Error::InvalidCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| V1Error::InvalidCursor)?;
    let mut parts = text.split('.');
    let (Some("e1"), Some(micros), Some(id), Some(check), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(V1Error::InvalidCursor);
    };
    let micros: i64 = micros.parse().map_err(|_| V1Error::InvalidCursor)?;
    let id: i64 = id.parse().map_err(|_| V1Error::InvalidCursor)?;
    let event_time =
        chrono::DateTime::from_timestamp_micros(micros).ok_or(V1Error::InvalidCursor)?;
    if id <= 0 || !(1..=9999).contains(&event_time.year()) {
        return Err(V1Error::InvalidCursor);
    }
    let position = EventPosition { event_time, id };
    if check != filter.cursor_check(&position) {
        return Err(V1Error::CursorFilterMismatch);
    }
    Ok(position)
}

/// An SES message id, configuration set or tag part: 1 to 256 bytes without control
/// characters.
fn plain(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty() && value.len() <= MAX_ID_LEN && !value.chars().any(char::is_control))
        .then(|| value.to_owned())
}

/// Splits `name:value`; a name starting with `ses:` (the tags SES adds) ends at its second
/// colon, so that `ses:source-ip:2001:db8::1` is the name `ses:source-ip` with an IPv6 value.
fn split_tag(raw: &str) -> Option<(String, String)> {
    let skip = if raw.starts_with("ses:") { 4 } else { 0 };
    let colon = raw[skip..].find(':')? + skip;
    let (name, value) = (&raw[..colon], &raw[colon + 1..]);
    Some((plain(name)?, plain(value)?))
}

/// `since` or `until`: an RFC 3339 time of year 1 to 9999 in UTC (what both databases order
/// correctly).
fn event_time(field: &str, value: &str) -> Result<chrono::DateTime<chrono::Utc>, V1Error> {
    let at = parse_time(field, value.trim()).map_err(|error| match error {
        // A `+` sent as it is arrives as a space.
        V1Error::InvalidTime(message) if value.trim().contains(' ') => V1Error::InvalidTime(
            format!("{message}; in a query string, send the + of an offset as %2B"),
        ),
        other => other,
    })?;
    if (1..=9999).contains(&at.year()) {
        Ok(at)
    } else {
        Err(V1Error::InvalidTime(format!(
            "{field} must be between the years 1 and 9999 (UTC)"
        )))
    }
}

/// The parsed query of `GET /api/v1/events`.
#[derive(Debug)]
pub(crate) struct EventsRequest {
    pub filter: EventFilter,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

impl EventsRequest {
    /// Parses a query string.
    ///
    /// # Errors
    /// The [`V1Error`] naming the first parameter that is unknown, repeated (when it may not
    /// be) or invalid.
    pub(crate) fn parse(query: &str) -> Result<Self, V1Error> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|e| {
                V1Error::InvalidParameter(format!("the query string cannot be read: {e}"))
            })?
            .into_inner();
        let mut filter = EventFilter::default();
        let mut limit = None;
        let mut cursor = None;
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in &pairs {
            let single = !matches!(key.as_str(), "type" | "tag");
            if single {
                if seen.contains(&key.as_str()) {
                    return Err(V1Error::InvalidParameter(format!(
                        "{key} may be given once"
                    )));
                }
                seen.push(key.as_str());
            }
            match key.as_str() {
                "recipient" => {
                    filter.recipient = Some(Address::parse(value).map_err(|e| {
                        // A `+` sent as it is arrives as a space.
                        let hint = if value.trim().contains(' ') {
                            " (in a query string, send a + as %2B)"
                        } else {
                            ""
                        };
                        V1Error::InvalidAddress(format!("recipient: {e}{hint}"))
                    })?);
                }
                "sesMessageId" => {
                    filter.ses_message_id = Some(plain(value).ok_or_else(|| {
                        V1Error::InvalidMessageId(
                            "sesMessageId must be 1 to 256 bytes without control characters".into(),
                        )
                    })?);
                }
                "type" => {
                    let kind = EventType::ALL
                        .into_iter()
                        .find(|t| t.as_str() == value.trim())
                        .ok_or_else(|| V1Error::InvalidType(value.clone()))?;
                    if !filter.types.contains(&kind) {
                        filter.types.push(kind);
                    }
                }
                "bounceType" => {
                    filter.bounce_type = Some(match value.trim() {
                        "hard" => BounceClass::Hard,
                        "soft" => BounceClass::Soft,
                        _ => return Err(V1Error::InvalidBounceType(value.clone())),
                    });
                }
                "since" => filter.since = Some(event_time("since", value)?),
                "until" => filter.until = Some(event_time("until", value)?),
                "configurationSet" => {
                    let name = plain(value).ok_or_else(|| {
                        V1Error::InvalidTag(
                            "configurationSet must be 1 to 256 bytes without control characters"
                                .into(),
                        )
                    })?;
                    filter.tags.push((CONFIGURATION_SET_TAG.to_owned(), name));
                }
                "tag" => {
                    let pair = split_tag(value.trim()).ok_or_else(|| {
                        V1Error::InvalidTag(format!(
                            "tag {value:?} is not name:value (each 1 to 256 bytes)"
                        ))
                    })?;
                    if !filter.tags.contains(&pair) {
                        filter.tags.push(pair);
                    }
                }
                "limit" => {
                    limit = Some(
                        value
                            .trim()
                            .parse::<usize>()
                            .ok()
                            .filter(|l| (1..=MAX_EVENTS_PAGE).contains(l))
                            .ok_or(V1Error::InvalidLimit)?,
                    );
                }
                "cursor" => cursor = Some(value.clone()),
                other => return Err(V1Error::UnknownParameter(other.to_owned())),
            }
        }
        if filter.tags.len() > MAX_TAGS {
            return Err(V1Error::InvalidTag(format!(
                "give at most {MAX_TAGS} tag and configurationSet conditions"
            )));
        }
        if let (Some(since), Some(until)) = (filter.since, filter.until)
            && since >= until
        {
            return Err(V1Error::InvalidTime("since must be before until".into()));
        }
        Ok(Self {
            filter,
            limit,
            cursor,
        })
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    operation_id = "listEvents",
    summary = "Stored events, newest first: a page of JSON, or every match as NDJSON or CSV",
    description = "Filters combine with AND. Pages are keyset-paginated newest first by event time, so paging while new events arrive neither skips nor repeats one. With `Accept: application/x-ndjson` (one event per line) or `Accept: text/csv` (a header row, RFC 4180, JSON columns as JSON text, `null` as an empty field) the answer is every match, streamed from the database a page at a time; `limit` and `cursor` do not apply. Should the store fail during an export, the response is cut off without its end (the chunked body is not terminated), so a client never mistakes a partial export for a whole one.",
    security(("bearer" = ["read"])),
    params(EventsParams),
    responses(
        (status = 200, description = "One page (JSON) or the whole match (NDJSON, CSV).", content(
            (EventPageDto = "application/json"),
            (String = "application/x-ndjson"),
            (String = "text/csv"),
        )),
        (status = 400, description = "`invalid_address`, `invalid_message_id`, `invalid_type`, `invalid_bounce_type`, `invalid_time`, `invalid_tag`, `invalid_limit` (also: a `limit` with an export), `invalid_cursor` (also: a cursor with an export, or made for other filters), `unknown_parameter`, `invalid_parameter` (a single-valued parameter given twice, or a query string that cannot be read).", body = ErrorBody),
        (status = 401, description = "`unauthorized`.", body = ErrorBody),
        (status = 406, description = "`not_acceptable`: `Accept` allows none of application/json, application/x-ndjson, text/csv.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody),
    )
)]
pub(crate) async fn events(
    req: HttpRequest,
    ports: web::Data<ApiPorts>,
) -> Result<HttpResponse, V1Error> {
    authorize(&req, &ports, Scope::Read).await?;
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept)?;
    let request = EventsRequest::parse(req.query_string())?;
    let after = request
        .cursor
        .as_deref()
        .map(|c| decode_event_cursor(c, &request.filter))
        .transpose()?;
    if format != Format::Json {
        if request.limit.is_some() {
            return Err(V1Error::NotForExport("limit"));
        }
        if after.is_some() {
            return Err(V1Error::NotForExport("cursor"));
        }
        // The first page before the answer: a store that is down is a 503, not a 200 cut off.
        let first = ports
            .history
            .events(EventQuery {
                filter: request.filter.clone(),
                limit: EXPORT_PAGE,
                after: None,
            })
            .await?;
        return Ok(export(
            Arc::clone(&ports.history),
            request.filter,
            format,
            first,
        ));
    }
    let page = ports
        .history
        .events(EventQuery {
            filter: request.filter.clone(),
            limit: request.limit.unwrap_or(DEFAULT_PAGE),
            after,
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::VARY, "Accept"))
        .json(EventPageDto {
            items: page.items.into_iter().map(EventDto::from).collect(),
            next_cursor: page.next.map(|p| encode_event_cursor(p, &request.filter)),
        }))
}

/// Where an export stands between two pages.
enum ExportStep {
    /// The first page, read before the answer started.
    First(EventPage),
    After(EventPosition),
    Done,
}

/// Every event matching `filter`, streamed a page ([`EXPORT_PAGE`]) at a time, `first` being
/// the first page: one query per page, so memory holds one page whatever the size of the
/// result. Should a later page fail, the stream ends with an error, which cuts the response
/// off without its end.
fn export(
    history: Arc<dyn EventHistory>,
    filter: EventFilter,
    format: Format,
    first: EventPage,
) -> HttpResponse {
    let stream = futures::stream::unfold(
        (ExportStep::First(first), 0_usize),
        move |(step, sent)| {
            let history = Arc::clone(&history);
            let filter = filter.clone();
            async move {
                let (is_first, read) = match step {
                    ExportStep::Done => return None,
                    ExportStep::First(page) => (true, Ok(page)),
                    ExportStep::After(position) => {
                        let query = EventQuery {
                            filter,
                            limit: EXPORT_PAGE,
                            after: Some(position),
                        };
                        (false, history.events(query).await)
                    }
                };
                match read {
                    Ok(page) => {
                        let count = page.items.len();
                        let body = render(page.items, format, is_first);
                        let next = match page.next {
                            Some(position) => ExportStep::After(position),
                            None => {
                                tracing::info!(events = sent + count, "event export finished");
                                ExportStep::Done
                            }
                        };
                        Some((body, (next, sent + count)))
                    }
                    Err(error) => {
                        tracing::warn!(%error, events = sent, "event export cut off: the store failed");
                        Some((
                            Err(std::io::Error::other(format!("store unavailable: {error}"))),
                            (ExportStep::Done, sent),
                        ))
                    }
                }
            }
        },
    );
    let content_type = match format {
        Format::Csv => "text/csv; charset=utf-8; header=present",
        Format::Ndjson | Format::Json => "application/x-ndjson",
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::VARY, "Accept"))
        .streaming(stream)
}

/// One page of an export in `format` (with the CSV header row when `first`).
fn render(items: Vec<StoredEvent>, format: Format, first: bool) -> Result<Bytes, std::io::Error> {
    match format {
        Format::Csv => {
            let mut writer = csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(Vec::with_capacity(items.len() * 512));
            if first {
                writer.write_record(CSV_COLUMNS)?;
            }
            for item in items {
                writer.write_record(EventDto::from(item).csv_record())?;
            }
            writer
                .into_inner()
                .map(Bytes::from)
                .map_err(|e| std::io::Error::other(e.to_string()))
        }
        Format::Ndjson | Format::Json => {
            let mut out = Vec::with_capacity(items.len() * 768);
            for item in items {
                serde_json::to_writer(&mut out, &EventDto::from(item))?;
                out.push(b'\n');
            }
            Ok(Bytes::from(out))
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/messages/{sesMessageId}",
    tag = "events",
    operation_id = "messageTimeline",
    summary = "What happened to one email: its events and the SNS messages about it, oldest first",
    security(("bearer" = ["read"])),
    params(("sesMessageId" = String, Path, description = "SES `mail.messageId` (the id SES returned when the email was sent), percent-encoded.")),
    responses(
        (status = 200, description = "The timeline.", body = MessageTimelineDto),
        (status = 400, description = "`invalid_message_id`, `unknown_parameter`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`.", body = ErrorBody),
        (status = 404, description = "`not_found`: no event and no archived message of this email is stored.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody),
    )
)]
pub(crate) async fn message(
    req: HttpRequest,
    ports: web::Data<ApiPorts>,
) -> Result<HttpResponse, V1Error> {
    authorize(&req, &ports, Scope::Read).await?;
    super::only_parameters(&req, &[])?;
    let raw = req.match_info().get("sesMessageId").unwrap_or_default();
    let id = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .and_then(|id| plain(&id))
        .ok_or_else(|| {
            V1Error::InvalidMessageId(
                "the SES message id must be 1 to 256 bytes of UTF-8 without control characters"
                    .into(),
            )
        })?;
    let timeline: MessageTimeline = ports
        .history
        .message(&id)
        .await?
        .ok_or(V1Error::MessageNotFound)?;
    Ok(HttpResponse::Ok().json(MessageTimelineDto {
        ses_message_id: id,
        events: timeline.events.into_iter().map(EventDto::from).collect(),
        messages: timeline
            .messages
            .into_iter()
            .map(CarrierDto::from)
            .collect(),
    }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/recipients/{address}",
    tag = "events",
    operation_id = "eraseRecipient",
    summary = "Erase what is stored about an address (right to erasure)",
    description = "Deletes every event of the address and clears the raw body of every archived SNS message that carried one of them, is about one of their emails, or names the address anywhere (it reads the whole archive): those messages can no longer be reprocessed. The address's suppression entry is kept by default, because it is what stops mail reaching the person; `keepSuppression=false` removes it and its history too. The erasure is recorded in the `erasures` table under the SHA-256 of the address, never the address. Idempotent: a second call finds nothing left, changes nothing and records nothing. Events that arrive after the erasure (a late SNS delivery) are stored as usual.",
    security(("bearer" = ["write"])),
    params(
        ("address" = String, Path, description = "The address, percent-encoded."),
        ("keepSuppression" = Option<bool>, Query, description = "`false` removes the suppression entry and its history too (default `true`)."),
    ),
    responses(
        (status = 200, description = "What was erased (all zeros when nothing was left).", body = ErasureDto),
        (status = 400, description = "`invalid_address`, `invalid_parameter` (`keepSuppression` not `true` or `false`), `unknown_parameter`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`.", body = ErrorBody),
        (status = 403, description = "`forbidden`: a `read` token.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`: the erasure did not finish (some raw bodies may already be cleared); try again: it is idempotent.", body = ErrorBody),
    )
)]
pub(crate) async fn erase(
    req: HttpRequest,
    ports: web::Data<ApiPorts>,
) -> Result<HttpResponse, V1Error> {
    let caller = authorize(&req, &ports, Scope::Write).await?;
    let address = path_address(&req)?;
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| V1Error::InvalidParameter(format!("the query string cannot be read: {e}")))?
        .into_inner();
    let mut request = ErasureRequest::default();
    let mut seen = false;
    for (key, value) in pairs {
        match key.as_str() {
            "keepSuppression" if seen => {
                return Err(V1Error::InvalidParameter(
                    "keepSuppression may be given once".into(),
                ));
            }
            "keepSuppression" => {
                seen = true;
                request.keep_suppression = match value.trim() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(V1Error::InvalidParameter(
                            "keepSuppression must be true or false".into(),
                        ));
                    }
                };
            }
            other => return Err(V1Error::UnknownParameter(other.to_owned())),
        }
    }
    let report = ports
        .history
        .erase(&address, request, Actor::Token(caller.token_name))
        .await?;
    Ok(HttpResponse::Ok().json(ErasureDto::from(report)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_the_best_supported_format() {
        let cases = [
            (None, Some(Format::Json)),
            (Some("application/x-ndjson"), Some(Format::Ndjson)),
            (Some("text/csv"), Some(Format::Csv)),
            (
                Some("text/csv;q=0.5, application/x-ndjson"),
                Some(Format::Ndjson),
            ),
            (Some("text/html, */*;q=0.1"), Some(Format::Json)),
            (
                Some("application/x-ndjson;q=0, application/json"),
                Some(Format::Json),
            ),
            (Some("text/html"), None),
            (Some("image/png, application/xml"), None),
            (Some("application/json;q=0, */*"), Some(Format::Ndjson)),
            (Some("application/json;Q=0.1, text/csv"), Some(Format::Csv)),
            (
                Some("application/*;q=0.2, text/csv;q=0.1"),
                Some(Format::Json),
            ),
            (Some("*/*;q=0"), None),
        ];
        for (accept, expected) in cases {
            assert_eq!(Format::negotiate(accept).ok(), expected, "{accept:?}");
        }
    }

    #[test]
    fn ses_tags_end_at_their_second_colon_and_others_at_their_first() {
        assert_eq!(
            split_tag("campaign:spring:2026"),
            Some(("campaign".into(), "spring:2026".into()))
        );
        assert_eq!(
            split_tag("ses:source-ip:2001:db8::1"),
            Some(("ses:source-ip".into(), "2001:db8::1".into()))
        );
        assert_eq!(split_tag("campaign"), None);
        assert_eq!(split_tag("campaign:"), None);
        assert_eq!(split_tag(":spring"), None);
        assert_eq!(split_tag("ses:configuration-set"), None);
    }

    #[test]
    fn the_csv_columns_are_the_json_keys_in_order() {
        let event = domain::PlatformEvent::new(EventType::Delivered, "ses-1", chrono::Utc::now());
        let dto = EventDto::from(StoredEvent {
            position: EventPosition {
                event_time: event.event_time,
                id: 1,
            },
            event,
            sns_message_id: "sns-1".into(),
            created_at: chrono::Utc::now(),
        });
        let json = serde_json::to_string(&dto).unwrap();
        // serde writes the keys in declaration order: find each column's position.
        let positions: Vec<usize> = CSV_COLUMNS
            .iter()
            .map(|c| json.find(&format!("\"{c}\":")).expect(c))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
        let keys = serde_json::from_str::<serde_json::Value>(&json).unwrap();
        assert_eq!(keys.as_object().unwrap().len(), CSV_COLUMNS.len());
        assert_eq!(dto.csv_record()[1], "email_delivered");
    }

    #[test]
    fn a_cursor_belongs_to_its_filter() {
        let filter = EventFilter {
            types: vec![EventType::Bounce],
            ..EventFilter::default()
        };
        let position = EventPosition {
            event_time: chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: 42,
        };
        let cursor = encode_event_cursor(position, &filter);
        assert_eq!(decode_event_cursor(&cursor, &filter).unwrap(), position);
        assert!(matches!(
            decode_event_cursor(&cursor, &EventFilter::default()),
            Err(V1Error::CursorFilterMismatch)
        ));
        // Any one character changed: refused, whichever part of the cursor it falls in.
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..cursor.len() {
            for replacement in alphabet
                .chars()
                .filter(|c| *c != cursor.as_bytes()[i] as char)
            {
                let mut tampered = cursor.clone();
                tampered.replace_range(i..=i, &replacement.to_string());
                assert!(
                    decode_event_cursor(&tampered, &filter).is_err(),
                    "{tampered} was taken"
                );
            }
        }
        for bad in ["", "x", "ZTEuMS4y", "djEuMTIzLjQ1"] {
            assert!(decode_event_cursor(bad, &filter).is_err(), "{bad}");
        }
    }
}
