//! The authenticated API under `/api/v1` (`../shared/docs/api-conventions.md`): bearer tokens
//! with scopes, JSON in camelCase, RFC 3339 UTC times, one error shape, keyset cursors. Handlers
//! turn requests into domain values at the edge and call the inbound ports
//! [`Authenticate`], [`Suppressions`] and [`EventHistory`] (the event history, in `events`);
//! nothing here knows how they are implemented.

use std::sync::Arc;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use base64::Engine as _;
use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use domain::ports::{ListPosition, ListQuery, StoreError};
use domain::reputation::ReputationQueries;
use domain::suppression::{
    Address, HistoryItem, MAX_CHECK, MAX_PAGE, ManualSuppression, SuppressionEntry,
    SuppressionError, SuppressionReason,
};
use domain::token::{AuthError, Caller, Scope};
use domain::{Authenticate, EventHistory, Suppressions};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;

/// Where the API lives.
pub const API_PREFIX: &str = "/api/v1";

/// The largest request body the API reads (a `check` of 1000 addresses is at most ~260 KiB).
pub const MAX_API_BODY_BYTES: usize = 1024 * 1024;

/// The page size when `limit` is not given.
pub const DEFAULT_PAGE: usize = 100;

/// What the API handlers call.
#[derive(Clone)]
pub struct ApiPorts {
    pub auth: Arc<dyn Authenticate>,
    pub suppressions: Arc<dyn Suppressions>,
    pub history: Arc<dyn EventHistory>,
    pub reputation: Arc<dyn ReputationQueries>,
    /// The outbox of event delivery (`/deliveries`).
    pub deliveries: Arc<dyn domain::delivery::Deliveries>,
}

impl std::fmt::Debug for ApiPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiPorts").finish_non_exhaustive()
    }
}

/// Every way an API request can fail. [`V1Error::code`] is the body's `error`.
#[derive(Debug, thiserror::Error)]
pub enum V1Error {
    #[error(
        "send an API token as `Authorization: Bearer <token>`; this one is missing, malformed, unknown or revoked"
    )]
    Unauthorized,
    #[error("this token's scope is `{0}`; this call needs a `write` token")]
    Forbidden(&'static str),
    #[error("{0}")]
    InvalidAddress(String),
    #[error("the cursor is not one this API gave out")]
    InvalidCursor,
    #[error(
        "the cursor is not one this API gave out for these filters: pass nextCursor back unchanged, with the same filters"
    )]
    CursorFilterMismatch,
    #[error("an export returns every match: it takes no {0}")]
    NotForExport(&'static str),
    #[error("{0}")]
    InvalidMessageId(String),
    #[error(
        "unknown event type {0:?}: use email_delivered, email_bounce, email_spam_report, email_open or email_click"
    )]
    InvalidType(String),
    #[error("unknown bounce type {0:?}: use hard or soft")]
    InvalidBounceType(String),
    #[error("{0}")]
    InvalidTag(String),
    #[error("unknown query parameter {0:?}")]
    UnknownParameter(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("send Accept: application/json, application/x-ndjson or text/csv")]
    NotAcceptable,
    #[error("nothing is known of this SES message")]
    MessageNotFound,
    #[error("{0}")]
    InvalidTime(String),
    #[error("unknown reason {0:?}: use hard_bounce, complaint, soft_bounce, manual or aws_import")]
    InvalidReason(String),
    #[error("limit must be a whole number from 1 to 1000")]
    InvalidLimit,
    #[error("give at most 1000 addresses per call")]
    TooManyAddresses,
    #[error("give at least one address")]
    NoAddresses,
    #[error("the body is not the JSON this call takes: {0}")]
    InvalidJson(String),
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error("this address is not on the suppression list")]
    NotSuppressed,
    #[error("no such path under /api/v1")]
    NotFound,
    #[error("this path answers {0} only")]
    MethodNotAllowed(&'static str),
    #[error("{0}")]
    UnknownSink(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("{0}")]
    InvalidEventIds(String),
    #[error("the store is unavailable; try again")]
    Unavailable(StoreError),
}

impl V1Error {
    /// The stable code of the error body.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::InvalidAddress(_) => "invalid_address",
            Self::InvalidCursor | Self::CursorFilterMismatch | Self::NotForExport("cursor") => {
                "invalid_cursor"
            }
            Self::NotForExport(_) => "invalid_limit",
            Self::InvalidMessageId(_) => "invalid_message_id",
            Self::InvalidType(_) => "invalid_type",
            Self::InvalidBounceType(_) => "invalid_bounce_type",
            Self::InvalidTag(_) => "invalid_tag",
            Self::UnknownParameter(_) => "unknown_parameter",
            Self::InvalidParameter(_) => "invalid_parameter",
            Self::NotAcceptable => "not_acceptable",
            Self::MessageNotFound => "not_found",
            Self::InvalidTime(_) => "invalid_time",
            Self::InvalidReason(_) => "invalid_reason",
            Self::InvalidLimit => "invalid_limit",
            Self::TooManyAddresses => "too_many_addresses",
            Self::NoAddresses => "no_addresses",
            Self::InvalidJson(_) => "invalid_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::TooLarge(_) => "payload_too_large",
            Self::BodyRead(_) => "body_read_failed",
            Self::NotSuppressed => "not_suppressed",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::UnknownSink(_) => "unknown_sink",
            Self::InvalidState(_) => "invalid_state",
            Self::InvalidEventIds(_) => "invalid_event_ids",
            Self::Unavailable(_) => "store_unavailable",
        }
    }
}

impl From<StoreError> for V1Error {
    fn from(error: StoreError) -> Self {
        Self::Unavailable(error)
    }
}

impl From<AuthError> for V1Error {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Unauthorized => Self::Unauthorized,
            AuthError::Unavailable(e) => Self::Unavailable(e),
        }
    }
}

impl ResponseError for V1Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::InvalidAddress(_)
            | Self::InvalidCursor
            | Self::CursorFilterMismatch
            | Self::NotForExport(_)
            | Self::InvalidMessageId(_)
            | Self::InvalidType(_)
            | Self::InvalidBounceType(_)
            | Self::InvalidTag(_)
            | Self::UnknownParameter(_)
            | Self::InvalidParameter(_)
            | Self::InvalidTime(_)
            | Self::InvalidReason(_)
            | Self::InvalidLimit
            | Self::TooManyAddresses
            | Self::NoAddresses
            | Self::InvalidJson(_)
            | Self::UnknownSink(_)
            | Self::InvalidState(_)
            | Self::InvalidEventIds(_)
            | Self::BodyRead(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotSuppressed | Self::NotFound | Self::MessageNotFound => StatusCode::NOT_FOUND,
            Self::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized => {
                builder.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"ses-webhook\""));
            }
            Self::MethodNotAllowed(allow) => {
                builder.insert_header((header::ALLOW, *allow));
            }
            Self::TooLarge(_) => {
                builder.force_close();
            }
            Self::Unavailable(error) => {
                tracing::warn!(error = %error, "API request failed: store unavailable");
            }
            _ => {}
        }
        builder.json(ErrorBody {
            success: false,
            error: self.code(),
            message: self.to_string(),
        })
    }
}

/// A suppression list entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuppressionDto {
    /// The address as first seen by the list.
    pub address: String,
    pub reason: ReasonDto,
    /// When this entry was written (RFC 3339, UTC).
    pub created_at: String,
    /// When it stops applying; `null`: never.
    #[schema(required = true)]
    pub expires_at: Option<String>,
    /// SES `mail.messageId` of the message whose event caused the entry (policy entries).
    #[schema(required = true)]
    pub ses_message_id: Option<String>,
    /// `event_key` of the event that caused the entry (policy entries).
    #[schema(required = true)]
    pub event_key: Option<String>,
    #[schema(required = true)]
    pub note: Option<String>,
}

/// Why an address is on the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReasonDto {
    HardBounce,
    Complaint,
    SoftBounce,
    Manual,
    AwsImport,
}

impl From<SuppressionReason> for ReasonDto {
    fn from(reason: SuppressionReason) -> Self {
        match reason {
            SuppressionReason::HardBounce => Self::HardBounce,
            SuppressionReason::Complaint => Self::Complaint,
            SuppressionReason::SoftBounce => Self::SoftBounce,
            SuppressionReason::Manual => Self::Manual,
            SuppressionReason::AwsImport => Self::AwsImport,
        }
    }
}

/// An instant as the API writes it: RFC 3339, UTC, microseconds, `Z`.
#[must_use]
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl From<SuppressionEntry> for SuppressionDto {
    fn from(entry: SuppressionEntry) -> Self {
        Self {
            address: entry.address,
            reason: entry.reason.into(),
            created_at: rfc3339(entry.created_at),
            expires_at: entry.expires_at.map(rfc3339),
            ses_message_id: entry.ses_message_id,
            event_key: entry.event_key,
            note: entry.note,
        }
    }
}

/// `POST /api/v1/suppressions/check` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// 1 to 1000 addresses.
    pub addresses: Vec<String>,
}

/// `POST /api/v1/suppressions/check` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResponse {
    /// The entries of the addresses that are suppressed; the others are absent.
    pub suppressed: Vec<SuppressionDto>,
}

/// One page of the list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuppressionPageDto {
    pub items: Vec<SuppressionDto>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `PUT /api/v1/suppressions/{address}` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutRequest {
    pub note: Option<String>,
    /// RFC 3339, in the future; `null` or absent: for good.
    pub expires_at: Option<String>,
}

/// One change of an address's entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryItemDto {
    pub action: ActionDto,
    pub reason: ReasonDto,
    /// `policy`, `token:NAME`, or `command:NAME`.
    pub by: String,
    pub at: String,
    #[schema(required = true)]
    pub expires_at: Option<String>,
    #[schema(required = true)]
    pub ses_message_id: Option<String>,
    #[schema(required = true)]
    pub event_key: Option<String>,
    #[schema(required = true)]
    pub note: Option<String>,
}

/// What happened to the entry.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionDto {
    Added,
    Removed,
}

impl From<HistoryItem> for HistoryItemDto {
    fn from(item: HistoryItem) -> Self {
        Self {
            action: match item.action {
                domain::suppression::HistoryAction::Added => ActionDto::Added,
                domain::suppression::HistoryAction::Removed => ActionDto::Removed,
            },
            reason: item.reason.into(),
            by: item.by,
            at: rfc3339(item.at),
            expires_at: item.expires_at.map(rfc3339),
            ses_message_id: item.ses_message_id,
            event_key: item.event_key,
            note: item.note,
        }
    }
}

/// An address's history, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryDto {
    pub items: Vec<HistoryItemDto>,
}

/// Registers the API under [`API_PREFIX`]: the OpenAPI document (no token) and the
/// suppression list. Another method on a known path is a 405 with `Allow`; an unknown path
/// under the prefix a 404, both with the JSON error body.
pub fn configure_api(cfg: &mut web::ServiceConfig, ports: ApiPorts) {
    let openapi = web::Data::new(OpenApiJson(crate::openapi::openapi_json()));
    cfg.service(
        web::scope(API_PREFIX)
            .app_data(web::Data::new(ports))
            .app_data(openapi)
            .service(
                web::resource("/openapi.json")
                    .route(web::get().to(openapi_document))
                    .default_service(web::to(|| refuse(V1Error::MethodNotAllowed("GET")))),
            )
            .service(
                web::resource("/suppressions/check")
                    .route(web::post().to(check))
                    .default_service(web::to(|| refuse(V1Error::MethodNotAllowed("POST")))),
            )
            .service(
                web::resource("/suppressions")
                    .route(web::get().to(list))
                    .default_service(web::to(|| refuse(V1Error::MethodNotAllowed("GET")))),
            )
            .service(
                web::resource("/suppressions/{address}/history")
                    .route(web::get().to(history))
                    .default_service(web::to(|| refuse(V1Error::MethodNotAllowed("GET")))),
            )
            .service(
                web::resource("/suppressions/{address}")
                    .route(web::get().to(get))
                    .route(web::put().to(put))
                    .route(web::delete().to(delete))
                    .default_service(web::to(|| {
                        refuse(V1Error::MethodNotAllowed("GET, PUT, DELETE"))
                    })),
            )
            .service(
                web::resource("/events")
                    .route(web::get().to(events::events))
                    .default_service(web::to(|| refuse(V1Error::MethodNotAllowed("GET")))),
            )
            .service(
                web::resource("/messages/{sesMessageId}")
                    .route(web::get().to(events::message))
                    .default_service(web::to(|| refuse(V1Error::MethodNotAllowed("GET")))),
            )
            .service(
                web::resource("/reputation")
                    .route(web::get().to(reputation::reputation))
                    .default_service(web::to(|| refuse(V1Error::MethodNotAllowed("GET")))),
            )
            .service(
                web::resource("/reputation/daily")
                    .route(web::get().to(reputation::daily))
                    .default_service(web::to(|| refuse(V1Error::MethodNotAllowed("GET")))),
            )
            .service(
                web::resource("/deliveries")
                    .route(web::get().to(deliveries::list))
                    .default_service(web::to(|| refuse(V1Error::MethodNotAllowed("GET")))),
            )
            .service(
                web::resource("/deliveries/replay")
                    .route(web::post().to(deliveries::replay))
                    .default_service(web::to(|| refuse(V1Error::MethodNotAllowed("POST")))),
            )
            .service(
                web::resource("/recipients/{address}")
                    .route(web::delete().to(events::erase))
                    .default_service(web::to(|| refuse(V1Error::MethodNotAllowed("DELETE")))),
            )
            .default_service(web::to(|| refuse(V1Error::NotFound))),
    );
}

async fn refuse(error: V1Error) -> Result<HttpResponse, V1Error> {
    Err(error)
}

/// The generated OpenAPI document, serialised once.
struct OpenApiJson(String);

#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "api",
    operation_id = "openapi",
    summary = "This OpenAPI description (no token needed)",
    responses((status = 200, description = "The OpenAPI 3.1 description of the whole service.", content_type = "application/json", body = Object))
)]
async fn openapi_document(document: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.0.clone())
}

/// The caller of `req`, if its token has `required` scope.
async fn authorize(
    req: &HttpRequest,
    ports: &ApiPorts,
    required: Scope,
) -> Result<Caller, V1Error> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .ok_or(V1Error::Unauthorized)?;
    let caller = ports.auth.authenticate(token).await?;
    if !caller.scope.allows(required) {
        return Err(V1Error::Forbidden(caller.scope.as_str()));
    }
    Ok(caller)
}

/// Refuses any query parameter but `allowed`, each at most once, so that a misspelt one
/// (`reasn=`) is an error rather than silently ignored.
///
/// # Errors
/// [`V1Error::UnknownParameter`] naming the first other parameter;
/// [`V1Error::InvalidParameter`] for one given twice, or when the query string cannot be read.
fn only_parameters(req: &HttpRequest, allowed: &[&str]) -> Result<(), V1Error> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| V1Error::InvalidParameter(format!("the query string cannot be read: {e}")))?
        .into_inner();
    let mut seen: Vec<&str> = Vec::new();
    for (key, _) in &pairs {
        if !allowed.contains(&key.as_str()) {
            return Err(V1Error::UnknownParameter(key.clone()));
        }
        if seen.contains(&key.as_str()) {
            return Err(V1Error::InvalidParameter(format!(
                "{key} may be given once"
            )));
        }
        seen.push(key);
    }
    Ok(())
}

/// The `{address}` of the path, percent-decoded and parsed.
fn path_address(req: &HttpRequest) -> Result<Address, V1Error> {
    let raw = req.match_info().get("address").unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| V1Error::InvalidAddress("the address is not UTF-8".into()))?;
    Address::parse(&decoded).map_err(|e| V1Error::InvalidAddress(e.to_string()))
}

/// Reads a JSON body of at most [`MAX_API_BODY_BYTES`] into `T`.
async fn json_body<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, V1Error> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(V1Error::UnsupportedMediaType);
    }
    let body = crate::handler::read_body(req, payload, MAX_API_BODY_BYTES)
        .await
        .map_err(|e| match e {
            crate::ApiError::TooLarge { limit } => V1Error::TooLarge(limit),
            crate::ApiError::BodyRead(detail) => V1Error::BodyRead(detail),
            other => V1Error::BodyRead(other.to_string()),
        })?;
    serde_json::from_slice(&body).map_err(|e| V1Error::InvalidJson(e.to_string()))
}

fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>, V1Error> {
    DateTime::parse_from_rfc3339(value)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| {
            V1Error::InvalidTime(format!(
                "{field} must be an RFC 3339 time such as 2026-01-31T12:00:00Z"
            ))
        })
}

/// The opaque cursor of a list position: base64url of `v1.<created_at µs>.<id>`.
#[must_use]
pub fn encode_cursor(position: ListPosition) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "v1.{}.{}",
        position.created_at.timestamp_micros(),
        position.id
    ))
}

/// Reads a cursor made by [`encode_cursor`].
///
/// # Errors
/// [`V1Error::InvalidCursor`] for anything else.
pub fn decode_cursor(cursor: &str) -> Result<ListPosition, V1Error> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| V1Error::InvalidCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| V1Error::InvalidCursor)?;
    let mut parts = text.split('.');
    let (Some("v1"), Some(micros), Some(id), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(V1Error::InvalidCursor);
    };
    let micros: i64 = micros.parse().map_err(|_| V1Error::InvalidCursor)?;
    let id: i64 = id.parse().map_err(|_| V1Error::InvalidCursor)?;
    let created_at = DateTime::from_timestamp_micros(micros).ok_or(V1Error::InvalidCursor)?;
    // Only times this API could have given out: the databases refuse some that chrono takes.
    if id <= 0 || !(1970..=9999).contains(&created_at.year()) {
        return Err(V1Error::InvalidCursor);
    }
    Ok(ListPosition { created_at, id })
}

/// A list's `limit`: [`DEFAULT_PAGE`] when absent, else 1 to [`MAX_PAGE`].
///
/// # Errors
/// [`V1Error::InvalidLimit`] for anything else.
fn page_limit(raw: Option<&str>) -> Result<usize, V1Error> {
    match raw {
        None => Ok(DEFAULT_PAGE),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or(V1Error::InvalidLimit),
    }
}

/// The query of `GET /api/v1/suppressions`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only entries with this reason.
    #[param(value_type = Option<ReasonDto>)]
    reason: Option<String>,
    /// Only entries written at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// Entries per page, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

impl ListParams {
    fn into_query(self) -> Result<ListQuery, V1Error> {
        let reason = self
            .reason
            .map(|r| SuppressionReason::parse(&r).ok_or(V1Error::InvalidReason(r)))
            .transpose()?;
        let since = self.since.map(|s| parse_time("since", &s)).transpose()?;
        let limit = page_limit(self.limit.as_deref())?;
        let after = self.cursor.map(|c| decode_cursor(&c)).transpose()?;
        Ok(ListQuery {
            reason,
            since,
            limit,
            after,
        })
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/suppressions/{address}",
    tag = "suppressions",
    operation_id = "getSuppression",
    summary = "The entry of one address",
    security(("bearer" = ["read"])),
    params(("address" = String, Path, description = "The address, percent-encoded.")),
    responses(
        (status = 200, description = "The address is suppressed.", body = SuppressionDto),
        (status = 400, description = "`invalid_address`, `unknown_parameter`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no token, or a malformed, unknown or revoked one.", body = ErrorBody),
        (status = 404, description = "`not_suppressed`: the address has no active entry.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody),
    )
)]
async fn get(req: HttpRequest, ports: web::Data<ApiPorts>) -> Result<HttpResponse, V1Error> {
    authorize(&req, &ports, Scope::Read).await?;
    only_parameters(&req, &[])?;
    let address = path_address(&req)?;
    let entry = ports
        .suppressions
        .get(&address)
        .await?
        .ok_or(V1Error::NotSuppressed)?;
    Ok(HttpResponse::Ok().json(SuppressionDto::from(entry)))
}

#[utoipa::path(
    post,
    path = "/api/v1/suppressions/check",
    tag = "suppressions",
    operation_id = "checkSuppressions",
    summary = "Which of up to 1000 addresses are suppressed (call it before each send)",
    security(("bearer" = ["read"])),
    request_body(content = CheckRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The entries of the suppressed addresses only.", body = CheckResponse),
        (status = 400, description = "`invalid_json`, `invalid_address`, `no_addresses`, `too_many_addresses`, `body_read_failed`, `unknown_parameter`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over 1 MiB.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the body is not application/json.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody),
    )
)]
async fn check(
    req: HttpRequest,
    payload: web::Payload,
    ports: web::Data<ApiPorts>,
) -> Result<HttpResponse, V1Error> {
    authorize(&req, &ports, Scope::Read).await?;
    only_parameters(&req, &[])?;
    let body: CheckRequest = json_body(&req, payload).await?;
    if body.addresses.is_empty() {
        return Err(V1Error::NoAddresses);
    }
    if body.addresses.len() > MAX_CHECK {
        return Err(V1Error::TooManyAddresses);
    }
    let addresses = body
        .addresses
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            Address::parse(raw).map_err(|e| V1Error::InvalidAddress(format!("addresses[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let suppressed = ports.suppressions.check(addresses).await?;
    Ok(HttpResponse::Ok().json(CheckResponse {
        suppressed: suppressed.into_iter().map(SuppressionDto::from).collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/suppressions",
    tag = "suppressions",
    operation_id = "listSuppressions",
    summary = "Active entries, newest first, a page at a time",
    security(("bearer" = ["read"])),
    params(ListParams),
    responses(
        (status = 200, description = "One page.", body = SuppressionPageDto),
        (status = 400, description = "`invalid_reason`, `invalid_time`, `invalid_limit`, `invalid_cursor`, `unknown_parameter`, `invalid_parameter` or `invalid_json` (a query string that cannot be read).", body = ErrorBody),
        (status = 401, description = "`unauthorized`.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody),
    )
)]
async fn list(req: HttpRequest, ports: web::Data<ApiPorts>) -> Result<HttpResponse, V1Error> {
    authorize(&req, &ports, Scope::Read).await?;
    only_parameters(&req, &["reason", "since", "limit", "cursor"])?;
    let params = web::Query::<ListParams>::from_query(req.query_string())
        .map_err(|e| V1Error::InvalidJson(format!("bad query string: {e}")))?
        .into_inner();
    let page = ports.suppressions.list(params.into_query()?).await?;
    Ok(HttpResponse::Ok().json(SuppressionPageDto {
        items: page.items.into_iter().map(SuppressionDto::from).collect(),
        next_cursor: page.next.map(encode_cursor),
    }))
}

#[utoipa::path(
    put,
    path = "/api/v1/suppressions/{address}",
    tag = "suppressions",
    operation_id = "putSuppression",
    summary = "Suppress an address by hand (reason `manual`), replacing any entry",
    security(("bearer" = ["write"])),
    params(("address" = String, Path, description = "The address, percent-encoded.")),
    request_body(content = Option<PutRequest>, content_type = "application/json", description = "Optional: no body at all means no note, for good."),
    responses(
        (status = 200, description = "Replaced an active entry.", body = SuppressionDto),
        (status = 201, description = "Created (the address had no active entry).", body = SuppressionDto),
        (status = 400, description = "`invalid_address`, `invalid_json`, `invalid_time` (not RFC 3339, or not in the future), `body_read_failed`, `unknown_parameter`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`.", body = ErrorBody),
        (status = 403, description = "`forbidden`: a `read` token.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody),
    )
)]
async fn put(
    req: HttpRequest,
    payload: web::Payload,
    ports: web::Data<ApiPorts>,
) -> Result<HttpResponse, V1Error> {
    let caller = authorize(&req, &ports, Scope::Write).await?;
    only_parameters(&req, &[])?;
    let address = path_address(&req)?;
    // The body is optional: none at all is `{}` (no note, for good).
    let empty = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0")
        || req.headers().get(header::CONTENT_LENGTH).is_none()
            && req.headers().get(header::TRANSFER_ENCODING).is_none();
    let body: PutRequest = if empty {
        PutRequest::default()
    } else {
        json_body(&req, payload).await?
    };
    let expires_at = body
        .expires_at
        .map(|at| parse_time("expiresAt", &at))
        .transpose()?;
    let outcome = ports
        .suppressions
        .put(
            address,
            ManualSuppression {
                note: body.note,
                expires_at,
            },
            &caller,
        )
        .await
        .map_err(|e| match e {
            SuppressionError::ExpiryInPast => {
                V1Error::InvalidTime("expiresAt must be in the future".into())
            }
            SuppressionError::Store(e) => V1Error::Unavailable(e),
        })?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(SuppressionDto::from(outcome.entry)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/suppressions/{address}",
    tag = "suppressions",
    operation_id = "deleteSuppression",
    summary = "Remove an address from the list",
    security(("bearer" = ["write"])),
    params(("address" = String, Path, description = "The address, percent-encoded.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 400, description = "`invalid_address`, `unknown_parameter`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`.", body = ErrorBody),
        (status = 403, description = "`forbidden`: a `read` token.", body = ErrorBody),
        (status = 404, description = "`not_suppressed`.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody),
    )
)]
async fn delete(req: HttpRequest, ports: web::Data<ApiPorts>) -> Result<HttpResponse, V1Error> {
    let caller = authorize(&req, &ports, Scope::Write).await?;
    only_parameters(&req, &[])?;
    let address = path_address(&req)?;
    if ports.suppressions.remove(&address, &caller).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(V1Error::NotSuppressed)
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/suppressions/{address}/history",
    tag = "suppressions",
    operation_id = "suppressionHistory",
    summary = "Every change to an address's entry, oldest first",
    security(("bearer" = ["read"])),
    params(("address" = String, Path, description = "The address, percent-encoded.")),
    responses(
        (status = 200, description = "The history (empty for an address never listed).", body = HistoryDto),
        (status = 400, description = "`invalid_address`, `unknown_parameter`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody),
    )
)]
async fn history(req: HttpRequest, ports: web::Data<ApiPorts>) -> Result<HttpResponse, V1Error> {
    authorize(&req, &ports, Scope::Read).await?;
    only_parameters(&req, &[])?;
    let address = path_address(&req)?;
    let items = ports.suppressions.history(&address).await?;
    Ok(HttpResponse::Ok().json(HistoryDto {
        items: items.into_iter().map(HistoryItemDto::from).collect(),
    }))
}

pub(crate) mod deliveries;
pub(crate) mod events;
pub(crate) mod reputation;

#[cfg(test)]
mod tests;
