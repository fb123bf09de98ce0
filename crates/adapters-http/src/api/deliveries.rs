//! `GET /api/v1/deliveries` and `POST /api/v1/deliveries/replay`: the outbox of event delivery
//! (`docs/delivery.md`) as operators see it, and replays of what a sink missed. Entries show
//! ids, types, states and errors, never an address.

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use domain::delivery::{
    DeliveryError, EntryQuery, EntryState, MAX_REPLAY_IDS, OutboxEntry, ReplayScope,
};
use domain::token::Scope;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    ApiPorts, V1Error, authorize, json_body, only_parameters, page_limit, parse_time, rfc3339,
};
use crate::error::ErrorBody;

/// Where an entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStateDto {
    /// Not delivered yet: due at `nextAttemptAt`.
    Pending,
    /// The sink acknowledged it.
    Delivered,
    /// The sink's retry schedule ran out; delivered again only by a replay.
    Dead,
}

impl From<EntryState> for DeliveryStateDto {
    fn from(state: EntryState) -> Self {
        match state {
            EntryState::Pending => Self::Pending,
            EntryState::Delivered => Self::Delivered,
            EntryState::Dead => Self::Dead,
        }
    }
}

impl From<DeliveryStateDto> for EntryState {
    fn from(state: DeliveryStateDto) -> Self {
        match state {
            DeliveryStateDto::Pending => Self::Pending,
            DeliveryStateDto::Delivered => Self::Delivered,
            DeliveryStateDto::Dead => Self::Dead,
        }
    }
}

/// One outbox entry: one event or suppression-list change for one sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDto {
    /// The envelope's `id` (and `webhook-id`, `Nats-Msg-Id`): the event's `eventKey`, or
    /// `suppression-<n>` for a suppression-list change. The same on every attempt.
    pub event_id: String,
    /// The envelope's `type`: `email_delivered`, `email_bounce`, `email_spam_report`,
    /// `email_open`, `email_click`, `suppression.added` or `suppression.removed`.
    #[serde(rename = "type")]
    pub entry_type: String,
    /// The sink's `name`.
    pub sink: String,
    pub state: DeliveryStateDto,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the entry was written, with its event or change (RFC 3339, UTC).
    pub created_at: String,
    /// When it is attempted next; `null` unless pending.
    #[schema(required = true)]
    pub next_attempt_at: Option<String>,
    /// What the last failed attempt got (an HTTP status, a timeout, a connection error), if
    /// any.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// When it was delivered or became dead; `null` while pending.
    #[schema(required = true)]
    pub settled_at: Option<String>,
}

impl From<OutboxEntry> for DeliveryDto {
    fn from(entry: OutboxEntry) -> Self {
        Self {
            next_attempt_at: (entry.state == EntryState::Pending)
                .then(|| rfc3339(entry.next_attempt_at)),
            event_id: entry.entry_id,
            entry_type: entry.entry_type,
            sink: entry.sink,
            state: entry.state.into(),
            attempts: entry.attempts,
            created_at: rfc3339(entry.created_at),
            last_error: entry.last_error,
            settled_at: entry.settled_at.map(rfc3339),
        }
    }
}

/// One page of entries, in the order they were written.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPageDto {
    pub items: Vec<DeliveryDto>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The query of `GET /api/v1/deliveries`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesParams {
    /// Only this sink's entries (a `[[sinks]]` name).
    sink: Option<String>,
    /// Only entries in this state.
    #[param(value_type = Option<DeliveryStateDto>)]
    state: Option<String>,
    /// Entries per page, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// `POST /api/v1/deliveries/replay` body: either `state` (with `since`) or `eventIds`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplayRequest {
    /// The sink to deliver to again (a `[[sinks]]` name).
    pub sink: String,
    /// Every entry of the sink in this state: `dead` (or `delivered`, to send again what a
    /// consumer lost).
    #[schema(value_type = Option<DeliveryStateDto>)]
    pub state: Option<String>,
    /// With `state`: only entries written at or after this time (RFC 3339).
    pub since: Option<String>,
    /// These entries (1 to 1000 event ids), whatever their state. An entry no longer in the
    /// outbox (delivered and purged) is written again when its event or change still exists
    /// and the sink takes its type; ids that cannot be are listed in `notFound`.
    pub event_ids: Option<Vec<String>>,
}

/// `POST /api/v1/deliveries/replay` answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayResponse {
    /// Entries made due now, with the sink's whole retry schedule again.
    pub replayed: usize,
    /// The event ids that name nothing this sink can be sent (empty for a replay by state).
    pub not_found: Vec<String>,
}

/// The opaque cursor after the entry with row id `id`: base64url of `d1.<id>`.
fn encode_cursor(id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("d1.{id}"))
}

fn decode_cursor(cursor: &str) -> Result<i64, V1Error> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| V1Error::InvalidCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| V1Error::InvalidCursor)?;
    text.strip_prefix("d1.")
        .and_then(|id| id.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or(V1Error::InvalidCursor)
}

fn parse_state(value: &str) -> Result<EntryState, V1Error> {
    EntryState::parse(value).ok_or_else(|| {
        V1Error::InvalidState(format!(
            "unknown state {value:?}: use pending, delivered or dead"
        ))
    })
}

impl From<DeliveryError> for V1Error {
    fn from(error: DeliveryError) -> Self {
        match error {
            DeliveryError::UnknownSink { .. } => Self::UnknownSink(error.to_string()),
            DeliveryError::NotReplayable(_) => Self::InvalidState(error.to_string()),
            DeliveryError::ReplayIdCount(_) => Self::InvalidEventIds(error.to_string()),
            DeliveryError::Store(e) => Self::Unavailable(e),
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/deliveries",
    tag = "deliveries",
    operation_id = "listDeliveries",
    summary = "Outbox entries (one per event and sink), oldest first, a page at a time",
    description = "In the order the entries were written (oldest first), so that a page of pending entries shows what has waited longest. No address appears: entries name events by `eventId`.",
    security(("bearer" = ["read"])),
    params(DeliveriesParams),
    responses(
        (status = 200, description = "One page.", body = DeliveryPageDto),
        (status = 400, description = "`unknown_sink`, `invalid_state`, `invalid_limit`, `invalid_cursor`, `unknown_parameter`, `invalid_parameter`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    req: HttpRequest,
    ports: web::Data<ApiPorts>,
) -> Result<HttpResponse, V1Error> {
    authorize(&req, &ports, Scope::Read).await?;
    only_parameters(&req, &["sink", "state", "limit", "cursor"])?;
    let params = web::Query::<DeliveriesParams>::from_query(req.query_string())
        .map_err(|e| V1Error::InvalidParameter(format!("bad query string: {e}")))?
        .into_inner();
    let state = params.state.as_deref().map(parse_state).transpose()?;
    let limit = page_limit(params.limit.as_deref())?;
    let after_id = params.cursor.as_deref().map(decode_cursor).transpose()?;
    // One more than asked: whether there is a next page.
    let mut items = ports
        .deliveries
        .entries(EntryQuery {
            sink: params.sink,
            state,
            after_id,
            limit: limit + 1,
        })
        .await?;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|e| encode_cursor(e.id))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(DeliveryPageDto {
        items: items.into_iter().map(DeliveryDto::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/deliveries/replay",
    tag = "deliveries",
    operation_id = "replayDeliveries",
    summary = "Deliver entries to a sink again, now, with the whole retry schedule",
    description = "Either every entry of the sink in a state (`{\"sink\", \"state\": \"dead\", \"since\"?}`) or named entries (`{\"sink\", \"eventIds\": [...]}`). Each keeps its id, so a consumer that already has it deduplicates it.",
    security(("bearer" = ["write"])),
    request_body(content = ReplayRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "What was made due.", body = ReplayResponse),
        (status = 400, description = "`unknown_sink`, `invalid_state` (not dead or delivered), `invalid_event_ids` (none, or more than 1000), `invalid_time`, `invalid_json` (neither or both of `state` and `eventIds`, `since` without `state`), `body_read_failed`, `unknown_parameter`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`.", body = ErrorBody),
        (status = 403, description = "`forbidden`: a `read` token.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody),
    )
)]
pub(crate) async fn replay(
    req: HttpRequest,
    payload: web::Payload,
    ports: web::Data<ApiPorts>,
) -> Result<HttpResponse, V1Error> {
    authorize(&req, &ports, Scope::Write).await?;
    only_parameters(&req, &[])?;
    let body: ReplayRequest = json_body(&req, payload).await?;
    let scope = match (body.state, body.event_ids) {
        (Some(state), None) => ReplayScope::State {
            sink: body.sink,
            state: parse_state(&state)?,
            since: body.since.map(|s| parse_time("since", &s)).transpose()?,
        },
        (None, Some(ids)) => {
            if body.since.is_some() {
                return Err(V1Error::InvalidJson(
                    "since goes with state, not with eventIds".into(),
                ));
            }
            if ids.is_empty() || ids.len() > MAX_REPLAY_IDS {
                return Err(V1Error::InvalidEventIds(format!(
                    "name 1 to {MAX_REPLAY_IDS} event ids, not {}",
                    ids.len()
                )));
            }
            ReplayScope::Entries {
                sink: body.sink,
                entry_ids: ids,
            }
        }
        _ => {
            return Err(V1Error::InvalidJson(
                "give either state (dead or delivered) or eventIds".into(),
            ));
        }
    };
    let outcome = ports.deliveries.replay(scope).await?;
    Ok(HttpResponse::Ok().json(ReplayResponse {
        replayed: outcome.replayed,
        not_found: outcome.not_found,
    }))
}
